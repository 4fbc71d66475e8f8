"""The marginaleffects adapter: slopes, predictions and comparisons of the fixed effects."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm

me = pytest.importorskip("marginaleffects")
from mixedmodels.marginaleffects_adapter import wrap  # noqa: E402

SLEEP = "Reaction ~ 1 + Days + (1 + Days|Subject)"


@pytest.fixture(scope="module")
def sleep():
    df = mm.datasets.load("sleepstudy")
    return mm.LinearMixedModel(SLEEP, df).fit(), df


def _value(result, column):
    return float(result[column][0])


def test_lmm_slope_is_the_coefficient_with_its_standard_error(sleep):
    m, df = sleep
    s = me.avg_slopes(wrap(m, df), variables="Days")
    assert _value(s, "estimate") == pytest.approx(m.beta[1], rel=1e-6)
    assert _value(s, "std_error") == pytest.approx(m.stderror[1], rel=1e-4)


def test_lmm_average_prediction_is_population_level(sleep):
    m, df = sleep
    p = me.avg_predictions(wrap(m, df))
    X = m.structure.fe.X
    assert _value(p, "estimate") == pytest.approx(np.mean(X @ m.beta), rel=1e-8)
    se = np.sqrt(X.mean(0) @ m.vcov @ X.mean(0))
    assert _value(p, "std_error") == pytest.approx(se, rel=1e-4)


@pytest.mark.slow
def test_poisson_comparison_on_the_response_scale():
    df = mm.datasets.load("grouseticks")
    g = mm.GeneralizedLinearMixedModel(
        "TICKS ~ YEAR + cHEIGHT + (1|LOCATION)", df, family="poisson"
    ).fit()
    c = me.avg_comparisons(wrap(g, df), variables="YEAR")
    mu = {
        y: g.predict(df.assign(YEAR=y), re_form="~0", type="response").to_numpy()
        for y in ("95", "96")
    }
    est = c.filter(c["contrast"] == "96 - 95")["estimate"][0]
    assert est == pytest.approx(np.mean(mu["96"] - mu["95"]), rel=1e-6)


def test_bad_input(sleep):
    m, df = sleep
    with pytest.raises(mm.MixedModelsError, match="Days"):
        wrap(m, df.drop(columns="Days"))
    with pytest.raises(mm.MixedModelsError, match="type"):
        wrap(m, df, type="probability")
    with pytest.raises(mm.NotFittedError):
        wrap(mm.LinearMixedModel(SLEEP, df), df)
