"""Satterthwaite and Kenward-Roger degrees of freedom against lmerTest (and pbkrtest)."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.errors import MixedModelsError

DF_ATOL = (
    1e-3  # the tolerance; measured agreement 5e-6 (Satterthwaite) and 3e-5 (Kenward-Roger)
)


@pytest.fixture(scope="module")
def sleep_at_lme4(shared_ref, at_lme4_optimum):
    ref = shared_ref("sleepstudy_reml")
    return at_lme4_optimum(ref["formula"], "sleepstudy", ref, reml=True)


@pytest.mark.parametrize(
    "method,key", [("satterthwaite", "satterthwaite"), ("kenward-roger", "kenward_roger")]
)
def test_sleepstudy_df_match_lmertest(sleep_at_lme4, sleep_reml, shared_ref, method, key):
    ref = shared_ref("inference/sleepstudy_ddf")
    for model in (sleep_at_lme4, sleep_reml):  # at lme4's optimum and at our own
        table = model.coeftable(ddf=method)
        assert list(table.columns) == ["Estimate", "Std. Error", "df", "t", "p"]
        np.testing.assert_allclose(table["df"], ref[f"df_{key}"], atol=DF_ATOL)
        np.testing.assert_allclose(table["Std. Error"], ref["stderror"], rtol=1e-6)
        np.testing.assert_allclose(table["p"], ref[f"p_{key}"], rtol=1e-4)


@pytest.mark.parametrize(
    "name",
    ["penicillin_reml", "machines_nested_reml", "orthodont_reml", "pastes_reml", "sleepstudy_ml"],
)
def test_df_match_lmertest_on_other_data(name, extra_ref, at_lme4_optimum):
    spec = extra_ref("ddf")[name]
    model = at_lme4_optimum(spec["formula"], spec["data"], spec["fit"], reml=spec["reml"])
    sat = model.coeftable(ddf="satterthwaite")
    assert list(sat.index) == list(np.atleast_1d(spec["coef"]))
    np.testing.assert_allclose(sat["df"], spec["df_satterthwaite"], atol=DF_ATOL)
    np.testing.assert_allclose(sat["p"], spec["p_satterthwaite"], rtol=1e-3)
    if "df_kenward_roger" in spec:
        kr = model.coeftable(ddf="kenward-roger")
        np.testing.assert_allclose(kr["df"], spec["df_kenward_roger"], atol=DF_ATOL)
        np.testing.assert_allclose(kr["Std. Error"], spec["stderror_kenward_roger"], rtol=1e-6)
        np.testing.assert_allclose(kr["p"], spec["p_kenward_roger"], rtol=1e-3)


def test_contrasts_agree_with_the_coefficient_table(sleep_reml):
    from mixedmodels.inference import contrast_test

    table = sleep_reml.coeftable(ddf="satterthwaite")
    tests = contrast_test(sleep_reml, np.eye(2))
    np.testing.assert_allclose(tests["df"].to_numpy(), table["df"].to_numpy(), rtol=1e-12)
    # a contrast and its multiple have the same t, df and p
    twice = contrast_test(sleep_reml, [0.0, 2.0])
    np.testing.assert_allclose(
        twice[["df", "t", "p"]].to_numpy()[0], table[["df", "t", "p"]].to_numpy()[1], rtol=1e-10
    )


def test_default_table_is_unchanged(sleep_reml):
    assert list(sleep_reml.coeftable().columns) == ["Estimate", "Std. Error", "z", "p"]


def test_kenward_roger_needs_reml(sleep_ml):
    with pytest.raises(MixedModelsError, match="REML"):
        sleep_ml.coeftable(ddf="kenward-roger")


def test_unknown_method_is_an_error(sleep_reml):
    with pytest.raises(MixedModelsError, match="unknown ddf method"):
        sleep_reml.coeftable(ddf="containment")


def test_ddf_is_for_linear_models(cbpp):
    from mixedmodels.inference import ddf_coeftable

    with pytest.raises(MixedModelsError, match="linear mixed models"):
        ddf_coeftable(cbpp, "satterthwaite")
