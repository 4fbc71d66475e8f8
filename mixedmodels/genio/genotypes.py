"""Genotype matrices: one chunked interface for arrays in memory and PLINK files.

A genotype matrix ``G`` is ``n × m``: individuals by SNPs, entries are allele
counts (0, 1, 2 or dosages in between) with ``NaN`` for a missing call.  Code
that walks over SNPs asks a :class:`GenotypeSource` for column blocks, so a
scan over a PLINK file never holds more than one block in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genio.samples import labels_of, positions

__all__ = [
    "ArrayGenotypes",
    "ConcatenatedSnps",
    "GenotypeSource",
    "SnpSubset",
    "align_samples",
    "as_genotype_source",
    "chunk_bounds",
    "iter_chunks",
    "iter_standardised",
    "mean_impute",
    "select_snps",
    "snp_positions",
    "standardise",
]


@runtime_checkable
class GenotypeSource(Protocol):
    """What the kinship and scan code needs from a genotype matrix.

    ``read(start, stop)`` returns the SNP columns ``start:stop`` as a float64
    array of shape ``(n_samples, stop - start)`` with ``NaN`` for missing calls.
    """

    @property
    def n_samples(self) -> int: ...

    @property
    def n_snps(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...

    def snp_table(self) -> pd.DataFrame: ...


@dataclass(frozen=True)
class ArrayGenotypes:
    """An in-memory genotype matrix with SNP annotations.

    Attributes
    ----------
    values : ndarray, shape (n, m)
        Allele counts, ``NaN`` for missing.
    snp, chrom : ndarray of str, shape (m,)
    pos : ndarray of int, shape (m,)
    iid : ndarray of str, shape (n,), or None
        Sample IDs (a DataFrame's index), ``None`` when unknown.
    """

    values: np.ndarray
    snp: np.ndarray
    chrom: np.ndarray
    pos: np.ndarray
    iid: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.values.shape[0]

    @property
    def n_snps(self) -> int:
        return self.values.shape[1]

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.values[:, start:stop], dtype=np.float64)

    def snp_table(self) -> pd.DataFrame:
        return pd.DataFrame({"snp": self.snp, "chrom": self.chrom, "pos": self.pos})

    def take(self, rows: np.ndarray) -> ArrayGenotypes:
        """The same SNPs for the individuals at positions ``rows``, in that order."""
        iid = None if self.iid is None else self.iid[rows]
        return ArrayGenotypes(self.values[rows], self.snp, self.chrom, self.pos, iid)

    def select_samples(self, iids: object) -> ArrayGenotypes:
        """The individuals ``iids`` (sample IDs), in that order."""
        rows = positions(pd.Index(np.asarray(iids).astype(str)), labels_of(self), self.n_samples,
                         "the genotypes")  # fmt: skip
        return self if rows is None else self.take(rows)

    def __getitem__(self, key: object) -> SnpSubset:
        """The SNPs picked by ``key`` (mask, indices or slice)."""
        return select_snps(self, key)


def _check_genotype_values(values: np.ndarray, what: str) -> np.ndarray:
    """Return ``values`` as a 2-D float64 array; infinities are an error, NaN is missing."""
    try:
        G = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must hold numeric allele counts: {exc}") from None
    if G.ndim != 2:
        raise DataError(f"{what} must be 2-D (individuals × SNPs); it has shape {G.shape}")
    if np.isinf(G).any():
        rows, cols = np.nonzero(np.isinf(G))
        raise DataError(
            f"{what} has infinite values (first at individual {rows[0]}, SNP {cols[0]}); "
            "use NaN for a missing call"
        )
    return G


def as_genotype_source(G: object, what: str = "G") -> GenotypeSource:
    """Wrap ``G`` (array, DataFrame or a :class:`GenotypeSource`) as a genotype source.

    A DataFrame's column labels become the SNP ids and its index (unless the
    default ``0..n-1``) the sample IDs; SNPs of an array are named ``snp0``,
    ``snp1``, ...; chromosome and position are unknown (``"NA"``, 0).
    """
    if isinstance(G, GenotypeSource):
        return G
    if isinstance(G, pd.DataFrame):
        names = G.columns.astype(str).to_numpy()
        values = _check_genotype_values(G.to_numpy(), what)
    else:
        values = _check_genotype_values(G, what)
        names = np.array([f"snp{j}" for j in range(values.shape[1])])
    m = values.shape[1]
    ids = labels_of(G)
    iid = None if ids is None else ids.to_numpy()
    return ArrayGenotypes(values, names, np.full(m, "NA"), np.zeros(m, dtype=np.int64), iid)


def align_samples(
    source: GenotypeSource,
    n: int,
    levels: pd.Index | None = None,
    *,
    assume_same_order: bool = False,
) -> GenotypeSource:
    """The genotypes of the model's ``n`` individuals, in the phenotype's order.

    When both sides carry sample IDs (a source with ``iid`` and a labelled
    phenotype, ``levels``) the genotypes are reordered (and restricted) to
    ``levels``; a labelled phenotype with unlabelled genotypes is refused unless
    ``assume_same_order`` (see :mod:`mixedmodels.genio.samples`).
    """
    rows = positions(
        levels, labels_of(source), source.n_samples, "the genotypes",
        assume_same_order=assume_same_order,
    )  # fmt: skip
    if rows is not None:
        source = (
            source.select_samples(levels)
            if hasattr(source, "select_samples")
            else source.take(rows)
        )
    if source.n_samples != n:
        raise DataError(
            f"the genotypes have {source.n_samples} individuals but the phenotype has {n}; "
            "use match_samples to align them"
        )
    return source


def chunk_bounds(n_snps: int, chunk_size: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` column ranges of at most ``chunk_size`` SNPs."""
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise DataError(f"chunk size must be a positive number of SNPs, not {chunk_size!r}")
    return [(a, min(a + chunk_size, n_snps)) for a in range(0, n_snps, chunk_size)]


def iter_chunks(source: GenotypeSource, chunk_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, G[:, start:stop])`` over all SNPs of ``source``."""
    for start, stop in chunk_bounds(source.n_snps, chunk_size):
        yield start, stop, source.read(start, stop)


def mean_impute(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace missing calls by the SNP's mean over the observed individuals.

    Parameters
    ----------
    G : ndarray, shape (n, c)

    Returns
    -------
    G_imputed : ndarray, shape (n, c)
        A copy with ``NaN`` replaced (``G`` itself when no call is missing); a SNP
        with no observed call becomes all 0.
    mean : ndarray, shape (c,)
        Per-SNP mean of the observed calls (``NaN`` when none was observed).
    """
    missing = np.isnan(G)
    n_missing = missing.sum(axis=0)
    if not n_missing.any():  # the common case, without the copies below
        return G, G.mean(axis=0)
    filled = np.where(missing, 0.0, G)
    n_obs = G.shape[0] - n_missing
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n_obs
    # Imputing the mean makes the SNP's centred column zero there: no information.
    np.copyto(filled, np.where(n_obs > 0, mean, 0.0), where=missing)
    return filled, mean


def standardise(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-impute, centre and scale each SNP to unit population variance.

    ``Z[:, j] = (g_j - mean_j) / sd_j`` with ``sd_j`` the ddof=0 standard deviation of
    the imputed column.  Monomorphic SNPs (``sd_j = 0``) cannot be scaled and are
    left out; :func:`iter_standardised` reports them once for all blocks.

    Parameters
    ----------
    G : ndarray, shape (n, c)

    Returns
    -------
    Z : ndarray, shape (n, c_kept)
    kept : ndarray of bool, shape (c,)
    """
    filled, mean = mean_impute(G)
    centred = filled - np.where(np.isnan(mean), 0.0, mean)
    sd = np.sqrt(np.mean(centred**2, axis=0))
    # A tolerance rather than == 0: the mean of identical floats need not be exact.
    kept = sd > 1e-12 * np.maximum(1.0, np.abs(filled).max(axis=0, initial=0.0))
    return centred[:, kept] / sd[kept], kept


def iter_standardised(source: GenotypeSource, chunk_size: int) -> Iterator[np.ndarray]:
    """Yield the standardised blocks ``Z`` (see :func:`standardise`) of all SNPs in order.

    Once every block has been produced, the monomorphic SNPs left out are named in
    one warning; a :class:`DataError` is raised if no SNP was kept.
    """
    snp_ids = source.snp_table()["snp"].to_numpy()
    dropped: list[str] = []
    for start, stop, block in iter_chunks(source, chunk_size):
        Z, kept = standardise(block)
        dropped.extend(str(s) for s in snp_ids[start:stop][~kept])
        yield Z
    if len(dropped) == source.n_snps:
        raise DataError(f"no polymorphic SNP among the {source.n_snps} given: kinship undefined")
    if dropped:
        warnings.warn(
            f"dropped {len(dropped)} monomorphic SNP(s) with no variance to standardise: "
            f"{few(dropped)}",
            stacklevel=2,
        )


def snp_positions(n_snps: int, key: object, what: str = "the SNP selection") -> np.ndarray:
    """Column positions (sorted, unique) picked by ``key``: a boolean mask, indices or a slice."""
    if isinstance(key, slice):
        return np.arange(n_snps)[key]
    if isinstance(key, pd.Series):
        key = key.to_numpy()
    picked = np.asarray(key)
    if picked.dtype == bool:
        if picked.shape != (n_snps,):
            raise DataError(f"{what} is a mask of {picked.size} values for {n_snps} SNPs")
        return np.flatnonzero(picked)
    if picked.size and not np.issubdtype(picked.dtype, np.integer):
        raise DataError(f"{what} must be a boolean mask or integer positions, not {picked.dtype}")
    picked = np.unique(picked.astype(np.int64))
    if picked.size and (picked[0] < 0 or picked[-1] >= n_snps):
        raise DataError(f"{what} has positions outside 0..{n_snps - 1}")
    return picked


@dataclass(frozen=True, eq=False)
class SnpSubset:
    """Some SNPs of another genotype source, read lazily through it (``g[keep]``).

    Attributes
    ----------
    source : GenotypeSource
    columns : ndarray of int, shape (k,)
        Sorted positions of the SNPs kept among ``source``'s.
    notes : DataFrame or None
        What a filter removed and why (:func:`mixedmodels.genetics.qc` fills it).
    """

    source: GenotypeSource
    columns: np.ndarray
    notes: pd.DataFrame | None = None

    @property
    def n_samples(self) -> int:
        return self.source.n_samples

    @property
    def n_snps(self) -> int:
        return int(self.columns.size)

    @property
    def iid(self) -> np.ndarray | None:
        return getattr(self.source, "iid", None)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """SNPs ``start:stop`` of the subset: one read of the covering range of ``source``."""
        cols = self.columns[start : self.n_snps if stop is None else stop]
        if cols.size == 0:
            return np.empty((self.n_samples, 0))
        return self.source.read(int(cols[0]), int(cols[-1]) + 1)[:, cols - cols[0]]

    def snp_table(self) -> pd.DataFrame:
        return self.source.snp_table().iloc[self.columns].reset_index(drop=True)

    def select_samples(self, iids: object) -> SnpSubset:
        return SnpSubset(self.source.select_samples(iids), self.columns, self.notes)

    def take(self, rows: np.ndarray) -> SnpSubset:
        return SnpSubset(self.source.take(rows), self.columns, self.notes)

    def __getitem__(self, key: object) -> SnpSubset:
        return SnpSubset(self.source, self.columns[snp_positions(self.n_snps, key)])


def select_snps(source: GenotypeSource, key: object) -> SnpSubset:
    """The SNPs of ``source`` picked by ``key`` (mask, indices or slice), read lazily."""
    if isinstance(source, SnpSubset):
        return source[key]
    return SnpSubset(source, snp_positions(source.n_snps, key))


@dataclass(frozen=True, eq=False)
class ConcatenatedSnps:
    """Several genotype sources of the same individuals, SNPs one after the other (one per file)."""

    parts: tuple[GenotypeSource, ...]

    def __post_init__(self) -> None:
        ids = [labels_of(part) for part in self.parts]
        for part, other in zip(self.parts[1:], ids[1:]):
            if part.n_samples != self.parts[0].n_samples or (
                ids[0] is not None and other is not None and not ids[0].equals(other)
            ):
                raise DataError(
                    f"genotype files to join hold different individuals: {few(ids[0], 3)} "
                    f"and {few(other, 3)}"
                )

    @property
    def offsets(self) -> np.ndarray:
        return np.cumsum([0, *(p.n_snps for p in self.parts)])

    @property
    def n_samples(self) -> int:
        return self.parts[0].n_samples

    @property
    def n_snps(self) -> int:
        return int(self.offsets[-1])

    @property
    def iid(self) -> np.ndarray | None:
        return getattr(self.parts[0], "iid", None)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.n_snps if stop is None else stop
        offsets, pieces = self.offsets, []
        for part, lo, hi in zip(self.parts, offsets[:-1], offsets[1:]):
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                pieces.append(part.read(int(a - lo), int(b - lo)))
        return np.hstack(pieces) if pieces else np.empty((self.n_samples, 0))

    def snp_table(self) -> pd.DataFrame:
        return pd.concat([p.snp_table() for p in self.parts], ignore_index=True)

    def select_samples(self, iids: object) -> ConcatenatedSnps:
        return ConcatenatedSnps(tuple(p.select_samples(iids) for p in self.parts))

    def __getitem__(self, key: object) -> SnpSubset:
        return select_snps(self, key)
