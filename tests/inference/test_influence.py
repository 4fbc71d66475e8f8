"""Leverage against lme4's hatvalues() and MixedModels.jl; Cook's distance against brute-force deletion.

References: tools/make_diagnostics_reference.R (lme4 1.1-31 hatvalues on the ML fits) and
MixedModels.jl's test suite (sum(leverage) of sleepstudy by ML = 28.611653305323234, rtol 1e-5
there too: the sum moves with the optimum's last digits).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_data import load_json

import mixedmodels as mm

REF = load_json("data/diagnostics_reference.json")
SLEEP = "Reaction ~ 1 + Days + (1 + Days|Subject)"


def test_leverage_sum_matches_mixedmodels_jl(sleep_ml):
    inf = sleep_ml.influence()
    assert inf["leverage"].sum() == pytest.approx(28.611653305323234, rel=1e-5)
    assert list(inf.columns) == ["leverage", "residual", "cooks_distance"]
    assert inf.index.equals(sleep_ml.obs_index)


@pytest.mark.parametrize(
    "name, formula, data",
    [
        ("hat_sleepstudy_ml", SLEEP, "sleepstudy"),
        ("hat_penicillin_ml", "diameter ~ 1 + (1|plate) + (1|sample)", "penicillin"),
    ],
)
def test_leverage_per_observation_at_lme4s_theta(name, formula, data, fitted):
    ref = REF[name]
    m = fitted(formula, data).copy()
    m.objective_at(np.atleast_1d(ref["theta"]).astype(float))
    h = m.influence()["leverage"].to_numpy()
    np.testing.assert_allclose(h, ref["hat"], rtol=1e-8, atol=1e-12)
    assert h.sum() == pytest.approx(ref["sum"], rel=1e-10)


def _beta_without(rows, theta, data=None):
    data = mm.datasets.load("sleepstudy") if data is None else data
    sub = mm.LinearMixedModel(SLEEP, data.drop(index=data.index[rows]))
    sub.objective_at(theta)
    return sub.beta


def _cooks(m, beta):
    d = m.beta - beta
    return d @ np.linalg.solve(m.vcov, d) / len(d)


def test_cooks_distance_per_observation_equals_deletion_at_fixed_theta(sleep_ml):
    """Brute force: refit without row i at θ̂ (β and σ-free GLS), D = Δβ' vcov⁻¹ Δβ / p."""
    cooks = sleep_ml.influence()["cooks_distance"].to_numpy()
    for i in (0, 9, 57, 179):
        brute = _cooks(sleep_ml, _beta_without([i], sleep_ml.theta))
        assert cooks[i] == pytest.approx(brute, rel=1e-4)


def test_cooks_distance_per_group_equals_deleting_the_group(sleep_ml):
    df = mm.datasets.load("sleepstudy")
    by = sleep_ml.influence(level="Subject")
    assert list(by.columns) == ["nobs", "cooks_distance"] and by.index.name == "Subject"
    assert (by["nobs"] == 10).all() and len(by) == 18
    for subject in by.index[[0, 7, 17]]:
        rows = np.flatnonzero(df["Subject"].astype(str) == str(subject))
        brute = _cooks(sleep_ml, _beta_without(rows, sleep_ml.theta, df))
        assert by.loc[subject, "cooks_distance"] == pytest.approx(brute, rel=1e-4)


def test_glmm_uses_working_weights(fitted):
    m = fitted("cbind(incidence, size - incidence) ~ period + (1|herd)", "cbpp", family="binomial")
    inf = m.influence()
    assert np.isfinite(inf.to_numpy()).all()
    p, q = len(m.beta), m.reterms[0].nlevels
    assert p < inf["leverage"].sum() < p + q
    assert len(m.influence(level="herd")) == q


def test_bad_input(sleep_ml):
    with pytest.raises(mm.MixedModelsError, match="no grouping factor 'Days'.*Subject"):
        sleep_ml.influence(level="Days")
    with pytest.raises(mm.NotFittedError):
        mm.LinearMixedModel(SLEEP, mm.datasets.load("sleepstudy")).influence()
