"""QC, LD pruning and PCA against direct numpy computations of PLINK 2's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import (
    ArrayGenotypes,
    LDWindowWarning,
    ld_prune,
    pca,
    qc,
    variant_stats,
)

from .conftest import random_panel


def test_variant_stats_on_the_bundled_panel(panel, genotypes):
    stats = variant_stats(panel[0].genotypes)
    observed = ~np.isnan(genotypes)
    af = np.nansum(genotypes, axis=0) / (2 * observed.sum(axis=0))
    np.testing.assert_allclose(stats["af"], af, rtol=1e-12)
    np.testing.assert_allclose(stats["maf"], np.minimum(af, 1 - af), rtol=1e-12)
    np.testing.assert_allclose(stats["missing"], 1 - observed.mean(axis=0), atol=1e-15)


def test_qc_removes_and_records(panel, genotypes):
    geno = panel[0].genotypes
    stats = variant_stats(geno)
    maf_cut = float(np.quantile(stats["maf"], 0.2))
    kept = qc(geno, min_maf=maf_cut, max_missing=0.02)
    expect = (stats["maf"] >= maf_cut) & (stats["missing"] <= 0.02) & (stats["maf"] > 0)
    assert kept.n_snps == int(expect.sum())
    assert list(kept.snp_table()["snp"]) == list(stats.loc[expect, "snp"])
    assert set(kept.notes["snp"]) == set(stats.loc[~expect, "snp"])
    assert kept.notes["reason"].str.contains("MAF|missing|monomorphic").all()
    np.testing.assert_array_equal(kept.read(0, 5), genotypes[:, expect.to_numpy()][:, :5])


def test_qc_removes_duplicates_and_dependent_variants():
    rng = np.random.default_rng(1)
    G = random_panel(rng, 50, 6)
    G = np.column_stack([G, 2 - G[:, 1], G[:, 2]])  # flipped copy of 1, exact copy of 2
    pos = np.array([10, 20, 30, 40, 40, 60, 70, 80])  # 4 repeats 3's position
    source = ArrayGenotypes(G, np.array([f"v{j}" for j in range(8)]), np.full(8, "1"), pos)
    kept = qc(source)
    notes = kept.notes.set_index("snp")["reason"]
    assert notes["v4"] == "same position as v3"
    assert notes["v6"].startswith("dosages dependent on v1")
    assert notes["v7"].startswith("dosages dependent on v2")
    assert list(kept.snp_table()["snp"]) == ["v0", "v1", "v2", "v3", "v5"]


@pytest.mark.parametrize("bad", [{"min_maf": 0.7}, {"max_missing": -1}, {"min_maf": "x"}])
def test_qc_bad_thresholds(bad):
    with pytest.raises(DataError, match=next(iter(bad))):
        qc(np.zeros((3, 2)) + [[0, 1]], **bad)


def _direct_prune(G, chrom, window, r2):
    """The rule of ld_prune written out pair by pair."""
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    sd = filled.std(axis=0)
    keep = sd > 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.corrcoef(filled.T)  # np.corrcoef: the Pearson correlation of the imputed dosages
    for c in np.unique(chrom):
        cols = np.flatnonzero(chrom == c)
        for a, j in enumerate(cols):
            if not keep[j]:
                continue
            for k in cols[a + 1 : a + window]:
                if keep[k] and R[j, k] ** 2 > r2:
                    keep[k] = False
    return keep


def test_ld_prune_equals_the_direct_rule_on_the_bundled_panel(panel, genotypes):
    geno = panel[0].genotypes
    cols = np.r_[0:300, 667:900]  # two chromosomes
    sub = geno[cols]
    keep = ld_prune(sub, window=50, r2=0.01, chunk_size=64)  # the panel's SNPs are unlinked
    direct = _direct_prune(genotypes[:, cols], geno.chrom[cols], 50, 0.01)
    np.testing.assert_array_equal(keep, direct)
    assert 0 < keep.sum() < keep.size


def test_ld_prune_with_ld_blocks_and_missing_calls():
    rng = np.random.default_rng(2)
    base = random_panel(rng, 80, 10, missing=0.05)
    G = np.repeat(base, 4, axis=1)
    G[rng.random(G.shape) < 0.2] = np.nan  # copies differ only in their missing calls
    chrom = np.array(["1"] * 20 + ["2"] * 20)
    source = ArrayGenotypes(G, np.array([f"v{j}" for j in range(40)]), chrom, np.arange(40))
    keep = ld_prune(source, window=10, r2=0.3, chunk_size=7)
    np.testing.assert_array_equal(keep, _direct_prune(G, chrom, 10, 0.3))


def test_ld_window_longer_than_a_chromosome_warns_with_its_name():
    rng = np.random.default_rng(3)
    G = random_panel(rng, 30, 12)
    chrom = np.array(["1"] * 10 + ["22"] * 2)
    source = ArrayGenotypes(G, np.array([f"v{j}" for j in range(12)]), chrom, np.arange(12))
    with pytest.warns(LDWindowWarning, match="22 \\(2 variants\\)"):
        keep = ld_prune(source, window=5, r2=0.2)
    np.testing.assert_array_equal(keep, _direct_prune(G, chrom, 5, 0.2))


@pytest.mark.parametrize("bad", [{"window": 1}, {"r2": 0.0}, {"r2": 1.5}])
def test_ld_prune_bad_arguments(bad):
    with pytest.raises(DataError, match=next(iter(bad))):
        ld_prune(np.ones((3, 3)), **bad)


def test_pca_equals_the_svd_of_standardised_genotypes(panel, genotypes):
    geno = panel[0].genotypes
    pcs = pca(geno[::4], k=4)
    G = genotypes[:, ::4]
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    Z = filled - filled.mean(0)
    sd = Z.std(0)
    Z = Z[:, sd > 0] / sd[sd > 0]
    U, sv, _ = np.linalg.svd(Z, full_matrices=False)
    for j in range(4):
        assert abs(pcs[f"PC{j + 1}"].to_numpy() @ U[:, j]) == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(pcs.attrs["eigenvalues"], sv[:4] ** 2 / Z.shape[1], rtol=1e-8)
    assert list(pcs.index) == list(geno.iid)


def test_pca_bad_k():
    with pytest.raises(DataError, match="k must"):
        pca(np.random.default_rng(0).integers(0, 3, (5, 8)).astype(float), k=5)
