"""Random-effects terms with a known covariance matrix (covariance={"g": K})."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError


def panel(n_groups=60, reps=3, seed=0):
    """Related groups: K from random 'genotypes', y with a K-structured effect."""
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, 0.3, size=(n_groups, 200)).astype(float)
    G = (G - G.mean(0)) / np.maximum(G.std(0), 1e-9)
    K = G @ G.T / G.shape[1]
    levels = [f"i{j:03d}" for j in range(n_groups)]
    g = np.linalg.cholesky(K + 1e-9 * np.eye(n_groups)) @ rng.normal(size=n_groups)
    df = pd.DataFrame({"id": np.repeat(levels, reps), "x": rng.normal(size=n_groups * reps)})
    df["y"] = 1 + 0.5 * df["x"] + 1.5 * np.repeat(g, reps) + rng.normal(size=len(df))
    return df, pd.DataFrame(K, index=levels, columns=levels)


@pytest.fixture(scope="module")
def data():
    return panel()


def test_identity_covariance_is_the_ordinary_model(data):
    df, K = data
    eye = pd.DataFrame(np.eye(len(K)), index=K.index, columns=K.columns)
    a = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df).fit()
    b = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": eye}).fit()
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-4)
    pd.testing.assert_frame_equal(b.ranef()["id"], a.ranef()["id"], rtol=1e-4, atol=1e-6)


def test_scaling_K_rescales_theta_only(data):
    df, K = data
    a = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": K}).fit()
    b = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": 4 * K}).fit()
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    assert b.theta[0] == pytest.approx(a.theta[0] / 2, rel=1e-4)


def test_matches_dense_marginal_likelihood(data):
    df, K = data
    m = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": K}).fit()
    Z = m.reterms[0].Z().toarray()
    V = m.sigma**2 * (np.eye(len(df)) + m.theta[0] ** 2 * Z @ K.to_numpy() @ Z.T)
    r = df["y"].to_numpy() - m.structure.fe.X @ m.beta
    dense = len(df) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r)
    assert m.objective == pytest.approx(dense, rel=1e-10)


def test_mixes_with_ordinary_terms_and_array_in_level_order(data):
    df, K = data
    df = df.assign(batch=np.tile(["a", "b", "c"], len(df) // 3))
    m = mm.LinearMixedModel(
        "y ~ 1 + x + (1|id) + (1|batch)", df, covariance={"id": K.to_numpy()}
    ).fit()
    assert len(m.theta) == 2 and np.isfinite(m.objective)
    re = m.ranef(condvar=True)["id"]
    assert (re["condvar((Intercept))"] > 0).all()


def test_label_order_does_not_matter(data):
    df, K = data
    a = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": K}).fit()
    shuffled = K.iloc[::-1, ::-1]
    b = mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": shuffled}).fit()
    assert b.objective == pytest.approx(a.objective, rel=1e-12)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda K: K.iloc[:, :-1], "same labels"),
        (lambda K: K.iloc[1:, 1:], "1 individual.*missing from the covariance for 'id'"),
        (lambda K: K.to_numpy()[:-1, :-1], "59 × 59 but there are 60"),
        (lambda K: K + np.triu(np.ones(K.shape), 1), "not symmetric"),
        (lambda K: K - 3 * np.eye(len(K)), "not positive semi-definite"),
        (lambda K: K.replace(K.iloc[0, 0], np.nan), "missing or infinite"),
    ],
)
def test_bad_covariance(data, bad, match):
    df, K = data
    with pytest.raises(DataError, match=match):
        mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"id": bad(K)})


def test_covariance_for_unknown_group(data):
    df, K = data
    with pytest.raises(FormulaError, match="no random-effects term grouped by"):
        mm.LinearMixedModel("y ~ 1 + x + (1|id)", df, covariance={"family": K})


def test_covariance_needs_scalar_term(data):
    df, K = data
    with pytest.raises(FormulaError, match="single scalar term"):
        mm.LinearMixedModel("y ~ 1 + x + (1 + x|id)", df, covariance={"id": K})


def test_glmm_with_covariance(data):
    df, K = data
    df = df.assign(hit=(df["y"] > df["y"].median()).astype(float))
    m = mm.GeneralizedLinearMixedModel(
        "hit ~ 1 + x + (1|id)", df, family="bernoulli", covariance={"id": K}
    ).fit()
    assert np.isfinite(m.objective) and m.theta[0] >= 0
    with pytest.raises(mm.MixedModelsError, match="single scalar"):
        m.fit(nagq=3)
