"""Heritability of binary and count traits on the latent (liability) scale, through the GLMM.

The trait is modelled as a generalised linear mixed model with a kinship
random effect,

    g(E[y | g, e]) = Xβ + g (+ e),   g ~ N(0, σg² K),

fitted by :class:`~mixedmodels.glmm.GeneralizedLinearMixedModel` with
``covariance={"iid": K}`` (Laplace approximation).  Heritability on the latent
scale divides σg² by the total latent variance:

* Bernoulli / binomial: h² = σg² / (σg² + σ²_link), with the variance of the
  link's standard error distribution, σ²_link = 1 (probit), π²/3 (logit),
  π²/6 (cloglog) — the liability threshold model for probit.
  With one binary observation per individual the Laplace approximation is
  known to underestimate σg² (it approximates each individual's integral
  from a single 0/1 value), so a second method is offered:
* ``method="threshold"`` (binary traits): h² on the observed 0/1 scale by REML
  with the eigendecomposition path (:func:`~mixedmodels.genetics.heritability`),
  transformed to the liability scale of the threshold model (Dempster and
  Lerner; Lee et al. 2011, as GCTA does):
  h²_l = h²_o · k(1-k)/z² · k(1-k)/(p(1-p)), with k the population prevalence,
  p the sample's case fraction, and z the standard normal density at the
  threshold Φ⁻¹(1 - k).
* Poisson (log link): an observation-level random effect e ~ N(0, σe² I) takes
  the overdispersion (as limix's Poisson model does), and h² = σg² / (σg² + σe²).
  ``h2_observation`` also adds the Poisson distribution's own latent variance
  log(1 + 1/λ), with λ the mean count (Nakagawa & Schielzeth's approximation),
  for a heritability on the scale of the observed counts' logarithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixedmodels.errors import DataError
from mixedmodels.families import Bernoulli, Binomial, Poisson, get_family
from mixedmodels.genetics.ep import fit_probit_ep
from mixedmodels.genetics.poisson_ep import fit_poisson_ep
from mixedmodels.genio.samples import labels_of, positions

__all__ = [
    "LINK_VARIANCE",
    "LatentHeritability",
    "ep_heritability",
    "latent_heritability",
    "threshold_heritability",
]

LINK_VARIANCE = {"probit": 1.0, "logit": np.pi**2 / 3, "cloglog": np.pi**2 / 6}
"""Variance of the standard error distribution behind each binary link."""


#: The method of each non-Gaussian family when none is given: the less biased in
#: benchmarks/binary_heritability.py and benchmarks/poisson_heritability.py.
DEFAULT_METHOD = {"bernoulli": "ep", "poisson": "ep"}


@dataclass(frozen=True)
class LatentHeritability:
    """Latent-scale heritability of one non-Gaussian trait.

    Attributes
    ----------
    h2 : float
        Latent-scale heritability (see the module docstring).
    sigma2_g : float
        Genetic variance on the linear-predictor scale.
    sigma2_residual : float
        The latent residual variance used in the denominator.
    family, link : str
    model : GeneralizedLinearMixedModel or HeritabilityResult
        The fitted model (the observed-scale REML fit for the threshold method).
    h2_observation : float or None
        Poisson only: h² with the Poisson variance log(1 + 1/λ) added.
    boundary : bool
        True when σg² is estimated as 0.
    """

    h2: float
    sigma2_g: float
    sigma2_residual: float
    family: str
    link: str
    model: object
    h2_observation: float | None = None

    @property
    def boundary(self) -> bool:
        return self.sigma2_g == 0.0

    def to_frame(self) -> pd.DataFrame:
        row = {
            "h2": self.h2,
            "sigma2_g": self.sigma2_g,
            "sigma2_residual": self.sigma2_residual,
            "family": self.family,
            "link": self.link,
            "boundary": self.boundary,
            "h2_observation": self.h2_observation,
        }
        return pd.DataFrame([row])

    def __repr__(self) -> str:
        edge = " (boundary: σg² = 0)" if self.boundary else ""
        extra = (
            f", h2 with the Poisson variance = {self.h2_observation:.4f}"
            if self.h2_observation is not None
            else ""
        )
        return (
            f"Latent-scale heritability ({self.family}, {self.link} link): h2 = {self.h2:.4f}{edge}{extra}\n"
            f"  sigma2_g = {self.sigma2_g:.4g}, latent residual variance = {self.sigma2_residual:.4g}"
        )


def _paired_kinship(y, K, assume_same_order: bool):
    """``K`` with its rows in the order of ``y``: by sample ID when both are labelled.

    A labelled ``y`` with an unlabelled ``K`` is refused unless ``assume_same_order``
    (see :mod:`mixedmodels.genio.samples`).
    """
    have = labels_of(K) if isinstance(K, pd.DataFrame) else None
    n = np.shape(K)[0] if np.ndim(K) == 2 else 0
    rows = positions(labels_of(y), have, n, "the kinship K", assume_same_order=assume_same_order)
    return K if rows is None else K.iloc[rows, rows]


def _frame(y, K, X, trials) -> tuple[pd.DataFrame, str, pd.DataFrame | np.ndarray]:
    y = np.asarray(y, dtype=float)
    n = len(y)
    if np.shape(K) != (n, n):
        raise DataError(f"K must be {n} x {n} for the {n} values of y, got shape {np.shape(K)}")
    ids = list(K.index) if isinstance(K, pd.DataFrame) else [f"i{j}" for j in range(n)]
    X = np.ones((n, 1)) if X is None else np.asarray(X, dtype=float).reshape(n, -1)
    cols = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    df = pd.DataFrame(
        {
            "y": y,
            "iid": pd.Categorical([str(i) for i in ids], categories=[str(i) for i in ids]),
            **cols,
        }
    )
    fixed = " + ".join(["0", *cols])
    if trials is not None:
        df["trials"] = np.asarray(trials, dtype=float)
    Kdf = pd.DataFrame(
        np.asarray(K, dtype=float), index=[str(i) for i in ids], columns=[str(i) for i in ids]
    )
    return df, fixed, Kdf


def ep_heritability(y, K, X=None, *, family: str = "bernoulli", link: str | None = None):
    """Latent-scale h² by expectation propagation: probit 0/1 (:mod:`.ep`) or log-link counts.

    Counts (:mod:`.poisson_ep`) have ``Σ = σg²K + σe²I`` and ``h² = σg²/(σg² + σe²)``;
    ``h2_observation`` adds ``log(1 + 1/λ)`` as for the Laplace fit.
    """
    expected = {"bernoulli": "probit", "poisson": "log"}
    if family not in expected or (link or expected[family]) != expected[family]:
        raise DataError(
            f"method='ep' fits a bernoulli trait with a probit link or a poisson trait with a "
            f"log link, not {family!r} with {link!r}; use method='laplace' for other families"
        )
    values = np.asarray(y, dtype=float)
    n = values.size
    if np.shape(K) != (n, n):
        raise DataError(f"K must be {n} x {n} for the {n} values of y, got shape {np.shape(K)}")
    Xv = np.ones((n, 1)) if X is None else np.asarray(X, dtype=float).reshape(n, -1)
    if family == "poisson":
        return _poisson_ep(values, Xv, np.asarray(K, dtype=float))
    fit = fit_probit_ep(values, Xv, np.asarray(K, dtype=float))
    s2g = fit.sigma2_g if fit.sigma2_g > 1e-6 else 0.0
    return LatentHeritability(s2g / (s2g + 1.0), s2g, 1.0, "bernoulli", "probit", fit)


def _poisson_ep(y: np.ndarray, X: np.ndarray, K: np.ndarray) -> LatentHeritability:
    fit = fit_poisson_ep(y, X, K)
    s2g = fit.sigma2_g if fit.sigma2_g > 1e-6 else 0.0  # the lower bound e^-9 means 0
    s2e = fit.sigma2_e
    h2_obs = s2g / (s2g + s2e + np.log1p(1.0 / float(y.mean())))
    return LatentHeritability(s2g / (s2g + s2e), s2g, s2e, "poisson", "log", fit, h2_obs)


def threshold_heritability(
    y, K, X=None, *, prevalence: float | None = None, assume_same_order: bool = False
) -> LatentHeritability:
    """Liability-scale h² of a 0/1 trait from REML on the observed scale (see the module docstring)."""
    from scipy.stats import norm

    from mixedmodels.genetics.heritability import heritability

    K = _paired_kinship(y, K, assume_same_order)
    y = np.asarray(y, dtype=float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("the threshold method needs a 0/1 trait")
    p = float(y.mean()) if y.size else 0.0
    k = p if prevalence is None else _prevalence(prevalence)
    if not 0 < p < 1:
        raise DataError(f"cases and controls are both needed (case fraction {p:.3g})")
    fit = heritability(y, X, np.asarray(K, dtype=float), assume_same_order=True)
    z = norm.pdf(norm.ppf(1.0 - k))
    h2 = fit.h2 * k * (1 - k) / z**2 * k * (1 - k) / (p * (1 - p))
    return LatentHeritability(float(h2), fit.sigma2_g, fit.sigma2_e, "bernoulli", "threshold", fit)


def latent_heritability(
    y,
    K,
    X=None,
    *,
    family: str = "bernoulli",
    link: str | None = None,
    trials=None,
    method: str | None = None,
    prevalence: float | None = None,
    assume_same_order: bool = False,
) -> LatentHeritability:
    """Heritability of a binary, binomial or count trait on the latent scale.

    Parameters
    ----------
    y : array (n,)
        0/1 outcomes (bernoulli), proportions with ``trials`` (binomial), or counts (poisson).
    K : array or DataFrame (n, n)
        Kinship of the n individuals.  A DataFrame (labelled by sample ID, as
        :func:`kinship` returns) is paired with a labelled ``y`` by ID; an array
        with a labelled ``y`` needs ``assume_same_order=True``.
    X : array (n, p), optional
        Covariates including the intercept column; an intercept only if omitted.
    family : {"bernoulli", "binomial", "poisson"}
    link : str, optional
        Binary traits: ``"probit"`` (default: the liability threshold model), ``"logit"`` or
        ``"cloglog"``; Poisson: ``"log"``.
    trials : array (n,), optional
        Numbers of trials of a binomial trait.
    method : {"ep", "glmm", "laplace", "threshold"}, optional
        By default :data:`DEFAULT_METHOD` of the family (``"ep"`` for bernoulli and poisson
        traits, the less biased in the benchmarks), else ``"laplace"``.
        ``"glmm"`` / ``"laplace"``: the Laplace GLMM with a kinship term (any of the families);
        ``"ep"``: expectation propagation, σg² (and σe² for counts) and β by
        maximum of the EP marginal likelihood (probit 0/1 traits, :mod:`.ep`;
        log-link counts, :mod:`.poisson_ep`);
        ``"threshold"``: observed-scale REML transformed to the liability scale
        (0/1 traits; see the module docstring).
    prevalence : float, optional
        Population prevalence for ``"threshold"`` (default: the sample's case fraction).
    assume_same_order : bool
        Pair a labelled ``y`` with an unlabelled (array) ``K`` by position.
    """
    K = _paired_kinship(y, K, assume_same_order)
    if method is None:
        method = DEFAULT_METHOD.get(family, "laplace")
    if method == "threshold":
        return threshold_heritability(y, K, X, prevalence=prevalence, assume_same_order=True)
    if prevalence is not None:
        raise DataError(
            f"prevalence= is used by method='threshold' only; method={method!r} estimates h² on "
            "the liability scale of the sample as it is"
        )
    if method == "ep":
        return ep_heritability(y, K, X, family=family, link=link)
    if method == "agq":
        raise DataError(
            "method='agq' integrates one scalar random effect per group on its own; a kinship "
            "couples all individuals' effects, so quadrature does not apply: use 'ep' "
            "(expectation propagation) or 'laplace'"
        )
    if method not in ("glmm", "laplace"):
        raise DataError(
            f"unknown method {method!r}; use 'ep', 'laplace' (or 'glmm') or 'threshold'"
        )
    fam = get_family(family, link or ("probit" if family in ("bernoulli", "binomial") else None))
    if not isinstance(fam, (Bernoulli, Binomial, Poisson)):
        raise DataError(
            f"latent-scale heritability is for bernoulli, binomial or poisson traits, not {fam.name!r}"
        )
    from mixedmodels.glmm import GeneralizedLinearMixedModel

    df, fixed, Kdf = _frame(y, K, X, trials)
    if isinstance(fam, Poisson):
        return _poisson(df, fixed, Kdf, fam)
    if fam.link.name not in LINK_VARIANCE:
        raise DataError(
            f"latent-scale heritability needs a probit, logit or cloglog link, not {fam.link.name!r}"
        )
    weights = "trials" if trials is not None else None
    m = GeneralizedLinearMixedModel(
        f"y ~ {fixed} + (1|iid)", df, family=fam, weights=weights, covariance={"iid": Kdf}
    ).fit()
    s2g = float(m.theta[0] ** 2)
    s2e = LINK_VARIANCE[fam.link.name]
    return LatentHeritability(s2g / (s2g + s2e), s2g, s2e, fam.name, fam.link.name, m)


def _poisson(df: pd.DataFrame, fixed: str, Kdf: pd.DataFrame, fam) -> LatentHeritability:
    from mixedmodels.glmm import GeneralizedLinearMixedModel

    df = df.assign(obs=pd.Categorical(np.arange(len(df))))
    m = GeneralizedLinearMixedModel(
        f"y ~ {fixed} + (1|iid) + (1|obs)", df, family=fam, covariance={"iid": Kdf}
    ).fit()
    names = m.theta_names
    s2g = float(m.theta[[i for i, n in enumerate(names) if n.startswith("iid.")][0]] ** 2)
    s2e = float(m.theta[[i for i, n in enumerate(names) if n.startswith("obs.")][0]] ** 2)
    total = s2g + s2e
    h2 = s2g / total if total > 0 else 0.0
    lam = float(np.mean(df["y"]))  # the mean count estimates λ = E[y]
    h2_obs = s2g / (total + np.log1p(1.0 / lam))
    return LatentHeritability(h2, s2g, s2e, fam.name, fam.link.name, m, h2_obs)


def _prevalence(value: object) -> float:
    """The population prevalence: a number strictly between 0 and 1."""
    try:
        k = float(value)
    except (TypeError, ValueError):
        k = float("nan")
    if not 0 < k < 1:
        raise DataError(f"prevalence must be a proportion strictly between 0 and 1, not {value!r}")
    return k
