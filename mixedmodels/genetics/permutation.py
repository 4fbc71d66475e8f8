"""Empirical p-values of a scan from permuted genotypes.

Each permutation shuffles the rows of the genotype matrix (the individuals)
and leaves the phenotype, covariates and kinship together, so the null model
and its ``h²`` are unchanged while every SNP loses any association with the
phenotype.  The LRT statistics of all SNPs over ``B`` permutations are pooled
into one null sample (``B m`` values), and each observed statistic gets
``(1 + #{T* ≥ T}) / (1 + B m)`` (:func:`~mixedmodels.genetics.multitest.empirical_pvalues`).
"""

from __future__ import annotations

import numpy as np

from mixedmodels.errors import DataError
from mixedmodels.genetics.decomposition import decompose
from mixedmodels.genetics.multitest import empirical_pvalues
from mixedmodels.genetics.phenotypes import as_phenotypes
from mixedmodels.genetics.results import ScanResult
from mixedmodels.genetics.scan import scan
from mixedmodels.genio.genotypes import ArrayGenotypes, align_samples, as_genotype_source

__all__ = ["permutation_pvalues"]


def permutation_pvalues(
    G: object,
    y: object,
    X: object = None,
    K: object = None,
    *,
    n_permutations: int = 10,
    seed: int = 0,
    assume_same_order: bool = False,
) -> ScanResult:
    """:func:`scan` of one phenotype with a column ``p_empirical`` from permuted genotypes.

    ``G`` is read into memory (``8 n m`` bytes).  ``K`` (default ``kinship(G)``) is
    decomposed once and reused; the null ``h²`` is estimated once.
    """
    if not (isinstance(n_permutations, int) and n_permutations >= 1):
        raise DataError(f"n_permutations must be a positive integer, not {n_permutations!r}")
    pheno = as_phenotypes(y)
    if pheno.values.shape[1] != 1:
        raise DataError("permutation p-values are computed for one phenotype at a time")
    n = pheno.values.shape[0]
    source = align_samples(
        as_genotype_source(G), n, pheno.index, assume_same_order=assume_same_order
    )
    values = source.read(0, source.n_snps)
    table = source.snp_table()
    dec = decompose(K, source if K is None else None, n=n, levels=pheno.index,
                    assume_same_order=assume_same_order)  # fmt: skip
    options = {"progress": False, "assume_same_order": True}
    observed = scan(values, pheno.values[:, 0], X, dec, **options)
    h2 = observed.attrs["null"][next(iter(observed.attrs["null"]))]["h2"]
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(n_permutations):
        shuffled = ArrayGenotypes(values[rng.permutation(n)], table["snp"].to_numpy(),
                                  table["chrom"].to_numpy(), table["pos"].to_numpy())  # fmt: skip
        null.append(scan(shuffled, pheno.values[:, 0], X, dec,
                         h2=h2, **options)["lrt"].to_numpy())  # fmt: skip
    result = ScanResult.of(
        observed.assign(**{c: table[c].to_numpy() for c in ("snp", "chrom", "pos")})
    )
    result["p_empirical"] = empirical_pvalues(result["lrt"], np.concatenate(null))
    result.attrs["n_permutations"] = n_permutations
    return result
