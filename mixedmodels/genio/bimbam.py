"""BIMBAM mean-genotype files (GEMMA's and BIMBAM's text format), read into memory.

A mean-genotype file has one line per SNP and no header::

    rs1, A, T, 0.02, 1.00, 2.00, NA, ...

the SNP's name, the counted allele, the other allele, then one dosage (the
expected number of copies of the counted allele, 0–2) per individual, in the
order of the study's phenotype file.  Fields are separated by commas, spaces
or tabs; ``NA`` (or an empty field) is a missing dosage.  The file carries no
sample IDs: pass them as ``samples`` (a list or a file with one ID per line)
to pair the rows with phenotypes by ID.  The optional SNP annotation file
gives ``snp, pos, chrom`` per line, as GEMMA's ``-a`` file does; without it
the chromosome is unknown (``"0"``) and positions count the lines.

The text is parsed by pandas' C reader, so a file of a few hundred thousand
SNPs reads in seconds; the matrix is held in memory (n × m float64).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genio.genotypes import ArrayGenotypes

__all__ = ["read_bimbam"]


def _read_table(path: Path, what: str) -> pd.DataFrame:
    """A headerless text table of strings, with the file named in every failure."""
    if not path.is_file():
        raise DataError(f"BIMBAM {what} file not found: {path}")
    try:
        # commas become spaces so that pandas' C reader (whitespace-separated) parses the text
        text = path.read_text().replace(",", " ")
        table = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, dtype=str,
                            keep_default_na=False, skip_blank_lines=True)  # fmt: skip
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a BIMBAM {what} file: {exc}") from None
    if table.empty:
        raise DataError(f"BIMBAM {what} file {path} is empty")
    return table


def _dosages(table: pd.DataFrame, path: Path) -> np.ndarray:
    """The dosage columns as an (n, m) float array; NA and empty fields are missing."""
    raw = table.iloc[:, 3:]
    if raw.shape[1] == 0:
        raise DataError(f"{path}: no dosage columns after the SNP name and its two alleles")
    ragged = (raw.isna() | raw.eq("")).any(axis=1)  # a short line is filled with empty fields
    if ragged.any():
        raise DataError(
            f"{path}: SNP(s) {few(table.iloc[:, 0][ragged].tolist())} have fewer dosages "
            "than the others"
        )
    values = raw.replace({"NA": "nan", "na": "nan", "NaN": "nan"})
    try:
        G = values.to_numpy().astype(np.float64)
    except ValueError:
        bad = ~values.apply(lambda col: pd.to_numeric(col, errors="coerce").notna() | col.eq("nan"))
        snps = table.iloc[:, 0][bad.any(axis=1)].tolist()
        raise DataError(f"{path}: non-numeric dosage(s) for SNP(s) {few(snps)}") from None
    outside = (G < 0) | (G > 2) | np.isinf(G)
    if outside.any():
        snps = table.iloc[:, 0][outside.any(axis=1)].tolist()
        raise DataError(f"{path}: dosages outside [0, 2] for SNP(s) {few(snps)}")
    return G.T


def _sample_ids(samples, n: int, path: Path) -> np.ndarray | None:
    """Sample IDs from a list or a one-per-line file; their number must be the dosages'."""
    if samples is None:
        return None
    if isinstance(samples, (str, Path)):
        ids = _read_table(Path(samples), "sample").iloc[:, 0].to_numpy()
    else:
        ids = np.asarray(list(samples))
    ids = ids.astype(str)
    if ids.size != n:
        raise DataError(f"{path} has {n} dosage columns but {ids.size} sample IDs were given")
    if pd.Index(ids).has_duplicates:
        dup = pd.Index(ids)[pd.Index(ids).duplicated()].tolist()
        raise DataError(f"repeated sample IDs for {path}: {few(dup)}")
    return ids


def _annotation(annotation, snps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chrom, pos) per SNP from the annotation file, in the genotype file's SNP order."""
    if annotation is None:
        return np.full(snps.size, "0"), np.arange(1, snps.size + 1)
    path = Path(annotation)
    table = _read_table(path, "SNP annotation")
    if table.shape[1] < 3:
        raise DataError(f"{path}: an annotation line needs 'snp, pos, chrom'")
    table = table.drop_duplicates(subset=0, keep="first").set_index(0)
    missing = pd.Index(snps).difference(table.index)
    if len(missing):
        raise DataError(f"{path} does not annotate SNP(s) {few(list(missing))}")
    pos = pd.to_numeric(table.loc[snps, 1], errors="coerce")
    if pos.isna().any():
        raise DataError(
            f"{path}: non-numeric positions for SNP(s) {few(pos.index[pos.isna()].tolist())}"
        )
    return table.loc[snps, 2].to_numpy().astype(str), pos.to_numpy().astype(np.int64)


def read_bimbam(
    path: str | Path, samples=None, annotation: str | Path | None = None
) -> ArrayGenotypes:
    """Read a BIMBAM mean-genotype file as a genotype source (dosages of the first listed allele).

    Parameters
    ----------
    path : the mean-genotype file.
    samples : sample IDs in the order of the dosage columns (a list, or a file
        with one ID per line); ``None`` leaves the rows unlabelled.
    annotation : a ``snp, pos, chrom`` file (GEMMA's ``-a``), optional.

    Returns
    -------
    ArrayGenotypes, shape (n individuals, m SNPs), with ``snp_table()`` of
    snp, chrom, pos.
    """
    path = Path(path)
    table = _read_table(path, "mean genotype")
    if table.shape[1] < 4:
        raise DataError(f"{path}: a mean-genotype line needs 'snp, allele, allele, dosages...'")
    snps = table.iloc[:, 0].to_numpy().astype(str)
    if pd.Index(snps).has_duplicates:
        raise DataError(
            f"{path}: repeated SNP names {few(pd.Index(snps)[pd.Index(snps).duplicated()].tolist())}"
        )
    G = _dosages(table, path)
    chrom, pos = _annotation(annotation, snps)
    return ArrayGenotypes(G, snps, chrom, pos, _sample_ids(samples, G.shape[0], path))
