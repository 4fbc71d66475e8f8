"""The hlmm chromosome scan (mixedmodels.variance.chrscan)."""

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genio import read_dosages, standardise
from mixedmodels.variance.chrscan import SCAN_COLUMNS, hlmm_scan, scan_genotypes, write_tsv
from mixedmodels.variance.hlmm import fit_hlmm


@pytest.fixture(scope="module")
def scan(genetics):
    return hlmm_scan(
        genetics.path / "geno.bed", genetics.pheno, "pheno1", mean_covariates=["age", "sex"],
        var_covariates=["sex"], start=10, end=22, progress=False,
    )  # fmt: skip


def test_rows_agree_with_direct_fits(scan, genetics):
    assert list(scan.columns) == SCAN_COLUMNS and len(scan) == 12
    assert scan["snp"].tolist() == genetics.panel.bim["snp"].iloc[10:22].tolist()
    j = 3
    g = read_dosages(genetics.panel, np.s_[10 + j : 11 + j])[:, 0]
    x = (g - g.mean())[:, None]
    ph = genetics.pheno
    y, X, V = ph["pheno1"], genetics.X, np.column_stack([np.ones(len(ph)), ph["sex"]])
    full = fit_hlmm(y, np.hstack([X, x]), np.hstack([V, x]))
    no_mean = fit_hlmm(y, X, np.hstack([V, x]))
    null = fit_hlmm(y, X, V)
    row = scan.iloc[j]
    np.testing.assert_allclose(row["freq"], g.mean() / 2, rtol=1e-12)
    np.testing.assert_allclose(
        [row["mean_effect"], row["mean_se"]], [full.beta[-1], full.beta_se[-1]], rtol=1e-6
    )
    np.testing.assert_allclose(
        [row["var_effect"], row["var_se"]], [full.gamma[-1], full.gamma_se[-1]], rtol=1e-6
    )
    np.testing.assert_allclose(
        row["mean_lrt"], 2 * (full.loglik - no_mean.loglik), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(
        row["joint_lrt"], 2 * (full.loglik - null.loglik), rtol=1e-6, atol=1e-8
    )
    assert scan["converged"].all() and (scan["q_random"] == 0).all()
    assert ((scan["mean_p"] > 0) & (scan["mean_p"] <= 1)).all()


def test_lrt_and_wald_tests_agree_roughly(scan):
    # For a well-behaved likelihood the LRT and the squared Wald z are close (same χ²₁ limit).
    z2 = (scan["mean_effect"] / scan["mean_se"]) ** 2
    np.testing.assert_allclose(scan["mean_lrt"], z2, rtol=0.1, atol=0.05)


def test_window_random_effects(genetics):
    res = hlmm_scan(
        genetics.path / "geno", genetics.pheno, "pheno1", mean_covariates=["age", "sex"],
        start=300, end=303, window_bp=2000, progress=False,
    )  # fmt: skip
    bim = genetics.panel.bim
    j = 301
    near = bim.index[
        (bim["chrom"] == bim["chrom"][j]) & ((bim["pos"] - bim["pos"][j]).abs() <= 2000)
    ]
    usable = [k for k in near if k != j]  # every SNP of the panel passes the filters here
    assert res["q_random"].iloc[1] == len(usable)
    G = standardise(read_dosages(genetics.panel, np.array(usable)))[0] / np.sqrt(len(usable))
    g = read_dosages(genetics.panel, np.s_[j : j + 1])
    full = fit_hlmm(
        genetics.pheno["pheno1"],
        np.hstack([genetics.X, g - g.mean()]),
        np.hstack([np.ones((400, 1)), g - g.mean()]),
        G,
    )
    np.testing.assert_allclose(res["loglik"].iloc[1], full.loglik, rtol=1e-9)


def test_filters_and_missing_genotypes():
    rng = np.random.default_rng(5)
    n = 300
    dosages = rng.binomial(2, 0.3, size=(n, 4)).astype(float)
    dosages[:, 1] = 0.0
    dosages[:, 1][:3] = 1.0  # minor allele frequency 0.005
    dosages[:12, 2] = np.nan  # 4% missing: kept, with those individuals left out
    dosages[:30, 3] = np.nan  # 10% missing: skipped
    y = rng.normal(size=n)
    ones = np.ones((n, 1))
    res = scan_genotypes(y, ones, ones, dosages, min_maf=0.05, max_missing=0.05)
    assert res["n"].tolist()[0] == n and res["n"].tolist()[2] == n - 12
    assert res.loc[[1, 3], "mean_p"].isna().all() and res.loc[[0, 2], "mean_p"].notna().all()
    np.testing.assert_allclose(res["freq"][1], 3 / (2 * n))


def test_bad_requests(genetics, tmp_path):
    with pytest.raises(DataError, match="empty or outside"):
        hlmm_scan(
            genetics.path / "geno.bed", genetics.pheno, "pheno1", start=5, end=5, progress=False
        )
    with pytest.raises(DataError, match="not in the phenotype file"):
        hlmm_scan(genetics.path / "geno.bed", genetics.pheno, "nothing", progress=False)
    other = genetics.pheno.assign(iid="x" + genetics.pheno["iid"])
    with pytest.raises(DataError, match="fam file"):
        hlmm_scan(genetics.path / "geno.bed", other, "pheno1", end=2, progress=False)


def test_tsv_round_trip(scan, tmp_path):
    path = write_tsv(scan, tmp_path / "scan.tsv")
    back = pd.read_csv(path, sep="\t", dtype={"chrom": str})
    assert list(back.columns) == SCAN_COLUMNS
    np.testing.assert_allclose(back["mean_p"], scan["mean_p"], rtol=1e-7)


def test_individuals_without_phenotype_are_left_out(genetics):
    pheno = genetics.pheno.copy()
    pheno.loc[:9, "pheno1"] = np.nan
    res = hlmm_scan(
        genetics.path / "geno.bed", pheno.iloc[::-1], "pheno1", start=0, end=2, progress=False
    )
    assert (res["n"] == 390).all()
    direct = scan_genotypes(
        genetics.pheno["pheno1"][10:],
        np.ones((390, 1)),
        np.ones((390, 1)),
        read_dosages(genetics.panel, np.s_[:2])[10:],
    )
    np.testing.assert_allclose(res["loglik"], direct["loglik"], rtol=1e-10)


def test_snp_collinear_with_a_covariate_gets_nan():
    rng = np.random.default_rng(8)
    n = 200
    dosages = rng.binomial(2, 0.4, size=(n, 2)).astype(float)
    X = np.column_stack([np.ones(n), dosages[:, 1]])  # the second SNP is also a covariate
    res = scan_genotypes(rng.normal(size=n), X, np.ones((n, 1)), dosages)
    assert res["mean_p"].notna().tolist() == [True, False]
    assert res["converged"].tolist() == [True, False] and res["n"].tolist() == [n, n]
