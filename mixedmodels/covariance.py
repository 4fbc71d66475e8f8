"""Known covariance matrices for a random-effects term (kinship and similar).

``LinearMixedModel(..., covariance={"iid": K})`` gives the term ``(1|iid)``
random effects b ~ N(0, σ²θ²K) instead of N(0, σ²θ²I).  With a factor
K = F F' the term's model matrix becomes Z F and its spherical random
effects u ~ N(0, I) map to b = θ F u.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["check_covariance", "covariance_factor"]

PSD_TOL = 1e-8
"""Eigenvalues down to -PSD_TOL x (largest eigenvalue) are accepted as zero."""


def check_covariance(K, levels: list[str], name: str) -> np.ndarray:
    """K as a float array in the order of ``levels``, after checking it.

    ``K`` is a DataFrame indexed (rows and columns) by level labels, or an
    array already in level order.  Raises DataError if it is not square,
    not symmetric, not finite, not positive semidefinite (within tolerance)
    or does not cover every level of the grouping factor.
    """
    if isinstance(K, pd.DataFrame):
        K = _align(K, levels, name)
    arr = np.asarray(K, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise DataError(f"covariance for {name!r} must be a square matrix, got shape {arr.shape}")
    if arr.shape[0] != len(levels):
        raise DataError(
            f"covariance for {name!r} is {arr.shape[0]} x {arr.shape[0]} but {name!r} has {len(levels)} levels; "
            "pass a DataFrame indexed by level labels to select and order them"
        )
    if not np.isfinite(arr).all():
        raise DataError(f"covariance for {name!r} has non-finite entries")
    scale = max(np.abs(arr).max(), 1e-300)
    if np.abs(arr - arr.T).max() > 1e-8 * scale:
        raise DataError(f"covariance for {name!r} is not symmetric (max |K - K'| = {np.abs(arr - arr.T).max():.3g})")
    return (arr + arr.T) / 2


def _align(K: pd.DataFrame, levels: list[str], name: str) -> pd.DataFrame:
    index = [str(i) for i in K.index]
    columns = [str(c) for c in K.columns]
    if index != columns:
        raise DataError(f"covariance DataFrame for {name!r} must have the same labels on rows and columns")
    missing = [lev for lev in levels if lev not in set(index)]
    if missing:
        few = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"covariance for {name!r} has no row for {len(missing)} level(s) of the data: {few}")
    K = K.copy()
    K.index, K.columns = index, columns
    return K.loc[levels, levels]


def covariance_factor(K: np.ndarray, name: str) -> np.ndarray:
    """F with K = F F' (from the eigendecomposition; K must be positive semidefinite)."""
    vals, vecs = np.linalg.eigh(K)
    top = max(vals.max(), 0.0)
    if vals.min() < -PSD_TOL * max(top, 1.0):
        raise DataError(
            f"covariance for {name!r} is not positive semidefinite (smallest eigenvalue {vals.min():.3g})"
        )
    return vecs * np.sqrt(np.clip(vals, 0.0, None))
