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
import pandas as pd

from mixedmodels.errors import DataError
from mixedmodels.genetics._text import few
from mixedmodels.genetics.genotypes import as_genotype_source, iter_standardised

__all__ = ["check_kinship", "kinship"]


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


def check_kinship(
    K: object, levels: Sequence[object] | None = None, *, tol: float = 1e-8
) -> np.ndarray:
    """Check a user-given kinship matrix and return it as a float array.

    Parameters
    ----------
    K : array (n, n) or DataFrame
        A DataFrame must carry the same labels on its index and its columns.
    levels : sequence, optional
        Labels of the individuals in the order the model uses (a grouping
        factor's levels, a phenotype's ids).  With a DataFrame ``K`` the result is
        reordered to ``levels`` (extra rows of ``K`` are ignored); with an array
        only its size is checked against ``len(levels)``.
    tol : float
        Relative tolerance for symmetry, ``max|K - K'| <= tol * max|K|``, and for
        positive semi-definiteness, ``λ_min >= -tol * max|K|``.

    Returns
    -------
    ndarray, shape (len(levels), len(levels)) or (n, n)
        ``(K + K') / 2``, in the order of ``levels`` when given.

    Raises
    ------
    DataError
        Not square, not finite, not symmetric, not positive semi-definite (the
        message gives the smallest eigenvalue), or labels missing from ``K``.
    """
    values = _align(K, levels) if isinstance(K, pd.DataFrame) else _as_square(K, levels)
    if not np.isfinite(values).all():
        raise DataError("the kinship matrix has missing or infinite entries")
    scale = max(float(np.abs(values).max(initial=0.0)), np.finfo(float).tiny)
    asym = float(np.abs(values - values.T).max(initial=0.0))
    if asym > tol * scale:
        raise DataError(
            f"the kinship matrix is not symmetric: max |K - K'| = {asym:.3g} "
            f"(tolerance {tol * scale:.3g})"
        )
    values = (values + values.T) / 2
    _check_psd(values, tol * scale)
    return values


def _as_square(K: object, levels: Sequence[object] | None) -> np.ndarray:
    try:
        values = np.array(K, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the kinship matrix must be numeric: {exc}") from None
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise DataError(f"the kinship matrix must be square; its shape is {values.shape}")
    if levels is not None and len(levels) != values.shape[0]:
        raise DataError(
            f"the kinship matrix is {values.shape[0]} × {values.shape[0]} but there are "
            f"{len(levels)} individuals; give K as a DataFrame labelled by id to align it"
        )
    return values


def _align(K: pd.DataFrame, levels: Sequence[object] | None) -> np.ndarray:
    """Rows and columns of a labelled ``K`` in the order of ``levels`` (as strings)."""
    rows, cols = K.index.astype(str), K.columns.astype(str)
    if K.shape[0] != K.shape[1] or set(rows) != set(cols):
        raise DataError(
            f"the kinship DataFrame must have the same labels on its index and columns "
            f"(shape {K.shape})"
        )
    if rows.has_duplicates:
        raise DataError(f"duplicated labels in the kinship matrix: {few(rows[rows.duplicated()])}")
    wanted = rows if levels is None else pd.Index([str(v) for v in levels])
    missing = wanted.difference(rows)
    if len(missing):
        raise DataError(
            f"{len(missing)} individual(s) missing from the kinship matrix: {few(missing)}"
        )
    labelled = pd.DataFrame(K.to_numpy(), index=rows, columns=cols)
    return _as_square(labelled.loc[wanted, wanted].to_numpy(), None)


def _check_psd(K: np.ndarray, tol: float) -> None:
    """Cholesky of ``K + tol I`` succeeds exactly when ``λ_min(K) > -tol`` (up to rounding)."""
    try:
        np.linalg.cholesky(K + tol * np.eye(K.shape[0]))
    except np.linalg.LinAlgError:
        # Only the failing case pays for the eigenvalues the message reports.
        smallest = float(np.linalg.eigvalsh(K)[0])
        if smallest < -tol:
            raise DataError(
                f"the kinship matrix is not positive semi-definite: smallest eigenvalue "
                f"{smallest:.3g} (tolerance {-tol:.3g})"
            ) from None
