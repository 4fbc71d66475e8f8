"""Likelihood ratio tests against lme4's anova, and their properties."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.inference import anova, lrt


@pytest.fixture(scope="module")
def sleep_pair(shared_ref, fitted):
    ref = shared_ref("inference/sleepstudy_lrt")
    return ref, [fitted(f, "sleepstudy") for f in ref["models"]]


def test_sleepstudy_lrt_matches_lme4(sleep_pair):
    ref, (m0, m1) = sleep_pair
    table = lrt(m1, m0)  # any order: sorted by number of parameters
    assert list(table.index) == ref["models"]
    np.testing.assert_allclose(table["objective"], ref["objective"], rtol=1e-9)
    assert table["chisq"].iloc[1] == pytest.approx(ref["chisq"], rel=1e-6)
    assert table["df"].iloc[1] == ref["df"]
    assert table["p"].iloc[1] == pytest.approx(ref["p"], rel=1e-5)
    assert np.isnan(table["chisq"].iloc[0])


def test_model_against_itself_gives_zero(sleep_ml):
    table = anova(sleep_ml, sleep_ml)
    assert table["chisq"].iloc[1] == 0.0 and table["df"].iloc[1] == 0
    assert np.isnan(table["p"].iloc[1])


def test_reml_fits_are_refitted_by_ml(sleep_pair, fitted):
    ref, (m0, m1) = sleep_pair
    r0 = fitted(ref["models"][0], "sleepstudy", reml=True)
    with pytest.warns(UserWarning, match="maximum likelihood"):
        table = lrt(r0, m1)
    assert table["chisq"].iloc[1] == pytest.approx(ref["chisq"], rel=1e-6)
    assert r0.reml


def test_other_data_match_lme4(extra_ref, fitted):
    spec = extra_ref("lrt")["machines_reml"]
    models = [fitted(f, spec["data"], reml=True) for f in spec["models"]]
    with pytest.warns(UserWarning):
        table = lrt(*models)
    np.testing.assert_allclose(table["objective"], spec["objective"], rtol=1e-8)
    assert table["chisq"].iloc[1] == pytest.approx(spec["chisq"], rel=1e-6)
    assert table["p"].iloc[1] == pytest.approx(spec["p"], rel=1e-5)


def test_glmm_lrt_matches_lme4(extra_ref, fitted):
    spec = extra_ref("lrt")["cbpp_period"]
    models = [fitted(f, spec["data"], family="binomial") for f in spec["models"]]
    table = lrt(*models)
    assert list(table["dof"]) == spec["dof"]
    # glmer's optimiser stops 5e-4 above our minimum of the deviance
    np.testing.assert_allclose(table["objective"], spec["objective"], atol=2e-3)
    assert table["chisq"].iloc[1] == pytest.approx(spec["chisq"], abs=2e-3)


def test_non_nested_models_are_refused(fitted):
    a = fitted("Reaction ~ 1 + Days + (1|Subject)", "sleepstudy")
    b = fitted("Reaction ~ 1 + (1 + Days|Subject)", "sleepstudy")
    with pytest.raises(MixedModelsError, match="not nested"):
        lrt(a, b)
    assert lrt(a, b, check_nested=False).shape[0] == 2


def test_models_on_different_data_are_refused(sleep_ml):
    data = mm.datasets.load("sleepstudy")
    other = mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", data[data.Days > 0]).fit()
    with pytest.raises(MixedModelsError, match="same observations"):
        lrt(other, sleep_ml)


def test_one_model_is_not_a_test(sleep_ml):
    with pytest.raises(MixedModelsError, match="at least two"):
        lrt(sleep_ml)


def test_linear_and_generalised_cannot_be_mixed(sleep_ml, cbpp):
    with pytest.raises(MixedModelsError, match="linear and generalised"):
        lrt(sleep_ml, cbpp)
