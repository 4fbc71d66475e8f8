"""Blocked storage of the penalised least-squares system and its Cholesky factor.

With W the prior (or working) weights and Λθ block diagonal, the profiled
criteria of a linear mixed model depend on θ only through the Cholesky factor
L of

    [Λ'Z'WZΛ + I   Λ'Z'WX   Λ'Z'Wy]
    [X'WZΛ         X'WX     X'Wy  ]   =  L L'.
    [y'WZΛ         y'WX     y'Wy  ]

A = [Z X y]'W[Z X y] is assembled once (again only when weights change) and
stored in three block rows, following MixedModels.jl:

* block 1 is the random-effects term with the most levels; A11 = Z1'WZ1 is
  diagonal (scalar term) or uniform block diagonal (vector term), and so is
  L11 (a batch of small Cholesky factors);
* block 2 ("B") holds all other random-effects terms; A21 is sparse, and
  L22 is a dense Cholesky factor, or CHOLMOD's sparse supernodal factor
  (with one symbolic analysis reused for every θ) when block B is large;
* block 3 holds the fixed effects and the response, dense.

Each evaluation (:meth:`PenalizedSystem.update_L`) does

    L11 L11'  = Λ1'A11Λ1 + I                       (batched, per level)
    L21       = ΛB'A21Λ1 L11⁻ᵀ                      (sparse, pattern of A21)
    L31       = A31Λ1 L11⁻ᵀ
    L22 L22'  = ΛB'A22ΛB + I - L21 L21'            (dense or CHOLMOD)
    L32       = (A32ΛB - L31 L21') L22⁻ᵀ
    L33 L33'  = A33 - L31 L31' - L32 L32'

with no Python loop over observations or levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .remat import ReMat

__all__ = ["PenalizedSystem", "cholmod_available", "DENSE_MAX"]

DENSE_MAX = 3000
"""Block B larger than this (and sparse enough) is factored by CHOLMOD if installed."""


def cholmod_available() -> bool:
    """True if scikit-sparse's CHOLMOD can be imported (the ``cholmod`` extra)."""
    try:
        import sksparse.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


class CholeskyFailed(ArithmeticError):
    """A block that should be positive definite is not (numerically)."""


def dense_cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite matrix, overwriting ``a``."""
    lower, info = sla.lapack.dpotrf(a, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise CholeskyFailed(f"leading minor {info} is not positive definite")
    return lower


# ---------------------------------------------------------------------------
# Block 1: diagonal or uniform block diagonal
# ---------------------------------------------------------------------------
def first_block_crossprod(remat: ReMat, sqrtw: np.ndarray | None) -> np.ndarray:
    """A11 = Z1'WZ1: shape (nlevels,) for a scalar term, (nlevels, k, k) otherwise."""
    zw = remat.z if sqrtw is None else remat.z * sqrtw[:, None]
    if remat.is_scalar:
        return np.bincount(remat.refs, zw[:, 0] ** 2, minlength=remat.nlevels)
    k = remat.k
    out = np.empty((remat.nlevels, k, k))
    for a in range(k):
        for b in range(a + 1):
            out[:, a, b] = out[:, b, a] = np.bincount(remat.refs, zw[:, a] * zw[:, b], minlength=remat.nlevels)
    return out


@dataclass
class FirstBlock:
    """L11 and R1 = Λ1 L11⁻ᵀ for the current θ (R1 maps A's block-1 columns into L's)."""

    L11: np.ndarray  # (nlevels,) or (nlevels, k, k)
    R1: np.ndarray  # same shapes

    def logdet(self) -> float:
        """log|L11| (the determinant of the triangular factor, not of L11 L11')."""
        if self.L11.ndim == 1:
            return float(np.log(self.L11).sum())
        return float(np.log(np.diagonal(self.L11, axis1=1, axis2=2)).sum())

    def right_multiply_dense(self, M: np.ndarray) -> np.ndarray:
        """M @ R1 for a dense M with q1 columns."""
        if self.R1.ndim == 1:
            return M * self.R1
        n, k, _ = self.R1.shape
        return np.einsum("pla,lab->plb", M.reshape(M.shape[0], n, k), self.R1).reshape(M.shape)

    def as_sparse(self) -> sp.spmatrix:
        """R1 as a sparse (block) diagonal matrix."""
        if self.R1.ndim == 1:
            return sp.diags(self.R1, format="csr")
        n, k, _ = self.R1.shape
        return sp.bsr_matrix((self.R1, np.arange(n), np.arange(n + 1)), shape=(n * k, n * k)).tocsr()

    def solve_transpose(self, v: np.ndarray) -> np.ndarray:
        """L11⁻ᵀ v for v of length q1 (or q1 x m)."""
        if self.L11.ndim == 1:
            return v / (self.L11 if v.ndim == 1 else self.L11[:, None])
        n, k, _ = self.L11.shape
        vv = v.reshape(n, k, -1)
        return np.linalg.solve(np.swapaxes(self.L11, 1, 2), vv).reshape(v.shape)

    def solve(self, v: np.ndarray) -> np.ndarray:
        """L11⁻¹ v for v of length q1 (or q1 x m)."""
        if self.L11.ndim == 1:
            return v / (self.L11 if v.ndim == 1 else self.L11[:, None])
        n, k, _ = self.L11.shape
        return np.linalg.solve(self.L11, v.reshape(n, k, -1)).reshape(v.shape)


def factor_first_block(remat: ReMat, A11: np.ndarray) -> FirstBlock:
    """L11 L11' = λ'A11λ + I per level, and R1 = λ L11⁻ᵀ."""
    lam = remat.lambda_
    if remat.is_scalar:
        L11 = np.sqrt(lam[0, 0] ** 2 * A11 + 1.0)
        return FirstBlock(L11, lam[0, 0] / L11)
    M = lam.T @ A11 @ lam
    M += np.eye(remat.k)
    L11 = np.linalg.cholesky(M)
    Linv = np.linalg.inv(L11)
    return FirstBlock(L11, lam @ np.swapaxes(Linv, 1, 2))


# ---------------------------------------------------------------------------
# Block 2: dense or CHOLMOD
# ---------------------------------------------------------------------------
class DenseFactor:
    """Dense lower Cholesky factor of block B."""

    def __init__(self, q: int):
        self.q = q
        self.L = np.zeros((q, q))

    def factor(self, C: sp.spmatrix | np.ndarray) -> None:
        dense = C.toarray() if sp.issparse(C) else C
        self.L = dense_cholesky(np.asfortranarray(dense))

    def logdet(self) -> float:
        return float(np.log(np.diag(self.L)).sum())

    def solve_L(self, M: np.ndarray) -> np.ndarray:
        return sla.solve_triangular(self.L, M, lower=True, check_finite=False)

    def solve_Lt(self, M: np.ndarray) -> np.ndarray:
        return sla.solve_triangular(self.L, M, lower=True, trans="T", check_finite=False)


class CholmodFactor:
    """CHOLMOD supernodal factor of a sparse block B, P C P' = L L'.

    We use L22 = P'L, so that L22 L22' = C; L22 is not triangular, but only
    products with its inverse are ever needed.
    """

    def __init__(self, pattern: sp.spmatrix):
        from sksparse import cholmod

        self.q = pattern.shape[0]
        self._factor = cholmod.analyze(pattern.tocsc(), mode="supernodal")

    def factor(self, C: sp.spmatrix) -> None:
        from sksparse.cholmod import CholmodNotPositiveDefiniteError

        try:
            self._factor.cholesky_inplace(sp.csc_matrix(C))
        except CholmodNotPositiveDefiniteError as exc:
            raise CholeskyFailed(str(exc)) from exc

    def logdet(self) -> float:
        return 0.5 * float(self._factor.logdet())

    def solve_L(self, M: np.ndarray) -> np.ndarray:
        F = self._factor
        return F.solve_L(F.apply_P(M), use_LDLt_decomposition=False)

    def solve_Lt(self, M: np.ndarray) -> np.ndarray:
        F = self._factor
        return F.apply_Pt(F.solve_Lt(M, use_LDLt_decomposition=False))


# ---------------------------------------------------------------------------
# The whole system
# ---------------------------------------------------------------------------
class PenalizedSystem:
    """A = [ZΛ X y]'W[ZΛ X y] in blocks, and its blocked Cholesky factor L.

    Parameters
    ----------
    remats : list of ReMat
        Random-effects terms, the one with the most levels first.
    Xy : ndarray, shape (n, p + 1)
        Fixed-effects model matrix (full column rank) with the response appended.
    sqrtw : ndarray, shape (n,), optional
        Square roots of the weights.
    sparse : bool, optional
        Force (True) or forbid (False) CHOLMOD for block B; by default CHOLMOD
        is used when block B has more than ``DENSE_MAX`` rows, is sparse, and
        scikit-sparse is installed.
    """

    def __init__(self, remats: list[ReMat], Xy: np.ndarray, sqrtw: np.ndarray | None = None, sparse: bool | None = None):
        self.remats = remats
        self.Xy = np.ascontiguousarray(Xy, dtype=float)
        self.sqrtw = sqrtw
        self.first = remats[0]
        self.rest = remats[1:]
        self.q1 = self.first.q
        self.qB = sum(r.q for r in self.rest)
        self._sparse_request = sparse
        self.assemble()
        self.factorB = self._choose_factor()
        self.ok = False

    # ---- assembly of A ---------------------------------------------------------
    def assemble(self) -> None:
        """(Re)compute the blocks of A from Z, X, y and the weights."""
        sw = self.sqrtw
        Z1 = self.first.Z(sw)
        XyW = self.Xy if sw is None else self.Xy * sw[:, None]
        self.A11 = first_block_crossprod(self.first, sw)
        self.A31 = np.asarray((Z1.T @ XyW).T)
        self.A33 = XyW.T @ XyW
        if self.qB:
            ZB = sp.hstack([r.Z(sw) for r in self.rest], format="csr")
            ZBt = ZB.T.tocsr()
            self.A21 = (ZBt @ Z1).tocsr()
            self.A22 = (ZBt @ ZB).tocsr()
            self.A32 = np.asarray((ZBt @ XyW).T)

    def set_weights(self, sqrtw: np.ndarray | None) -> None:
        """Change the weights (e.g. PIRLS working weights) and reassemble A."""
        self.sqrtw = sqrtw
        self.assemble()

    def set_response(self, y: np.ndarray) -> None:
        """Replace the response column and update the blocks of A that involve it."""
        self.Xy[:, -1] = y
        sw = self.sqrtw
        yw = y if sw is None else y * sw
        XyW = self.Xy if sw is None else self.Xy * sw[:, None]
        self.A31[-1] = self.first.Z(sw).T @ yw
        col = XyW.T @ yw
        self.A33[-1, :] = col
        self.A33[:, -1] = col
        if self.qB:
            self.A32[-1] = sp.hstack([r.Z(sw) for r in self.rest], format="csr").T @ yw

    def _choose_factor(self) -> DenseFactor | CholmodFactor | None:
        if not self.qB:
            return None
        use_sparse = self._sparse_request
        if use_sparse is None:
            use_sparse = self.qB > DENSE_MAX and cholmod_available()
        if not use_sparse:
            return DenseFactor(self.qB)
        pattern = self._C22_pattern()
        if self._sparse_request is None and pattern.nnz > 0.2 * self.qB**2:
            return DenseFactor(self.qB)
        return CholmodFactor(pattern)

    def _C22_pattern(self) -> sp.csr_matrix:
        """Structural pattern of ΛB'A22ΛB + I + L21L21' (all products of ones)."""
        ones = lambda M: sp.csr_matrix((np.ones_like(M.data), M.indices, M.indptr), shape=M.shape)  # noqa: E731
        LB = ones(self._LambdaB_structure())
        R1 = sp.kron(sp.identity(self.first.nlevels), np.ones((self.first.k, self.first.k)), format="csr")
        L21 = LB.T @ ones(self.A21) @ R1
        return (LB.T @ ones(self.A22) @ LB + L21 @ L21.T + sp.identity(self.qB)).tocsr()

    def _LambdaB_structure(self) -> sp.csr_matrix:
        blocks = []
        for r in self.rest:
            lam = np.tril(np.ones((r.k, r.k)))
            blocks.append(sp.kron(sp.identity(r.nlevels), lam, format="csr"))
        return sp.block_diag(blocks, format="csr")

    def LambdaB(self) -> sp.csr_matrix:
        """Block diagonal Λ of block B for the current θ."""
        return sp.block_diag([r.Lambda() for r in self.rest], format="csr")

    # ---- the factorisation -------------------------------------------------------
    def update_L(self) -> None:
        """Recompute L for the current λ of every term (in the ReMats)."""
        self.ok = False
        self.F1 = factor_first_block(self.first, self.A11)
        self.L31 = self.F1.right_multiply_dense(self.A31)
        C33 = self.A33.copy()
        C33 -= self.L31 @ self.L31.T
        if self.qB:
            LB = self.LambdaB()
            self.L21 = (LB.T @ self.A21 @ self.F1.as_sparse()).tocsr()
            C22 = LB.T @ self.A22 @ LB - self.L21 @ self.L21.T + sp.identity(self.qB, format="csr")
            self.factorB.factor(C22)
            C32 = (LB.T @ self.A32.T).T - (self.L21 @ self.L31.T).T
            self.L32 = self.factorB.solve_L(np.ascontiguousarray(C32.T)).T
            C33 -= self.L32 @ self.L32.T
        self.L33 = dense_cholesky(np.asfortranarray(C33))
        self.ok = True

    # ---- pieces of the objective --------------------------------------------------
    def logdet_Z(self) -> float:
        """log|L_Z| where L_Z L_Z' = Λ'Z'WZΛ + I (half of lme4's ldL2)."""
        out = self.F1.logdet()
        if self.qB:
            out += self.factorB.logdet()
        return out

    def logdet_X(self) -> float:
        """log|L_X| for the fixed-effects block (half of lme4's ldRX2)."""
        return float(np.log(np.diag(self.L33)[:-1]).sum())

    def pwrss(self) -> float:
        """Penalised weighted residual sum of squares at the conditional optimum."""
        return float(self.L33[-1, -1] ** 2)

    # ---- solutions --------------------------------------------------------------
    def beta(self) -> np.ndarray:
        """Fixed effects: L_X' β = (y row of L33)."""
        L = self.L33
        return sla.solve_triangular(L[:-1, :-1], L[-1, :-1], lower=True, trans="T", check_finite=False)

    def u(self, beta: np.ndarray) -> np.ndarray:
        """Spherical random effects u for fixed effects β: L_Z' u = c_Z - L_XZ' β."""
        p = len(beta)
        v1 = self.L31[p] - self.L31[:p].T @ beta
        if not self.qB:
            return self.F1.solve_transpose(v1)
        v2 = self.L32[p] - self.L32[:p].T @ beta
        u2 = self.factorB.solve_Lt(v2)
        u1 = self.F1.solve_transpose(v1 - self.L21.T @ u2)
        return np.concatenate([u1, u2])

    def solve_u(self, r: np.ndarray) -> np.ndarray:
        """u solving (Λ'Z'WZΛ + I) u = Λ'Z'W r, for a residual r in observation space."""
        rhs = self.Lambda_t_Zt_W(r)
        return self.solve_LZt(self.solve_LZ(rhs))

    def Lambda_t_Zt_W(self, r: np.ndarray) -> np.ndarray:
        """Λ'Z'W r (length q)."""
        sw = self.sqrtw
        rw = r if sw is None else r * sw
        out = []
        for remat in self.remats:
            v = remat.Z(sw).T @ rw
            out.append((v.reshape(remat.nlevels, remat.k) @ remat.lambda_).ravel())
        return np.concatenate(out)

    def solve_LZ(self, v: np.ndarray) -> np.ndarray:
        """L_Z⁻¹ v for the random-effects part of L."""
        w1 = self.F1.solve(v[: self.q1])
        if not self.qB:
            return w1
        w2 = self.factorB.solve_L(v[self.q1 :] - self.L21 @ w1)
        return np.concatenate([w1, w2])

    def solve_LZt(self, v: np.ndarray) -> np.ndarray:
        """L_Z⁻ᵀ v."""
        if not self.qB:
            return self.F1.solve_transpose(v)
        u2 = self.factorB.solve_Lt(v[self.q1 :])
        u1 = self.F1.solve_transpose(v[: self.q1] - self.L21.T @ u2)
        return np.concatenate([u1, u2])

    def LZ_inverse_columns(self, start: int, stop: int) -> np.ndarray:
        """Columns start:stop of L_Z⁻¹ (dense, q x (stop - start))."""
        q = self.q1 + self.qB
        E = np.zeros((q, stop - start))
        E[np.arange(start, stop), np.arange(stop - start)] = 1.0
        return self.solve_LZ(E)
