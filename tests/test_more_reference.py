"""More models against lme4 1.1-31 (tools/make_more_reference.R): vector terms beside others,
nested and crossed random slopes, probit and cloglog links, quadrature with a non-canonical link."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm

MORE = json.loads((Path(__file__).parent / "data" / "more_reference.json").read_text())


# lme4's default fit is not at the optimum here (allFit's optimizers and the package's restarts reach 871.60,
# 11 below it: tests/data/hard, grouse_lmm_slope_ml): follow lme4's path to compare with lme4's numbers
LME4_MISSES = {"grouse_lmm_slope"}


def fit(ref, name=""):
    df = mm.datasets.load(ref["data"])
    if ref["data"] == "sleepstudy":
        df = df.assign(dayf=df["Days"].astype(str))
    if ref["kind"] == "lmm":
        m = mm.LinearMixedModel(ref["py_formula"], df, reml=ref["reml"])
        if name in LME4_MISSES:
            m.optsum.use_lme4_settings()
        return m.fit()
    return mm.GeneralizedLinearMixedModel(ref["py_formula"], df, family=ref["family"], link=ref["link"]).fit(nagq=ref["nAGQ"])


def relative_covariances(m, theta) -> np.ndarray:
    keep = m.theta.copy()
    m.set_theta(np.asarray(theta, dtype=float))
    out = np.concatenate([(r.lambda_ @ r.lambda_.T).ravel() for r in m.reterms])
    m.set_theta(keep)
    return out


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_models(name):
    ref = MORE[name]
    m = fit(ref, name)
    obj = ref["objective"]
    assert obj - 1e-4 * abs(obj) <= m.objective <= obj + 1e-6 * abs(obj)
    if m.issingular:
        # on the boundary λ is not unique (a zero standard deviation leaves a correlation of ±1 and
        # only λλ' identified): compare the relative covariance matrices instead of θ
        np.testing.assert_allclose(relative_covariances(m, m.theta), relative_covariances(m, ref["theta"]), atol=1e-2)
    else:
        np.testing.assert_allclose(m.theta, ref["theta"], atol=2e-2 if m.objective < obj - 1e-7 * abs(obj) else 1e-2)
    se = np.asarray(ref["stderror"])
    assert np.all(np.abs(m.beta - ref["beta"]) <= 0.02 * se)
    variants = [se] + ([np.asarray(ref["stderror_rx"])] if ref.get("stderror_rx") else [])
    assert any(np.all(np.abs(m.stderror / v - 1) <= 0.02) for v in variants)
    assert len(m.coefnames) == len(ref["beta_names"])
