"""More models against lme4 1.1-31 (tools/make_more_reference.R): vector terms beside others,
nested and crossed random slopes, probit and cloglog links, quadrature with a non-canonical link."""

from __future__ import annotations

import numpy as np
import pytest
from reference_data import load_json

import mixedmodels as mm

MORE = load_json("data/more_reference.json")


def fit(ref):
    df = mm.datasets.load(ref["data"])
    if ref["data"] == "sleepstudy":
        df = df.assign(dayf=df["Days"].astype(str))
    if ref["kind"] == "lmm":
        return mm.LinearMixedModel(ref["py_formula"], df, reml=ref["reml"]).fit()
    return mm.GeneralizedLinearMixedModel(
        ref["py_formula"], df, family=ref["family"], link=ref["link"]
    ).fit(nagq=ref["nAGQ"])


def relative_covariances(m, theta) -> np.ndarray:
    keep = m.theta.copy()
    m.set_theta(np.asarray(theta, dtype=float))
    out = np.concatenate([(r.lambda_ @ r.lambda_.T).ravel() for r in m.reterms])
    m.set_theta(keep)
    return out


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_models(name):
    ref = MORE[name]
    m = fit(ref)
    obj, best = ref["objective"], ref["best_objective"]
    # never above lme4's default, never below the best of lme4's optimizers (allFit)
    assert best - 1e-6 * abs(best) <= m.objective <= obj + 1e-6 * abs(obj)
    if m.objective < obj - 1e-4 * abs(obj):
        # a better optimum than lme4's default stop (grouse_lmm_slope: 871.60 against 882.66, which every
        # other lme4 optimizer confirms): the estimates are not comparable with lme4's default fit
        return
    if m.issingular:
        # on the boundary λ is not unique (a zero standard deviation leaves a correlation of ±1 and
        # only λλ' identified): compare the relative covariance matrices instead of θ
        np.testing.assert_allclose(
            relative_covariances(m, m.theta), relative_covariances(m, ref["theta"]), atol=1e-2
        )
    else:
        np.testing.assert_allclose(
            m.theta, ref["theta"], atol=2e-2 if m.objective < obj - 1e-7 * abs(obj) else 1e-2
        )
    se = np.asarray(ref["stderror"])
    assert np.all(np.abs(m.beta - ref["beta"]) <= 0.02 * se)
    variants = [se] + ([np.asarray(ref["stderror_rx"])] if ref.get("stderror_rx") else [])
    assert any(np.all(np.abs(m.stderror / v - 1) <= 0.02) for v in variants)
    assert len(m.coefnames) == len(ref["beta_names"])
