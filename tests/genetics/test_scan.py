"""Association scans: reference LRTs, dense checks of every statistic, modes and options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import chi2

from mixedmodels.errors import DataError
from mixedmodels.genetics import (
    eigh_kinship,
    genomic_inflation,
    kinship,
    read_plink,
    scan,
    svd_genotypes,
)

from .conftest import dense_fit, random_panel

pytestmark = pytest.mark.filterwarnings("ignore:dropped .* monomorphic")


@pytest.fixture(scope="module")
def reference_scan(panel, decomposition, reference):
    match, X = panel
    h2 = reference["scan_pheno1"]["h2_null"]
    return scan(match.genotypes, match.phenotypes["pheno1"], X, decomposition, h2=h2)


def test_lrt_matches_reference_at_its_h2(reference_scan, reference):
    # geno_kernel.json scan_pheno1: every LRT within 1e-6 absolute.
    ref = reference["scan_pheno1"]
    assert list(reference_scan["snp"]) == ref["snp"]
    assert reference_scan.attrs["basis"] == "whitening"  # 2,000 SNPs > 2 × 400 individuals
    assert np.abs(reference_scan["lrt"] - ref["lrt"]).max() < 1e-6
    np.testing.assert_allclose(reference_scan["beta"], ref["effect"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(reference_scan["p_lrt"], ref["p"], rtol=1e-5, atol=1e-9)
    null = reference_scan.attrs["null"]["pheno1"]
    assert abs(null["loglik_ml"] - ref["loglik_null_ml"]) < 1e-6 * abs(ref["loglik_null_ml"])


def test_default_scan_estimates_the_reference_null(panel, decomposition, reference):
    ref = reference["scan_pheno1"]
    match, X = panel
    results = scan(match.genotypes, match.phenotypes["pheno1"], X, decomposition, chunk_size=700)
    assert abs(results.attrs["null"]["pheno1"]["h2"] - ref["h2_null"]) < 1e-4
    assert np.abs(results["lrt"] - ref["lrt"]).max() < 1e-6
    assert (results["h2"] == results.attrs["null"]["pheno1"]["h2"]).all()


def _dense_tests(y, X, K, h2, snp_columns, q0):
    """LRT and Wald of the last columns of each SNP's block, by the dense formulas (ML)."""
    out = []
    for C in snp_columns:
        alt = dense_fit(y, np.column_stack([X, C]), K, h2, reml=False)
        null = dense_fit(y, np.column_stack([X, C[:, :q0]]), K, h2, reml=False)
        tested = slice(X.shape[1] + q0, None)
        gamma = alt["beta"][tested]
        wald = gamma @ np.linalg.solve(alt["cov"][tested, tested], gamma)
        out.append((2 * (alt["loglik"] - null["loglik"]), wald, alt["beta"][X.shape[1] :]))
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 40), low_rank=st.booleans())
def test_statistics_equal_dense_with_missing_genotypes(seed, n, low_rank):
    rng = np.random.default_rng(seed)
    G = random_panel(rng, n, 15, missing=0.1)
    G[:, 0] = np.arange(n) % 3
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n) + 0.5 * np.nan_to_num(G[:, 0])
    kin = G[:, : n // 2] if low_rank else G
    dec = svd_genotypes(kin) if low_rank else eigh_kinship(kinship(kin))
    h2 = float(rng.uniform(0, 0.9))
    results = scan(G, y, X, dec, h2=h2, chunk_size=4)
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    testable = np.flatnonzero(results["lrt"].notna())
    assert 0 in testable
    dense = _dense_tests(y, X, dec.kinship(), h2, [filled[:, [j]] for j in testable], 0)
    for j, (lrt, wald, beta) in zip(testable, dense):
        assert abs(results["lrt"][j] - lrt) < 1e-7 * max(1, lrt)
        assert abs(results["wald"][j] - wald) < 1e-7 * max(1, wald)
        assert abs(results["beta"][j] - beta[0]) < 1e-7 * max(1, abs(beta[0]))
    np.testing.assert_allclose(results["p_lrt"], chi2.sf(results["lrt"], 1))


def test_untestable_snps_give_nan(panel, decomposition):
    match, X = panel
    G = match.genotypes.read(0, 4)
    G[:, 1] = 1.0  # monomorphic
    G[:, 2] = np.nan  # never called
    G[:, 3] = X["sex"].to_numpy()  # collinear with a covariate
    results = scan(G, match.phenotypes["pheno1"], X, decomposition, h2=0.5, assume_same_order=True)
    assert results["lrt"].notna().tolist() == [True, False, False, False]
    assert results["beta"].notna().tolist() == [True, False, False, False]


def test_interaction_scan_equals_dense():
    rng = np.random.default_rng(8)
    n = 60
    G = random_panel(rng, n, 6, missing=0.05)
    env = rng.binomial(1, 0.5, size=n).astype(float)
    X = pd.DataFrame({"(Intercept)": 1.0, "env": env})
    y = rng.normal(size=n) + env * np.nan_to_num(G[:, 0])
    dec = eigh_kinship(kinship(G))
    results = scan(G, y, X, dec, h2=0.3, interaction="env")
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    blocks = [np.column_stack([filled[:, j], filled[:, j] * env]) for j in range(6)]
    dense = _dense_tests(y, X.to_numpy(), dec.kinship(), 0.3, blocks, q0=1)
    for j, (lrt, wald, beta) in enumerate(dense):
        assert abs(results["lrt"][j] - lrt) < 1e-8 * max(1, lrt)
        assert abs(results["wald"][j] - wald) < 1e-8 * max(1, wald)
        np.testing.assert_allclose(results.loc[j, ["beta_snp", "beta_snp:env"]], beta, rtol=1e-8)
    assert (results["df"] == 1).all()
    # Values of E instead of a column name: added to X, same answers.
    as_values = scan(G, y, np.ones((n, 1)), dec, h2=0.3, interaction=pd.Series(env, name="env"))
    np.testing.assert_allclose(as_values["lrt"], results["lrt"], rtol=1e-10)


def test_whitened_blocks_equal_dense():
    # More SNPs than 2n, one phenotype, full-rank K: the scan whitens instead of rotating.
    rng = np.random.default_rng(12)
    n, m = 20, 45
    G = random_panel(rng, n, m, missing=0.1)
    env = rng.normal(size=n)
    y = rng.normal(size=n)
    dec = eigh_kinship(kinship(G))
    X = np.column_stack([np.ones(n), env])
    E = pd.Series(env, name="env").to_frame()  # given as values: added to X
    results = scan(G, y, np.ones((n, 1)), dec, h2=0.4, interaction=E)
    plain = scan(G, y, X, dec, h2=0.4)
    assert results.attrs["basis"] == plain.attrs["basis"] == "whitening"
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    K = dec.kinship()
    testable = np.flatnonzero(plain["lrt"].notna())[:8]
    gxe = _dense_tests(
        y, X, K, 0.4, [np.column_stack([filled[:, j], filled[:, j] * env]) for j in testable], 1
    )
    main = _dense_tests(y, X, K, 0.4, [filled[:, [j]] for j in testable], 0)
    for j, (lrt, wald, _), (lrt1, wald1, _) in zip(testable, gxe, main):
        assert abs(results["lrt"][j] - lrt) < 1e-8 * max(1, lrt)
        assert abs(results["wald"][j] - wald) < 1e-8 * max(1, wald)
        assert abs(plain["lrt"][j] - lrt1) < 1e-8 * max(1, lrt1)
        assert abs(plain["wald"][j] - wald1) < 1e-8 * max(1, wald1)


def test_two_environments_give_two_degrees_of_freedom():
    rng = np.random.default_rng(9)
    n = 50
    G = random_panel(rng, n, 3)
    E = rng.normal(size=(n, 2))
    results = scan(G, rng.normal(size=n), None, eigh_kinship(kinship(G)), h2=0.2, interaction=E)
    assert {"beta_snp:E0", "se_snp:E1"} <= set(results.columns) and (results["df"] == 2).all()
    np.testing.assert_allclose(results["p_lrt"], chi2.sf(results["lrt"], 2))


def _dense_ml_max(y, X, K):
    """Maximum of the dense ML log-likelihood over h² in [0, 1], ends included."""

    def loglik(h2):
        return dense_fit(y, X, K, h2, reml=False)["loglik"]

    found = minimize_scalar(
        lambda h: -loglik(h), bounds=(0, 1), method="bounded", options={"xatol": 1e-10}
    )
    return max(-found.fun, loglik(0.0), loglik(1.0))


def test_reestimated_h2_per_snp_equals_dense_maximisation():
    rng = np.random.default_rng(2)
    n = 40
    G = random_panel(rng, n, 3)
    B = rng.normal(size=(n, 100))
    K = B @ B.T / 100  # positive definite and not centred: the ML likelihood is bounded
    X = np.ones((n, 1))
    y = rng.multivariate_normal(np.zeros(n), 0.3 * K + 0.7 * np.eye(n)) + 0.4 * G[:, 1]
    results = scan(G, y, X, K, reestimate=True)
    assert (results["h2"].between(0.01, 0.99)).sum() >= 2  # interior maxima: a real search
    null = _dense_ml_max(y, X, K)
    for j in range(3):
        alt = _dense_ml_max(y, np.column_stack([X, G[:, j]]), K)
        assert abs(results["lrt"][j] - 2 * (alt - null)) < 1e-5
    assert results["h2"].nunique() == 3  # one estimate per SNP


def test_reestimated_interaction_equals_dense_maximisation():
    rng = np.random.default_rng(6)
    n = 40
    G = random_panel(rng, n, 2)
    B = rng.normal(size=(n, 100))
    K = B @ B.T / 100
    env = rng.normal(size=n)
    y = rng.multivariate_normal(np.zeros(n), 0.3 * K + 0.7 * np.eye(n)) + 0.5 * G[:, 0] * env
    results = scan(G, y, np.ones((n, 1)), K, reestimate=True, interaction=env)
    X = np.column_stack([np.ones(n), env])
    for j in range(2):
        null = _dense_ml_max(y, np.column_stack([X, G[:, j]]), K)
        alt = _dense_ml_max(y, np.column_stack([X, G[:, j], G[:, j] * env]), K)
        assert abs(results["lrt"][j] - 2 * (alt - null)) < 1e-5


def test_several_phenotypes_and_chunking(panel, decomposition, reference_scan):
    match, X = panel
    h2 = reference_scan.attrs["null"]["pheno1"]["h2"]
    both = scan(
        match.genotypes.read(0, 50),
        match.phenotypes[["pheno1", "pheno2"]],
        X,
        decomposition,
        h2=[h2, 0.1],
        chunk_size=13,
        assume_same_order=True,
    )
    assert list(pd.unique(both["phenotype"])) == ["pheno1", "pheno2"] and len(both) == 100
    assert both.attrs["basis"] == "rotation"  # two phenotypes share one rotation
    first = both[both["phenotype"] == "pheno1"].reset_index(drop=True)
    np.testing.assert_allclose(first["lrt"], reference_scan["lrt"][:50], rtol=1e-10, atol=1e-12)
    alone = scan(
        match.genotypes.read(0, 50),
        match.phenotypes["pheno2"],
        X,
        decomposition,
        h2=0.1,
        assume_same_order=True,
    )
    second = both[both["phenotype"] == "pheno2"].reset_index(drop=True)
    np.testing.assert_allclose(second["lrt"], alone["lrt"], rtol=1e-10, atol=1e-12)


def test_result_columns(reference_scan):
    expected = [
        "phenotype",
        "snp",
        "chrom",
        "pos",
        "allele_1",
        "allele_2",
        "af",
        "h2",
        "beta",
        "se",
    ]
    assert list(reference_scan.columns[:10]) == expected
    assert {"wald", "p_wald", "lrt", "p_lrt"} <= set(reference_scan.columns)
    # For a single SNP effect the Wald and LR statistics are close.
    ratio = reference_scan["wald"] / reference_scan["lrt"]
    assert ratio.between(0.99, 1.05).all()


def test_genomic_inflation():
    rng = np.random.default_rng(0)
    assert abs(genomic_inflation(rng.uniform(size=20000)) - 1) < 0.05
    inflated = chi2.sf(2 * chi2.rvs(1, size=20000, random_state=rng), 1)
    assert abs(genomic_inflation(np.r_[inflated, np.nan]) - 2) < 0.1
    with pytest.raises(DataError, match="no finite p-value"):
        genomic_inflation([np.nan])


def test_scan_errors(panel, decomposition):
    match, X = panel
    data = match.genotypes
    y = match.phenotypes["pheno1"]
    with pytest.raises(
        DataError, match="decomposition describes 400 individuals, the phenotype 399"
    ):
        scan(data, y.iloc[:399], None, decomposition)
    with pytest.raises(DataError, match="labelled by sample ID but the genotypes carry none"):
        scan(data.read(0, 5), y, None, decomposition)
    with pytest.raises(DataError, match="h2 must lie in"):
        scan(data, y, X, decomposition, h2=np.nan)
    with pytest.raises(DataError, match="no SNP to test"):
        scan(data.read(0, 0), y, X, decomposition, assume_same_order=True)
    with pytest.raises(DataError, match="no columns"):
        scan(data, match.phenotypes[[]], X, decomposition)
    with pytest.raises(DataError, match="scheduler must be 'threads'.*not 'thread'"):
        scan(data, y, X, decomposition, scheduler="thread")
    with pytest.raises(DataError, match="either a fixed h2 or reestimate"):
        scan(data, y, X, decomposition, h2=0.5, reestimate=True)
    with pytest.raises(DataError, match=r"interaction column\(s\) \['smoker'\]"):
        scan(data, y, X, decomposition, interaction="smoker")
    with pytest.raises(DataError, match="h2 must lie in"):
        scan(data, y, X, decomposition, h2=1.5)
    with pytest.raises(DataError, match="chunk size"):
        scan(data, y, X, decomposition, chunk_size=0)


def test_plink_source_and_kinship_default(panel):
    match, X = panel
    one = read_plink(match.genotypes.bed)
    results = scan(one, match.phenotypes["pheno2"].to_numpy(), X.to_numpy(), chunk_size=1000)
    assert len(results) == 2000 and results["lrt"].notna().all()


def test_mixed_precision_plink_counts_equal_float_genotypes(panel):
    match, X = panel
    plink = match.genotypes
    dense = plink.read()
    dec = eigh_kinship(kinship(dense))
    y = match.phenotypes["pheno2"].to_numpy()
    # A PLINK source is read as int8 counts, an array goes through the float path.
    assert plink.read_counts(0, 3).dtype == np.int8
    from_counts = scan(plink, y, X.to_numpy(), dec, h2=0.3, precision="mixed", chunk_size=700)
    from_floats = scan(dense, y, X.to_numpy(), dec, h2=0.3, precision="mixed", chunk_size=700)
    for column in ("af", "beta", "se", "p_lrt", "p_wald"):
        np.testing.assert_allclose(from_counts[column], from_floats[column], rtol=1e-10)


def _mixed_setting(seed, n=300, m=700):
    rng = np.random.default_rng(seed)
    G = random_panel(rng, n, m, missing=0.03)
    G[:, 3] = 1.0  # monomorphic
    dec = eigh_kinship(kinship(G))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    signal = np.nan_to_num(G[:, :5]) @ [0.6, 0.4, 0.3, 0.0, 0.25]
    y = X @ [1.0, 0.2] + signal + rng.normal(size=n)
    return G, y, X, dec, rng


def test_mixed_precision_agrees_with_double(monkeypatch):
    from importlib import import_module

    REFINE_STATISTIC = 10.0  # lower than the default (24), so that some SNPs are redone
    monkeypatch.setattr(import_module("mixedmodels.genetics.scan"), "REFINE_STATISTIC", 10.0)
    G, y, X, dec, _ = _mixed_setting(31)
    double = scan(G, y, X, dec, h2=0.35, precision="double", chunk_size=256)
    mixed = scan(G, y, X, dec, h2=0.35, precision="mixed", chunk_size=256)
    assert double.attrs["basis"] == "whitening" and mixed.attrs["basis"] == "mixedwhitening"
    assert mixed["lrt"].isna().tolist() == double["lrt"].isna().tolist()
    assert double["lrt"].isna().sum() == 1
    for column in ("p_lrt", "p_wald", "p_wald_f", "beta", "se"):
        np.testing.assert_allclose(mixed[column], double[column], rtol=1e-6)
    # Large statistics are recomputed in double precision: agreement to rounding.
    large = double["lrt"] > REFINE_STATISTIC
    assert large.sum() >= 2
    np.testing.assert_allclose(mixed["lrt"][large], double["lrt"][large], rtol=1e-11)
    np.testing.assert_allclose(mixed["p_wald"][large], double["p_wald"][large], rtol=1e-10)
    # The rest carry the float32 rounding, so they are not identical.
    assert (mixed["lrt"][~large] != double["lrt"][~large]).any()


def test_mixed_precision_interaction_agrees_with_double():
    G, y, X, dec, rng = _mixed_setting(32, m=200)
    env = rng.normal(size=len(y))
    double = scan(G, y, X, dec, h2=0.35, interaction=env, precision="double")
    mixed = scan(G, y, X, dec, h2=0.35, interaction=env, precision="mixed")
    for column in ("p_lrt", "p_wald", "beta_snp", "beta_snp:E0"):
        np.testing.assert_allclose(mixed[column], double[column], rtol=1e-5)


def test_precision_choice(monkeypatch):
    import importlib

    scan_module = importlib.import_module(
        "mixedmodels.genetics.scan"
    )  # the package exports a function of that name
    G, y, X, dec, _ = _mixed_setting(33, n=120, m=300)
    assert scan(G, y, X, dec, h2=0.3).attrs["basis"] == "whitening"  # n < MIXED_MIN_N
    monkeypatch.setattr(scan_module, "MIXED_MIN_N", 100)
    assert scan(G, y, X, dec, h2=0.3).attrs["basis"] == "mixedwhitening"
    env = np.linspace(-1, 1, len(y))
    assert scan(G, y, X, dec, h2=0.3, interaction=env).attrs["basis"] == "whitening"
    assert scan(G[:, :100], y, X, dec, h2=0.3).attrs["basis"] == "rotation"  # few SNPs
    with pytest.raises(DataError, match="precision='mixed' needs one phenotype"):
        scan(G, np.column_stack([y, y[::-1]]), X, dec, h2=0.3, precision="mixed")
    with pytest.raises(DataError, match="precision must be one of"):
        scan(G, y, X, dec, precision="single")
