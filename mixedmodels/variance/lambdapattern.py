"""Covariance factors of random effects that are linear in their parameters.

The random effects b (length q) have covariance ΛΛ' with a q x q factor

    Λ(θ) = Σ_m θ_m F_m,

where each F_m is a 0/1 matrix: the positions at which parameter θ_m
appears.  For a scalar term with one variance, Λ = σ I_q (one parameter on
the diagonal); for an lme4 term ``(1 + x | g)`` with k = 2 columns and L
levels, Λ = I_L ⊗ λ with λ the 2 x 2 lower-triangular Cholesky factor of the
term's covariance, and each of the three elements of λ repeats on L
positions.  Diagonal elements of λ are standard deviations (bounded below
by 0), the others are free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

__all__ = ["LambdaPattern"]


@dataclass(frozen=True)
class LambdaPattern:
    """Positions of each θ_m in Λ(θ).

    Attributes
    ----------
    q : int
        Number of random effects (Λ is q x q).
    rows, cols : tuple of ndarray of int
        ``rows[m][i], cols[m][i]``: the i-th position of θ_m in Λ.
    lower : ndarray, shape (ntheta,)
        Lower bounds: 0 for standard deviations, -inf for other elements.
    names : tuple of str
        One label per parameter.
    """

    q: int
    rows: tuple[np.ndarray, ...]
    cols: tuple[np.ndarray, ...]
    lower: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def scalar(cls, q: int, name: str = "sd") -> LambdaPattern:
        """Λ = σ I_q: iid random effects with one standard deviation σ."""
        diag = np.arange(q, dtype=np.intp)
        return cls(q, (diag,), (diag,), np.zeros(1), (name,))

    @classmethod
    def empty(cls) -> LambdaPattern:
        """No random effects (q = 0): the heteroskedastic linear model."""
        return cls(0, (), (), np.zeros(0), ())

    @property
    def ntheta(self) -> int:
        return len(self.rows)

    @cached_property
    def F(self) -> list[sp.csr_matrix]:
        """The 0/1 matrices F_m as sparse q x q matrices."""
        ones = [np.ones(len(r)) for r in self.rows]
        return [
            sp.csr_matrix((v, (r, c)), shape=(self.q, self.q))
            for v, r, c in zip(ones, self.rows, self.cols)
        ]

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """Λ(θ) as a dense q x q array."""
        lam = np.zeros((self.q, self.q))
        for value, r, c in zip(theta, self.rows, self.cols):
            lam[r, c] = value
        return lam

    def inner(self, M: np.ndarray) -> np.ndarray:
        """⟨M, F_m⟩ = Σ over θ_m's positions of M, for each m (the chain rule through Λ)."""
        return np.array([M[r, c].sum() for r, c in zip(self.rows, self.cols)])

    def is_diagonal(self) -> np.ndarray:
        """Boolean per parameter: does it sit on the diagonal of Λ (a standard deviation)?"""
        return np.isfinite(self.lower)
