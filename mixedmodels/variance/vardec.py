"""Variance decomposition over known covariance matrices by REML (limix's VarDec).

    y ~ N(Xβ, V),   V = Σ_k σ_k K_k,   σ_k ≥ 0,

with kernels K_k (n x n, e.g. a genomic relationship matrix and a
same-family matrix) and, unless told otherwise, the identity as the
"residual" kernel.  The restricted (REML) log-likelihood is

    ℓ_R(σ) = -½ [log|V| + log|X'V⁻¹X| + y'Py + (n - p) log 2π],
    P = V⁻¹ - V⁻¹X(X'V⁻¹X)⁻¹X'V⁻¹,

(no log|X'X| term), maximised over σ ≥ 0 by projected Newton steps with
its exact derivatives

    ∂(-2ℓ_R)/∂σ_k = tr(PK_k) - y'PK_kPy,
    ∂²(-2ℓ_R)/∂σ_k∂σ_l = -tr(PK_kPK_l) + 2 y'PK_kPK_lPy.

Standard errors come from the REML (Fisher) information
I_kl = ½ tr(PK_kPK_l) over the components not on the boundary; the
fractions f_k = σ_k / Σ_j σ_j get theirs by the delta method.  Components
estimated at exactly zero are flagged as on the boundary and get no
standard error.  Each evaluation costs O(n³) (dense Cholesky factor of V).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..errors import DataError
from ..genio.samples import labels_of, positions
from ..lmm import coef_table
from ..optsummary import OptSummary
from ..progress import ProgressOption, progress_bar
from .gaussfit import inverse_information
from .newton import minimize_bounded

__all__ = ["VarianceDecomposition", "vardec"]

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass
class _RemlState:
    """P-related quantities at one σ."""

    sigma: np.ndarray
    objective: float
    P: np.ndarray  # (n, n)
    Py: np.ndarray  # (n,)
    beta: np.ndarray
    XtViX: np.ndarray


class RemlLikelihood:
    """-2ℓ_R(σ) of the module docstring with its gradient, Hessian and information.

    The last evaluation is kept, so that the gradient, Hessian and
    information at one σ share one factorisation.
    """

    def __init__(self, y: np.ndarray, X: np.ndarray, kernels: list[np.ndarray | None]):
        """``kernels``: (n, n) arrays, ``None`` standing for the identity (products with it are free)."""
        self.y, self.X, self.kernels = y, X, kernels
        self._last: _RemlState | None = None

    def _V(self, sigma: np.ndarray) -> np.ndarray:
        n = len(self.y)
        V = np.zeros((n, n))
        for s, K in zip(sigma, self.kernels):
            if K is None:
                V[np.diag_indices(n)] += s
            else:
                V += s * K
        return V

    def _times(self, M: np.ndarray) -> list[np.ndarray]:
        """M K_k for each kernel."""
        return [M if K is None else M @ K for K in self.kernels]

    def state(self, sigma: np.ndarray) -> _RemlState:
        sigma = np.asarray(sigma, dtype=float)
        if self._last is None or not np.array_equal(self._last.sigma, sigma):
            self._last = self._evaluate(sigma)
        return self._last

    def _evaluate(self, sigma: np.ndarray) -> _RemlState:
        n, p = self.X.shape
        cf = sla.cho_factor(self._V(sigma), lower=True, check_finite=False)
        Vinv = sla.cho_solve(cf, np.eye(n), check_finite=False)
        ViX = Vinv @ self.X
        XtViX = self.X.T @ ViX
        cx = sla.cho_factor(XtViX, lower=True, check_finite=False)
        P = Vinv - ViX @ sla.cho_solve(cx, ViX.T, check_finite=False)
        Py = P @ self.y
        logdets = 2.0 * np.log(np.diag(cf[0])).sum() + 2.0 * np.log(np.diag(cx[0])).sum()
        value = logdets + float(self.y @ Py) + (n - p) * LOG_2PI
        beta = sla.cho_solve(cx, ViX.T @ self.y, check_finite=False)
        return _RemlState(sigma.copy(), value, P, Py, beta, XtViX)

    def objective_gradient(self, sigma: np.ndarray) -> tuple[float, np.ndarray]:
        st = self.state(sigma)
        trace = [np.trace(st.P) if K is None else np.sum(st.P * K) for K in self.kernels]
        quad = [st.Py @ KPy for KPy in self._times(st.Py)]
        return st.objective, np.array(trace) - np.array(quad)

    def hessian(self, sigma: np.ndarray) -> np.ndarray:
        """Observed Hessian of -2ℓ_R."""
        st = self.state(sigma)
        PK = self._times(st.P)
        KPy = np.column_stack(self._times(st.Py))  # K symmetric: K Py = (Py' K)'
        trace = np.array([[np.sum(a * b.T) for b in PK] for a in PK])
        return -trace + 2.0 * KPy.T @ st.P @ KPy

    def information(self, sigma: np.ndarray) -> np.ndarray:
        """REML (Fisher) information of σ: ½ tr(PK_kPK_l)."""
        PK = self._times(self.state(sigma).P)
        return 0.5 * np.array([[np.sum(a * b.T) for b in PK] for a in PK])


@dataclass
class VarianceDecomposition:
    """REML estimates for one phenotype.

    Attributes
    ----------
    names : list of str
        Component (kernel) names, the residual last.
    variances, variance_se : ndarray (k,)
        σ_k and standard errors (NaN on the boundary).
    fractions, fraction_se : ndarray (k,)
        σ_k / Σσ_j and delta-method standard errors (NaN on the boundary).
    boundary : ndarray of bool (k,)
        Components estimated at exactly zero.
    beta, beta_se : ndarray (p,)
        GLS coefficients of the covariates at σ̂ and their standard errors.
    covariate_names : list of str
    reml_loglik : float
    nobs : int
    converged : bool
    vcov : ndarray (k, k)
        Covariance of σ̂ (inverse information; NaN rows on the boundary).
    optsum : OptSummary
        The Newton search over σ (objective -2ℓ_R), recorded as the core's fits are.
    """

    names: list[str]
    variances: np.ndarray
    variance_se: np.ndarray
    fractions: np.ndarray
    fraction_se: np.ndarray
    boundary: np.ndarray
    beta: np.ndarray
    beta_se: np.ndarray
    covariate_names: list[str]
    reml_loglik: float
    nobs: int
    converged: bool
    vcov: np.ndarray = field(repr=False)
    optsum: OptSummary | None = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per component: variance, its se, fraction, its se, boundary flag."""
        return pd.DataFrame(
            {
                "variance": self.variances,
                "se": self.variance_se,
                "fraction": self.fractions,
                "fraction_se": self.fraction_se,
                "boundary": self.boundary,
            },
            index=pd.Index(self.names, name="component"),
        )

    def coeftable(self) -> pd.DataFrame:
        return coef_table(self.beta, self.beta_se, self.covariate_names)

    def __str__(self) -> str:
        head = f"Variance decomposition by REML: {self.nobs} observations"
        lines = [
            f"{head}, REML log-likelihood {self.reml_loglik:.4f}",
            self.table().to_string(float_format=lambda v: f"{v:.6g}"),
        ]
        if self.boundary.any():
            zero = ", ".join(n for n, b in zip(self.names, self.boundary) if b)
            lines.append(f" on the boundary (estimated at zero, no standard error): {zero}")
        if not self.converged:
            lines.append(" warning: the optimiser did not converge")
        return "\n".join(lines)


def _fractions(
    sigma: np.ndarray, cov: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """f = σ / Σσ and its delta-method standard errors (boundary components held at zero)."""
    total = sigma.sum()
    frac = sigma / total
    J = (np.eye(len(sigma)) - frac[:, None]) / total  # ∂f_k/∂σ_l
    Jf = J[:, free]
    se = np.sqrt(np.diag(Jf @ cov[np.ix_(free, free)] @ Jf.T))
    return frac, np.where(free, se, np.nan)


def _start(y: np.ndarray, X: np.ndarray, kernels: list[np.ndarray | None]) -> np.ndarray:
    """Equal shares of the least-squares residual variance, scaled by each kernel's mean diagonal."""
    e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    s2 = float(e @ e) / max(len(y) - X.shape[1], 1)
    scale = [1.0 if K is None else max(np.mean(np.diag(K)), 1e-12) for K in kernels]
    return s2 / len(kernels) / np.array(scale)


def _fit_one(
    y: np.ndarray,
    X: np.ndarray,
    kernels: list[np.ndarray | None],
    names: list[str],
    xnames: list[str],
) -> VarianceDecomposition:
    lik = RemlLikelihood(y, X, kernels)
    lower = np.zeros(len(kernels))
    opt = minimize_bounded(lik.objective_gradient, lik.hessian, _start(y, X, kernels), lower)
    sigma, free = opt.x, opt.x > 0
    cov = inverse_information(lik.information(sigma), free)
    frac, frac_se = _fractions(sigma, cov, free)
    st = lik.state(sigma)
    beta_cov = np.linalg.inv(st.XtViX)
    return VarianceDecomposition(
        names, sigma, np.sqrt(np.diag(cov)), frac, frac_se, ~free, st.beta, np.sqrt(np.diag(beta_cov)),
        xnames, -0.5 * opt.fun, len(y), opt.converged, cov, opt.optsum,
    )  # fmt: skip


def _check_kernels(
    kernels: Mapping[str, np.ndarray],
    n: int,
    residual: str | None,
    ids: pd.Index | None = None,
    assume_same_order: bool = False,
) -> tuple[list[str], list[np.ndarray | None]]:
    """Names and matrices of the components; the residual's identity is ``None``.

    With a labelled phenotype (sample IDs ``ids``) a DataFrame kernel is put in
    its order; an unlabelled (array) kernel is refused unless ``assume_same_order``.
    """
    if residual is not None and residual in kernels:
        raise DataError(
            f"a kernel is named {residual!r}, the name of the added identity: "
            "rename it or pass residual=None"
        )
    names, mats = [], []
    for name, K in kernels.items():
        have = labels_of(K) if isinstance(K, pd.DataFrame) else None
        size = np.shape(K)[0] if np.ndim(K) == 2 else 0
        rows = positions(ids, have, size, f"kernel {name!r}", assume_same_order=assume_same_order)
        K = np.asarray(K, dtype=float)
        if rows is not None:
            K = K[np.ix_(rows, rows)]
        if K.shape != (n, n):
            raise DataError(
                f"kernel {name!r} must be {n} x {n} (one row and column per observation), got {K.shape}"
            )
        if not np.isfinite(K).all() or not np.allclose(K, K.T, rtol=1e-10, atol=1e-12):
            raise DataError(f"kernel {name!r} must be a finite symmetric matrix")
        names.append(str(name))
        mats.append(K)
    if residual is not None:
        names.append(residual)
        mats.append(None)
    if not mats:
        raise DataError("no kernels: give at least one covariance matrix or keep the residual")
    return names, mats


def _phenotypes(y) -> tuple[np.ndarray, list[str] | None]:
    """(n, t) array and phenotype names, or names None for a single phenotype."""
    if isinstance(y, pd.DataFrame):
        return y.to_numpy(dtype=float), [str(c) for c in y.columns]
    arr = np.asarray(y, dtype=float)
    if arr.ndim == 1:
        return arr[:, None], None
    if arr.ndim == 2:
        return arr, [f"y{j}" for j in range(arr.shape[1])]
    raise DataError(f"y must be a vector or an (n, t) matrix of phenotypes, got shape {arr.shape}")


@overload
def vardec(y: np.ndarray | pd.Series, X=..., kernels=..., **kw) -> VarianceDecomposition: ...
@overload
def vardec(y: pd.DataFrame, X=..., kernels=..., **kw) -> dict[str, VarianceDecomposition]: ...


def vardec(
    y,
    X=None,
    kernels: Mapping[str, np.ndarray] | None = None,
    *,
    residual: str | None = "residual",
    covariate_names: list[str] | None = None,
    progress: ProgressOption = "auto",
    assume_same_order: bool = False,
):
    """REML variance decomposition of one or several phenotypes over shared kernels.

    Parameters
    ----------
    y : array (n,) or (n, t), Series or DataFrame
        Phenotype(s).  Several phenotypes are fitted one by one with the same
        kernels; missing values drop the observation (and the kernels' row and
        column) for that phenotype only.
    X : array (n, p), optional
        Covariates, intercept included (an intercept alone by default).
    kernels : mapping name → array (n, n)
        Known covariance matrices (symmetric, positive semi-definite).
    residual : str or None
        Name of the identity component added last; ``None`` adds none.
    covariate_names : list of str, optional
    progress : bool or "auto"
        Progress bar over phenotypes (see :mod:`mixedmodels.progress`).
    assume_same_order : bool
        A labelled ``y`` (pandas, index other than ``0..n-1``) is paired with
        DataFrame kernels by sample ID; with array kernels it is an error unless
        this is True (then rows are paired by position).

    Returns
    -------
    VarianceDecomposition, or a dict phenotype name → VarianceDecomposition
    when y is a matrix or DataFrame.

    Examples
    --------
    >>> res = vardec(y, X, {"genetic": K, "family": F})   # doctest: +SKIP
    >>> res.table()                                        # doctest: +SKIP
    """
    Y, pnames = _phenotypes(y)
    n = Y.shape[0]
    X = np.ones((n, 1)) if X is None else np.asarray(X, dtype=float).reshape(n, -1)
    if not np.isfinite(X).all():
        raise DataError("X has missing values: impute them or drop those observations first")
    names, mats = _check_kernels(kernels or {}, n, residual, labels_of(y), assume_same_order)
    xnames = covariate_names or (
        [f"x{j}" for j in range(X.shape[1])] if X.shape[1] > 1 else ["(Intercept)"]
    )
    results = {}
    for j in progress_bar(range(Y.shape[1]), progress=progress, desc="vardec", unit=" phenotype"):
        keep = np.isfinite(Y[:, j])
        if keep.sum() <= X.shape[1]:
            raise DataError(
                f"phenotype {pnames[j] if pnames else 'y'!r} has too few observed values"
            )
        sub = mats if keep.all() else [None if K is None else K[np.ix_(keep, keep)] for K in mats]
        results[j] = _fit_one(Y[keep, j], X[keep], sub, names, xnames)
    return results[0] if pnames is None else {pnames[j]: r for j, r in results.items()}
