"""The spectral decomposition of a kinship matrix, computed once and reused.

Every likelihood in this package needs ``V = h² K + (1 - h²) I`` only through
``K = U S U'``: in the rotated basis ``U'`` the covariance is diagonal with
entries ``d_i = h² s_i + 1 - h²``, so a decomposition serves any ``h²``, any
phenotype and any SNP.

Two ways to get it:

* :func:`eigh_kinship` — the full eigendecomposition of an ``n × n`` ``K``,
  ``O(n³)`` once; ``U`` is ``n × n``.
* :func:`svd_genotypes` — when ``K = Z Z'/m`` is built from ``m < n`` SNPs, the
  thin SVD ``Z/√m = U Σ W'`` gives ``U`` (``n × k``, ``k ≤ m``) and ``S = Σ²`` in
  ``O(n m²)``.  The ``n - k`` directions orthogonal to ``U`` have eigenvalue 0;
  they are not stored but handled through ``I - U U'`` (see
  :mod:`mixedmodels.genetics.likelihood`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg

from mixedmodels.errors import DataError
from mixedmodels.genetics.kinship import check_kinship, kinship, scaled_kinship
from mixedmodels.genio.genotypes import align_samples, as_genotype_source, iter_standardised
from mixedmodels.genio.samples import positions

__all__ = ["Decomposition", "decompose", "eigh_kinship", "singular_at_one", "svd_genotypes"]


@dataclass(frozen=True)
class Decomposition:
    """``K = U diag(S) U'`` with orthonormal columns ``U``.

    Attributes
    ----------
    U : ndarray, shape (n, k)
        Eigenvectors; ``k = n`` for a full eigendecomposition, ``k < n`` for a
        low-rank one whose complement has eigenvalue 0.
    S : ndarray, shape (k,)
        Eigenvalues, non-negative.
    ids : ndarray of str, shape (n,), or None
        The individuals' sample IDs, row by row of ``U``, when the kinship had them.
    """

    U: np.ndarray
    S: np.ndarray
    ids: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of individuals."""
        return self.U.shape[0]

    @property
    def k(self) -> int:
        """Number of stored eigenvectors."""
        return self.U.shape[1]

    @property
    def full_rank(self) -> bool:
        """True when ``U`` spans all of ``R^n`` (no complement to account for)."""
        return self.k == self.n

    @property
    def singular(self) -> bool:
        """True when ``K`` has a zero eigenvalue, so ``V`` is singular at ``h² = 1``."""
        return singular_at_one(self.S, self.n)

    def rotate(self, A: np.ndarray) -> np.ndarray:
        """``U' A``: coordinates of the columns of ``A`` (n × c) in the eigenbasis, (k × c)."""
        return self.U.T @ A

    def kinship(self) -> np.ndarray:
        """Rebuild ``K = U diag(S) U'`` (n × n); for checks, not for computation."""
        return (self.U * self.S) @ self.U.T

    def reorder(self, rows: np.ndarray) -> Decomposition:
        """The decomposition of ``K[rows][:, rows]`` for a permutation ``rows``: ``U``'s rows permuted."""
        ids = None if self.ids is None else self.ids[rows]
        return Decomposition(self.U[rows], self.S, ids)


def singular_at_one(S: np.ndarray, n: int) -> bool:
    """Whether ``V = h² K + (1 - h²) I`` is singular at ``h² = 1``.

    True when one of the eigenvalues ``S`` (k,) is zero up to rounding, or when
    ``k < n`` so that the complement of the stored eigenvectors has eigenvalue 0.
    """
    tiny = 1e-10 * max(float(S.max(initial=0.0)), 1.0)
    return S.size < n or bool((S <= tiny).any())


def eigh_kinship(K: object, levels: Sequence[object] | None = None) -> Decomposition:
    """Eigendecompose a kinship matrix after checking it (see :func:`check_kinship`).

    Rounding can leave eigenvalues of a semi-definite ``K`` slightly below zero;
    they are set to 0 so that every ``d_i`` is positive for ``h² < 1``.
    """
    values = scaled_kinship(check_kinship(K, levels))
    S, U = scipy.linalg.eigh(values, driver="evd", overwrite_a=True, check_finite=False)
    ids = None
    if isinstance(K, pd.DataFrame):  # check_kinship put its rows in the order of levels
        ids = (
            K.index.astype(str).to_numpy() if levels is None else np.array([str(v) for v in levels])
        )
    return Decomposition(U=U, S=np.clip(S, 0.0, None), ids=ids)


def svd_genotypes(G: object, *, standardise_snps: bool = True) -> Decomposition:
    """Low-rank decomposition of ``K = Z Z'/m`` from the thin SVD of ``Z/√m``.

    Parameters
    ----------
    G : array (n, m), DataFrame or genotype source
        Allele counts.  With ``standardise_snps=True`` (default) ``Z`` is ``G``
        standardised exactly as :func:`kinship` does (mean imputation, centring,
        unit population variance, monomorphic SNPs dropped), so the result
        decomposes ``kinship(G)``.  With ``False``, ``G`` is used as ``Z`` and must
        be complete.
    standardise_snps : bool

    Returns
    -------
    Decomposition
        ``U`` is ``n × min(n, m)``; with ``m < n`` the decomposition is low rank.
        All of ``Z`` is held in memory: ``8 n m`` bytes.
    """
    Z = _factor(G, standardise_snps)
    U, sv, _ = scipy.linalg.svd(Z / np.sqrt(Z.shape[1]), full_matrices=False, check_finite=False)
    return Decomposition(U=U, S=sv**2)


def _factor(G: object, standardise_snps: bool) -> np.ndarray:
    """The ``n × m`` factor ``Z`` of ``K = Z Z'/m``, from whole genotypes or chunks."""
    source = as_genotype_source(G)
    if not standardise_snps:
        Z = source.read(0, source.n_snps)
        if np.isnan(Z).any():
            raise DataError("G has missing values; pass standardise_snps=True to mean-impute them")
        return Z
    return np.hstack(list(iter_standardised(source, 2000)))


def decompose(
    K: object = None,
    G: object = None,
    *,
    n: int,
    levels: Sequence[object] | None = None,
    assume_same_order: bool = False,
) -> Decomposition:
    """The decomposition the models use, from whichever of ``K`` or ``G`` was given.

    Parameters
    ----------
    K : array (n, n), DataFrame or Decomposition, optional
        A kinship matrix (checked and eigendecomposed; a DataFrame is aligned to
        ``levels``) or a decomposition computed earlier (its rows permuted to
        ``levels`` when it has IDs).
    G : array (n, m), DataFrame or genotype source, optional
        Allele counts; ``K = kinship(G)``, decomposed through the thin SVD when
        ``m < n`` and by eigendecomposition otherwise.
    n : int
        Number of individuals the model has.
    levels : pandas Index, optional
        Their sample IDs, when the phenotype is labelled.
    assume_same_order : bool
        Pair an unlabelled ``K``/``G`` with a labelled phenotype by position.

    Raises
    ------
    DataError
        A labelled phenotype with an unlabelled ``K`` (unless
        ``assume_same_order``), IDs missing from ``K``, or ``K`` identically zero.
    """
    if (K is None) == (G is None):
        raise DataError(
            "give exactly one of K (a kinship matrix or a Decomposition) and G (genotypes)"
        )
    if isinstance(K, Decomposition):
        decomposition = _aligned_decomposition(K, levels, assume_same_order)
    elif K is not None:
        if not isinstance(K, pd.DataFrame):
            positions(levels, None, np.shape(K)[0] if np.ndim(K) == 2 else 0, "the kinship K",
                      assume_same_order=assume_same_order)  # fmt: skip
        decomposition = eigh_kinship(K, levels if isinstance(K, pd.DataFrame) else None)
    else:
        source = align_samples(
            as_genotype_source(G), n, levels, assume_same_order=assume_same_order
        )
        low_rank = source.n_snps < source.n_samples
        decomposition = svd_genotypes(source) if low_rank else eigh_kinship(kinship(source))
    if decomposition.n != n:
        raise DataError(
            f"the kinship describes {decomposition.n} individuals but the phenotype has {n}"
        )
    check_identified(decomposition)
    return decomposition


def _aligned_decomposition(
    K: Decomposition, levels: pd.Index | None, assume_same_order: bool
) -> Decomposition:
    """A given decomposition with its rows in the phenotype's order."""
    have = None if K.ids is None else pd.Index(K.ids)
    rows = positions(levels, have, K.n, "the decomposition", assume_same_order=assume_same_order)
    if rows is None:
        return K
    if rows.size != K.n:
        raise DataError(
            f"the decomposition describes {K.n} individuals, the phenotype {rows.size} of them: "
            "decompose the kinship of the phenotype's individuals instead"
        )
    return K.reorder(rows)


def check_identified(decomposition: Decomposition) -> None:
    """``h²`` is identified only if ``K`` is not zero: ``V = h²K + (1-h²)I`` must depend on ``h²``."""
    if float(decomposition.S.max(initial=0.0)) <= 0.0:
        raise DataError(
            "the kinship matrix is zero (no genetic similarity between or within individuals), "
            "so h² is not identified: check how K was built"
        )
