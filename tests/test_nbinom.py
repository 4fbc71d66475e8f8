"""Negative binomial GLMMs (nbinom2 = glmer.nb, nbinom1) against glmmTMB 1.1.5 and lme4 1.1-31.

Reference numbers: tests/data/glmmtmb_reference.json from tools/make_glmmtmb_reference.R.
"""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from glmmtmb_fits import as_array, check_against_glmmtmb, fitted, reference
from scipy import stats

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.families import NegativeBinomial1, NegativeBinomial2, get_family

RNG = np.random.default_rng(13)


# ---- the families ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "family", [NegativeBinomial2(dispersion=1.7), NegativeBinomial1(dispersion=0.8)]
)
def test_eta_derivatives_match_finite_differences(family):
    y = RNG.poisson(4.0, 200).astype(float)
    y[:5] = [0, 0, 250, 1000, 3]  # zeros and large counts
    eta = RNG.normal(1.0, 1.5, 200)
    d1, d2 = family.eta_derivatives(y, eta)
    h = 1e-6
    fd1 = (family.logpdf(y, eta + h) - family.logpdf(y, eta - h)) / (2 * h)
    fd2 = (family.eta_derivatives(y, eta + h)[0] - family.eta_derivatives(y, eta - h)[0]) / (2 * h)
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, fd2, rtol=1e-6, atol=1e-6)


def test_logpdf_matches_scipy():
    y = np.array([0.0, 1, 5, 20, 400])
    mu = np.array([0.5, 2, 3, 10, 350])
    k, phi = 1.7, 0.8
    np.testing.assert_allclose(
        NegativeBinomial2(dispersion=k).logpdf(y, np.log(mu)),
        stats.nbinom.logpmf(y, k, k / (k + mu)),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        NegativeBinomial1(dispersion=phi).logpdf(y, np.log(mu)),
        stats.nbinom.logpmf(y, mu / phi, 1 / (1 + phi)),
        rtol=1e-12,
    )


def test_logpdf_stays_finite_for_extreme_eta():
    f = NegativeBinomial2(dispersion=2.0)
    out = f.logpdf(np.array([0.0, 3.0]), np.array([-800.0, 800.0]))
    d1, d2 = f.eta_derivatives(np.array([0.0, 3.0]), np.array([-800.0, 800.0]))
    assert np.isfinite(out[0]) and out[0] == pytest.approx(0.0, abs=1e-300)
    assert np.isfinite(d2).all()


def test_samplers_have_the_family_moments():
    rng = np.random.default_rng(1)
    mu = np.full(200_000, 3.0)
    for family, var in [
        (NegativeBinomial2(dispersion=2.0), 3 + 9 / 2),
        (NegativeBinomial1(dispersion=0.5), 4.5),
    ]:
        draws = family.sample(mu, rng)
        assert draws.mean() == pytest.approx(3.0, rel=0.02)
        assert draws.var() == pytest.approx(var, rel=0.03)
        assert family.variance(np.array([3.0]))[0] == pytest.approx(var)


def test_names_and_aliases():
    assert isinstance(get_family("negative.binomial"), NegativeBinomial2)
    assert isinstance(get_family("nbinom1"), NegativeBinomial1)
    with pytest.raises(MixedModelsError, match="link 'sqrt' is not valid"):
        get_family("nbinom2", "sqrt")


# ---- fits against glmmTMB ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["sal_nb2", "epil_nb2"])
def test_nbinom2_matches_glmmtmb(name):
    check_against_glmmtmb(name)


@pytest.mark.slow
def test_nbinom1_matches_glmmtmb():
    check_against_glmmtmb("sal_nb1")


def test_glmer_nb_differs_by_the_fisher_log_determinant():
    """glmer.nb's Laplace value uses PIRLS's Fisher weights kμ/(k+μ) in log|H|, TMB the observed
    curvature kμ(y+k)/(k+μ)²; at glmer.nb's estimates our modes with Fisher weights give its value."""
    ref, m = reference("sal_glmer_nb"), fitted("sal_nb2").copy()
    k = ref["nb_shape"]
    m.family.dispersion = k
    m.objective_at(as_array(ref["theta"]), beta=as_array(ref["beta"]))
    eta = m.eta
    mu = np.exp(eta)
    A = m.zlambda.at(m.reterms)
    H = A.gram(k * mu / (k + mu)) + np.eye(A.q)
    fisher = -2 * m.family.logpdf(m.y, eta).sum() + m.u @ m.u + np.linalg.slogdet(H)[1]
    np.testing.assert_allclose(fisher, ref["objective"], rtol=1e-6)
    # the observed-curvature value (glmmTMB's) is larger here, as glmmTMB's optimum is
    assert m.objective > fisher + 0.05
    # and both fits find the same shape and fixed effects
    assert fitted("sal_nb2").dispersion == pytest.approx(k, rel=1e-2)
    se = as_array(ref["se"])
    assert np.all(np.abs(fitted("sal_nb2").beta - as_array(ref["beta"])) < 0.05 * se)


def test_glmer_nb_epil_estimates():
    ref, m = reference("epil_glmer_nb"), fitted("epil_nb2")
    assert m.dispersion == pytest.approx(ref["nb_shape"], rel=1e-3)
    np.testing.assert_allclose(m.theta, ref["theta"], atol=1e-3)
    # glmer.nb maximises the Fisher-weight Laplace value, so its β differ (intercept by 0.12 SE)
    assert np.all(np.abs(m.beta - as_array(ref["beta"])) < 0.15 * as_array(ref["se"]))
    assert m.objective == pytest.approx(ref["objective"], abs=0.2)


# ---- the contract ----------------------------------------------------------------------------
def test_print_shows_dispersion_and_contract_outputs():
    m = fitted("epil_nb2")
    text = str(m)
    assert "Dispersion parameter for nbinom2 family (shape k): 7.418" in text
    assert m.dof == len(m.beta) + 2
    assert m.sigma is None
    disp = m.coeftable(component="disp")
    assert disp.iloc[0, 0] == pytest.approx(np.log(m.dispersion))
    assert m.dispersion_stderror == pytest.approx(m.dispersion * disp.iloc[0, 1])
    eta = m.predict()
    np.testing.assert_allclose(m.predict(type="response"), np.exp(eta))
    np.testing.assert_allclose(m.fitted(), np.exp(eta))
    ci = m.confint(method="wald")
    assert ci.loc["(Intercept)", "lower"] < m.beta[0] < ci.loc["(Intercept)", "upper"]
    assert m.varcorr().shape[0] >= 1
    assert np.isfinite(m.residuals("pearson")).all()


def test_simulate_draws_counts_from_the_fit():
    m = fitted("epil_nb2")
    sims = m.simulate(n=3, seed=1)
    assert sims.shape == (m.nobs, 3)
    assert (sims.to_numpy() >= 0).all() and (sims.to_numpy() == np.rint(sims.to_numpy())).all()
    assert sims.equals(m.simulate(n=3, seed=1))


def test_lrt_poisson_against_nbinom2():
    ref = reference("sal_poisson")
    df = mm.datasets.load("salamanders")
    pois = mm.GeneralizedLinearMixedModel(ref["formula"], df, family="poisson").fit()
    assert pois.objective == pytest.approx(ref["objective"], rel=1e-6)
    table = mm.lrt(pois, fitted("sal_nb2"))
    assert table["dof"].tolist() == [reference("sal_poisson")["df"], reference("sal_nb2")["df"]]
    assert table.iloc[1, table.columns.get_loc("chisq")] == pytest.approx(
        ref["objective"] - reference("sal_nb2")["objective"], rel=1e-6
    )


def test_pickle_round_trip():
    m = fitted("epil_nb2")
    back = pickle.loads(pickle.dumps(m))
    assert back.objective == pytest.approx(m.objective, rel=1e-12)
    assert back.dispersion == m.dispersion
    np.testing.assert_allclose(back.predict(), m.predict())


def test_refit_to_own_simulation_and_fast_fit():
    m = fitted("epil_nb2").copy()
    fast = m.copy().refit(fast=True)
    assert fast.criterion == "Laplace (fast fit)"
    assert fast.objective >= m.objective - 1e-6
    y = m.simulate(seed=3).iloc[:, 0].to_numpy()
    m.refit(y)
    assert np.isfinite(m.objective) and m.dispersion > 0


# ---- bad input ----------------------------------------------------------------------------
def test_negative_counts_are_an_error_and_fractions_a_warning():
    df = mm.datasets.load("epil")
    bad = df.assign(y=df["y"].astype(float))
    bad.loc[3, "y"] = -1
    before = bad.copy()
    with pytest.raises(
        MixedModelsError, match="nbinom2 response must be non-negative counts; found 1 negative"
    ):
        mm.GeneralizedLinearMixedModel("y ~ lbase + (1|subject)", bad, family="nbinom2")
    pd.testing.assert_frame_equal(bad, before)
    frac = df.assign(y=df["y"] + 0.5)
    with pytest.warns(UserWarning, match="non-integer counts in a nbinom1 response"):
        mm.GeneralizedLinearMixedModel("y ~ lbase + (1|subject)", frac, family="nbinom1")


def test_quadrature_is_refused():
    df = mm.datasets.load("epil")
    m = mm.GeneralizedLinearMixedModel("y ~ lbase + (1|subject)", df, family="nbinom2")
    with pytest.raises(MixedModelsError, match="Laplace approximation only"):
        m.fit(nagq=5)


def test_unknown_component():
    with pytest.raises(MixedModelsError, match="component must be"):
        fitted("epil_nb2").coeftable(component="cond2")
    with pytest.raises(MixedModelsError, match="no zero inflation"):
        fitted("epil_nb2").coeftable(component="zi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted("epil_nb2").coeftable()


@pytest.mark.parametrize("name", ["epil_nb2", "sal_nb2"])
def test_objective_at_glmmtmbs_estimates_is_glmmtmbs(name):
    """The same function, not only the same optimum: our Laplace value at glmmTMB's parameters."""
    ref = reference(name)
    par, nb = np.asarray(ref["par"]), len(ref["beta"])
    # glmmTMB's order: β, betad (log dispersion), theta (log sd); ours: θ (sd), β, log dispersion
    x = np.concatenate([[np.exp(par[nb + 1])], par[:nb], [par[nb]]])
    assert fitted(name).copy().outer_objective(x) == pytest.approx(ref["objective"], rel=1e-10)


def test_trigamma_matches_scipy():
    """The fast ψ' of the nbinom1 and beta derivatives against scipy's polygamma(1, x)."""
    from scipy import special

    from mixedmodels.families import _trigamma

    x = np.concatenate(
        [np.geomspace(1e-8, 1e10, 400), np.random.default_rng(2).gamma(1.0, 3.0, 400)]
    )
    np.testing.assert_allclose(_trigamma(x), special.polygamma(1, x), rtol=1e-13)


def test_nb2_log_density_constant_follows_k_and_y():
    """The cached η-free part of the NB2 log density is recomputed when k or y changes."""
    from scipy import stats

    f = mm.families.NegativeBinomial2(dispersion=2.0)
    y, eta = np.array([0.0, 3.0, 7.0]), np.log([1.5, 2.0, 4.0])
    for k, yy in [(2.0, y), (3.5, y), (3.5, y + 1.0), (2.0, y)]:
        mu = np.exp(eta)
        expected = stats.nbinom.logpmf(yy, k, k / (k + mu))
        np.testing.assert_allclose(f.logpdf(yy, eta, k), expected, rtol=1e-12)


GLMMTMB_PROFILE = {"lage": (-0.2163582, 1.164593), "log(shape k)": (1.5598561, 2.496198)}
"""glmmTMB 1.1.5: confint(profile(m, parm = c(4, 7))) of the epil nbinom2 model (lage, d~(Intercept)).

Its ends come from a spline through a coarser grid: ours are checked as
likelihood-ratio ends to 2e-3 in −2 log L, glmmTMB's agree to 3e-3 (lage's
lower end, where −2 log L moves by 11 per unit) and 4e-4 (log k).
"""


def _constrained_deviance(m, j: int, value: float) -> float:
    """min of the Laplace objective over all parameters but the j-th, held at ``value``
    (scipy's L-BFGS-B on the model's analytic gradient: independent of the profile's BOBYQA)."""
    from scipy.optimize import minimize

    x0 = m.outer_parameters()
    free = np.arange(len(x0)) != j
    lower = np.concatenate([m.lowerbd, np.full(len(x0) - len(m.lowerbd), -np.inf)])

    def fun(z):
        x = x0.copy()
        x[j], x[free] = value, z
        f, g = m.outer_value_and_gradient(x)
        return f, g[free]

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower[free]]
    res = minimize(
        fun,
        x0[free],
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-14, "gtol": 1e-8},
    )
    return float(res.fun)


@pytest.mark.slow
def test_profile_interval_of_the_dispersion_is_a_likelihood_ratio_interval():
    """The profile interval of log k (epil nbinom2; β, θ re-optimised at every point): at
    both ends −2ΔlogL = χ²₁(0.95), checked by an independent constrained optimisation."""
    m = mm.GeneralizedLinearMixedModel(
        "y ~ lbase * trt + lage + V4 + (1 | subject)", mm.datasets.load("epil"), family="nbinom2"
    ).fit()
    ci = m.profile(which=["log(shape k)"], progress=False).confint(0.95)
    lo, hi = ci.loc["log(shape k)"]
    np.testing.assert_allclose([lo, hi], GLMMTMB_PROFILE["log(shape k)"], atol=1e-3)
    est = math.log(m.dispersion)
    assert lo < est < hi
    j, base = len(m.outer_names()) - 1, m.objective
    for end in (lo, hi):
        assert _constrained_deviance(m, j, end) - base == pytest.approx(
            stats.chi2.ppf(0.95, 1), abs=2e-3
        )


@pytest.mark.slow
def test_profile_confint_of_a_fixed_effect_with_the_dispersion_free():
    """confint(method="profile") of a β of an nbinom2 model: the LR interval, with k re-optimised."""
    m = mm.GeneralizedLinearMixedModel(
        "y ~ lbase * trt + lage + V4 + (1 | subject)", mm.datasets.load("epil"), family="nbinom2"
    ).fit()
    lo, hi = m.confint(method="profile", parm="lage").loc["lage"]
    np.testing.assert_allclose([lo, hi], GLMMTMB_PROFILE["lage"], atol=5e-3)
    j, base = len(m.theta) + m.coefnames.index("lage"), m.objective
    for end in (lo, hi):
        assert _constrained_deviance(m, j, end) - base == pytest.approx(
            stats.chi2.ppf(0.95, 1), abs=2e-3
        )


def test_confint_covers_the_dispersion_and_names_it():
    """The log shape is a parameter of confint (Wald: est ± z·SE with the Laplace Hessian's SE)."""
    m = fitted("epil_nb2")
    names, est, se = m.extra_parameters()
    assert names == ["log(shape k)"] and np.isfinite(se).all()
    table = m.confint(method="wald")
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        table.loc["log(shape k)"], [est[0] - z * se[0], est[0] + z * se[0]], rtol=1e-12
    )
    assert (
        table.loc["log(shape k)", "lower"]
        < math.log(m.dispersion)
        < table.loc["log(shape k)", "upper"]
    )
    with pytest.raises(MixedModelsError, match="does not re-estimate"):
        m.confint(method="bootstrap", parm=["log(shape k)"], n=2, seed=1)
