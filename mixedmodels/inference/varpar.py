"""Analytic derivatives of a linear mixed model with respect to φ = (θ, σ).

For y ~ N(Xβ, Σ) with Σ = σ²Σ̃, Σ̃ = W⁻¹ + Z G Z' and G = ΛΛ' (λλ' per level
of each term), Satterthwaite's method needs the Hessian H of the profiled
criterion (the deviance or the REML criterion, β profiled out) and the
Jacobian of V = cov(β̂) = σ²(X'Σ̃⁻¹X)⁻¹.  With P the REML projection
(P = Σ⁻¹ - Σ⁻¹X V X'Σ⁻¹), S = P for REML and S = Σ⁻¹ for ML, and
Σᵢ = ∂Σ/∂φᵢ,

    ∂²d/∂φᵢ∂φⱼ = tr(SΣᵢⱼ) - tr(SΣᵢSΣⱼ) + 2 y'PΣᵢPΣⱼPy - y'PΣᵢⱼPy,
    ∂V/∂θᵢ     = σ² U B' Gᵢ B U,      ∂V/∂σ = 2σU,

where U = (X'Σ̃⁻¹X)⁻¹, B = Z'Σ̃⁻¹X and Gᵢ = ∂G/∂θᵢ (Λ is linear in θ).  Every
trace and quadratic form reduces to q x q and q x p matrices: C = Z'S̃Z,
C_P = Z'P̃Z and v = Z'Σ̃⁻¹(y - Xβ̂), the last being Z' times the conditional
residuals.  With N = n - p (REML) or n (ML) and ρ = y'Py,

    H_θᵢθⱼ = tr(GᵢⱼC) - tr(GᵢCGⱼC) + (2 (Gᵢv)'C_P(Gⱼv) - v'Gᵢⱼv)/σ²,
    H_θᵢσ  = 2 v'Gᵢv / σ³,       H_σσ = (6ρ - 2N)/σ²,

since SΣS = S and Σ_σ = 2Σ/σ.  Z'Σ̃⁻¹Z = A - AΛM⁻¹Λ'A with A = Z'Z and
M = Λ'AΛ + I (Woodbury), formed densely: one q x q Cholesky factor.  This
replaces the O(k²) refactorisations of a numerical Hessian by one dense
factorisation, and gives exact derivatives.  Models whose random effects
have a known covariance (kinship), or with q above :data:`MAX_Q`, return
``None`` and the caller differentiates numerically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import CholeskyFailed
from ..model import MixedModel

__all__ = ["VarparDerivatives", "varpar_derivatives", "MAX_Q"]

MAX_Q = 4000
"""Largest number of random effects for which the q x q matrices are formed."""


@dataclass
class VarparDerivatives:
    """H (k x k, k = len(θ) + 1) and ∂V/∂φᵢ stacked (k, p, p), at the model's fit."""

    hessian: np.ndarray
    jac: np.ndarray


@dataclass
class _Pieces:
    """The dense q x q and q x p matrices of the module docstring."""

    C: np.ndarray  # Z'S̃Z
    CP: np.ndarray  # Z'P̃Z
    B: np.ndarray  # Z'Σ̃⁻¹X
    U: np.ndarray  # (X'Σ̃⁻¹X)⁻¹
    v: np.ndarray  # Z'Σ̃⁻¹(y - Xβ̂)
    pwrss: float


def _theta_pieces(model) -> list[tuple[int, slice, int, int]]:
    """Per θ (lme4's order): (ReMat index, its columns of Z, row, column in λ)."""
    spans, start = [], 0
    for r in model.reterms:
        spans.append(slice(start, start + r.q))
        start += r.q
    internal = [
        (ri, *r.positions()[j]) for ri, r in enumerate(model.reterms) for j in range(r.ntheta)
    ]
    return [
        (internal[i][0], spans[internal[i][0]], *internal[i][1:])
        for i in model.structure.theta_perm
    ]


def _Lambda(model) -> sp.csr_matrix:
    """Λ = blockdiag(I_L ⊗ λ) in the level-major column order of ReMat.Z."""
    blocks = [sp.kron(sp.identity(r.nlevels), sp.csr_matrix(r.lambda_)) for r in model.reterms]
    return sp.block_diag(blocks, format="csr")


def _pieces(model) -> _Pieces:
    w = model.prior_weights
    sqrtw = np.sqrt(w)
    Z = sp.hstack([r.Z(sqrtw) for r in model.reterms], format="csc")
    X = model.structure.fe.X * sqrtw[:, None]
    y = (model.response - model.offset) * sqrtw
    Lam = _Lambda(model)
    A = (Z.T @ Z).toarray()
    K = np.asarray(Lam.T @ A)  # Λ'A
    M = np.asarray(Lam.T @ K.T) + np.eye(len(A))
    try:
        LM = np.linalg.cholesky(M)
    except np.linalg.LinAlgError as exc:
        raise CholeskyFailed("Λ'Z'ZΛ + I is not positive definite") from exc
    solve = lambda rhs: sla.solve_triangular(LM, rhs, lower=True, check_finite=False)  # noqa: E731
    S = solve(K)
    ZX, Zy = np.asarray(Z.T @ X), np.asarray(Z.T @ y)
    SX, Sy = solve(np.asarray(Lam.T @ ZX)), solve(np.asarray(Lam.T @ Zy))
    CS = A - S.T @ S
    B = ZX - S.T @ SX
    XSX = X.T @ X - SX.T @ SX
    XSy = X.T @ y - SX.T @ Sy
    U = np.linalg.inv(XSX)
    beta = U @ XSy
    v = Zy - S.T @ Sy - B @ beta
    pwrss = float(y @ y - Sy @ Sy - 2 * beta @ XSy + beta @ XSX @ beta)
    CP = CS - B @ U @ B.T
    return _Pieces(CP if model.reml else CS, CP, B, U, v, pwrss)


def _dlambda(model, piece) -> tuple[np.ndarray, slice, int]:
    """D = Eλ' + λE' (k x k) for one θ element at (row, col) of its term's λ."""
    ri, span, row, col = piece
    lam = model.reterms[ri].lambda_
    E = np.zeros_like(lam)
    E[row, col] = 1.0
    return E @ lam.T + lam @ E.T, span, model.reterms[ri].k


def _kron_apply(D: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(I_L ⊗ D) M for M of shape (L k, m)."""
    k = D.shape[0]
    return np.einsum("ab,lbm->lam", D, M.reshape(-1, k, M.shape[1])).reshape(M.shape)


def _trace_block(D: np.ndarray, C: np.ndarray) -> float:
    """tr((I_L ⊗ D) C) for the square block C (L k x L k)."""
    k = D.shape[0]
    L = C.shape[0] // k
    diag = C.reshape(L, k, L, k)[np.arange(L), :, np.arange(L), :].sum(axis=0)
    return float(np.sum(D * diag.T))


def _second(model, pi, pj) -> np.ndarray | None:
    """∂²(λλ')/∂θᵢ∂θⱼ = EᵢEⱼ' + EⱼEᵢ', or None for θ of different terms."""
    if pi[0] != pj[0]:
        return None
    k = model.reterms[pi[0]].k
    Ei, Ej = np.zeros((k, k)), np.zeros((k, k))
    Ei[pi[2], pi[3]] = 1.0
    Ej[pj[2], pj[3]] = 1.0
    return Ei @ Ej.T + Ej @ Ei.T


def _hessian(model, P: _Pieces, pieces, sigma: float) -> np.ndarray:
    ntheta = len(pieces)
    derivs = [_dlambda(model, p) for p in pieces]
    F = [_kron_apply(D, P.C[span, :]) for D, span, _ in derivs]  # rows of Gᵢ C
    Ft = [np.ascontiguousarray(f.T) for f in F]  # columns of C Gᵢ = (Gᵢ C)'
    Gv = []
    for D, span, _ in derivs:
        g = np.zeros_like(P.v)
        g[span] = _kron_apply(D, P.v[span, None])[:, 0]
        Gv.append(g)
    CPGv = [P.CP @ g for g in Gv]
    s2 = sigma * sigma
    H = np.empty((ntheta + 1, ntheta + 1))
    for i in range(ntheta):
        si = derivs[i][1]
        for j in range(i + 1):
            sj = derivs[j][1]
            value = -np.sum(F[i][:, sj] * Ft[j][si, :]) + 2 * (Gv[i] @ CPGv[j]) / s2
            D2 = _second(model, pieces[i], pieces[j])
            if D2 is not None:
                v = P.v[si]
                value += (
                    _trace_block(D2, P.C[si, si]) - (v @ _kron_apply(D2, v[:, None])[:, 0]) / s2
                )
            H[i, j] = H[j, i] = value
        H[i, -1] = H[-1, i] = 2 * (P.v @ Gv[i]) / sigma**3
    N = model.nobs - (model.rank if model.reml else 0)
    H[-1, -1] = (6 * P.pwrss / s2 - 2 * N) / s2
    return H


def _jacobian(model, P: _Pieces, pieces, sigma: float) -> np.ndarray:
    UBt = P.U @ P.B.T  # p x q
    out = []
    for D, span, _ in (_dlambda(model, p) for p in pieces):
        right = _kron_apply(D, UBt[:, span].T)  # (Gᵢ B U) restricted to the term's rows
        out.append(sigma**2 * UBt[:, span] @ right)
    out.append(2 * sigma * P.U)
    return np.stack(out)


def varpar_derivatives(model: MixedModel) -> VarparDerivatives | None:
    """H and ∂V/∂φ at the model's current fit, or ``None`` where they are not computed here.

    ``None`` for models with a term of known covariance, with more than
    :data:`MAX_Q` random effects, without σ, or whose covariance of β̂ is
    not σ²(X'Σ̃⁻¹X)⁻¹ of the Gaussian model above (checked against
    ``model.vcov``).
    """
    if model.family is not None or model.sigma is None:
        return None
    if any(r.has_factor for r in model.reterms) or sum(r.q for r in model.reterms) > MAX_Q:
        return None
    P = _pieces(model)
    sigma = float(model.sigma)
    if not np.allclose(sigma**2 * P.U, model.vcov, rtol=1e-6, atol=0):
        return None
    pieces = _theta_pieces(model)
    return VarparDerivatives(_hessian(model, P, pieces, sigma), _jacobian(model, P, pieces, sigma))
