"""A dense version of the penalised system, for terms with a known covariance.

A term whose random effects have covariance σ²θ²K (a kinship matrix) has
the dense model matrix Z F (K = F F'), which destroys the (block) diagonal
structure that :mod:`mixedmodels.blocks` relies on.  Models with such a term
use this class instead: the same interface, with Z stored densely and

    L_Z L_Z' = Λ'Z'WZΛ + I,   L_XZ = (Λ'Z'W[X y])' L_Z⁻ᵀ,   L33 L33' = [X y]'W[X y] - L_XZ L_XZ'

computed with LAPACK.  The cost is O(q³) per evaluation, fine for a few
thousand random effects; a single kinship term on large samples is better
served by the eigendecomposition path of :mod:`mixedmodels.genetics`.
"""

from __future__ import annotations

import numpy as np

from .blocks import FixedEffectsBlock, dense_cholesky, triangular_solve
from .remat import ReMat

__all__ = ["DenseSystem"]


class DenseSystem(FixedEffectsBlock):
    """Dense A = [ZΛ X y]'W[ZΛ X y] and its Cholesky factor (interface of PenalizedSystem)."""

    def __init__(
        self,
        remats: list[ReMat],
        Xy: np.ndarray,
        sqrtw: np.ndarray | None = None,
        sparse: bool | None = None,
    ):
        self.remats = remats
        self.Xy = np.ascontiguousarray(Xy, dtype=float)
        self.Zd = np.hstack([r.dense_Z() for r in remats])
        self.q = self.Zd.shape[1]
        self.factorB = None
        self.set_weights(sqrtw)
        self.ok = False

    @property
    def dense_dim(self) -> int:
        return max(self.q, self.Xy.shape[1])

    # ---- assembly ----------------------------------------------------------------
    def set_weights(self, sqrtw: np.ndarray | None, y: np.ndarray | None = None) -> None:
        if y is not None:
            self.Xy[:, -1] = y
        self._set_Z_weights(sqrtw)
        XyW = self.Xy if sqrtw is None else self.Xy * sqrtw[:, None]
        self.ZtXy = self.ZW.T @ XyW
        self.A33 = XyW.T @ XyW

    def _set_Z_weights(self, sqrtw: np.ndarray | None) -> None:
        self.sqrtw = sqrtw
        self.ZW = self.Zd if sqrtw is None else self.Zd * sqrtw[:, None]
        self.ZtZ = self.ZW.T @ self.ZW

    def set_response(self, y: np.ndarray) -> None:
        self.set_weights(self.sqrtw, y)

    def _lambda_diag_blocks(self) -> np.ndarray:
        """Λ as a dense q x q matrix (kron(I, λ) per term; λ·I for a term with a known covariance)."""
        Lam = np.zeros((self.q, self.q))
        start = 0
        for r in self.remats:
            block = (
                np.eye(r.q) * r.lambda_[0, 0]
                if r.has_factor
                else np.kron(np.eye(r.nlevels), r.lambda_)
            )
            Lam[start : start + r.q, start : start + r.q] = block
            start += r.q
        return Lam

    # ---- factorisation -------------------------------------------------------------
    def _factor_Z(self) -> None:
        self.Lam = self._lambda_diag_blocks()
        if all(r.k == 1 for r in self.remats):  # Λ diagonal: a scaling, not two products
            lam = np.diag(self.Lam)
            M = self.ZtZ * lam[:, None] * lam[None, :]
        else:
            M = self.Lam.T @ self.ZtZ @ self.Lam
        M[np.diag_indices_from(M)] += 1.0
        self.LZ = dense_cholesky(np.asfortranarray(M))

    def update_L(self) -> None:
        self.ok = False
        self._factor_Z()
        self.LXZ = triangular_solve(self.LZ, self.Lam.T @ self.ZtXy).T
        self.L33 = dense_cholesky(np.asfortranarray(self.A33 - self.LXZ @ self.LXZ.T))
        self.ok = True

    def factor_Z_at_weights(self, sqrtw: np.ndarray | None) -> None:
        self._set_Z_weights(sqrtw)
        self.ok = False
        self._factor_Z()

    # ---- pieces of the objective and solutions ----------------------------------------
    def logdet_Z(self) -> float:
        return float(np.log(np.diag(self.LZ)).sum())

    def u(self, beta: np.ndarray) -> np.ndarray:
        p = len(beta)
        return self.solve_LZt(self.LXZ[p] - self.LXZ[:p].T @ beta)

    def solve_u_given_beta(self, r: np.ndarray) -> np.ndarray:
        rw = r if self.sqrtw is None else r * self.sqrtw
        return self.solve_LZt(self.solve_LZ(self.Lam.T @ (self.ZW.T @ rw)))

    def solve_LZ(self, v: np.ndarray) -> np.ndarray:
        return triangular_solve(self.LZ, v)

    def solve_LZt(self, v: np.ndarray) -> np.ndarray:
        return triangular_solve(self.LZ, v, trans=True)
