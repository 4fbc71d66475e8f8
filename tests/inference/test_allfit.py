"""allfit against lme4's allFit (tools/make_diagnostics_reference.R: sleepstudy by ML)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_data import load_json

import mixedmodels as mm
from mixedmodels.inference.allfit import OPTIMIZERS

REF = load_json("data/diagnostics_reference.json")["allfit_sleepstudy_ml"]


@pytest.fixture(scope="module")
def sleep_allfit(sleep_ml):
    return mm.allfit(sleep_ml, progress=False)


def test_every_optimizer_is_a_row_and_agrees_with_lme4(sleep_allfit, sleep_ml):
    r = sleep_allfit
    assert list(r.index) == list(OPTIMIZERS)  # the model's own (BOBYQA) first, no duplicate
    assert r["converged"].all()
    best = min(REF.values())
    assert np.allclose(r["objective"], best, atol=1e-5)
    assert abs(r["objective"].min() - sleep_ml.objective) < 1e-6
    assert (r["feval"] > 0).all() and (r["time"] > 0).all()
    assert r.spread["objective"] < 1e-5 and r.spread["Days"] < 1e-4


def test_the_model_is_not_changed(sleep_allfit, sleep_ml):
    assert sleep_ml.optsum.optimizer == "LN_BOBYQA"
    assert sleep_ml.objective == pytest.approx(sleep_allfit.loc["LN_BOBYQA", "objective"], abs=1e-6)


def test_a_failed_fit_is_a_row_not_an_error(fitted):
    m = fitted("Yield ~ 1 + (1|Batch)", "dyestuff")
    r = mm.allfit(m, ["LN_NEWUOA", "LN_BOBYQA"], progress=False)
    assert np.isnan(r.loc["LN_NEWUOA", "objective"]) and not r.loc["LN_NEWUOA", "converged"]
    assert "NEWUOA needs at least two parameters" in r.loc["LN_NEWUOA", "message"]
    assert r.loc["LN_BOBYQA", "objective"] == pytest.approx(m.objective, abs=1e-6)
    assert "LN_NEWUOA" in repr(r)


def test_bad_input(fitted):
    m = fitted("Yield ~ 1 + (1|Batch)", "dyestuff")
    with pytest.raises(mm.MixedModelsError, match="unknown optimizer"):
        mm.allfit(m, ["LN_NOPE"])
    with pytest.raises(mm.MixedModelsError, match="non-empty list"):
        mm.allfit(m, "LN_BOBYQA")
    with pytest.raises(mm.MixedModelsError, match="maxfeval"):
        mm.allfit(m, maxfeval=0)
    with pytest.raises(mm.NotFittedError):
        mm.allfit(mm.LinearMixedModel("Yield ~ 1 + (1|Batch)", mm.datasets.load("dyestuff")))


def test_progress_bar_is_drawn_when_asked(fitted, capsys):
    m = fitted("Yield ~ 1 + (1|Batch)", "dyestuff")
    mm.allfit(m, ["LN_BOBYQA"], progress=True)
    assert "allfit" in capsys.readouterr().err
