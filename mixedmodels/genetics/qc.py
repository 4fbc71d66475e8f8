"""Variant quality control and LD pruning, with PLINK 2's definitions.

Per variant ``j`` with allele counts ``g_ij`` (``NaN`` for a missing call):

* **call rate** ``c_j = n_obs,j / n`` and **missing rate** ``1 - c_j`` (PLINK 2
  ``--geno``), with ``n_obs,j`` the individuals called;
* **allele frequency** of the counted allele from the non-missing calls,
  ``f_j = Σ_i g_ij / (2 n_obs,j)``, and **MAF** ``min(f_j, 1 - f_j)`` (``--maf``);
* **duplicates**: a variant at the same chromosome and position as an earlier
  one with the same alleles (``--rm-dup``), or whose mean-imputed dosages are an
  exact linear function of an earlier variant's (``|r| = 1``: it carries no
  information of its own and makes the scan's design dependent);
* **r²** between two variants: the squared Pearson correlation of their
  dosages with missing calls mean-imputed, ``r_jk = z_j'z_k / n`` with ``z``
  the standardised columns (:func:`mixedmodels.genio.standardise`).

:func:`qc` returns the kept variants as a lazy :class:`SnpSubset` whose
``notes`` table lists every removed variant and why.  :func:`ld_prune` is
PLINK's ``--indep-pairwise`` / limix's ``indep_pairwise``: see its docstring
for the exact rule.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genetics.loco import chromosome_columns
from mixedmodels.genio.genotypes import (
    SnpSubset,
    as_genotype_source,
    chunk_bounds,
    mean_impute,
    select_snps,
    standardise,
)

__all__ = ["LDWindowWarning", "ld_prune", "qc", "variant_stats"]


class LDWindowWarning(UserWarning):
    """An LD-pruning window longer than a chromosome: the chromosome is one window."""


def variant_stats(G: object, *, chunk_size: int = 2000) -> pd.DataFrame:
    """Per-variant call rate, missing rate, counted-allele frequency and MAF (module definitions).

    Returns the SNP table with columns ``n_obs``, ``call_rate``, ``missing``, ``af``, ``maf``.
    """
    source = as_genotype_source(G)
    parts = []
    for start, stop in chunk_bounds(source.n_snps, chunk_size):
        block = source.read(start, stop)
        observed = ~np.isnan(block)
        n_obs = observed.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            af = np.where(observed, block, 0.0).sum(axis=0) / (2.0 * n_obs)
        parts.append(np.column_stack([n_obs, af]))
    n_obs, af = np.vstack(parts).T if parts else (np.empty(0), np.empty(0))
    table = source.snp_table().copy()
    table["n_obs"] = n_obs.astype(np.int64)
    table["call_rate"] = n_obs / source.n_samples
    table["missing"] = 1.0 - table["call_rate"]
    table["af"] = af
    table["maf"] = np.minimum(af, 1.0 - af)
    return table


def qc(
    G: object,
    *,
    min_maf: float = 0.0,
    max_missing: float = 1.0,
    remove_duplicates: bool = True,
    chunk_size: int = 2000,
) -> SnpSubset:
    """Drop variants with a low MAF, a high missing rate, or that duplicate an earlier one.

    Parameters
    ----------
    G : genotype source (PLINK, BGEN, array)
    min_maf : float
        Keep variants with ``MAF ≥ min_maf`` (PLINK ``--maf``); monomorphic
        variants (MAF 0) and variants with no call are always dropped.
    max_missing : float
        Keep variants with missing rate ``≤ max_missing`` (PLINK ``--geno``).
    remove_duplicates : bool
        Drop repeated positions and exactly dependent dosages (module docstring).

    Returns
    -------
    SnpSubset
        The kept variants, read lazily; ``.notes`` is a DataFrame of the removed
        ones (SNP table, ``maf``, ``missing``, ``reason``) in file order.
    """
    _check_fraction(min_maf, "min_maf", upper=0.5)
    _check_fraction(max_missing, "max_missing", upper=1.0)
    source = as_genotype_source(G)
    stats = variant_stats(source, chunk_size=chunk_size)
    reason = pd.Series("", index=stats.index, dtype=object)
    reason[stats["missing"] > max_missing] = f"missing rate > {max_missing:g}"
    low = (stats["maf"] < min_maf) | (stats["maf"] == 0) | (stats["n_obs"] == 0)
    reason[(reason == "") & low] = "monomorphic" if min_maf == 0 else f"MAF < {min_maf:g}"
    reason[(reason == "") & (stats["maf"] == 0)] = "monomorphic"
    if remove_duplicates:
        for j, why in _duplicates(source, stats, reason == "", chunk_size).items():
            reason[j] = why
    removed = reason != ""
    notes = stats.loc[removed, [*source.snp_table().columns, "maf", "missing"]].assign(
        reason=reason[removed]
    )
    kept = select_snps(source, ~removed.to_numpy())
    return SnpSubset(kept.source, kept.columns, notes.reset_index(drop=True))


def _check_fraction(value: float, name: str, upper: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= upper):
        raise DataError(f"{name} must be a number between 0 and {upper}, not {value!r}")


def _duplicates(
    source, stats: pd.DataFrame, candidate: pd.Series, chunk_size: int
) -> dict[int, str]:
    """Variants (positions) that repeat an earlier candidate's position or dosages."""
    out: dict[int, str] = {}
    snp = stats["snp"].astype(str).to_numpy()
    key_columns = [c for c in ("chrom", "pos", "allele_1", "allele_2") if c in stats.columns]
    if {"chrom", "pos"} <= set(key_columns) and (stats["pos"] > 0).any():
        keys = stats[key_columns].astype(str).agg(":".join, axis=1)
        seen: dict[str, int] = {}
        for j in np.flatnonzero(candidate.to_numpy()):
            if keys[j] in seen:
                out[j] = f"same position as {snp[seen[keys[j]]]}"
            else:
                seen[keys[j]] = j
    fingerprints: dict[bytes, int] = {}
    for start, stop in chunk_bounds(source.n_snps, chunk_size):
        Z, kept = standardise(source.read(start, stop))
        Z = Z * np.sign(Z[np.argmax(np.abs(Z) > 1e-8, axis=0), np.arange(Z.shape[1])])
        for z, j in zip(Z.T, start + np.flatnonzero(kept)):
            if not candidate[j] or j in out:
                continue
            key = np.round(z, 8).tobytes()
            if key in fingerprints:
                out[j] = f"dosages dependent on {snp[fingerprints[key]]} (|r| = 1)"
            else:
                fingerprints[key] = j
    return out


def ld_prune(
    G: object, *, window: int = 1000, r2: float = 0.2, chunk_size: int = 1000
) -> np.ndarray:
    """Variants to keep so that no two within ``window`` variants have ``r² > r2``.

    The rule (limix's ``indep_pairwise``; PLINK's ``--indep-pairwise W 1 r2`` up
    to which member of a pair goes): chromosome by chromosome, variants in file
    order; variant ``k`` is dropped when an earlier *kept* variant ``j`` of the
    same chromosome with ``k - j < window`` has ``r²_jk > r2`` (r² of the
    mean-imputed dosages, module docstring).  Monomorphic variants are dropped.

    Parameters
    ----------
    G : genotype source
    window : int
        Window length in variants; a window never crosses a chromosome, and one
        longer than a chromosome makes that chromosome one window (an
        :class:`LDWindowWarning` names them).
    r2 : float
        Threshold in (0, 1].
    chunk_size : int
        Variants whose correlations are computed at once (memory
        ``8 chunk_size (chunk_size + window)`` bytes, plus the genotypes read).

    Returns
    -------
    ndarray of bool, shape (m,)
        True for the variants kept; ``G[keep]`` is the pruned source.
    """
    if not (isinstance(window, (int, np.integer)) and window >= 2):
        raise DataError(f"window must be an integer number of variants ≥ 2, not {window!r}")
    if not (isinstance(r2, (int, float)) and 0.0 < r2 <= 1.0):
        raise DataError(f"r2 must lie in (0, 1], not {r2!r}")
    source = as_genotype_source(G)
    keep = np.zeros(source.n_snps, dtype=bool)
    short = []
    for label, columns in chromosome_columns(source).items():
        if window > columns.size:
            short.append(f"{label} ({columns.size} variants)")
        keep[columns] = _prune_chromosome(select_snps(source, columns), window, r2, chunk_size)
    if short:
        warnings.warn(
            f"the LD window of {window} variants is longer than chromosome(s) {few(short)}: "
            "each of them is pruned as one window",
            LDWindowWarning,
            stacklevel=2,
        )
    return keep


def _prune_chromosome(source, window: int, r2: float, chunk_size: int) -> np.ndarray:
    """Greedy pruning of one chromosome (see :func:`ld_prune`)."""
    m, n = source.n_snps, source.n_samples
    keep = np.ones(m, dtype=bool)
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        reach = min(stop + window - 1, m)
        Z, polymorphic = _standardised_all(source.read(start, reach))
        keep[start:reach] &= polymorphic | (np.arange(start, reach) >= stop)
        R2 = (Z[:, : stop - start].T @ Z / n) ** 2  # (stop - start, reach - start)
        for j in range(start, stop):
            if keep[j]:
                later = slice(j + 1, min(j + window, reach))
                close = R2[j - start, later.start - start : later.stop - start] > r2
                keep[later.start : later.stop] &= ~close
    return keep


def _standardised_all(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised columns (monomorphic ones all 0) and which are polymorphic."""
    filled, mean = mean_impute(block)
    centred = filled - np.where(np.isnan(mean), 0.0, mean)
    sd = np.sqrt(np.mean(centred**2, axis=0))
    polymorphic = sd > 1e-12 * np.maximum(1.0, np.abs(filled).max(axis=0, initial=0.0))
    Z = np.zeros_like(centred)
    Z[:, polymorphic] = centred[:, polymorphic] / sd[polymorphic]
    return Z, polymorphic
