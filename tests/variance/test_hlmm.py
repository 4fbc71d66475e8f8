"""fit_hlmm: the HLM / HLMM function API."""

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.variance.hlmm import fit_hlmm


def test_hlm_matches_glmmtmb(genetics, reference):
    ref = reference("geno_hlm")
    ph = genetics.pheno
    V = np.column_stack(
        [np.ones(len(ph)), ph["sex"], ph["age"]]
    )  # the reference's dispformula order
    res = fit_hlmm(
        ph["pheno1"], genetics.X, V, x_names=ref["beta_names"], v_names=ref["disp_names"]
    )
    np.testing.assert_allclose(res.objective, ref["objective"], rtol=1e-6)
    np.testing.assert_allclose(res.beta, ref["beta"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.gamma, ref["disp_coef"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.beta_se, ref["stderror"], rtol=1e-4)
    assert np.isnan(res.re_variance) and res.nobs == 400
    assert list(res.coeftable().index) == ref["beta_names"]
    assert list(res.disp_coeftable().index) == ref["disp_names"]
    assert str(res).startswith("HLM fit by maximum likelihood: 400 observations")


def test_group_indicators_as_random_effects_give_the_random_intercept_model(sleepstudy, reference):
    # G = subject indicators with one variance is the model (1 | Subject) of the glmmTMB reference.
    ref = reference("sleepstudy_disp_ml")
    X = np.column_stack([np.ones(180), sleepstudy["Days"]])
    G = pd.get_dummies(sleepstudy["Subject"]).to_numpy(dtype=float)
    res = fit_hlmm(sleepstudy["Reaction"], X, X, G)
    np.testing.assert_allclose(res.objective, ref["objective"], rtol=1e-6)
    np.testing.assert_allclose(res.beta, ref["beta"], rtol=1e-4)
    np.testing.assert_allclose(res.gamma, ref["disp_coef"], rtol=1e-4)
    np.testing.assert_allclose(res.beta_se, ref["stderror"], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(res.re_variance), ref["re_sd"], rtol=1e-4)
    # σ_g² = θ², so its standard error is 2θ·se(θ).
    theta_se = res.fit.stderror[-1]
    np.testing.assert_allclose(res.re_variance_se, 2 * ref["re_sd"] * theta_se, rtol=1e-4)


def test_hlmm_estimates_a_simulated_window_effect():
    rng = np.random.default_rng(11)
    n, q = 2000, 30
    G = rng.normal(size=(n, q)) / np.sqrt(q)
    x = rng.normal(size=n)
    y = (
        1.0
        + 0.5 * x
        + G @ rng.normal(scale=np.sqrt(0.8), size=q)
        + rng.normal(size=n) * np.exp(0.5 * (0.2 * x))
    )
    X = np.column_stack([np.ones(n), x])
    res = fit_hlmm(y, X, X, G)
    assert res.converged
    # Truth: β = (1, 0.5), γ = (0, 0.2), σ_g² = 0.8; four standard errors either way.
    assert np.all(np.abs(res.beta - [1.0, 0.5]) < 4 * res.beta_se)
    assert np.all(np.abs(res.gamma - [0.0, 0.2]) < 4 * res.gamma_se)
    assert abs(res.re_variance - 0.8) < 4 * res.re_variance_se


def test_defaults_are_intercepts_and_checks_are_clear():
    rng = np.random.default_rng(2)
    y = rng.normal(size=50)
    res = fit_hlmm(y)
    np.testing.assert_allclose(res.beta, [y.mean()], rtol=1e-10)
    np.testing.assert_allclose(res.gamma, [np.log(y.var())], rtol=1e-10)  # the ML variance
    with pytest.raises(DataError, match="missing"):
        fit_hlmm(np.append(y, np.nan))
    with pytest.raises(DataError, match="one row per observation"):
        fit_hlmm(y, np.ones((49, 1)))
    with pytest.raises(DataError, match="rank deficient"):
        fit_hlmm(y, np.ones((50, 2)))
    with pytest.raises(DataError, match="impute"):
        fit_hlmm(y, G=np.full((50, 2), np.nan))
