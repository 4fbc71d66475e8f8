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
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .convergence import ensure_converged
from .errors import DataError, MixedModelsError, SingularFitWarning
from .families import Bernoulli, Binomial, Family, Gaussian, IdentityLink, get_family
from .inference.mixin import InferenceMixin  # light: its methods import their modules when called
from .lmm import LinearMixedModel, data_index, r_spelling, reject_unknown
from .model import MixedModel
from .optimize import guarded, minimize
from .optsummary import OptSummary
from .pirls import glm_start, pirls
from .quadrature import gauss_hermite
from .results import conditional_variances, ranef_frames, split_b
from .separation import check_constant_response, check_separation
from .structure import build_structure, lme4_blocks
from .threads import blas_threads_for
from .varcorr import term_covariances, varcorr_frame, varcorr_long

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


class WorkingState:
    """η and what follows from (response, η): μ, unit deviances, working weights and response."""

    def __init__(self, response: GlmResponse, eta: np.ndarray, offset: np.ndarray):
        self.response, self.eta, self.offset = response, eta, offset

    @cached_property
    def mu(self) -> np.ndarray:
        return self.response.family.link.linkinv(self.eta)

    @cached_property
    def deviance(self) -> float:
        """Σ wᵢ d(yᵢ, μᵢ)."""
        r = self.response
        return float(r.family.deviance(r.y, self.mu, r.wt))

    @cached_property
    def working_weights(self) -> np.ndarray:
        r = self.response
        return r.family.working_weights(self.mu, self.eta, r.wt)

    @cached_property
    def working_response(self) -> np.ndarray:
        """zᵢ = ηᵢ - oᵢ + (yᵢ - μᵢ) / (dμ/dη)ᵢ."""
        return (
            self.eta
            - self.offset
            + (self.response.y - self.mu) / self.response.family.link.mu_eta(self.eta)
        )


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
        ``"inversegaussian"``, ``"gaussian"`` (with a non-identity link) or an
        object from :mod:`mixedmodels.families`.
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
        **kwargs: Any,
    ):
        reject_unknown(kwargs, "GeneralizedLinearMixedModel()")
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
        )
        self._family = (
            get_family(family, link)
            if not isinstance(family, Family) or link is not None
            else family
        )
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
        self._set_response(GlmResponse(self._family, y, wt))
        check_constant_response(y, self._family, structure.formula.response)
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
        self.beta0 = glm_start(self._family, self.X, response.y, response.wt, self.offset)

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
        key = (id(self.resp), self.beta.tobytes(), self.u.tobytes(), self.theta.tobytes())
        if self._state_key != key:
            self._state = WorkingState(self.resp, self._fixed_eta() + self._Zb(), self.offset)
            self._state_key = key
        return self._state

    def _fixed_eta(self) -> np.ndarray:
        """o + Xβ, kept for the current β (PIRLS re-evaluates η many times per β)."""
        key = self.beta.tobytes()
        if self._fixed is None or self._fixed[0] != key:
            self._fixed = (key, self.offset + self.X @ self.beta)
        return self._fixed[1]

    def _Zb(self) -> np.ndarray:
        out = np.zeros(self.nobs)
        for r, b in zip(self.reterms, split_b(self.reterms, self.u)):
            out += np.einsum("tk,tk->t", r.z, b[r.refs])
        return out

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
        dev = self.family.dev_resid(
            self.y[:, None], self.family.link.linkinv(eta), self.wt[:, None]
        )
        D = self._level_indicator @ dev + U * U  # per level and node
        D0 = (
            self._level_indicator @ self.family.dev_resid(self.y, self.mu, self.wt)
            + self.u * self.u
        )
        with np.errstate(over="ignore"):
            mult = np.exp(-0.5 * (D - D0[:, None]) + 0.5 * rule.z**2) @ rule.w
        return float(D0.sum() - 2.0 * np.log(sd * mult).sum())

    @cached_property
    def _level_indicator(self):
        """Sparse (nlevels x n) matrix summing observations by level of the single term."""
        import scipy.sparse as sp

        remat = self.reterms[0]
        n = len(remat.refs)
        return sp.csr_matrix((np.ones(n), (remat.refs, np.arange(n))), shape=(remat.nlevels, n))

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
        with blas_threads_for(self.lmm.system.dense_dim):
            self._fit(fast, nagq, verbose, progress)
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
        fast_objective = guarded(self.objective_at, "PIRLS")
        minimize(fast_objective, stage1, verbose=verbose, progress=progress, label="GLMM fast fit")
        ensure_converged(
            fast_objective, stage1, policy=settings, names=self.lmm.theta_names, final=fast
        )
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
        theta0, beta0, ntheta = stage1.final.copy(), self.beta.copy(), len(stage1.final)

        def to_params(x: np.ndarray) -> np.ndarray:
            return np.concatenate([x[:ntheta], beta0 + whiten @ x[ntheta:]])

        lower = np.concatenate([self.lowerbd, np.full(len(beta0), -np.inf)])
        stage2 = _fresh_optsum(settings, np.concatenate([theta0, beta0]), lower)
        stage2.initial_step = np.concatenate(
            [np.maximum(0.1 * np.abs(theta0), 0.05), np.ones(len(beta0))]
        )
        stage2.nagq = nagq
        start = np.concatenate([theta0, np.zeros(len(beta0))])
        objective = guarded(lambda x: self._joint_objective(to_params(x)), "PIRLS")
        minimize(
            objective,
            stage2,
            verbose=verbose,
            progress=progress,
            label="GLMM fit",
            start=start,
            to_params=to_params,
        )
        ensure_converged(
            objective,
            stage2,
            policy=settings,
            names=self.lmm.theta_names + self.coefnames,
            start=start,
            to_params=to_params,
            block=slice(ntheta, None),
        )
        self._joint_objective(stage2.final)
        self.optsum = stage2

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
            y = np.asarray(y, dtype=float)
            if y.shape != self.y.shape:
                raise DataError(f"the new response must have shape {self.y.shape}, got {y.shape}")
            self.family.check_response(y, self.wt)
            self._set_response(GlmResponse(self.family, y, self.wt))
        fast = self.fast if fast is None else fast
        nagq = self.nagq if nagq is None else nagq
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            return self.fit(fast=fast, nagq=nagq, verbose=verbose, progress=progress)

    def apply_optsum(self, saved: OptSummary) -> None:
        """Move to a saved optimum without fitting: θ (fast fit) or (θ, β), with PIRLS for the modes."""
        ntheta, p = len(self.theta), len(self.beta)
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

    def _finish(self) -> None:
        self.refactor()
        self.optsum.fmin = self.objective
        self.optsum.fitted = True

    # ---- estimates -------------------------------------------------------------------------
    def refactor(self) -> None:
        """The whole of L (fixed-effects block included) at the working weights of the modes."""
        st = self.state
        self.lmm.system.set_weights(np.sqrt(st.working_weights), st.working_response)
        self.lmm.update_L()

    @property
    def unscaled_vcov(self) -> np.ndarray:
        """(L_X L_X')⁻¹ at the working weights of the modes."""
        self.refactor()
        return self.lmm.unscaled_vcov

    @property
    def vcov(self) -> np.ndarray:
        """φ (L_X L_X')⁻¹ at the conditional modes (MixedModels.jl's; lme4's use.hessian=FALSE)."""
        self.require_fit("vcov")
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
        return self.per_observation(self.mu, "fitted")

    def _residual_values(self, kind: str) -> np.ndarray:
        mu, eta = self.mu, self.eta
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

    def residuals(self, kind: str = "deviance") -> pd.Series:
        """Residuals: ``"deviance"`` (default, as lme4), ``"pearson"``, ``"response"`` or ``"working"``."""
        self.require_fit("residuals")
        return self.per_observation(self._residual_values(kind), "residuals")

    # ---- summaries -------------------------------------------------------------------------
    @property
    def dof(self) -> int:
        return len(self.beta) + len(self.theta) + int(self.family.has_dispersion)

    @property
    def deviance(self) -> float:
        """lme4's deviance(): Σ wᵢ d(yᵢ, μ̃ᵢ), the conditional deviance at the modes."""
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

        return glmm_summary(self)


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
