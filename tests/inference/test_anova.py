"""anova(type=1/2/3) against lmerTest (Satterthwaite, Kenward-Roger) and car::Anova (GLMM).

References: tests/data/anova_emmeans_reference.json from
tools/make_anova_emmeans_reference.R (versions recorded in the file).  Models
are evaluated at lme4's θ (tests/inference/anova_cases.py).  Tolerances: the
issue's (1e-6 relative for Satterthwaite, 1e-4 for Kenward-Roger).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError

from .anova_cases import glmm, lmm, reference

SATTERTHWAITE_RTOL = 1e-6
KR_RTOL = 1e-4


def _check(table, ref: dict, rtol: float) -> None:
    terms = list(np.atleast_1d(ref["term"]))
    assert list(table.index) == terms
    np.testing.assert_allclose(table["F value"], ref["F"], rtol=rtol)
    np.testing.assert_allclose(table["NumDF"], ref["NumDF"], rtol=0)
    np.testing.assert_allclose(table["DenDF"], ref["DenDF"], rtol=rtol)
    np.testing.assert_allclose(table["Pr(>F)"], ref["p"], rtol=rtol * 10)


CASES = [(c, t) for c in ("crossed", "splitplot", "unbalanced") for t in (1, 2)]
LMM = ("crossed", "splitplot", "unbalanced")


@pytest.mark.parametrize("case,type", CASES + [("missing_cell", 1), ("missing_cell", 2)])
def test_satterthwaite_anova_matches_lmertest(case, type):
    ref = reference()["lmm"][case][f"anova{type}"]
    _check(lmm(case).anova(type=type), ref, SATTERTHWAITE_RTOL)


@pytest.mark.parametrize("case", LMM)
def test_type_three_matches_lmertest(case):
    # lmerTest's type III hypotheses pass through zapsmall (7 significant digits), which moves
    # its F and df by up to 1e-5 on the unbalanced design; the same tests on the exact rows
    # (contestMD of each term's sum-coded coefficients) agree to 1e-6
    table = lmm(case).anova(type=3)
    _check(table, reference()["lmm"][case]["anova3"], 1e-4)
    _check(table, reference()["lmm"][case]["anova3_coefficients"], SATTERTHWAITE_RTOL)


@pytest.mark.parametrize("case", ["crossed", "splitplot", "unbalanced"])
def test_kenward_roger_anova_matches_lmertest(case):
    ref = reference()["lmm"][case]["anova3_kr"]
    table = lmm(case).anova(type=3, ddf="kenward-roger")
    _check(table, ref, KR_RTOL)
    assert table.heading.startswith("Type III Analysis of Variance Table with Kenward-Roger's")


@pytest.mark.parametrize("type", [2, 3])
def test_glmm_wald_chisquare_matches_car(type):
    # car::Anova with lme4's vcov(use.hessian = FALSE) at lme4's estimates; the covariances
    # agree to 6e-5 (lme4 keeps the working weights of its last PIRLS evaluation)
    ref = reference()["glmm"][f"anova{type}"]
    table = glmm().anova(type=type)
    assert list(table.index) == list(np.atleast_1d(ref["term"]))
    np.testing.assert_allclose(table["Chisq"], ref["Chisq"], rtol=2e-4)
    np.testing.assert_allclose(table["Df"], ref["Df"], rtol=0)
    np.testing.assert_allclose(table["Pr(>Chisq)"], ref["p"], rtol=5e-3)  # p of 1e-25


def test_printed_like_lmertest():
    text = str(lmm("splitplot").anova())
    assert text.startswith("Type III Analysis of Variance Table with Satterthwaite's method")
    assert "Sum Sq" in text and "Pr(>F)" in text and "nitro:Variety" in text


def test_treatment_coding_warns_for_type_three():
    df = mm.datasets.load("oats")
    m = mm.LinearMixedModel("yield ~ nitro * Variety + (1|Block/Variety)", df, reml=True).fit()
    with pytest.warns(UserWarning, match="'Variety'.*do not sum to zero"):
        m.anova(type=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.anova(type=1)  # sequential tests do not depend on the coding
        lmm("splitplot").anova(type=3)


def test_bad_arguments():
    m = lmm("splitplot")
    with pytest.raises(MixedModelsError, match="anova type"):
        m.anova(type=4)
    with pytest.raises(MixedModelsError, match="unknown ddf"):
        m.anova(ddf="containment")
    with pytest.raises(MixedModelsError, match="type I"):
        glmm().anova(type=1)


def test_kenward_roger_needs_a_reml_fit(sleep_ml):
    with pytest.raises(MixedModelsError, match="REML"):
        sleep_ml.anova(ddf="kenward-roger")


def test_anova_with_models_is_the_likelihood_ratio_test(sleep_ml):
    small = mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", mm.datasets.load("sleepstudy")
    ).fit()
    lrt = sleep_ml.anova(small)
    assert len(lrt) == 2


def test_module_anova_of_one_model_is_its_term_tests(sleep_ml):
    small = mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", mm.datasets.load("sleepstudy")
    ).fit()
    pd.testing.assert_frame_equal(mm.anova(sleep_ml), sleep_ml.anova())
    pd.testing.assert_frame_equal(mm.anova(sleep_ml, type=1), sleep_ml.anova(type=1))
    pd.testing.assert_frame_equal(mm.anova(small, sleep_ml), mm.lrt(small, sleep_ml))
    with pytest.raises(MixedModelsError, match="likelihood ratio test"):
        mm.anova(small, sleep_ml, type=3)
    with pytest.raises(MixedModelsError, match="not names"):
        mm.anova(small, names=["a"])
