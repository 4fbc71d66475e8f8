"""Nakagawa R² and ICC against performance 0.10.2 / insight 0.19.0 (tools/make_diagnostics_reference.R).

At lme4's own estimates the variance components agree to 1e-6 (relative); at our
optima (which are at least as good as lme4's) the ratios agree to what the optima
differ by.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference_data import load_json

import mixedmodels as mm
from mixedmodels.inference.r2 import nakagawa_variances

REF = load_json("data/diagnostics_reference.json")

MODELS = {
    "r2_sleepstudy": ("Reaction ~ Days + (Days|Subject)", "sleepstudy", None),
    "r2_penicillin": ("diameter ~ 1 + (1|plate) + (1|sample)", "penicillin", None),
    "r2_cbpp": ("cbind(incidence, size - incidence) ~ period + (1|herd)", "cbpp", "binomial"),
    "r2_grouse": ("TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)", "grouseticks", "poisson"),
}


def _model(name, fitted):
    formula, data, family = MODELS[name]
    return fitted(formula, data, reml=family is None, family=family)


@pytest.mark.parametrize("name", list(MODELS))
def test_ratios_match_performance(name, fitted):
    ref, m = REF[name], _model(name, fitted)
    r2, icc = m.r2(), m.icc()
    tol = 1e-6 if m.family is None else 1e-3  # lme4's GLMM optima stop short of ours
    assert r2["marginal"] == pytest.approx(ref["r2_marginal"], abs=tol)
    assert r2["conditional"] == pytest.approx(ref["r2_conditional"], abs=tol)
    assert icc["adjusted"] == pytest.approx(ref["icc_adjusted"], abs=tol)
    assert icc["unadjusted"] == pytest.approx(ref["icc_unadjusted"], abs=tol)


@pytest.mark.parametrize("name", list(MODELS))
def test_variances_at_lme4_estimates(name, fitted):
    ref = REF[name]
    m = _model(name, fitted).copy()
    beta = None if m.family is None else np.atleast_1d(ref["beta"])  # JSON unboxes length 1
    m.objective_at(np.atleast_1d(ref["theta"]).astype(float), beta=beta)
    v = nakagawa_variances(m, mm.datasets.load(MODELS[name][1]))  # a copy keeps no data
    assert v["fixed"] == pytest.approx(ref["var_fixed"], rel=1e-6, abs=1e-12)
    assert v["random"] == pytest.approx(ref["var_random"], rel=1e-6)
    if m.family is None or m.family.name != "poisson":
        assert v["residual"] == pytest.approx(ref["var_residual"], rel=1e-6)
    # by-hand formulas of the R script agree with performance itself
    assert ref["by_hand"]["random"] == pytest.approx(ref["var_random"], rel=1e-12)


def test_poisson_residual_variance_is_lognormal_of_the_null_intercept(fitted):
    """σ²_ε = log(1 + 1/exp(β₀)) of the null model; lme4's null fit stops 0.008 short of ours."""
    ref = REF["r2_grouse"]
    assert math.log1p(math.exp(-ref["null_intercept"])) == pytest.approx(
        ref["var_residual"], rel=1e-12
    )
    m = _model("r2_grouse", fitted)
    null = m.update("TICKS ~ 1 + (1|BROOD) + (1|LOCATION)")
    assert null.objective <= ref["null_objective"] + 1e-6
    assert nakagawa_variances(m)["residual"] == pytest.approx(
        math.log1p(math.exp(-null.beta[0])), rel=1e-12
    )
    assert null.beta[0] == pytest.approx(ref["null_intercept"], abs=5e-3)


def test_result_is_a_series_that_prints_its_components(fitted):
    r = _model("r2_sleepstudy", fitted).r2()
    assert list(r.index) == ["marginal", "conditional"]
    text = repr(r)
    assert "Nakagawa" in text and "marginal: 0.279" in text and "sigma^2" in text
    assert set(r.attrs["variances"]) == {"fixed", "random", "residual"}


def test_a_copy_of_a_poisson_model_asks_for_the_data(fitted):
    with pytest.raises(mm.MixedModelsError, match="pass the data"):
        _model("r2_grouse", fitted).copy().r2()


def test_unsupported_family_and_unfitted_model():
    df = mm.datasets.load("cbpp")
    m = mm.GeneralizedLinearMixedModel("size ~ period + (1|herd)", df, family="Gamma")
    with pytest.raises(mm.NotFittedError):
        m.r2()
    m.fit()
    with pytest.raises(mm.MixedModelsError, match="Gamma"):
        m.r2()
