"""Kenward–Roger adjusted covariance and denominator degrees of freedom.

The marginal covariance of y is linear in the covariance parameters γ
(each variance and covariance of each random-effects term, and σ²):

    Σ = Σ_r γ_r G_r,   G_r = Z_t (I ⊗ E_ab) Z_t'  (or W⁻¹ for σ²),

with E_ab the symmetric k x k indicator of entry (a, b) of the term's
covariance.  With Φ = (X'Σ⁻¹X)⁻¹ the usual covariance of β̂,

    P_r  = -X'Σ⁻¹G_rΣ⁻¹X,       Q_rs = X'Σ⁻¹G_rΣ⁻¹G_sΣ⁻¹X,
    I_rs = tr(Σ⁻¹G_rΣ⁻¹G_s) - 2 tr(ΦQ_rs) + tr(ΦP_rΦP_s)   (2 x REML information),
    W    = 2 I⁻¹                                             (cov of γ̂),
    Φ_A  = Φ + 2Φ [Σ_rs W_rs (Q_rs - P_rΦP_s)] Φ.

For a contrast matrix L (q rows), with Θ = L'(LΦL')⁻¹L,

    A₁ = Σ_rs W_rs tr(ΘΦP_rΦ) tr(ΘΦP_sΦ),   A₂ = Σ_rs W_rs tr(ΘΦP_rΦΘΦP_sΦ),

and the degrees of freedom follow Kenward & Roger (1997, eqs. in
section 4), as computed by pbkrtest (Halekoh & Højsgaard 2014).

Every G_r is written as B M_r B' with B = [Z̃, W^{-½}] (Z̃ holding one
n x levels block per term column) and M_r a sparse selection of identity
blocks, so that traces and products reduce to K = B'Σ⁻¹B and B'Σ⁻¹X.
Σ⁻¹ is formed densely (n x n): the method is meant for moderate n.
With prior weights the residual block is W⁻¹ (pbkrtest uses the identity,
ignoring the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import MixedModelsError
from ..model import MixedModel
from ..structure import lme4_blocks

__all__ = ["KenwardRogerState", "kenward_roger_state", "kenward_roger_df", "MAX_NOBS"]

MAX_NOBS = 6000
"""Largest number of observations for which Σ⁻¹ is formed (n² doubles)."""


@dataclass
class KenwardRogerState:
    """Φ, the adjusted Φ_A, the matrices P_r and W = cov(γ̂)."""

    vcov: np.ndarray
    vcov_adjusted: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


def _term_columns(model) -> tuple[sp.csr_matrix, list[tuple[int, slice, int]]]:
    """Z̃ (n x Σ levels·k) and, per original term, (first column, block of λ, ReMat index)."""
    blocks, layout, start = [], [], 0
    n = model.nobs
    for ri, bi in lme4_blocks(model.reterms):
        r = model.reterms[ri]
        block = r.blocks[bi]
        layout.append((start, block, ri))
        for col in range(block.start, block.stop):
            blocks.append(
                sp.csr_matrix((r.z[:, col], (np.arange(n), r.refs)), shape=(n, r.nlevels))
            )
            start += r.nlevels
    return sp.hstack(blocks, format="csr"), layout


def _selection(m: int, pairs: list[tuple[int, int]], size: int) -> sp.csr_matrix:
    """m x m matrix with an identity of ``size`` at each (row block start, column block start)."""
    rows = np.concatenate([np.arange(a, a + size) for a, _ in pairs])
    cols = np.concatenate([np.arange(b, b + size) for _, b in pairs])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m))


def _structure(model) -> tuple[sp.csr_matrix, list[sp.csr_matrix], np.ndarray]:
    """B, the selections M_r and the covariance parameters γ (term entries, then σ²)."""
    structured = [r.name for r in model.reterms if r.is_structured]
    if structured:
        raise MixedModelsError(
            "Kenward-Roger's method here takes every covariance element as a parameter, which "
            f"a structured term ({', '.join(structured)}) does not have; use ddf='satterthwaite'"
        )
    Zt, layout = _term_columns(model)
    n, q = Zt.shape
    w = model.prior_weights
    B = sp.hstack([Zt, sp.diags(1 / np.sqrt(w))], format="csr")
    m, sigma2 = q + n, model.sigma**2
    M, gamma = [], []
    for start, block, ri in layout:
        r = model.reterms[ri]
        lam = r.lambda_[block, block]
        cov = sigma2 * lam @ lam.T
        L = r.nlevels
        for b in range(cov.shape[0]):
            for a in range(b, cov.shape[0]):
                pairs = [(start + a * L, start + b * L)] + (
                    [(start + b * L, start + a * L)] if a != b else []
                )
                M.append(_selection(m, pairs, L))
                gamma.append(cov[a, b])
    M.append(_selection(m, [(q, q)], n))
    gamma.append(sigma2)
    return B, M, np.array(gamma)


def _information_pieces(model):
    """Φ, P_r, Q_rs and the REML information (x 2) I_rs."""
    B, M, gamma = _structure(model)
    Sigma = (B @ sum(g * Mr for g, Mr in zip(gamma, M)) @ B.T).toarray()
    chol = _cholesky(Sigma)
    Sinv_B = _chol_solve(chol, B.toarray())
    K = B.T @ Sinv_B
    X = model.structure.fe.X
    ZT = Sinv_B.T @ X
    Phi = model.vcov
    MZT = [Mr @ ZT for Mr in M]
    MK = [Mr @ K for Mr in M]
    P = [-ZT.T @ mz for mz in MZT]
    k = len(M)
    Q = [[MZT[r].T @ K @ MZT[s] for s in range(k)] for r in range(k)]
    info = np.empty((k, k))
    for r in range(k):
        for s in range(r + 1):
            info[r, s] = info[s, r] = (
                np.sum(MK[r] * MK[s].T)
                - 2 * np.sum(Phi * Q[r][s])
                + np.sum((Phi @ P[r]) * (P[s] @ Phi))
            )
    return Phi, P, Q, info


def _cholesky(S: np.ndarray) -> np.ndarray:
    from ..errors import CholeskyFailed

    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError as exc:
        raise CholeskyFailed("the marginal covariance of y is not positive definite") from exc


def _chol_solve(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    import scipy.linalg as sla

    return sla.cho_solve((chol, True), rhs, check_finite=False)


def kenward_roger_state(model: MixedModel) -> KenwardRogerState:
    """Φ_A, P_r and W at a REML fit of a linear mixed model."""
    if model.family is not None or not model.reml:
        raise MixedModelsError(
            "the Kenward-Roger method needs a linear mixed model fitted by REML "
            "(LinearMixedModel(..., reml=True)); use ddf='satterthwaite' for ML fits"
        )
    if model.nobs > MAX_NOBS:
        raise MixedModelsError(
            f"the Kenward-Roger method forms the {model.nobs} x {model.nobs} marginal covariance; "
            f"it is limited to {MAX_NOBS} observations: use ddf='satterthwaite'"
        )
    Phi, P, Q, info = _information_pieces(model)
    values = np.linalg.eigvalsh(info)
    W = 2 * (np.linalg.inv(info) if np.min(np.abs(values)) > 1e-10 else np.linalg.pinv(info))
    k = len(P)
    U = sum(W[r, s] * (Q[r][s] - P[r] @ Phi @ P[s]) for r in range(k) for s in range(k))
    return KenwardRogerState(Phi, Phi + 2 * Phi @ U @ Phi, P, W)


def kenward_roger_df(state: KenwardRogerState, L: np.ndarray) -> float:
    """Kenward–Roger denominator degrees of freedom for the hypothesis Lβ = 0 (L: q x p)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    q = L.shape[0]
    Phi = state.vcov
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    U = [Theta @ Phi @ P @ Phi for P in state.P]
    traces = np.array([np.trace(u) for u in U])
    A1 = traces @ state.W @ traces
    A2 = sum(state.W[r, s] * np.sum(U[r] * U[s].T) for r in range(len(U)) for s in range(len(U)))
    return _kr_df(A1, A2, q)


def _kr_df(A1: float, A2: float, q: int) -> float:
    """m = 4 + (q + 2) / (qρ - 1) from Kenward & Roger's moment matching."""
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    v0 = 1 + c1 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    ratio = (1 - A2 / q) / (1 - c2 * B)
    rho = ratio**2 * v0 / ((1 - c3 * B) * q)
    return float(4 + (q + 2) / (q * rho - 1))
