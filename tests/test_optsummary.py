"""OptSummary: settings, switching optimizers, the fit log, saving."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.optsummary import OptSummary

F = "Reaction ~ 1 + Days + (1 + Days | Subject)"


@pytest.fixture
def model(sleepstudy):
    return mm.LinearMixedModel(F, sleepstudy)


def test_defaults(model):
    o = model.optsum
    assert o.optimizer == "LN_BOBYQA"
    assert (o.ftol_rel, o.ftol_abs, o.xtol_rel) == (1e-12, 1e-8, 0.0)
    np.testing.assert_array_equal(o.xtol_abs, [1e-10] * 3)
    np.testing.assert_array_equal(o.initial_step, [0.75, 1.0, 0.75])
    np.testing.assert_array_equal(o.initial, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(o.lowerbd, [0.0, -np.inf, 0.0])
    assert o.maxfeval == -1 and not o.fitted


def test_switch_to_nelder_mead_reaches_same_optimum(model):
    model.fit()
    bobyqa = (model.objective, model.optsum.feval, model.theta.copy())
    model.optsum.optimizer = "LN_NELDERMEAD"
    model.fit()
    assert model.optsum.optimizer == "LN_NELDERMEAD"
    assert model.objective == pytest.approx(bobyqa[0], rel=1e-7)
    np.testing.assert_allclose(model.theta, bobyqa[2], rtol=1e-2, atol=1e-3)
    assert model.optsum.feval != bobyqa[1]
    text = str(model.optsum)
    for piece in (
        "LN_NELDERMEAD",
        "ftol_rel",
        "Function evaluations",
        str(model.optsum.feval),
        "Final objective value",
    ):
        assert piece in text


def test_fitlog_records_every_evaluation(model):
    model.fit()
    o = model.optsum
    assert len(o.fitlog) == o.feval
    assert o.fitlog[0][1] == pytest.approx(o.finitial)
    assert min(f for _, f in o.fitlog) == pytest.approx(o.fmin, abs=1e-8)
    df = o.to_frame()
    assert list(df.columns) == ["theta1", "theta2", "theta3", "objective"] and len(df) == o.feval


def test_verbose_prints_one_line_per_evaluation(model, capsys):
    model.fit(verbose=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("f_")]
    assert len(lines) == model.optsum.feval
    assert lines[0].startswith("f_1: 1784.64229") and lines[0].endswith("[1, 0, 1]")


def test_maxfeval_limits_and_is_reported(model):
    model.optsum.maxfeval = 10  # a budget for all runs: no restart is left, and the check says so
    with pytest.warns(mm.ConvergenceWarning, match="may not have reached the optimum"):
        model.fit()
    assert model.optsum.convergence == "not converged" and model.optsum.restarts == 0
    assert model.optsum.feval == 10 and model.optsum.returnvalue == "MAXEVAL_REACHED"


def test_progress_bar_does_not_change_result(model, sleepstudy):
    model.fit(progress=True)
    other = mm.LinearMixedModel(F, sleepstudy).fit()
    assert model.objective == pytest.approx(other.objective, rel=1e-12)


def test_roundoff_limited_is_a_normal_end(model, monkeypatch):
    import nlopt

    calls = {"n": 0}
    original = model.objective_at

    def objective(theta):
        calls["n"] += 1
        if calls["n"] == 30:
            raise nlopt.RoundoffLimited()
        return original(theta)

    monkeypatch.setattr(model, "objective_at", objective)
    model.optsum.check_convergence = False  # the run's own end, before any check or restart
    model.fit()
    assert model.optsum.returnvalue == "ROUNDOFF_LIMITED"
    assert np.isfinite(model.objective) and model.optsum.feval == 29


def test_save_and_load(model, tmp_path):
    model.fit()
    path = tmp_path / "optsum.json"
    model.optsum.save(path)
    back = OptSummary.load(path)
    np.testing.assert_allclose(back.final, model.optsum.final)
    assert back.fmin == model.optsum.fmin and back.feval == model.optsum.feval
    assert len(back.fitlog) == len(model.optsum.fitlog)


@pytest.mark.parametrize("name", ["sleepstudy_ml", "penicillin_ml", "dyestuff_reml", "pastes_ml"])
def test_lme4_settings_follow_lme4s_path(name):
    from reference_data import reference

    ref = reference(name)
    m = mm.LinearMixedModel(ref["formula"], mm.datasets.load(ref["data"]), reml=ref["reml"])
    m.optsum.use_lme4_settings()
    m.fit()
    assert m.optsum.feval == ref["feval"]
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), rtol=1e-6, atol=1e-7)


def test_save_and_load_keep_the_convergence_check(model, tmp_path):
    model.optsum.maxfeval = 12  # a stopped fit: the check has something to report
    with pytest.warns(mm.ConvergenceWarning):
        model.fit()
    o = model.optsum
    o.runs.append(
        {
            "optimizer": "LN_NEWUOA_BOUND",
            "start": "restart 1",
            "fmin": 1.5,
            "feval": 3,
            "returnvalue": "SUCCESS",
        }
    )
    o.restarts, o.winner = 1, "LN_NEWUOA_BOUND"
    o.scaled_gradient = np.array([0.1, np.nan, -0.2])
    path = tmp_path / "optsum.json"
    o.save(path)
    back = OptSummary.load(path)
    for key in ("gradient", "curvature", "scaled_gradient"):
        np.testing.assert_array_equal(getattr(back, key), getattr(o, key))
    for key in (
        "convergence",
        "check_feval",
        "restarts",
        "winner",
        "runs",
        "max_restarts",
        "check_convergence",
    ):
        assert getattr(back, key) == getattr(o, key), key
    assert back.convergence == "not converged" and back.check_feval > 0
    assert "Convergence check" in str(back) and "not converged" in str(back)


def test_lme4_settings_leave_the_other_fields_alone(model):
    before = {
        k: getattr(model.optsum, k)
        for k in ("optimizer", "maxfeval", "check_convergence", "ftol_rel")
    }
    model.optsum.use_lme4_settings()
    assert (
        model.optsum.max_restarts == 0
        and model.optsum.check_convergence == before["check_convergence"]
    )
    assert (model.optsum.optimizer, model.optsum.maxfeval) == (
        before["optimizer"],
        before["maxfeval"],
    )


@pytest.mark.parametrize(
    "name, match",
    [("GN_DIRECT", "finite bounds"), ("LD_LBFGS", "gradients"), ("LN_NOPE", "unknown optimizer")],
)
def test_unusable_optimizers_get_the_packages_error(sleepstudy, name, match):
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 | Subject)", sleepstudy)
    m.optsum.optimizer = name
    with pytest.raises(mm.MixedModelsError, match=match):
        m.fit()


@pytest.mark.parametrize(
    "setting, value, match",
    [
        ("optimizer", "LN_NEWUOA_BOUND", "NEWUOA needs at least two parameters"),
        ("initial_step", [0.0], "initial_step must be positive and finite"),
        ("initial_step", [float("nan")], "initial_step must be positive and finite"),
        ("ftol_rel", float("nan"), "ftol_rel must be a number"),
    ],
)
def test_settings_nlopt_refuses_or_misuses_are_named(setting, value, match):
    m = mm.LinearMixedModel("Reaction ~ Days + (1|Subject)", mm.datasets.load("sleepstudy"))
    setattr(m.optsum, setting, value)
    with pytest.raises(MixedModelsError, match=match):
        m.fit()


def _plateau_fit(roundoff_evals: int) -> OptSummary:
    """BOBYQA on 10^6 + |x - a|²: within about 10^-4 of a, every value rounds to 10^6."""
    from mixedmodels.optimize import minimize

    a = np.array([0.3, -0.7])
    optsum = OptSummary(np.zeros(2), np.full(2, -np.inf), initial_step=np.ones(2))
    optsum.roundoff_evals = roundoff_evals
    return minimize(lambda x: 1e6 + float((x - a) @ (x - a)), optsum)


def test_roundoff_stop_ends_a_search_that_only_samples_rounding():
    plain, stopped = _plateau_fit(0), _plateau_fit(5)
    assert plain.returnvalue != "ROUNDOFF_LIMITED" and stopped.returnvalue == "ROUNDOFF_LIMITED"
    assert stopped.feval < plain.feval
    assert stopped.fmin == pytest.approx(plain.fmin, rel=100 * np.finfo(float).eps)
    np.testing.assert_allclose(stopped.final, [0.3, -0.7], atol=1e-3)
    # the run stopped on its last K evaluations, all equal to the best at roundoff
    tail = np.array([f for _, f in stopped.fitlog[-5:]])
    assert np.all(np.abs(tail - stopped.fmin) <= 100 * np.finfo(float).eps * stopped.fmin)
    assert stopped.fmin == min(f for _, f in stopped.fitlog)


def test_roundoff_stop_waits_for_the_initial_points():
    """A constant objective: the 2n + 1 initial points do not count towards K."""
    from mixedmodels.optimize import minimize

    optsum = OptSummary(np.ones(3), np.zeros(3))
    optsum.roundoff_evals = 4
    minimize(lambda x: 2.0, optsum)
    assert optsum.feval == 2 * 3 + 1 + 4 and optsum.returnvalue == "ROUNDOFF_LIMITED"


def test_expensive_models_get_the_roundoff_stop_and_short_first_steps(monkeypatch):
    """Below ROUNDOFF_STOP_DENSE nothing changes; above it the optimum is the same."""
    import mixedmodels.lmm as lmm

    df = mm.datasets.load("penicillin")
    f = "diameter ~ 1 + (1|plate) + (1|sample)"
    plain = mm.LinearMixedModel(f, df)
    assert plain.optsum.roundoff_evals == 0 and "roundoff_evals" not in str(plain.optsum)
    np.testing.assert_allclose(plain.optsum.initial_step, 0.75 * plain.optsum.initial)
    monkeypatch.setattr(lmm, "ROUNDOFF_STOP_DENSE", 0)
    monkeypatch.setattr(lmm, "SMALL_DENSE", 0)
    quick = mm.LinearMixedModel(f, df)
    np.testing.assert_array_equal(quick.optsum.initial, plain.optsum.initial)
    np.testing.assert_allclose(quick.optsum.initial_step, 0.1 * quick.optsum.initial)
    assert quick.optsum.roundoff_evals == 5 and "roundoff_evals" in str(quick.optsum)
    plain.fit(), quick.fit()
    assert quick.objective == pytest.approx(plain.objective, rel=1e-10)
    np.testing.assert_allclose(quick.theta, plain.theta, rtol=1e-5)
    assert OptSummary.from_dict(quick.optsum.to_dict()).roundoff_evals == 5
    lme4 = quick.optsum.use_lme4_settings()
    assert lme4.roundoff_evals == 0
    np.testing.assert_allclose(lme4.initial_step, plain.optsum.initial_step)  # NLopt's, as lme4
