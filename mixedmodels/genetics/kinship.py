"""Kinship (genetic relationship) matrices: building one from genotypes, checking a given one.

The standardised genetic relationship matrix of ``n`` individuals typed at ``m``
SNPs is

.. math:: K = Z_s Z_s^\\top / m, \\qquad
          Z_s[i, j] = (g_{ij} - \\bar g_j) / \\mathrm{sd}_j,

with missing calls mean-imputed per SNP and ``sd_j`` the population (ddof=0)
standard deviation.  Its diagonal averages 1, so ``h²`` is on the usual scale.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mixedmodels.covariance import check_covariance
from mixedmodels.genio.genotypes import as_genotype_source, iter_standardised
from mixedmodels.genio.samples import labels_of

__all__ = ["check_kinship", "kinship", "scaled_kinship"]

#: A kinship whose mean diagonal lies outside this range is rescaled before decomposition.
SCALE_RANGE = (1e-6, 1e6)


def check_kinship(
    K: object, levels: Sequence[object] | None = None, *, tol: float = 1e-8
) -> np.ndarray:
    """Check a user-given kinship matrix (see :func:`mixedmodels.covariance.check_covariance`)."""
    return check_covariance(K, levels, tol=tol)


def scaled_kinship(K: np.ndarray) -> np.ndarray:
    """``K``, or ``K / c`` with ``c`` its mean diagonal when ``c`` is extreme (with a warning).

    ``V = h²K + (1-h²)I`` and ``V = h²(cK) + (1-h²)I`` span the same models, so
    the maximised likelihood does not depend on ``c``; but a ``K`` of entries
    ~1e300 overflows the eigendecomposition, and with ``c`` far from 1 the
    estimate of ``h²`` crowds against 0 or 1 where the search cannot resolve it.
    Rescaled, ``h²`` refers to ``K / c`` (mean diagonal 1, the usual scale).
    """
    c = float(np.mean(np.diag(K))) if K.size else 1.0
    if c <= 0 or SCALE_RANGE[0] <= c <= SCALE_RANGE[1]:
        return K
    warnings.warn(
        f"the kinship's mean diagonal is {c:.3g}; it is divided by that, so h² refers to "
        "K scaled to mean diagonal 1 (the likelihood is the same)",
        stacklevel=3,
    )
    return K / c


def kinship(G: object, *, chunk_size: int = 2000) -> np.ndarray | pd.DataFrame:
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
    K : DataFrame or ndarray, shape (n, n)
        Symmetric, positive semi-definite; ``trace(K) = n`` when no SNP is dropped
        and no call is missing.  Monomorphic SNPs are dropped with a warning and
        ``m`` counts the SNPs kept.  A DataFrame indexed and columned by sample ID
        when the genotypes carry IDs (a PLINK file, a DataFrame with an index),
        so that the models pair its rows with phenotypes by ID; else an array.
    """
    source = as_genotype_source(G)
    K = np.zeros((source.n_samples, source.n_samples))
    n_kept = 0
    for Z in iter_standardised(source, chunk_size):
        K += Z @ Z.T  # numpy calls BLAS syrk for a product with its own transpose
        n_kept += Z.shape[1]
    ids = labels_of(source)
    return K / n_kept if ids is None else pd.DataFrame(K / n_kept, index=ids, columns=ids)
