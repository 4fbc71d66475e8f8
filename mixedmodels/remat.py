"""Random-effects terms.

A term ``(1 + x | g)`` contributes a block Z_i of the random-effects model
matrix Z.  Z_i is never stored as a general sparse matrix: each observation
t has one level code ``refs[t]`` of g and one row ``z[t, :]`` of the term's
small dense model matrix (k columns), and

    Z_i[t, refs[t] * k + j] = z[t, j],   j = 0..k-1,

all other entries being zero.  The relative covariance factor of the term is
a k x k lower-triangular matrix lambda; the term's block of Λθ is
``kron(I_levels, lambda)``.  The free elements of lambda are the term's part
of θ (the lower triangle column by column, as lme4).

Terms with the same grouping factor are amalgamated into one ReMat whose
lambda is block diagonal with a block per original term (zeros between
them are not parameters), as MixedModels.jl does: it keeps the first block
of the Cholesky factor (uniform) block diagonal.

A block written with a covariance structure (``ar1(0 + f | g)``, see
:mod:`mixedmodels.covstruct`) has a :class:`~mixedmodels.covstruct.CovStructure`;
its θ elements are the structure's φ and its λ block is recomputed from φ at
every ``set_theta``.  A ReMat without structured blocks keeps the linear
scatter ``lambda.flat[inds] = θ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .covstruct import CovStructure
from .errors import FormulaError

__all__ = ["ReMat", "lower_tri_positions"]


def lower_tri_positions(start: int, size: int) -> list[tuple[int, int]]:
    """(row, column) of a size x size lower triangle at offset ``start``, column by column."""
    return [(start + i, start + j) for j in range(size) for i in range(j, size)]


@dataclass
class ReMat:
    """A random-effects term (possibly several amalgamated on one grouping factor).

    Attributes
    ----------
    name : str
        Label of the grouping factor (``"Subject"``, ``"dept:service"``).
    refs : ndarray of int, shape (n,)
        Level code of each observation, 0..nlevels-1.
    levels : list of str
        Level labels in code order.
    z : ndarray, shape (n, k)
        The term's dense model matrix (rows of Z_i before placement).
    cnames : list of str
        Column names of ``z``.
    blocks : list of slice
        Column ranges of the original terms; λ is block diagonal over them.
    term_ids : list of int
        For each block, the index of the original term in formula order.
    structures : list of CovStructure or None
        For each block, its covariance structure (None: unstructured).
    is_structured : bool
        True if some block has a covariance structure (θ -> λ is then not a linear scatter).
    """

    name: str
    refs: np.ndarray
    levels: list[str]
    z: np.ndarray
    cnames: list[str]
    blocks: list[slice]
    term_ids: list[int]
    factor: np.ndarray | None = None
    structures: list[CovStructure | None] | None = None
    lambda_: np.ndarray = field(init=False)
    inds: np.ndarray = field(init=False)
    is_structured: bool = field(init=False)

    def __post_init__(self) -> None:
        k = self.k
        self.lambda_ = np.eye(k)
        if self.structures is None:
            self.structures = [None] * len(self.blocks)
        positions = [
            p
            for b, s in zip(self.blocks, self.structures)
            if s is None
            for p in lower_tri_positions(b.start, b.stop - b.start)
        ]
        self.inds = np.array([r * k + c for r, c in positions], dtype=np.intp)
        # fixed at construction: set_theta, on the hot path, only reads the flag
        self.is_structured = any(s is not None for s in self.structures)
        self._phi = self.initial_theta() if self.is_structured else None

    def __setstate__(self, state: dict) -> None:
        """Unpickle, also a term saved before covariance structures existed (all unstructured)."""
        state.setdefault("structures", [None] * len(state["blocks"]))
        state.setdefault("is_structured", False)
        state.setdefault("_phi", None)
        self.__dict__.update(state)

    # ---- sizes -------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of columns of the term's model matrix."""
        return self.z.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        """Number of random effects of the term: k * nlevels."""
        return self.k * self.nlevels

    @property
    def ntheta(self) -> int:
        if not self.is_structured:  # read on every evaluation
            return len(self.inds)
        return sum(self.block_ntheta(bi) for bi in range(len(self.blocks)))

    def block_ntheta(self, bi: int) -> int:
        """Number of θ elements of block ``bi``."""
        s, size = self.structures[bi], self.blocks[bi].stop - self.blocks[bi].start
        return size * (size + 1) // 2 if s is None else s.ntheta

    @property
    def is_scalar(self) -> bool:
        return self.k == 1

    # ---- θ -----------------------------------------------------------------
    def positions(self) -> list[tuple[int, int]]:
        """(row, column) in λ of each of the term's θ elements (unstructured terms only)."""
        if self.is_structured:
            raise FormulaError(
                f"the random-effects term on {self.name!r} has a covariance structure; "
                "this needs unstructured terms, whose θ are λ's elements (the heteroskedastic "
                "model, for one, takes only those)"
            )
        return [divmod(int(i), self.k) for i in self.inds]

    def is_diagonal(self) -> np.ndarray:
        """Boolean per θ element: a diagonal element of λ, or a structure's standard deviation."""
        if not self.is_structured:
            return np.array([r == c for r, c in self.positions()])
        return np.concatenate(
            [
                np.array([r == c for r, c in self._block_positions(bi)]) if s is None else s.is_sd()
                for bi, s in enumerate(self.structures)
            ]
        ).astype(bool)

    def _block_positions(self, bi: int) -> list[tuple[int, int]]:
        b = self.blocks[bi]
        return lower_tri_positions(b.start, b.stop - b.start)

    def lowerbd(self) -> np.ndarray:
        """Lower bounds of θ: 0 for diagonal elements of λ and for standard deviations, -inf otherwise."""
        return np.where(self.is_diagonal(), 0.0, -np.inf)

    def initial_theta(self) -> np.ndarray:
        """θ of λ = I, the usual starting value."""
        return self.is_diagonal().astype(float)

    def theta_names(self) -> list[str]:
        """lme4's names: ``g.(Intercept)`` on the diagonal, ``g.row.col`` below it; a structure's own."""
        names = []
        for bi, s in enumerate(self.structures):
            if s is not None:
                names.extend(s.theta_names(self.name, self.cnames[self.blocks[bi]]))
                continue
            for r, c in self._block_positions(bi):
                suffix = self.cnames[r] if r == c else f"{self.cnames[r]}.{self.cnames[c]}"
                names.append(f"{self.name}.{suffix}")
        return names

    def lambda_of(self, theta: np.ndarray) -> np.ndarray:
        """λ (k x k) for the term's θ elements, without touching the term."""
        lam = np.zeros((self.k, self.k))
        if not self.is_structured:
            lam.flat[self.inds] = theta
            return lam
        start = 0
        for bi, s in enumerate(self.structures):
            b, n = self.blocks[bi], self.block_ntheta(bi)
            piece = np.asarray(theta[start : start + n], dtype=float)
            if s is None:
                for (r, c), v in zip(self._block_positions(bi), piece):
                    lam[r, c] = v
            else:
                lam[b, b] = s.lambda_(piece)
            start += n
        return lam

    def set_theta(self, theta: np.ndarray) -> None:
        """Write the term's θ elements into λ in place (a structure's λ is recomputed from φ)."""
        if not self.is_structured:
            self.lambda_.flat[self.inds] = theta
            return
        self._phi = np.array(theta, dtype=float)
        self.lambda_[...] = self.lambda_of(self._phi)

    def get_theta(self) -> np.ndarray:
        if self.is_structured:
            return self._phi.copy()
        return self.lambda_.flat[self.inds].copy()

    def block_theta(self, theta: np.ndarray, bi: int) -> np.ndarray:
        """Block ``bi``'s part of the term's θ elements."""
        start = sum(self.block_ntheta(j) for j in range(bi))
        return np.asarray(theta[start : start + self.block_ntheta(bi)], dtype=float)

    @property
    def has_factor(self) -> bool:
        """True for a term with a known covariance (b = λ F u rather than b = λ u per level)."""
        return self.factor is not None

    def b_from_u(self, u: np.ndarray) -> np.ndarray:
        """Random effects b of the term from its spherical u, shape (nlevels, k)."""
        if self.factor is not None:
            return (self.lambda_[0, 0] * (self.factor @ u))[:, None]
        return u.reshape(self.nlevels, self.k) @ self.lambda_.T

    def Zb(self, u: np.ndarray) -> np.ndarray:
        """Z_i b_i for the term's spherical u: a new array of length n.

        A scalar term (no known covariance) is one product and one gather;
        otherwise each row's z[t] · b[refs[t]].
        """
        if self.k == 1 and self.factor is None:
            return self.z[:, 0] * (u * self.lambda_[0, 0])[self.refs]
        return np.einsum("tk,tk->t", self.z, self.b_from_u(u)[self.refs])

    def dense_Z(self, sqrtw: np.ndarray | None = None) -> np.ndarray:
        """The term's columns of Z as a dense n x q array (Z F for a term with a known covariance)."""
        Z = self.Z(sqrtw)
        return (Z @ self.factor) if self.factor is not None else Z.toarray()

    # ---- realisations --------------------------------------------------------
    def Z(self, sqrtw: np.ndarray | None = None) -> sp.csr_matrix:
        """Z_i as a CSR matrix (n x q), rows optionally scaled by sqrt weights."""
        n, k = self.z.shape
        data = self.z if sqrtw is None else self.z * sqrtw[:, None]
        indices = (self.refs[:, None] * k + np.arange(k)).ravel()
        indptr = np.arange(0, n * k + 1, k)
        return sp.csr_matrix((data.ravel(), indices, indptr), shape=(n, self.q))
