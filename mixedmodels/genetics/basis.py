"""Bringing a block of SNPs to a basis where ``V⁻¹`` is diagonal: the scan's dominant cost.

Every per-SNP statistic needs ``C'V⁻¹C``, ``C'V⁻¹X`` and ``C'V⁻¹y``.  Two
ways to get them from one matrix product per block:

* :class:`Rotation` by ``U'`` (``K = U S U'``): ``V⁻¹ = U diag(w) U'`` in any
  ``h²``, so one rotated block serves every phenotype, and a low-rank ``U``
  (``n × k``) costs ``2 n k`` flops per column.  This is FaST-LMM's way.
* :class:`Whitening` by ``L'`` with ``V⁻¹ = L L'`` and ``L`` lower triangular,
  for one fixed ``h²``: ``C'V⁻¹D = (L'C)'(L'D)`` with unit weights.  A
  triangular product costs ``n²`` flops per column, half of a full rotation;
  building ``L`` costs about ``n³``, so it pays when a scan has more than about
  ``2n`` SNPs, one phenotype and a full-rank ``K``.

Both present the same interface to
:func:`~mixedmodels.genetics.association.weighted_cross_products`: ``apply``
and the weights (``w - w0``, ``w0``) of a phenotype in that basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dtrmm

from mixedmodels.genetics.likelihood import spectral_weights

__all__ = ["Rotation", "Whitening", "whitening_pays"]


@dataclass(frozen=True)
class Rotation:
    """The eigenbasis of ``K``: ``U`` (n × k) with eigenvalues ``S`` (k,)."""

    U: np.ndarray
    S: np.ndarray

    @property
    def low_rank(self) -> bool:
        """Whether the complement of ``U`` (where ``V = (1 - h²) I``) must be added."""
        return self.U.shape[1] < self.U.shape[0]

    def apply(self, A: np.ndarray) -> np.ndarray:
        """``U'A`` (k × c) for ``A`` (n × c)."""
        return self.U.T @ A

    def weights(self, h2: float) -> tuple[np.ndarray, float]:
        """``(w - w0, w0)`` at ``h²``, see :func:`spectral_weights`."""
        w, w0, _ = spectral_weights(self.S, self.U.shape[0], np.array([h2]))
        return w[0] - w0[0], float(w0[0])


@dataclass(frozen=True)
class Whitening:
    """``L`` (n × n, lower triangular) with ``L L' = V⁻¹`` at one ``h²``."""

    L: np.ndarray

    low_rank = False

    @classmethod
    def at(cls, rotation: Rotation, h2: float) -> Whitening:
        """Factor ``V⁻¹ = (U diag(√w))(U diag(√w))'`` at ``h²`` (full-rank ``U`` only)."""
        w, _ = rotation.weights(h2)
        half = rotation.U * np.sqrt(w)
        precision = half @ half.T
        del half  # n × n arrays: keep at most three alive
        # V⁻¹ is symmetric, so its transpose is the same matrix in Fortran order,
        # which LAPACK factors in place.
        L = scipy.linalg.cholesky(precision.T, lower=True, overwrite_a=True, check_finite=False)
        return cls(L)

    def apply(self, A: np.ndarray) -> np.ndarray:
        """``L'A`` (n × c) by a triangular matrix product (BLAS ``trmm``)."""
        return dtrmm(1.0, self.L, np.asfortranarray(A), lower=1, trans_a=1)

    def weights(self, h2: float) -> tuple[np.ndarray, float]:
        """Unit weights: whitened columns are already ``V⁻¹``-orthonormalised."""
        return np.ones(self.L.shape[0]), 0.0


def whitening_pays(rotation: Rotation, n_snps: int, n_phenotypes: int, reestimate: bool) -> bool:
    """Whether a whitened scan is cheaper: one ``h²``, full rank, more than ``2n`` SNPs."""
    n = rotation.U.shape[0]
    return n_phenotypes == 1 and not reestimate and not rotation.low_rank and n_snps > 2 * n
