"""The table a scan returns: a DataFrame with the usual follow-ups as methods."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedmodels.errors import DataError
from mixedmodels.genetics.multitest import adjust_pvalues, genomic_inflation
from mixedmodels.genetics.plots import _one_phenotype, manhattan_plot, qq_plot

__all__ = ["ScanResult"]


class ScanResult(pd.DataFrame):
    """One row per SNP and phenotype (see :func:`mixedmodels.genetics.scan`).

    A DataFrame in every way; the methods below read the columns ``phenotype``,
    ``chrom``, ``pos`` and a p-value column (``p_lrt`` by default).
    """

    @property
    def _constructor(self):
        return ScanResult

    @classmethod
    def of(cls, table: pd.DataFrame) -> ScanResult:
        """``table`` as a ScanResult, its ``attrs`` kept."""
        result = cls(table)
        result.attrs = dict(table.attrs)
        return result

    def adjust(self, method: str = "fdr_bh", column: str = "p_lrt") -> pd.Series:
        """Add ``p_<method>``: ``column`` corrected for multiple testing within each phenotype.

        ``"fdr_bh"`` gives Benjamini–Hochberg q-values, ``"bonferroni"`` ``min(1, m p)``
        (see :func:`mixedmodels.genetics.multitest.adjust_pvalues`).  Returns the new column.
        """
        if column not in self.columns:
            raise DataError(f"the scan result has no column {column!r} to adjust")
        out = np.full(len(self), np.nan)
        for _, rows in self.groupby("phenotype", sort=False).indices.items():
            out[rows] = adjust_pvalues(self[column].to_numpy()[rows], method)
        self[f"p_{method}"] = out
        return self[f"p_{method}"]

    def inflation(self, column: str = "p_lrt") -> pd.Series:
        """Genomic inflation ``λ_GC`` of each phenotype."""
        return self.groupby("phenotype", sort=False)[column].apply(genomic_inflation)

    def manhattan(self, phenotype: str | None = None, **kwargs):
        """:func:`~mixedmodels.genetics.plots.manhattan_plot` of this result."""
        return manhattan_plot(pd.DataFrame(self), phenotype=phenotype, **kwargs)

    def qq(self, phenotype: str | None = None, column: str = "p_lrt", **kwargs):
        """:func:`~mixedmodels.genetics.plots.qq_plot` of one phenotype's p-values."""
        return qq_plot(_one_phenotype(pd.DataFrame(self), phenotype)[column], **kwargs)
