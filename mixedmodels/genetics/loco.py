"""Leave-one-chromosome-out (LOCO) kinships: one per chromosome, from all the others.

A SNP tested with a kinship that contains it (or SNPs in LD with it) competes
with its own random effect: the polygenic term absorbs part of the SNP's
signal and power drops (Listgarten et al. 2012; Yang et al. 2014).  The LOCO
scan tests the SNPs of chromosome ``c`` under

.. math:: K_{-c} = \\frac{1}{m - m_c} \\sum_{c' \\ne c} Z_{c'} Z_{c'}^\\top,

the standardised kinship (:func:`mixedmodels.genetics.kinship`) of the other
chromosomes' ``m - m_c`` polymorphic SNPs, as FaST-LMM's
``single_snp(leave_out_one_chrom=True)`` does.  The sums are built in two
passes over the genotypes: the whole-genome ``Σ Z Z'`` once, then each
chromosome's own part to subtract, so at most two ``n × n`` matrices are held.

When the other chromosomes hold fewer than ``min_snps`` polymorphic SNPs (a
single chromosome, or one that carries nearly all SNPs) leaving the
chromosome out leaves no usable kinship: its SNPs are tested with the kinship
of all SNPs instead, and a :class:`LocoFallbackWarning` names them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genetics.decomposition import Decomposition
from mixedmodels.genio.genotypes import (
    GenotypeSource,
    chunk_bounds,
    select_snps,
    standardise,
)
from mixedmodels.genio.samples import labels_of

__all__ = ["LocoFallbackWarning", "LocoPart", "loco_parts"]


class LocoFallbackWarning(UserWarning):
    """Chromosomes whose complement is too small for LOCO; scanned with the full kinship."""


@dataclass(frozen=True)
class LocoPart:
    """SNPs scanned with one kinship: ``chromosomes`` (labels), ``columns`` (positions among
    the source's SNPs), the kinship's ``decomposition``, and ``loco`` (False: the full kinship)."""

    chromosomes: tuple[str, ...]
    columns: np.ndarray
    decomposition: Decomposition
    loco: bool


def chromosome_columns(source: GenotypeSource) -> dict[str, np.ndarray]:
    """Positions of each chromosome's SNPs, chromosomes in order of first appearance."""
    chrom = source.snp_table()["chrom"].astype(str).to_numpy()
    labels = pd.unique(chrom)
    return {label: np.flatnonzero(chrom == label) for label in labels}


def gram(source: GenotypeSource, chunk_size: int) -> tuple[np.ndarray, int, list[str]]:
    """``Σ_j z_j z_j'`` over the standardised polymorphic SNPs of ``source``, their number,
    and the ids of the monomorphic SNPs left out."""
    n = source.n_samples
    total, kept, dropped = np.zeros((n, n)), 0, []
    snp_ids = source.snp_table()["snp"].astype(str).to_numpy()
    for start, stop in chunk_bounds(source.n_snps, chunk_size):
        Z, keep = standardise(source.read(start, stop))
        total += Z @ Z.T
        kept += Z.shape[1]
        dropped.extend(snp_ids[start:stop][~keep])
    return total, kept, dropped


def _decomposition(K: np.ndarray, ids: pd.Index | None) -> Decomposition:
    """``eigh`` of a kinship built here: symmetric PSD by construction, so unchecked."""
    S, U = scipy.linalg.eigh(K, driver="evd", overwrite_a=True, check_finite=False)
    return Decomposition(U, np.clip(S, 0.0, None), None if ids is None else ids.to_numpy())


def loco_parts(
    source: GenotypeSource, *, chunk_size: int = 2000, min_snps: int = 100
) -> Iterator[LocoPart]:
    """The kinship of every left-out chromosome, one at a time (each ``O(n³)`` to decompose).

    Parameters
    ----------
    source : GenotypeSource
        Genotypes whose ``snp_table()`` has a ``chrom`` column.
    chunk_size : int
        SNPs standardised at once.
    min_snps : int
        Fewest polymorphic SNPs the other chromosomes must keep for a LOCO kinship.

    Yields
    ------
    LocoPart
        One per chromosome left out, then (if any) one for the chromosomes that
        fall back to the kinship of all SNPs.
    """
    by_chrom = chromosome_columns(source)
    ids = labels_of(source)
    total, m, dropped = gram(source, chunk_size)
    if m == 0:
        raise DataError(f"no polymorphic SNP among the {source.n_snps} given: kinship undefined")
    if dropped:
        warnings.warn(
            f"dropped {len(dropped)} monomorphic SNP(s) from the LOCO kinships: {few(dropped)}",
            stacklevel=3,
        )
    fallback = []
    for label, columns in by_chrom.items():
        own, m_c, _ = gram(select_snps(source, columns), chunk_size)
        if m - m_c < min_snps:
            fallback.append(label)
            continue
        K = (total - own) / (m - m_c)
        yield LocoPart((label,), columns, _decomposition(K, ids), True)
    if fallback:
        warnings.warn(
            f"chromosome(s) {few(fallback)}: the other chromosomes hold fewer than {min_snps} "
            "polymorphic SNPs, too few for a leave-one-chromosome-out kinship; their SNPs are "
            "tested with the kinship of all SNPs",
            LocoFallbackWarning,
            stacklevel=3,
        )
        columns = np.sort(np.concatenate([by_chrom[label] for label in fallback]))
        yield LocoPart(tuple(fallback), columns, _decomposition(total / m, ids), False)
