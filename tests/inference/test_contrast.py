"""mm.contrast, the per-fit cache of the df machinery and the analytic Satterthwaite derivatives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.inference.fitcache import fit_key
from mixedmodels.inference.satterthwaite import numerical_state, satterthwaite_state
from mixedmodels.inference.varpar import varpar_derivatives


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def weighted():
    df = mm.datasets.load("sleepstudy")
    df["w"] = np.linspace(0.5, 2.0, len(df))
    return mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)", df, reml=True, weights="w"
    ).fit()


@pytest.mark.parametrize("which", ["reml", "ml", "weighted", "crossed"])
def test_analytic_derivatives_match_numerical_ones(which, sleep_reml, sleep_ml, weighted, fitted):
    # the numerical state differentiates objective_at (Richardson extrapolation) on a copy
    model = {
        "reml": sleep_reml,
        "ml": sleep_ml,
        "weighted": weighted,
        "crossed": fitted("diameter ~ 1 + (1|plate) + (1|sample)", "penicillin", reml=True),
    }[which]
    exact, numeric = varpar_derivatives(model), numerical_state(model)
    assert _rel(exact.jac, numeric.jac) < 1e-6
    state = satterthwaite_state(model)
    assert _rel(state.cov_varpar, numeric.cov_varpar) < 1e-6


def test_contrast_of_identity_is_the_coefficient_table(sleep_reml):
    table = sleep_reml.coeftable(ddf="satterthwaite")
    c = mm.contrast(sleep_reml, np.eye(2))
    np.testing.assert_allclose(c["estimate"], table["Estimate"], rtol=1e-12)
    np.testing.assert_allclose(c["SE"], table["Std. Error"], rtol=1e-12)
    np.testing.assert_allclose(c["df"], table["df"], rtol=1e-12)
    np.testing.assert_allclose(c["p.value"], table["p"], rtol=1e-10)
    assert list(c.columns) == ["estimate", "SE", "df", "lower.CL", "upper.CL", "t.ratio", "p.value"]
    assert "Degrees-of-freedom method: satterthwaite" in str(c)


def test_contrast_from_a_dataframe_by_coefficient_name(sleep_reml):
    L = pd.DataFrame({"Days": [1.0, 2.0]}, index=["slope", "twice"])
    c = sleep_reml.contrast(L)
    assert list(c.index) == ["slope", "twice"]
    np.testing.assert_allclose(c["t.ratio"].iloc[0], c["t.ratio"].iloc[1], rtol=1e-12)
    np.testing.assert_allclose(c["estimate"].iloc[0], sleep_reml.beta[1], rtol=1e-12)


def test_wrong_width_names_the_expected_width_and_coefficients(sleep_reml):
    with pytest.raises(MixedModelsError, match=r"needs 2 values.*\(Intercept\), Days"):
        mm.contrast(sleep_reml, [1.0, 0.0, 0.0])
    with pytest.raises(MixedModelsError, match="Dayz.*not coefficients"):
        mm.contrast(sleep_reml, pd.DataFrame({"Dayz": [1.0]}))
    with pytest.raises(MixedModelsError, match="level"):
        mm.contrast(sleep_reml, [0.0, 1.0], level=95)


def test_glmm_contrasts_are_z_tests(cbpp):
    c = mm.contrast(cbpp, np.eye(4)[1:])
    assert "z.ratio" in c.columns and np.isinf(c["df"]).all()
    np.testing.assert_allclose(c["SE"], cbpp.stderror[1:], rtol=1e-12)


def test_kenward_roger_contrast_uses_the_adjusted_covariance(sleep_reml):
    kr = sleep_reml.coeftable(ddf="kenward-roger")
    c = mm.contrast(sleep_reml, np.eye(2), ddf="kenward-roger")
    np.testing.assert_allclose(c["SE"], kr["Std. Error"], rtol=1e-12)
    np.testing.assert_allclose(c["df"], kr["df"], rtol=1e-12)


def test_df_state_is_cached_per_fit_and_follows_the_fit():
    df = mm.datasets.load("sleepstudy")
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", df, reml=True).fit()
    first = satterthwaite_state(m)
    assert satterthwaite_state(m) is first  # the same fit: computed once
    key = fit_key(m)
    y = m.response + np.random.default_rng(1).normal(0, 5, m.nobs)
    m.refit(y)
    assert fit_key(m) != key
    second = satterthwaite_state(m)
    assert second is not first
    np.testing.assert_allclose(second.vcov, m.vcov, rtol=1e-12)
    m.set_theta(m.theta * 1.1)
    m.update_L()
    assert satterthwaite_state(m) is not second
