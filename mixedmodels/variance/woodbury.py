"""Gaussian likelihood with log-linear residual variance and low-rank random effects.

Model (n observations, p mean coefficients, d variance coefficients, q random effects)

    y = Xβ + Zb + ε,   b ~ N(0, ΛΛ'),   ε ~ N(0, R),   R = diag(r),   r_i = exp(d_i'γ) / w_i

so that y ~ N(Xβ, V) with V = R + ZΛΛ'Z'.  γ are the coefficients of the
log residual variance (D has rows d_i'), w optional prior weights and
Λ = Λ(θ) is linear in θ (:class:`LambdaPattern`).  Minus twice the
log-likelihood is

    F(β, γ, θ) = n log 2π + log|V| + e'V⁻¹e,   e = y - Xβ.

V is never formed.  With Zr = R⁻¹Z, A = Z'R⁻¹Z, M = I_q + Λ'AΛ = L_M L_M'
and N = ΛM⁻¹Λ' (all q x q), the Woodbury identity and the matrix
determinant lemma give

    P := V⁻¹ = R⁻¹ - Zr N Zr',      log|V| = Σ log r_i + 2 log|L_M|,

so one evaluation costs O(n q²) (forming A) plus O(q³), not O(n³).  β is
profiled out by generalised least squares, β̂ = (X'PX)⁻¹X'Py, and the
gradient of the profiled objective in φ = (γ, θ) is the partial gradient at
β̂:

    ∂F/∂γ_j = Σ_i d_ij r_i (P_ii - a_i²),                a = Pe,
    ∂F/∂θ_m = 2 ⟨(S - uu')Λ, F_m⟩,                      S = Z'PZ = A - ANA,  u = Z'a.

:meth:`HeteroskedasticGaussian.hessian` gives the exact Hessian of F in
(β, γ, θ); its inverse (times 2) is the covariance of the estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import DataError
from .lambdapattern import LambdaPattern

__all__ = ["Evaluation", "HeteroskedasticGaussian"]

LOG_2PI = math.log(2.0 * math.pi)


def _scale_rows(Z, c: np.ndarray):
    """diag(c) Z for a dense or sparse Z."""
    return sp.diags(c) @ Z if sp.issparse(Z) else Z * c[:, None]


def _dense(M) -> np.ndarray:
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def _rowwise_quadratic(Z, N: np.ndarray) -> np.ndarray:
    """diag(Z N Z'), shape (n,), without forming the n x n product."""
    ZN = Z @ N
    if sp.issparse(Z):
        return np.asarray(Z.multiply(ZN).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", ZN, Z)


@dataclass
class _Woodbury:
    """The q x q quantities of V⁻¹ at one φ (see the module docstring)."""

    r: np.ndarray  # (n,) residual variances
    Zr: object  # (n, q) R⁻¹Z, dense or sparse
    A: np.ndarray  # (q, q) Z'R⁻¹Z
    Lam: np.ndarray  # (q, q) Λ
    LM: np.ndarray  # (q, q) Cholesky factor of M = I + Λ'AΛ
    N: np.ndarray  # (q, q) Λ M⁻¹ Λ'

    def P(self, v: np.ndarray) -> np.ndarray:
        """V⁻¹v for a vector or an (n, k) matrix."""
        rinv = 1.0 / self.r
        scaled = v * (rinv if v.ndim == 1 else rinv[:, None])
        return scaled - self.Zr @ (self.N @ (self.Zr.T @ v))

    @property
    def logdet(self) -> float:
        """log|V| = Σ log r_i + log|M|."""
        return float(np.log(self.r).sum() + 2.0 * np.log(np.diag(self.LM)).sum())

    @cached_property
    def h(self) -> np.ndarray:
        """(Zr N Zr')_ii, shape (n,): O(n q²), computed once."""
        return _rowwise_quadratic(self.Zr, self.N)

    def diag_P(self) -> np.ndarray:
        """Diagonal of V⁻¹: 1/r_i - (Zr N Zr')_ii."""
        return 1.0 / self.r - self.h

    @cached_property
    def S(self) -> np.ndarray:
        """Z'V⁻¹Z = A - ANA (q x q)."""
        return self.A - self.A @ self.N @ self.A


@dataclass
class Evaluation:
    """F and its ingredients at one point.

    Attributes
    ----------
    objective : float
        F = -2 log-likelihood.
    beta : ndarray (p,)
        β̂(φ) when profiled, else the β given.
    gradient : ndarray (d + ntheta,)
        ∂F/∂φ at (β, φ) (the profiled gradient when β = β̂(φ)).
    a : ndarray (n,)
        V⁻¹(y - Xβ).
    wb : _Woodbury
    """

    objective: float
    beta: np.ndarray
    gradient: np.ndarray
    a: np.ndarray
    wb: _Woodbury


class HeteroskedasticGaussian:
    """Minus twice the log-likelihood of the model in the module docstring.

    Parameters
    ----------
    y : ndarray (n,)
    X : ndarray (n, p)
        Mean model matrix (full column rank).
    D : ndarray (n, d)
        Log-variance model matrix (full column rank).
    Z : ndarray or sparse matrix (n, q), optional
        Random-effects model matrix; ``None`` for no random effects.
    pattern : LambdaPattern, optional
        Where θ sits in Λ; required with Z.
    weights : ndarray (n,), optional
        Prior weights: Var(ε_i) = exp(d_i'γ) / w_i.
    """

    def __init__(self, y, X, D, Z=None, pattern: LambdaPattern | None = None, weights=None):
        self.y = np.asarray(y, dtype=float)
        self.X = np.asarray(X, dtype=float)
        self.D = np.asarray(D, dtype=float)
        n = len(self.y)
        self.Z = (
            np.zeros((n, 0))
            if Z is None
            else (Z.tocsr() if sp.issparse(Z) else np.asarray(Z, dtype=float))
        )
        self.pattern = LambdaPattern.empty() if Z is None else pattern
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        _check_shapes(self)

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def ngamma(self) -> int:
        return self.D.shape[1]

    @property
    def ntheta(self) -> int:
        return self.pattern.ntheta

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of φ = (γ, θ)."""
        return np.concatenate([np.full(self.ngamma, -np.inf), self.pattern.lower])

    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """φ → (γ, θ)."""
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ngamma], phi[self.ngamma :]

    # ---- evaluation --------------------------------------------------------------------------
    def residual_variance(self, gamma: np.ndarray) -> np.ndarray:
        """r_i = exp(d_i'γ) / w_i."""
        r = np.exp(self.D @ gamma)
        return r if self.weights is None else r / self.weights

    def woodbury(self, phi: np.ndarray) -> _Woodbury:
        """The q x q factorisation of V⁻¹ at φ: O(n q²)."""
        gamma, theta = self.split(phi)
        r = self.residual_variance(gamma)
        Zr = _scale_rows(self.Z, 1.0 / r)
        A = _dense(self.Z.T @ Zr)
        Lam = self.pattern.Lambda(theta)
        LM = np.linalg.cholesky(np.eye(self.pattern.q) + Lam.T @ A @ Lam)
        half = sla.solve_triangular(LM, Lam.T, lower=True, check_finite=False)
        return _Woodbury(r, Zr, A, Lam, LM, half.T @ half)

    def gls(self, wb: _Woodbury) -> tuple[np.ndarray, np.ndarray]:
        """β̂ = (X'PX)⁻¹X'Py and X'PX."""
        PX = wb.P(self.X)
        XtPX = self.X.T @ PX
        return np.linalg.solve(XtPX, PX.T @ self.y), XtPX

    def evaluate(self, phi: np.ndarray, beta: np.ndarray | None = None) -> Evaluation:
        """F, β and ∂F/∂φ at φ; β profiled out when not given."""
        wb = self.woodbury(phi)
        if beta is None:
            beta = self.gls(wb)[0]
        e = self.y - self.X @ beta
        a = wb.P(e)
        value = self.nobs * LOG_2PI + wb.logdet + float(e @ a)
        return Evaluation(value, beta, self._gradient(wb, a), a, wb)

    def _gradient(self, wb: _Woodbury, a: np.ndarray) -> np.ndarray:
        g_gamma = self.D.T @ (wb.r * (wb.diag_P() - a * a))
        u = self.Z.T @ a
        g_theta = 2.0 * self.pattern.inner((wb.S - np.outer(u, u)) @ wb.Lam)
        return np.concatenate([g_gamma, g_theta])

    def objective_gradient(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """The profiled objective F(β̂(φ), φ) and its gradient, for an optimiser."""
        ev = self.evaluate(phi)
        return ev.objective, ev.gradient

    # ---- second derivatives --------------------------------------------------------------------
    def hessian(self, phi: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Exact Hessian of F in (β, γ, θ), shape (p + d + ntheta,) * 2.

        With V_j = ∂V/∂φ_j, V_jk = ∂²V/∂φ_j∂φ_k and G = [V_j a]:

            F_ββ = 2X'PX,   F_βφ = 2X'PG,
            F_φφ = tr(PV_jk) - a'V_jk a - tr(PV_jPV_k) + 2G'PG.

        The traces reduce to q x q algebra through Γ_j = Z' diag(d_j / r) Z.
        """
        ev = self.evaluate(phi, beta)
        wb, a = ev.wb, ev.a
        G = self._dV_a(wb, a)
        PX, PG = wb.P(self.X), wb.P(G)
        H_phi = self._second_derivative_terms(wb, a) - self._trace_products(wb) + 2.0 * G.T @ PG
        H_beta_phi = 2.0 * self.X.T @ PG
        return np.block([[2.0 * self.X.T @ PX, H_beta_phi], [H_beta_phi.T, H_phi]])

    def _E(self, wb: _Woodbury) -> list[np.ndarray]:
        """E_m = ∂(ΛΛ')/∂θ_m = F_mΛ' + ΛF_m' (q x q)."""
        out = []
        for F in self.pattern.F:
            FL = np.asarray(F @ wb.Lam.T)
            out.append(FL + FL.T)
        return out

    def _dV_a(self, wb: _Woodbury, a: np.ndarray) -> np.ndarray:
        """Columns V_j a: d_j ∘ r ∘ a for γ_j, Z E_m Z'a for θ_m; shape (n, d + ntheta)."""
        u = self.Z.T @ a
        cols = [self.D * (wb.r * a)[:, None]]
        cols += [np.asarray(self.Z @ (E @ u)).reshape(-1, 1) for E in self._E(wb)]
        return np.hstack(cols)

    def _second_derivative_terms(self, wb: _Woodbury, a: np.ndarray) -> np.ndarray:
        """tr(PV_jk) - a'V_jk a: nonzero within the γ block and within the θ block."""
        k = self.ngamma
        out = np.zeros((k + self.ntheta,) * 2)
        out[:k, :k] = self.D.T @ (self.D * (wb.r * (wb.diag_P() - a * a))[:, None])
        u = self.Z.T @ a
        S_hat = wb.S - np.outer(u, u)
        for m, Fm in enumerate(self.pattern.F):
            SF = np.asarray(Fm.T @ S_hat).T  # S_hat F_m
            out[k:, k + m] = 2.0 * self.pattern.inner(SF)
        return out

    def _gammas(self, wb: _Woodbury) -> list[np.ndarray]:
        """Γ_j = Z' diag(d_j / r) Z for each variance covariate (q x q)."""
        return [_dense(self.Z.T @ _scale_rows(self.Z, d / wb.r)) for d in self.D.T]

    def _trace_products(self, wb: _Woodbury) -> np.ndarray:
        """tr(PV_jPV_k) for all pairs of variance parameters."""
        k = self.ngamma
        out = np.empty((k + self.ntheta,) * 2)
        gam = self._gammas(wb)
        E = self._E(wb)
        h = wb.h
        # γ-γ: Σ_il x_i y_l P_il² with P = R⁻¹ - Zr N Zr' and x = d_j r.
        NG = [wb.N @ g for g in gam]
        out[:k, :k] = self.D.T @ (self.D * (1.0 - 2.0 * wb.r * h)[:, None]) + _trace_pairs(NG, NG)
        # γ-θ: tr(Z'P diag(x) P Z E_m) with PZ = Zr (I - NA).
        B = np.eye(self.pattern.q) - wb.N @ wb.A
        out[:k, k:] = _trace_pairs([B.T @ g @ B for g in gam], E)
        out[k:, :k] = out[:k, k:].T
        # θ-θ: tr(S E_m S E_l).
        S = wb.S
        SE = [S @ Em for Em in E]
        out[k:, k:] = _trace_pairs(SE, SE)
        return out


def _trace_pairs(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    """tr(x_i y_j) for all pairs, as Σ x_i ∘ y_j' (O(q²) each)."""
    out = np.empty((len(xs), len(ys)))
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            out[i, j] = np.sum(x * y.T)
    return out


def _check_shapes(lik: HeteroskedasticGaussian) -> None:
    n = lik.nobs
    if lik.pattern is None:
        raise DataError("random effects Z need a covariance pattern (LambdaPattern) for Λ")
    for name, M in (("X", lik.X), ("D", lik.D), ("Z", lik.Z)):
        if M.ndim != 2 or M.shape[0] != n:
            raise DataError(f"{name} must have one row per observation ({n}), got shape {M.shape}")
    if lik.Z.shape[1] != lik.pattern.q:
        raise DataError(
            f"Z has {lik.Z.shape[1]} columns but the covariance pattern has q = {lik.pattern.q}"
        )
    if not (np.isfinite(lik.y).all() and np.isfinite(lik.X).all() and np.isfinite(lik.D).all()):
        raise DataError("y, X and D must be finite: remove or impute missing values first")
    if lik.weights is not None and (lik.weights.shape != (n,) or (lik.weights <= 0).any()):
        raise DataError("weights must be positive, one per observation")
