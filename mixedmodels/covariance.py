"""Known covariance matrices for a random-effects term (kinship and similar).

``LinearMixedModel(..., covariance={"iid": K})`` gives the term ``(1|iid)``
random effects b ~ N(0, σ²θ²K) instead of N(0, σ²θ²I).  With a factor
K = F F' the term's model matrix becomes Z F and its spherical random
effects u ~ N(0, I) map to b = θ F u.

:func:`check_covariance` is also the kinship check of :mod:`mixedmodels.genetics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._text import few
from .errors import DataError

__all__ = ["check_covariance", "covariance_factor"]


def check_covariance(
    K: object,
    levels: Sequence[object] | None = None,
    *,
    tol: float = 1e-8,
    what: str = "the kinship matrix",
) -> np.ndarray:
    """Check a user-given kinship (covariance) matrix and return it as a float array.

    Parameters
    ----------
    K : array (n, n) or DataFrame
        A DataFrame must carry the same labels on its index and its columns.
    levels : sequence, optional
        Labels of the individuals in the order the model uses (a grouping
        factor's levels, a phenotype's ids).  With a DataFrame ``K`` the result is
        reordered to ``levels`` (extra rows of ``K`` are ignored); with an array
        only its size is checked against ``len(levels)``.
    what : str
        How messages name the matrix (``"the covariance for 'iid'"``).
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
    values = _align(K, levels, what) if isinstance(K, pd.DataFrame) else _as_square(K, levels, what)
    if not np.isfinite(values).all():
        raise DataError(f"{what} has missing or infinite entries")
    scale = max(float(np.abs(values).max(initial=0.0)), np.finfo(float).tiny)
    asym = float(np.abs(values - values.T).max(initial=0.0))
    if asym > tol * scale:
        raise DataError(
            f"{what} is not symmetric: max |K - K'| = {asym:.3g} (tolerance {tol * scale:.3g})"
        )
    values = (values + values.T) / 2
    _check_psd(values, tol * scale, what)
    return values


def _as_square(K: object, levels: Sequence[object] | None, what: str) -> np.ndarray:
    try:
        values = np.array(K, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise DataError(f"{what} must be square; its shape is {values.shape}")
    if levels is not None and len(levels) != values.shape[0]:
        raise DataError(
            f"{what} is {values.shape[0]} × {values.shape[0]} but there are "
            f"{len(levels)} individuals; give K as a DataFrame labelled by id to align it"
        )
    return values


def _align(K: pd.DataFrame, levels: Sequence[object] | None, what: str) -> np.ndarray:
    """Rows and columns of a labelled ``K`` in the order of ``levels`` (as strings)."""
    rows, cols = K.index.astype(str), K.columns.astype(str)
    if K.shape[0] != K.shape[1] or set(rows) != set(cols):
        raise DataError(
            f"{what} (a DataFrame) must have the same labels on its index and columns "
            f"(shape {K.shape})"
        )
    if rows.has_duplicates:
        raise DataError(f"duplicated labels in {what}: {few(rows[rows.duplicated()])}")
    wanted = rows if levels is None else pd.Index([str(v) for v in levels])
    missing = wanted.difference(rows)
    if len(missing):
        raise DataError(f"{len(missing)} individual(s) missing from {what}: {few(missing)}")
    labelled = pd.DataFrame(K.to_numpy(), index=rows, columns=cols)
    return _as_square(labelled.loc[wanted, wanted].to_numpy(), None, what)


def _check_psd(K: np.ndarray, tol: float, what: str) -> None:
    """Cholesky of ``K + tol I`` succeeds exactly when ``λ_min(K) > -tol`` (up to rounding)."""
    try:
        np.linalg.cholesky(K + tol * np.eye(K.shape[0]))
    except np.linalg.LinAlgError:
        # Only the failing case pays for the eigenvalues the message reports.
        smallest = float(np.linalg.eigvalsh(K)[0])
        if smallest < -tol:
            raise DataError(
                f"{what} is not positive semi-definite: smallest eigenvalue "
                f"{smallest:.3g} (tolerance {-tol:.3g})"
            ) from None


def covariance_factor(K: np.ndarray, name: str = "") -> np.ndarray:
    """F with K = F F' from the eigendecomposition (K already checked to be PSD)."""
    vals, vecs = np.linalg.eigh(K)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))
