"""Linear mixed-effects models.

    y = Xβ + Zb + ε,   b ~ N(0, σ² ΛθΛθ'),   ε ~ N(0, σ² W⁻¹)

With b = Λθ u and L the blocked Cholesky factor of the penalised system
(see :mod:`mixedmodels.blocks`), the profiled deviance (-2 log-likelihood
with β and σ at their conditional optima) is

    d(θ) = log|L_Z|² + n [1 + log(2π r²(θ) / n)] - Σ log wᵢ

and the REML criterion

    d_R(θ) = log|L_Z|² + log|L_X|² + (n - p) [1 + log(2π r²(θ) / (n - p))] - Σ log wᵢ

where r²(θ) is the penalised weighted residual sum of squares (the square
of L's last diagonal element).  Both are minimised over θ alone.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any, Mapping

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .blocks import CholeskyFailed, PenalizedSystem
from .convergence import ensure_converged
from .errors import DataError, MixedModelsError
from .fitstats import FitStatistics
from .inference.mixin import InferenceMixin  # light: its methods import their modules when called
from .optimize import minimize
from .optsummary import OptSummary
from .structure import ModelStructure, build_structure
from .threads import blas_threads_for
from .varcorr import term_covariances, varcorr_frame, varcorr_long

__all__ = ["LinearMixedModel"]

def numeric_response(response: Any, expr: str) -> np.ndarray:
    """The response as floats; a clear error for categorical or text responses."""
    if isinstance(response, pd.Series):
        if isinstance(response.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(response) or pd.api.types.is_bool_dtype(response)
        ):
            raise DataError(f"the response {expr!r} must be numeric, got {response.dtype} values")
        response = response.to_numpy(dtype=float)
    arr = np.asarray(response)
    if arr.ndim != 1:
        raise DataError(f"the response {expr!r} must be one numeric column, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise DataError(f"the response {expr!r} must be numeric, got {arr.dtype} values")
    arr = arr.astype(float)
    if arr.size and np.ptp(arr) == 0:
        raise DataError(f"the response {expr!r} is constant ({arr[0]:g}); there is nothing to model")
    return arr


def check_weights(w: np.ndarray | None) -> None:
    if w is None:
        return
    if (w < 0).any():
        raise DataError("weights must not be negative")
    if (w == 0).any():
        raise DataError("weights must be positive (drop the rows with zero weight instead)")


class LinearMixedModel(FitStatistics, InferenceMixin):
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
        Fit by REML instead of maximum likelihood (the default).
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
    dispformula : str, optional
        A residual variance model, e.g. ``"~ 1 + z"`` (log-linear in the
        covariates); the call then returns a
        :class:`~mixedmodels.variance.HeteroskedasticMixedModel` fitted by ML
        (the formula may have no random-effects term at all).

    Examples
    --------
    >>> import mixedmodels as mm
    >>> m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days | Subject)",
    ...                         mm.datasets.load("sleepstudy")).fit()
    >>> round(m.objective, 4)
    1751.9393
    """

    def __new__(cls, formula=None, data=None, *args, dispformula: str | None = None, **kwargs):
        # a residual variance model turns this into a heteroskedastic mixed model (fitted by ML)
        if dispformula is not None and cls is LinearMixedModel:
            if kwargs.get("reml"):
                raise MixedModelsError("a model with a dispformula is fitted by maximum likelihood only: drop reml=True")
            from .variance.hetero import HeteroskedasticMixedModel

            return HeteroskedasticMixedModel(
                formula, data, dispformula=dispformula, weights=kwargs.get("weights"), contrasts=kwargs.get("contrasts")
            )
        return super().__new__(cls)

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        reml: bool = False,
        weights: Any = None,
        contrasts: Mapping[str, Any] | None = None,
        covariance: Mapping[str, Any] | None = None,
        sparse: bool | None = None,
        dispformula: str | None = None,
    ):
        structure = build_structure(
            formula, data, weights=weights, contrasts=contrasts, strict_levels=True, covariance=covariance
        )
        y = numeric_response(structure.response, structure.formula.response)
        self._init_from_structure(structure, y, reml=reml, sparse=sparse)

    def _init_from_structure(self, structure: ModelStructure, y: np.ndarray, *, reml: bool, sparse: bool | None) -> None:
        check_weights(structure.weights)
        if structure.offset is not None:
            y = y - structure.offset
        self.structure = structure
        self.formula = structure.formula.text
        self.reml = bool(reml)
        self.y = y
        self.weights = structure.weights
        sqrtw = None if self.weights is None else np.sqrt(self.weights)
        Xy = np.column_stack([structure.fe.X, y])
        self.system = make_system(structure.reterms, Xy, sqrtw, sparse)
        self.optsum = OptSummary(self._initial_theta(), self.lowerbd, reml=self.reml)

    # ---- θ ----------------------------------------------------------------------
    @property
    def reterms(self):
        return self.structure.reterms

    def _initial_theta(self) -> np.ndarray:
        """λ = I, or lme4's moment start when every term is a random intercept.

        For intercept-only terms lme4 starts from θ_g = √(v_g / v_e), with v_g
        the variance of the response's group means (expanded to observations)
        and v_e = var(y) - Σ v_g, when v_e > 0.  Using the same start, BOBYQA
        takes the same path as in lme4 (and usually fewer evaluations than from λ = I).
        """
        theta = np.concatenate([r.initial_theta() for r in self.reterms])[self.structure.theta_perm]
        if not all(r.cnames == ["(Intercept)"] and not r.has_factor for r in self.reterms):
            return theta
        y = self.y
        v = np.array([np.var(group_means(y, r.refs, r.nlevels)[r.refs], ddof=1) for r in self.reterms])
        v_e = np.var(y, ddof=1) - v.sum()
        if not v_e > 0:
            return theta
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
        internal = np.concatenate([r.get_theta() for r in self.reterms])
        return internal[self.structure.theta_perm]

    def set_theta(self, theta: np.ndarray) -> "LinearMixedModel":
        """Write θ (lme4's order) into the terms' λ, in place."""
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (len(self.lowerbd),):
            raise MixedModelsError(f"theta must have {len(self.lowerbd)} elements, got shape {theta.shape}")
        internal = np.empty_like(theta)
        internal[self.structure.theta_perm] = theta
        start = 0
        for remat in self.reterms:
            remat.set_theta(internal[start : start + remat.ntheta])
            start += remat.ntheta
        self._clear_cache()
        return self

    def _clear_cache(self) -> None:
        for name in ("beta", "u", "_vcov_unscaled"):
            self.__dict__.pop(name, None)

    # ---- objective ------------------------------------------------------------------
    def update_L(self) -> "LinearMixedModel":
        self.system.update_L()
        return self

    def objective_at(self, theta: np.ndarray) -> float:
        """The objective (deviance or REML criterion) at θ; the model's state moves to θ."""
        self.set_theta(theta)
        self.update_L()
        return self.objective

    @property
    def nobs(self) -> int:
        return self.structure.nobs

    @property
    def rank(self) -> int:
        """Rank of the fixed-effects model matrix (number of estimated coefficients)."""
        return self.structure.fe.rank

    @property
    def _resid_dof(self) -> int:
        return self.nobs - self.rank if self.reml else self.nobs

    @property
    def objective(self) -> float:
        """-2 log-likelihood (ML) or the REML criterion at the current θ."""
        s = self.system
        dof = self._resid_dof
        ld = 2.0 * s.logdet_Z() + (2.0 * s.logdet_X() if self.reml else 0.0)
        val = ld + dof * (1.0 + math.log(2.0 * math.pi * s.pwrss() / dof))
        if self.weights is not None:
            val -= float(np.log(self.weights).sum())
        return val

    # ---- fitting ------------------------------------------------------------------------
    def fit(self, verbose: bool = False, progress: bool = False) -> "LinearMixedModel":
        """Minimise the objective over θ with ``optsum``'s optimizer and settings.

        Refitting (after changing ``optsum.optimizer`` or tolerances) starts
        again from ``optsum.initial``.
        """
        self.optsum.reml = self.reml
        self._first_value: float | None = None
        with blas_threads_for(self.system.dense_dim):
            minimize(self._safe_objective, self.optsum, verbose=verbose, progress=progress, label="LMM fit")
            ensure_converged(self._safe_objective, self.optsum, names=self.theta_names)
        self._settle_boundary()
        self.objective_at(self.optsum.final)
        return self

    def refit(self, y: np.ndarray | None = None, *, verbose: bool = False, progress: bool = False) -> "LinearMixedModel":
        """Fit again, optionally to a new response of the same length (no re-parsing).

        Used by the parametric bootstrap and simulation studies: the model
        matrices, terms and blocked storage are reused and only the response
        column of A is recomputed.
        """
        if y is not None:
            y = np.asarray(y, dtype=float)
            if y.shape != (self.nobs,) or not np.isfinite(y).all():
                raise DataError(f"the new response must be {self.nobs} finite values, got shape {y.shape}")
            self.y = y
            self.system.set_response(y)
        self.optsum.fitlog = []
        return self.fit(verbose=verbose, progress=progress)

    def _safe_objective(self, theta: np.ndarray) -> float:
        """The objective, or the first evaluation's value if L cannot be formed.

        A failed factorisation returns a finite value rather than infinity so
        that BOBYQA's quadratic model of the objective is not destroyed.
        """
        try:
            value = self.objective_at(theta)
        except CholeskyFailed:
            if self._first_value is None:
                raise MixedModelsError(
                    "the penalised system is not positive definite at the starting value; "
                    "check the fixed effects for collinearity and the response for constant values"
                ) from None
            return self._first_value
        if self._first_value is None:
            self._first_value = value
        return value

    def _settle_boundary(self) -> None:
        """Set tiny standard-deviation parameters to exactly zero if that does not worsen the fit."""
        theta = self.optsum.final.copy()
        small = np.flatnonzero((self.lowerbd == 0) & (theta != 0) & (np.abs(theta) < 1e-5))
        if small.size == 0:
            return
        trial = theta.copy()
        trial[small] = 0.0
        try:
            value = self.objective_at(trial)
        except CholeskyFailed:
            return
        if value <= self.optsum.fmin:
            self.optsum.final, self.optsum.fmin = trial, value

    # ---- estimates ----------------------------------------------------------------------
    @cached_property
    def beta(self) -> np.ndarray:
        """Fixed-effects estimates (aliased columns dropped)."""
        return self.system.beta()

    @property
    def coefnames(self) -> list[str]:
        return self.structure.fe.coefnames

    @property
    def pwrss(self) -> float:
        return self.system.pwrss()

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        return math.sqrt(self.pwrss / self._resid_dof)

    @cached_property
    def _vcov_unscaled(self) -> np.ndarray:
        Lx = self.system.L33[:-1, :-1]
        Linv = sla.solve_triangular(Lx, np.eye(len(Lx)), lower=True, check_finite=False)
        return Linv.T @ Linv

    @property
    def vcov(self) -> np.ndarray:
        """Covariance matrix of the fixed-effects estimates: σ² (L_X L_X')⁻¹."""
        return self.sigma**2 * self._vcov_unscaled

    @property
    def stderror(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    def coeftable(self, ddf: str | None = None) -> pd.DataFrame:
        """Estimates, standard errors, z statistics and two-sided normal p-values.

        With ``ddf="satterthwaite"`` or ``"kenward-roger"``: t tests on those
        denominator degrees of freedom (lmerTest's table, see
        :mod:`mixedmodels.inference.ddf`).
        """
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

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values Xβ + Zb (+ offset)."""
        out = self.structure.fe.X @ self.beta + self._Zb()
        if self.structure.offset is not None:
            out = out + self.structure.offset
        return out

    def _Zb(self) -> np.ndarray:
        return sum((np.einsum("tk,tk->t", r.z, b[r.refs]) for r, b in zip(self.reterms, self.b())), np.zeros(self.nobs))

    @property
    def residuals(self) -> np.ndarray:
        y = self.y if self.structure.offset is None else self.y + self.structure.offset
        return y - self.fitted

    # ---- summaries ------------------------------------------------------------------------
    @property
    def dof(self) -> int:
        """Number of estimated parameters: β, θ and σ."""
        return self.rank + len(self.theta) + 1

    @property
    def deviance(self) -> float:
        """lme4's deviance(): the objective (REML criterion for a REML fit)."""
        return self.objective

    def varcorr(self, form: str = "wide") -> pd.DataFrame:
        """Variance components.

        ``form="wide"``: group, name, variance, std. dev., correlation (with the
        term's first column); ``form="long"``: lme4's grp, var1, var2, vcov, sdcor.
        """
        terms = term_covariances(self.reterms, term_order(self.reterms), self.sigma)
        return varcorr_long(terms, self.sigma) if form == "long" else varcorr_frame(terms, self.sigma)

    def ranef(self, condvar: bool = False, form: str = "wide") -> dict[str, pd.DataFrame] | pd.DataFrame:
        """Conditional modes of the random effects.

        Returns a dict: grouping factor -> DataFrame (levels x columns).  With
        ``condvar=True`` columns ``condvar(<name>)`` hold conditional variances.
        ``form="long"`` gives lme4's tidy layout (grpvar, term, grp, condval, condsd).
        """
        cv = conditional_variances(self.system, self.reterms, self.sigma) if condvar or form == "long" else None
        return ranef_frames(self.reterms, self.b(), cv, form)

    def __str__(self) -> str:
        from .printing import lmm_summary

        return lmm_summary(self)

    def __repr__(self) -> str:
        return str(self)


# ---------------------------------------------------------------------------
# Helpers shared with the generalised model
# ---------------------------------------------------------------------------
def make_system(reterms, Xy: np.ndarray, sqrtw: np.ndarray | None, sparse: bool | None):
    """The blocked system, or the dense one when a term has a known covariance matrix."""
    if any(r.has_factor for r in reterms):
        from .densesystem import DenseSystem

        return DenseSystem(reterms, Xy, sqrtw)
    return PenalizedSystem(reterms, Xy, sqrtw, sparse=sparse)


# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
def group_means(y: np.ndarray, refs: np.ndarray, nlevels: int) -> np.ndarray:
    """Mean of y in each level."""
    return np.bincount(refs, y, minlength=nlevels) / np.bincount(refs, minlength=nlevels)


def coef_table(beta: np.ndarray, se: np.ndarray, names: list[str]) -> pd.DataFrame:
    from scipy.stats import norm

    z = beta / se
    return pd.DataFrame(
        {"Estimate": beta, "Std. Error": se, "z": z, "p": 2 * norm.sf(np.abs(z))}, index=names
    )


def split_b(reterms, u: np.ndarray) -> list[np.ndarray]:
    """b = Λu per term, reshaped to (nlevels, k)."""
    out, start = [], 0
    for r in reterms:
        out.append(r.b_from_u(u[start : start + r.q]))
        start += r.q
    return out


def term_order(reterms) -> list[tuple[int, int]]:
    """(ReMat index, block index) of each original term in lme4's order."""
    pairs = [(-r.nlevels, tid, ri, bi) for ri, r in enumerate(reterms) for bi, tid in enumerate(r.term_ids)]
    return [(ri, bi) for _, _, ri, bi in sorted(pairs)]


def conditional_variances(system: PenalizedSystem, reterms, sigma: float, max_entries: int = 2**24) -> list[np.ndarray]:
    """Diagonal blocks of Var(b | y) = σ² Λ (L_Z L_Z')⁻¹ Λ' per term, shape (nlevels, k, k).

    Conditional on β̂, as lme4 and MixedModels.jl report them.  Columns of
    L_Z⁻¹ are formed a chunk of levels at a time, so memory stays below
    ``max_entries`` doubles.
    """
    q = sum(r.q for r in reterms)
    out, start = [], 0
    for r in reterms:
        if r.has_factor:  # Var(b|y) = σ²λ² F M F' with M the term's block of (L_Z L_Z')⁻¹
            M = system.LZ_inverse_columns(start, start + r.q)
            FM = r.factor @ (M.T @ M)
            out.append((sigma * r.lambda_[0, 0]) ** 2 * np.einsum("ij,ij->i", FM, r.factor)[:, None, None])
            start += r.q
            continue
        blocks = np.empty((r.nlevels, r.k, r.k))
        step = max(1, max_entries // (q * r.k))
        for lo in range(0, r.nlevels, step):
            hi = min(r.nlevels, lo + step)
            M = system.LZ_inverse_columns(start + lo * r.k, start + hi * r.k)
            cols = M.reshape(q, hi - lo, r.k)
            inner = np.einsum("ila,ilb->lab", cols, cols)
            blocks[lo:hi] = sigma**2 * (r.lambda_ @ inner @ r.lambda_.T)
        out.append(blocks)
        start += r.q
    return out


def ranef_frames(reterms, b: list[np.ndarray], condvar: list[np.ndarray] | None, form: str):
    if form == "long":
        rows = []
        for r, bb, cv in zip(reterms, b, condvar):
            for j, name in enumerate(r.cnames):
                sd = np.sqrt(cv[:, j, j])
                rows.append(pd.DataFrame({"grpvar": r.name, "term": name, "grp": r.levels, "condval": bb[:, j], "condsd": sd}))
        return pd.concat(rows, ignore_index=True)
    out = {}
    for i, (r, bb) in enumerate(zip(reterms, b)):
        df = pd.DataFrame(bb, index=pd.Index(r.levels, name=r.name), columns=r.cnames)
        if condvar is not None:
            for j, name in enumerate(r.cnames):
                df[f"condvar({name})"] = condvar[i][:, j, j]
        out[r.name] = df
    return out
