"""LOCO scans: each chromosome's SNPs tested with the kinship of the other chromosomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import ArrayGenotypes, kinship, scan
from mixedmodels.genetics.loco import LocoFallbackWarning

from .conftest import dense_kinship, random_panel

pytestmark = pytest.mark.filterwarnings("ignore:dropped .* monomorphic")


@pytest.fixture(scope="module")
def loco_scan(panel):
    match, X = panel
    return scan(match.genotypes, match.phenotypes["pheno1"], X, loco=True, progress=False)


def test_loco_equals_scan_with_the_other_chromosomes_kinship(panel, loco_scan):
    # The definition: chromosome c's rows equal the ordinary scan of c's SNPs with
    # K = kinship(SNPs of the other chromosomes).
    match, X = panel
    geno, y = match.genotypes, match.phenotypes["pheno1"]
    chrom = geno.chrom.astype(str)
    assert set(loco_scan.attrs["loco"]) == {"1", "2", "3"}
    for c in ("1", "2", "3"):
        K = kinship(geno[chrom != c])
        direct = scan(geno[chrom == c], y, X, K, progress=False)
        rows = loco_scan[loco_scan["chrom"].astype(str) == c].reset_index(drop=True)
        assert list(rows["snp"]) == list(direct["snp"])
        np.testing.assert_allclose(rows["lrt"], direct["lrt"], rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(
            np.log10(rows["p_lrt"]), np.log10(direct["p_lrt"]), rtol=0, atol=1e-6
        )
        assert rows["h2"].iloc[0] == pytest.approx(direct["h2"].iloc[0], abs=1e-10)
        assert loco_scan.attrs["null"]["pheno1"][c]["h2"] == pytest.approx(rows["h2"].iloc[0])


def test_loco_keeps_the_source_order(panel, loco_scan):
    assert list(loco_scan["snp"]) == list(panel[0].genotypes.snp)


def test_loco_differs_from_the_single_kinship_scan(panel, loco_scan):
    match, X = panel
    full = scan(match.genotypes, match.phenotypes["pheno1"], X, progress=False)
    assert np.abs(full["lrt"] - loco_scan["lrt"]).max() > 1e-3


def test_loco_on_interleaved_chromosomes_and_arrays():
    rng = np.random.default_rng(4)
    n, m = 60, 90
    G = random_panel(rng, n, m, missing=0.05)
    chrom = np.array(["1", "2", "3"] * 30)  # not contiguous
    source = ArrayGenotypes(G, np.array([f"s{j}" for j in range(m)]), chrom, np.arange(m))
    y = rng.normal(size=n) + np.nan_to_num(G[:, 4])
    result = scan(source, y, loco=True, min_loco_snps=10, progress=False)
    assert list(result["snp"]) == [f"s{j}" for j in range(m)]
    keep = chrom != "2"
    direct = scan(source[chrom == "2"], y, K=dense_kinship(G[:, keep]), progress=False)
    np.testing.assert_allclose(result.loc[chrom == "2", "lrt"], direct["lrt"], rtol=1e-7, atol=1e-8)


def test_single_chromosome_falls_back_with_a_named_warning():
    rng = np.random.default_rng(5)
    G = random_panel(rng, 40, 30)
    y = rng.normal(size=40)
    with pytest.warns(LocoFallbackWarning, match="chromosome.*NA"):
        result = scan(G, y, loco=True, progress=False)
    full = scan(G, y, progress=False)
    np.testing.assert_allclose(result["lrt"], full["lrt"], rtol=1e-7, atol=1e-8)
    assert result.attrs["loco"] == {"NA": False}


def test_loco_with_k_is_refused(panel):
    match, X = panel
    with pytest.raises(DataError, match="loco"):
        scan(match.genotypes, match.phenotypes["pheno1"], X, np.eye(match.n), loco=True)


def test_pcs_as_covariates_are_aligned_by_id(panel):
    match, X = panel
    y = match.phenotypes["pheno1"]
    pcs = pd.DataFrame({"PC1": np.random.default_rng(0).normal(size=match.n)}, index=y.index)
    shuffled = pcs.iloc[::-1]
    a = scan(match.genotypes[:50], y, X, covariates=pcs, progress=False)
    b = scan(match.genotypes[:50], y, X, covariates=shuffled, progress=False)
    np.testing.assert_allclose(a["lrt"], b["lrt"])
    plain = scan(match.genotypes[:50], y, X, progress=False)
    assert np.abs(a["lrt"] - plain["lrt"]).max() > 1e-6


def test_p_wald_f_is_fastlmm_wald_on_an_f_distribution():
    # single_snp: F = γ² / (s² [(C'V⁻¹C)⁻¹]_γγ) with s² = RSS/(n - p - 1), on F(1, n - p - 1).
    from scipy.stats import f

    from .conftest import dense_fit

    rng = np.random.default_rng(8)
    n = 30
    G = random_panel(rng, n, 6)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n) + G[:, 0]
    K = dense_kinship(G)
    result = scan(G, y, X, K, h2=0.3, progress=False)
    for j in range(6):
        C = np.column_stack([X, G[:, j] - G[:, j].mean()])
        fit = dense_fit(y, C, K, 0.3, reml=False)
        s2 = fit["s2"] * n / (n - 3)
        cov = fit["cov"] / fit["s2"] * s2
        F = fit["beta"][-1] ** 2 / cov[-1, -1]
        assert result["p_wald_f"][j] == pytest.approx(f.sf(F, 1, n - 3), rel=1e-8)
