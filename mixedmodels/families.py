r"""Response distributions (families) and link functions for generalized linear mixed models.

A generalized linear (mixed) model relates the conditional mean :math:`\mu_i` of each
observation to a linear predictor :math:`\eta_i` through a *link* :math:`g`,

.. math:: \eta_i = g(\mu_i), \qquad \mu_i = g^{-1}(\eta_i),

and describes the response's spread through a *family*: an exponential-dispersion
distribution with variance :math:`\operatorname{Var}(y_i) = \phi\, V(\mu_i) / w_i`, where
:math:`V` is the variance function, :math:`\phi` the dispersion and :math:`w_i` a prior
weight.

Names and allowed link sets follow R's ``stats`` families (``binomial``, ``poisson``,
``Gamma``, ``inverse.gaussian``, ``gaussian``), with a separate :class:`Bernoulli` family for
0/1 responses.  Log-likelihoods carry every constant that R's ``family$aic`` carries, so
values can be compared with ``logLik`` from R, lme4 and MixedModels.jl.

Conventions shared by every method
----------------------------------
``y``
    Response.  For :class:`Binomial` it is the *proportion* of successes and ``wt`` the
    number of trials (see :meth:`Binomial.from_counts`).
``mu``, ``eta``
    Mean and linear predictor, arrays of the same shape as ``y``.
``wt``
    Prior weights, broadcastable to ``y``'s shape; ``None`` means all ones.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from mixedmodels.errors import MixedModelsError

__all__ = [
    "Link",
    "LogitLink",
    "ProbitLink",
    "CauchitLink",
    "CloglogLink",
    "LogLink",
    "IdentityLink",
    "InverseLink",
    "SqrtLink",
    "InverseSquareLink",
    "Family",
    "Bernoulli",
    "Binomial",
    "Poisson",
    "Gamma",
    "InverseGaussian",
    "Gaussian",
    "LikelihoodFamily",
    "NegativeBinomial2",
    "NegativeBinomial1",
    "Beta",
    "get_link",
    "get_family",
]

FloatArray = NDArray[np.float64]

# Smallest useful probability and slope: keeps mu strictly inside (0, 1) and working
# weights strictly positive, as R's links do with .Machine$double.eps.
_EPS: float = float(np.finfo(np.float64).eps)

# Beyond this exp() overflows in float64; cloglog saturates long before it anyway.
_MAX_EXP_ARG: float = 700.0


def _as_float(x: ArrayLike) -> FloatArray:
    """Return ``x`` as a float64 ndarray (no copy when it already is one).

    A float64 ndarray (PIRLS's every call) is returned as it is without
    ``np.asarray``'s dtype handling (twice the check's cost; it adds up over PIRLS's calls).
    """
    if type(x) is np.ndarray and x.dtype is _FLOAT64:  # else (byte order, say) converted
        return x
    return np.asarray(x, dtype=np.float64)


_FLOAT64 = np.dtype(np.float64)


def _check_real(x: ArrayLike | None, what: str) -> None:
    """MixedModelsError for complex values, whose imaginary part float conversion would drop."""
    if x is not None and np.iscomplexobj(x):
        raise MixedModelsError(f"{what} are complex numbers; they must be real")


def _clamp_probability(p: FloatArray) -> FloatArray:
    """Keep probabilities inside ``[eps, 1 - eps]`` so that logs and ``V(mu)`` stay finite."""
    # np.minimum(np.maximum()) is np.clip's result (NaN too) without its wrapper's cost
    return np.minimum(np.maximum(p, _EPS), 1.0 - _EPS)


def _floor_slope(d: FloatArray) -> FloatArray:
    """Keep ``dmu/deta`` of a saturating link at least ``eps`` (positive working weights)."""
    return np.maximum(d, _EPS)


# Below this |d| = |x - m| / m, _bd0 switches from the closed form to its Taylor series.
_BD0_SERIES_BELOW: float = 1e-3


def _summed_deviance(wt: ArrayLike | None, terms: FloatArray) -> float:
    """2 Σ wᵢ tᵢ for half unit deviances tᵢ computed by the direct formula.

    A sum needs no cancellation-free kernel such as :func:`_bd0`: each term's absolute
    rounding error is about ε times the size of its logarithms, so the total is as
    accurate as the log-likelihood it enters, in a few array operations (PIRLS
    evaluates it several times per step). ``unit_deviance`` keeps the accurate kernel
    for residuals, whose relative accuracy matters one by one.
    """
    return float(2.0 * np.dot(_weights(wt, terms.shape), terms))


def _bd0(x: ArrayLike, m: ArrayLike, diff: ArrayLike | None = None) -> FloatArray:
    r"""Deviance kernel :math:`x\log(x/m) - (x - m) \ge 0` for :math:`x \ge 0, m > 0`.

    With :math:`d = (x - m)/m` it is :math:`m\,h(d)`,
    :math:`h(d) = (1+d)\log(1+d) - d`.  Computed directly, :math:`h` loses
    accuracy as :math:`d \to 0` (relative error about :math:`\epsilon/|d|`,
    two nearly equal terms cancel), so for :math:`|d| <` ``_BD0_SERIES_BELOW``
    its Taylor series :math:`\sum_{k\ge2} (-1)^k d^k / (k(k-1))` is used
    instead (six terms leave an error below :math:`10^{-18}` relative).  A fixed
    number of array operations, whatever the data: PIRLS calls this often.
    ``diff`` may supply :math:`x - m` when it is known more accurately than
    the rounded ``x`` and ``m`` give it (e.g. for :math:`1-y` and :math:`1-\mu`).
    """
    x, m = np.broadcast_arrays(_as_float(x), _as_float(m))
    diff = x - m if diff is None else np.broadcast_to(_as_float(diff), x.shape)
    d = diff / m
    # xlog1py makes 0 * log(0) = 0, so x = 0 (d = -1) gives h = 1 and bd0 = m.
    closed = special.xlog1py(1.0 + d, d) - d
    small = np.where(np.abs(d) < _BD0_SERIES_BELOW, d, 0.0)
    series = (
        small
        * small
        * (
            0.5
            + small
            * (
                -1.0 / 6
                + small * (1.0 / 12 + small * (-1.0 / 20 + small * (1.0 / 30 - small / 42)))
            )
        )
    )
    return np.maximum(m * np.where(np.abs(d) < _BD0_SERIES_BELOW, series, closed), 0.0)


# --------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------


class Link(ABC):
    r"""A monotone, differentiable map :math:`\eta = g(\mu)` and its inverse.

    Links are stateless: two instances of the same class compare equal.

    Attributes
    ----------
    name : str
        R's name for the link (``"logit"``, ``"1/mu^2"``, ...).
    """

    name: ClassVar[str]

    @abstractmethod
    def linkfun(self, mu: ArrayLike) -> FloatArray:
        r"""The link :math:`\eta = g(\mu)`, elementwise."""

    @abstractmethod
    def linkinv(self, eta: ArrayLike) -> FloatArray:
        r"""The inverse link :math:`\mu = g^{-1}(\eta)`, elementwise."""

    @abstractmethod
    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        r"""The derivative :math:`d\mu/d\eta` of the inverse link, elementwise."""

    def inverse_and_slope(self, eta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        r""":math:`\mu = g^{-1}(\eta)` and :math:`d\mu/d\eta` together (PIRLS needs both at every η).

        The values of :meth:`linkinv` and :meth:`mu_eta`; links whose two share
        a transcendental function compute it once.
        """
        return self.linkinv(eta), self.mu_eta(eta)

    def valid_eta(self, eta: ArrayLike) -> bool:
        r"""Whether every :math:`\eta` lies in the domain of :meth:`linkinv` (and is finite)."""
        return bool(np.all(np.isfinite(_as_float(eta))))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogitLink(Link):
    r"""Log-odds, :math:`\eta = \log(\mu/(1-\mu))`; canonical for binomial data.

    :math:`\mu = 1/(1+e^{-\eta})` and :math:`d\mu/d\eta = \mu(1-\mu)`.
    """

    name = "logit"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return special.logit(_as_float(mu))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return _clamp_probability(special.expit(_as_float(eta)))

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        # expit(eta) * expit(-eta) avoids the cancellation in p * (1 - p) for large eta.
        return _floor_slope(special.expit(eta) * special.expit(-eta))

    def inverse_and_slope(self, eta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        eta = _as_float(eta)
        p = special.expit(eta)  # shared by μ and dμ/dη
        return _clamp_probability(p), _floor_slope(p * special.expit(-eta))


class ProbitLink(Link):
    r"""Standard normal quantile, :math:`\eta = \Phi^{-1}(\mu)`.

    :math:`\mu = \Phi(\eta)` and :math:`d\mu/d\eta = \varphi(\eta)`, the normal density.
    """

    name = "probit"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return special.ndtri(_as_float(mu))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return _clamp_probability(special.ndtr(_as_float(eta)))

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        return _floor_slope(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi))


class CauchitLink(Link):
    r"""Standard Cauchy quantile, :math:`\eta = \tan(\pi(\mu - 1/2))`.

    :math:`\mu = 1/2 + \arctan(\eta)/\pi` and :math:`d\mu/d\eta = 1/(\pi(1+\eta^2))`.
    """

    name = "cauchit"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return np.tan(np.pi * (_as_float(mu) - 0.5))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return _clamp_probability(0.5 + np.arctan(_as_float(eta)) / np.pi)

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        return _floor_slope(1.0 / (np.pi * (1.0 + eta * eta)))


class CloglogLink(Link):
    r"""Complementary log-log, :math:`\eta = \log(-\log(1-\mu))`.

    :math:`\mu = 1 - \exp(-e^{\eta})` and :math:`d\mu/d\eta = e^{\eta} \exp(-e^{\eta})`.
    """

    name = "cloglog"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        # log1p keeps log(1 - mu) accurate for small mu.
        return np.log(-np.log1p(-_as_float(mu)))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        eta = np.minimum(_as_float(eta), _MAX_EXP_ARG)
        # -expm1(-x) is 1 - exp(-x) without cancellation for small x.
        return _clamp_probability(-np.expm1(-np.exp(eta)))

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        e = np.exp(np.minimum(_as_float(eta), _MAX_EXP_ARG))
        return _floor_slope(e * np.exp(-e))


class LogLink(Link):
    r"""Natural logarithm, :math:`\eta = \log\mu`; canonical for Poisson data.

    :math:`\mu = e^{\eta}` and :math:`d\mu/d\eta = e^{\eta}`, both floored at machine
    epsilon so that the mean stays positive.
    """

    name = "log"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return np.log(_as_float(mu))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return np.maximum(np.exp(_as_float(eta)), _EPS)

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        return np.maximum(np.exp(_as_float(eta)), _EPS)

    def inverse_and_slope(self, eta: ArrayLike) -> tuple[FloatArray, FloatArray]:
        mu = self.linkinv(eta)  # dμ/dη = μ
        return mu, mu.copy()


class IdentityLink(Link):
    r""":math:`\eta = \mu`; canonical for Gaussian data, :math:`d\mu/d\eta = 1`."""

    name = "identity"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return np.array(mu, dtype=np.float64)

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return np.array(eta, dtype=np.float64)

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        return np.ones_like(_as_float(eta))


class InverseLink(Link):
    r"""Reciprocal, :math:`\eta = 1/\mu`; canonical for Gamma data.

    :math:`\mu = 1/\eta` and :math:`d\mu/d\eta = -1/\eta^2`; :math:`\eta = 0` is invalid.
    """

    name = "inverse"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return 1.0 / _as_float(mu)

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return 1.0 / _as_float(eta)

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        return -1.0 / (eta * eta)

    def valid_eta(self, eta: ArrayLike) -> bool:
        eta = _as_float(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))


class SqrtLink(Link):
    r"""Square root, :math:`\eta = \sqrt\mu`, with :math:`\mu = \eta^2`, :math:`d\mu/d\eta = 2\eta`.

    Only :math:`\eta > 0` is valid, since the inverse must be monotone.
    """

    name = "sqrt"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        return np.sqrt(_as_float(mu))

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        return eta * eta

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        return 2.0 * _as_float(eta)

    def valid_eta(self, eta: ArrayLike) -> bool:
        eta = _as_float(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


class InverseSquareLink(Link):
    r""":math:`\eta = \mu^{-2}` (R's ``"1/mu^2"``); canonical for inverse Gaussian data.

    :math:`\mu = \eta^{-1/2}` and :math:`d\mu/d\eta = -\tfrac12 \eta^{-3/2}`; only
    :math:`\eta > 0` is valid.
    """

    name = "1/mu^2"

    def linkfun(self, mu: ArrayLike) -> FloatArray:
        mu = _as_float(mu)
        return 1.0 / (mu * mu)

    def linkinv(self, eta: ArrayLike) -> FloatArray:
        return 1.0 / np.sqrt(_as_float(eta))

    def mu_eta(self, eta: ArrayLike) -> FloatArray:
        eta = _as_float(eta)
        return -0.5 / (eta * np.sqrt(eta))

    def valid_eta(self, eta: ArrayLike) -> bool:
        eta = _as_float(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


_LINKS: dict[str, type[Link]] = {
    cls.name: cls
    for cls in (
        LogitLink,
        ProbitLink,
        CauchitLink,
        CloglogLink,
        LogLink,
        IdentityLink,
        InverseLink,
        SqrtLink,
        InverseSquareLink,
    )
}

# Spellings that are easier to type than R's names.
_LINK_ALIASES: dict[str, str] = {
    "inverse_square": "1/mu^2",
    "inversesquare": "1/mu^2",
    "inverse_squared": "1/mu^2",
    "reciprocal": "inverse",
}

LinkSpec = str | Link | type[Link]


def get_link(link: LinkSpec) -> Link:
    """Return a link object from a name, a :class:`Link` instance or a :class:`Link` class.

    Parameters
    ----------
    link : str or Link or type[Link]
        R's name (``"logit"``, ``"probit"``, ``"cauchit"``, ``"cloglog"``, ``"log"``,
        ``"identity"``, ``"inverse"``, ``"sqrt"``, ``"1/mu^2"``; case-insensitive, with
        ``"inverse_square"`` accepted for ``"1/mu^2"``), or a link object or class.

    Returns
    -------
    Link

    Raises
    ------
    MixedModelsError
        If the name is unknown (the message lists the known names) or the object is not a link.
    """
    if isinstance(link, Link):
        return link
    if isinstance(link, type) and issubclass(link, Link) and link is not Link:
        return link()
    if isinstance(link, str):
        key = link.strip().lower()
        key = _LINK_ALIASES.get(key, key)
        if key in _LINKS:
            return _LINKS[key]()
        known = ", ".join(repr(name) for name in _LINKS)
        raise MixedModelsError(f"unknown link {link!r}; known links are {known}")
    raise MixedModelsError(f"link must be a link name or a Link object, not {type(link).__name__}")


# --------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------


class Family(ABC):
    r"""An exponential-dispersion family with a link.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        The link; defaults to the family's canonical link.  Links outside the family's
        ``allowed_links`` (R's sets) raise :class:`~mixedmodels.errors.MixedModelsError`.

    Attributes
    ----------
    name : str
        R's family name.
    link : Link
        The link in use.
    canonical_link : str
        Name of the canonical link, for which :math:`\eta` is the natural parameter.
    allowed_links : tuple of str
        Names of the links this family accepts.
    has_dispersion : bool
        Whether the family has a free dispersion parameter :math:`\phi` (otherwise
        :math:`\phi = 1`).
    """

    name: ClassVar[str]
    canonical_link: ClassVar[str]
    allowed_links: ClassVar[tuple[str, ...]]
    has_dispersion: ClassVar[bool]
    # How error messages describe the prior weights.
    _weights_label: ClassVar[str] = "prior weights"
    support: ClassVar[str] = ""
    """Models of the same non-empty support (``"counts"``) have comparable likelihoods."""

    def __init__(self, link: LinkSpec | None = None) -> None:
        chosen = get_link(self.canonical_link if link is None else link)
        if chosen.name not in self.allowed_links:
            allowed = ", ".join(repr(name) for name in self.allowed_links)
            raise MixedModelsError(
                f"link {chosen.name!r} is not valid for family {self.name!r}; "
                f"allowed links are {allowed}"
            )
        self.link: Link = chosen

    @property
    def is_canonical(self) -> bool:
        """Whether the link is the canonical one (then Fisher scoring is Newton's method)."""
        return self.link.name == self.canonical_link

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.link == other.link  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.link))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    # -- distribution-specific pieces -------------------------------------------------

    @abstractmethod
    def variance(self, mu: ArrayLike) -> FloatArray:
        r"""The variance function :math:`V(\mu)`, elementwise."""

    @abstractmethod
    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r"""The unit deviance :math:`d(y, \mu) \ge 0`, zero exactly when :math:`y = \mu`."""

    @abstractmethod
    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        """Per-observation log-likelihood contributions, weights already applied."""

    @abstractmethod
    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        """A starting mean for iterative fitting, strictly inside the mean's domain."""

    @abstractmethod
    def valid_mu(self, mu: ArrayLike) -> bool:
        """Whether every mean lies in the family's mean space (and is finite)."""

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:  # noqa: B027 - an optional hook
        """Family-specific response checks; the default accepts any finite value."""

    # -- shared machinery --------------------------------------------------------------

    def dev_resid(self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        r"""Weighted squared deviance residuals :math:`w_i\, d(y_i, \mu_i)`."""
        y = _as_float(y)
        return _weights(wt, y.shape) * self.unit_deviance(y, mu)

    def deviance(self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None) -> float:
        r"""Total deviance :math:`D = \sum_i w_i\, d(y_i, \mu_i)`."""
        return float(np.sum(self.dev_resid(y, mu, wt)))

    def deviance_terms(
        self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None
    ) -> FloatArray:
        r"""Terms :math:`w_i d(y_i, \mu_i)` accurate enough to be summed (any shape).

        The same values as :meth:`dev_resid`, which families with a closed form
        compute by the direct formula instead of a cancellation-free kernel:
        only sums of them are used (the quadrature's per-level deviances), and
        a sum is as accurate either way (see :func:`_summed_deviance`).
        """
        return self.dev_resid(y, mu, wt)

    def deviance_residuals(
        self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None
    ) -> FloatArray:
        r"""Signed deviance residuals :math:`\operatorname{sign}(y_i-\mu_i)\sqrt{w_i d(y_i,\mu_i)}`.

        Their squares sum to the deviance; R's ``residuals(fit, type = "deviance")``.
        """
        y = _as_float(y)
        return np.sign(y - _as_float(mu)) * np.sqrt(self.dev_resid(y, mu, wt))

    def loglik(
        self,
        y: ArrayLike,
        mu: ArrayLike,
        wt: ArrayLike | None = None,
        dispersion: float | None = None,
    ) -> float:
        r"""Total log-likelihood :math:`\sum_i \ell_i(y_i; \mu_i, \phi, w_i)`.

        This equals ``-family$aic(y, n, mu, wt, dev) / 2`` in R without the ``+2`` that R
        adds for an estimated dispersion, except that R plugs in :math:`\hat\phi` of its
        own choosing where this method takes ``dispersion``.  Each family's docstring gives
        :math:`\ell_i`.

        Parameters
        ----------
        y, mu, wt
            Response, mean and prior weights (see the module docstring).
        dispersion : float, optional
            :math:`\phi > 0`; required when :attr:`has_dispersion`, ignored otherwise.

        Returns
        -------
        float
        """
        y = _as_float(y)
        phi = self._dispersion(dispersion)
        return float(np.sum(self._loglik_terms(y, _as_float(mu), _weights(wt, y.shape), phi)))

    def _dispersion(self, dispersion: float | None) -> float:
        r"""Validate the dispersion argument; families without one use :math:`\phi = 1`."""
        if not self.has_dispersion:
            return 1.0
        if dispersion is None:
            raise MixedModelsError(
                f"family {self.name!r} has a dispersion parameter; pass dispersion=phi"
            )
        phi = float(dispersion)
        if not (np.isfinite(phi) and phi > 0):
            raise MixedModelsError(f"dispersion must be finite and positive, got {phi}")
        return phi

    def check_response(self, y: ArrayLike, wt: ArrayLike | None = None) -> None:
        """Raise :class:`~mixedmodels.errors.MixedModelsError` if ``y`` cannot be from this family.

        Checks that the response is finite, that the weights match it in shape and are
        finite and non-negative, then the family's own support; may warn (e.g. Poisson
        counts that are not integers).
        """
        _check_real(y, f"{self.name} response")
        _check_real(wt, self._weights_label)
        y = _as_float(y)
        wt = _weights(wt, y.shape)
        if not np.all(np.isfinite(y)):
            raise MixedModelsError(f"{self.name} response contains NaN or infinite values")
        if not np.all(np.isfinite(wt)):
            raise MixedModelsError(f"{self._weights_label} contain NaN or infinite values")
        if np.any(wt < 0):
            raise MixedModelsError(
                f"{self._weights_label} must be non-negative; found {np.sum(wt < 0)} negative"
            )
        self._check_values(y, wt)

    def working_weights(
        self,
        mu: ArrayLike,
        eta: ArrayLike,
        wt: ArrayLike | None = None,
        mu_eta: FloatArray | None = None,
    ) -> FloatArray:
        r"""IRLS/PIRLS weights :math:`w_i (d\mu_i/d\eta_i)^2 / V(\mu_i)`.

        ``mu_eta`` may pass :math:`d\mu/d\eta` at ``eta`` when the caller has it.
        """
        mu = _as_float(mu)
        d = self.link.mu_eta(eta) if mu_eta is None else mu_eta
        return _weights(wt, mu.shape) * d * d / self.variance(mu)

    def working_response(self, y: ArrayLike, mu: ArrayLike, eta: ArrayLike) -> FloatArray:
        r"""IRLS/PIRLS working response :math:`z_i = \eta_i + (y_i - \mu_i)/(d\mu_i/d\eta_i)`."""
        eta = _as_float(eta)
        return eta + (_as_float(y) - _as_float(mu)) / self.link.mu_eta(eta)


def _weights(wt: ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    """Prior weights as a float array of ``shape``; ``None`` means all ones."""
    if wt is None:
        return np.ones(shape)
    w = _as_float(wt)
    if w.shape == shape:  # the usual case, and PIRLS's hot path: no broadcast view needed
        return w
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise MixedModelsError(
            f"weights of shape {w.shape} do not match the response of shape {shape}"
        ) from None


def _broadcastable_weights(wt: ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    """Prior weights that broadcast to ``shape`` as they are (an n x 1 column for n x K terms).

    The products are the same numbers as with :func:`_weights`'s full-shape view,
    whose zero strides make numpy's loops several times slower.
    """
    if wt is not None:
        w = _as_float(wt)
        if w.ndim == len(shape) and all(a in (1, b) for a, b in zip(w.shape, shape)):
            return w
    return _weights(wt, shape)


def _positive_mean(mu: ArrayLike) -> bool:
    """Every mean finite and strictly positive."""
    mu = _as_float(mu)
    return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


def _first(values: FloatArray) -> str:
    """Quote one offending value for an error message."""
    return f"{values.flat[0]:g}"


def _check_counts(family: str, y: FloatArray) -> None:
    """Counts must be non-negative (an error); non-integer ones are only warned about, as R does."""
    negative = y[y < 0]
    if negative.size:
        raise MixedModelsError(
            f"{family} response must be non-negative counts; found {negative.size} "
            f"negative value(s), e.g. {_first(negative)}"
        )
    if np.any(y != np.rint(y)):
        warnings.warn(f"non-integer counts in a {family} response", stacklevel=4)


class _DirectDeviance:
    """Summed deviance and per-observation terms from a family's ``_half_deviances`` (y, μ),
    the direct formula: see :func:`_summed_deviance` for why sums use it (binomial, Poisson)."""

    @staticmethod
    def _half_deviances(y: ArrayLike, mu: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def deviance(self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None) -> float:
        """Total deviance Σ wᵢ d(yᵢ, μᵢ), by the direct formula."""
        return _summed_deviance(wt, self._half_deviances(y, mu))

    def deviance_terms(
        self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike | None = None
    ) -> FloatArray:
        """wᵢ d(yᵢ, μᵢ) by the direct formula, for sums over levels (quadrature)."""
        terms = self._half_deviances(y, mu)
        return 2.0 * _broadcastable_weights(wt, terms.shape) * terms


class _Counts:
    """Count responses (Poisson, negative binomial): positive means, R's start, count checks."""

    name: str

    def valid_mu(self, mu: ArrayLike) -> bool:
        return _positive_mean(mu)

    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        """R's start :math:`y + 0.1`, positive even for zero counts."""
        return _as_float(y) + 0.1

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:
        _check_counts(self.name, y)


# -- binary and binomial --------------------------------------------------------------


class _Binary(_DirectDeviance, Family):
    """Shared pieces of :class:`Bernoulli` and :class:`Binomial`: links, variance, deviance."""

    canonical_link = "logit"
    allowed_links = ("logit", "probit", "cloglog", "cauchit", "log")
    has_dispersion = False

    def variance(self, mu: ArrayLike) -> FloatArray:
        r""":math:`V(\mu) = \mu(1-\mu)`."""
        mu = _as_float(mu)
        return mu * (1.0 - mu)

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`d(y,\mu) = 2[y\log(y/\mu) + (1-y)\log((1-y)/(1-\mu))]`.

        With the convention :math:`0\log 0 = 0`, so :math:`y \in \{0, 1\}` is fine.
        """
        y, mu = _as_float(y), _as_float(mu)
        if np.all((y == 0.0) | (y == 1.0)):
            # 0/1 responses (the common case, and PIRLS's hot path): one log term vanishes
            with np.errstate(divide="ignore"):  # both branches are evaluated; only one is used
                return -2.0 * np.where(y == 1.0, np.log(mu), np.log1p(-mu))
        # Adding (y - mu) to one log term and (mu - y) to the other changes nothing but
        # turns both into the cancellation-free kernel _bd0.
        # 1 - y and 1 - mu are rounded, but their difference is exactly mu - y.
        return 2.0 * (_bd0(y, mu) + _bd0(1.0 - y, 1.0 - mu, diff=mu - y))

    @staticmethod
    def _half_deviances(y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r"""y log(y/μ) + (1 - y) log((1 - y)/(1 - μ)) by the direct formula (for sums).

        The total deviance is :math:`2\sum_i w_i [y_i\log(y_i/\mu_i) + (1-y_i)\log((1-y_i)/(1-\mu_i))]`.
        """
        y, mu = _as_float(y), _as_float(mu)
        return special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu))

    def valid_mu(self, mu: ArrayLike) -> bool:
        mu = _as_float(mu)
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        """R's start :math:`(w y + 1/2)/(w + 1)`, which is never 0 or 1."""
        y = _as_float(y)
        wt = _weights(wt, y.shape)
        return (wt * y + 0.5) / (wt + 1.0)

    def _check_proportions(self, y: FloatArray, wt: FloatArray) -> None:
        """Responses with positive weight must lie in [0, 1]; R ignores zero-weight ones too."""
        bad = y[(wt > 0) & ((y < 0) | (y > 1))]
        if bad.size:
            raise MixedModelsError(
                f"{self.name} response must lie in [0, 1]; found {bad.size} value(s) "
                f"outside [0, 1], e.g. {_first(bad)}"
            )


def _binomial_logpmf(k: FloatArray, n: FloatArray, p: FloatArray) -> FloatArray:
    r""":math:`\log\binom{n}{k} + k\log p + (n-k)\log(1-p)`, with :math:`0\log 0 = 0`."""
    log_choose = special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
    return log_choose + special.xlogy(k, p) + special.xlog1py(n - k, -p)


class Bernoulli(_Binary):
    r"""0/1 responses: :math:`y_i \sim \operatorname{Bernoulli}(\mu_i)`, no dispersion.

    ``wt`` are prior (frequency) weights.  Log-likelihood (R's binomial ``aic`` with one
    trial per observation):

    .. math:: \ell = \sum_i w_i\,[y_i\log\mu_i + (1-y_i)\log(1-\mu_i)].

    Links: ``logit`` (canonical), ``probit``, ``cloglog``, ``cauchit``, ``log``.
    """

    name = "bernoulli"

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:
        self._check_proportions(y, wt)
        fractional = y[(wt > 0) & (y != 0) & (y != 1)]
        if fractional.size:
            raise MixedModelsError(
                f"bernoulli response must be 0 or 1; found {fractional.size} value(s) strictly "
                f"between 0 and 1, e.g. {_first(fractional)} (for proportions use Binomial "
                "with the numbers of trials as weights)"
            )

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        return wt * _binomial_logpmf(np.rint(y), np.ones_like(y), mu)


class Binomial(_Binary):
    r"""Proportions of successes: :math:`w_i y_i \sim \operatorname{Binomial}(w_i, \mu_i)`.

    ``y`` is the proportion of successes and ``wt`` the number of trials, as R stores a
    ``cbind(successes, failures)`` response (:meth:`from_counts` converts).  No dispersion.
    Log-likelihood, as R's ``binomial()$aic`` with :math:`m_i = w_i` (observations with
    :math:`w_i = 0` contribute nothing):

    .. math::
        \ell = \sum_{i:\,w_i>0} \log\binom{\operatorname{round}(w_i)}
        {\operatorname{round}(w_i y_i)} + k_i\log\mu_i + (n_i-k_i)\log(1-\mu_i),

    with :math:`n_i = \operatorname{round}(w_i)`, :math:`k_i = \operatorname{round}(w_i y_i)`.

    Links: ``logit`` (canonical), ``probit``, ``cloglog``, ``cauchit``, ``log``.
    """

    name = "binomial"
    _weights_label = "numbers of trials (weights)"

    @staticmethod
    def from_counts(successes: ArrayLike, failures: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Convert a ``cbind(successes, failures)`` response to ``(y, wt)``.

        Returns the proportion :math:`y = s/(s+f)` (0 where there are no trials, as R does)
        and the number of trials :math:`s + f`.

        Raises
        ------
        MixedModelsError
            If any count of successes or failures is negative or not finite.
        """
        _check_real(successes, "binomial successes")
        _check_real(failures, "binomial failures")
        s, f = np.broadcast_arrays(_as_float(successes), _as_float(failures))
        for label, counts in (("successes", s), ("failures", f)):
            if not np.all(np.isfinite(counts)):
                raise MixedModelsError(f"binomial {label} contain NaN or infinite values")
            if np.any(counts < 0):
                raise MixedModelsError(
                    f"binomial {label} must be non-negative; found {np.sum(counts < 0)} negative"
                )
        n = s + f
        # Divide only where there are trials, so 0/0 never happens.
        y = np.divide(s, n, out=np.zeros_like(n), where=n > 0)
        return y, n

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:
        self._check_proportions(y, wt)
        successes = wt * y
        if np.any(np.abs(successes - np.rint(successes)) > 1e-3):
            warnings.warn(
                "non-integer numbers of successes (trials x proportion) in a binomial response",
                stacklevel=3,
            )

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        n = np.rint(wt)
        terms = _binomial_logpmf(np.rint(wt * y), n, mu)
        # R weights each term by wt/m = 1 where m = wt > 0, and drops m = 0.
        return np.where(wt > 0, terms, 0.0)


# -- counts ------------------------------------------------------------------------------


class Poisson(_Counts, _DirectDeviance, Family):
    r"""Counts: :math:`y_i \sim \operatorname{Poisson}(\mu_i)`, no dispersion.

    Log-likelihood (R's ``poisson()$aic``; non-integer :math:`y` is allowed through
    :math:`\log y! = \log\Gamma(y+1)`):

    .. math:: \ell = \sum_i w_i\,[y_i\log\mu_i - \mu_i - \log\Gamma(y_i+1)].

    Links: ``log`` (canonical), ``identity``, ``sqrt``.
    """

    name = "poisson"
    canonical_link = "log"
    allowed_links = ("log", "identity", "sqrt")
    has_dispersion = False
    support = "counts"
    n_dispersion = 0

    def logpdf(self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None) -> FloatArray:
        r""":math:`\log p(y \mid \eta) = y\eta - e^\eta - \log\Gamma(y+1)` (log link only)."""
        eta, y = _log_link_only(self, eta), _as_float(y)
        return y * eta - np.exp(eta) - special.gammaln(y + 1.0)

    def eta_derivatives(
        self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        r"""∂ℓ/∂η = y − μ and ∂²ℓ/∂η² = −μ (log link only)."""
        mu = np.exp(_log_link_only(self, eta))
        return _as_float(y) - mu, -mu

    def sample(self, mu: ArrayLike, rng: np.random.Generator) -> FloatArray:
        """Poisson draws with means ``mu``."""
        return rng.poisson(_as_float(mu)).astype(float)

    def variance(self, mu: ArrayLike) -> FloatArray:
        r""":math:`V(\mu) = \mu`."""
        return np.array(mu, dtype=np.float64)

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`d(y,\mu) = 2[y\log(y/\mu) - (y-\mu)]`, with :math:`0\log 0 = 0`."""
        return 2.0 * _bd0(y, mu)

    @staticmethod
    def _half_deviances(y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r"""y log(y/μ) - (y - μ) by the direct formula (for sums).

        The total deviance is :math:`2\sum_i w_i [y_i\log(y_i/\mu_i) - (y_i-\mu_i)]`.
        """
        y, mu = _as_float(y), _as_float(mu)
        return special.xlogy(y, y / mu) - (y - mu)

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        return wt * (special.xlogy(y, mu) - mu - special.gammaln(y + 1.0))


# -- positive continuous ---------------------------------------------------------------


class _PositiveContinuous(Family):
    """Shared pieces of :class:`Gamma` and :class:`InverseGaussian`: positive responses."""

    has_dispersion = True

    def valid_mu(self, mu: ArrayLike) -> bool:
        return _positive_mean(mu)

    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        """R's start: the response itself (already positive)."""
        return np.array(y, dtype=np.float64)

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:
        bad = y[y <= 0]
        if bad.size:
            raise MixedModelsError(
                f"{self.name} response must be strictly positive; found {bad.size} "
                f"non-positive value(s), e.g. {_first(bad)}"
            )


class Gamma(_PositiveContinuous):
    r"""Positive responses with constant coefficient of variation.

    :math:`y_i \sim \operatorname{Gamma}(\text{shape}=1/\phi,\ \text{scale}=\mu_i\phi)`,
    so :math:`E y_i = \mu_i` and :math:`\operatorname{Var} y_i = \phi\mu_i^2`: the
    dispersion :math:`\phi` is the squared coefficient of variation.  With
    :math:`k = 1/\phi`, the log-likelihood (R's ``Gamma()$aic``, which uses
    :math:`\hat\phi = D/\sum_i w_i`) is

    .. math::
        \ell = \sum_i w_i\,[k\log(k y_i/\mu_i) - k y_i/\mu_i - \log y_i - \log\Gamma(k)].

    Links: ``inverse`` (canonical), ``identity``, ``log``.
    """

    name = "Gamma"
    canonical_link = "inverse"
    allowed_links = ("inverse", "identity", "log")

    def variance(self, mu: ArrayLike) -> FloatArray:
        r""":math:`V(\mu) = \mu^2`."""
        mu = _as_float(mu)
        return mu * mu

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`d(y,\mu) = 2[(y-\mu)/\mu - \log(y/\mu)]`."""
        mu = _as_float(mu)
        # The bracket is _bd0(mu, y) / mu, which stays accurate when y is close to mu.
        return 2.0 * _bd0(mu, y) / mu

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        k = 1.0 / dispersion
        ratio = k * y / mu
        return wt * (k * np.log(ratio) - ratio - np.log(y) - special.gammaln(k))


class InverseGaussian(_PositiveContinuous):
    r"""Positive skewed responses: :math:`y_i \sim \operatorname{IG}(\mu_i, \lambda = 1/\phi)`.

    The density is :math:`f(y) = (2\pi\phi y^3)^{-1/2}\exp\{-(y-\mu)^2/(2\phi\mu^2 y)\}`,
    with :math:`\operatorname{Var} y = \phi\mu^3`.  Since the exponent is
    :math:`-d(y,\mu)/(2\phi)`, the log-likelihood is

    .. math::
        \ell = -\tfrac12\sum_i w_i\,[\log(2\pi\phi) + 3\log y_i + d(y_i,\mu_i)/\phi],

    which at R's :math:`\hat\phi = D/\sum_i w_i` is R's
    :math:`-\tfrac12\{\sum w_i(\log(2\pi\hat\phi)+1) + 3\sum w_i\log y_i\}`.

    Links: ``1/mu^2`` (canonical), ``inverse``, ``identity``, ``log``.
    """

    name = "inverse.gaussian"
    canonical_link = "1/mu^2"
    allowed_links = ("1/mu^2", "inverse", "identity", "log")

    def variance(self, mu: ArrayLike) -> FloatArray:
        r""":math:`V(\mu) = \mu^3`."""
        mu = _as_float(mu)
        return mu * mu * mu

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`d(y,\mu) = (y-\mu)^2/(y\mu^2)`."""
        y, mu = _as_float(y), _as_float(mu)
        r = y - mu
        return r * r / (y * mu * mu)

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        d = self.unit_deviance(y, mu)
        return -0.5 * wt * (np.log(2.0 * np.pi * dispersion) + 3.0 * np.log(y) + d / dispersion)


# -- normal ------------------------------------------------------------------------------


class Gaussian(Family):
    r"""Normal responses: :math:`y_i \sim N(\mu_i, \phi/w_i)`, with :math:`\phi = \sigma^2`.

    The weights are precision weights, so the log-likelihood (R's ``gaussian()$aic``,
    which uses :math:`\hat\phi = D/n`, and ``logLik.lm``) is

    .. math::
        \ell = \sum_{i:\,w_i>0} \log N(y_i;\mu_i,\phi/w_i)
        = -\tfrac12\sum_{i:\,w_i>0}[\log(2\pi\phi/w_i) + w_i(y_i-\mu_i)^2/\phi].

    Observations with zero weight carry no information and are left out.

    Links: ``identity`` (canonical), ``log``, ``inverse``.
    """

    name = "gaussian"
    canonical_link = "identity"
    allowed_links = ("identity", "log", "inverse")
    has_dispersion = True

    def variance(self, mu: ArrayLike) -> FloatArray:
        r""":math:`V(\mu) = 1`."""
        return np.ones_like(_as_float(mu))

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`d(y,\mu) = (y-\mu)^2`."""
        r = _as_float(y) - _as_float(mu)
        return r * r

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        positive = wt > 0
        # Substitute 1 for zero weights so log() stays finite; those terms are dropped anyway.
        w = np.where(positive, wt, 1.0)
        r = y - mu
        terms = -0.5 * (np.log(2.0 * np.pi * dispersion / w) + w * r * r / dispersion)
        return np.where(positive, terms, 0.0)

    def valid_mu(self, mu: ArrayLike) -> bool:
        return bool(np.all(np.isfinite(_as_float(mu))))

    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        """R's start: the response itself, which must suit the link."""
        y = np.array(y, dtype=np.float64)
        if self.link.name == "log" and np.any(y <= 0):
            raise MixedModelsError(
                "gaussian family with log link needs positive responses for starting values"
            )
        if self.link.name == "inverse" and np.any(y == 0):
            raise MixedModelsError(
                "gaussian family with inverse link needs non-zero responses for starting values"
            )
        return y


# -- families outside the exponential family (Laplace fits as glmmTMB's) ----------------


def _log_link_only(family: Family, eta: ArrayLike) -> FloatArray:
    """η as floats; the η-derivatives of these log densities are written for the log link."""
    if family.link.name != "log":
        raise MixedModelsError(
            f"family {family.name!r} with a {family.link.name!r} link has no Laplace fit with a "
            "dispersion or zero inflation here; use the log link"
        )
    return _as_float(eta)


class LikelihoodFamily(Family):
    r"""A response distribution with one extra parameter, fitted by its log density.

    Not an exponential family for an unknown parameter (NB with unknown shape,
    beta), so the model is fitted by a Laplace approximation built from the
    log density itself: :meth:`logpdf` with every constant and its first and
    second derivatives in η (:meth:`eta_derivatives`).  The extra parameter
    (``dispersion``: glmmTMB's ``sigma()``) is estimated on the log scale; an
    instance holds its current value, so a fitted model's family can
    simulate.  ``has_dispersion`` is False: this parameter does not scale the
    random effects or the covariance of β as a GLM's φ does.
    """

    has_dispersion = False
    n_dispersion: ClassVar[int] = 1
    dispersion_name: ClassVar[str] = "dispersion"

    def __init__(self, link: LinkSpec | None = None, dispersion: float | None = None) -> None:
        super().__init__(link)
        self.dispersion = None if dispersion is None else float(dispersion)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r}, dispersion={self.dispersion!r})"

    def _value(self, dispersion: float | None) -> float:
        d = self.dispersion if dispersion is None else dispersion
        if d is None or not (np.isfinite(d) and d > 0):
            raise MixedModelsError(
                f"family {self.name!r} needs a positive {self.dispersion_name}, got {d!r}"
            )
        return float(d)

    @abstractmethod
    def logpdf(self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None) -> FloatArray:
        """log p(yᵢ | ηᵢ, dispersion) per observation, with every constant."""

    @abstractmethod
    def eta_derivatives(
        self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(∂ℓᵢ/∂ηᵢ, ∂²ℓᵢ/∂ηᵢ²) per observation."""

    @abstractmethod
    def sample(self, mu: ArrayLike, rng: np.random.Generator) -> FloatArray:
        """Draws with means ``mu`` at the family's dispersion."""

    def _loglik_terms(
        self, y: FloatArray, mu: FloatArray, wt: FloatArray, dispersion: float
    ) -> FloatArray:
        return wt * self.logpdf(y, self.link.linkfun(mu), self.dispersion)

    def unit_deviance(self, y: ArrayLike, mu: ArrayLike) -> FloatArray:
        r""":math:`2[\ell(y; \mu = y) - \ell(y; \mu)]` at the current dispersion."""
        y, mu = _as_float(y), _as_float(mu)
        at_y = self.link.linkfun(np.maximum(y, _EPS) if self.link.name == "log" else y)
        full = self.logpdf(y, at_y) - self.logpdf(y, self.link.linkfun(mu))
        return np.maximum(2.0 * full, 0.0)


_TRIGAMMA_SERIES = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)
"""Bernoulli numbers B₂ … B₁₄ of ψ'(z) ~ 1/z + 1/2z² + Σₖ B₂ₖ/z²ᵏ⁺¹."""


def _trigamma(x: FloatArray) -> FloatArray:
    """ψ'(x) for x > 0: ψ'(x) = Σⱼ₌₀⁵ 1/(x+j)² + ψ'(x+6), then the asymptotic series at z = x + 6 ≥ 6.

    Relative error below 1e-13 (the next term, 3617/510 z⁻¹⁷, is under 5e-13
    of ψ'(6)); about three times faster than ``scipy.special.polygamma(1, x)``,
    which the Newton iteration of nbinom1 and beta fits calls most.
    """
    acc = 1.0 / (x * x)
    for j in range(1, 6):
        acc += 1.0 / ((x + j) * (x + j))
    iz = 1.0 / (x + 6.0)
    iz2 = iz * iz
    series = _TRIGAMMA_SERIES[-1]
    for b in _TRIGAMMA_SERIES[-2::-1]:
        series = b + iz2 * series
    return acc + iz * (1.0 + iz * (0.5 + iz * series))


class _NegativeBinomial(_Counts, LikelihoodFamily):
    """Shared pieces of the two negative binomial parametrisations: counts, log link."""

    canonical_link = "log"
    allowed_links = ("log",)
    support = "counts"


class NegativeBinomial2(_NegativeBinomial):
    r"""Negative binomial with shape k: :math:`\operatorname{Var} y = \mu + \mu^2/k`.

    glmmTMB's ``nbinom2`` (its ``sigma()`` is k) and lme4's ``glmer.nb``
    (``theta`` = k).  With :math:`\mu = e^\eta`,

    .. math::
        \ell = \log\Gamma(y+k) - \log\Gamma(k) - \log\Gamma(y+1)
               + k\log k + y\eta - (y+k)\log(k+\mu),

    :math:`\partial\ell/\partial\eta = k(y-\mu)/(k+\mu)` and
    :math:`\partial^2\ell/\partial\eta^2 = -k\mu(y+k)/(k+\mu)^2` (the observed
    curvature; Fisher's is :math:`-k\mu/(k+\mu)`).  ``log(k + μ)`` is
    ``logaddexp(log k, η)``, finite for any η.
    """

    name = "nbinom2"
    dispersion_name = "shape k"

    def variance(self, mu: ArrayLike) -> FloatArray:
        mu = _as_float(mu)
        return mu + mu * mu / self._value(None)

    def logpdf(self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None) -> FloatArray:
        k, y, eta = self._value(dispersion), _as_float(y), _log_link_only(self, eta)
        log_k_mu = np.logaddexp(np.log(k), eta)
        return self._counts(y, k) + k * (np.log(k) - log_k_mu) + y * (eta - log_k_mu)

    def _counts(self, y: FloatArray, k: float) -> FloatArray:
        """log Γ(y+k) − log Γ(k) − log Γ(y+1), which does not depend on η.

        The Laplace fit evaluates the log density hundreds of times at one k
        (Newton's iterations for the modes) and the three log-gamma functions
        were most of its cost: the last value is kept with its key, the
        response's bytes and k.
        """
        key = (k, y.shape, hash(y.tobytes()))
        cached = getattr(self, "_counts_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        counts = special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1.0)
        self._counts_cache = (key, counts)
        return counts

    def eta_derivatives(
        self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        k, y, eta = self._value(dispersion), _as_float(y), _log_link_only(self, eta)
        share = special.expit(eta - np.log(k))  # μ/(k + μ), without overflow
        inverse = np.exp(-np.logaddexp(np.log(k), eta))  # 1/(k + μ)
        return k * (y * inverse - share), -(y + k) * share * (1.0 - share)

    def sample(self, mu: ArrayLike, rng: np.random.Generator) -> FloatArray:
        k, mu = self._value(None), _as_float(mu)
        return rng.negative_binomial(k, k / (k + mu)).astype(float)


class NegativeBinomial1(_NegativeBinomial):
    r"""Negative binomial with variance :math:`\mu(1+\phi)` (glmmTMB's ``nbinom1``).

    A negative binomial of size :math:`s = \mu/\phi` and success probability
    :math:`1/(1+\phi)`:

    .. math::
        \ell = \log\Gamma(y+s) - \log\Gamma(s) - \log\Gamma(y+1)
               - s\log(1+\phi) + y[\log\phi - \log(1+\phi)].

    With :math:`\mu = e^\eta`, :math:`ds/d\eta = s`, so with
    :math:`r = \psi(y+s) - \psi(s) - \log(1+\phi)`,
    :math:`\partial\ell/\partial\eta = s r` and
    :math:`\partial^2\ell/\partial\eta^2 = s r + s^2[\psi'(y+s) - \psi'(s)]`.
    """

    name = "nbinom1"
    dispersion_name = "phi"

    def variance(self, mu: ArrayLike) -> FloatArray:
        return _as_float(mu) * (1.0 + self._value(None))

    def logpdf(self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None) -> FloatArray:
        phi, y, eta = self._value(dispersion), _as_float(y), _log_link_only(self, eta)
        s = np.exp(eta - np.log(phi))
        counts = special.gammaln(y + s) - special.gammaln(s) - special.gammaln(y + 1.0)
        return counts - s * np.log1p(phi) + y * (np.log(phi) - np.log1p(phi))

    def eta_derivatives(
        self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        phi, y, eta = self._value(dispersion), _as_float(y), _log_link_only(self, eta)
        s = np.exp(eta - np.log(phi))
        r = special.digamma(y + s) - special.digamma(s) - np.log1p(phi)
        return s * r, s * r + s * s * (_trigamma(y + s) - _trigamma(s))

    def sample(self, mu: ArrayLike, rng: np.random.Generator) -> FloatArray:
        phi, mu = self._value(None), _as_float(mu)
        return rng.negative_binomial(mu / phi, 1.0 / (1.0 + phi)).astype(float)


class Beta(LikelihoodFamily):
    r"""Proportions in (0, 1): :math:`y \sim \operatorname{Beta}(\mu\phi, (1-\mu)\phi)`.

    glmmTMB's ``beta_family()``: mean μ, precision φ (its ``sigma()``),
    :math:`\operatorname{Var} y = \mu(1-\mu)/(1+\phi)`.  With
    :math:`a = \mu\phi`, :math:`b = (1-\mu)\phi` and :math:`m = d\mu/d\eta`
    (logit link: :math:`m = \mu(1-\mu)`, :math:`dm/d\eta = m(1-2\mu)`),

    .. math::
        \ell = \log\Gamma(\phi) - \log\Gamma(a) - \log\Gamma(b) + (a-1)\log y + (b-1)\log(1-y),

    :math:`\partial\ell/\partial\eta = \phi m r` with
    :math:`r = \log\frac{y}{1-y} - \psi(a) + \psi(b)`, and
    :math:`\partial^2\ell/\partial\eta^2 = \phi m(1-2\mu) r - \phi^2 m^2[\psi'(a) + \psi'(b)]`.
    """

    name = "beta"
    canonical_link = "logit"
    allowed_links = ("logit",)
    dispersion_name = "precision phi"

    def variance(self, mu: ArrayLike) -> FloatArray:
        mu = _as_float(mu)
        return mu * (1.0 - mu) / (1.0 + self._value(None))

    def valid_mu(self, mu: ArrayLike) -> bool:
        mu = _as_float(mu)
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def mustart(self, y: ArrayLike, wt: ArrayLike | None = None) -> FloatArray:
        return np.clip(_as_float(y), 1e-4, 1.0 - 1e-4)

    def _check_values(self, y: FloatArray, wt: FloatArray) -> None:
        outside = (y <= 0) | (y >= 1)
        if outside.any():
            raise MixedModelsError(
                f"beta response must lie strictly between 0 and 1; found {int(outside.sum())} "
                f"value(s) outside (0, 1), e.g. {_first(y[outside])}. Transform the response first, "
                "e.g. Smithson and Verkuilen's (y (n - 1) + 0.5) / n, or model the 0s and 1s separately"
            )

    def _parts(self, y, eta, dispersion):
        phi, y, eta = self._value(dispersion), _as_float(y), _as_float(eta)
        mu = special.expit(eta)
        return phi, y, mu, mu * phi, special.expit(-eta) * phi

    def logpdf(self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None) -> FloatArray:
        phi, y, _, a, b = self._parts(y, eta, dispersion)
        dens = special.gammaln(phi) - special.gammaln(a) - special.gammaln(b)
        return dens + (a - 1.0) * np.log(y) + (b - 1.0) * np.log1p(-y)

    def eta_derivatives(
        self, y: ArrayLike, eta: ArrayLike, dispersion: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        phi, y, mu, a, b = self._parts(y, eta, dispersion)
        m = mu * (1.0 - mu)
        r = np.log(y) - np.log1p(-y) - special.digamma(a) + special.digamma(b)
        trig = _trigamma(a) + _trigamma(b)
        return phi * m * r, phi * m * (1.0 - 2.0 * mu) * r - (phi * m) ** 2 * trig

    def sample(self, mu: ArrayLike, rng: np.random.Generator) -> FloatArray:
        phi, mu = self._value(None), _as_float(mu)
        return rng.beta(mu * phi, (1.0 - mu) * phi)


# --------------------------------------------------------------------------------------
# Look-up
# --------------------------------------------------------------------------------------

_FAMILIES: dict[str, type[Family]] = {
    cls.name.lower(): cls
    for cls in (
        Bernoulli,
        Binomial,
        Poisson,
        Gamma,
        InverseGaussian,
        Gaussian,
        NegativeBinomial2,
        NegativeBinomial1,
        Beta,
    )
}

_FAMILY_ALIASES: dict[str, str] = {
    "inverse_gaussian": "inverse.gaussian",
    "inversegaussian": "inverse.gaussian",
    "normal": "gaussian",
    "negative.binomial": "nbinom2",
    "negativebinomial": "nbinom2",
    "negative_binomial": "nbinom2",
    "beta_family": "beta",
}

FamilySpec = str | Family | type[Family]


def get_family(family: FamilySpec, link: LinkSpec | None = None) -> Family:
    """Return a family object from a name, a :class:`Family` instance or class.

    Parameters
    ----------
    family : str or Family or type[Family]
        R's name (``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"Gamma"``,
        ``"inverse.gaussian"``, ``"gaussian"``; case-insensitive, with
        ``"inverse_gaussian"`` and ``"normal"`` accepted), or a family object or class.
    link : str or Link or type[Link], optional
        Overrides the link; by default a name or class gets its canonical link and an
        instance keeps its own.

    Returns
    -------
    Family

    Raises
    ------
    MixedModelsError
        For an unknown family name (the message lists the known ones), an object that is
        not a family, or a link the family does not allow.
    """
    if isinstance(family, Family):
        return family if link is None else type(family)(link=link)
    if isinstance(family, type) and issubclass(family, tuple(_FAMILIES.values())):
        return family(link=link)
    if isinstance(family, str):
        key = family.strip().lower()
        key = _FAMILY_ALIASES.get(key, key)
        if key in _FAMILIES:
            return _FAMILIES[key](link=link)
        known = ", ".join(repr(cls.name) for cls in _FAMILIES.values())
        raise MixedModelsError(f"unknown family {family!r}; known families are {known}")
    raise MixedModelsError(
        f"family must be a family name or a Family object, not {type(family).__name__}"
    )
