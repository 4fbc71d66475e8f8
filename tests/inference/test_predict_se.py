"""predict(se_fit=True, interval="confidence"): fixed-effect uncertainty, against dense algebra.

lme4 1.1-31 (installed here) has no ``predict(se.fit=TRUE)`` (added in 1.1-35),
so the reference is the delta method computed densely in the tests, and
emmeans' marginal means where the two coincide (population predictions at
the reference grid, whose standard errors are also x'Vx).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError


def test_lmm_se_is_sqrt_xvx(sleep_reml):
    new = pd.DataFrame({"Days": [0.0, 4.5, 9.0], "Subject": ["308", "309", "new"]})
    out = sleep_reml.predict(new, se_fit=True, interval="confidence")
    assert list(out.columns) == ["fit", "se_fit", "lwr", "upr"]
    X = np.column_stack([np.ones(3), new["Days"]])
    se = np.sqrt(np.diag(X @ sleep_reml.vcov @ X.T))
    np.testing.assert_allclose(out["se_fit"], se, rtol=1e-12)
    np.testing.assert_allclose(out["fit"], sleep_reml.predict(new), rtol=1e-14)
    z = norm.ppf(0.975)
    np.testing.assert_allclose(out["upr"] - out["lwr"], 2 * z * se, rtol=1e-12)


def test_training_data_keeps_the_index(sleep_reml):
    out = sleep_reml.predict(se_fit=True)
    assert out.index.equals(sleep_reml.obs_index)
    np.testing.assert_allclose(out["fit"], sleep_reml.fitted(), rtol=1e-12)


def test_population_predictions_at_the_grid_are_emmeans():
    df = mm.datasets.load("oats")
    m = mm.LinearMixedModel(
        "yield ~ nitro * Variety + (1|Block/Variety)", df, reml=True, contrasts={"Variety": "sum"}
    ).fit()
    grid = pd.DataFrame({"Variety": ["Golden Rain", "Marvellous", "Victory"]})
    grid["nitro"] = df["nitro"].mean()
    pred = m.predict(grid, re_form="~0", se_fit=True)
    emm = mm.emmeans(m, "Variety").table
    np.testing.assert_allclose(pred["fit"], emm["emmean"], rtol=1e-10)
    np.testing.assert_allclose(pred["se_fit"], emm["SE"], rtol=1e-10)


def test_glmm_response_scale_delta_method(cbpp):
    new = pd.DataFrame(
        {"period": ["1", "2", "4"], "herd": ["1", "3", "new"], "size": 10, "incidence": 0}
    )
    link = cbpp.predict(new, se_fit=True)
    resp = cbpp.predict(new, se_fit=True, type="response", interval="confidence")
    mu = 1 / (1 + np.exp(-link["fit"]))
    np.testing.assert_allclose(resp["fit"], mu, rtol=1e-12)
    h = 1e-6  # d mu / d eta by central differences
    dmu = (1 / (1 + np.exp(-(link["fit"] + h))) - 1 / (1 + np.exp(-(link["fit"] - h)))) / (2 * h)
    np.testing.assert_allclose(resp["se_fit"], dmu * link["se_fit"], rtol=1e-7)
    z = norm.ppf(0.975)
    np.testing.assert_allclose(
        resp["lwr"], 1 / (1 + np.exp(-(link["fit"] - z * link["se_fit"]))), rtol=1e-12
    )
    assert (resp["lwr"] < resp["fit"]).all() and (resp["fit"] < resp["upr"]).all()


def test_missing_rows_predict_nan(sleep_reml):
    new = pd.DataFrame({"Days": [1.0, np.nan], "Subject": ["308", "308"]})
    out = sleep_reml.predict(new, se_fit=True)
    assert np.isnan(out["se_fit"].iloc[1]) and np.isfinite(out["se_fit"].iloc[0])


def test_bad_interval_or_level(sleep_reml):
    with pytest.raises(MixedModelsError, match="interval"):
        sleep_reml.predict(interval="prediction")
    with pytest.raises(MixedModelsError, match="level"):
        sleep_reml.predict(se_fit=True, level=1.5)
