"""Genotypes from PLINK bed files, as the variance models use them.

A thin layer over :mod:`mixedmodels.genetics`: the PLINK file set is read by
:func:`~mixedmodels.genetics.read_plink` (counts of the bim file's first
allele, through bed-reader) and standardised by
:func:`~mixedmodels.genetics.standardise` (mean-imputed, centred, divided by
the population sd; monomorphic SNPs dropped), as in the genomic relationship
matrix K = Zs Zs' / m.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..genetics.genotypes import standardise as _standardise
from ..genetics.plink import PlinkData, read_plink

__all__ = ["open_panel", "read_dosages", "standardise"]


def open_panel(path: str | Path) -> PlinkData:
    """Open a PLINK file set; ``path`` names the .bed file or the prefix."""
    return read_plink(path)


def read_dosages(panel: PlinkData, columns: slice | np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Counts of the first bim allele for SNPs ``columns`` (a slice or indices), (n, k) float64, NaN where missing."""
    selected = panel if rows is None else replace(panel, sample_index=panel.sample_index[np.asarray(rows)])
    if isinstance(columns, slice):
        start, stop, step = columns.indices(panel.n_snps)
        return selected.read(start, stop)[:, ::step]
    columns = np.asarray(columns, dtype=int)
    lo = int(columns.min())
    return selected.read(lo, int(columns.max()) + 1)[:, columns - lo]


def standardise(G: np.ndarray) -> np.ndarray:
    """Standardised genotypes with monomorphic SNPs dropped (see the module docstring)."""
    return _standardise(np.asarray(G, dtype=float))[0]
