"""Properties a linear mixed model fit must have, whatever the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

FORMULA = "Reaction ~ 1 + Days + (1 + Days | Subject)"


def fit(df, formula=FORMULA, **kw):
    return mm.LinearMixedModel(formula, df, **kw).fit()


@pytest.fixture(scope="module")
def base(sleepstudy):
    return fit(sleepstudy)


def test_row_permutation_leaves_fit_unchanged(sleepstudy, base):
    perm = np.random.default_rng(1).permutation(len(sleepstudy))
    m = fit(sleepstudy.iloc[perm])
    assert m.objective == pytest.approx(base.objective, rel=1e-9)
    np.testing.assert_allclose(m.beta, base.beta, rtol=1e-6)
    np.testing.assert_allclose(m.theta, base.theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.fitted(), base.fitted()[perm], rtol=1e-6)


def test_level_relabelling_changes_only_labels(sleepstudy, base):
    df = sleepstudy.copy()
    old = list(df["Subject"].cat.categories)
    renamed = df["Subject"].cat.rename_categories({c: f"s{c}" for c in old})
    df["Subject"] = renamed.cat.reorder_categories([f"s{c}" for c in reversed(old)])
    m = fit(df)
    assert m.objective == pytest.approx(base.objective, rel=1e-9)
    np.testing.assert_allclose(m.theta, base.theta, rtol=1e-4, atol=1e-6)
    ours, theirs = m.ranef()["Subject"], base.ranef()["Subject"]
    assert list(ours.index) == [f"s{c}" for c in reversed(old)]
    np.testing.assert_allclose(
        ours.loc[[f"s{c}" for c in old]].to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("c", [0.01, 10.0])
def test_rescaled_response(sleepstudy, base, c):
    df = sleepstudy.assign(Reaction=sleepstudy["Reaction"] * c)
    m = fit(df)
    n = base.nobs
    assert m.objective == pytest.approx(base.objective + 2 * n * np.log(c), rel=1e-9)
    np.testing.assert_allclose(m.theta, base.theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.beta, c * base.beta, rtol=1e-6)
    assert m.sigma == pytest.approx(c * base.sigma, rel=1e-6)


def test_user_data_not_modified(sleepstudy):
    df = sleepstudy.copy()
    df.loc[3, "Reaction"] = np.nan
    before = df.copy()
    with pytest.warns(UserWarning, match="1 row"):
        m = fit(df)
    pd.testing.assert_frame_equal(df, before)
    assert m.nobs == len(df) - 1
    assert m.structure.frame.n_dropped == 1


def test_missing_rows_dropped_like_na_omit(sleepstudy):
    df = sleepstudy.copy()
    df.loc[[0, 50], "Days"] = np.nan
    with pytest.warns(UserWarning):
        m = fit(df)
    ref = fit(sleepstudy.drop(index=[0, 50]).reset_index(drop=True))
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)


def test_unit_weights_equal_unweighted(sleepstudy, base):
    m = fit(sleepstudy.assign(w=1.0), weights="w")
    assert m.objective == pytest.approx(base.objective, rel=1e-10)


def test_scaling_weights_rescales_sigma_and_theta_only(sleepstudy):
    # weights c*w with (sqrt(c) sigma, theta / sqrt(c)) is the same distribution as w with (sigma, theta)
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(sleepstudy))
    m1 = fit(sleepstudy, weights=w)
    m4 = fit(sleepstudy, weights=4.0 * w)
    assert m4.objective == pytest.approx(m1.objective, rel=1e-9)
    np.testing.assert_allclose(m4.beta, m1.beta, rtol=1e-6)
    assert m4.sigma == pytest.approx(2.0 * m1.sigma, rel=1e-5)
    np.testing.assert_allclose(m4.theta, m1.theta / 2.0, rtol=1e-3, atol=1e-6)


def dense_deviance(m) -> float:
    """-2 log-likelihood of y ~ N(Xβ, σ²(ZΛΛ'Z' + W⁻¹)) computed densely."""
    Z = np.hstack([r.Z().toarray() for r in m.reterms])
    Lam = np.zeros((Z.shape[1],) * 2)
    start = 0
    for r in m.reterms:
        Lam[start : start + r.q, start : start + r.q] = np.kron(np.eye(r.nlevels), r.lambda_)
        start += r.q
    w = np.ones(m.nobs) if m.weights is None else m.weights
    V = m.sigma**2 * (Z @ Lam @ Lam.T @ Z.T + np.diag(1.0 / w))
    r = m.y - m.structure.fe.X @ m.beta
    return float(m.nobs * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r))


@pytest.mark.parametrize(
    "formula",
    [
        FORMULA,
        "Reaction ~ 1 + Days + (1 + Days || Subject)",
        "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)",
    ],
)
def test_objective_matches_dense_likelihood_with_weights(sleepstudy, formula):
    w = np.random.default_rng(7).uniform(0.2, 3.0, len(sleepstudy))
    m = fit(sleepstudy, formula, weights=w)
    assert m.objective == pytest.approx(dense_deviance(m), rel=1e-10)


def test_reml_and_ml_differ_and_reml_sigma_larger(sleepstudy, base):
    r = fit(sleepstudy, reml=True)
    assert r.reml and not base.reml
    assert r.sigma > base.sigma * 0.99
    np.testing.assert_allclose(r.beta, base.beta, rtol=1e-6)  # balanced design: β identical


def test_fitted_plus_residuals_is_response(base, sleepstudy):
    np.testing.assert_allclose(base.fitted() + base.residuals(), sleepstudy["Reaction"], rtol=1e-12)


def test_objective_at_final_theta_reproduces_fmin(base):
    m = mm.LinearMixedModel(FORMULA, mm.datasets.load("sleepstudy"))
    assert m.objective_at(base.theta) == pytest.approx(base.optsum.fmin, rel=1e-12)


def test_coeftable_and_vcov(base):
    ct = base.coeftable()
    assert list(ct.columns) == ["Estimate", "Std. Error", "z", "p"]
    np.testing.assert_allclose(ct["z"], base.beta / base.stderror)
    np.testing.assert_allclose(np.sqrt(np.diag(base.vcov)), base.stderror)
    assert np.all(np.linalg.eigvalsh(base.vcov) > 0)
    assert list(base.fixef().index) == ["(Intercept)", "Days"]


def test_printing_mentions_key_quantities(base):
    text = str(base)
    for piece in ("maximum likelihood", "Subject", "Residual", "(Intercept)", "Days", "1751.9393"):
        assert piece in text
    assert "LN_BOBYQA" in str(base.optsum) and "Function evaluations" in str(base.optsum)
