"""Multi-trait linear mixed model with Kronecker covariance (limix's mtSet / VarDec for several traits).

For t traits of n individuals (Y is n x t) and covariates X (n x p),

    vec(Y) ~ N(vec(XB), Cg ⊗ K + Cn ⊗ I_n),

with a known kinship K (n x n) and trait covariance matrices Cg (genetic)
and Cn (noise), t x t.  Two transformations make each evaluation O(n t p²)
after one O(n³) eigendecomposition K = U S U':

* rotating individuals by U' turns K into the diagonal S;
* the trait-space transformation T = Ln⁻ᵀW, with Cn = Ln Ln' and
  Ln⁻¹ Cg Ln⁻ᵀ = W Δ W', gives T'CnT = I and T'CgT = Δ.

Then Ŷ = U'Y T has independent entries, Var(Ŷ_ij) = ω_ij = s_i δ_j + 1,
and with X̃ = U'X each transformed trait j is a weighted regression on X̃.
Minus twice the log-likelihood (ML) and the REML criterion are

    F   = nt log 2π + n log|Cn| + Σ_ij log ω_ij + Σ_ij ê_ij² / ω_ij,
    F_R = (n - p)t log 2π + (n - p) log|Cn| + Σ_ij log ω_ij + Σ_ij ê_ij² / ω_ij
          + Σ_j log|X̃'Ω_j⁻¹X̃|

(as for :func:`~mixedmodels.variance.vardec.vardec`, no log|X'X| term).
Their gradients in Cg and Cn are, with A = (Ê / Ω) T' (= Σ⁻¹ times the
residuals, reshaped n x t) and τ_ij = 1/ω_ij (ML) or the diagonal of the
projection P_j (REML),

    ∂F/∂Cg = T diag(Σ_i s_i τ_ij) T' - A' S A,     ∂F/∂Cn = T diag(Σ_i τ_ij) T' - A'A.

Cg and Cn are parametrised by lower-triangular factors (Cg = Lg Lg') whose
diagonals may take either sign, so there are no bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from ..numderiv import hessian_from_gradient
from ..optsummary import OptSummary
from .newton import minimize_bounded

__all__ = ["KroneckerFit", "KroneckerLikelihood", "fit_kronecker"]

LOG_2PI = float(np.log(2.0 * np.pi))


def _tril(L_params: np.ndarray, t: int) -> np.ndarray:
    """Lower-triangular t x t factor from its elements (row-major lower triangle)."""
    L = np.zeros((t, t))
    L[np.tril_indices(t)] = L_params
    return L


@dataclass
class _TraitState:
    """Everything at one (Cg, Cn): the transformation, weights, GLS fit and residuals."""

    Cg: np.ndarray
    Cn: np.ndarray
    T: np.ndarray  # (t, t) trait transformation
    delta: np.ndarray  # (t,) eigenvalues of Ln⁻¹ Cg Ln⁻ᵀ
    W: np.ndarray  # (n, t) weights 1/ω
    Cinv: np.ndarray  # (t, p, p) (X̃'Ω_j⁻¹X̃)⁻¹
    Bt: np.ndarray  # (t, p) coefficients of the transformed traits
    E: np.ndarray  # (n, t) transformed residuals
    logdet_Cn: float
    logdet_C: float  # Σ_j log|X̃'Ω_j⁻¹X̃|


class KroneckerLikelihood:
    """F (ML) or F_R (REML) of the module docstring as a function of the factors (Lg, Ln).

    Parameters
    ----------
    Y : ndarray (n, t)
    X : ndarray (n, p)
    K : ndarray (n, n), optional
        Kinship; or give its eigendecomposition as ``eig=(S, U)``.
    reml : bool
    """

    def __init__(
        self,
        Y: np.ndarray,
        X: np.ndarray,
        K: np.ndarray | None = None,
        *,
        eig=None,
        reml: bool = True,
    ):
        S, U = np.linalg.eigh(K) if eig is None else eig
        self.S = np.maximum(S, 0.0)  # rounding can leave tiny negative eigenvalues
        self.U = U
        self.Yr, self.Xr = U.T @ Y, U.T @ X
        self.reml = reml

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, t, p)."""
        return self.Yr.shape[0], self.Yr.shape[1], self.Xr.shape[1]

    @property
    def nparams(self) -> int:
        t = self.shape[1]
        return t * (t + 1)

    def factors(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Lg, Ln) from φ = (Lg's lower triangle, Ln's lower triangle)."""
        t = self.shape[1]
        half = t * (t + 1) // 2
        return _tril(phi[:half], t), _tril(phi[half:], t)

    def state(self, phi: np.ndarray) -> _TraitState:
        Lg, Ln = self.factors(np.asarray(phi, dtype=float))
        Cg, Cn = Lg @ Lg.T, Ln @ Ln.T
        half = np.linalg.solve(Ln, Cg)  # Ln⁻¹ Cg
        delta, Wt = np.linalg.eigh(np.linalg.solve(Ln, half.T).T)
        T = np.linalg.solve(Ln.T, Wt)
        W = 1.0 / (np.outer(self.S, delta) + 1.0)
        C = np.einsum("ip,ij,iq->jpq", self.Xr, W, self.Xr)
        Cinv = np.linalg.inv(C)
        Yt = self.Yr @ T
        Bt = np.einsum("jpq,iq,ij->jp", Cinv, self.Xr, W * Yt)
        E = Yt - self.Xr @ Bt.T
        logdet_Cn = 2.0 * np.log(np.abs(np.diag(Ln))).sum()
        return _TraitState(
            Cg, Cn, T, delta, W, Cinv, Bt, E, logdet_Cn, float(np.linalg.slogdet(C)[1].sum())
        )

    def objective(self, st: _TraitState) -> float:
        n, t, p = self.shape
        m = n - p if self.reml else n
        value = (
            m * t * LOG_2PI + m * st.logdet_Cn - np.log(st.W).sum() + float(np.sum(st.E**2 * st.W))
        )
        return value + (st.logdet_C if self.reml else 0.0)

    def _tau(self, st: _TraitState) -> np.ndarray:
        """1/ω (ML) or diag(P_j) (REML), shape (n, t)."""
        if not self.reml:
            return st.W
        h = np.einsum("ip,jpq,iq->ij", self.Xr, st.Cinv, self.Xr)
        return st.W - st.W**2 * h

    def gradient(self, st: _TraitState, phi: np.ndarray) -> np.ndarray:
        """∂F/∂φ through ∂F/∂C = G and ∂F/∂L = 2 G L (lower triangle)."""
        tau = self._tau(st)
        A = (st.E * st.W) @ st.T.T
        Gg = st.T @ np.diag(self.S @ tau) @ st.T.T - A.T @ (self.S[:, None] * A)
        Gn = st.T @ np.diag(tau.sum(axis=0)) @ st.T.T - A.T @ A
        Lg, Ln = self.factors(phi)
        low = np.tril_indices(self.shape[1])
        return np.concatenate([(2.0 * Gg @ Lg)[low], (2.0 * Gn @ Ln)[low]])

    def objective_gradient(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        st = self.state(phi)
        return self.objective(st), self.gradient(st, phi)

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        """Numerical Jacobian of the analytic gradient (:func:`mixedmodels.numderiv.hessian_from_gradient`)."""
        return hessian_from_gradient(lambda v: self.objective_gradient(v)[1], phi)


@dataclass
class KroneckerFit:
    """Estimates of the Kronecker model.

    Attributes
    ----------
    Cg, Cn : ndarray (t, t)
        Genetic and noise trait covariance matrices.
    B, B_se : ndarray (p, t)
        Covariate coefficients per trait and their standard errors (GLS at Ĉg, Ĉn).
    loglik : float
        Log-likelihood (ML) or REML log-likelihood at the estimates.
    reml : bool
    trait_names, covariate_names : list of str
    nobs : int
    converged : bool
    lik : KroneckerLikelihood
    state : internal state at the estimates (used by :func:`~mixedmodels.variance.mtscan.mt_scan`)
    optsum : OptSummary
        The Newton search (objective -2ℓ), recorded as the core's fits are.
    """

    Cg: np.ndarray
    Cn: np.ndarray
    B: np.ndarray
    B_se: np.ndarray
    loglik: float
    reml: bool
    trait_names: list[str]
    covariate_names: list[str]
    nobs: int
    converged: bool
    lik: KroneckerLikelihood = field(repr=False)
    state: _TraitState = field(repr=False)
    optsum: OptSummary | None = field(default=None, repr=False)

    @property
    def heritability(self) -> pd.Series:
        """Per trait Cg_jj / (Cg_jj + Cn_jj)."""
        g, e = np.diag(self.Cg), np.diag(self.Cn)
        return pd.Series(g / (g + e), index=self.trait_names, name="h2")

    def __str__(self) -> str:
        how = "REML" if self.reml else "maximum likelihood"
        fmt = {"float_format": lambda v: f"{v:.6g}"}
        sizes = f"{self.nobs} individuals, {len(self.trait_names)} traits"
        parts = [
            f"Kronecker multi-trait model fit by {how}: {sizes}, log-likelihood {self.loglik:.4f}",
            "Genetic covariance Cg:",
            pd.DataFrame(self.Cg, self.trait_names, self.trait_names).to_string(**fmt),
            "Noise covariance Cn:",
            pd.DataFrame(self.Cn, self.trait_names, self.trait_names).to_string(**fmt),
            "Heritability:",
            self.heritability.to_string(**fmt),
        ]
        return "\n".join(parts)

    def correlations(self, which: str = "genetic") -> pd.DataFrame:
        """Trait correlation matrix from Cg (``"genetic"``) or Cn (``"noise"``)."""
        C = {"genetic": self.Cg, "noise": self.Cn}[which]
        sd = np.sqrt(np.diag(C))
        with np.errstate(invalid="ignore", divide="ignore"):
            R = C / np.outer(sd, sd)
        return pd.DataFrame(R, index=self.trait_names, columns=self.trait_names)


def _start(lik: KroneckerLikelihood) -> np.ndarray:
    """Cg = Cn = half the covariance of least-squares residuals."""
    n, t, p = lik.shape
    E = lik.Yr - lik.Xr @ np.linalg.lstsq(lik.Xr, lik.Yr, rcond=None)[0]
    R = E.T @ E / max(n - p, 1)
    L = np.linalg.cholesky(0.5 * R + 1e-8 * np.trace(R) * np.eye(t))
    low = np.tril_indices(t)
    return np.concatenate([L[low], L[low]])


def _coefficients(st: _TraitState) -> tuple[np.ndarray, np.ndarray]:
    """B = B̃ T⁻¹ and its standard errors: Var(B_ak) = Σ_j (T⁻¹)_jk² (C_j⁻¹)_aa."""
    Tinv = np.linalg.inv(st.T)
    B = st.Bt.T @ Tinv
    var = np.einsum("jk,ja->ak", Tinv**2, np.diagonal(st.Cinv, axis1=1, axis2=2))
    return B, np.sqrt(var)


def _check(Y: np.ndarray, X: np.ndarray, K: np.ndarray | None, eig) -> None:
    n = Y.shape[0]
    if Y.ndim != 2 or X.shape[0] != n:
        raise DataError(f"Y must be n x t and X n x p with the same n, got {Y.shape} and {X.shape}")
    if not (np.isfinite(Y).all() and np.isfinite(X).all()):
        raise DataError(
            "Y and X must be complete: the Kronecker model needs every trait of every individual"
        )
    if eig is None and (K is None or np.shape(K) != (n, n)):
        raise DataError(
            f"K must be an n x n kinship matrix (n = {n}), got {None if K is None else np.shape(K)}"
        )


def fit_kronecker(
    Y,
    X=None,
    K: np.ndarray | None = None,
    *,
    eig: tuple[np.ndarray, np.ndarray] | None = None,
    reml: bool = True,
    covariate_names: list[str] | None = None,
) -> KroneckerFit:
    """Fit vec(Y) ~ N(vec(XB), Cg ⊗ K + Cn ⊗ I) by REML (default) or ML.

    Parameters
    ----------
    Y : array or DataFrame (n, t)
        Traits (complete cases).
    X : array (n, p), optional
        Covariates shared by the traits (intercept alone by default).
    K : array (n, n)
        Kinship matrix; or ``eig=(S, U)`` with K = U diag(S) U' to reuse a decomposition.
    reml : bool
    covariate_names : list of str, optional
    """
    names = [str(c) for c in Y.columns] if isinstance(Y, pd.DataFrame) else None
    Y = np.asarray(Y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    X = (
        np.ones((Y.shape[0], 1))
        if X is None
        else np.asarray(X, dtype=float).reshape(Y.shape[0], -1)
    )
    _check(Y, X, K, eig)
    lik = KroneckerLikelihood(Y, X, K, eig=eig, reml=reml)
    opt = minimize_bounded(
        lik.objective_gradient, lik.hessian, _start(lik), np.full(lik.nparams, -np.inf)
    )
    st = lik.state(opt.x)
    B, B_se = _coefficients(st)
    t = Y.shape[1]
    return KroneckerFit(
        st.Cg, st.Cn, B, B_se, -0.5 * opt.fun, reml, names or [f"trait{j}" for j in range(t)],
        covariate_names or [f"x{j}" for j in range(X.shape[1])], Y.shape[0], opt.converged, lik, st,
        opt.optsum,
    )  # fmt: skip
