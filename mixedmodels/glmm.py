"""Generalised linear mixed-effects models.

    g(E[y | b]) = η = o + Xβ + Zb,   b = Λθ u,   u ~ N(0, I),

with y | b from an exponential family.  The model holds a
:class:`~mixedmodels.lmm.LinearMixedModel` whose blocked Cholesky factor,
re-weighted by PIRLS (:mod:`mixedmodels.pirls`), gives the conditional modes
ũ and log|L_Z|.

Objectives, as lme4 reports them:

* Laplace (``nagq=1``):  -2 log L ≈ -2 Σ log p(yᵢ | μ̃ᵢ) + ‖ũ‖² + log|L_Z|²,
  with every constant of the family's log density (binomial coefficients,
  log y! for Poisson).
* Adaptive Gauss-Hermite quadrature (``nagq>1``, one scalar term): for each
  level j with mode ũⱼ and conditional sd sⱼ = 1/L_jj,

      -2 log L ≈ Σⱼ [ D⁰ⱼ - 2 log(sⱼ Σₖ ωₖ exp(-(Dⱼ(ũⱼ + sⱼzₖ) - D⁰ⱼ)/2 + zₖ²/2)) ],

  where Dⱼ(u) = Σ_{i in j} wᵢ d(yᵢ, μᵢ) + u² uses unit deviances (not the
  full log density) and (zₖ, ωₖ) is the Gauss-Hermite rule for the standard
  normal.  Because deviances omit the saturated log-likelihood, this value
  is on a different scale from the Laplace value (lme4 does the same).
* Fast fit (``fast=True``, lme4's nAGQ=0): θ optimised with β updated inside
  PIRLS; the reported objective is the Laplace value at the result.

Families fitted by their log density (negative binomial ``nbinom2`` and
``nbinom1``, ``beta``) and zero-inflated counts (``ziformula=``) are fitted
as glmmTMB fits them: the modes by Newton's method on the log density
(:mod:`mixedmodels.laplace`), the Laplace value with the observed curvature,
and (θ, β, β_zi, log dispersion) jointly; the standard errors come from the
Hessian of that objective.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .blocks import csr_times, level_indicator
from .convergence import ensure_converged
from .errors import (
    EVALUATION_FAILURES,
    ConvergenceWarning,
    DataError,
    MixedModelsError,
    SingularFitWarning,
)
from .families import (
    Bernoulli,
    Binomial,
    Family,
    Gaussian,
    IdentityLink,
    LikelihoodFamily,
    NegativeBinomial1,
    NegativeBinomial2,
    Poisson,
    get_family,
)
from .inference.mixin import InferenceMixin  # light: its methods import their modules when called
from .laplace import (
    ZLambda,
    gradient_available,
    laplace_gradient,
    log_density,
    newton_modes,
    parameter_covariance,
)
from .lmm import LinearMixedModel, data_index, new_response, r_spelling, reject_unknown
from .model import MixedModel
from .optimize import guarded, minimize, record_search
from .optsummary import OptSummary
from .pirls import glm_start, pirls
from .quadrature import gauss_hermite
from .results import conditional_variances, ranef_frames, split_b
from .separation import check_constant_response, check_separation
from .structure import build_structure, lme4_blocks
from .threads import blas_threads_for
from .varcorr import term_covariances, varcorr_frame, varcorr_long
from .zeroinfl import ZeroInflation, zero_inflation, zi_probability

__all__ = ["GeneralizedLinearMixedModel"]


def glm_response(
    response: Any, family: Family, prior: np.ndarray | None, expr: str
) -> tuple[np.ndarray, np.ndarray]:
    """Response y and weights for the family: proportions and trials for binomial models.

    Accepts ``cbind(successes, failures)`` (binomial), a two-level factor or
    boolean (second level / True = success), or numbers.
    """
    n = len(response)
    prior = np.ones(n) if prior is None else prior
    if isinstance(response, np.ndarray) and response.ndim == 2:
        if response.shape[1] != 2 or not isinstance(family, Binomial):
            raise DataError(f"a two-column response {expr!r} (cbind) needs the binomial family")
        y, trials = Binomial.from_counts(response[:, 0], response[:, 1])
        return y, trials * prior
    if isinstance(response, pd.Series) and isinstance(response.dtype, pd.CategoricalDtype):
        if not isinstance(family, (Binomial, Bernoulli)):
            raise DataError(
                f"the response {expr!r} is categorical; only binomial/bernoulli families accept it"
            )
        codes = response.cat.remove_unused_categories().cat.codes.to_numpy()
        return (codes > 0).astype(float), prior
    arr = np.asarray(response)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(
            f"the response {expr!r} must be numeric, boolean or a two-level factor, got {arr.dtype}"
        )
    return arr.astype(float), prior


@dataclass(frozen=True, eq=False)
class GlmResponse:
    """The response of a generalised model and what follows from it alone.

    A new response (``refit(y)``, a bootstrap replicate) is a new object, so
    nothing derived from the old one can survive it.
    """

    family: Family
    y: np.ndarray
    wt: np.ndarray

    @cached_property
    def loglik_constant(self) -> float:
        """-2 log p(y | μ) - Σ wᵢ d(yᵢ, μᵢ), which does not depend on μ (no dispersion).

        Evaluated at the family's starting means; only meaningful for
        families without a dispersion parameter.
        """
        mu0 = self.family.mustart(self.y, self.wt)
        return float(
            -2.0 * self.family.loglik(self.y, mu0, self.wt)
            - self.family.deviance(self.y, mu0, self.wt)
        )


class _once:
    """A property computed on first access and then stored on the instance.

    functools.cached_property without its lock (Python 3.11 takes one on
    every first access, and PIRLS makes several per step).
    """

    def __init__(self, func):
        self.func, self.name = func, func.__name__
        self.__doc__ = func.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


class WorkingState:
    """η and what follows from (response, η): μ, unit deviances, working weights and response."""

    def __init__(self, response: GlmResponse, eta: np.ndarray, offset: np.ndarray):
        self.response, self.eta, self.offset = response, eta, offset

    @_once
    def _inverse(self) -> tuple[np.ndarray, np.ndarray]:
        """(μ, dμ/dη) at η, computed together (nearly every state PIRLS makes needs both)."""
        return self.response.family.link.inverse_and_slope(self.eta)

    @_once
    def mu(self) -> np.ndarray:
        return self._inverse[0]

    @_once
    def deviance(self) -> float:
        """Σ wᵢ d(yᵢ, μᵢ)."""
        r = self.response
        return float(r.family.deviance(r.y, self.mu, r.wt))

    @_once
    def mu_eta(self) -> np.ndarray:
        """dμ/dη at η (both the working weights and the working response need it)."""
        return self._inverse[1]

    @_once
    def working_weights(self) -> np.ndarray:
        r = self.response
        return r.family.working_weights(self.mu, self.eta, r.wt, mu_eta=self.mu_eta)

    @_once
    def working_response(self) -> np.ndarray:
        """zᵢ = ηᵢ - oᵢ + (yᵢ - μᵢ) / (dμ/dη)ᵢ."""
        return self.eta - self.offset + (self.response.y - self.mu) / self.mu_eta


class _BestEvaluation:
    """An objective of the parameters (θ, or θ and β) that keeps the modes of its best evaluation.

    Moving the model back to the best point (:meth:`restore`) then needs no
    PIRLS: θ, β and u are set as that evaluation left them, and L_Z is
    factored again at their working weights, which gives the same numbers
    (the same arithmetic on the same values).  Failed evaluations (an
    exception) and values that are not finite are never the best.
    """

    def __init__(self, model: GeneralizedLinearMixedModel, evaluate):
        self.model, self.evaluate = model, evaluate
        self.value, self.x, self.modes = np.inf, None, None

    def __call__(self, x: np.ndarray) -> float:
        value = self.evaluate(x)
        if value < self.value and math.isfinite(value):
            m = self.model
            self.value, self.x = value, np.array(x, dtype=float)
            self.modes = (m.theta.copy(), m.beta.copy(), m.u.copy())
        return value

    def restore(self, x: np.ndarray) -> bool:
        """Move the model to its state after the evaluation at ``x``, if that was the best; else False."""
        if self.x is None or not np.array_equal(self.x, x):
            return False
        m = self.model
        theta, beta, u = self.modes
        m.set_theta(theta)
        m.set_modes(beta.copy(), u.copy())
        m.lmm.system.factor_Z_at_weights(np.sqrt(m.state.working_weights))
        return True


class GeneralizedLinearMixedModel(InferenceMixin, MixedModel):
    """A generalised linear mixed-effects model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        e.g. ``"cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"``;
        ``offset(expr)`` terms are allowed.
    data : DataFrame
        Not modified.
    family : str or Family
        ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"gamma"``,
        ``"inversegaussian"``, ``"gaussian"`` (with a non-identity link),
        ``"nbinom2"``, ``"nbinom1"``, ``"beta"`` or an object from
        :mod:`mixedmodels.families`.
    link : str or Link, optional
        Defaults to the family's canonical link.
    weights : str or array, optional
        Prior weights (for a binomial proportion response: the numbers of trials).
    offset : str or array, optional
        Added to the linear predictor (with any ``offset()`` in the formula).
    contrasts, covariance : dict, optional
        As for :class:`~mixedmodels.lmm.LinearMixedModel`.
    ziformula : str, optional
        Zero-inflation model for count families (``"~ 1"``, ``"~ spp"``; fixed
        effects only, logit link), as glmmTMB's; ``"~0"`` or None: none.

    Families ``"nbinom2"`` (``"negative.binomial"``), ``"nbinom1"`` and
    ``"beta"``, and any zero-inflated model, are fitted by the Laplace
    approximation on their log density as glmmTMB fits them
    (:mod:`mixedmodels.laplace`); ``dispersion`` is then the family's extra
    parameter and ``coeftable(component="zi" | "disp")`` the other parts.
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        family: Any,
        link: Any = None,
        weights: Any = None,
        offset: Any = None,
        contrasts: Mapping[str, Any] | None = None,
        covariance: Mapping[str, Any] | None = None,
        sparse: bool | None = None,
        ziformula: str | None = None,
        **kwargs: Any,
    ):
        reject_unknown(kwargs, "GeneralizedLinearMixedModel()")
        if isinstance(ziformula, str) and ziformula.replace(" ", "") in ("~0", "0"):
            ziformula = None  # glmmTMB's spelling of "no zero inflation"
        self.record_call(
            formula,
            data,
            family=family,
            link=link,
            weights=weights,
            offset=offset,
            contrasts=contrasts,
            covariance=covariance,
            sparse=sparse,
            ziformula=ziformula,
        )
        self._family = (
            get_family(family, link)
            if not isinstance(family, Family) or link is not None
            else family
        )
        self.extended = isinstance(self._family, LikelihoodFamily) or ziformula is not None
        if self.extended:
            self._family = _own_family(self._family, ziformula)
        if isinstance(self._family, Gaussian) and isinstance(self._family.link, IdentityLink):
            raise MixedModelsError(
                "a Gaussian model with the identity link is a linear mixed model: use "
                "mm.LinearMixedModel(formula, data) (lme4's glmer hands this case to lmer too)"
            )
        structure = build_structure(
            formula,
            data,
            weights=weights,
            offset=offset,
            contrasts=contrasts,
            strict_levels=False,
            covariance=covariance,
        )
        y, wt = glm_response(
            structure.response, self._family, structure.weights, structure.formula.response
        )
        if isinstance(self._family, Bernoulli) and structure.weights is None:
            wt = np.ones(len(y))
        self._family.check_response(y, wt)
        self.structure = structure
        self.formula = structure.formula.text
        self.obs_index = data_index(data, structure)
        self.lmm = LinearMixedModel.from_structure(
            replace(structure, weights=None, offset=None), np.zeros(structure.nobs), sparse=sparse
        )
        self.X = structure.fe.X
        self.zi: ZeroInflation | None = None
        if ziformula is not None:
            rows = pd.DataFrame(data).iloc[structure.frame.rows]  # positions: the index may repeat
            self.zi = zero_inflation(ziformula, rows, y, contrasts)
        self._set_response(GlmResponse(self._family, y, wt))
        check_constant_response(y, self._family, structure.formula.response)
        if self.extended:
            self._init_extended()
            return
        check_separation(
            self.X,
            y,
            structure.fe.coefnames,
            self._family,
            wt,
            mu=self._family.link.linkinv(self.X @ self.beta0 + self.offset),
        )
        self.beta = self.beta0.copy()
        self.u = np.zeros(sum(r.q for r in self.reterms))
        self.fast, self.nagq = False, 1
        self.optsum = OptSummary(self.lmm.optsum.initial, self.lmm.lowerbd)
        self.optsum_fast: OptSummary | None = None
        self._state: WorkingState | None = None
        self._state_key: tuple | None = None
        self._fixed: tuple[tuple, np.ndarray] | None = None

    def _set_response(self, response: GlmResponse) -> None:
        self.resp = response
        start = _start_family(self._family)
        with blas_threads_for(self.lmm.system.dense_dim):  # spinning BLAS threads: 20x slower lstsq
            self.beta0 = glm_start(start, self.X, response.y, response.wt, self.offset)

    def _init_extended(self) -> None:
        """State of a model fitted by its log density (see :mod:`mixedmodels.laplace`)."""
        _check_no_known_covariance(self.reterms, self.family, self.zi is not None)
        self.beta = self.beta0.copy()
        self.u = np.zeros(sum(r.q for r in self.reterms))
        self.beta_zi = np.zeros(0 if self.zi is None else self.zi.X.shape[1])
        self.zlambda = ZLambda(self.reterms)
        self.laplace_factor = None
        self.fast, self.nagq = False, 1
        self.optsum = OptSummary(self.lmm.optsum.initial, self.lmm.lowerbd)
        self.optsum_fast: OptSummary | None = None
        self._state: WorkingState | None = None
        self._state_key: tuple | None = None
        self._fixed: tuple[tuple, np.ndarray] | None = None
        self._covariance: tuple[bytes, np.ndarray] | None = None

    _FIT_OPTIONS = ("fast", "nagq", "nAGQ")

    def fit_options(self) -> dict[str, Any]:
        return {"fast": self.fast, "nagq": self.nagq}

    def _after_load(self) -> None:
        if self.is_fitted:
            self.refactor()

    # ---- what the model is -------------------------------------------------------------
    @property
    def family(self) -> Family:
        return self._family

    @property
    def criterion(self) -> str:
        if self.nagq > 1:
            return f"AGQ(nAGQ={self.nagq})"
        return "Laplace (fast fit)" if self.fast else "Laplace"

    @property
    def y(self) -> np.ndarray:
        """The response on the family's scale (proportions for binomial counts)."""
        return self.resp.y

    @property
    def wt(self) -> np.ndarray:
        """Prior weights (numbers of trials for binomial proportions)."""
        return self.resp.wt

    @property
    def response(self) -> np.ndarray:
        return self.resp.y

    @property
    def prior_weights(self) -> np.ndarray:
        return self.resp.wt

    # ---- θ ---------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return self.lmm.theta

    @property
    def lowerbd(self) -> np.ndarray:
        return self.lmm.lowerbd

    @property
    def theta_names(self) -> list[str]:
        return self.lmm.theta_names

    def set_theta(self, theta: np.ndarray) -> GeneralizedLinearMixedModel:
        self.lmm.set_theta(theta)
        return self

    def set_modes(self, beta: np.ndarray, u: np.ndarray) -> None:
        """Set β and u (no refactorisation)."""
        self.beta, self.u = beta, u

    # ---- the working state (derived from the response, β, u and θ) ------------------------
    @property
    def state(self) -> WorkingState:
        """η = o + Xβ + ZΛu and what follows from it, for the current response, β, u and θ."""
        key = self._state_key_now()
        if self._state_key != key:
            self._state = WorkingState(self.resp, self._fixed_eta() + self._Zb(), self.offset)
            self._state_key = key
        return self._state

    def _state_key_now(self) -> tuple:
        """What the cached state depends on: the response, β, u and every term's λ."""
        # ZΛu depends on θ only through the terms' λ: their bytes key it without
        # gathering θ
        lambdas = b"".join([r.lambda_.tobytes() for r in self.reterms])
        return (id(self.resp), self.beta.tobytes(), self.u.tobytes(), lambdas)

    def working_state_at(
        self, beta: np.ndarray, u: np.ndarray, fixed: np.ndarray | None = None
    ) -> WorkingState:
        """The working state at (β, u) and the current θ, leaving the model and its cache alone.

        PIRLS evaluates its trial steps with it (no key of β, u and λ per
        trial) and hands the one it keeps to :meth:`adopt_state`.  ``fixed``
        may pass o + Xβ when the caller has it (β fixed in PIRLS).  η is the
        same sum as :attr:`state`'s, so the same numbers.
        """
        if fixed is None:
            fixed = self.offset + self.X @ beta
        return WorkingState(self.resp, fixed + self._Zb(u), self.offset)

    def adopt_state(self, beta: np.ndarray, u: np.ndarray, state: WorkingState) -> None:
        """Move to (β, u) with ``state`` (:meth:`working_state_at` of them, at the current θ) cached.

        The arrays are the model's from now on: the caller must not change them.
        """
        self.beta, self.u = beta, u
        self._state, self._state_key = state, self._state_key_now()

    def _fixed_eta(self) -> np.ndarray:
        """o + Xβ, kept for the current β (PIRLS re-evaluates η many times per β)."""
        key = self.beta.tobytes()
        if self._fixed is None or self._fixed[0] != key:
            self._fixed = (key, self.offset + self.X @ self.beta)
        return self._fixed[1]

    def _Zb(self, u: np.ndarray | None = None) -> np.ndarray:
        """ZΛu (of the model's u unless given), term by term (PIRLS evaluates it at every step)."""
        u = self.u if u is None else u
        out, start = None, 0
        for r in self.reterms:
            part = r.Zb(u[start : start + r.q])
            start += r.q
            if out is None:
                out = part
            else:
                out += part
        return np.zeros(self.nobs) if out is None else out

    @property
    def eta(self) -> np.ndarray:
        """Linear predictor o + Xβ + ZΛu."""
        return self.state.eta

    @property
    def mu(self) -> np.ndarray:
        """Conditional mean g⁻¹(η)."""
        return self.state.mu

    def conditional_deviance(self) -> float:
        """Σ wᵢ d(yᵢ, μᵢ) at the current β, u."""
        return self.state.deviance

    def penalized_deviance(self) -> float:
        """Σ wᵢ d(yᵢ, μᵢ) + ‖u‖² at the current β, u."""
        return self.conditional_deviance() + float(self.u @ self.u)

    # ---- objectives --------------------------------------------------------------------
    def _aic_dispersion(self) -> float:
        """φ plugged into the log density by the objective: Σ wᵢ d(yᵢ, μᵢ) / Σ wᵢ (R's ``family$aic``)."""
        if not self.family.has_dispersion:
            return 1.0
        return self.conditional_deviance() / float(self.wt.sum())

    def _minus2_loglik(self) -> float:
        """-2 Σ log p(yᵢ | μᵢ) with all constants, at the current modes."""
        if self.family.has_dispersion:
            # lme4 adds R's aic() penalty of 2 for the dispersion parameter
            return -2.0 * self.family.loglik(self.y, self.mu, self.wt, self._aic_dispersion()) + 2.0
        return self.conditional_deviance() + self.resp.loglik_constant

    def laplace_objective(self) -> float:
        """-2 log-likelihood by the Laplace approximation at the current modes and L."""
        if self.extended:  # the log density and the observed-curvature factor of laplace.py
            minus2 = -2.0 * float(log_density(self, self.eta).sum())
            return minus2 + float(self.u @ self.u) + self.laplace_factor.logdet
        return self._minus2_loglik() + float(self.u @ self.u) + 2.0 * self.lmm.system.logdet_Z()

    def agq_objective(self, nagq: int) -> float:
        """lme4's adaptive Gauss-Hermite deviance for one scalar term (see module docstring).

        All K nodes are evaluated at once: η is an n x K matrix.
        """
        remat = self.reterms[0]
        rule = gauss_hermite(nagq)
        sd = 1.0 / self.lmm.system.F1.L11
        U = self.u[:, None] + sd[:, None] * rule.z[None, :]  # nlevels x K
        zlam = (remat.z[:, 0] * remat.lambda_[0, 0])[:, None]
        eta = self._fixed_eta()[:, None] + zlam * U[remat.refs]
        # only per-level sums of the unit deviances are used: the direct formula will do
        dev = self.family.deviance_terms(
            self.y[:, None], self.family.link.linkinv(eta), self.wt[:, None]
        )
        D = self._per_level(dev) + U * U  # per level and node
        D0 = self._per_level(self.family.deviance_terms(self.y, self.mu, self.wt)) + self.u * self.u
        with np.errstate(over="ignore"):
            mult = np.exp(-0.5 * (D - D0[:, None]) + 0.5 * rule.z**2) @ rule.w
        return float(D0.sum() - 2.0 * np.log(sd * mult).sum())

    def _per_level(self, terms: np.ndarray) -> np.ndarray:
        """Sums of ``terms`` (n, or n x K) by level of the single term: ``_level_indicator @ terms``
        (by :func:`~mixedmodels.blocks.csr_times`: the same sums without the product's checks)."""
        return csr_times(self._level_indicator, terms)

    @cached_property
    def _level_indicator(self):
        """Sparse (nlevels x n) matrix summing observations by level of the single term."""
        remat = self.reterms[0]
        return level_indicator(remat.refs, remat.nlevels)

    @property
    def objective(self) -> float:
        """-2 log-likelihood: the Laplace value, or lme4's quadrature deviance when nagq > 1."""
        return self.agq_objective(self.nagq) if self.nagq > 1 else self.laplace_objective()

    def objective_at(
        self, theta: np.ndarray, *, beta: np.ndarray | None = None, sigma: float | None = None
    ) -> float:
        """The objective at θ; β is updated inside PIRLS unless given (then u alone is).

        Without β this is the fast fit's criterion (always the Laplace value);
        with β, the Laplace or quadrature objective of ``nagq``.  The model's
        state (θ, β, u and L) moves there.
        """
        if sigma is not None:
            raise MixedModelsError(
                "the scale of a generalised model is not a free parameter of objective_at"
            )
        self.set_theta(theta)
        if self.extended:
            if beta is not None:
                self.beta = np.asarray(beta, dtype=float).copy()
            return newton_modes(self, fast=beta is None)
        if beta is None:
            pirls(self, fast=True)
            return self.laplace_objective()
        self.beta = np.asarray(beta, dtype=float).copy()
        pirls(self, fast=False)
        return self.objective

    # ---- fitting ----------------------------------------------------------------------
    def _joint_objective(self, pars: np.ndarray) -> float:
        ntheta = len(self.lowerbd)
        return self.objective_at(pars[:ntheta], beta=pars[ntheta:])

    def _check_nagq(self, nagq: int) -> int:
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
            raise MixedModelsError(f"nagq must be a positive integer, got {nagq!r}")
        if nagq > 1 and (
            len(self.reterms) != 1 or not self.reterms[0].is_scalar or self.reterms[0].has_factor
        ):
            raise MixedModelsError(
                f"adaptive Gauss-Hermite quadrature (nagq={nagq}) needs a single scalar random-effects term "
                f"such as (1|g); this model has {', '.join(f'{r.name} ({r.k} column(s))' for r in self.reterms)}"
            )
        return int(nagq)

    def fit(
        self,
        fast: bool = False,
        nagq: int | None = None,
        verbose: bool = False,
        progress: bool = False,
        **kwargs: Any,
    ) -> GeneralizedLinearMixedModel:
        """Fit by the fast method (θ only) and then, unless ``fast``, by Laplace or AGQ over (θ, β).

        lme4's spelling ``nAGQ=`` is accepted; ``nAGQ=0`` is the fast fit.
        """
        nagq = r_spelling(kwargs, "nAGQ", "nagq", nagq)
        reject_unknown(kwargs, "fit()")
        if nagq == 0 and not isinstance(nagq, bool):
            fast, nagq = True, 1
        nagq = self._check_nagq(1 if nagq is None else nagq)
        if self.extended and nagq > 1:
            raise MixedModelsError(
                f"family {self.family.name!r}{' with zero inflation' if self.zi else ''} is fitted by the "
                "Laplace approximation only (nagq=1)"
            )
        with blas_threads_for(self.lmm.system.dense_dim):
            (self._fit_extended if self.extended else self._fit)(fast, nagq, verbose, progress)
        if self.issingular:
            warnings.warn(
                f"boundary (singular) fit: {self.boundary_text()}",
                SingularFitWarning,
                stacklevel=2,
            )
        return self

    def _fit(self, fast: bool, nagq: int, verbose: bool, progress: bool) -> None:
        settings = self.optsum
        self.beta, self.u = self.beta0.copy(), np.zeros_like(self.u)
        self.fast, self.nagq = True, 1
        stage1 = _fresh_optsum(settings, self.lmm.optsum.initial, self.lowerbd)
        if not fast and stage1.ftol_rel > 0 and not self.family.has_dispersion:
            # only the joint fit's start (see JOINT_START_FTOL)
            stage1.ftol_rel = max(stage1.ftol_rel, JOINT_START_FTOL)
        best = _BestEvaluation(self, self.objective_at)
        fast_objective = guarded(best, "PIRLS")
        minimize(fast_objective, stage1, verbose=verbose, progress=progress, label="GLMM fast fit")
        ensure_converged(
            fast_objective, stage1, policy=settings, names=self.lmm.theta_names, final=fast
        )
        # a joint fit starts from modes PIRLS finds again from the last evaluation's (as always)
        if not (fast and best.restore(stage1.final)):
            self.objective_at(stage1.final)
        stage1.fmin = self.laplace_objective()
        self.optsum_fast = stage1
        if fast:
            self.optsum = stage1
        else:
            self.fast, self.nagq = False, nagq
            self._joint_fit(stage1, settings, nagq, verbose, progress)
        self._finish()

    def _joint_fit(
        self, stage1: OptSummary, settings: OptSummary, nagq: int, verbose: bool, progress: bool
    ) -> None:
        """Optimise θ and β together from the fast fit.

        β is searched in coordinates whitened by the fast fit's fixed-effects
        factor, β = β̂ + L_X⁻ᵀδ, in which the objective's curvature in β is
        about the identity: BOBYQA's single trust radius then suits every
        coefficient (and correlated coefficients stop slowing it down).
        θ starts with steps of a tenth of its fast-fit value.
        """
        self.refactor()
        Lx = self.lmm.system.L33[:-1, :-1]
        whiten = sla.solve_triangular(
            Lx, np.eye(len(Lx)), lower=True, trans="T", check_finite=False
        )
        x0 = np.concatenate([stage1.final, self.beta])
        self.optsum = self._whitened_fit(
            settings,
            x0,
            whiten,
            self._joint_objective,
            what="PIRLS",
            label="GLMM fit",
            names=self.lmm.theta_names + self.coefnames,
            verbose=verbose,
            progress=progress,
            best=True,
        )
        self.optsum.nagq = nagq

    def _whitened_fit(
        self,
        settings: OptSummary,
        x0: np.ndarray,
        whiten: np.ndarray,
        evaluate,
        *,
        what: str,
        label: str,
        names: list[str],
        verbose: bool,
        progress: bool,
        search=None,
        best: bool = False,
    ) -> OptSummary:
        """Minimise ``evaluate`` over x0 = (θ, rest) with rest = x0's rest + ``whiten`` z, then check it.

        θ starts with steps of a tenth of its start (at least 0.05), z with
        unit steps.  ``search(stage, start, to_params)`` may do the search
        instead of NLopt (returning False where it cannot); the convergence
        check and the final evaluation (the model moves to the optimum) follow
        either way.  ``what`` names the objective in a failure's message.
        With ``best`` (``evaluate`` is the GLMM's PIRLS objective) the model
        returns to the optimum as its evaluation there left it
        (:class:`_BestEvaluation`) rather than by evaluating it again.
        """
        ntheta = len(self.lowerbd)

        def to_params(z: np.ndarray) -> np.ndarray:
            return np.concatenate([z[:ntheta], x0[ntheta:] + whiten @ z[ntheta:]])

        lower = np.concatenate([self.lowerbd, np.full(len(x0) - ntheta, -np.inf)])
        stage = _fresh_optsum(settings, x0, lower)
        theta0, rest = x0[:ntheta], len(x0) - ntheta
        stage.initial_step = np.concatenate([np.maximum(0.1 * np.abs(theta0), 0.05), np.ones(rest)])
        start = np.concatenate([theta0, np.zeros(rest)])
        if best:
            evaluate = _BestEvaluation(self, evaluate)
        objective = guarded(lambda z: evaluate(to_params(z)), what)
        if search is None or not search(stage, start, to_params):
            minimize(
                objective,
                stage,
                verbose=verbose,
                progress=progress,
                label=label,
                start=start,
                to_params=to_params,
            )
        ensure_converged(
            objective,
            stage,
            policy=settings,
            names=names,
            start=start,
            to_params=to_params,
            block=slice(ntheta, None),
        )
        if not (best and evaluate.restore(stage.final)):
            evaluate(stage.final)
        return stage

    # ---- families fitted by their log density ----------------------------------------------
    @property
    def dispersion(self) -> float | None:
        """The family's extra parameter, glmmTMB's ``sigma()``: NB shape k (nbinom2, glmer.nb's θ),
        φ of nbinom1's variance μ(1 + φ), the beta precision φ; None for other families."""
        return self.family.dispersion if isinstance(self.family, LikelihoodFamily) else None

    @property
    def n_dispersion(self) -> int:
        return int(getattr(self.family, "n_dispersion", 0))

    def outer_parameters(self) -> np.ndarray:
        """(θ, β, β_zi, log dispersion): the parameters of the Laplace objective (extended families)."""
        logd = [math.log(self.dispersion)] if self.n_dispersion else []
        return np.concatenate([self.theta, self.beta, self.beta_zi, logd])

    def outer_names(self) -> list[str]:
        zi = [f"zi~{n}" for n in (self.zi.coefnames if self.zi else [])]
        disp = [f"log({self.family.dispersion_name})"] if self.n_dispersion else []
        return self.theta_names + list(self.coefnames) + zi + disp

    def outer_objective(self, x: np.ndarray) -> float:
        """The Laplace objective at x = (θ, β, β_zi, log dispersion), as ``outer_parameters``; the model moves there."""
        return self._outer_objective(np.asarray(x, dtype=float), False)

    def _set_nuisance(self, x: np.ndarray) -> None:
        """β_zi and the log dispersion from the end of a parameter vector."""
        nzi = len(self.beta_zi)
        self.beta_zi = np.asarray(x[:nzi], dtype=float).copy()
        self._set_log_dispersion(x[nzi:])

    def _set_log_dispersion(self, x: np.ndarray) -> None:
        """The dispersion from its log (x of length n_dispersion)."""
        if self.n_dispersion:
            self.family.dispersion = float(np.exp(np.clip(x[0], -30.0, 30.0)))

    def _outer_objective(self, x: np.ndarray, fast: bool) -> float:
        """Laplace objective at x = (θ, log d) (fast: β, β_zi in Newton) or (θ, β, β_zi, log d)."""
        ntheta, p = len(self.lowerbd), len(self.beta)
        self.set_theta(x[:ntheta])
        if fast:
            self._set_log_dispersion(x[ntheta:])
            return newton_modes(self, fast=True)
        self.beta = np.asarray(x[ntheta : ntheta + p], dtype=float).copy()
        self._set_nuisance(x[ntheta + p :])
        return newton_modes(self, fast=False)

    def _fast_start(self) -> np.ndarray:
        """The fast stage's nuisance start: log d by moments at the GLM's means (β_zi is found by Newton)."""
        if not self.n_dispersion:
            return np.zeros(0)
        mu = self.family.link.linkinv(self.X @ self.beta0 + self.offset)
        return np.array([_moment_log_dispersion(self.family, self.y, mu)])

    def _fit_extended(self, fast: bool, nagq: int, verbose: bool, progress: bool) -> None:
        """Fast stage over (θ, log d) with β and β_zi in Newton; then, unless ``fast``, all jointly."""
        settings = _nlopt_settings(self.optsum)
        self.beta, self.u = self.beta0.copy(), np.zeros_like(self.u)
        self.beta_zi = np.zeros_like(self.beta_zi)
        self.fast, self.nagq = True, 1
        nuis = self._fast_start()
        self._set_log_dispersion(nuis)
        ntheta = len(self.lowerbd)
        lower = np.concatenate([self.lowerbd, np.full(len(nuis), -np.inf)])
        stage1 = _fresh_optsum(settings, np.concatenate([self.lmm.optsum.initial, nuis]), lower)
        if not fast and settings.optimizer.upper() == DEFAULT_OPTIMIZER:
            # only a start for the gradient search, which converges fast from near the optimum
            stage1.ftol_rel = max(stage1.ftol_rel, FAST_STAGE_FTOL)
        stage1.initial_step = np.concatenate(
            [np.broadcast_to(stage1.initial_step, lower.shape)[:ntheta], np.full(len(nuis), 0.5)]
        )
        objective = guarded(lambda x: self._outer_objective(x, True), "the Laplace objective")
        minimize(objective, stage1, verbose=verbose, progress=progress, label="fast fit")
        names = self.theta_names + self.outer_names()[len(self.outer_names()) - len(nuis) :]
        ensure_converged(objective, stage1, policy=settings, names=names, final=fast)
        stage1.fmin = self._outer_objective(stage1.final, True)
        self.optsum_fast = stage1
        if fast:
            self.optsum = stage1
        else:
            self.fast = False
            self._joint_fit_extended(settings, verbose, progress)
        self._finish()

    def _joint_fit_extended(self, settings: OptSummary, verbose: bool, progress: bool) -> None:
        """All of (θ, β, β_zi, log d) from the fast stage, in whitened coordinates.

        (β, β_zi) are whitened by the fast stage's Newton system (as the
        GLMM's joint fit whitens β), log d by nothing: unit steps are then
        about a standard error in every direction, so a flat direction (a
        zero-inflation probability going to 0) is followed in long steps.
        With NLopt's default (BOBYQA) the search is L-BFGS-B on the analytic
        gradient (:func:`mixedmodels.laplace.laplace_gradient`), falling back to BOBYQA where that cannot run or fails.
        """
        self._pull_zero_inflation()
        whiten = sla.block_diag(np.linalg.cholesky(_beta_block(self)), np.eye(self.n_dispersion))
        gradient = settings.optimizer.upper() == DEFAULT_OPTIMIZER
        self.optsum = self._whitened_fit(
            settings,
            self.outer_parameters(),
            whiten,
            lambda x: self._outer_objective(x, False),
            what="the Laplace objective",
            label="Laplace fit",
            names=self.outer_names(),
            verbose=verbose,
            progress=progress,
            search=(
                (
                    lambda stage, start, to_params: self._gradient_search(
                        stage, start, whiten, to_params
                    )
                )
                if gradient
                else None
            ),
        )

    def _pull_zero_inflation(self) -> None:
        """Move β_zi so that |η_zi| ≤ ZI_START_LIMIT (least squares), and refresh the modes.

        The fast stage maximises the penalised likelihood in β_zi, which sends
        a small zero-inflation probability to 0 (η_zi → −∞) where the Laplace
        objective's optimum is finite; out there the objective is flat and no
        gradient leads back.  The joint stage starts instead from the
        coefficients whose η_zi is nearest the clipped one.
        """
        if self.zi is None:
            return
        eta_zi = self.zi.X @ self.beta_zi
        if np.abs(eta_zi).max() <= ZI_START_LIMIT:
            return
        target = np.clip(eta_zi, -ZI_START_LIMIT, ZI_START_LIMIT)
        self.beta_zi = np.linalg.lstsq(self.zi.X, target, rcond=None)[0]
        newton_modes(self, fast=False)

    def _gradient_search(self, stage2: OptSummary, start, whiten, to_params) -> bool:
        """L-BFGS-B over the whitened coordinates, recorded in ``stage2``; False if it cannot be used."""
        from scipy.optimize import minimize as scipy_minimize

        if not gradient_available(self):
            return False
        ntheta = len(self.lowerbd)
        T = sla.block_diag(np.eye(ntheta), whiten)
        fitlog: list[tuple[np.ndarray, float]] = []

        def fun(z: np.ndarray):
            x = to_params(z)
            value, grad = self.outer_value_and_gradient(x)
            fitlog.append((x, value))
            return value, T.T @ grad

        bounds = [(lo if np.isfinite(lo) else None, None) for lo in stage2.lowerbd]
        start = _off_the_bound(start, stage2.lowerbd)
        t0 = time.perf_counter()
        try:
            res = scipy_minimize(
                fun,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options=_lbfgsb_options(stage2),
            )
        except (*EVALUATION_FAILURES, ValueError, FloatingPointError):
            return False
        if not np.isfinite(res.fun) or res.fun > fitlog[0][1]:
            return False
        x_best, f_best = min(fitlog, key=lambda e: e[1])
        code = "SUCCESS" if res.success else f"{GRADIENT_OPTIMIZER}: {res.message}"
        record_search(
            stage2, GRADIENT_OPTIMIZER, fitlog, x_best, f_best, code, time.perf_counter() - t0
        )
        return True

    def outer_value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace objective at x = (θ, β, β_zi, log d) and its gradient (analytic:
        :func:`mixedmodels.laplace.laplace_gradient`); the model moves there."""
        value = self._outer_objective(np.asarray(x, dtype=float), False)
        return value, laplace_gradient(self)

    @property
    def parameter_vcov(self) -> np.ndarray:
        """Covariance of (θ, β, β_zi, log d) from the Hessian of the Laplace objective (glmmTMB's).

        Computed once per optimum (the key is the optimum itself).
        """
        self.require_fit("the covariance of the estimates")
        x = self.outer_parameters()
        if self._covariance is None or self._covariance[0] != x.tobytes():
            saved = (self.beta.copy(), self.u.copy())
            cov = parameter_covariance(lambda z: self._probe(z, saved), x)
            self._outer_objective(x, False)
            missing = [n for n, v in zip(self.outer_names(), np.diag(cov)) if np.isnan(v)]
            if missing:
                warnings.warn(
                    "the Hessian of the Laplace objective is singular: the objective is flat along a "
                    f"direction of {', '.join(missing)}, whose standard errors are not available (NaN)",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            self._covariance = (x.tobytes(), cov)
        return self._covariance[1]

    def _probe(self, x: np.ndarray, saved: tuple[np.ndarray, np.ndarray]) -> float:
        """The joint objective at x with Newton started from the optimum's modes (reproducible)."""
        self.beta, self.u = saved[0].copy(), saved[1].copy()
        return self._outer_objective(x, False)

    def coeftable(self, ddf: str | None = None, component: str = "cond") -> pd.DataFrame:
        """Coefficients of the conditional model (``"cond"``), the zero inflation (``"zi"``) or the dispersion (``"disp"``).

        The ``"disp"`` row is the log dispersion as glmmTMB's ``betad``.
        """
        from .results import coef_table

        if component == "cond":
            return super().coeftable(ddf)
        self.require_fit("the coefficient table")
        if component not in ("zi", "disp") or not self.extended:
            raise MixedModelsError(
                f"component must be 'cond'{', zi or disp' if self.extended else ''}, got {component!r}"
            )
        ntheta, p, nzi = len(self.theta), len(self.beta), len(self.beta_zi)
        se = np.sqrt(np.diag(self.parameter_vcov))
        if component == "zi":
            if self.zi is None:
                raise MixedModelsError("this model has no zero inflation (ziformula)")
            part = slice(ntheta + p, ntheta + p + nzi)
            return coef_table(self.beta_zi, se[part], self.zi.coefnames)
        if not self.n_dispersion:
            raise MixedModelsError(f"family {self.family.name!r} has no dispersion parameter")
        return coef_table(np.array([math.log(self.dispersion)]), se[-1:], ["(Intercept)"])

    @property
    def dispersion_stderror(self) -> float | None:
        """Standard error of the dispersion by the delta method from that of its log: d · se(log d)."""
        if not self.n_dispersion:
            return None
        return float(self.dispersion * math.sqrt(self.parameter_vcov[-1, -1]))

    def zprob(self, newdata: pd.DataFrame | None = None) -> np.ndarray:
        """Zero-inflation probabilities p = logistic(X_zi β_zi) (zeros without zero inflation)."""
        if self.zi is None:
            return np.zeros(self.nobs if newdata is None else len(newdata))
        X = self.zi.X if newdata is None else self.zi.X_on(newdata)
        return zi_probability(X @ self.beta_zi)

    def predict(self, newdata=None, *, type: str = "link", **kwargs: Any) -> pd.Series:
        """As :meth:`InferenceMixin.predict`; ``type="zprob"`` gives the zero-inflation probability,
        and ``type="response"`` of a zero-inflated model the mean (1 − p)μ, as glmmTMB's."""
        if type == "zprob" or (type == "response" and self.zi is not None):
            eta = super().predict(newdata, type="link", **kwargs)
            keep = eta.notna().to_numpy()
            p = np.full(len(eta), np.nan)
            rows = None if newdata is None else newdata.loc[keep]
            p[keep] = self.zprob(rows)
            values = p if type == "zprob" else (1.0 - p) * self.family.link.linkinv(eta.to_numpy())
            return pd.Series(values, index=eta.index, name="prediction")
        return super().predict(newdata, type=type, **kwargs)

    def extra_parameters(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, estimates, standard errors) of β_zi and log d (extended families; none otherwise).

        Profiles re-optimise them with θ and β, and can profile them
        (``profile(which=["log(shape k)"])``); names as :meth:`outer_names`.
        """
        if not self.extended:
            return super().extra_parameters()
        ntheta, p = len(self.theta), len(self.beta)
        names = self.outer_names()[ntheta + p :]
        values = self.outer_parameters()[ntheta + p :]
        with np.errstate(invalid="ignore"):  # NaN where the Hessian is singular, as glmmTMB's
            se = np.sqrt(np.diag(self.parameter_vcov))[ntheta + p :]
        return names, values, se

    def objective_at_extra(self, theta: np.ndarray, beta: np.ndarray, extra: np.ndarray) -> float:
        """The Laplace objective at (θ, β, β_zi, log d); the model moves there (modes from the last point)."""
        if not self.extended:
            return super().objective_at_extra(theta, beta, extra)
        return self._outer_objective(np.concatenate([theta, beta, extra]), False)

    def profile(self, which=None, **kwargs: Any):
        """Likelihood profiles (:func:`mixedmodels.inference.profiling.profile`).

        For the families fitted by their log density, β_zi and the log
        dispersion are re-optimised at every point and can be profiled
        themselves by name (``which=["log(shape k)"]``, ``"zi~(Intercept)"``).
        """
        return super().profile(which, **kwargs)

    def simulate(self, n: int = 1, seed: Any = None, newdata=None, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`InferenceMixin.simulate`; with zero inflation each count is zeroed with probability p."""
        sims = super().simulate(n, seed, newdata, **kwargs)
        if self.zi is None:
            return sims
        rng = _second_stream(seed)
        keep = sims.iloc[:, 0].notna().to_numpy()
        p = np.zeros(len(sims))
        p[keep] = self.zprob(None if newdata is None else newdata.loc[keep])
        zero = rng.random(sims.shape) < p[:, None]
        return sims.mask(zero, 0.0)

    def refit(
        self,
        y: np.ndarray | None = None,
        *,
        fast: bool | None = None,
        nagq: int | None = None,
        verbose: bool = False,
        progress: bool = False,
    ) -> GeneralizedLinearMixedModel:
        """Fit again (same method unless given), optionally to a new response on the scale of ``response``.

        A new response replaces everything derived from the old one (the
        working state, the log-likelihood constant, the GLM start), so a
        refit equals a fresh fit of the same data.
        """
        if y is not None:
            y = new_response(y)
            if y.shape != self.y.shape:
                raise DataError(f"the new response must have shape {self.y.shape}, got {y.shape}")
            self.family.check_response(y, self.wt)
            if self.zi is not None and not np.any(y == 0):
                raise DataError("the new response has no zeros for the zero-inflation model")
            self._set_response(GlmResponse(self.family, y, self.wt))
        fast = self.fast if fast is None else fast
        nagq = self.nagq if nagq is None else nagq
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            return self.fit(fast=fast, nagq=nagq, verbose=verbose, progress=progress)

    def apply_optsum(self, saved: OptSummary) -> None:
        """Move to a saved optimum without fitting: θ (fast fit) or (θ, β), with PIRLS for the modes."""
        ntheta, p = len(self.theta), len(self.beta)
        if self.extended:
            self._apply_extended(saved)
            return
        if len(saved.final) not in (ntheta, ntheta + p):
            raise MixedModelsError(
                f"the saved optimisation has {len(saved.final)} parameters; this model has {ntheta} covariance "
                f"parameters and {p} fixed effects"
            )
        self.u = np.zeros_like(self.u)
        if len(saved.final) == ntheta:  # a fast fit: β comes from PIRLS
            self.fast, self.nagq = True, 1
            self.beta = self.beta0.copy()
            self.objective_at(saved.final)
        else:
            self.fast, self.nagq = False, max(int(saved.nagq), 1)
            self.objective_at(saved.final[:ntheta], beta=saved.final[ntheta:])
        self.optsum = saved
        self.refactor()

    def _apply_extended(self, saved: OptSummary) -> None:
        ntheta, p, nd = len(self.theta), len(self.beta), self.n_dispersion
        nnuis = len(self.beta_zi) + nd
        if len(saved.final) not in (ntheta + nd, ntheta + p + nnuis):
            raise MixedModelsError(
                f"the saved optimisation has {len(saved.final)} parameters; this model has {ntheta} "
                f"covariance parameters, {p} fixed effects and {nnuis} zero-inflation/dispersion parameters"
            )
        self.u = np.zeros_like(self.u)
        self.fast, self.nagq = len(saved.final) == ntheta + nd, 1
        if self.fast:
            self.beta, self.beta_zi = self.beta0.copy(), np.zeros_like(self.beta_zi)
        self._outer_objective(saved.final, self.fast)
        self.optsum = saved
        self.refactor()

    def _finish(self) -> None:
        self.refactor()
        self.optsum.fmin = self.objective
        self.optsum.fitted = True

    # ---- estimates -------------------------------------------------------------------------
    def refactor(self) -> None:
        """The whole of L (fixed-effects block included) at the working weights of the modes.

        Extended families: the modes and the Laplace factor again, and L_Z at
        the observed curvature (negative values set to 0) for ``ranef(condvar=True)``.
        """
        if self.extended:
            newton_modes(self, fast=False)
            from .laplace import curvature

            _, W = curvature(self, self.eta)
            self.lmm.system.factor_Z_at_weights(np.sqrt(np.maximum(W, 0.0)))
            return
        st = self.state
        self.lmm.system.set_weights(np.sqrt(st.working_weights), st.working_response)
        self.lmm.update_L()

    @property
    def unscaled_vcov(self) -> np.ndarray:
        """(L_X L_X')⁻¹ at the working weights of the modes; extended families: as ``vcov``."""
        if self.extended:
            return self.vcov
        self.refactor()
        return self.lmm.unscaled_vcov

    @property
    def vcov(self) -> np.ndarray:
        """φ (L_X L_X')⁻¹ at the conditional modes (MixedModels.jl's; lme4's use.hessian=FALSE)."""
        self.require_fit("vcov")
        if self.extended:  # glmmTMB's: the β block of the inverse Hessian of the Laplace objective
            ntheta, p = len(self.theta), len(self.beta)
            return self.parameter_vcov[ntheta : ntheta + p, ntheta : ntheta + p]
        return self.dispersion_parameter**2 * self.unscaled_vcov

    @property
    def dispersion_parameter(self) -> float:
        """σ: the scale of the variance components and of vcov (1 without dispersion).

        As lme4: σ² = (Σ Pearson residual² + ‖ũ‖²) / n, the penalised weighted
        residual sum of squares of the final PIRLS problem over n.
        """
        if not self.family.has_dispersion:
            return 1.0
        pearson = self._residual_values("pearson")
        return math.sqrt((pearson @ pearson + self.u @ self.u) / self.nobs)

    @property
    def sigma(self) -> float | None:
        """σ for families with a dispersion parameter, None otherwise."""
        return self.dispersion_parameter if self.family.has_dispersion else None

    def b(self) -> list[np.ndarray]:
        return split_b(self.reterms, self.u)

    def fitted(self) -> pd.Series:
        """Fitted values on the response scale, μ̃ at the conditional modes, indexed like the data."""
        self.require_fit("fitted values")
        return self.per_observation(self._mean(), "fitted")

    def _mean(self) -> np.ndarray:
        """E[y | ũ]: μ, or (1 − p)μ with zero inflation."""
        return self.mu if self.zi is None else (1.0 - self.zprob()) * self.mu

    def _variance(self) -> np.ndarray:
        """Var[y | ũ]: the family's, or (1 − p)(V + μ²) − ((1 − p)μ)² with zero inflation."""
        V = self.family.variance(self.mu)
        if self.zi is None:
            return V
        q = 1.0 - self.zprob()
        return q * (V + self.mu**2) - (q * self.mu) ** 2

    def _residual_values(self, kind: str) -> np.ndarray:
        mu, eta = self.mu, self.eta
        if self.extended and kind in ("pearson", "response"):
            r = self.y - self._mean()
            return r * np.sqrt(self.wt / self._variance()) if kind == "pearson" else r
        if self.zi is not None and kind != "response":
            raise MixedModelsError(
                f"{kind} residuals are not defined for a zero-inflated model; use pearson or response"
            )
        if kind == "deviance":
            return self.family.deviance_residuals(self.y, mu, self.wt)
        if kind == "pearson":
            return (self.y - mu) * np.sqrt(self.wt / self.family.variance(mu))
        if kind == "response":
            return self.y - mu
        if kind == "working":
            return (self.y - mu) / self.family.link.mu_eta(eta)
        raise MixedModelsError(
            f"unknown residual type {kind!r}; use deviance, pearson, response or working"
        )

    def residuals(self, kind: str | None = None, *, type: str | None = None) -> pd.Series:
        """Residuals: ``"deviance"``, ``"pearson"``, ``"response"`` or ``"working"``.

        The default is lme4's, deviance residuals, except for a zero-inflated
        model, which has none: there it is glmmTMB's, response residuals.
        """
        default = "response" if self.zi is not None else "deviance"
        allowed = ("deviance", "pearson", "response", "working")
        kind = self.residual_kind(kind, type, default, allowed)
        self.require_fit("residuals")
        return self.per_observation(self._residual_values(kind), "residuals")

    # ---- summaries -------------------------------------------------------------------------
    @property
    def dof(self) -> int:
        extra = len(self.beta_zi) + self.n_dispersion if self.extended else 0
        return len(self.beta) + len(self.theta) + int(self.family.has_dispersion) + extra

    @property
    def deviance(self) -> float:
        """lme4's deviance(): Σ wᵢ d(yᵢ, μ̃ᵢ), the conditional deviance at the modes.

        Extended families: −2 Σ wᵢ log p(yᵢ | ũ), the conditional −2 log-likelihood.
        """
        if self.extended:
            return -2.0 * float(log_density(self, self.eta).sum())
        return self.conditional_deviance()

    def varcorr(self, form: str = "wide") -> pd.DataFrame:
        self.require_fit("varcorr")
        sigma = self.dispersion_parameter
        terms = term_covariances(self.reterms, lme4_blocks(self.reterms), sigma)
        shown = self.sigma
        return varcorr_long(terms, shown) if form == "long" else varcorr_frame(terms, shown)

    def ranef(self, condvar: bool = False, form: str = "wide"):
        self.require_fit("ranef")
        cv = None
        if condvar or form == "long":
            cv = conditional_variances(self.lmm.system, self.reterms, self.dispersion_parameter)
        return ranef_frames(self.reterms, self.b(), cv, form)

    def __str__(self) -> str:
        from .printing import glmm_summary

        text = glmm_summary(self)
        return text + self._extended_text() if self.extended and self.is_fitted else text

    def other_components(self) -> list[tuple[str, pd.DataFrame | None, list[str]]]:
        """The dispersion parameter and the zero-inflation model's coefficients, when present."""
        if not (self.extended and self.is_fitted):
            return []
        parts: list[tuple[str, pd.DataFrame | None, list[str]]] = []
        if self.n_dispersion:
            line = (
                f"Dispersion parameter for {self.family.name} family ({self.family.dispersion_name}): "
                f"{self.dispersion:.4g} (SE {self.dispersion_stderror:.3g})"
            )
            parts.append(("", None, [line]))
        if self.zi is not None:
            parts.append(
                (f"Zero-inflation model: {self.zi.formula}", self.coeftable(component="zi"), [])
            )
        return parts

    def _extended_text(self) -> str:
        from .printing import format_coeftable

        parts = [""]
        for title, table, notes in self.other_components():
            if title:
                parts += ["", title]
            parts += notes
            if table is not None:
                parts.append(format_coeftable(table))
        return "\n".join(parts)


def _check_no_known_covariance(reterms, family: Family, zero_inflated: bool) -> None:
    """The Laplace fits of :mod:`mixedmodels.laplace` need b = λu per level: no known covariance."""
    for r in reterms:
        if r.has_factor:
            what = f"family {family.name!r}" + (" with zero inflation" if zero_inflated else "")
            raise MixedModelsError(
                f"the term on {r.name!r} has a known covariance matrix, which is not available for "
                f"{what} (fitted by the Laplace approximation on its log density); drop the covariance "
                "for this term or use a poisson/binomial family without ziformula"
            )


def _moment_log_dispersion(family: Family, y: np.ndarray, mu: np.ndarray) -> float:
    """log d matching the Pearson variance of y about the GLM's means μ (random effects ignored).

    nbinom2: Σ(y−μ)² = Σ μ + μ²/k; nbinom1: Σ(y−μ)² = (1 + φ) Σμ; beta:
    Σ(y−μ)² = Σ μ(1−μ)/(1 + φ).  Clipped to [−5, 8] (no excess variance:
    the end of the range that means none); only a starting value.
    """
    r2 = float(np.sum((y - mu) ** 2))
    if isinstance(family, NegativeBinomial2):
        excess = r2 - float(mu.sum())
        d = float(np.sum(mu * mu)) / excess if excess > 0 else math.exp(8.0)
    elif isinstance(family, NegativeBinomial1):
        d = r2 / float(mu.sum()) - 1.0
    else:
        d = float(np.sum(mu * (1.0 - mu))) / max(r2, 1e-300) - 1.0
    return float(np.clip(math.log(d) if d > 0 else -5.0, -5.0, 8.0))


def _own_family(family: Family, ziformula: str | None) -> Family:
    """A copy of the family for this model (its dispersion changes with the fit)."""
    if ziformula is not None and not isinstance(
        family, (Poisson, NegativeBinomial2, NegativeBinomial1)
    ):
        raise MixedModelsError(
            f"zero inflation (ziformula) needs a count family (poisson, nbinom2 or nbinom1), not {family.name!r}"
        )
    if family.link.name != family.canonical_link:
        raise MixedModelsError(
            f"family {family.name!r} with zero inflation or a dispersion is fitted with its "
            f"{family.canonical_link!r} link only, not {family.link.name!r}"
        )
    own = type(family)(link=family.link)
    if isinstance(family, LikelihoodFamily):
        own.dispersion = family.dispersion
    return own


def _start_family(family: Family) -> Family:
    """The exponential family whose GLM gives β's starting values."""
    if isinstance(family, (NegativeBinomial2, NegativeBinomial1)):
        return Poisson()
    if isinstance(family, LikelihoodFamily):  # beta: a quasi-binomial start
        return Binomial(link=family.link)
    return family


DEFAULT_OPTIMIZER = "LN_BOBYQA"
GRADIENT_OPTIMIZER = "L-BFGS-B"
"""The joint stage's search (scipy's) when the optimizer is the default; recorded in ``optsum.optimizer``."""


def _nlopt_settings(settings: OptSummary) -> OptSummary:
    """The user's settings; a gradient fit's record (``L-BFGS-B``) stands for the default, BOBYQA."""
    if settings.optimizer == GRADIENT_OPTIMIZER:
        return replace(settings, optimizer=DEFAULT_OPTIMIZER)
    return settings


def _lbfgsb_options(stage: OptSummary) -> dict[str, Any]:
    """L-BFGS-B's settings: 30 corrections (the zi ~ spp fits have 22 parameters), the user's maxfeval.

    ftol 1e-11 relative and gtol 1e-5 in the whitened coordinates (a slope of
    1e-5 per standard error); the convergence check that follows restarts if
    the objective could still fall by more than 1e-7 relative.
    """
    options = {"ftol": 1e-11, "gtol": 1e-5, "maxiter": 500, "maxls": 40, "maxcor": 30}
    if stage.maxfeval and stage.maxfeval > 0:
        options["maxfun"] = int(stage.maxfeval)
    return options


BOUND_NUDGE = 0.1
"""θ components the fast stage left on their bound (0) start the gradient search this far inside."""


def _off_the_bound(start: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``start`` with bounded components on their bound moved BOUND_NUDGE inside.

    The Laplace objective is even in a scalar term's θ, so its slope at θ = 0
    is zero: a gradient search started there stays, even when the optimum is
    inside (the fast stage can end on the bound where the joint optimum is
    not).  From inside, a true boundary optimum is found again.
    """
    out = np.asarray(start, dtype=float).copy()
    on = np.isfinite(lower) & (out <= lower + 1e-8)
    out[on] = lower[on] + BOUND_NUDGE
    return out


FAST_STAGE_FTOL = 1e-4
"""Relative tolerance of the fast stage when it only starts the joint gradient search."""

JOINT_START_FTOL = 1e-7
"""Relative tolerance of the fast fit (θ alone, β in PIRLS) when it only starts a joint fit.

The joint fit searches θ again, with β, to the full tolerance, so polishing θ
here to 1e-12 (the last third of the fast fit's evaluations) buys little.  Whole
fits of the five benchmark GLMMs took 5–24 fewer evaluations (of 60–119), and 18
further GLMMs compared with lme4 took 2172 instead of 2463 in all, ending within
1.7e-6 of the objective before and at or below glmer's (the binomial and Poisson ones).  One over-parameterised
fit (cbpp, ``(1|herd) + (0 + period|herd)``, ten θ on a flat ridge) went from 380
to 1481 evaluations, ending 3.9e-6 lower: its count depends on the start by chance.
Families with a dispersion parameter keep the full tolerance: there the joint fit of
ergostool's Gamma model then stopped 1.1e-6 above lme4's optimum.  lme4's stopping
rule (``use_lme4_settings``: on x, ``ftol_rel = 0``) is left as it is."""

ZI_START_LIMIT = 5.0
"""The joint stage starts with zero-inflation probabilities in [logistic(−5), logistic(5)] (see ``_pull_zero_inflation``)."""


def _beta_block(m) -> np.ndarray:
    """[H⁻¹] of (β, β_zi) in the fast stage's joint Newton system in (u, β, β_zi) at the current modes.

    At the positive definite substitute of the observed curvature (max(W, 0),
    no cross curvature) wherever the observed one is indefinite.
    """
    from .laplace import _newton_factor, curvature, zi_curvature, zi_eta

    A = m.zlambda.at(m.reterms)
    eta, eta_zi = m.eta, zi_eta(m)
    _, W = curvature(m, eta, eta_zi)
    zi = None if m.zi is None else (m.zi.X, *zi_curvature(m, eta, eta_zi)[1:])
    q, p = A.shape[1], m.X.shape[1] + len(m.beta_zi)
    F = _newton_factor(A, m.X, W, zi)
    E = np.zeros((q + p, p))
    E[q:] = np.eye(p)
    cov = F.solve(E)[q:]
    return 0.5 * (cov + cov.T)


def _second_stream(seed: Any) -> np.random.Generator:
    """A generator independent of the one ``simulate`` makes from ``seed`` (for zero inflation)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed.spawn(1)[0])
    return np.random.default_rng(None if seed is None else [int(seed), 7])


def _fresh_optsum(settings: OptSummary, initial: np.ndarray, lower: np.ndarray) -> OptSummary:
    """An OptSummary with the user's optimizer and tolerances for a new parameter vector."""
    out = OptSummary(
        initial,
        lower,
        optimizer=settings.optimizer,
        ftol_rel=settings.ftol_rel,
        ftol_abs=settings.ftol_abs,
        xtol_rel=settings.xtol_rel,
        maxfeval=settings.maxfeval,
        maxtime=settings.maxtime,
    )
    return out
