"""Linear mixed-effects models.

    y = Xβ + Zb + ε,   b ~ N(0, σ² ΛθΛθ'),   ε ~ N(0, σ² W⁻¹)

With b = Λθ u and L the blocked Cholesky factor of the penalised system
(see :mod:`mixedmodels.blocks`), the profiled deviance (-2 log-likelihood
with β and σ at their conditional optima) is

    d(θ) = log|L_Z|² + n [1 + log(2π r²(θ) / n)] - Σ log wᵢ

and the REML criterion

    d_R(θ) = log|L_Z|² + log|L_X|² + (n - p) [1 + log(2π r²(θ) / (n - p))] - Σ log wᵢ

where r²(θ) is the penalised weighted residual sum of squares (the square
of L's last diagonal element).  Both are minimised over θ alone.  With σ
given instead of profiled out,

    d(θ, σ)   = log|L_Z|² + r²(θ)/σ² + n log(2πσ²) - Σ log wᵢ
    d_R(θ, σ) = d(θ, σ) + log|L_X|² - p log(2πσ²)

(the forms Satterthwaite's method and the profiles differentiate).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .blocks import PenalizedSystem
from .convergence import ensure_converged
from .errors import EVALUATION_FAILURES, DataError, MixedModelsError, SingularFitWarning
from .inference.mixin import InferenceMixin  # light: its methods import their modules when called
from .model import MixedModel
from .optimize import guarded, minimize
from .optsummary import OptSummary
from .results import (
    coef_table,
    conditional_variances,
    group_means,
    ranef_frames,
    split_b,
)
from .structure import ModelStructure, build_structure, lme4_blocks
from .thetalayout import gather_theta, scatter_theta
from .threads import SMALL_DENSE, blas_threads_for
from .varcorr import term_covariances, varcorr_frame, varcorr_long

ROUNDOFF_STOP_DENSE = 2000
"""From this many rows of the largest dense block, a fit stops once BOBYQA only samples roundoff.

Such a block costs a second or so an evaluation (a 3706-row block B: 0.4 s
for its Cholesky factor alone), and near the optimum BOBYQA goes on
shrinking its trust region down to ``xtol_abs`` (1e-10) although every
value it sees equals the best one to within a few units of roundoff: in
the MovieLens-shaped fit, the last 18 of 49 evaluations.  Such models set
``optsum.roundoff_evals`` to 2 n + 1 (BOBYQA's interpolation points for n
parameters; see :class:`~mixedmodels.optsummary.OptSummary`).  Smaller
models keep NLopt's own stopping rule, so that their path follows lme4's
evaluation for evaluation (forced on, the rule never fires on dyestuff,
sleepstudy, penicillin, pastes or InstEval: the same evaluations, the same
optima).
"""

MOMENT_START_STEP = 0.1
"""BOBYQA's first step, times θ - lower, from the moment start of a model with a large dense block.

NLopt's default (and lme4's) is 0.75 θ: BOBYQA's first 2 n + 1 points then
lie far from a moment start that is already within a few per cent of the
optimum when the levels have many observations each, and it spends dozens of
evaluations shrinking its trust region back.  From 0.1 θ, InstEval's fit
(block B of 1156 rows) takes 51 evaluations instead of 78 and ends 3e-7 lower;
the MovieLens-shaped fit (3706 rows) 17 instead of 49, 1e-8 lower (0.25 θ: 43
evaluations but 1.4e-5 higher on InstEval, 24 on MovieLens).  On the small
reference models the counts move both ways (dyestuff 22 -> 15, ergostool
14 -> 18, ScotsSec 33 -> 43) for no gain in time, so the step is applied only
from ``SMALL_DENSE`` rows of the largest dense block (mixedmodels/threads.py:
the size from which a dense factorisation costs milliseconds and threads pay
off).  ``optsum.use_lme4_settings()`` restores NLopt's steps, and lme4's path.
"""

__all__ = [
    "LinearMixedModel",
    "new_response",
    "numeric_response",
    "check_weights",
    "make_system",
    "data_index",
]


def new_response(y: Any) -> np.ndarray:
    """A response passed to ``refit`` as floats; a DataError if its values are not numbers."""
    try:
        return np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the new response must be numbers: {exc}") from None


def numeric_response(response: Any, expr: str) -> np.ndarray:
    """The response as floats; a clear error for categorical or text responses."""
    if isinstance(response, pd.Series):
        if isinstance(response.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(response) or pd.api.types.is_bool_dtype(response)
        ):
            raise DataError(f"the response {expr!r} must be numeric, got {response.dtype} values")
        if pd.api.types.is_complex_dtype(response):
            raise DataError(
                f"the response {expr!r} has complex values; give its real part or modulus"
            )
        response = response.to_numpy(dtype=float)
    arr = np.asarray(response)
    if arr.ndim != 1:
        raise DataError(f"the response {expr!r} must be one numeric column, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise DataError(f"the response {expr!r} has complex values; give its real part or modulus")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise DataError(f"the response {expr!r} must be numeric, got {arr.dtype} values")
    arr = arr.astype(float)
    if arr.size and np.ptp(arr) == 0:
        raise DataError(
            f"the response {expr!r} is constant ({arr[0]:g}); there is nothing to model"
        )
    return arr


def check_weights(w: np.ndarray | None) -> None:
    if w is None:
        return
    if (w < 0).any():
        raise DataError("weights must not be negative")
    if (w == 0).any():
        raise DataError("weights must be positive (drop the rows with zero weight instead)")


def data_index(data: Any, structure: ModelStructure) -> pd.Index:
    """Index labels of the rows of ``data`` that the model uses."""
    index = (
        data.index
        if isinstance(data, pd.DataFrame)
        else pd.RangeIndex(structure.frame.rows.max() + 1)
    )
    return index.take(structure.frame.rows)


def r_spelling(kwargs: dict, r_name: str, py_name: str, current: Any) -> Any:
    """Accept an R spelling (``REML=``, ``nAGQ=``) for a Python keyword; refuse both at once."""
    if r_name not in kwargs:
        return current
    value = kwargs.pop(r_name)
    if current is not None and current != value:
        raise MixedModelsError(f"give {py_name}= or {r_name}=, not both")
    return value


def reject_unknown(kwargs: dict, where: str) -> None:
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise MixedModelsError(f"{where} got unexpected keyword argument(s): {names}")


class LinearMixedModel(InferenceMixin, MixedModel):
    """A linear mixed-effects model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ 1 + Days + (1 + Days | Subject)"``.  Random terms
        ``(expr | g)``, ``(expr || g)`` (uncorrelated), ``g/h`` (nested),
        ``g:h`` (interaction).  The fixed part is handled by formulaic.
    data : DataFrame
        Not modified.  Rows with missing values in used columns are dropped.
    reml : bool
        Fit by REML instead of maximum likelihood (the default); lme4's
        spelling ``REML=`` is accepted too.
    weights : str or array, optional
        Prior weights: a column name or one positive value per row.
    contrasts : dict, optional
        Column -> contrasts (``"sum"``, ``"helmert"``, ``"poly"``,
        ``"treatment"``, ``"diff"`` or a formulaic Contrasts object).
        Treatment contrasts with the data's category order by default.
    covariance : dict, optional
        Grouping factor -> known covariance matrix K of its scalar term
        ``(1|g)``: b ~ N(0, σ²θ²K), e.g. a kinship matrix.  K is a DataFrame
        indexed by level labels or an array in the factor's level order.

    A residual variance model (``dispformula``) is a different model:
    :class:`~mixedmodels.variance.hetero.HeteroskedasticMixedModel`.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days | Subject)",
    ...                         mm.datasets.load("sleepstudy")).fit()
    >>> round(m.objective, 4)
    1751.9393
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        reml: bool | None = None,
        weights: Any = None,
        contrasts: Mapping[str, Any] | None = None,
        covariance: Mapping[str, Any] | None = None,
        sparse: bool | None = None,
        **kwargs: Any,
    ):
        reml = r_spelling(kwargs, "REML", "reml", reml)
        if "dispformula" in kwargs:
            raise MixedModelsError(
                "a residual variance model is a HeteroskedasticMixedModel: use "
                "mm.HeteroskedasticMixedModel(formula, data, dispformula=...)"
            )
        reject_unknown(kwargs, "LinearMixedModel()")
        self.record_call(
            formula,
            data,
            reml=reml,
            weights=weights,
            contrasts=contrasts,
            covariance=covariance,
            sparse=sparse,
        )
        with blas_threads_for(0):  # small BLAS calls: spinning threads only cost under load
            structure = build_structure(
                formula,
                data,
                weights=weights,
                contrasts=contrasts,
                strict_levels=True,
                covariance=covariance,
            )
            y = numeric_response(structure.response, structure.formula.response)
            index = data_index(data, structure)
            self._setup(structure, y, reml=bool(reml), sparse=sparse, index=index)

    @classmethod
    def from_structure(
        cls,
        structure: ModelStructure,
        y: np.ndarray,
        *,
        reml: bool = False,
        sparse: bool | None = None,
        index: pd.Index | None = None,
    ) -> LinearMixedModel:
        """A model of an already-built structure and response ``y`` (offset included), unfitted.

        Used by models built on an LMM (the GLMM's working model, profiles
        of a fixed effect, starting values), with no formula parsing.
        """
        model = cls.__new__(cls)
        index = pd.RangeIndex(structure.nobs) if index is None else index
        model._setup(structure, np.asarray(y, dtype=float), reml=reml, sparse=sparse, index=index)
        return model

    def _setup(
        self,
        structure: ModelStructure,
        y: np.ndarray,
        *,
        reml: bool,
        sparse: bool | None,
        index: pd.Index,
    ) -> None:
        check_weights(structure.weights)
        self.structure = structure
        self.formula = structure.formula.text
        self._reml = bool(reml)
        self.obs_index = index
        self.y = y if structure.offset is None else y - structure.offset
        self.weights = structure.weights
        sqrtw = None if self.weights is None else np.sqrt(self.weights)
        Xy = np.column_stack([structure.fe.X, self.y])
        self.system = make_system(structure.reterms, Xy, sqrtw, sparse)
        moment = self._moment_theta()
        initial = self._identity_theta() if moment is None else moment
        self.optsum = OptSummary(initial, self.lowerbd, reml=self.reml)
        self._expensive_fit_settings(moment is not None)

    def _expensive_fit_settings(self, moment_start: bool) -> None:
        """BOBYQA's stop and first steps for a model whose evaluations are expensive.

        See ``ROUNDOFF_STOP_DENSE`` and ``MOMENT_START_STEP``.
        """
        dim = self.system.dense_dim
        if dim >= ROUNDOFF_STOP_DENSE:
            self.optsum.roundoff_evals = 2 * len(self.lowerbd) + 1
        if moment_start and dim >= SMALL_DENSE:
            step = MOMENT_START_STEP * (self.optsum.initial - self.lowerbd)
            self.optsum.initial_step = np.where(step > 0, step, self.optsum.initial_step)

    def _after_load(self) -> None:
        if self.is_fitted:  # a GLMM's working LMM is refactored by the GLMM itself
            self.update_L()

    # ---- what the model is ----------------------------------------------------------------
    @property
    def reml(self) -> bool:
        return self._reml

    @reml.setter
    def reml(self, value: bool) -> None:
        self._reml = bool(value)

    @property
    def is_evaluated(self) -> bool:
        return bool(getattr(self.system, "ok", False))

    @property
    def response(self) -> np.ndarray:
        """y as given (the blocked system works with y - offset)."""
        return self.y if self.structure.offset is None else self.y + self.structure.offset

    # ---- θ ----------------------------------------------------------------------
    def _initial_theta(self) -> np.ndarray:
        """λ = I, or lme4's moment start (:meth:`_moment_theta`) when there is one."""
        moment = self._moment_theta()
        return self._identity_theta() if moment is None else moment

    def _identity_theta(self) -> np.ndarray:
        """θ for λ = I."""
        return np.concatenate([r.initial_theta() for r in self.reterms])[self.structure.theta_perm]

    def _moment_theta(self) -> np.ndarray | None:
        """lme4's moment start when every term is a random intercept, else None.

        For intercept-only terms lme4 starts from θ_g = √(v_g / v_e), with v_g
        the variance of the response's group means (expanded to observations)
        and v_e = var(y) - Σ v_g, when v_e > 0.  Using the same start, BOBYQA
        takes the same path as in lme4 (and usually fewer evaluations than from λ = I).
        """
        if not all(r.cnames == ["(Intercept)"] and not r.has_factor for r in self.reterms):
            return None
        y = self.y
        v = np.array(
            [np.var(group_means(y, r.refs, r.nlevels)[r.refs], ddof=1) for r in self.reterms]
        )
        v_e = np.var(y, ddof=1) - v.sum()
        if not v_e > 0:
            return None
        return np.sqrt(v / v_e)[self.structure.theta_perm]

    @cached_property
    def lowerbd(self) -> np.ndarray:
        """Lower bounds of θ (0 for standard deviations, -inf for other elements)."""
        return np.concatenate([r.lowerbd() for r in self.reterms])[self.structure.theta_perm]

    @cached_property
    def theta_names(self) -> list[str]:
        names = [n for r in self.reterms for n in r.theta_names()]
        return [names[i] for i in self.structure.theta_perm]

    @property
    def theta(self) -> np.ndarray:
        """Relative covariance parameters in lme4's order."""
        return gather_theta(self.reterms, self.structure.theta_perm)

    def set_theta(self, theta: np.ndarray) -> LinearMixedModel:
        """Write θ (lme4's order) into the terms' λ, in place."""
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (len(self.lowerbd),):
            raise MixedModelsError(
                f"theta must have {len(self.lowerbd)} elements, got shape {theta.shape}"
            )
        scatter_theta(self.reterms, self.structure.theta_perm, theta)
        self._clear_cache()
        return self

    def _clear_cache(self) -> None:
        for name in ("beta", "u", "unscaled_vcov"):
            self.__dict__.pop(name, None)

    # ---- objective ------------------------------------------------------------------
    def update_L(self) -> LinearMixedModel:
        """Refactor the system at the current θ and weights (in place)."""
        self.system.update_L()
        self._clear_cache()
        return self

    def objective_at(
        self, theta: np.ndarray, *, beta: np.ndarray | None = None, sigma: float | None = None
    ) -> float:
        """The objective at θ (σ profiled out unless given); the model's state moves to θ.

        β is always profiled out (the blocked factor gives its conditional
        optimum); with ``sigma`` given, the σ-fixed forms of the module
        docstring.
        """
        if beta is not None:
            raise MixedModelsError(
                "a linear mixed model profiles β out: objective_at takes no beta"
            )
        self.set_theta(theta)
        self.update_L()
        return self.objective if sigma is None else self._objective_fixed_sigma(float(sigma))

    def _objective_fixed_sigma(self, sigma: float) -> float:
        s = self.system
        s2 = sigma * sigma
        value = 2.0 * s.logdet_Z() + s.pwrss() / s2 + self.nobs * math.log(2.0 * math.pi * s2)
        if self.reml:
            value += 2.0 * s.logdet_X() - self.rank * math.log(2.0 * math.pi * s2)
        return value - self._log_weights

    @cached_property
    def _log_weights(self) -> float:
        return 0.0 if self.weights is None else float(np.log(self.weights).sum())

    @property
    def _resid_dof(self) -> int:
        return self.nobs - self.rank if self.reml else self.nobs

    @property
    def objective(self) -> float:
        """-2 log-likelihood (ML) or the REML criterion at the current θ."""
        s = self.system
        dof = self._resid_dof
        ld = 2.0 * s.logdet_Z() + (2.0 * s.logdet_X() if self.reml else 0.0)
        return ld + dof * (1.0 + math.log(2.0 * math.pi * s.pwrss() / dof)) - self._log_weights

    # ---- fitting ------------------------------------------------------------------------
    def fit(
        self,
        verbose: bool = False,
        progress: bool = False,
        *,
        reml: bool | None = None,
        **kwargs: Any,
    ) -> LinearMixedModel:
        """Minimise the objective over θ with ``optsum``'s optimizer and settings.

        Refitting (after changing ``optsum.optimizer`` or tolerances) starts
        again from ``optsum.initial``.  ``reml=`` (or ``REML=``) switches the
        criterion before fitting.
        """
        reml = r_spelling(kwargs, "REML", "reml", reml)
        reject_unknown(kwargs, "fit()")
        if reml is not None:
            self.reml = bool(reml)
        self.optsum.reml = self.reml
        objective = guarded(self.objective_at, "the profiled deviance")
        with blas_threads_for(self.system.dense_dim):
            minimize(objective, self.optsum, verbose=verbose, progress=progress, label="LMM fit")
            ensure_converged(objective, self.optsum, names=self.theta_names)
            self._settle_boundary()
            self.objective_at(self.optsum.final)
        self._warn_if_singular()
        return self

    def _warn_if_singular(self) -> None:
        if self.issingular:
            warnings.warn(
                f"boundary (singular) fit: {self.boundary_text()}; see the model's issingular",
                SingularFitWarning,
                stacklevel=3,
            )

    def refit(
        self, y: np.ndarray | None = None, *, verbose: bool = False, progress: bool = False
    ) -> LinearMixedModel:
        """Fit again, optionally to a new response of the same length (no re-parsing).

        ``y`` is on the scale of :attr:`response` (an offset is subtracted
        here).  Used by the parametric bootstrap and simulation studies: the
        model matrices, terms and blocked storage are reused and only the
        response column of A is recomputed.
        """
        if y is not None:
            y = new_response(y)
            if y.shape != (self.nobs,) or not np.isfinite(y).all():
                raise DataError(
                    f"the new response must be {self.nobs} finite values, got shape {y.shape}"
                )
            self.y = y if self.structure.offset is None else y - self.structure.offset
            self.system.set_response(self.y)
        self.optsum.fitlog = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            return self.fit(verbose=verbose, progress=progress)

    def apply_optsum(self, saved: OptSummary) -> None:
        """Move to a saved optimum without fitting (the number of θ and the criterion must match)."""
        if len(saved.final) != len(self.theta):
            raise MixedModelsError(
                f"the saved optimisation has {len(saved.final)} parameters; this model has {len(self.theta)} "
                f"({', '.join(self.theta_names)})"
            )
        if bool(saved.reml) != self.reml:
            kind = "REML" if saved.reml else "maximum likelihood"
            raise MixedModelsError(
                f"the saved optimisation is a {kind} fit; construct the model with reml={bool(saved.reml)}"
            )
        self.optsum = saved
        self.objective_at(saved.final)

    def _settle_boundary(self) -> None:
        """Set tiny standard-deviation parameters to exactly zero if that does not worsen the fit."""
        theta = self.optsum.final.copy()
        small = np.flatnonzero((self.lowerbd == 0) & (theta != 0) & (np.abs(theta) < 1e-5))
        if small.size == 0:
            return
        trial = theta.copy()
        trial[small] = 0.0
        value = _try_objective(self, trial)
        if value is not None and value <= self.optsum.fmin:
            self.optsum.final, self.optsum.fmin = trial, value

    # ---- estimates ----------------------------------------------------------------------
    @cached_property
    def beta(self) -> np.ndarray:
        """Fixed-effects estimates (aliased columns dropped)."""
        return self.system.beta()

    @property
    def pwrss(self) -> float:
        return self.system.pwrss()

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        return math.sqrt(self.pwrss / self._resid_dof)

    @cached_property
    def unscaled_vcov(self) -> np.ndarray:
        """(L_X L_X')⁻¹ at the current θ: the covariance of β̂ in units of σ²."""
        Lx = self.system.L33[:-1, :-1]
        Linv = sla.solve_triangular(Lx, np.eye(len(Lx)), lower=True, check_finite=False)
        return Linv.T @ Linv

    @property
    def vcov(self) -> np.ndarray:
        """Covariance matrix of the fixed-effects estimates: σ² (L_X L_X')⁻¹."""
        self.require_fit("vcov")
        return self.sigma**2 * self.unscaled_vcov

    def coeftable(self, ddf: str | None = None, component: str = "cond") -> pd.DataFrame:
        """Estimates, standard errors, z statistics and two-sided normal p-values.

        With ``ddf="satterthwaite"`` or ``"kenward-roger"``: t tests on those
        denominator degrees of freedom (lmerTest's table, see
        :mod:`mixedmodels.inference.ddf`).  ``component`` can only be ``"cond"``.
        """
        self.check_component(component)
        self.require_fit("the coefficient table")
        if ddf is not None:
            return self._ddf_coeftable(ddf)
        return coef_table(self.beta, self.stderror, self.coefnames)

    @cached_property
    def u(self) -> np.ndarray:
        """Spherical random effects (conditional modes of u, b = Λu), all terms stacked."""
        return self.system.u(self.beta)

    def b(self) -> list[np.ndarray]:
        """Conditional modes of the random effects per term (block order), shape (nlevels, k)."""
        return split_b(self.reterms, self.u)

    def _fitted_values(self) -> np.ndarray:
        out = self.structure.fe.X @ self.beta + self._Zb()
        if self.structure.offset is not None:
            out = out + self.structure.offset
        return out

    def fitted(self) -> pd.Series:
        """Fitted values Xβ + Zb (+ offset), indexed like the data."""
        self.require_fit("fitted values")
        return self.per_observation(self._fitted_values(), "fitted")

    def _Zb(self) -> np.ndarray:
        return sum(
            (np.einsum("tk,tk->t", r.z, b[r.refs]) for r, b in zip(self.reterms, self.b())),
            np.zeros(self.nobs),
        )

    def residuals(self, kind: str | None = None, *, type: str | None = None) -> pd.Series:
        """Residuals y - ŷ (``"response"``, the default, and ``"working"``), or times √w
        (``"pearson"`` and ``"deviance"``, as lme4's for a weighted fit)."""
        kind = self.residual_kind(
            kind, type, "response", ("response", "pearson", "deviance", "working")
        )
        self.require_fit("residuals")
        r = self.response - self._fitted_values()
        if kind in ("pearson", "deviance"):
            r = r * np.sqrt(self.prior_weights)
        return self.per_observation(r, "residuals")

    # ---- summaries ------------------------------------------------------------------------
    @property
    def deviance(self) -> float:
        """lme4's deviance(): the objective (REML criterion for a REML fit)."""
        return self.objective

    def varcorr(self, form: str = "wide") -> pd.DataFrame:
        """Variance components.

        ``form="wide"``: group, name, variance, std. dev. and ``corr_1 … corr_{k-1}``
        (the full lower triangle of each term's correlations, as lme4 prints it);
        ``form="long"``: lme4's grp, var1, var2, vcov, sdcor.
        """
        self.require_fit("varcorr")
        terms = term_covariances(self.reterms, lme4_blocks(self.reterms), self.sigma)
        return (
            varcorr_long(terms, self.sigma) if form == "long" else varcorr_frame(terms, self.sigma)
        )

    def ranef(
        self, condvar: bool = False, form: str = "wide"
    ) -> dict[str, pd.DataFrame] | pd.DataFrame:
        """Conditional modes of the random effects.

        Returns a dict: grouping factor -> DataFrame (levels x columns).  With
        ``condvar=True`` columns ``condvar(<name>)`` hold conditional variances.
        ``form="long"`` gives lme4's tidy layout (grpvar, term, grp, condval, condsd).
        """
        self.require_fit("ranef")
        cv = (
            conditional_variances(self.system, self.reterms, self.sigma)
            if condvar or form == "long"
            else None
        )
        return ranef_frames(self.reterms, self.b(), cv, form)

    def __str__(self) -> str:
        from .printing import lmm_summary

        return lmm_summary(self)


def _try_objective(model: MixedModel, theta: np.ndarray) -> float | None:
    """The objective at θ, or None where it cannot be evaluated."""
    try:
        return model.objective_at(theta)
    except EVALUATION_FAILURES:
        return None


def make_system(reterms, Xy: np.ndarray, sqrtw: np.ndarray | None, sparse: bool | None):
    """The blocked system, or the dense one when a term has a known covariance matrix."""
    if any(r.has_factor for r in reterms):
        from .densesystem import DenseSystem

        return DenseSystem(reterms, Xy, sqrtw)
    return PenalizedSystem(reterms, Xy, sqrtw, sparse=sparse)
