"""P-values for many tests: genomic inflation, multiple-testing corrections, permutations,
and the boundary mixture of a variance-component test.

* :func:`genomic_inflation` — ``λ_GC = median(χ²₁ quantiles of p) / median(χ²₁)``.
* :func:`adjust_pvalues` — Benjamini–Hochberg, Bonferroni, Holm, ... through
  ``statsmodels.stats.multitest.multipletests`` (the ``genetics`` extra).
* :func:`empirical_pvalues` — ``(1 + #{T* ≥ T}) / (1 + B)`` from ``B`` statistics
  computed under permutation, the estimator that is never 0 (Phipson & Smyth 2010).
* :func:`chi2_mixture_sf` — the null distribution of the likelihood-ratio
  statistic for one variance component on the boundary, ``½χ²₀ + ½χ²₁`` (Self &
  Liang 1987): ``P(T ≥ t) = ½ P(χ²₁ ≥ t)`` for ``t > 0`` and 1 at ``t = 0``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from mixedmodels.errors import DataError, MixedModelsError

__all__ = ["adjust_pvalues", "chi2_mixture_sf", "empirical_pvalues", "genomic_inflation"]

#: Names of statsmodels' ``multipletests`` methods accepted by :func:`adjust_pvalues`.
METHODS = ("fdr_bh", "fdr_by", "bonferroni", "holm", "sidak", "holm-sidak", "hommel")


def genomic_inflation(p_values: object) -> float:
    """Genomic inflation ``λ = median(χ²₁ quantiles of p) / median(χ²₁)`` (≈ 1 under no inflation).

    ``NaN`` p-values (untested SNPs) are ignored.
    """
    p = np.asarray(p_values, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        raise DataError("no finite p-value to compute the genomic inflation from")
    return float(np.median(chi2.isf(p, 1)) / chi2.ppf(0.5, 1))


def adjust_pvalues(p_values: object, method: str = "fdr_bh") -> np.ndarray:
    """Corrected p-values (BH q-values for ``"fdr_bh"``), ``NaN`` kept where ``p`` is ``NaN``.

    Parameters
    ----------
    p_values : array (m,)
    method : str
        One of :data:`METHODS` (statsmodels' names).
    """
    if method not in METHODS:
        raise DataError(f"unknown multiple-testing method {method!r}; use one of {METHODS}")
    try:
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        raise MixedModelsError(
            "multiple-testing corrections need statsmodels: pip install mixedmodels[genetics]"
        ) from None
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        if ((p[finite] < 0) | (p[finite] > 1)).any():
            raise DataError("p-values must lie in [0, 1]")
        out[finite] = multipletests(p[finite], method=method)[1]
    return out


def empirical_pvalues(statistics: object, null_statistics: object) -> np.ndarray:
    """``(1 + #{T*_b ≥ T}) / (1 + B)`` for each observed statistic ``T``.

    Parameters
    ----------
    statistics : array (m,)
        Observed statistics (larger is more extreme), ``NaN`` for untested.
    null_statistics : array
        ``B`` statistics computed under the null (e.g. on permuted data),
        pooled; ``NaN`` ignored.
    """
    null = np.asarray(null_statistics, dtype=np.float64).ravel()
    null = np.sort(null[np.isfinite(null)])
    if null.size == 0:
        raise DataError("no finite null statistic to compare with: empirical p-values undefined")
    t = np.asarray(statistics, dtype=np.float64)
    at_least = null.size - np.searchsorted(null, t, side="left")
    p = (1.0 + at_least) / (1.0 + null.size)
    return np.where(np.isfinite(t), p, np.nan)


def chi2_mixture_sf(statistic: object, weight_zero: float = 0.5) -> np.ndarray:
    """``P(T ≥ t)`` under ``w χ²₀ + (1 - w) χ²₁`` (default 50:50), the boundary null of one
    variance component (the LRT of ``σg² = 0``)."""
    if not 0.0 <= weight_zero < 1.0:
        raise DataError(f"the weight of χ²₀ must lie in [0, 1), not {weight_zero}")
    t = np.asarray(statistic, dtype=np.float64)
    if (t < -1e-8).any():
        raise DataError("a likelihood-ratio statistic cannot be negative")
    t = np.clip(t, 0.0, None)
    return np.where(t > 0, (1.0 - weight_zero) * chi2.sf(t, 1), 1.0)
