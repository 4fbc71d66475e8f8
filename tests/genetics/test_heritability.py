"""Heritability by REML/ML: reference values, boundaries, the ML singularity, API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import (
    HeritabilityResults,
    eigh_kinship,
    heritability,
    kinship,
    loglik_curve,
    svd_genotypes,
)

from .conftest import dense_fit, random_panel


@pytest.fixture(scope="module")
def fits(panel, decomposition):
    match, X = panel
    return heritability(match.phenotypes[["pheno1", "pheno2"]], X, decomposition)


@pytest.mark.parametrize("name", ["pheno1", "pheno2"])
def test_reml_matches_reference(fits, reference, name):
    # geno_kernel.json: h² within 1e-4, log-likelihood within 1e-6 relative.
    ref, fit = reference[name]["reml"], fits[name]
    assert reference[name]["covariates"] == list(fit.beta.index)
    assert abs(fit.h2 - ref["h2"]) < 1e-4
    assert abs(fit.loglik - ref["loglik"]) < 1e-6 * abs(ref["loglik"])
    np.testing.assert_allclose(fit.beta, ref["beta"], rtol=1e-4)
    for key in ("sigma2_g", "sigma2_e", "total_variance"):
        np.testing.assert_allclose(getattr(fit, key), ref[key], rtol=1e-4)
    assert fit.boundary is None and fit.reml


def test_reml_estimate_is_a_maximum(fits, panel, decomposition):
    match, X = panel
    fit = fits["pheno1"]
    K = decomposition.kinship()
    y = match.phenotypes["pheno1"].to_numpy()
    at = dense_fit(y, X.to_numpy(), K, fit.h2, reml=True)
    assert abs(at["loglik"] - fit.loglik) < 1e-8
    for h2 in (fit.h2 - 1e-3, fit.h2 + 1e-3):
        assert dense_fit(y, X.to_numpy(), K, h2, reml=True)["loglik"] < fit.loglik
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(at["cov"])), rtol=1e-7)


@pytest.mark.parametrize("name", ["pheno1", "pheno2"])
def test_ml_curve_matches_reference(panel, decomposition, reference, name):
    match, X = panel
    grid = reference[name]["loglik_grid"]
    curve = loglik_curve(match.phenotypes[name], X, decomposition, h2=grid["h2"])
    np.testing.assert_allclose(curve[name], grid["ml"], rtol=1e-6)
    default = loglik_curve(match.phenotypes[name], X, decomposition)
    np.testing.assert_allclose(default.index, grid["h2"])  # calcLL's 0, 0.1, ..., 0.9


def test_zero_heritability_is_reported_on_the_boundary():
    rng = np.random.default_rng(11)
    dec = eigh_kinship(kinship(random_panel(rng, 200, 300)))
    # Less variance along K's leading directions than elsewhere: the likelihood
    # decreases from h² = 0, so the estimate must sit exactly on the boundary.
    y = dec.U @ (rng.normal(size=200) / np.sqrt(1 + 3 * dec.S))
    fit = heritability(y, None, dec)
    assert fit.h2 == 0.0 and fit.boundary == "lower"
    assert "on the lower boundary" in repr(fit)
    K = dec.kinship()
    ones = np.ones((200, 1))
    assert abs(dense_fit(y, ones, K, 0.0, True)["loglik"] - fit.loglik) < 1e-8
    assert dense_fit(y, ones, K, 1e-4, True)["loglik"] < fit.loglik
    assert fit.sigma2_g == 0.0 and fit.sigma2_e > 0


def test_ml_with_centred_kinship_warns_and_stays_interior(panel, decomposition):
    match, X = panel
    with pytest.warns(UserWarning, match="increases towards h² = 1.*interior local maximum"):
        fit = heritability(match.phenotypes["pheno1"], X, decomposition, reml=False)
    assert 0.6 < fit.h2 < 0.8 and fit.boundary is None
    # It is the maximum of the reference's ML grid's neighbourhood (0.7 is its best point).
    grid = loglik_curve(match.phenotypes["pheno1"], X, decomposition, h2=[0.65, 0.7, 0.75])
    assert fit.loglik >= grid["pheno1"].max()


def test_eigen_and_low_rank_paths_agree():
    rng = np.random.default_rng(4)
    G = random_panel(rng, 120, 40)
    X = np.column_stack([np.ones(120), rng.normal(size=120)])
    Zs = (G - G.mean(0)) / G.std(0)
    y = X @ [1.0, 0.5] + Zs @ rng.normal(scale=0.15, size=40) + rng.normal(size=120)
    full = heritability(y, X, eigh_kinship(kinship(G)))
    low = heritability(y, X, svd_genotypes(G))
    via_G = heritability(y, X, G=G)
    for other in (low, via_G):
        assert abs(other.h2 - full.h2) < 1e-8
        assert abs(other.loglik - full.loglik) < 1e-8
        np.testing.assert_allclose(other.beta, full.beta, rtol=1e-8)


def test_several_phenotypes_equal_one_at_a_time(fits, panel, decomposition):
    match, X = panel
    assert isinstance(fits, HeritabilityResults) and len(fits) == 2
    single = heritability(match.phenotypes["pheno2"], X, decomposition)
    assert single.phenotype == "pheno2" and abs(single.h2 - fits[1].h2) < 1e-12
    frame = fits.to_frame()
    assert list(frame.index) == ["pheno1", "pheno2"]
    assert {"h2", "sigma2_g", "beta[age]", "se[sex]", "boundary"} <= set(frame.columns)
    assert "pheno1" in repr(fits) and "h2" in repr(fits)


def test_labelled_kinship_is_aligned_to_phenotype_ids(panel, genotypes):
    match, X = panel
    ids = match.phenotypes.index
    K = pd.DataFrame(kinship(genotypes), index=ids, columns=ids)
    shuffled = K.iloc[::-1, ::-1]
    a = heritability(match.phenotypes["pheno2"], X, K)
    b = heritability(match.phenotypes["pheno2"], X, shuffled)
    assert abs(a.h2 - b.h2) < 1e-10


def test_input_errors(panel, decomposition):
    match, X = panel
    y = match.phenotypes["pheno1"].to_numpy().copy()
    y[[3, 7]] = np.nan
    with pytest.raises(DataError, match="2 missing or infinite value.*rows 3, 7"):
        heritability(y, X.to_numpy(), decomposition)
    collinear = X.assign(twice_age=2 * X["age"])
    with pytest.raises(DataError, match="linearly dependent.*: 'twice_age' is a combination"):
        heritability(match.phenotypes["pheno1"], collinear, decomposition)
    with pytest.raises(DataError, match="constant"):
        heritability(np.ones(400), None, decomposition)
    with pytest.raises(DataError, match="X has 10 rows"):
        heritability(match.phenotypes["pheno1"].to_numpy(), np.ones((10, 1)), decomposition)
    with pytest.raises(DataError, match="singular at h2 = 1"):
        loglik_curve(match.phenotypes["pheno1"], X, decomposition, h2=[0.5, 1.0])


def test_search_is_recorded_in_an_optsummary(fits):
    fit = fits["pheno1"]
    opt = fit.optsum
    assert opt.optimizer == "brent" and opt.fitted
    assert opt.final[0] == fit.h2
    assert opt.fmin == pytest.approx(-2 * fit.loglik, rel=1e-14)
    assert opt.fmin == min(f for _, f in opt.fitlog)  # the best evaluation is the estimate
    assert opt.feval == len(opt.fitlog) > 101  # the grid, then the refinement
    assert opt.returnvalue == "XTOL_REACHED"
    np.testing.assert_array_equal(opt.fitlog[0][0], [0.0])


def test_three_engines_fit_the_same_kinship_model(panel, genotypes):
    """genetics.heritability, LinearMixedModel(covariance=) and vardec: one REML optimum."""
    import mixedmodels as mm
    from mixedmodels.variance import vardec

    match, X = panel
    ids = match.phenotypes.index
    K = pd.DataFrame(kinship(genotypes), index=ids, columns=ids)
    fast = heritability(match.phenotypes["pheno1"], X, K)
    data = match.phenotypes.reset_index()
    lmm = mm.LinearMixedModel(
        "pheno1 ~ 1 + age + sex + (1|iid)", data, reml=True, covariance={"iid": K}
    ).fit()
    dec = vardec(match.phenotypes["pheno1"].to_numpy(), X.to_numpy(), {"g": K.to_numpy()})
    assert lmm.objective == pytest.approx(fast.optsum.fmin, rel=1e-6)
    assert -2 * dec.reml_loglik == pytest.approx(fast.optsum.fmin, rel=1e-6)
    theta2 = float(lmm.theta[0]) ** 2
    assert abs(theta2 / (1 + theta2) - fast.h2) < 1e-6
    assert abs(dec.fractions[0] - fast.h2) < 1e-6
    np.testing.assert_allclose(lmm.beta, fast.beta.to_numpy(), rtol=1e-6)


def test_labelled_phenotype_is_paired_by_id_or_refused(panel, genotypes):
    """Issue 19: a reordered labelled phenotype with an unlabelled K paired the wrong individuals."""
    match, X = panel
    y = match.phenotypes["pheno1"]
    right = heritability(y, X, G=match.genotypes)  # PLINK IDs against phenotype IDs
    shuffled = np.random.default_rng(1).permutation(len(y))
    y_shuffled, X_shuffled = y.iloc[shuffled], X.iloc[shuffled]
    K_plain = kinship(genotypes)  # an array: no IDs
    with pytest.raises(DataError, match="labelled by sample ID but the kinship K carries none"):
        heritability(y_shuffled, X_shuffled, K_plain)
    labelled = kinship(match.genotypes)
    assert isinstance(labelled, pd.DataFrame)
    for K in (labelled, eigh_kinship(labelled)):
        again = heritability(y_shuffled, X_shuffled, K)
        assert abs(again.h2 - right.h2) < 1e-8 and abs(again.loglik - right.loglik) < 1e-8
    again = heritability(y_shuffled, X_shuffled, G=match.genotypes)
    assert abs(again.h2 - right.h2) < 1e-8
    # Saying the order is the same pairs by position (here rightly, for the unshuffled rows).
    same = heritability(y, X, K_plain, assume_same_order=True)
    assert abs(same.h2 - right.h2) < 1e-8
    unlabelled = heritability(y.to_numpy(), X.to_numpy(), K_plain)  # arrays: by position
    assert abs(unlabelled.h2 - right.h2) < 1e-8


def test_zero_kinship_is_refused():
    rng = np.random.default_rng(3)
    y = rng.normal(size=30)
    with pytest.raises(DataError, match="kinship matrix is zero.*h² is not identified"):
        heritability(y, None, np.zeros((30, 30)))


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_extreme_kinship_scale_gives_the_unscaled_likelihood(panel, genotypes, scale):
    match, X = panel
    y, Xv = match.phenotypes["pheno2"].to_numpy(), X.to_numpy()
    K = kinship(genotypes)
    plain = heritability(y, Xv, K)
    with pytest.warns(UserWarning, match="mean diagonal is .*divided by that"):
        scaled = heritability(y, Xv, K * scale)
    assert abs(scaled.loglik - plain.loglik) < 1e-8 * abs(plain.loglik)
    assert abs(scaled.h2 - plain.h2) < 1e-8
