"""Beta GLMMs against glmmTMB 1.1.5 (simulated proportions, tools/make_glmmtmb_reference.R)."""

from __future__ import annotations

import numpy as np
import pytest
from glmmtmb_fits import check_against_glmmtmb, fitted
from scipy import stats

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.families import Beta


def test_beta_derivatives_match_finite_differences():
    rng = np.random.default_rng(3)
    family = Beta(dispersion=6.0)
    y = rng.beta(2.0, 3.0, 200)
    y[:2] = [1e-9, 1 - 1e-9]
    eta = rng.normal(0.0, 2.0, 200)
    d1, d2 = family.eta_derivatives(y, eta)
    h = 1e-6
    fd1 = (family.logpdf(y, eta + h) - family.logpdf(y, eta - h)) / (2 * h)
    fd2 = (family.eta_derivatives(y, eta + h)[0] - family.eta_derivatives(y, eta - h)[0]) / (2 * h)
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, fd2, rtol=1e-6, atol=1e-6)


def test_beta_logpdf_and_sampler():
    y, mu, phi = np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.6, 0.5]), 6.0
    f = Beta(dispersion=phi)
    np.testing.assert_allclose(
        f.logpdf(y, np.log(mu / (1 - mu))),
        stats.beta.logpdf(y, mu * phi, (1 - mu) * phi),
        rtol=1e-12,
    )
    draws = f.sample(np.full(100_000, 0.3), np.random.default_rng(2))
    assert draws.mean() == pytest.approx(0.3, rel=0.01)
    assert draws.var() == pytest.approx(0.3 * 0.7 / 7, rel=0.03)


def test_beta_matches_glmmtmb():
    check_against_glmmtmb("beta_sim")


def test_beta_contract():
    m = fitted("beta_sim")
    assert "Dispersion parameter for beta family (precision phi)" in str(m)
    p = m.predict(type="response")
    assert ((p > 0) & (p < 1)).all()
    sims = m.simulate(n=2, seed=4).to_numpy()
    assert ((sims > 0) & (sims < 1)).all()


def test_responses_outside_the_unit_interval():
    df = mm.datasets.load("betasim")
    df.loc[[0, 5], "prop"] = [0.0, 1.0]
    with pytest.raises(MixedModelsError, match=r"found 2 value\(s\) outside \(0, 1\).*Smithson"):
        mm.GeneralizedLinearMixedModel("prop ~ x + (1|g)", df, family="beta")
