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
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .blocks import CholeskyFailed
from .convergence import ensure_converged
from .errors import ConvergenceError, DataError, MixedModelsError
from .families import Bernoulli, Binomial, Family, get_family
from .fitstats import FitStatistics
from .inference.mixin import InferenceMixin  # light: its methods import their modules when called
from .lmm import (
    LinearMixedModel,
    coef_table,
    conditional_variances,
    ranef_frames,
    split_b,
    term_order,
)
from .optimize import minimize
from .optsummary import OptSummary
from .pirls import glm_start, pirls
from .quadrature import gauss_hermite
from .structure import ModelStructure, build_structure
from .threads import blas_threads_for
from .varcorr import term_covariances, varcorr_frame, varcorr_long

__all__ = ["GeneralizedLinearMixedModel"]


def glm_response(response: Any, family: Family, prior: np.ndarray | None, expr: str) -> tuple[np.ndarray, np.ndarray]:
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
            raise DataError(f"the response {expr!r} is categorical; only binomial/bernoulli families accept it")
        codes = response.cat.remove_unused_categories().cat.codes.to_numpy()
        return (codes > 0).astype(float), prior
    arr = np.asarray(response)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"the response {expr!r} must be numeric, boolean or a two-level factor, got {arr.dtype}")
    return arr.astype(float), prior


class GeneralizedLinearMixedModel(FitStatistics, InferenceMixin):
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
        ``"inversegaussian"``, ``"gaussian"`` or an object from
        :mod:`mixedmodels.families`.
    link : str or Link, optional
        Defaults to the family's canonical link.
    weights : str or array, optional
        Prior weights (for a binomial proportion response: the numbers of trials).
    offset : str or array, optional
        Added to the linear predictor (with any ``offset()`` in the formula).
    contrasts, covariance : dict, optional
        As for :class:`~mixedmodels.lmm.LinearMixedModel`.
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
    ):
        self.family = get_family(family, link) if not isinstance(family, Family) or link is not None else family
        structure = build_structure(formula, data, weights=weights, offset=offset, contrasts=contrasts,
                                    strict_levels=False, covariance=covariance)
        y, wt = glm_response(structure.response, self.family, structure.weights, structure.formula.response)
        if isinstance(self.family, Bernoulli) and structure.weights is None:
            wt = np.ones(len(y))
        self.family.check_response(y, wt)
        self.structure = structure
        self.formula = structure.formula.text
        self.y, self.wt = y, wt
        self.offset = np.zeros(len(y)) if structure.offset is None else structure.offset
        self.lmm = self._inner_lmm(structure, sparse)
        self.X = structure.fe.X
        self.beta0 = glm_start(self.family, self.X, y, wt, self.offset)
        self.beta = self.beta0.copy()
        self.u = np.zeros(sum(r.q for r in self.reterms))
        self.fast, self.nagq = False, 1
        self.optsum = OptSummary(self.lmm.optsum.initial, self.lmm.lowerbd)

    def _inner_lmm(self, structure: ModelStructure, sparse: bool | None) -> LinearMixedModel:
        from dataclasses import replace

        lmm = LinearMixedModel.__new__(LinearMixedModel)
        inner = replace(structure, weights=None, offset=None)
        lmm._init_from_structure(inner, np.zeros(structure.nobs), reml=False, sparse=sparse)
        return lmm

    # ---- state ---------------------------------------------------------------------
    @property
    def reterms(self):
        return self.lmm.reterms

    @property
    def theta(self) -> np.ndarray:
        return self.lmm.theta

    @property
    def lowerbd(self) -> np.ndarray:
        return self.lmm.lowerbd

    @property
    def theta_names(self) -> list[str]:
        return self.lmm.theta_names

    def set_theta(self, theta: np.ndarray) -> "GeneralizedLinearMixedModel":
        self.lmm.set_theta(theta)
        return self

    def set_modes(self, beta: np.ndarray, u: np.ndarray) -> None:
        """Set β and u (no refactorisation)."""
        self.beta, self.u = beta, u

    @property
    def eta(self) -> np.ndarray:
        """Linear predictor o + Xβ + ZΛu (cached for the current β, u and θ)."""
        key = (self.beta.tobytes(), self.u.tobytes(), self.theta.tobytes())
        if getattr(self, "_eta_key", None) != key:
            self._eta_key, self._eta_val = key, self._fixed_eta() + self._Zb()
        return self._eta_val

    def _fixed_eta(self) -> np.ndarray:
        """o + Xβ, cached for the current β (PIRLS re-evaluates η many times per β)."""
        key = self.beta.tobytes()
        if getattr(self, "_fixed_key", None) != key:
            self._fixed_key, self._fixed_val = key, self.offset + self.X @ self.beta
        return self._fixed_val

    def _Zb(self) -> np.ndarray:
        out = np.zeros(len(self.y))
        for r, b in zip(self.reterms, split_b(self.reterms, self.u)):
            out += np.einsum("tk,tk->t", r.z, b[r.refs])
        return out

    @property
    def mu(self) -> np.ndarray:
        """Conditional mean g⁻¹(η), cached with η."""
        eta = self.eta
        if getattr(self, "_mu_for", None) is not eta:
            self._mu_for, self._mu_val, self._dev_val = eta, self.family.link.linkinv(eta), None
        return self._mu_val

    def conditional_deviance(self) -> float:
        """Σ wᵢ d(yᵢ, μᵢ) at the current β, u (cached with η: PIRLS and the objective share it)."""
        mu = self.mu
        if self._dev_val is None:
            self._dev_val = self.family.deviance(self.y, mu, self.wt)
        return self._dev_val

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
        """-2 Σ log p(yᵢ | μᵢ) with all constants, at the current modes.

        Without a dispersion parameter, -2 log p(y|μ) - w d(y, μ) does not depend
        on μ, so that constant is computed once and the deviance does the rest.
        """
        if self.family.has_dispersion:
            # lme4 adds R's aic() penalty of 2 for the dispersion parameter
            return -2.0 * self.family.loglik(self.y, self.mu, self.wt, self._aic_dispersion()) + 2.0
        if not hasattr(self, "_loglik_constant"):
            mu0 = self.family.mustart(self.y, self.wt)
            self._loglik_constant = -2.0 * self.family.loglik(self.y, mu0, self.wt) - self.family.deviance(self.y, mu0, self.wt)
        return self.conditional_deviance() + self._loglik_constant

    def laplace_objective(self) -> float:
        """-2 log-likelihood by the Laplace approximation at the current modes and L."""
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
        dev = self.family.dev_resid(self.y[:, None], self.family.link.linkinv(eta), self.wt[:, None])
        D = self._level_indicator() @ dev + U * U  # per level and node
        D0 = self._level_indicator() @ self.family.dev_resid(self.y, self.mu, self.wt) + self.u * self.u
        with np.errstate(over="ignore"):
            mult = np.exp(-0.5 * (D - D0[:, None]) + 0.5 * rule.z**2) @ rule.w
        return float(D0.sum() - 2.0 * np.log(sd * mult).sum())

    def _level_indicator(self):
        """Sparse (nlevels x n) matrix summing observations by level of the single term."""
        if not hasattr(self, "_indicator"):
            import scipy.sparse as sp

            remat = self.reterms[0]
            n = len(remat.refs)
            self._indicator = sp.csr_matrix((np.ones(n), (remat.refs, np.arange(n))), shape=(remat.nlevels, n))
        return self._indicator

    @property
    def objective(self) -> float:
        """-2 log-likelihood: the Laplace value, or lme4's quadrature deviance when nagq > 1."""
        return self.agq_objective(self.nagq) if self.nagq > 1 else self.laplace_objective()

    # ---- fitting ----------------------------------------------------------------------
    def _fast_objective(self, theta: np.ndarray) -> float:
        self.set_theta(theta)
        pirls(self, fast=True)
        return self.laplace_objective()

    def _full_objective(self, pars: np.ndarray) -> float:
        ntheta = len(self.lowerbd)
        self.set_theta(pars[:ntheta])
        self.beta = pars[ntheta:].copy()
        pirls(self, fast=False)
        return self.agq_objective(self.nagq) if self.nagq > 1 else self.laplace_objective()

    def _guarded(self, objective):
        """The objective, or the stage's first value where PIRLS cannot be completed.

        As for the LMM: a finite value keeps BOBYQA's model of the objective
        intact, where infinity would wreck it; the first evaluation must work.
        """
        first: list[float] = []

        def wrapped(x: np.ndarray) -> float:
            try:
                value = objective(x)
            except (CholeskyFailed, ConvergenceError):
                value = np.nan
            if not np.isfinite(value):
                if not first:
                    raise ConvergenceError("PIRLS failed at the starting values of the optimisation")
                return first[0]
            if not first:
                first.append(value)
            return value

        return wrapped

    def _check_nagq(self, nagq: int) -> int:
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
            raise MixedModelsError(f"nagq must be a positive integer, got {nagq!r}")
        if nagq > 1 and (len(self.reterms) != 1 or not self.reterms[0].is_scalar or self.reterms[0].has_factor):
            raise MixedModelsError(
                f"adaptive Gauss-Hermite quadrature (nagq={nagq}) needs a single scalar random-effects term "
                f"such as (1|g); this model has {', '.join(f'{r.name} ({r.k} column(s))' for r in self.reterms)}"
            )
        return int(nagq)

    def fit(self, fast: bool = False, nagq: int = 1, verbose: bool = False, progress: bool = False) -> "GeneralizedLinearMixedModel":
        """Fit by the fast method (θ only) and then, unless ``fast``, by Laplace or AGQ over (θ, β)."""
        nagq = self._check_nagq(nagq)
        with blas_threads_for(self.lmm.system.dense_dim):
            return self._fit(fast, nagq, verbose, progress)

    def _fit(self, fast: bool, nagq: int, verbose: bool, progress: bool) -> "GeneralizedLinearMixedModel":
        settings = self.optsum
        self.beta, self.u = self.beta0.copy(), np.zeros_like(self.u)
        self.fast, self.nagq = True, 1
        stage1 = _fresh_optsum(settings, self.lmm.optsum.initial, self.lowerbd)
        minimize(self._guarded(self._fast_objective), stage1, verbose=verbose, progress=progress, label="GLMM fast fit")
        ensure_converged(self._guarded(self._fast_objective), stage1, policy=settings, names=self.lmm.theta_names, final=fast)
        self._fast_objective(stage1.final)
        stage1.fmin = self.laplace_objective()
        self.optsum_fast = stage1
        if fast:
            self.optsum = stage1
            return self._finish()
        self.fast, self.nagq = False, nagq
        self._joint_fit(stage1, settings, nagq, verbose, progress)
        return self._finish()

    def _joint_fit(self, stage1: OptSummary, settings: OptSummary, nagq: int, verbose: bool, progress: bool) -> None:
        """Optimise θ and β together from the fast fit.

        β is searched in coordinates whitened by the fast fit's fixed-effects
        factor, β = β̂ + L_X⁻ᵀδ, in which the objective's curvature in β is
        about the identity: BOBYQA's single trust radius then suits every
        coefficient (and correlated coefficients stop slowing it down).
        θ starts with steps of a tenth of its fast-fit value.
        """
        self._factor_full()
        Lx = self.lmm.system.L33[:-1, :-1]
        whiten = sla.solve_triangular(Lx, np.eye(len(Lx)), lower=True, trans="T", check_finite=False)
        theta0, beta0, ntheta = stage1.final.copy(), self.beta.copy(), len(stage1.final)

        def to_params(x: np.ndarray) -> np.ndarray:
            return np.concatenate([x[:ntheta], beta0 + whiten @ x[ntheta:]])

        lower = np.concatenate([self.lowerbd, np.full(len(beta0), -np.inf)])
        stage2 = _fresh_optsum(settings, np.concatenate([theta0, beta0]), lower)
        stage2.initial_step = np.concatenate([np.maximum(0.1 * np.abs(theta0), 0.05), np.ones(len(beta0))])
        stage2.nagq = nagq
        start = np.concatenate([theta0, np.zeros(len(beta0))])
        objective = self._guarded(lambda x: self._full_objective(to_params(x)))
        minimize(objective, stage2, verbose=verbose, progress=progress,
                 label="GLMM fit", start=start, to_params=to_params)
        ensure_converged(objective, stage2, policy=settings, names=self.lmm.theta_names + self.coefnames,
                         start=start, to_params=to_params, block=slice(ntheta, None))
        self._full_objective(stage2.final)
        self.optsum = stage2

    def refit(self, y: np.ndarray | None = None, *, fast: bool | None = None, nagq: int | None = None,
              verbose: bool = False, progress: bool = False) -> "GeneralizedLinearMixedModel":
        """Fit again (same method unless given), optionally to a new response on the same scale as ``self.y``."""
        if y is not None:
            y = np.asarray(y, dtype=float)
            if y.shape != self.y.shape:
                raise DataError(f"the new response must have shape {self.y.shape}, got {y.shape}")
            self.family.check_response(y, self.wt)
            self.y = y
            self._mu_for = None  # cached μ and deviance belong to the old response
            self.beta0 = glm_start(self.family, self.X, y, self.wt, self.offset)
        fast = self.fast if fast is None else fast
        nagq = self.nagq if nagq is None else nagq
        return self.fit(fast=fast, nagq=nagq, verbose=verbose, progress=progress)

    def _finish(self) -> "GeneralizedLinearMixedModel":
        self._factor_full()
        self.optsum.fmin = self.objective
        self.optsum.fitted = True
        return self

    # ---- estimates -------------------------------------------------------------------------
    @property
    def coefnames(self) -> list[str]:
        return self.structure.fe.coefnames

    def stderror_rx(self) -> np.ndarray:
        """Standard errors from the fixed-effects block of L (MixedModels.jl's; lme4's use.hessian=FALSE)."""
        return np.sqrt(np.diag(self.vcov))

    def _factor_full(self) -> None:
        """The whole of L (fixed-effects block included) at the working weights of the modes."""
        eta = self.eta
        mu = self.family.link.linkinv(eta)
        w = self.family.working_weights(mu, eta, self.wt)
        z = eta - self.offset + (self.y - mu) / self.family.link.mu_eta(eta)
        self.lmm.system.set_weights(np.sqrt(w), z)
        self.lmm.system.update_L()
        self.lmm._clear_cache()

    @property
    def vcov(self) -> np.ndarray:
        """φ (L_X L_X')⁻¹ at the conditional modes (MixedModels.jl's; lme4's use.hessian=FALSE)."""
        self._factor_full()
        return self.dispersion_parameter**2 * self.lmm._vcov_unscaled

    @property
    def stderror(self) -> np.ndarray:
        return self.stderror_rx()

    def coeftable(self) -> pd.DataFrame:
        return coef_table(self.beta, self.stderror, self.coefnames)

    @property
    def dispersion_parameter(self) -> float:
        """σ: the scale of the variance components and of vcov (1 without dispersion).

        As lme4: σ² = (Σ Pearson residual² + ‖ũ‖²) / n, the penalised weighted
        residual sum of squares of the final PIRLS problem over n.
        """
        if not self.family.has_dispersion:
            return 1.0
        pearson = self.residuals("pearson")
        return math.sqrt((pearson @ pearson + self.u @ self.u) / self.nobs)

    @property
    def sigma(self) -> float | None:
        """σ for families with a dispersion parameter, None otherwise."""
        return self.dispersion_parameter if self.family.has_dispersion else None

    def b(self) -> list[np.ndarray]:
        return split_b(self.reterms, self.u)

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values on the response scale, μ̃ at the conditional modes."""
        return self.mu

    def residuals(self, kind: str = "deviance") -> np.ndarray:
        """Residuals: ``"deviance"`` (default, as lme4), ``"pearson"``, ``"response"`` or ``"working"``."""
        mu, eta = self.mu, self.eta
        if kind == "deviance":
            return self.family.deviance_residuals(self.y, mu, self.wt)
        if kind == "pearson":
            return (self.y - mu) * np.sqrt(self.wt / self.family.variance(mu))
        if kind == "response":
            return self.y - mu
        if kind == "working":
            return (self.y - mu) / self.family.link.mu_eta(eta)
        raise MixedModelsError(f"unknown residual type {kind!r}; use deviance, pearson, response or working")

    # ---- summaries -------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def dof(self) -> int:
        return len(self.beta) + len(self.theta) + int(self.family.has_dispersion)

    @property
    def deviance(self) -> float:
        """lme4's deviance(): Σ wᵢ d(yᵢ, μ̃ᵢ), the conditional deviance at the modes."""
        return self.conditional_deviance()

    def varcorr(self, form: str = "wide") -> pd.DataFrame:
        sigma = self.dispersion_parameter
        terms = term_covariances(self.reterms, term_order(self.reterms), sigma)
        shown = self.sigma
        return varcorr_long(terms, shown) if form == "long" else varcorr_frame(terms, shown)

    def ranef(self, condvar: bool = False, form: str = "wide"):
        cv = None
        if condvar or form == "long":
            cv = conditional_variances(self.lmm.system, self.reterms, self.dispersion_parameter)
        return ranef_frames(self.reterms, self.b(), cv, form)

    def __str__(self) -> str:
        from .printing import glmm_summary

        return glmm_summary(self)

    def __repr__(self) -> str:
        return str(self)


def _fresh_optsum(settings: OptSummary, initial: np.ndarray, lower: np.ndarray) -> OptSummary:
    """An OptSummary with the user's optimizer and tolerances for a new parameter vector."""
    out = OptSummary(initial, lower, optimizer=settings.optimizer, ftol_rel=settings.ftol_rel,
                     ftol_abs=settings.ftol_abs, xtol_rel=settings.xtol_rel,
                     maxfeval=settings.maxfeval, maxtime=settings.maxtime)
    return out
