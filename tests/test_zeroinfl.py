"""Zero-inflated Poisson and negative binomial GLMMs against glmmTMB 1.1.5.

Reference numbers: tests/data/glmmtmb_reference.json from tools/make_glmmtmb_reference.R.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from glmmtmb_fits import check_against_glmmtmb, fitted, reference

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError, MixedModelsError
from mixedmodels.families import NegativeBinomial2, Poisson
from mixedmodels.zeroinfl import zi_eta_derivatives, zi_logpdf, zi_nuisance_derivatives

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("family", [Poisson(), NegativeBinomial2(dispersion=1.3)])
def test_zi_derivatives_match_finite_differences(family):
    y = RNG.poisson(2.0, 300).astype(float)
    eta, eta_zi = RNG.normal(0.5, 1.0, 300), RNG.normal(-1.0, 2.0, 300)
    d1, d2 = zi_eta_derivatives(family, y, eta, eta_zi)
    h = 1e-6
    fd1 = (zi_logpdf(family, y, eta + h, eta_zi) - zi_logpdf(family, y, eta - h, eta_zi)) / (2 * h)
    up = zi_eta_derivatives(family, y, eta + h, eta_zi)[0]
    down = zi_eta_derivatives(family, y, eta - h, eta_zi)[0]
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(d2, (up - down) / (2 * h), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", [Poisson(), NegativeBinomial2(dispersion=1.3)])
def test_zi_derivatives_in_the_zero_inflation_predictor(family):
    """∂ℓ/∂z, ∂²ℓ/∂z² and ∂²ℓ/∂η∂z (Newton's β_zi block) against central differences."""
    y = RNG.poisson(2.0, 300).astype(float)
    eta, z = RNG.normal(0.5, 1.0, 300), RNG.normal(-1.0, 2.0, 300)
    gz, d2z, cross = zi_nuisance_derivatives(family, y, eta, z)
    h = 1e-6
    fd = (zi_logpdf(family, y, eta, z + h) - zi_logpdf(family, y, eta, z - h)) / (2 * h)
    up, down = (zi_nuisance_derivatives(family, y, eta, z + s)[0] for s in (h, -h))
    d1_up, d1_down = (zi_eta_derivatives(family, y, eta, z + s)[0] for s in (h, -h))
    np.testing.assert_allclose(gz, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d2z, (up - down) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cross, (d1_up - d1_down) / (2 * h), rtol=1e-6, atol=1e-8)


def test_zi_logpdf_is_the_mixture():
    from scipy import stats

    y = np.array([0.0, 0.0, 3.0])
    eta, eta_zi = np.log([2.0, 0.1, 4.0]), np.array([0.3, -40.0, 2.0])
    p = 1 / (1 + np.exp(-eta_zi))
    expected = np.where(
        y == 0,
        np.log(p + (1 - p) * stats.poisson.pmf(0, np.exp(eta))),
        np.log1p(-p) + stats.poisson.logpmf(y, np.exp(eta)),
    )
    np.testing.assert_allclose(zi_logpdf(Poisson(), y, eta, eta_zi), expected, rtol=1e-12)


def test_zinb_matches_glmmtmb():
    check_against_glmmtmb("owls_nb2_zi")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sal_zip", "owls_nb1_zi", "sal_zinb_zimined", "sal_zinb_mined"])
def test_zip_and_zinb1_match_glmmtmb(name):
    check_against_glmmtmb(name)


@pytest.mark.slow
def test_zinb_species_objective_on_a_flat_ridge():
    """glmmTMB's ZINB with ziformula=~spp sends one species' zero inflation to 0 (SE 3012):
    the objective at glmmTMB's point is glmmTMB's, and the fit gets there to 1e-6 relative."""
    ref, m = reference("sal_zinb"), fitted("sal_zinb")
    np.testing.assert_allclose(m.objective, ref["objective"], rtol=1e-6)
    par, nb, nz = np.asarray(ref["par"]), len(ref["beta"]), len(ref["zi_beta"])
    at_tmb = np.concatenate([[np.exp(par[-1])], par[:nb], par[nb : nb + nz], [par[nb + nz]]])
    probe = m.copy()
    assert probe.outer_objective(at_tmb) == pytest.approx(ref["objective"], rel=1e-9)
    assert np.all(np.abs(m.beta - np.asarray(ref["beta"])) <= 0.02 * np.asarray(ref["se"]))


def test_zero_inflation_outputs():
    m = fitted("owls_nb2_zi")
    p = m.predict(type="zprob")
    zi = m.coeftable(component="zi")
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-zi.iloc[0, 0])))
    mu = np.exp(m.predict())
    np.testing.assert_allclose(m.predict(type="response"), (1 - p) * mu)
    np.testing.assert_allclose(m.fitted(), (1 - p) * mu)
    ref = reference("owls_nb2_zi")
    np.testing.assert_allclose(m.fitted().to_numpy()[:10], ref["mu_head"], rtol=1e-3)
    text = str(m)
    assert "Zero-inflation model: ~1" in text and "Dispersion parameter for nbinom2" in text
    assert m.dof == ref["df"]
    assert m.aic == pytest.approx(ref["aic"], rel=1e-6)
    new = mm.datasets.load("owls").iloc[:5]
    np.testing.assert_allclose(m.predict(new, type="zprob"), p.iloc[:5])
    with pytest.raises(MixedModelsError, match="not defined for a zero-inflated model"):
        m.residuals("deviance")


def test_summary_shows_the_dispersion_and_the_zero_inflation_model():
    m = fitted("owls_nb2_zi")
    text, md = m.summary(), m._repr_markdown_()
    zi = m.coeftable(component="zi")
    for shown in (text, md):
        assert "Zero-inflation model: ~1" in shown
        assert f"{m.dispersion:.4g}" in shown and "Dispersion parameter for nbinom2" in shown
        assert f"{zi.iloc[0, 0]:.4f}" in shown
    # a model without these components keeps the plain summary
    plain = mm.GeneralizedLinearMixedModel(
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
        mm.datasets.load("cbpp"),
        family="binomial",
    ).fit()
    assert plain.other_components() == [] and "Zero-inflation" not in plain.summary()


def test_simulated_zero_fraction():
    m = fitted("owls_nb2_zi")
    sims = m.simulate(n=20, seed=11)
    zeros = (sims.to_numpy() == 0).mean()
    p0 = m.predict(type="zprob").to_numpy()
    mu, k = np.exp(m.predict().to_numpy()), m.dispersion
    expected = np.mean(p0 + (1 - p0) * (k / (k + mu)) ** k)
    assert zeros == pytest.approx(expected, abs=0.02)
    assert sims.equals(m.simulate(n=20, seed=11))


def test_lrt_nb2_against_zinb():
    df = mm.datasets.load("salamanders")
    table = mm.lrt(fitted("sal_nb2"), fitted("sal_zinb_mined"))
    assert table["dof"].tolist() == [reference("sal_nb2")["df"], reference("sal_zinb_mined")["df"]]
    assert df is not None and table.shape[0] == 2


# ---- bad input ------------------------------------------------------------------------------
def _owls():
    return mm.datasets.load("owls")


def test_new_data_without_the_zero_inflation_columns():
    ref = reference("sal_zinb_zimined")
    m = mm.GeneralizedLinearMixedModel(
        "count ~ spp + (1|site)",
        mm.datasets.load("salamanders"),
        family="poisson",
        ziformula="~ mined",
    )
    m.beta_zi = np.zeros(2)
    new = mm.datasets.load("salamanders").iloc[:3].drop(columns="mined")
    with pytest.raises(DataError, match="zero-inflation formula '~ mined' cannot be evaluated"):
        m.zprob(new)
    assert ref["ziformula"] == "~mined"


def test_tilde_zero_means_no_zero_inflation():
    m = mm.GeneralizedLinearMixedModel(
        "SiblingNegotiation ~ FoodTreatment + (1|Nest)", _owls(), family="poisson", ziformula="~0"
    )
    assert m.zi is None and not m.extended


def test_random_effects_in_ziformula_are_refused():
    with pytest.raises(
        FormulaError, match="random effects in the zero-inflation model are not supported"
    ):
        mm.GeneralizedLinearMixedModel(
            "SiblingNegotiation ~ FoodTreatment + (1|Nest)",
            _owls(),
            family="poisson",
            ziformula="~ 1 + (1|Nest)",
        )


def test_unknown_column_in_ziformula():
    with pytest.raises(FormulaError, match="column 'nosuch' is not in the data"):
        mm.GeneralizedLinearMixedModel(
            "SiblingNegotiation ~ FoodTreatment + (1|Nest)",
            _owls(),
            family="poisson",
            ziformula="~ nosuch",
        )


def test_no_zeros_to_inflate():
    df = _owls()
    df["SiblingNegotiation"] += 1
    before = df.copy()
    with pytest.raises(DataError, match="has no zeros"):
        mm.GeneralizedLinearMixedModel(
            "SiblingNegotiation ~ FoodTreatment + (1|Nest)", df, family="nbinom2", ziformula="~1"
        )
    pd.testing.assert_frame_equal(df, before)


def test_zero_inflation_needs_a_count_family():
    df = mm.datasets.load("betasim")
    with pytest.raises(MixedModelsError, match="needs a count family"):
        mm.GeneralizedLinearMixedModel("prop ~ x + (1|g)", df, family="beta", ziformula="~1")


def test_cli_fits_a_zero_inflated_model(capsys):
    from mixedmodels.cli import main

    args = ["fit", "SiblingNegotiation ~ FoodTreatment + (1|Nest)", "--data", "owls"]
    assert main([*args, "--family", "nbinom2", "--ziformula", "~1"]) == 0
    out = capsys.readouterr().out
    assert "Zero-inflation model: ~1" in out and "Dispersion parameter for nbinom2" in out
    assert main([*args, "--ziformula", "~1"]) == 2
    assert "--ziformula needs a count --family" in capsys.readouterr().err
