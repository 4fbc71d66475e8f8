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
* block 2 ("B") holds all other random-effects terms; A21 is sparse with
  one k_j x k_1 block per pair of levels that occur together, and L21 keeps
  that pattern; L22 is a dense Cholesky factor, or CHOLMOD's sparse
  supernodal factor (one symbolic analysis reused for every θ) when block B
  is large and sparse;
* block 3 holds the fixed effects and the response, dense.

Each evaluation (:meth:`PenalizedSystem.update_L`) does

    L11 L11'  = Λ1'A11Λ1 + I                       (batched, per level)
    L21       = ΛB'A21Λ1 L11⁻ᵀ                      (per level pair, fixed pattern)
    L31       = A31Λ1 L11⁻ᵀ
    L22 L22'  = ΛB'A22ΛB + I - L21 L21'            (dense or CHOLMOD)
    L32       = (A32ΛB - L31 L21') L22⁻ᵀ
    L33 L33'  = A33 - L31 L31' - L32 L32'

with no Python loop over observations or levels: every sparse pattern and
index map is computed once, at construction, and evaluations only refill
value arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse import _sparsetools  # an in-place CSC product (no public equivalent)

from .errors import CholeskyFailed
from .remat import ReMat

__all__ = ["PenalizedSystem", "cholmod_available", "DENSE_MAX", "CholeskyFailed"]

DENSE_MAX = 3000
"""Without a cost estimate (no scalar product), block B larger than this and sparse is factored by CHOLMOD."""

SPARSE_MIN = 200
"""Block B smaller than this is always factored densely (a few microseconds either way)."""

SPARSE_FLOP_COST = 20.0
"""A flop of CHOLMOD's factor costs this many dense (LAPACK) flops.

scikit-sparse's CHOLMOD calls the system BLAS (Debian's reference BLAS
here, not numpy's OpenBLAS), about 20 times slower on supernodes than LAPACK
on a dense block: a nearly full block B (InstEval's) stays dense.
"""

SPARSE_TRIAL_DENSITY = 0.1
"""Only a pattern filling at most this fraction of q_B² is worth counting CHOLMOD's flops for."""

SPARSE_ENTRY_COST = 30.0
"""Fixed cost of each non-zero of CHOLMOD's factor, in dense flops (indexing, scatter, small supernodes)."""


def cholmod_available() -> bool:
    """True if scikit-sparse's CHOLMOD can be imported (the ``cholmod`` extra)."""
    try:
        import sksparse.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


def triangular_solve(L: np.ndarray, B: np.ndarray, trans: bool = False) -> np.ndarray:
    """L⁻¹B (or L'⁻¹B with ``trans``) for a lower-triangular factor L, by LAPACK's dtrtrs.

    Called directly rather than through ``scipy.linalg.solve_triangular``, whose
    argument handling costs about ten times the solve itself for the small
    blocks of a GLMM's PIRLS iterations.  A C-ordered L is used as its
    transpose, an upper-triangular Fortran array, so it is never copied.
    """
    if L.shape[0] == 0:  # no fixed effects, say: LAPACK refuses a leading dimension of 0
        return np.array(B, dtype=float)
    if L.flags.f_contiguous:
        x, info = sla.lapack.dtrtrs(L, B, lower=1, trans=int(trans))
    else:
        x, info = sla.lapack.dtrtrs(L.T, B, lower=0, trans=int(not trans))
    if info != 0:
        raise CholeskyFailed(f"the triangular factor is singular at its diagonal element {info}")
    return x


def dense_cholesky(a: np.ndarray, clean: bool = True) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite matrix, overwriting ``a``.

    ``a`` may be C- or Fortran-ordered: it is symmetric, so its transpose is
    the same matrix in the other order and LAPACK can work in place.  With
    ``clean=False`` only the lower triangle of a Fortran-ordered ``a`` is read
    and written; what lies above it is left as it was (zero, for the caller
    that asks: a pass over q²/2 doubles saved).
    """
    f = a if a.flags.f_contiguous else a.T
    clean = clean or not a.flags.f_contiguous
    lower, info = sla.lapack.dpotrf(f, lower=1, clean=int(clean), overwrite_a=1)
    if info != 0:
        raise CholeskyFailed(f"leading minor {info} is not positive definite")
    if not np.isfinite(lower.diagonal()).all():
        raise CholeskyFailed("the matrix to factor has values that are not finite")
    return lower


def level_crossprod(refs: np.ndarray, nlevels: int, zi: np.ndarray, zj: np.ndarray) -> np.ndarray:
    """Σ over observations in each level of zi[t]' zj[t]: shape (nlevels, ki, kj)."""
    if zi.shape[1] == 1 and zj.shape[1] == 1:  # scalar terms (PIRLS's common case): one bincount
        return np.bincount(refs, zi[:, 0] * zj[:, 0], minlength=nlevels).reshape(nlevels, 1, 1)
    out = np.empty((nlevels, zi.shape[1], zj.shape[1]))
    for a in range(zi.shape[1]):
        for b in range(zj.shape[1]):
            out[:, a, b] = np.bincount(refs, zi[:, a] * zj[:, b], minlength=nlevels)
    return out


def level_indicator(refs: np.ndarray, nlevels: int) -> sp.csr_matrix:
    """The nlevels x n indicator of a term's levels (row l: ones at level l's observations, ascending)."""
    n = len(refs)
    # CSR directly (a stable sort keeps each row's observations ascending): scipy's
    # conversion from coordinates costs more than the rest of a small model's set-up
    indptr = np.zeros(nlevels + 1, dtype=np.int32 if n < 2**31 else np.int64)
    np.cumsum(np.bincount(refs, minlength=nlevels), out=indptr[1:])
    indices = np.argsort(refs, kind="stable").astype(indptr.dtype, copy=False)
    return sp.csr_matrix((np.ones(n), indices, indptr), shape=(nlevels, n))


def level_sums(
    refs: np.ndarray,
    nlevels: int,
    z: np.ndarray,
    M: np.ndarray,
    indicator: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Z_i'M for a term with codes ``refs`` and matrix ``z`` (n x k): shape (M.shape[1], nlevels * k).

    ``indicator`` (:func:`level_indicator` of ``refs``) lets a scalar term sum all
    columns of z ∘ M in one compiled pass instead of a bincount per column: the
    same products added in the same (observation) order, so the same sums.
    """
    k = z.shape[1]
    if k == 1 and indicator is not None:
        P = np.multiply(z, M, order="C")  # z is n x 1
        return np.ascontiguousarray(csr_times(indicator, P).T)
    if k == 1:  # a scalar term (the common case): rows straight into the result
        z0, out1 = z[:, 0], np.empty((M.shape[1], nlevels))
        for c in range(M.shape[1]):
            out1[c] = np.bincount(refs, z0 * M[:, c], minlength=nlevels)
        return out1
    out = np.empty((M.shape[1], nlevels, k))
    for a in range(k):
        for c in range(M.shape[1]):
            out[c, :, a] = np.bincount(refs, z[:, a] * M[:, c], minlength=nlevels)
    return out.reshape(M.shape[1], nlevels * k)


class TermCross:
    """Z_i'WZ_j for two different terms, stored by the pairs of levels that co-occur.

    Attributes
    ----------
    rows, cols : ndarray of int
        Level of term i and of term j of each pair (sorted by row, then column).
    inv : ndarray of int
        Pair index of each observation.
    """

    def __init__(self, ri: ReMat, rj: ReMat):
        key = ri.refs.astype(np.int64) * rj.nlevels + rj.refs
        uniq, self.inv = np.unique(key, return_inverse=True)
        self.inv = self.inv.ravel()
        self.rows, self.cols = np.divmod(uniq, rj.nlevels)
        self.ki, self.kj = ri.k, rj.k

    @property
    def npairs(self) -> int:
        return len(self.rows)

    def values(self, zi: np.ndarray, zj: np.ndarray) -> np.ndarray:
        """Blocks Σ_{t in pair} zi[t]' zj[t], shape (npairs, ki, kj) (z already weighted)."""
        return level_crossprod(self.inv, self.npairs, zi, zj)

    def entries(self, row_offset: int = 0, col_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Matrix (row, column) of every value, in (pair, a, b) order."""
        a = np.arange(self.ki)[None, :, None]
        b = np.arange(self.kj)[None, None, :]
        r = row_offset + self.rows[:, None, None] * self.ki + a + 0 * b
        c = col_offset + self.cols[:, None, None] * self.kj + b + 0 * a
        return r.ravel(), c.ravel()


class ScalarProduct:
    """L21 L21' for scalar terms only, from fixed pair lists (MixedModels.jl's rank update).

    With every term scalar, L21[i, l] = λ_i A21[i, l] r_l, where r_l = λ₁/L11_l, so

        (L21 L21')[i, j] = λ_i λ_j Σ_l A21[i, l] A21[j, l] r_l².

    The pairs of non-zeros (i >= j) sharing a column l are listed once, as the
    entries of a sparse matrix M with a row for each position (i, j) of the lower
    triangle that receives products: one sparse matrix-vector product M r² gives
    those entries of A21 diag(r²) A21', and scaling by λ_i λ_j gives L21 L21'
    without a general sparse product per evaluation.
    """

    def __init__(self, L21: sp.csr_matrix):
        qB, q1 = L21.shape
        rows = np.repeat(np.arange(qB), np.diff(L21.indptr))
        cols = L21.indices
        pos = np.argsort(cols, kind="stable")  # by column, rows ascending within a column
        counts = np.bincount(cols, minlength=q1)
        k = np.arange(len(pos)) - np.repeat(np.cumsum(counts) - counts, counts)
        first = np.repeat(np.arange(len(pos)), k + 1)
        second = (
            first
            - k[first]
            + (np.arange(len(first)) - np.repeat(np.cumsum(k + 1) - (k + 1), k + 1))
        )
        P1, P2 = pos[first], pos[second]
        target = rows[P2].astype(np.int64) * qB + rows[P1]  # Fortran order, lower triangle
        # building the CSR matrix sorts by target in linear time; its data records the order
        tag = np.arange(1, len(P1) + 1, dtype=float)
        M = sp.csr_matrix((tag, (target, cols[P1])), shape=(qB * qB, q1))
        # keep only the positions that receive products (a fraction of the lower triangle)
        self.targets = np.flatnonzero(np.diff(M.indptr))
        self._M = M[self.targets]
        order = self._M.data.astype(np.int64) - 1
        self.P1, self.P2 = P1[order], P2[order]
        self.row_i, self.row_j = self.targets % qB, self.targets // qB
        self.qB = qB

    @staticmethod
    def count_pairs(L21: sp.csr_matrix) -> int:
        counts = np.bincount(L21.indices, minlength=L21.shape[1]).astype(np.int64)
        return int((counts * (counts + 1) // 2).sum())

    def set_A21(self, a: np.ndarray) -> None:
        """A21's values in L21's CSR order (after a change of weights)."""
        self._M.data[:] = a[self.P1] * a[self.P2]

    def target_sums(self, r1: np.ndarray, lam_rows: np.ndarray) -> np.ndarray:
        """(L21 L21')[i, j] at each target position (i >= j), for the current r1 and λ per row."""
        sums = self._M @ (r1 * r1)
        sums *= lam_rows[self.row_i] * lam_rows[self.row_j]
        return sums

    def lower_product(self, r1: np.ndarray, lam_rows: np.ndarray) -> np.ndarray:
        """L21 L21' for the current r1 (= R1) and λ per row: exact in the lower triangle, zero above."""
        sums = self.target_sums(r1, lam_rows)
        prod = np.zeros((self.qB, self.qB), order="F")
        prod.ravel(order="F")[self.targets] = sums
        return prod


SPLIT_PAIR_COST = 80.0
"""A product of two non-zeros of L21 summed by :class:`SplitProduct`'s pair matrix costs this many BLAS flops.

Measured on this machine: the pair matrix's product with a vector takes about
2 ns a pair, numpy's OpenBLAS dsyrk about 0.03 ns a flop (one thread).
"""

BAND_BYTES = 2**21
"""Size of the bands of the dense block into which :class:`SplitProduct` scatters pairs (cache-sized)."""

PAIR_CHUNK = 2_000_000
"""Pairs generated at a time while :class:`SplitProduct` is built (bounds its temporaries)."""


def csc_matvec_add(
    shape: tuple[int, int], indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x, y
) -> None:
    """y += P x for a CSC matrix P given by its arrays, in place (scipy's compiled kernel).

    ``P @ x`` would allocate a new y each time; here y is a view of the dense
    block being assembled.
    """
    _sparsetools.csc_matvec(shape[0], shape[1], indptr, indices, data, x, y)


def csr_times(A: sp.csr_matrix, x: np.ndarray, transpose: bool = False) -> np.ndarray:
    """A x (or A' x) for a CSR matrix A and a float vector x (A x also for an n x K matrix x),
    by scipy's compiled kernels.

    The same kernels and summation order as ``A @ x`` and ``A.T @ x`` (a CSR
    matrix's transpose is the CSC matrix of the same arrays) without the
    wrappers' checks and, for A', the transposed matrix object: about ten
    times the product's own cost on the small blocks of a GLMM's PIRLS.
    """
    if x.ndim not in (1, 2) or A.dtype != np.float64 or (transpose and x.ndim == 2):
        return A.T @ x if transpose else A @ x  # scipy's own product
    m, n = A.shape
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim == 2:  # a block of vectors, row-major, as scipy's product passes it
        out = np.zeros((m, x.shape[1]))
        _sparsetools.csr_matvecs(
            m, n, x.shape[1], A.indptr, A.indices, A.data, x.ravel(), out.ravel()
        )
        return out
    if transpose:
        out = np.zeros(n)
        _sparsetools.csc_matvec(n, m, A.indptr, A.indices, A.data, x, out)
    else:
        out = np.zeros(m)
        _sparsetools.csr_matvec(m, n, A.indptr, A.indices, A.data, x, out)
    return out


def equal_count_pairs(
    rows: np.ndarray, values: np.ndarray, q: int
) -> tuple[np.ndarray, np.ndarray]:
    """The lower-triangle pairs of m columns with c non-zeros each, at rows ``rows`` (m x c, ascending).

    Column l's pairs (a >= b) fall at the position t = i_a + q i_b of a
    q x q matrix in Fortran order, with the product v_a v_b.  They come b
    first, then a, so that consecutive pairs fall in one column of the matrix.

    Returns
    -------
    target : ndarray of int32, shape (m, c(c+1)/2)
    product : ndarray, shape (m, c(c+1)/2)
    """
    b, a = np.triu_indices(rows.shape[1])
    return rows[:, a] + q * rows[:, b], values[:, a] * values[:, b]


class SplitProduct:
    """The lower triangle of L21 L21' as a dense matrix, for scalar terms, by heavy and light columns.

    With every term scalar, L21[i, l] = λ_i A21[i, l] r_l (r = R1), so

        (L21 L21')[i, j] = λ_i λ_j Σ_l A21[i, l] A21[j, l] r_l².

    A column l of A21 with c_l non-zeros adds c_l(c_l + 1)/2 products to the
    lower triangle.  The k *heavy* columns (the most non-zeros) are multiplied
    by one BLAS dsyrk on the dense q_B x k matrix A21[:, heavy] diag(r): q_B²
    flops a column, whatever c_l.  The *light* columns' pairs are the
    non-zeros of a sparse matrix P with one row for each position of the
    q_B x q_B matrix in Fortran order and one column per light level,
    P[i + q_B j, l] = A21[i, l] A21[j, l] (i >= j): the product P r² is their
    part of the lower triangle, added straight into the dense matrix (no
    sparse product, no index map).  k minimises

        k q_B² + SPLIT_PAIR_COST × (pairs of the light columns)

    among the splits keeping at most ``max_pairs`` light pairs (P takes 12
    bytes a pair, stored by band of the dense block and level, and is built
    without a sort: see :meth:`_build_pairs`).

    Parameters
    ----------
    L21 : scipy.sparse.csr_matrix, shape (q_B, q_1)
        The pattern of L21 (sorted indices).
    a : ndarray, shape (nnz,)
        A21's values in L21's CSR order.
    max_pairs : int
        Most pairs the light part may hold (below 2³¹).
    """

    def __init__(self, L21: sp.csr_matrix, a: np.ndarray, max_pairs: int):
        self.qB = L21.shape[0]
        self._pattern = sp.csr_matrix((np.zeros(L21.nnz), L21.indices, L21.indptr), L21.shape)
        counts = np.bincount(L21.indices, minlength=L21.shape[1]).astype(np.int64)
        self.heavy, light = self.split(counts, self.qB, min(max_pairs, 2**31 - 1))
        # light levels grouped by their number of non-zeros (see _build_pairs)
        self.light = light[np.argsort(counts[light], kind="stable")]
        self.set_A21(a)

    @staticmethod
    def split(counts: np.ndarray, qB: int, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
        """(heavy, light) column indices, each ascending, for the non-zero ``counts`` per column."""
        order = np.argsort(-counts, kind="stable")
        pairs = counts[order] * (counts[order] + 1) // 2
        light_pairs = pairs.sum() - np.concatenate([[0], np.cumsum(pairs)])  # after k heavy
        k = np.arange(len(order) + 1)
        cost = k * float(qB) ** 2 + SPLIT_PAIR_COST * light_pairs
        cost[light_pairs > max_pairs] = np.inf
        best = int(np.argmin(cost))
        return np.sort(order[:best]), np.sort(order[best:])

    @property
    def light_pairs(self) -> int:
        return int(self._P_indptr[-1])

    def set_A21(self, a: np.ndarray) -> None:
        """Build both parts for A21's values ``a`` (L21's CSR order): once per set of weights."""
        A = self._pattern.copy()
        A.data[:] = a
        A = A.tocsc()
        A.sort_indices()
        self._H = np.asfortranarray(A[:, self.heavy].toarray())
        self._Hr = np.empty_like(self._H)
        self._build_pairs(A[:, self.light])

    def _build_pairs(self, A: sp.csc_matrix) -> None:
        """The arrays of the light pair matrix P, by band of the dense block, then level.

        P r² scatters each pair into the dense q_B x q_B block; done level
        by level, consecutive pairs would land anywhere in its q_B² doubles
        (a cache miss each).  So P is stored as a CSC matrix with a column
        for each (band, level): a band is BAND_BYTES of consecutive columns
        of the block, and each band's pairs scatter within it.  A column of
        A is the level's non-zeros; its pairs (a >= b) come b first (their
        band is row i_b's), so each level's pairs in one band are
        consecutive and their destination follows from one offset per
        non-zero (:meth:`_pair_starts`).  A's columns come in groups with
        equal numbers of non-zeros, so each group's pairs are one gather
        through a lower-triangle index; the loop runs over the distinct
        counts (and chunks of large groups).
        """
        q = self.qB
        counts = np.diff(A.indptr).astype(np.int64)
        self._width = max(1, BAND_BYTES // (8 * q))
        self._nbands = -(-q // self._width)
        start = self._pair_starts(A, counts)
        self._P_indices = np.empty(self.light_pairs, np.int32)
        self._P_data = np.empty(self.light_pairs)
        per_column = counts * (counts + 1) // 2
        edges = np.flatnonzero(np.diff(counts)) + 1
        for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(counts)]):
            c = int(counts[lo])
            step = max(1, PAIR_CHUNK // max(1, int(per_column[lo])))
            b, a = np.triu_indices(c)
            for first in range(lo, hi, step):  # chunks: temporaries under PAIR_CHUNK pairs
                at = A.indptr[first : min(hi, first + step), None] + np.arange(c)
                rows, values = A.indices[at], A.data[at]
                dest = start[at][:, b] + (a - b)
                self._P_indices[dest] = rows[:, a] + q * rows[:, b]
                self._P_data[dest] = values[:, a] * values[:, b]

    def _pair_starts(self, A: sp.csc_matrix, counts: np.ndarray) -> np.ndarray:
        """Set P's column pointers; return where each non-zero b's pairs (a = b, b+1, ...) start.

        Non-zero b (the k-th of a column with c) heads c - k pairs, all in
        the band of its row.
        """
        nnz = A.indptr[-1]
        column = np.repeat(np.arange(len(counts)), counts)
        k = np.arange(nnz) - A.indptr[column]
        heads = counts[column] - k
        segment = (A.indices // self._width).astype(np.int64) * len(counts) + column
        sizes = np.bincount(segment, weights=heads, minlength=self._nbands * len(counts))
        self._P_indptr = np.concatenate([[0], np.cumsum(np.rint(sizes).astype(np.int64))])
        self._P_indptr = self._P_indptr.astype(np.int32)
        before = np.cumsum(heads) - heads  # pairs of earlier non-zeros, in A's order
        new = np.ones(nnz, bool)
        new[1:] = segment[1:] != segment[:-1]  # a band's non-zeros are consecutive in a column
        first_before = np.maximum.accumulate(np.where(new, before, 0))
        return self._P_indptr[segment] + (before - first_before)

    def lower_product(self, r1: np.ndarray, lam_rows: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """scale × L21 L21' for r1 (= R1) and λ per row, in the lower triangle of a reused buffer.

        The buffer (q_B x q_B, Fortran-ordered) is the product's own and is
        overwritten by the next call, so the caller may factor it in place.
        Only the lower triangle (with the diagonal) is set: the strict upper
        triangle keeps whatever was written there before (zeros on the first
        call), as LAPACK's lower-triangle routines never read it.  With one
        λ for every row (one term in block B), scale λ² is folded into the
        light pairs' weights and into dsyrk's α, so the buffer is written
        once by dsyrk (β = 0, no zeroing) and once by the pair product, with
        no separate pass to zero, scale or negate it.
        """
        C = self._buffer()
        equal = bool(np.all(lam_rows == lam_rows[0]))
        pair_scale = scale * lam_rows[0] ** 2 if equal else 1.0
        if equal and len(self.heavy):
            C = self._heavy_syrk(C, r1, None, pair_scale, beta=0.0)
        else:
            C.fill(0.0)
        x = np.tile(pair_scale * r1[self.light] ** 2, self._nbands)  # P's columns: (band, level)
        shape = (self.qB * self.qB, len(x))
        csc_matvec_add(shape, self._P_indptr, self._P_indices, self._P_data, x, C.ravel(order="F"))
        if not equal:
            C *= scale * lam_rows[:, None]
            C *= lam_rows[None, :]
            if len(self.heavy):
                C = self._heavy_syrk(C, r1, lam_rows, scale, beta=1.0)
        self._C = C
        return C

    def _heavy_syrk(
        self, C: np.ndarray, r1: np.ndarray, lam_rows: np.ndarray | None, alpha: float, beta: float
    ) -> np.ndarray:
        """C := α H̃ H̃' + β C (lower triangle, in place) for H̃ = diag(λ) H diag(r1[heavy])."""
        np.multiply(self._H, r1[self.heavy], out=self._Hr)
        if lam_rows is not None:
            self._Hr *= lam_rows[:, None]
        return sla.blas.dsyrk(alpha, self._Hr, beta=beta, c=C, lower=1, overwrite_c=1)

    def _buffer(self) -> np.ndarray:
        """The q_B x q_B Fortran-ordered output buffer, allocated on first use."""
        if getattr(self, "_C", None) is None:
            self._C = np.zeros((self.qB, self.qB), order="F")
        return self._C

    def __getstate__(self) -> dict:
        """Pickle without the output buffer (q_B² doubles, rebuilt on first use)."""
        state = self.__dict__.copy()
        state["_C"] = None
        return state


class SparseC22:
    """ΛB'A22ΛB + I - L21 L21' refilled, each evaluation, into the fixed CSC pattern of block B.

    Every position the matrix can occupy (the structural pattern, both
    triangles) is found once; an evaluation writes the values of ΛB'A22ΛB,
    the identity and the pair sums of :class:`ScalarProduct` into one data
    array at precomputed positions: no sparse product, sum or sort.
    """

    def __init__(self, pattern: sp.csc_matrix, rows: np.ndarray, cols: np.ndarray, product):
        P = sp.csc_matrix(pattern, copy=True)
        P.sort_indices()
        q = P.shape[0]
        self.indices, self.indptr, self.shape = P.indices, P.indptr, P.shape
        column = np.repeat(np.arange(q, dtype=np.int64), np.diff(P.indptr))
        self._keys = column * q + P.indices  # increasing: columns, then sorted rows
        diag = np.arange(q)
        self.pos_A = self._find(rows, cols)
        self.pos_diag = self._find(diag, diag)
        i, j = product.row_i, product.row_j
        off = np.flatnonzero(i != j)
        self.pos_prod = np.concatenate([self._find(i, j), self._find(j[off], i[off])])
        self.prod_index = np.concatenate([np.arange(len(i)), off])
        self._C = sp.csc_matrix(
            (np.zeros(len(self._keys)), self.indices, self.indptr), shape=P.shape
        )

    def _find(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Positions in the data array of the entries (rows, cols), all in the pattern."""
        key = cols.astype(np.int64) * self.shape[0] + rows
        pos = np.searchsorted(self._keys, key)
        if not np.array_equal(self._keys[np.minimum(pos, len(self._keys) - 1)], key):
            raise AssertionError("an entry of block B is outside its structural pattern")
        return pos

    def matrix(self, A_values: np.ndarray, sums: np.ndarray) -> sp.csc_matrix:
        """The matrix for ΛB'A22ΛB's values (as ``_C22_values``) and L21 L21''s target sums."""
        data = self._C.data  # refilled in place: the matrix object is reused
        data[:] = 0.0
        data[self.pos_A] = A_values  # positions are distinct
        data[self.pos_diag] += 1.0
        data[self.pos_prod] -= sums[self.prod_index]  # distinct again (each (i, j) once)
        return self._C


class DenseC22:
    """ΛB'A22ΛB + I - L21 L21' for scalar terms, written into a dense workspace in one scatter.

    With every term scalar, entry (i, j) of block B is

        C[i, j] = λ_a λ_b (A22[i, j] - Σ_l A21[i, l] A21[j, l] r_l²) + δ_ij

    for a, b the terms of row i and column j.  Only the lower triangle is
    written (all LAPACK's lower Cholesky reads).  Its non-zero positions (the
    *slots*: pairs sums of :class:`ScalarProduct`, the entries of A22, the
    diagonal) are fixed; an evaluation copies A22's values at the slots,
    subtracts the pair sums with one in-place sparse product, scales each
    run of slots of one pair of terms by its λ_a λ_b, adds the identity and
    scatters the slots (by pair of terms, then in column order) into the
    workspace after zeroing its lower triangle.  No matrix of q_B² doubles
    is allocated, negated or scaled.
    """

    ZERO_COLUMNS = 64
    """Columns zeroed at a time: a band from the diagonal down (lower triangle and a sliver above)."""

    def __init__(self, system: PenalizedSystem, product: ScalarProduct, ld: int):
        q = system.qB
        lower = system._C22_rows >= system._C22_cols
        A_flat = system._C22_flatF[lower]
        diag = np.arange(q, dtype=np.int64) * (q + 1)
        flat = np.unique(np.concatenate([product.targets, A_flat, diag]))  # column order
        # slots by pair of terms (a >= b), then column order: one λ_a λ_b per run of slots
        term = np.repeat(np.arange(len(system.rest)), [r.q for r in system.rest])
        pair = term[flat % q] * len(system.rest) + term[flat // q]
        order = np.lexsort((flat, pair))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))  # slot of each position of ``flat``
        self.slots, self.qB, self._lower = flat[order], q, lower
        self._A_pos = rank[np.searchsorted(flat, A_flat)]
        self._diag_pos = rank[np.searchsorted(flat, diag)]
        self._product = product
        self._pair_matrix(rank[np.searchsorted(flat, product.targets)])
        pair = pair[order]
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
        self._runs = [
            (int(lo), int(hi), *divmod(int(pair[lo]), len(system.rest)))
            for lo, hi in zip(starts, np.r_[starts[1:], len(pair)])
        ]
        self._y = np.empty(len(self.slots))
        self._dest = (self.slots // q) * ld + self.slots % q  # in a workspace of ld rows
        self.set_values(system)

    def _pair_matrix(self, target_slot: np.ndarray) -> None:
        """Where -M (ScalarProduct's pair matrix) goes with one row per slot (empty if no pairs)."""
        M = self._product._M
        lens = np.zeros(len(self.slots), np.int64)
        lens[target_slot] = np.diff(M.indptr)
        starts = np.zeros(len(self.slots), np.int64)
        starts[target_slot] = M.indptr[:-1]
        self._slot_indptr = np.concatenate([[0], np.cumsum(lens)]).astype(M.indptr.dtype)
        self._perm = np.repeat(starts - self._slot_indptr[:-1], lens) + np.arange(
            self._slot_indptr[-1]
        )

    def set_values(self, system: PenalizedSystem, a21: np.ndarray | None = None) -> None:
        """A22's values and the pair products, after a change of weights.

        ``a21``: A21's values in L21's CSR order, when the caller has them.
        The CSR structures are fixed, so after the first call only values move
        (scipy's constructor checks cost more than the product on small blocks).
        """
        raw = [A.ravel() for A in system.A22_diag]
        for A in system.A22_cross.values():
            raw.extend([A.ravel(), A.ravel()])  # both triangles, as _C22_entries lists them
        self._A = np.zeros(len(self.slots))
        self._A[self._A_pos] = np.concatenate(raw)[self._lower]
        a21 = system._A21_csr_values() if a21 is None else a21
        if getattr(self, "_A21", None) is None:
            L21 = system._L21
            self._A21 = sp.csr_matrix((a21.copy(), L21.indices, L21.indptr), L21.shape)
        else:
            self._A21.data[:] = a21
        self._group_levels(system.A11[:, 0, 0], -self._product._M.data[self._perm])

    def _group_levels(self, A11: np.ndarray, pair_data: np.ndarray) -> None:
        """Sum the pair matrix's columns over levels of the first term with equal A11.

        r_l = λ₁ / √(λ₁² A11_l + 1) is the same for every level with the same
        A11_l (unweighted: the same number of observations), so M r² =
        (M G) s for G the levels' indicator of their group and s = r² per
        group: the product then runs over fewer non-zeros (InstEval: 2972
        students, 86 distinct counts, 1.83 million pairs become 1.08
        million).  Kept only when it removes at least a fifth of them.
        ``pair_data``: the pair matrix's values, one row per slot.
        """
        M = self._product._M
        self._rep = None
        self._indptr, self._data, self._ncols = self._slot_indptr, pair_data, M.shape[1]
        if getattr(self, "_pair_indices", None) is None:  # fixed: the pairs' columns
            self._pair_indices = M.indices[self._perm]
        self._indices = self._pair_indices
        if len(np.unique(A11)) > len(A11) // 4:  # weighted (a GLMM's PIRLS): nothing to group
            return
        values, first, group = np.unique(A11, return_index=True, return_inverse=True)
        pairs = sp.csr_matrix(
            (pair_data, self._pair_indices, self._slot_indptr), shape=(len(self.slots), M.shape[1])
        )
        G = sp.csr_matrix(
            (np.ones(len(A11)), (np.arange(len(A11)), group.ravel())),
            shape=(len(A11), len(values)),
        )
        grouped = (pairs @ G).tocsr()
        if grouped.nnz <= 0.8 * pairs.nnz:
            self._rep = first
            self._indptr, self._indices, self._data = grouped.indptr, grouped.indices, grouped.data
            self._ncols = grouped.shape[1]

    def A21_R1sq_A31(self, system: PenalizedSystem) -> np.ndarray:
        """A21 R1² A31' (q_B x (p + 1)): with λ per row, L21 L31' without refilling L21."""
        r = system.F1.R1
        return self._A21 @ (system.A31.T * (r * r)[:, None])

    def assemble(self, out: np.ndarray, r1: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """The matrix for R1 and λ per term, in the leading q_B x q_B block of ``out``.

        ``out`` is Fortran-ordered with ``ld`` rows, zero above the diagonal;
        the block (a view) is returned.
        """
        y = self._y
        np.copyto(y, self._A)
        r = r1 if self._rep is None else r1[self._rep]
        shape = (len(self.slots), self._ncols)
        _sparsetools.csr_matvec(*shape, self._indptr, self._indices, self._data, r * r, y)
        for lo, hi, a, b in self._runs:
            y[lo:hi] *= lam[a] * lam[b]
        y[self._diag_pos] += 1.0
        q = self.qB
        for j in range(0, q, self.ZERO_COLUMNS):
            out[j:q, j : j + self.ZERO_COLUMNS] = 0.0
        out.ravel(order="F")[self._dest] = y
        return out[:q, :q]


def ubd_entries(remat: ReMat, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every element of a uniform block-diagonal block, in (level, a, b) order."""
    k = remat.k
    base = offset + np.arange(remat.nlevels)[:, None, None] * k
    r = base + np.arange(k)[None, :, None] + 0 * np.arange(k)[None, None, :]
    c = base + np.arange(k)[None, None, :] + 0 * np.arange(k)[None, :, None]
    return r.ravel(), c.ravel()


def sandwich(left: np.ndarray, V: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left' V right for a batch V (m, ki, kj); ``right`` may be one matrix or a batch."""
    return np.matmul(np.matmul(left.T, V), right)


# ---------------------------------------------------------------------------
# Block 1: diagonal or uniform block diagonal
# ---------------------------------------------------------------------------
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

    def solve_transpose(self, v: np.ndarray) -> np.ndarray:
        """L11⁻ᵀ v for v of length q1 (or q1 x m)."""
        if self.L11.ndim == 1:
            return v / (self.L11 if v.ndim == 1 else self.L11[:, None])
        n, k, _ = self.L11.shape
        return np.linalg.solve(np.swapaxes(self.L11, 1, 2), v.reshape(n, k, -1)).reshape(v.shape)

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
        L11 = np.sqrt(lam[0, 0] ** 2 * A11[:, 0, 0] + 1.0)
        if not np.isfinite(L11).all():
            raise CholeskyFailed(f"the first block of term {remat.name!r} is not finite")
        return FirstBlock(L11, lam[0, 0] / L11)
    M = sandwich(lam, A11, lam)
    M += np.eye(remat.k)
    if not np.isfinite(M).all():
        raise CholeskyFailed(f"the first block of term {remat.name!r} is not finite")
    try:
        L11 = np.linalg.cholesky(M)
    except np.linalg.LinAlgError as exc:
        raise CholeskyFailed(f"a block of term {remat.name!r} is not positive definite") from exc
    Linv = np.linalg.inv(L11)
    return FirstBlock(L11, lam @ np.swapaxes(Linv, 1, 2))


# ---------------------------------------------------------------------------
# Block 2: dense or CHOLMOD
# ---------------------------------------------------------------------------
class DenseFactor:
    """Dense lower Cholesky factor of block B.

    With ``extra`` > 0 (:class:`DenseC22`'s path) the factor is that of the
    bordered matrix [C22 C32'; C32 C33] with ``extra`` = p + 1 more rows, in
    one LAPACK call: its leading q x q block is L22, its last rows L32 and
    L33, so no separate solve for L32 reads L22 again.
    """

    sparse = False

    def __init__(self, q: int, extra: int = 0):
        self.q, self.extra = q, extra
        self.L = np.zeros((q, q))
        self.bordered: np.ndarray | None = None  # the whole factor, with extra rows
        self._spare: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_spare": None}  # a workspace is scratch: not worth pickling

    def factor(self, C: np.ndarray) -> None:
        self.L = dense_cholesky(C)
        self.bordered = None

    def workspace(self) -> np.ndarray:
        """A (q + extra)² Fortran array, zero above the diagonal, that does not hold the current L.

        Two such arrays alternate: the matrix is assembled in one and factored
        in place (:meth:`factor_workspace`) while L stays valid in the other,
        should the factorisation fail.  Nothing else writes above their
        diagonal, so it stays zero.
        """
        if self._spare is None:
            n = self.q + self.extra
            self._spare = np.zeros((n, n), order="F")
        return self._spare

    def factor_workspace(self, C: np.ndarray) -> None:
        """Factor the :meth:`workspace` ``C`` in place; the old factor's array becomes the next workspace."""
        full = dense_cholesky(C, clean=False)
        old, self.bordered = self.bordered, full
        self.L = full[: self.q, : self.q] if self.extra else full
        fits = old is not None and old.flags.f_contiguous and old.shape == full.shape
        self._spare = old if fits else None

    def logdet(self) -> float:
        return float(np.log(np.diag(self.L)).sum())

    def solve_L(self, M: np.ndarray) -> np.ndarray:
        return self._solve(M, trans=False)

    def solve_Lt(self, M: np.ndarray) -> np.ndarray:
        return self._solve(M, trans=True)

    def _solve(self, M: np.ndarray, trans: bool) -> np.ndarray:
        """L22⁻¹M or L22⁻ᵀM; a bordered factor solves with M padded by zero rows.

        Forward substitution finds the first q rows from L22 alone; backward,
        the extra rows of the solution are zero and L32' adds nothing.  L22
        is a strided view of the bordered array, which LAPACK would copy.
        """
        if not self.extra or self.bordered is None:
            return triangular_solve(self.L, M, trans=trans)
        padded = np.zeros((self.q + self.extra,) + M.shape[1:])
        padded[: self.q] = M
        return triangular_solve(self.bordered, padded, trans=trans)[: self.q]


class CholmodFactor:
    """CHOLMOD supernodal factor of a sparse block B, P C P' = L L'.

    We use L22 = P'L, so that L22 L22' = C; L22 is not triangular, but only
    products with its inverse are ever needed.  The symbolic analysis of the
    structural pattern is done once; each θ only refactors numerically
    (the numeric matrix may have fewer non-zeros than the pattern).
    """

    sparse = True

    def __init__(self, pattern: sp.spmatrix):
        from sksparse import cholmod

        self.q = pattern.shape[0]
        self._pattern = sp.csc_matrix(pattern)
        self._factor = cholmod.analyze(self._pattern, mode="supernodal")

    def __getstate__(self) -> dict:
        # CHOLMOD's factor cannot be pickled: keep the pattern and analyse it again on load
        # (a loaded model refactors before its next use, as every evaluation does)
        return {"q": self.q, "_pattern": self._pattern}

    def __setstate__(self, state: dict) -> None:
        from sksparse import cholmod

        self.__dict__.update(state)
        self._factor = cholmod.analyze(self._pattern, mode="supernodal")

    def flops(self) -> tuple[float, int]:
        """(Σ_j c_j², nnz(L)) of the factor of the pattern, c_j the non-zeros of L's column j.

        Σ c_j² is the flop count of the numeric factorisation (up to a
        constant).  CHOLMOD's symbolic analysis is not exposed by
        scikit-sparse, so the pattern is factored once numerically, with
        values that make it diagonally dominant (hence positive definite).
        That costs no more than one factorisation of the dense block.
        """
        P = sp.csc_matrix(self._pattern, copy=True)
        P.data[:] = 1.0
        P.setdiag(np.diff(P.indptr) + 1.0)
        L = self._factor.cholesky(P).L()
        counts = np.diff(L.indptr).astype(float)
        return float((counts * counts).sum()), int(L.nnz)

    def factor(self, C: sp.spmatrix) -> None:
        from sksparse.cholmod import CholmodNotPositiveDefiniteError

        try:
            self._factor.cholesky_inplace(C if sp.isspmatrix_csc(C) else sp.csc_matrix(C))
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
class FixedEffectsBlock:
    """What the last block row L33 = [L_X 0; l_yX' r] gives, for any storage of L_Z.

    Also the columns of L_Z⁻¹, from whatever ``solve_LZ`` the storage provides.
    """

    L33: np.ndarray
    q: int

    def LZ_inverse_columns(self, start: int, stop: int) -> np.ndarray:
        """Columns start:stop of L_Z⁻¹ (dense, q x (stop - start))."""
        E = np.zeros((self.q, stop - start))
        E[np.arange(start, stop), np.arange(stop - start)] = 1.0
        return self.solve_LZ(E)

    def logdet_X(self) -> float:
        """log|L_X| for the fixed-effects block (half of lme4's ldRX2)."""
        return float(np.log(np.diag(self.L33)[:-1]).sum())

    def pwrss(self) -> float:
        """Penalised weighted residual sum of squares at the conditional optimum."""
        return float(self.L33[-1, -1] ** 2)

    def beta(self) -> np.ndarray:
        """Fixed effects: L_X' β = (y row of L33)."""
        L = self.L33
        return triangular_solve(L[:-1, :-1], L[-1, :-1], trans=True)


class PenalizedSystem(FixedEffectsBlock):
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

    def __init__(
        self,
        remats: list[ReMat],
        Xy: np.ndarray,
        sqrtw: np.ndarray | None = None,
        sparse: bool | None = None,
    ):
        self.remats = remats
        self.Xy = np.ascontiguousarray(Xy, dtype=float)
        self.first = remats[0]
        self.rest = remats[1:]
        self.q1 = self.first.q
        self.offsets = np.cumsum([0] + [r.q for r in self.rest]).tolist()
        self.qB = self.offsets[-1]
        self.q = self.q1 + self.qB
        self._build_structure()
        self.set_weights(sqrtw)
        self.factorB = self._choose_factor(sparse)
        self._scalar_product = self._make_scalar_product()
        self._sparse_C22 = self._make_sparse_C22()
        self._dense_C22 = self._make_dense_C22()
        self.ok = False

    # ---- structure (once) ---------------------------------------------------------
    def _build_structure(self) -> None:
        """Level-pair structures, the fixed CSR pattern of L21 and scatter maps for C22."""
        self.cross1 = [TermCross(r, self.first) for r in self.rest]
        self.crossB = {
            (i, j): TermCross(self.rest[i], self.rest[j])
            for i in range(len(self.rest))
            for j in range(i)
        }
        if not self.qB:
            return
        rows, cols = zip(*(c.entries(off) for c, off in zip(self.cross1, self.offsets)))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        order = sp.csr_matrix(
            (np.arange(1, len(rows) + 1, dtype=float), (rows, cols)), shape=(self.qB, self.q1)
        )
        self._L21_perm = order.data.astype(np.intp) - 1
        self._L21_stale = False
        self._L21 = sp.csr_matrix(
            (np.zeros(len(rows)), order.indices, order.indptr), shape=(self.qB, self.q1)
        )
        # a nearly full, small L21 is cheaper to multiply as a dense matrix (BLAS)
        self._L21_dense = self.qB * self.q1 <= 4_000_000 and len(rows) > 0.25 * self.qB * self.q1
        self._scalar_product = None  # built once the factor of block B is chosen
        self._C22_entries()

    MAX_PAIRS = 50_000_000
    """Largest number of non-zero pairs for which ScalarProduct keeps its index lists."""

    def _C22_entries(self) -> None:
        """(row, col) of each value of ΛB'A22ΛB in the order :meth:`_C22_values` produces them."""
        rows, cols = [], []
        for r, off in zip(self.rest, self.offsets):
            rr, cc = ubd_entries(r, off)
            rows.append(rr)
            cols.append(cc)
        for (i, j), cross in self.crossB.items():
            rr, cc = cross.entries(self.offsets[i], self.offsets[j])
            rows.extend([rr, cc])
            cols.extend([cc, rr])
        self._C22_rows, self._C22_cols = np.concatenate(rows), np.concatenate(cols)
        self._C22_flatF = self._C22_cols.astype(np.int64) * self.qB + self._C22_rows

    # ---- assembly of A -----------------------------------------------------------------
    lean = True
    """Take the lean paths for one scalar term (see :meth:`_one_scalar_term`); False: the general ones (tests compare them)."""

    def _one_scalar_term(self, sqrtw: np.ndarray | None) -> bool:
        """One scalar term and no block B, re-weighted: PIRLS's commonest case, where
        re-weighting and refactoring take a fixed short sequence of array operations.

        The lean paths do the general paths' arithmetic in the same order (the
        same numbers) without their bookkeeping for other shapes, which costs
        as much again as the arithmetic on a small model.
        """
        return self.lean and not self.qB and self.first.k == 1 and sqrtw is not None

    def set_weights(self, sqrtw: np.ndarray | None, y: np.ndarray | None = None) -> None:
        """Set the weights (and optionally a new response) and reassemble A."""
        if y is not None:
            self.Xy[:, -1] = y
        if self._one_scalar_term(sqrtw):
            first = self.first
            zw1 = self._set_one_scalar_weights(sqrtw)
            XyW = self.XyW = self.Xy * sqrtw[:, None]
            ind = self._level_indicators()[0]
            self.A31 = level_sums(first.refs, first.nlevels, zw1, XyW, ind)
            self.A33 = XyW.T @ XyW
            return
        self._set_Z_weights(sqrtw)
        self.XyW = self.Xy if sqrtw is None else self.Xy * sqrtw[:, None]
        first, zw1 = self.first, self.zw[0]
        ind = self._level_indicators()
        self.A31 = level_sums(first.refs, first.nlevels, zw1, self.XyW, ind[0])
        self.A33 = self.XyW.T @ self.XyW
        if self.qB:
            self.A32 = np.hstack(
                [
                    level_sums(r.refs, r.nlevels, z, self.XyW, i)
                    for r, z, i in zip(self.rest, self.zw[1:], ind[1:])
                ]
            )

    def _level_indicators(self) -> list[sp.csr_matrix | None]:
        """Each scalar term's :func:`level_indicator` (None for a vector-valued term), made once."""
        ind = self.__dict__.get("_indicators")  # absent in older pickles
        if ind is None:
            ind = self._indicators = [
                level_indicator(r.refs, r.nlevels) if r.k == 1 else None for r in self.remats
            ]
        return ind

    def _set_one_scalar_weights(self, sqrtw: np.ndarray) -> np.ndarray:
        """:meth:`_set_Z_weights` for one scalar term (:meth:`_one_scalar_term`); returns its Z's rows weighted."""
        first = self.first
        zw1 = first.z * sqrtw[:, None]
        self.sqrtw, self.zw = sqrtw, [zw1]
        z0 = zw1[:, 0]
        A11 = np.bincount(first.refs, z0 * z0, minlength=first.nlevels)
        self.A11 = A11.reshape(first.nlevels, 1, 1)
        return zw1

    def _factor_one_scalar(self) -> FirstBlock:
        """:func:`factor_first_block` for one scalar term (:meth:`_one_scalar_term`), into ``F1``."""
        lam = self.first.lambda_[0, 0]
        L11 = np.sqrt(lam**2 * self.A11[:, 0, 0] + 1.0)
        if not np.isfinite(L11).all():
            raise CholeskyFailed(f"the first block of term {self.first.name!r} is not finite")
        self.F1 = F1 = FirstBlock(L11, lam / L11)
        return F1

    def _set_Z_weights(self, sqrtw: np.ndarray | None) -> None:
        """Weights and the random-effects blocks of A: A11, A21, A22."""
        self.sqrtw = sqrtw
        self.zw = [r.z if sqrtw is None else r.z * sqrtw[:, None] for r in self.remats]
        first, zw1 = self.first, self.zw[0]
        self.A11 = level_crossprod(first.refs, first.nlevels, zw1, zw1)
        if self.qB:
            zB = self.zw[1:]
            self.A21 = [c.values(z, zw1) for c, z in zip(self.cross1, zB)]
            a21 = None
            if self._scalar_product is not None:
                a21 = self._A21_csr_values()
                self._scalar_product.set_A21(a21)
            self.A22_diag = [
                level_crossprod(r.refs, r.nlevels, z, z) for r, z in zip(self.rest, zB)
            ]
            self.A22_cross = {
                key: c.values(zB[key[0]], zB[key[1]]) for key, c in self.crossB.items()
            }
            if getattr(self, "_dense_C22", None) is not None:
                self._dense_C22.set_values(self, a21)

    def factor_Z_at_weights(self, sqrtw: np.ndarray | None) -> None:
        """Re-weight and factor only L_Z = [L11; L21 L22], leaving the X/y blocks stale.

        Enough for the conditional modes given β (:meth:`solve_u_given_beta`)
        and log|L_Z|: the inner loop of PIRLS when β is held fixed.
        """
        self.ok = False
        if self._one_scalar_term(sqrtw):
            self._set_one_scalar_weights(sqrtw)
            self._factor_one_scalar()
            return
        self._set_Z_weights(sqrtw)
        self._factor_Z()

    def set_response(self, y: np.ndarray) -> None:
        """Replace the response column and update the blocks of A that involve it."""
        self.Xy[:, -1] = y
        yw = y if self.sqrtw is None else y * self.sqrtw
        self.XyW[:, -1] = yw
        col = yw[:, None]
        self.A31[-1] = level_sums(self.first.refs, self.first.nlevels, self.zw[0], col)[0]
        self.A33[-1, :] = self.A33[:, -1] = self.XyW.T @ yw
        if self.qB:
            parts = [
                level_sums(r.refs, r.nlevels, z, col)[0] for r, z in zip(self.rest, self.zw[1:])
            ]
            self.A32[-1] = np.concatenate(parts)

    def _scalar_product_possible(self) -> bool:
        """Every term scalar and few enough pairs of non-zeros for :class:`ScalarProduct`."""
        return (
            bool(self.qB)
            and all(r.is_scalar for r in self.remats)
            and ScalarProduct.count_pairs(self.L21) <= self.MAX_PAIRS
        )

    def _make_scalar_product(self) -> ScalarProduct | None:
        """Pair lists for L21 L21' when every term is scalar (and L21 is not nearly full)."""
        if self._split_product_possible():
            return SplitProduct(self.L21, self._A21_csr_values(), self.MAX_PAIRS)
        if not self._scalar_product_possible():
            return None
        if self._L21_dense and not self.factorB.sparse:
            return None  # a dense L21 L21' by BLAS is faster
        product = ScalarProduct(self.L21)
        product.set_A21(self._A21_csr_values())
        return product

    def _split_product_possible(self) -> bool:
        """Every term scalar, block B dense and too many pairs for :class:`ScalarProduct`'s lists."""
        return (
            bool(self.qB)
            and not self.factorB.sparse
            and not self._L21_dense
            and self.qB**2 < 2**31  # positions of the dense block fit the pair matrix's int32
            and all(r.is_scalar for r in self.remats)
            and ScalarProduct.count_pairs(self.L21) > self.MAX_PAIRS
        )

    def _make_sparse_C22(self) -> SparseC22 | None:
        if self._scalar_product is None or not self.factorB.sparse:
            return None
        pattern = self._C22_sparse(structural=True)
        return SparseC22(pattern, self._C22_rows, self._C22_cols, self._scalar_product)

    def _make_dense_C22(self) -> DenseC22 | None:
        """The one-scatter assembly of a dense block B when :class:`ScalarProduct` holds the pairs."""
        if type(self._scalar_product) is not ScalarProduct or self.factorB.sparse:
            return None
        p1 = self.Xy.shape[1]
        self.factorB = DenseFactor(self.qB, extra=p1)  # factored with the border rows of X, y
        return DenseC22(self, self._scalar_product, ld=self.qB + p1)

    def _A21_csr_values(self) -> np.ndarray:
        return np.concatenate([a.ravel() for a in self.A21])[self._L21_perm]

    def _choose_factor(self, sparse: bool | None) -> DenseFactor | CholmodFactor | None:
        """The factor of block B: as forced by ``sparse``, else the cheaper one.

        With every term scalar (the fast sparse assembly of :class:`SparseC22`),
        q_B >= SPARSE_MIN and a pattern filling at most SPARSE_TRIAL_DENSITY
        of the square (a fifth above DENSE_MAX), the costs per evaluation are
        compared in dense flops: q_B³/3 + 4 q_B² for LAPACK (the Cholesky and
        the assembly of the dense matrix) against, for CHOLMOD, the flops
        of its factor (counted once on the pattern, see
        :meth:`CholmodFactor.flops`) times SPARSE_FLOP_COST, plus
        SPARSE_ENTRY_COST per non-zero of the factor and 10 per non-zero of
        the pattern: above DENSE_MAX, a sparse pattern can still fill in
        to a dense factor (CHOLMOD with the reference BLAS would then be
        many times slower).  Without pair lists, a block B above DENSE_MAX
        rows whose pattern fills at most a fifth of the square is sparse.
        """
        if not self.qB:
            return None
        if sparse is False or (sparse is None and not cholmod_available()):
            return DenseFactor(self.qB)
        q = self.qB
        if sparse is None and self._fills_in(self._pattern_nnz_lower_bound()):
            return DenseFactor(q)  # decided without forming the pattern (a sparse product)
        pattern = self._C22_sparse(structural=True)
        if sparse:
            return CholmodFactor(pattern)
        if q < SPARSE_MIN or pattern.nnz > 0.5 * q * q:
            return DenseFactor(q)
        if q <= DENSE_MAX and pattern.nnz > SPARSE_TRIAL_DENSITY * q * q:
            return DenseFactor(q)  # fill-in only adds to a pattern this dense
        if q > DENSE_MAX and pattern.nnz > 0.2 * q * q:
            return DenseFactor(q)
        if not self._scalar_product_possible():
            return CholmodFactor(pattern) if q > DENSE_MAX else DenseFactor(q)
        candidate = CholmodFactor(pattern)
        self.factor_costs = {
            "dense": q**3 / 3.0 + 4.0 * q * q,
            "sparse": self._sparse_cost(candidate, pattern),
        }
        return (
            candidate
            if self.factor_costs["sparse"] < self.factor_costs["dense"]
            else DenseFactor(q)
        )

    def _pattern_nnz_lower_bound(self) -> int:
        """c², for c the most non-zeros in a column of L21: L21 L21' has a full c x c block."""
        c = np.bincount(self.L21.indices, minlength=self.q1).max(initial=0)
        return int(c) ** 2

    def _fills_in(self, nnz: int) -> bool:
        """Whether a pattern of block B with ``nnz`` non-zeros is factored densely by :meth:`_choose_factor`.

        True only where every rule of :meth:`_choose_factor` would choose the
        dense factor for any pattern at least this full.
        """
        q = self.qB
        limit = 0.5 if q < SPARSE_MIN else (SPARSE_TRIAL_DENSITY if q <= DENSE_MAX else 0.2)
        return q < SPARSE_MIN or nnz > limit * q * q

    @staticmethod
    def _sparse_cost(factor: CholmodFactor, pattern: sp.spmatrix) -> float:
        flops, nnz_L = factor.flops()
        return SPARSE_FLOP_COST * flops + SPARSE_ENTRY_COST * nnz_L + 10.0 * pattern.nnz

    # ---- the factorisation -------------------------------------------------------------
    def update_L(self) -> None:
        """Recompute L for the current λ of every term (held by the ReMats)."""
        self.ok = False
        if self._one_scalar_term(self.sqrtw):
            L31 = self.L31 = self.A31 * self._factor_one_scalar().R1
            self.L33 = dense_cholesky(np.asfortranarray(self.A33 - L31 @ L31.T))
            self.ok = True
            return
        if getattr(self, "_dense_C22", None) is not None:
            self._update_L_bordered()
            self.ok = True
            return
        self._factor_Z()
        self.L31 = self.F1.right_multiply_dense(self.A31)
        C33 = self.A33 - self.L31 @ self.L31.T
        if self.qB:
            C32 = self._A32_LambdaB() - (self.L21 @ self.L31.T).T
            self.L32 = self.factorB.solve_L(np.ascontiguousarray(C32.T)).T
            C33 -= self.L32 @ self.L32.T
        self.L33 = dense_cholesky(np.asfortranarray(C33))
        self.ok = True

    def _update_L_bordered(self) -> None:
        """update_L with :class:`DenseC22`: [C22 C32'; C32 C33] factored in one LAPACK call.

        C32 = A32ΛB - L31 L21' and C33 = A33 - L31 L31' are written below
        C22 in the factor's workspace; the factor's last p + 1 rows are then
        [L32 L33].
        """
        q = self.qB
        self.F1 = factor_first_block(self.first, self.A11)
        self._L21_stale = True  # the evaluation needs only products with A21
        self.L31 = self.F1.right_multiply_dense(self.A31)
        W = self.factorB.workspace()
        self._C22_dense()  # into W's leading block
        lam_rows = self._lambda_rows()[:, None]
        W[q:, :q] = self._A32_LambdaB() - (lam_rows * self._dense_C22.A21_R1sq_A31(self)).T
        W[q:, q:] = np.tril(self.A33 - self.L31 @ self.L31.T)
        self.factorB.factor_workspace(W)
        full = self.factorB.bordered
        self.L32, self.L33 = full[q:, :q].copy(), full[q:, q:].copy()  # kept when W is reused

    def _factor_Z(self) -> None:
        """L11, L21 and L22 for the current λ and weights."""
        self.F1 = factor_first_block(self.first, self.A11)
        if self.qB:
            self._update_L21()
            if getattr(self, "_dense_C22", None) is not None:  # absent in older pickles
                W = self.factorB.workspace()
                self._C22_dense()
                W[self.qB :, : self.qB] = 0.0  # border [0 I]: the factor's L22 is C22's alone
                W[self.qB :, self.qB :] = np.eye(W.shape[0] - self.qB)
                self.factorB.factor_workspace(W)
            else:
                self.factorB.factor(
                    self._C22_sparse() if self.factorB.sparse else self._C22_dense()
                )

    def _update_L21(self) -> None:
        """L21 = ΛB'A21 R1, refilled into the fixed CSR pattern."""
        R1 = self.F1.R1
        vals = []
        for r, cross, A in zip(self.rest, self.cross1, self.A21):
            if r.is_scalar and self.first.is_scalar:
                vals.append(A.ravel() * (r.lambda_[0, 0] * R1[cross.cols]))
            else:
                right = R1[cross.cols] if R1.ndim == 3 else R1[cross.cols][:, None, None]
                vals.append(sandwich(r.lambda_, A, right).ravel())
        self._L21.data[:] = np.concatenate(vals)[self._L21_perm]
        self._L21_stale = False

    @property
    def L21(self) -> sp.csr_matrix:
        """L21 = ΛB'A21 R1 (CSR); an evaluation on :class:`DenseC22`'s path refills it only when read."""
        if self._L21_stale:
            self._update_L21()
        return self._L21

    def _C22_values(self, structural: bool = False) -> np.ndarray:
        """Values of ΛB'A22ΛB (or ones for the structural pattern), entries as in ``_C22_entries``."""
        vals = []
        for r, A in zip(self.rest, self.A22_diag):
            vals.append(
                np.ones(A.size) if structural else sandwich(r.lambda_, A, r.lambda_).ravel()
            )
        for (i, j), A in self.A22_cross.items():
            V = (
                np.ones(A.shape)
                if structural
                else sandwich(self.rest[i].lambda_, A, self.rest[j].lambda_)
            )
            vals.extend([V.ravel(), np.swapaxes(V, 1, 2).ravel()])
        return np.concatenate(vals)

    def _C22_dense(self) -> np.ndarray:
        """ΛB'A22ΛB + I - L21 L21' as a dense Fortran-ordered matrix (with DenseC22: lower triangle only, in the factor's workspace)."""
        if getattr(self, "_dense_C22", None) is not None:
            lam = np.array([r.lambda_[0, 0] for r in self.rest])
            return self._dense_C22.assemble(self.factorB.workspace(), self.F1.R1, lam)
        if self._L21_dense:
            L21 = self.L21.toarray()
            C = np.asfortranarray(L21 @ L21.T)
            C *= -1.0
        elif isinstance(self._scalar_product, SplitProduct):  # negated in place, no copy
            C = self._scalar_product.lower_product(self.F1.R1, self._lambda_rows(), scale=-1.0)
        elif self._scalar_product is not None:
            C = self._scalar_product.lower_product(self.F1.R1, self._lambda_rows())
            C *= -1.0
        else:
            C = -np.asfortranarray((self.L21 @ self.L21.T).toarray())
        flat = C.ravel(order="F")  # a view: C is Fortran-contiguous
        flat[self._C22_flatF] += self._C22_values()  # positions are distinct: no lost updates
        flat[:: self.qB + 1] += 1.0
        return C

    def _lambda_rows(self) -> np.ndarray:
        """λ of the (scalar) term owning each row of block B."""
        return np.repeat([r.lambda_[0, 0] for r in self.rest], [r.q for r in self.rest])

    def _C22_sparse(self, structural: bool = False) -> sp.csc_matrix:
        """ΛB'A22ΛB + I - L21 L21' as a sparse matrix (all ones: its structural pattern)."""
        fast = getattr(self, "_sparse_C22", None)
        if fast is not None and not structural:
            sums = self._scalar_product.target_sums(self.F1.R1, self._lambda_rows())
            return fast.matrix(self._C22_values(), sums)
        L21 = self.L21.copy()
        if structural:
            L21.data[:] = 1.0
        prod = L21 @ L21.T
        A = sp.csc_matrix(
            (self._C22_values(structural), (self._C22_rows, self._C22_cols)),
            shape=(self.qB, self.qB),
        )
        eye = sp.identity(self.qB, format="csc")
        return (A + eye + prod).tocsc() if structural else (A + eye - prod).tocsc()

    def _A32_LambdaB(self) -> np.ndarray:
        """A32 ΛB: each term's columns of A32 times its λ."""
        out = np.empty_like(self.A32)
        m = self.A32.shape[0]
        for r, off in zip(self.rest, self.offsets):
            block = self.A32[:, off : off + r.q].reshape(m, r.nlevels, r.k)
            out[:, off : off + r.q] = (block @ r.lambda_).reshape(m, r.q)
        return out

    @property
    def dense_dim(self) -> int:
        """Rows of the largest dense matrix factored in an evaluation."""
        p1 = self.Xy.shape[1]
        return p1 if self.factorB is None or self.factorB.sparse else max(self.qB, p1)

    # ---- pieces of the objective ----------------------------------------------------------
    def logdet_Z(self) -> float:
        """log|L_Z| where L_Z L_Z' = Λ'Z'WZΛ + I (half of lme4's ldL2)."""
        out = self.F1.logdet()
        if self.qB:
            out += self.factorB.logdet()
        return out

    # ---- solutions --------------------------------------------------------------------
    def u(self, beta: np.ndarray) -> np.ndarray:
        """Spherical random effects u for fixed effects β: L_Z' u = c_Z - L_XZ' β."""
        p = len(beta)
        v = self.L31[p] - self.L31[:p].T @ beta
        if self.qB:
            v = np.concatenate([v, self.L32[p] - self.L32[:p].T @ beta])
        return self.solve_LZt(v)

    def solve_u_given_beta(self, r: np.ndarray) -> np.ndarray:
        """u minimising ‖W^½(r - ZΛu)‖² + ‖u‖², i.e. (Λ'Z'WZΛ + I) u = Λ'Z'W r.

        Uses only L_Z (see :meth:`factor_Z_at_weights`).
        """
        rw = r if self.sqrtw is None else r * self.sqrtw
        if self._one_scalar_term(self.sqrtw):
            first, L11 = self.first, self.F1.L11
            ind = self._level_indicators()[0]
            s = level_sums(first.refs, first.nlevels, self.zw[0], rw[:, None], ind)
            return s[0] * first.lambda_[0, 0] / L11 / L11
        parts = []
        for remat, zw, ind in zip(self.remats, self.zw, self._level_indicators()):
            s = level_sums(remat.refs, remat.nlevels, zw, rw[:, None], ind)[0]
            parts.append((s.reshape(remat.nlevels, remat.k) @ remat.lambda_).ravel())
        return self.solve_LZt(self.solve_LZ(np.concatenate(parts)))

    def first_block_inverse_crossprod(self, max_entries: int = 2**24) -> np.ndarray:
        """Per level l of block 1, the k x k block of (L_Z L_Z')⁻¹ on that level's rows.

        Column block l of L_Z⁻¹ is G_l = L11_l⁻¹ on its own rows and
        -L22⁻¹ L21_l G_l below, so the block is G_l'(I + H_l'H_l)G_l with
        H_l = L22⁻¹ L21_l: linear in the number of levels (H is formed a
        chunk of columns at a time, below ``max_entries`` doubles).
        """
        n, k = self.first.nlevels, self.first.k
        G = np.linalg.inv(self.F1.L11.reshape(n, k, k))
        inner = np.broadcast_to(np.eye(k), (n, k, k)).copy()
        if self.qB:
            L21 = self.L21.tocsc()
            step = max(1, max_entries // self.qB // k)
            for lo in range(0, n, step):
                hi = min(n, lo + step)
                H = self.factorB.solve_L(L21[:, lo * k : hi * k].toarray()).reshape(
                    self.qB, hi - lo, k
                )
                inner[lo:hi] += np.einsum("ila,ilb->lab", H, H)
        return np.einsum("lca,lcd,ldb->lab", G, inner, G)

    def solve_LZ(self, v: np.ndarray) -> np.ndarray:
        """L_Z⁻¹ v for the random-effects part of L."""
        w1 = self.F1.solve(v[: self.q1])
        if not self.qB:
            return w1
        w2 = self.factorB.solve_L(v[self.q1 :] - csr_times(self.L21, w1))
        return np.concatenate([w1, w2])

    def solve_LZt(self, v: np.ndarray) -> np.ndarray:
        """L_Z⁻ᵀ v."""
        if not self.qB:
            return self.F1.solve_transpose(v)
        u2 = self.factorB.solve_Lt(v[self.q1 :])
        u1 = self.F1.solve_transpose(v[: self.q1] - csr_times(self.L21, u2, transpose=True))
        return np.concatenate([u1, u2])
