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
    "GenotypeSource",
    "align_samples",
    "as_genotype_source",
    "chunk_bounds",
    "iter_chunks",
    "iter_standardised",
    "mean_impute",
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
    if chunk_size < 1:
        raise DataError(f"chunk size must be a positive number of SNPs, not {chunk_size}")
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
    if not missing.any():  # the common case, without the copies below
        return G, G.mean(axis=0)
    n_obs = G.shape[0] - missing.sum(axis=0)
    total = np.where(missing, 0.0, G).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_obs
    # Imputing the mean makes the SNP's centred column zero there: no information.
    filled = np.where(missing, np.where(n_obs > 0, mean, 0.0), G)
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
