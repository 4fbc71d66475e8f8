"""GLMM: bad input gives a clear error; responses in all their accepted forms."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError

CBPP = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"


@pytest.fixture(scope="module")
def cbpp():
    return mm.datasets.load("cbpp")


def glmm(formula, data, **kw):
    return mm.GeneralizedLinearMixedModel(formula, data, **kw)


def test_unknown_family(cbpp):
    with pytest.raises(MixedModelsError, match="unknown family 'binomal'"):
        glmm(CBPP, cbpp, family="binomal")


def test_unknown_link(cbpp):
    with pytest.raises(MixedModelsError, match="unknown link 'logitt'"):
        glmm(CBPP, cbpp, family="binomial", link="logitt")


def test_link_outside_family_domain(cbpp):
    with pytest.raises(MixedModelsError, match="link 'inverse' is not valid for family 'binomial'"):
        glmm(CBPP, cbpp, family="binomial", link="inverse")


def test_binomial_proportion_outside_unit_interval(cbpp):
    with pytest.raises(MixedModelsError, match=r"\[0, 1\]"):
        glmm("incidence ~ period + (1|herd)", cbpp, family="binomial")


def test_negative_failures(cbpp):
    with pytest.raises(MixedModelsError, match="failures must be non-negative"):
        glmm("cbind(incidence, incidence - size) ~ period + (1|herd)", cbpp, family="binomial")


def test_poisson_negative_counts(cbpp):
    with pytest.raises(MixedModelsError, match="negative"):
        glmm("I(incidence - 5) ~ period + (1|herd)", cbpp, family="poisson")


def test_poisson_non_integer_counts_warn(cbpp):
    with pytest.warns(UserWarning, match="integer"):
        glmm("I(incidence + 0.5) ~ period + (1|herd)", cbpp, family="poisson")


def test_nagq_needs_single_scalar_term():
    verbagg = mm.datasets.load("verbagg")
    m = glmm("r2 ~ 1 + Anger + (1|id) + (1|item)", verbagg, family="bernoulli")
    with pytest.raises(MixedModelsError, match="single scalar random-effects term"):
        m.fit(nagq=5)


def test_nagq_not_positive(cbpp):
    with pytest.raises(MixedModelsError, match="positive integer"):
        glmm(CBPP, cbpp, family="binomial").fit(nagq=-1)
    assert glmm(CBPP, cbpp, family="binomial").fit(nagq=0).fast  # lme4's nAGQ = 0: the fast fit


def test_two_column_response_needs_binomial(cbpp):
    with pytest.raises(MixedModelsError, match="binomial"):
        glmm(CBPP, cbpp, family="poisson")


def test_factor_response_needs_binary_family():
    verbagg = mm.datasets.load("verbagg")
    with pytest.raises(MixedModelsError, match="categorical"):
        glmm("r2 ~ 1 + Anger + (1|id)", verbagg, family="poisson")


def test_response_forms_agree(cbpp):
    """cbind(successes, failures) and proportion with weights = trials give the same fit."""
    a = glmm(CBPP, cbpp, family="binomial").fit(fast=True)
    b = glmm(
        "I(incidence / size) ~ 1 + period + (1|herd)", cbpp, family="binomial", weights="size"
    ).fit(fast=True)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-8)


def test_boolean_and_factor_bernoulli_agree():
    verbagg = mm.datasets.load("verbagg")
    f = "1 + Anger + Gender + (1|id)"
    a = glmm(f"r2 ~ {f}", verbagg, family="bernoulli").fit(fast=True)
    b = glmm(
        f"yes ~ {f}", verbagg.assign(yes=verbagg["r2"] == "Y"), family=mm.families.Bernoulli()
    ).fit(fast=True)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)


def test_offset_argument_equals_offset_term():
    ticks = mm.datasets.load("grouseticks")
    a = glmm("TICKS ~ YEAR + (1|BROOD) + offset(log(HEIGHT))", ticks, family="poisson").fit(
        fast=True
    )
    b = glmm(
        "TICKS ~ YEAR + (1|BROOD)", ticks, family="poisson", offset=np.log(ticks["HEIGHT"])
    ).fit(fast=True)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    np.testing.assert_allclose(a.fitted(), b.fitted(), rtol=1e-10)


def test_residual_kinds(cbpp):
    m = glmm(CBPP, cbpp, family="binomial").fit(fast=True)
    np.testing.assert_allclose(m.residuals("response"), m.y - m.fitted())
    assert np.sum(m.residuals() ** 2) == pytest.approx(m.deviance)
    with pytest.raises(MixedModelsError, match="unknown residual type"):
        m.residuals("raw")


def test_printing(cbpp):
    text = str(glmm(CBPP, cbpp, family="binomial").fit())
    for piece in ("Laplace", "binomial", "logit", "herd", "period2"):
        assert piece in text
