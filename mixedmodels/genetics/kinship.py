"""Kinship (genetic relationship) matrices: building one from genotypes, checking a given one.

The standardised genetic relationship matrix of ``n`` individuals typed at ``m``
SNPs is

.. math:: K = Z_s Z_s^\\top / m, \\qquad
          Z_s[i, j] = (g_{ij} - \\bar g_j) / \\mathrm{sd}_j,

with missing calls mean-imputed per SNP and ``sd_j`` the population (ddof=0)
standard deviation.  Its diagonal averages 1, so ``h²`` is on the usual scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixedmodels.covariance import check_covariance
from mixedmodels.genio.genotypes import as_genotype_source, iter_standardised

__all__ = ["check_kinship", "kinship"]


def check_kinship(K: object, levels: Sequence[object] | None = None, *, tol: float = 1e-8) -> np.ndarray:
    """Check a user-given kinship matrix (see :func:`mixedmodels.covariance.check_covariance`)."""
    return check_covariance(K, levels, tol=tol)



def kinship(G: object, *, chunk_size: int = 2000) -> np.ndarray:
    """Standardised genetic relationship matrix ``K = Zs Zs' / m``.

    Parameters
    ----------
    G : array (n, m), DataFrame, or a genotype source such as :class:`PlinkData`
        Allele counts, individuals by SNPs, ``NaN`` for missing calls.  A PLINK
        file is read ``chunk_size`` SNPs at a time, never whole.
    chunk_size : int
        SNPs standardised and accumulated at once (memory ``8 n chunk_size`` bytes).

    Returns
    -------
    K : ndarray, shape (n, n)
        Symmetric, positive semi-definite; ``trace(K) = n`` when no SNP is dropped
        and no call is missing.  Monomorphic SNPs are dropped with a warning and
        ``m`` counts the SNPs kept.
    """
    source = as_genotype_source(G)
    K = np.zeros((source.n_samples, source.n_samples))
    n_kept = 0
    for Z in iter_standardised(source, chunk_size):
        K += Z @ Z.T  # numpy calls BLAS syrk for a product with its own transpose
        n_kept += Z.shape[1]
    return K / n_kept
