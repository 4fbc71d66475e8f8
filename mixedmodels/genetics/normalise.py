"""Phenotype and kinship transformations used before a scan or heritability fit.

* :func:`quantile_normalise` — rank-based inverse normal transform,
  ``Φ⁻¹((r_i - c)/(n - 2c + 1))`` with ``r_i`` the rank of ``y_i`` among the
  ``n`` observed values (ties get their mean rank); ``c = 0`` (default) is
  limix's ``quantile_gaussianize``, ``c = 3/8`` Blom's.
* :func:`boxcox` — ``(y^λ - 1)/λ`` (``log y`` at ``λ = 0``) with ``λ`` by maximum
  likelihood, exactly ``scipy.stats.boxcox``.
* :func:`gower_rescale` — ``K · (n - 1) / (tr K - 1'K1/n)``: the kinship scaled so
  that the sample variance of a draw ``g ~ N(0, K)`` has expectation 1 (Gower's
  centring; limix's ``normalise_covariance``), so ``σg²`` and ``σe²`` are on one scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import boxcox as scipy_boxcox
from scipy.stats import norm, rankdata

from mixedmodels.errors import DataError

__all__ = ["boxcox", "gower_rescale", "quantile_normalise"]


def _values(y: object, what: str) -> tuple[np.ndarray, pd.Index | None, str | None]:
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if values.ndim != 1:
        raise DataError(f"{what} must be one phenotype (1-D), not of shape {values.shape}")
    index = y.index if isinstance(y, pd.Series) else None
    return values, index, getattr(y, "name", None)


def _like(values: np.ndarray, index: pd.Index | None, name: str | None):
    return values if index is None else pd.Series(values, index=index, name=name)


def quantile_normalise(y: object, c: float = 0.0):
    """Rank-based inverse normal transform of one phenotype; ``NaN`` stays ``NaN``.

    A Series in gives a Series out (same index).
    """
    values, index, name = _values(y, "the phenotype")
    if not 0.0 <= c < 0.5:
        raise DataError(f"the offset c must lie in [0, 0.5), not {c}")
    ok = np.isfinite(values)
    if ok.sum() < 2:
        raise DataError("quantile normalisation needs at least two observed values")
    out = np.full(values.shape, np.nan)
    rank = rankdata(values[ok])
    out[ok] = norm.ppf((rank - c) / (ok.sum() - 2 * c + 1))
    return _like(out, index, name)


def boxcox(y: object, lmbda: float | None = None):
    """Box–Cox transform of a positive phenotype; returns ``(transformed, λ)``.

    ``λ`` is the maximum-likelihood value (``scipy.stats.boxcox``) unless given.
    """
    values, index, name = _values(y, "the phenotype")
    if not np.isfinite(values).all():
        raise DataError("the Box–Cox transform needs a complete phenotype (no NaN)")
    if (values <= 0).any():
        raise DataError(
            f"the Box–Cox transform needs positive values; the phenotype's minimum is "
            f"{values.min():g} (shift it first)"
        )
    if lmbda is None:
        transformed, lam = scipy_boxcox(values)
    else:
        transformed, lam = scipy_boxcox(values, lmbda=lmbda), lmbda
    return _like(transformed, index, name), float(lam)


def gower_rescale(K: object):
    """``K (n - 1)/(tr K - 1'K1/n)``; a DataFrame keeps its labels."""
    values = np.asarray(K, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise DataError(f"the kinship must be square, not of shape {values.shape}")
    n = values.shape[0]
    denominator = np.trace(values) - values.sum() / n
    if not denominator > 0:
        raise DataError(
            "the kinship has no variance after centring (tr K - 1'K1/n ≤ 0): cannot rescale it"
        )
    scaled = values * (n - 1) / denominator
    if isinstance(K, pd.DataFrame):
        return pd.DataFrame(scaled, index=K.index, columns=K.columns)
    return scaled
