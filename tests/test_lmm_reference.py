"""Agreement of LinearMixedModel with lme4 1.1-31 on every reference LMM.

Tolerances (issue "Linear mixed models from formulas"): objective within 1e-6
relative or lower than lme4's; β within 2% of its standard error; standard
errors and σ within 1e-3 relative; θ within 1e-2.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_data import fitted_lmm, reference, reference_names

LMMS = reference_names("lmm")


def test_all_reference_lmms_are_covered():
    assert set(LMMS) >= {
        "dyestuff_ml",
        "dyestuff_reml",
        "dyestuff2_ml",
        "sleepstudy_ml",
        "sleepstudy_reml",
        "sleepstudy_zerocorr_ml",
        "penicillin_ml",
        "penicillin_reml",
        "pastes_ml",
        "insteval_ml",
    }


@pytest.mark.parametrize("name", LMMS)
def test_objective(name):
    ref, m = reference(name), fitted_lmm(name)
    assert m.objective <= ref["objective"] * (1 + 1e-6)
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)


@pytest.mark.parametrize("name", LMMS)
def test_parameters(name):
    ref, m = reference(name), fitted_lmm(name)
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), atol=1e-2)
    se_ref = np.atleast_1d(ref["stderror"])
    assert np.all(np.abs(m.beta - np.atleast_1d(ref["beta"])) <= 0.02 * se_ref)
    np.testing.assert_allclose(m.stderror, se_ref, rtol=1e-3)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)


@pytest.mark.parametrize("name", LMMS)
def test_names_and_counts(name):
    ref, m = reference(name), fitted_lmm(name)
    assert m.theta_names == list(np.atleast_1d(ref["theta_names"]))
    assert m.coefnames == list(np.atleast_1d(ref["beta_names"]))
    assert m.nobs == ref["nobs"] and m.dof == ref["df"]
    assert {r.name: r.nlevels for r in m.reterms} == ref["ngrps"]
    assert m.issingular == ref["singular"]


@pytest.mark.parametrize("name", LMMS)
def test_fit_statistics(name):
    ref, m = reference(name), fitted_lmm(name)
    assert m.loglikelihood == pytest.approx(ref["loglik"], rel=1e-6)
    assert m.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert m.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert m.deviance == pytest.approx(ref["deviance"], rel=1e-6)


@pytest.mark.parametrize("name", LMMS)
def test_fitted_residuals_varcorr(name):
    ref, m = reference(name), fitted_lmm(name)
    scale = np.abs(ref["fitted_head"]).max()
    np.testing.assert_allclose(m.fitted()[:10], ref["fitted_head"], atol=1e-3 * scale)
    np.testing.assert_allclose(m.residuals()[:10], ref["residuals_head"], atol=1e-3 * scale)
    vc = m.varcorr(form="long")
    assert list(vc["grp"]) == [r["grp"] for r in ref["varcorr"]]
    sd = vc["sdcor"].to_numpy()
    ref_sd = np.array([r["sdcor"] for r in ref["varcorr"]])
    np.testing.assert_allclose(sd, ref_sd, rtol=1e-2, atol=1e-4 * ref["sigma"])


@pytest.mark.parametrize("name", LMMS)
def test_conditional_modes(name):
    ref, m = reference(name), fitted_lmm(name)
    ours = m.ranef(form="long").set_index(["grpvar", "term", "grp"])
    for row in ref["ranef"]:
        got = ours.loc[(row["grpvar"], row["term"], row["grp"])]
        assert got["condval"] == pytest.approx(
            row["condval"], abs=1e-3 * ref["sigma"] + 1e-3 * abs(row["condval"])
        )
        assert got["condsd"] == pytest.approx(row["condsd"], rel=2e-3, abs=1e-6)


@pytest.mark.cholmod
@pytest.mark.parametrize("name", ["penicillin_ml", "pastes_ml", "insteval_ml"])
def test_cholmod_block_gives_the_same_objective(name):
    import mixedmodels as mm

    ref, m = reference(name), fitted_lmm(name)
    sparse = mm.LinearMixedModel(
        ref["formula"], mm.datasets.load(ref["data"]), reml=ref["reml"], sparse=True
    )
    assert sparse.system.factorB.sparse
    assert sparse.objective_at(m.theta) == pytest.approx(m.objective, rel=1e-10)
