"""Genotype input: PLINK file sets and in-memory genotype matrices, shared by genetics and variance.

One package reads genotypes for every model that uses them
(:mod:`mixedmodels.genetics` scans and kinships, :mod:`mixedmodels.variance`'s
hlmm scan): :mod:`.plink` opens ``.bed/.bim/.fam`` lazily (bed-reader decodes
the ``.bed``: ``pip install mixedmodels[genetics]``), :mod:`.genotypes` holds
the chunked :class:`GenotypeSource` interface and the per-SNP imputation and
standardisation, :mod:`.samples` the pairing of rows by sample ID,
:mod:`.tables` phenotype files and :mod:`.options` the command-line
vocabulary of these inputs, shared by every subcommand.  Sources carry their samples' IDs (``iid``).
"""

from mixedmodels.genio.genotypes import (
    ArrayGenotypes,
    GenotypeSource,
    align_samples,
    as_genotype_source,
    chunk_bounds,
    iter_chunks,
    iter_standardised,
    mean_impute,
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
    "read_dosages",
    "read_phenotypes",
    "read_plink",
    "standardise",
]
