"""PLINK binary genotypes (``.bed/.bim/.fam``), read lazily SNP block by SNP block.

The ``.bed`` file is decoded by ``bed-reader``; the two small text files are
read here with any whitespace as separator (bed-reader expects a tab-separated
``.bim``, which PLINK itself does not require).  Genotypes are counts of the
``.bim`` file's first allele (column 5, PLINK's A1), ``NaN`` where missing;
this is bed-reader's ``count_A1=True``.

bed-reader is the optional ``genetics`` extra; without it the text files
still open, and reading genotypes says what to install.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError, MixedModelsError
from mixedmodels.genio.genotypes import select_snps

__all__ = [
    "MISSING_COUNT",
    "BedBlocks",
    "PlinkData",
    "SampleMatch",
    "match_samples",
    "read_dosages",
    "read_plink",
]

MISSING_COUNT = -127
"""bed-reader's int8 value of a missing call."""

_FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "pheno"]
_BIM_COLUMNS = ["chrom", "snp", "cm", "pos", "allele_1", "allele_2"]


def _bed_reader():
    """bed-reader's ``open_bed``, or an error naming the extra that provides it."""
    try:
        from bed_reader import open_bed
    except ImportError:
        raise MixedModelsError(
            "reading PLINK .bed genotypes needs the bed-reader package: "
            "pip install mixedmodels[genetics]"
        ) from None
    return open_bed


@dataclass(frozen=True, eq=False)
class BedBlocks:
    """Where to read SNP blocks: the ``.bed`` path, its dimensions, the samples kept.

    ``samples`` is ``None`` for all individuals in file order, else row indices.
    """

    bed: Path
    iid_count: int
    sid_count: int
    samples: np.ndarray | None

    def read(self, start: int, stop: int, counts: bool = False) -> np.ndarray:
        """Genotypes of SNPs ``start:stop``.

        Returns
        -------
        ndarray, shape (n, stop - start), Fortran order
            Counts of each SNP's ``allele_1`` (the ``.bim`` file's first allele):
            float64 with ``NaN`` for a missing call, or with ``counts`` int8 with
            ``MISSING_COUNT`` (a quarter of the memory, decoded faster).
        """
        open_bed = _bed_reader()
        rows = np.s_[:] if self.samples is None else self.samples
        dtype = "int8" if counts else "float64"
        try:
            with open_bed(
                self.bed, iid_count=self.iid_count, sid_count=self.sid_count, count_A1=True
            ) as bed:
                return bed.read(index=(rows, np.s_[start:stop]), dtype=dtype, order="F")
        except (ValueError, OSError) as exc:
            raise DataError(
                f"cannot read {self.bed} as {self.iid_count} individuals × {self.sid_count} "
                f"SNPs (from its .fam and .bim files): {exc}"
            ) from None


@dataclass(frozen=True, eq=False)
class PlinkData:
    """A PLINK file set, possibly restricted to some individuals, genotypes not yet read.

    Attributes
    ----------
    bed : Path
    fam : DataFrame
        All individuals of the ``.fam`` file (columns fid, iid, father, mother, sex, pheno).
    bim : DataFrame
        All SNPs of the ``.bim`` file (columns chrom, snp, cm, pos, allele_1, allele_2).
    sample_index : ndarray of int, shape (n,)
        Rows of ``fam`` used, in the order used.

    Cheap to copy; :attr:`blocks` is the smaller handle that Dask workers get
    to read their own SNP blocks.
    """

    bed: Path
    fam: pd.DataFrame = field(repr=False)
    bim: pd.DataFrame = field(repr=False)
    sample_index: np.ndarray = field(repr=False)

    @property
    def n_samples(self) -> int:
        return int(self.sample_index.size)

    @property
    def n_snps(self) -> int:
        return len(self.bim)

    @property
    def iid(self) -> np.ndarray:
        """Individual ids of the samples used, shape (n,)."""
        return self.fam["iid"].to_numpy()[self.sample_index]

    @property
    def fid(self) -> np.ndarray:
        """Family ids of the samples used, shape (n,)."""
        return self.fam["fid"].to_numpy()[self.sample_index]

    @property
    def snp(self) -> np.ndarray:
        return self.bim["snp"].to_numpy()

    @property
    def chrom(self) -> np.ndarray:
        return self.bim["chrom"].to_numpy()

    @property
    def pos(self) -> np.ndarray:
        return self.bim["pos"].to_numpy()

    def snp_table(self) -> pd.DataFrame:
        """SNP annotations: snp, chrom, pos, allele_1 (the allele counted), allele_2."""
        return self.bim[["snp", "chrom", "pos", "allele_1", "allele_2"]].reset_index(drop=True)

    @property
    def blocks(self) -> BedBlocks:
        """A light reader of this file's SNP blocks (what Dask workers are sent)."""
        everyone = self.n_samples == len(self.fam) and (np.diff(self.sample_index) == 1).all()
        samples = None if everyone else self.sample_index
        return BedBlocks(self.bed, len(self.fam), self.n_snps, samples)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Genotypes of SNPs ``start:stop`` for the samples used (see :meth:`BedBlocks.read`)."""
        return self.blocks.read(start, self.n_snps if stop is None else stop)

    def read_counts(self, start: int, stop: int) -> np.ndarray:
        """As :meth:`read`, as int8 counts with ``MISSING_COUNT`` for a missing call."""
        return self.blocks.read(start, stop, counts=True)

    def __getitem__(self, key: object):
        """The SNPs picked by ``key`` (mask, indices or slice), read lazily: a :class:`SnpSubset`."""
        return select_snps(self, key)

    def select_samples(self, iids: object) -> PlinkData:
        """The same files restricted to the individuals ``iids``, in that order."""
        position = pd.Index(self.fam["iid"]).get_indexer(pd.Index(iids, dtype=str))
        if (position < 0).any():
            absent = np.asarray(iids, dtype=str)[position < 0]
            raise DataError(
                f"{len(absent)} id(s) not in {self.bed.with_suffix('.fam')}: {few(absent)}"
            )
        return replace(self, sample_index=position)


def read_plink(prefix: str | Path) -> PlinkData:
    """Open ``prefix.bed/.bim/.fam``; only the two text files are read now.

    Parameters
    ----------
    prefix : str or Path
        The path without extension (``data/geno`` for ``data/geno.bed``); a path
        ending in ``.bed`` is accepted too.

    Returns
    -------
    PlinkData
        With all individuals, in the ``.fam`` file's order.
    """
    prefix = Path(prefix)
    if prefix.suffix in {".bed", ".bim", ".fam"}:
        prefix = prefix.with_suffix("")
    paths = {ext: Path(f"{prefix}.{ext}") for ext in ("bed", "bim", "fam")}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise DataError(f"PLINK file(s) not found: {', '.join(absent)}")
    fam = _read_table(paths["fam"], _FAM_COLUMNS)
    bim = _read_table(paths["bim"], _BIM_COLUMNS)
    bim["pos"] = _integers(bim["pos"], paths["bim"], "position")
    duplicated = fam["iid"][fam["iid"].duplicated()]
    if len(duplicated):
        raise DataError(f"{paths['fam']} repeats individual id(s) {few(duplicated)}")
    return PlinkData(paths["bed"], fam, bim, np.arange(len(fam)))


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A whitespace-separated text file with exactly ``len(columns)`` fields a line, as strings."""
    kind = (
        f"a PLINK .{path.suffix[1:]} file has {len(columns)} fields a line ({', '.join(columns)})"
    )
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; {kind}") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(
            f"{path} is not a readable text table ({type(exc).__name__}); {kind}"
        ) from None
    if table.shape[1] != len(columns):
        raise DataError(f"{path} has {table.shape[1]} columns; {kind}")
    table.columns = columns
    return table


def _integers(column: pd.Series, path: Path, what: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise DataError(f"{path}: {what} {column[values.isna()].iloc[0]!r} is not a number")
    return values.astype(np.int64)


@dataclass(frozen=True)
class SampleMatch:
    """Genotypes and phenotypes restricted to the individuals they share, in one order.

    Attributes
    ----------
    genotypes : PlinkData or another source with ``iid`` and ``select_samples`` (BGEN)
        Restricted to the shared individuals, in the file's order.
    phenotypes : DataFrame
        The matching rows, indexed by iid, in the same order.
    n_genotyped_only : int
        Genotyped individuals with no row in the phenotype table.
    n_phenotyped_only : int
        Rows of the phenotype table whose id is not in the ``.fam`` file.
    n_incomplete : int
        Shared individuals dropped for a missing value in a requested column.
    """

    genotypes: PlinkData
    phenotypes: pd.DataFrame
    n_genotyped_only: int
    n_phenotyped_only: int
    n_incomplete: int

    @property
    def n(self) -> int:
        """Individuals kept."""
        return self.genotypes.n_samples

    def __str__(self) -> str:
        return (
            f"{self.n} individuals kept; dropped {self.n_genotyped_only} genotyped without "
            f"phenotype, {self.n_phenotyped_only} phenotyped without genotypes, "
            f"{self.n_incomplete} with missing values"
        )


def match_samples(
    genotypes: PlinkData,
    phenotypes: pd.DataFrame,
    *,
    iid_column: str = "iid",
    columns: list[str] | None = None,
) -> SampleMatch:
    """Keep the individuals present in both, with complete values in ``columns``.

    Parameters
    ----------
    genotypes : PlinkData
    phenotypes : DataFrame
        Must have the column ``iid_column`` of individual ids (matched to the
        ``.fam`` file's iid as strings).
    columns : list of str, optional
        Phenotype and covariate columns that must be non-missing; default all.

    Returns
    -------
    SampleMatch
        Its ``str`` reports how many individuals were dropped, and why.
    """
    if iid_column not in phenotypes.columns:
        raise DataError(f"the phenotype table has no id column {iid_column!r}")
    table = phenotypes.assign(**{iid_column: phenotypes[iid_column].astype(str)})
    repeated = table[iid_column][table[iid_column].duplicated()]
    if len(repeated):
        raise DataError(f"the phenotype table repeats id(s) {few(repeated)}")
    table = table.set_index(iid_column)
    in_fam = pd.Index(genotypes.iid)
    shared = in_fam[in_fam.isin(table.index)]
    if shared.empty:
        raise DataError(
            f"no individual id is shared by {_source_name(genotypes)} "
            f"({few(in_fam, 3)}) and the phenotype table ({few(table.index, 3)})"
        )
    wanted = list(table.columns) if columns is None else columns
    unknown = [c for c in wanted if c not in table.columns]
    if unknown:
        raise DataError(f"column(s) {few(unknown)} not in the phenotype table")
    complete = shared[table.loc[shared, wanted].notna().all(axis=1).to_numpy()]
    if complete.empty:
        raise DataError(f"every shared individual has a missing value in {few(wanted)}")
    return SampleMatch(
        genotypes=genotypes.select_samples(complete),
        phenotypes=table.loc[complete],
        n_genotyped_only=len(in_fam) - len(shared),
        n_phenotyped_only=len(table) - len(shared),
        n_incomplete=len(shared) - len(complete),
    )


def _source_name(genotypes) -> str:
    """The file that lists a source's samples, for messages."""
    if isinstance(genotypes, PlinkData):
        return str(genotypes.bed.with_suffix(".fam"))
    return str(getattr(genotypes, "path", "the genotypes"))


def read_dosages(
    panel: PlinkData, columns: slice | np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Counts of the first ``.bim`` allele for SNPs ``columns`` (a slice or indices).

    ``rows`` picks samples (positions among ``panel``'s); returns (n, k) float64,
    ``NaN`` where missing.  Reads the contiguous range covering ``columns`` once.
    """
    selected = (
        panel if rows is None else replace(panel, sample_index=panel.sample_index[np.asarray(rows)])
    )
    if isinstance(columns, slice):
        start, stop, step = columns.indices(panel.n_snps)
        return selected.read(start, stop)[:, ::step]
    columns = np.asarray(columns, dtype=int)
    if columns.size == 0:
        return np.empty((selected.n_samples, 0))
    lo = int(columns.min())
    return selected.read(lo, int(columns.max()) + 1)[:, columns - lo]
