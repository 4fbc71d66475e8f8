"""Simulated responses: reproducibility and the distributions they come from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import MixedModelsError


def test_a_seed_reproduces_the_simulation(sleep_ml):
    a = sleep_ml.simulate(3, seed=11)
    b = sleep_ml.simulate(3, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["sim_1", "sim_2", "sim_3"] and len(a) == sleep_ml.nobs
    assert not np.allclose(a.to_numpy(), sleep_ml.simulate(3, seed=12).to_numpy())


def test_moments_of_simulated_responses(sleep_ml):
    """Mean Xβ, and the marginal covariance σ²(ZΛΛ'Z' + I) within a subject."""
    sims = sleep_ml.simulate(4000, seed=1).to_numpy()
    mean = sleep_ml.structure.fe.X @ sleep_ml.beta
    se = sims.std(axis=1) / np.sqrt(sims.shape[1])
    assert np.all(np.abs(sims.mean(axis=1) - mean) < 4.5 * se)
    r = sleep_ml.reterms[0]
    rows = slice(0, 10)  # the first subject
    Z = r.z[rows]
    marginal = sleep_ml.sigma**2 * (Z @ r.lambda_ @ r.lambda_.T @ Z.T + np.eye(10))
    np.testing.assert_allclose(np.cov(sims[rows]), marginal, rtol=0.1, atol=0.05 * marginal.max())


def test_conditioning_on_the_modes(sleep_ml):
    sims = sleep_ml.simulate(3000, seed=2, re_form=None).to_numpy()
    np.testing.assert_allclose(
        sims.mean(axis=1), sleep_ml.fitted(), atol=5 * sleep_ml.sigma / np.sqrt(3000)
    )
    np.testing.assert_allclose(sims.std(axis=1).mean(), sleep_ml.sigma, rtol=0.02)


def test_new_data_with_new_levels(sleep_ml):
    newdata = pd.DataFrame({"Days": [0, 9, 0, 9], "Subject": ["a", "a", "b", "b"]})
    sims = sleep_ml.simulate(2, seed=3, newdata=newdata)
    assert sims.shape == (4, 2) and np.isfinite(sims.to_numpy()).all()
    pd.testing.assert_frame_equal(sims, sleep_ml.simulate(2, seed=3, newdata=newdata))


def test_other_parameters(sleep_ml):
    sims = sleep_ml.simulate(2, seed=4, beta=[0.0, 0.0], sigma=1e-8, theta=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(sims.to_numpy(), 0.0, atol=1e-6)


def test_binomial_and_poisson_responses(cbpp, fitted):
    sims = cbpp.simulate(5, seed=5).to_numpy()
    trials = cbpp.wt[:, None]
    counts = sims * trials
    assert np.allclose(counts, np.round(counts)) and (sims >= 0).all() and (sims <= 1).all()
    pois = fitted("TICKS ~ 1 + YEAR + (1|BROOD)", "grouseticks", family="poisson")
    y = pois.simulate(2, seed=6).to_numpy()
    assert np.array_equal(y, np.round(y)) and (y >= 0).all()


def test_bad_n(sleep_ml):
    with pytest.raises(MixedModelsError, match="positive integer"):
        sleep_ml.simulate(0)


def test_glmm_random_effects_have_the_reported_scale():
    """Gamma model: subjects' simulated log-means vary with the sd that varcorr reports (b = σλu)."""
    import mixedmodels as mm

    data = mm.datasets.load("sleepstudy")  # ten rows per subject, subject by subject
    model = mm.GeneralizedLinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", data, family="gamma", link="log"
    ).fit()
    sd = model.varcorr()["std. dev."].iloc[0]
    sims = model.simulate(300, seed=8).to_numpy()
    subject_means = np.log(sims).reshape(18, 10, 300).mean(axis=1)
    spread = (subject_means - subject_means.mean(axis=1, keepdims=True)).std()
    # var(log y) is about the dispersion σ² for a gamma response with small σ
    assert spread == pytest.approx(np.hypot(sd, model.sigma / np.sqrt(10)), rel=0.1)


def test_a_seed_that_is_not_a_seed_is_named(sleep_ml):
    import mixedmodels as mm

    with pytest.raises(MixedModelsError, match="seed must be"):
        sleep_ml.simulate(2, seed="a")
    with pytest.raises(MixedModelsError, match="seed must be"):
        mm.parametric_bootstrap(sleep_ml, 2, seed=-1)
