"""drop1 against lme4's drop1(test = "Chisq") (tools/make_diagnostics_reference.R)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_data import load_json

import mixedmodels as mm
from mixedmodels.inference.drop1 import droppable_terms

REF = load_json("data/diagnostics_reference.json")


def _compare(table, ref, tol):
    assert list(table.index) == ref["terms"]
    assert np.allclose(table["df"].iloc[1:], ref["df"][1:])
    assert np.allclose(table["aic"], ref["AIC"], atol=tol, rtol=0)
    assert np.allclose(table["lrt"].iloc[1:], ref["LRT"][1:], atol=tol, rtol=0)
    assert np.allclose(table["p"].iloc[1:], ref["p"][1:], rtol=1e-3)


def test_lmm_ml(fitted):
    m = fitted("log(TICKS+1) ~ YEAR + cHEIGHT + (1|LOCATION/BROOD)", "grouseticks")
    _compare(m.drop1(), REF["drop1_grouse_lmm"], 1e-5)


def test_reml_fit_is_compared_by_ml(fitted):
    m = fitted("Reaction ~ Days + (Days|Subject)", "sleepstudy", reml=True)
    table = m.drop1(test="Chisq")
    _compare(table, REF["drop1_sleepstudy_reml"], 1e-5)
    assert m.reml and "maximum likelihood" in table.attrs["note"]


def test_glmm(fitted):
    """lme4's Laplace fits stop about 6e-4 short of ours in deviance."""
    m = fitted("cbind(incidence, size - incidence) ~ period + (1|herd)", "cbpp", family="binomial")
    _compare(m.drop1(), REF["drop1_cbpp"], 2e-3)


def test_marginality_and_test_none(fitted):
    m = fitted("log(TICKS+1) ~ YEAR * cHEIGHT + (1|LOCATION)", "grouseticks")
    assert droppable_terms(m) == ["YEAR:cHEIGHT"]
    table = m.drop1(test="none")
    assert list(table.columns) == ["df", "aic"] and table.loc["YEAR:cHEIGHT", "df"] == 2


def test_bad_input(fitted):
    m = fitted("Yield ~ 1 + (1|Batch)", "dyestuff")
    with pytest.raises(mm.MixedModelsError, match="no fixed-effects term"):
        m.drop1()
    with pytest.raises(mm.MixedModelsError, match="'Chisq' or 'none'"):
        m.drop1(test="F")
    s = fitted("Reaction ~ Days + (1|Subject)", "sleepstudy")
    with pytest.raises(mm.MixedModelsError, match="data"):
        s.copy().drop1()
    assert len(s.copy().drop1(data=mm.datasets.load("sleepstudy"))) == 2
