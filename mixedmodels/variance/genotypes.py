"""Genotypes from PLINK bed files, as the variance models use them.

Allele counts are of the bim file's *first* allele (PLINK's A1), which is
what bed-reader counts with ``count_A1=True``.  Standardised genotypes are
mean-imputed, centred and divided by their population (ddof = 0) standard
deviation, as in the genomic relationship matrix K = Zs Zs' / m.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["Panel", "open_panel", "read_dosages", "standardise"]

_FAM = ["fid", "iid", "father", "mother", "sex", "phenotype"]
_BIM = ["chrom", "snp", "cm", "pos", "a1", "a2"]


@dataclass
class Panel:
    """A PLINK fileset: the bed reader and the fam and bim tables.

    Attributes
    ----------
    bed : bed_reader.open_bed
    fam : DataFrame
        Columns fid, iid, father, mother, sex, phenotype (as text).
    bim : DataFrame
        Columns chrom, snp (as text), cm, pos, a1 (the counted allele), a2.
    """

    bed: Any
    fam: pd.DataFrame
    bim: pd.DataFrame


def _table(path: Path, names: list[str]) -> pd.DataFrame:
    """A fam or bim file: whitespace-separated (tabs or spaces, as PLINK accepts)."""
    dtypes = {n: str for n in names if n not in ("cm", "pos")}
    return pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype=dtypes)


def open_panel(path: str | Path) -> Panel:
    """Open a PLINK bed file with its .bim and .fam; ``path`` names the .bed file or the prefix."""
    try:
        from bed_reader import open_bed
    except ImportError as exc:  # an optional dependency
        raise DataError(
            "reading PLINK files needs bed-reader: pip install 'mixedmodels[genetics]'"
        ) from exc
    path = Path(path)
    bed = path if path.suffix == ".bed" else path.with_name(path.name + ".bed")
    for needed in (bed, bed.with_suffix(".bim"), bed.with_suffix(".fam")):
        if not needed.exists():
            raise DataError(f"PLINK file {str(needed)!r} not found")
    fam, bim = _table(bed.with_suffix(".fam"), _FAM), _table(bed.with_suffix(".bim"), _BIM)
    # Sizes given, so that bed-reader reads only genotypes (its bim parser expects tabs).
    reader = open_bed(bed, iid_count=len(fam), sid_count=len(bim), count_A1=True)
    return Panel(reader, fam, bim)


def read_dosages(
    panel: Panel, columns: slice | np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Counts of the first bim allele, (n, k) float64 with NaN where missing."""
    rows = slice(None) if rows is None else rows
    return panel.bed.read(index=np.s_[rows, columns], dtype="float64", order="F")


def standardise(G: np.ndarray) -> np.ndarray:
    """Mean-impute per column, centre and divide by the population sd; constant columns dropped."""
    G = np.array(G, dtype=float)
    means = np.nanmean(G, axis=0)
    missing = np.isnan(G)
    G[missing] = np.take(means, np.nonzero(missing)[1])
    G -= means
    sd = G.std(axis=0)
    keep = sd > 0
    return G[:, keep] / sd[keep]
