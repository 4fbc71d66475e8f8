"""The lean paths of PIRLS's re-weighting (blocks.PenalizedSystem, one scalar term) against the general ones.

``PenalizedSystem.lean = False`` sends every evaluation through the general
assembly and factorisation; the lean paths do the same arithmetic, so fits
and single evaluations agree to the last bit (checked here to 1e-12).
Models where the lean paths do not apply (two scalar terms, a vector term)
are included: they must not be affected at all.  Also: a fit returns to its
optimum as the best evaluation left it (glmm._BestEvaluation), not by PIRLS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.blocks import PenalizedSystem


def _slope_data(seed: int = 3, n_groups: int = 25, per: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(0.0, 1.0, len(g))
    eta = 0.3 + 0.2 * x + rng.normal(0, 0.4, n_groups)[g] + rng.normal(0, 0.2, n_groups)[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": [f"g{i}" for i in g]})


def _grouse_offset() -> tuple[pd.DataFrame, np.ndarray]:
    df = mm.datasets.load("grouseticks")
    return df, 0.1 * np.sin(np.arange(len(df)))


MODELS = {
    "weighted binomial": lambda: (
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
        mm.datasets.load("cbpp"),
        {"family": "binomial"},
    ),
    "poisson with offset": lambda: (
        "TICKS ~ 1 + YEAR + (1|BROOD)",
        _grouse_offset()[0],
        {"family": "poisson", "offset": _grouse_offset()[1]},
    ),
    "two scalar terms": lambda: (
        "TICKS ~ 1 + YEAR + (1|BROOD) + (1|LOCATION)",
        mm.datasets.load("grouseticks"),
        {"family": "poisson"},
    ),
    "vector term": lambda: ("y ~ 1 + x + (1 + x|g)", _slope_data(), {"family": "poisson"}),
}


def _fit(name: str, lean: bool, monkeypatch, **fit_args):
    monkeypatch.setattr(PenalizedSystem, "lean", lean)
    formula, data, kwargs = MODELS[name]()
    return mm.GeneralizedLinearMixedModel(formula, data, **kwargs).fit(**fit_args)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fast", [True, False])
def test_lean_fit_equals_general_fit(name, fast, monkeypatch):
    general = _fit(name, False, monkeypatch, fast=fast)
    lean = _fit(name, True, monkeypatch, fast=fast)
    assert lean.objective == pytest.approx(general.objective, rel=1e-12)
    np.testing.assert_allclose(lean.theta, general.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lean.beta, general.beta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lean.u, general.u, rtol=1e-10, atol=1e-12)
    assert lean.optsum.feval == general.optsum.feval


def test_lean_quadrature_fit_equals_general_fit(monkeypatch):
    general = _fit("weighted binomial", False, monkeypatch, nagq=9)
    lean = _fit("weighted binomial", True, monkeypatch, nagq=9)
    assert lean.objective == pytest.approx(general.objective, rel=1e-12)
    np.testing.assert_allclose(lean.beta, general.beta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lean.u, general.u, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_lean_evaluations_equal_general_ones(name, monkeypatch):
    """objective_at from the same start, fast (β in PIRLS) and with β given, and the whole L after."""
    out = {}
    for lean in (False, True):
        monkeypatch.setattr(PenalizedSystem, "lean", lean)
        formula, data, kwargs = MODELS[name]()
        m = mm.GeneralizedLinearMixedModel(formula, data, **kwargs)
        theta = 0.7 * np.asarray(m.lmm.optsum.initial) + 0.05
        fast = m.objective_at(theta)
        beta, u = m.beta.copy(), m.u.copy()
        joint = m.objective_at(1.1 * theta, beta=beta + 0.01)
        m.refactor()
        out[lean] = (fast, beta, u, joint, m.u.copy(), m.lmm.system.L33.copy())
    for a, b in zip(out[True], out[False]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "fit_args"),
    [
        ("weighted binomial", {"fast": True}),
        ("weighted binomial", {"nagq": 5}),
        ("poisson with offset", {}),
        ("two scalar terms", {"fast": True}),
        ("vector term", {}),
    ],
)
def test_the_fit_ends_as_its_best_evaluation_left_it(name, fit_args, monkeypatch):
    """The fit returns to its optimum without PIRLS (glmm._BestEvaluation): the state it leaves is
    what evaluating the optimum again gives (PIRLS from other starting modes: to its tolerance)."""
    m = _fit(name, True, monkeypatch, **fit_args)
    assert m.objective == m.optsum.fmin
    best = min(f for _, f in m.optsum.fitlog)
    assert m.optsum.fmin == pytest.approx(best, rel=1e-13, abs=0)
    theta, beta, u = m.theta.copy(), m.beta.copy(), m.u.copy()
    final = m.optsum.final
    ntheta = len(theta)
    if len(final) == ntheta:
        again = m.objective_at(final)
    else:
        again = m.objective_at(final[:ntheta], beta=final[ntheta:])
    assert again == pytest.approx(m.optsum.fmin, rel=1e-12)
    np.testing.assert_allclose(m.theta, theta, rtol=0, atol=0)
    np.testing.assert_allclose(m.beta, beta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.u, u, rtol=1e-8, atol=1e-9)


def test_a_joint_fit_starts_from_a_looser_fast_fit_and_ends_at_the_tight_optimum(monkeypatch):
    """The fast stage of a joint fit stops at JOINT_START_FTOL; the joint stage still converges."""
    from mixedmodels import glmm

    df = mm.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"
    m = mm.GeneralizedLinearMixedModel(formula, df, family="binomial").fit()
    assert m.optsum_fast.ftol_rel == glmm.JOINT_START_FTOL
    assert m.optsum.ftol_rel == 1e-12
    fast = mm.GeneralizedLinearMixedModel(formula, df, family="binomial").fit(fast=True)
    assert fast.optsum.ftol_rel == 1e-12  # a fast fit is final: its own tolerance
    assert m.optsum_fast.feval < fast.optsum.feval
    with monkeypatch.context() as patch:
        patch.setattr(glmm, "JOINT_START_FTOL", 0.0)
        tight = mm.GeneralizedLinearMixedModel(formula, df, family="binomial").fit()
    assert tight.optsum_fast.ftol_rel == 1e-12
    np.testing.assert_allclose(m.objective, tight.objective, rtol=1e-10)
    np.testing.assert_allclose(m.beta, tight.beta, rtol=1e-4)
    lme4 = mm.GeneralizedLinearMixedModel(formula, df, family="binomial")
    lme4.optsum.use_lme4_settings()
    lme4.fit()
    assert lme4.optsum_fast.ftol_rel == 0.0  # lme4's rule stops on x in both stages
