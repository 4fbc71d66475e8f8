"""Genotype input: PLINK file sets and in-memory genotype matrices, shared by genetics and variance.

One package reads genotypes for every model that uses them
(:mod:`mixedmodels.genetics` scans and kinships, :mod:`mixedmodels.variance`'s
hlmm scan): :mod:`.plink` opens ``.bed/.bim/.fam`` lazily (bed-reader decodes
the ``.bed``: ``pip install mixedmodels[genetics]``), :mod:`.bgen` BGEN files
(through cbgen), :mod:`.bimbam` BIMBAM mean-genotype text, :mod:`.genotypes` holds
the chunked :class:`GenotypeSource` interface and the per-SNP imputation and
standardisation, :mod:`.samples` the pairing of rows by sample ID,
:mod:`.tables` phenotype files and :mod:`.options` the command-line
vocabulary of these inputs, shared by every subcommand.  Sources carry their samples' IDs (``iid``).
"""

from mixedmodels.genio.bgen import BgenData, read_bgen, read_sample_file
from mixedmodels.genio.bimbam import read_bimbam
from mixedmodels.genio.genotypes import (
    ArrayGenotypes,
    ConcatenatedSnps,
    GenotypeSource,
    SnpSubset,
    align_samples,
    as_genotype_source,
    chunk_bounds,
    iter_chunks,
    iter_standardised,
    mean_impute,
    select_snps,
    standardise,
)
from mixedmodels.genio.plink import (
    BedBlocks,
    PlinkData,
    SampleMatch,
    match_samples,
    read_dosages,
    read_plink,
)
from mixedmodels.genio.samples import labels_of, positions
from mixedmodels.genio.tables import read_phenotypes

__all__ = [
    "ArrayGenotypes",
    "BedBlocks",
    "BgenData",
    "ConcatenatedSnps",
    "SnpSubset",
    "GenotypeSource",
    "PlinkData",
    "SampleMatch",
    "align_samples",
    "as_genotype_source",
    "chunk_bounds",
    "iter_chunks",
    "iter_standardised",
    "labels_of",
    "match_samples",
    "mean_impute",
    "positions",
    "read_bgen",
    "read_bimbam",
    "read_dosages",
    "read_phenotypes",
    "read_plink",
    "read_sample_file",
    "select_snps",
    "standardise",
]
