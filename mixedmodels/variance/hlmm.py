"""The heteroskedastic linear mixed model of hlmm (Young, Wauthier & Donnelly, 2018).

    y = Xβ + Gb + ε,   b ~ N(0, σ_g² I_q),   ε_i ~ N(0, exp(v_i'γ))

X (n x p) carries the mean covariates, V (n x d) the variance covariates
and G (n x q) the variables with random effects, typically a window of q
standardised SNPs.  With V = R⁻¹-scaled Woodbury algebra (:mod:`.woodbury`)
one evaluation of the likelihood and its gradient costs O(n q²) instead
of the O(n³) of a dense n x n covariance.  Without G this is the
heteroskedastic linear model (HLM).

γ are coefficients of the log residual *variance*, as in hlmm; halve them
for the log standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from ..feterm import independent_columns
from ..lmm import coef_table
from .gaussfit import GaussianFit, fit_gaussian
from .lambdapattern import LambdaPattern
from .woodbury import HeteroskedasticGaussian

__all__ = ["HLMMResult", "fit_hlmm", "hlmm_likelihood"]


@dataclass
class HLMMResult:
    """Estimates of an HLM / HLMM fit.

    Attributes
    ----------
    beta, beta_se : ndarray (p,)
        Mean coefficients and standard errors (observed information).
    gamma, gamma_se : ndarray (d,)
        Log-variance coefficients and standard errors.
    re_variance, re_variance_se : float
        σ_g² and its standard error (delta method from σ_g); NaN without G,
        and the standard error is NaN when σ_g = 0 (on the boundary).
    loglik : float
    nobs : int
    converged : bool
    beta_names, gamma_names : list of str
    fit : GaussianFit
        Everything else (the full covariance, the likelihood object).
    """

    beta: np.ndarray
    beta_se: np.ndarray
    gamma: np.ndarray
    gamma_se: np.ndarray
    re_variance: float
    re_variance_se: float
    loglik: float
    nobs: int
    converged: bool
    beta_names: list[str]
    gamma_names: list[str]
    fit: GaussianFit = field(repr=False)

    @property
    def objective(self) -> float:
        """-2 log-likelihood."""
        return -2.0 * self.loglik

    def coeftable(self) -> pd.DataFrame:
        """Mean coefficients with z statistics and p-values."""
        return coef_table(self.beta, self.beta_se, self.beta_names)

    def disp_coeftable(self) -> pd.DataFrame:
        """Log-variance coefficients with z statistics and p-values."""
        return coef_table(self.gamma, self.gamma_se, self.gamma_names)

    def __str__(self) -> str:
        from ..printing import format_coeftable

        kind = "HLMM" if np.isfinite(self.re_variance) else "HLM"
        parts = [
            f"{kind} fit by maximum likelihood: {self.nobs} observations, log-likelihood {self.loglik:.4f}",
            "Mean parameters:",
            format_coeftable(self.coeftable()),
            "Log-variance parameters:",
            format_coeftable(self.disp_coeftable()),
        ]
        if kind == "HLMM":
            parts.append(
                f" random-effect variance σ_g² = {self.re_variance:.6g} (se {self.re_variance_se:.3g})"
            )
        return "\n".join(parts)


def _design(M, n: int, what: str) -> np.ndarray:
    """An (n, k) float matrix; ``None`` means an intercept column."""
    if M is None:
        return np.ones((n, 1))
    M = np.asarray(M, dtype=float)
    M = M.reshape(n, -1) if M.ndim == 1 else M
    if M.ndim != 2 or M.shape[0] != n:
        raise DataError(f"{what} must have one row per observation ({n}), got shape {M.shape}")
    if not np.isfinite(M).all():
        raise DataError(f"{what} has missing or infinite values: remove or impute them first")
    keep = independent_columns(M)  # the core's test for aliased fixed-effects columns
    if keep.size < M.shape[1]:
        aliased = sorted(set(range(M.shape[1])) - set(keep.tolist()))
        raise DataError(
            f"{what} is rank deficient: column(s) {', '.join(map(str, aliased))} (0-based) are "
            "combinations of the columns before them; drop them"
        )
    return M


def _names(M, prefix: str, k: int) -> list[str]:
    """Column labels: "(Intercept)" for the default design, else prefix0, prefix1, ..."""
    return ["(Intercept)"] if M is None else [f"{prefix}{j}" for j in range(k)]


def hlmm_likelihood(y, X=None, V=None, G=None) -> HeteroskedasticGaussian:
    """The HLMM's likelihood object (checks shapes and missing values)."""
    y = np.asarray(y, dtype=float).ravel()
    n = len(y)
    if not np.isfinite(y).all():
        raise DataError("y has missing or infinite values: drop those observations first")
    X, V = _design(X, n, "X (mean covariates)"), _design(V, n, "V (variance covariates)")
    if G is None:
        return HeteroskedasticGaussian(y, X, V)
    G = np.asarray(G, dtype=float).reshape(n, -1)
    if not np.isfinite(G).all():
        raise DataError(
            "G (random-effect variables) has missing values: impute them (e.g. by the column mean)"
        )
    return HeteroskedasticGaussian(y, X, V, G, LambdaPattern.scalar(G.shape[1], "sigma_g"))


def fit_hlmm(
    y,
    X=None,
    V=None,
    G=None,
    *,
    x_names: list[str] | None = None,
    v_names: list[str] | None = None,
    start: np.ndarray | None = None,
) -> HLMMResult:
    """Fit a heteroskedastic linear (mixed) model by maximum likelihood.

    Parameters
    ----------
    y : array (n,)
        Response.
    X : array (n, p), optional
        Mean covariates, intercept included; an intercept alone if omitted.
    V : array (n, d), optional
        Variance covariates, intercept included; an intercept alone if omitted.
    G : array (n, q), optional
        Variables with iid random effects of variance σ_g² (e.g. standardised
        SNPs divided by √q, so that σ_g² is the variance they explain).
    x_names, v_names : list of str, optional
        Column labels for the tables.
    start : array (d [+ 1],), optional
        Starting (γ, σ_g), e.g. a neighbouring SNP's estimates in a scan.

    Returns
    -------
    HLMMResult
    """
    lik = hlmm_likelihood(y, X, V, G)
    fit = fit_gaussian(lik, start)
    p, d = lik.X.shape[1], lik.ngamma
    se = fit.stderror
    sigma_g, sigma_g_se = (fit.theta[0], se[p + d]) if lik.ntheta else (np.nan, np.nan)
    return HLMMResult(
        beta=fit.beta,
        beta_se=se[:p],
        gamma=fit.gamma,
        gamma_se=se[p : p + d],
        re_variance=float(sigma_g**2),
        re_variance_se=float(2.0 * sigma_g * sigma_g_se),
        loglik=fit.loglikelihood,
        nobs=lik.nobs,
        converged=fit.converged,
        beta_names=x_names or _names(X, "x", p),
        gamma_names=v_names or _names(V, "v", d),
        fit=fit,
    )
