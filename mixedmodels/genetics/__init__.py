"""Genetic models: kinship, SNP heritability and association scans (FaST-LMM / limix style).

Model: ``y = Xβ + g + e`` with ``g ~ N(0, σg² K)``, ``e ~ N(0, σe² I)`` and a
known kinship ``K``.  See ``docs/genetics.md`` for the algebra and examples.
"""

from mixedmodels.genetics.decomposition import Decomposition, eigh_kinship, svd_genotypes
from mixedmodels.genetics.heritability import (
    HeritabilityResult,
    HeritabilityResults,
    loglik_curve,
)
from mixedmodels.genetics.kinship import check_kinship, kinship
from mixedmodels.genetics.latent import (
    LatentHeritability,
    latent_heritability,
    threshold_heritability,
)
from mixedmodels.genetics.loco import LocoFallbackWarning
from mixedmodels.genetics.multitest import (
    adjust_pvalues,
    chi2_mixture_sf,
    empirical_pvalues,
    genomic_inflation,
)
from mixedmodels.genetics.normalise import boxcox, gower_rescale, quantile_normalise
from mixedmodels.genetics.pca import pca
from mixedmodels.genetics.permutation import permutation_pvalues
from mixedmodels.genetics.phenotypes import covariate_matrix, read_phenotypes
from mixedmodels.genetics.plots import kinship_heatmap, manhattan_plot, qq_plot
from mixedmodels.genetics.qc import LDWindowWarning, ld_prune, qc, variant_stats
from mixedmodels.genetics.results import ScanResult
from mixedmodels.genetics.scan import scan
from mixedmodels.genetics.traits import heritability  # after .heritability: the dispatcher
from mixedmodels.genio.bgen import read_bgen
from mixedmodels.genio.bimbam import read_bimbam
from mixedmodels.genio.genotypes import (
    ArrayGenotypes,
    GenotypeSource,
    SnpSubset,
    mean_impute,
    standardise,
)
from mixedmodels.genio.plink import PlinkData, SampleMatch, match_samples, read_plink
from mixedmodels.variance.vardec import vardec

__all__ = [
    "ArrayGenotypes",
    "Decomposition",
    "GenotypeSource",
    "HeritabilityResult",
    "HeritabilityResults",
    "LDWindowWarning",
    "LatentHeritability",
    "LocoFallbackWarning",
    "PlinkData",
    "SampleMatch",
    "ScanResult",
    "SnpSubset",
    "adjust_pvalues",
    "boxcox",
    "check_kinship",
    "chi2_mixture_sf",
    "empirical_pvalues",
    "covariate_matrix",
    "eigh_kinship",
    "genomic_inflation",
    "gower_rescale",
    "heritability",
    "kinship",
    "kinship_heatmap",
    "latent_heritability",
    "ld_prune",
    "loglik_curve",
    "manhattan_plot",
    "match_samples",
    "mean_impute",
    "pca",
    "permutation_pvalues",
    "qc",
    "qq_plot",
    "quantile_normalise",
    "read_bgen",
    "read_bimbam",
    "read_phenotypes",
    "read_plink",
    "scan",
    "standardise",
    "svd_genotypes",
    "threshold_heritability",
    "variant_stats",
    "vardec",
]
