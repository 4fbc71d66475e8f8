"""Predictions against lme4's predict(), and their properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, MixedModelsError

ATOL = 1e-6  # the issue's tolerance, at lme4's estimates (measured: 1e-9)


@pytest.fixture(scope="module")
def sleep_at_lme4(shared_ref, at_lme4_optimum):
    ref = shared_ref("sleepstudy_ml")
    return at_lme4_optimum(ref["formula"], "sleepstudy", ref)


def test_sleepstudy_predictions_match_lme4(sleep_at_lme4, shared_ref):
    ref = shared_ref("inference/sleepstudy_predict")
    newdata = pd.DataFrame(ref["newdata"])
    np.testing.assert_allclose(sleep_at_lme4.predict(newdata), ref["conditional"], atol=ATOL)
    np.testing.assert_allclose(
        sleep_at_lme4.predict(newdata, re_form="~0"), ref["marginal"], atol=ATOL
    )


def test_own_fit_predictions_are_close_to_lme4(sleep_ml, shared_ref):
    """Our optimum is 2.4e-8 lower in deviance than lme4's; conditional modes move by < 1e-3."""
    ref = shared_ref("inference/sleepstudy_predict")
    newdata = pd.DataFrame(ref["newdata"])
    np.testing.assert_allclose(sleep_ml.predict(newdata), ref["conditional"], atol=1e-3)
    np.testing.assert_allclose(sleep_ml.predict(newdata, re_form="~0"), ref["marginal"], atol=1e-8)


@pytest.mark.parametrize(
    "name", ["penicillin_ml", "orthodont_reml", "pastes_nested_ml", "machines_vector_reml"]
)
def test_linear_predictions_on_other_data(name, extra_ref, at_lme4_optimum):
    spec = extra_ref("predict")[name]
    model = at_lme4_optimum(spec["formula"], spec["data"], spec["fit"], reml=spec["reml"])
    newdata = pd.DataFrame(spec["newdata"])
    np.testing.assert_allclose(model.predict(newdata), spec["conditional"], atol=ATOL)
    np.testing.assert_allclose(model.predict(newdata, re_form=np.nan), spec["marginal"], atol=ATOL)
    if "plate_only" in spec:
        np.testing.assert_allclose(
            model.predict(newdata, re_form="~ (1 | plate)"), spec["plate_only"], atol=ATOL
        )


def test_generalised_predictions(extra_ref, at_lme4_optimum):
    spec = extra_ref("predict")["cbpp_laplace"]
    model = at_lme4_optimum(spec["formula"], spec["data"], spec["fit"], family=spec["family"])
    newdata = pd.DataFrame(spec["newdata"])
    np.testing.assert_allclose(model.predict(newdata), spec["link"], atol=1e-6)
    np.testing.assert_allclose(model.predict(newdata, type="response"), spec["response"], atol=1e-6)
    np.testing.assert_allclose(
        model.predict(newdata, re_form="~0"), spec["marginal_link"], atol=1e-6
    )


def test_training_predictions_equal_fitted(sleep_ml, cbpp, sleepstudy):
    np.testing.assert_array_equal(sleep_ml.predict().to_numpy(), sleep_ml.fitted())
    np.testing.assert_allclose(
        sleep_ml.predict(sleepstudy).to_numpy(), sleep_ml.fitted(), rtol=1e-12
    )
    np.testing.assert_allclose(cbpp.predict(type="response").to_numpy(), cbpp.fitted(), rtol=1e-12)
    np.testing.assert_allclose(
        cbpp.predict(mm.datasets.load("cbpp"), type="response").to_numpy(),
        cbpp.fitted(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(cbpp.predict().to_numpy(), cbpp.eta, rtol=1e-12)


def test_population_predictions_are_x_beta(sleep_ml):
    np.testing.assert_allclose(
        sleep_ml.predict(re_form="~0"), sleep_ml.structure.fe.X @ sleep_ml.beta
    )


def test_new_levels_get_zero_random_effect_or_an_error(sleep_ml):
    newdata = pd.DataFrame({"Days": [1, 1], "Subject": ["308", "new"]})
    pred = sleep_ml.predict(newdata)
    assert pred.iloc[1] == pytest.approx(sleep_ml.beta @ [1, 1])
    with pytest.raises(DataError, match="'new'"):
        sleep_ml.predict(newdata, new_levels="error")
    assert sleep_ml.predict(newdata.iloc[:1], new_levels="error").iloc[0] == pytest.approx(
        pred.iloc[0]
    )


def test_new_level_of_a_fixed_effect_factor_is_named(cbpp):
    newdata = pd.DataFrame({"period": ["1", "5"], "herd": ["1", "2"]})
    with pytest.raises(DataError, match=r"column 'period'.*'5'"):
        cbpp.predict(newdata)


def test_levels_given_as_numbers_match_text_levels(cbpp):
    text = cbpp.predict(pd.DataFrame({"period": ["2", "3"], "herd": ["1", "7"]}))
    numbers = cbpp.predict(pd.DataFrame({"period": [2, 3], "herd": [1, 7]}))
    np.testing.assert_array_equal(text.to_numpy(), numbers.to_numpy())


def test_missing_values_predict_nan_and_keep_the_index(sleep_ml):
    newdata = pd.DataFrame(
        {"Days": [1.0, np.nan, 3.0], "Subject": ["308", "309", None]}, index=[10, 20, 30]
    )
    pred = sleep_ml.predict(newdata)
    assert list(pred.index) == [10, 20, 30]
    assert np.isfinite(pred.iloc[0]) and pred.iloc[1:].isna().all()


def test_missing_column_is_an_error(sleep_ml):
    with pytest.raises(DataError, match="'Days'"):
        sleep_ml.predict(pd.DataFrame({"Subject": ["308"]}))


def test_population_prediction_needs_no_grouping_level_in_the_model(sleep_ml):
    pred = sleep_ml.predict(pd.DataFrame({"Days": [2.0], "Subject": ["anyone"]}), re_form="~0")
    assert pred.iloc[0] == pytest.approx(sleep_ml.beta @ [1, 2])


def test_bad_options_are_errors(sleep_ml):
    with pytest.raises(MixedModelsError, match="new_levels"):
        sleep_ml.predict(pd.DataFrame({"Days": [1], "Subject": ["308"]}), new_levels="zero")
    with pytest.raises(MixedModelsError, match="type"):
        sleep_ml.predict(type="mean")
    with pytest.raises(MixedModelsError, match="no random-effects term"):
        sleep_ml.predict(re_form="~ (1 | Days)")


def test_formula_offsets_are_evaluated_on_new_data(fitted):
    model = fitted(
        "TICKS ~ 1 + YEAR + (1|BROOD) + offset(log(HEIGHT))", "grouseticks", family="poisson"
    )
    data = mm.datasets.load("grouseticks")
    np.testing.assert_allclose(model.predict(data).to_numpy(), model.eta, rtol=1e-12)
    shifted = model.predict(data.assign(HEIGHT=data["HEIGHT"] * np.e))
    np.testing.assert_allclose(shifted.to_numpy(), model.eta + 1.0, rtol=1e-12)


def test_offset_argument_needs_values_for_new_rows():
    data = mm.datasets.load("grouseticks")
    model = mm.GeneralizedLinearMixedModel(
        "TICKS ~ 1 + YEAR + (1|BROOD)", data, family="poisson", offset=np.zeros(len(data))
    ).fit()
    rows = data.iloc[:3]
    with pytest.raises(MixedModelsError, match="offset="):
        model.predict(rows)
    np.testing.assert_allclose(
        model.predict(rows, offset=np.ones(3)).to_numpy(), model.eta[:3] + 1.0, rtol=1e-12
    )


def test_population_predictions_need_no_grouping_columns(sleep_ml, sleepstudy):
    new = sleepstudy[["Days"]].iloc[:5]
    p = sleep_ml.predict(new, re_form="~0")
    expected = sleep_ml.beta[0] + sleep_ml.beta[1] * new["Days"].to_numpy()
    np.testing.assert_allclose(p.to_numpy(), expected, rtol=1e-12)
    assert p.index.equals(new.index)


def test_allow_new_levels_is_lme4s_spelling(sleep_ml, sleepstudy):
    new = sleepstudy.iloc[:3].assign(Subject="nobody")
    np.testing.assert_allclose(
        sleep_ml.predict(new, allow_new_levels=True), sleep_ml.predict(new, re_form="~0")
    )
    with pytest.raises(mm.DataError, match="nobody"):
        sleep_ml.predict(new, allow_new_levels=False)
