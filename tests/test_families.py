"""Tests for mixedmodels.families: links, families, log-likelihoods and response checks."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.families import (
    Bernoulli,
    Binomial,
    CauchitLink,
    CloglogLink,
    Family,
    Gamma,
    Gaussian,
    IdentityLink,
    InverseGaussian,
    InverseLink,
    InverseSquareLink,
    Link,
    LogitLink,
    LogLink,
    Poisson,
    ProbitLink,
    SqrtLink,
    get_family,
    get_link,
)

RNG_SEED = 20240531

# Sample valid means for each link's domain.
PROBABILITY = (0.001, 0.999)
POSITIVE = (0.05, 20.0)
LINK_DOMAINS: dict[type[Link], tuple[float, float]] = {
    LogitLink: PROBABILITY,
    ProbitLink: PROBABILITY,
    CauchitLink: PROBABILITY,
    CloglogLink: PROBABILITY,
    LogLink: POSITIVE,
    IdentityLink: (-20.0, 20.0),
    InverseLink: POSITIVE,
    SqrtLink: POSITIVE,
    InverseSquareLink: POSITIVE,
}

# R's allowed links per family (stats::family.R), written out independently of the module.
R_LINKS: dict[type[Family], set[str]] = {
    Bernoulli: {"logit", "probit", "cloglog", "cauchit", "log"},
    Binomial: {"logit", "probit", "cloglog", "cauchit", "log"},
    Poisson: {"log", "identity", "sqrt"},
    Gamma: {"inverse", "identity", "log"},
    InverseGaussian: {"1/mu^2", "inverse", "identity", "log"},
    Gaussian: {"identity", "log", "inverse"},
}
CANONICAL = {
    Bernoulli: "logit",
    Binomial: "logit",
    Poisson: "log",
    Gamma: "inverse",
    InverseGaussian: "1/mu^2",
    Gaussian: "identity",
}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


def uniform_means(rng: np.random.Generator, link: type[Link], n: int = 200) -> np.ndarray:
    low, high = LINK_DOMAINS[link]
    return rng.uniform(low, high, n)


# ------------------------------------------------------------------------------------
# Links
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("link_cls", list(LINK_DOMAINS))
def test_linkinv_inverts_linkfun(link_cls: type[Link], rng: np.random.Generator) -> None:
    link = link_cls()
    mu = uniform_means(rng, link_cls)
    np.testing.assert_allclose(link.linkinv(link.linkfun(mu)), mu, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("link_cls", list(LINK_DOMAINS))
def test_mu_eta_matches_central_difference(link_cls: type[Link], rng: np.random.Generator) -> None:
    link = link_cls()
    eta = link.linkfun(uniform_means(rng, link_cls))
    h = 1e-6 * np.maximum(1.0, np.abs(eta))
    numeric = (link.linkinv(eta + h) - link.linkinv(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("link_cls", [LogitLink, ProbitLink, CauchitLink, CloglogLink])
def test_probability_links_stay_strictly_inside_unit_interval(link_cls: type[Link]) -> None:
    link = link_cls()
    eta = np.array([-1e6, -800.0, -40.0, 0.0, 40.0, 800.0, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        mu = link.linkinv(eta)
        slope = link.mu_eta(eta)
    assert np.all((mu > 0) & (mu < 1))
    assert np.all(np.isfinite(slope) & (slope > 0))


def test_links_match_textbook_formulas(rng: np.random.Generator) -> None:
    eta = rng.normal(size=50)
    np.testing.assert_allclose(LogitLink().linkinv(eta), 1 / (1 + np.exp(-eta)), rtol=1e-14)
    np.testing.assert_allclose(ProbitLink().linkinv(eta), stats.norm.cdf(eta), rtol=1e-14)
    np.testing.assert_allclose(CauchitLink().linkinv(eta), stats.cauchy.cdf(eta), rtol=1e-14)
    np.testing.assert_allclose(CloglogLink().linkinv(eta), 1 - np.exp(-np.exp(eta)), rtol=1e-13)
    pos = np.abs(eta) + 0.1
    np.testing.assert_allclose(InverseSquareLink().linkinv(pos), pos**-0.5, rtol=1e-14)
    np.testing.assert_allclose(SqrtLink().linkinv(pos), pos**2, rtol=1e-14)
    np.testing.assert_allclose(InverseLink().mu_eta(pos), -(pos**-2), rtol=1e-14)


def test_valid_eta_rejects_points_outside_the_domain() -> None:
    assert LogitLink().valid_eta([-50.0, 0.0, 50.0])
    assert not LogitLink().valid_eta([0.0, np.nan])
    assert not IdentityLink().valid_eta([np.inf])
    assert InverseLink().valid_eta([-2.0, 3.0])
    assert not InverseLink().valid_eta([1.0, 0.0])
    assert SqrtLink().valid_eta([0.5, 2.0])
    assert not SqrtLink().valid_eta([0.5, -0.1])
    assert InverseSquareLink().valid_eta([0.5])
    assert not InverseSquareLink().valid_eta([0.0])


def test_get_link_accepts_names_aliases_classes_and_instances() -> None:
    assert get_link("logit") == LogitLink()
    assert get_link(" Probit ") == ProbitLink()
    assert get_link("1/mu^2") == InverseSquareLink()
    assert get_link("inverse_square") == InverseSquareLink()
    assert get_link(CloglogLink) == CloglogLink()
    link = SqrtLink()
    assert get_link(link) is link
    assert get_link("log").name == "log"
    assert LogLink() != IdentityLink()


def test_unknown_link_is_named_with_the_known_ones() -> None:
    with pytest.raises(MixedModelsError, match=r"unknown link 'loglog'.*'logit'.*'1/mu\^2'"):
        get_link("loglog")
    with pytest.raises(MixedModelsError, match="not int"):
        get_link(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------
# Construction and look-up
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family_cls", list(R_LINKS))
def test_default_link_is_canonical(family_cls: type[Family]) -> None:
    family = family_cls()
    assert family.link.name == family.canonical_link == CANONICAL[family_cls]
    assert family.is_canonical


@pytest.mark.parametrize("family_cls", list(R_LINKS))
@pytest.mark.parametrize("link_cls", list(LINK_DOMAINS))
def test_links_allowed_exactly_as_in_r(family_cls: type[Family], link_cls: type[Link]) -> None:
    name = link_cls.name
    if name in R_LINKS[family_cls]:
        assert family_cls(link=name).link == link_cls()
        assert family_cls(link=link_cls()).link.name == name
    else:
        pattern = f"link '{name}' is not valid for family '{family_cls.name}'".replace("^", r"\^")
        with pytest.raises(MixedModelsError, match=pattern):
            family_cls(link=name)


def test_has_dispersion_flags() -> None:
    assert not Bernoulli().has_dispersion
    assert not Binomial().has_dispersion
    assert not Poisson().has_dispersion
    assert Gamma().has_dispersion
    assert InverseGaussian().has_dispersion
    assert Gaussian().has_dispersion


def test_get_family_by_name_class_and_instance() -> None:
    assert get_family("binomial") == Binomial()
    assert get_family("Gamma") == Gamma()
    assert get_family("gamma", link="log") == Gamma(link="log")
    assert get_family("inverse.gaussian") == InverseGaussian()
    assert get_family("inverse_gaussian") == InverseGaussian()
    assert get_family("Bernoulli", "probit") == Bernoulli(link="probit")
    assert get_family(Poisson) == Poisson()
    fam = Gaussian(link="log")
    assert get_family(fam) is fam
    assert get_family(fam, link="identity") == Gaussian()
    assert Binomial() != Bernoulli()
    assert mm.families.Poisson is Poisson


def test_unknown_family_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        MixedModelsError, match=r"unknown family 'foo'.*'bernoulli'.*'binomial'.*'gaussian'"
    ):
        get_family("foo")
    with pytest.raises(MixedModelsError, match="not float"):
        get_family(1.0)  # type: ignore[arg-type]


def test_get_family_rejects_a_bad_link() -> None:
    with pytest.raises(MixedModelsError, match="link 'sqrt' is not valid for family 'binomial'"):
        get_family("binomial", link="sqrt")


# ------------------------------------------------------------------------------------
# Variance and deviance
# ------------------------------------------------------------------------------------


def test_variance_functions() -> None:
    mu = np.array([0.2, 0.5, 3.0])
    np.testing.assert_allclose(Binomial().variance(mu[:2]), [0.16, 0.25])
    np.testing.assert_allclose(Poisson().variance(mu), mu)
    np.testing.assert_allclose(Gamma().variance(mu), mu**2)
    np.testing.assert_allclose(InverseGaussian().variance(mu), mu**3)
    np.testing.assert_allclose(Gaussian().variance(mu), 1.0)


def direct_unit_deviance(family: Family, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Unit deviances written straight from their definitions, for interior y."""
    if isinstance(family, (Binomial, Bernoulli)):
        return 2 * (y * np.log(y / mu) + (1 - y) * np.log((1 - y) / (1 - mu)))
    if isinstance(family, Poisson):
        return 2 * (y * np.log(y / mu) - (y - mu))
    if isinstance(family, Gamma):
        return 2 * (-np.log(y / mu) + (y - mu) / mu)
    if isinstance(family, InverseGaussian):
        return (y - mu) ** 2 / (y * mu**2)
    return (y - mu) ** 2


def sample_pairs(
    rng: np.random.Generator, family: Family, n: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Random (y, mu) inside the family's support, avoiding the 0 log 0 boundary."""
    if isinstance(family, (Binomial, Bernoulli)):
        return rng.uniform(0.01, 0.99, n), rng.uniform(0.01, 0.99, n)
    if isinstance(family, Gaussian):
        return rng.normal(0, 3, n), rng.normal(0, 3, n)
    return rng.uniform(0.05, 30, n), rng.uniform(0.05, 30, n)


ALL_FAMILIES = [Binomial(), Bernoulli(), Poisson(), Gamma(), InverseGaussian(), Gaussian()]


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.name)
def test_unit_deviance_formula_nonnegative_and_zero_at_mean(
    family: Family, rng: np.random.Generator
) -> None:
    y, mu = sample_pairs(rng, family)
    d = family.unit_deviance(y, mu)
    np.testing.assert_allclose(d, direct_unit_deviance(family, y, mu), rtol=1e-9, atol=1e-12)
    assert np.all(d >= 0)
    assert np.all(family.unit_deviance(y, y) == 0)
    # Just off the mean d ~ (y - mu)^2 / V(mu) to relative order |y - mu|: a direct
    # evaluation would lose about half the digits here to cancellation.
    mu_near = y * (1 + 1e-8) + 1e-10
    gap = mu_near - y  # exact in floating point
    near = family.unit_deviance(y, mu_near)
    np.testing.assert_allclose(near, gap**2 / family.variance(y), rtol=1e-6)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.name)
def test_deviance_sums_weighted_unit_deviances(family: Family, rng: np.random.Generator) -> None:
    y, mu = sample_pairs(rng, family, 40)
    wt = rng.integers(0, 5, 40).astype(float)
    expected = wt * family.unit_deviance(y, mu)
    np.testing.assert_allclose(family.dev_resid(y, mu, wt), expected)
    assert family.deviance(y, mu, wt) == pytest.approx(expected.sum(), rel=1e-13)
    assert family.deviance(y, mu) == pytest.approx(family.unit_deviance(y, mu).sum(), rel=1e-13)
    r = family.deviance_residuals(y, mu, wt)
    np.testing.assert_allclose(r**2, expected, rtol=1e-12)
    assert np.all(np.sign(r)[wt > 0] == np.sign(y - mu)[wt > 0])


def test_binary_deviance_edge_cases_are_finite() -> None:
    fam = Binomial()
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    mu = np.array([1e-300, 1 - 1e-16, 1 - 1e-16, 1e-300, 0.0, 1.0])
    d = fam.unit_deviance(y, mu)
    assert np.all(np.isfinite(d)) and np.all(d >= 0)
    # y = 0: d = -2 log(1 - mu) = 2 mu + ...; y = 1: d = -2 log(mu) = 2 (1 - mu) + ...
    np.testing.assert_allclose(d[:2], [2e-300, 2 * (1 - mu[1])], rtol=1e-12, atol=0)
    assert d[2] == pytest.approx(-2 * np.log1p(-mu[2]), rel=1e-12)
    assert d[3] == pytest.approx(-2 * np.log(1e-300), rel=1e-12)
    assert d[4] == 0 and d[5] == 0
    # Means from saturated linear predictors give finite deviance and log-likelihood.
    mu_sat = fam.link.linkinv(np.array([-1e4, 1e4, -1e4, 1e4]))
    y_sat = np.array([0.0, 1.0, 1.0, 0.0])
    assert np.all(np.isfinite(fam.unit_deviance(y_sat, mu_sat)))
    assert np.isfinite(fam.loglik(y_sat, mu_sat, np.ones(4)))
    assert np.isfinite(Bernoulli().loglik(y_sat, mu_sat))


@settings(max_examples=60, deadline=None)
@given(
    y=st.sampled_from([0.0, 1.0]),
    eta=st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    link=st.sampled_from(["logit", "probit", "cloglog", "cauchit"]),
)
def test_binary_deviance_is_finite_for_any_linear_predictor(
    y: float, eta: float, link: str
) -> None:
    fam = Bernoulli(link=link)
    mu = fam.link.linkinv(np.array([eta]))
    d = fam.unit_deviance(np.array([y]), mu)
    assert np.isfinite(d[0]) and d[0] >= 0
    # The Bernoulli deviance is minus twice its log-likelihood.
    assert fam.loglik(np.array([y]), mu) == pytest.approx(-d[0] / 2, rel=1e-12, abs=1e-300)


# ------------------------------------------------------------------------------------
# Log-likelihoods against scipy.stats
# ------------------------------------------------------------------------------------


def test_binomial_loglik_matches_scipy(rng: np.random.Generator) -> None:
    n = rng.integers(0, 30, 60).astype(float)  # includes zero trials
    mu = rng.uniform(0.02, 0.98, 60)
    k = rng.binomial(n.astype(int), mu).astype(float)
    y = np.divide(k, n, out=np.zeros_like(n), where=n > 0)
    want = stats.binom.logpmf(k, n, mu)[n > 0].sum()
    assert Binomial().loglik(y, mu, n) == pytest.approx(want, rel=1e-12)
    # Probabilities at the edge of [0, 1] with matching responses are finite.
    y_edge, n_edge = np.array([0.0, 1.0]), np.array([7.0, 9.0])
    mu_edge = np.array([1e-12, 1 - 1e-12])
    assert Binomial().loglik(y_edge, mu_edge, n_edge) == pytest.approx(
        stats.binom.logpmf([0, 9], n_edge, mu_edge).sum(), rel=1e-6
    )


def test_bernoulli_loglik_matches_scipy(rng: np.random.Generator) -> None:
    mu = rng.uniform(0.02, 0.98, 80)
    y = (rng.uniform(size=80) < mu).astype(float)
    wt = rng.integers(1, 4, 80).astype(float)
    want = np.sum(wt * stats.bernoulli.logpmf(y, mu))
    assert Bernoulli().loglik(y, mu, wt) == pytest.approx(want, rel=1e-12)
    assert Bernoulli().loglik(y, mu) == pytest.approx(stats.bernoulli.logpmf(y, mu).sum())


def test_poisson_loglik_matches_scipy(rng: np.random.Generator) -> None:
    mu = rng.uniform(0.1, 15, 80)
    y = rng.poisson(mu).astype(float)
    wt = rng.uniform(0.5, 2, 80)
    want = np.sum(wt * stats.poisson.logpmf(y, mu))
    assert Poisson().loglik(y, mu, wt) == pytest.approx(want, rel=1e-12)
    # Dispersion has no meaning for Poisson and is ignored.
    assert Poisson().loglik(y, mu, wt, dispersion=3.0) == pytest.approx(want, rel=1e-12)
    # Non-integer counts go through log Gamma(y + 1).
    y_frac = np.array([0.5, 2.25])
    want_frac = np.sum(y_frac * np.log(mu[:2]) - mu[:2] - special.gammaln(y_frac + 1))
    assert Poisson().loglik(y_frac, mu[:2]) == pytest.approx(want_frac, rel=1e-13)


@pytest.mark.parametrize("phi", [0.05, 0.7, 3.0])
def test_gamma_loglik_matches_scipy(phi: float, rng: np.random.Generator) -> None:
    mu = rng.uniform(0.5, 10, 60)
    y = rng.gamma(1 / phi, mu * phi)
    wt = rng.uniform(0.5, 2, 60)
    want = np.sum(wt * stats.gamma.logpdf(y, a=1 / phi, scale=mu * phi))
    assert Gamma().loglik(y, mu, wt, dispersion=phi) == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("phi", [0.02, 0.5, 4.0])
def test_inverse_gaussian_loglik_matches_scipy(phi: float, rng: np.random.Generator) -> None:
    mu = rng.uniform(0.5, 5, 60)
    y = rng.wald(mu, 1 / phi)
    wt = rng.uniform(0.5, 2, 60)
    # scipy's invgauss(m, scale=s) has mean m*s and shape s: s = lambda = 1/phi.
    want = np.sum(wt * stats.invgauss.logpdf(y, mu * phi, scale=1 / phi))
    assert InverseGaussian().loglik(y, mu, wt, dispersion=phi) == pytest.approx(want, rel=1e-11)


def test_inverse_gaussian_loglik_equals_r_aic_at_r_dispersion(rng: np.random.Generator) -> None:
    fam = InverseGaussian()
    mu = rng.uniform(0.5, 5, 30)
    y = rng.wald(mu, 2.0)
    wt = rng.uniform(0.5, 2, 30)
    phi = fam.deviance(y, mu, wt) / wt.sum()
    # R: aic = sum(wt)*(log(dev/sum(wt)*2*pi)+1) + 3*sum(log(y)*wt) + 2
    r_aic_without_2 = wt.sum() * (np.log(2 * np.pi * phi) + 1) + 3 * np.sum(wt * np.log(y))
    assert fam.loglik(y, mu, wt, dispersion=phi) == pytest.approx(-r_aic_without_2 / 2, rel=1e-12)


@pytest.mark.parametrize("phi", [0.3, 2.0])
def test_gaussian_loglik_matches_scipy_with_precision_weights(
    phi: float, rng: np.random.Generator
) -> None:
    mu = rng.normal(0, 2, 50)
    wt = rng.uniform(0.2, 3, 50)
    wt[:5] = 0.0  # zero weights carry no information
    y = mu + rng.normal(size=50) * np.sqrt(phi / np.where(wt > 0, wt, 1))
    keep = wt > 0
    want = np.sum(stats.norm.logpdf(y[keep], mu[keep], np.sqrt(phi / wt[keep])))
    assert Gaussian().loglik(y, mu, wt, dispersion=phi) == pytest.approx(want, rel=1e-12)


def test_gaussian_loglik_equals_r_aic_at_r_dispersion(rng: np.random.Generator) -> None:
    fam = Gaussian()
    mu, y = rng.normal(size=25), rng.normal(size=25)
    wt = rng.uniform(0.5, 2, 25)
    nobs = y.size
    dev = fam.deviance(y, mu, wt)
    # R: aic = nobs*(log(dev/nobs*2*pi)+1) + 2 - sum(log(wt))
    r_aic_without_2 = nobs * (np.log(dev / nobs * 2 * np.pi) + 1) - np.sum(np.log(wt))
    assert fam.loglik(y, mu, wt, dispersion=dev / nobs) == pytest.approx(-r_aic_without_2 / 2)


@pytest.mark.parametrize("family", [Gamma(), InverseGaussian(), Gaussian()], ids=lambda f: f.name)
def test_dispersion_is_required_and_positive(family: Family) -> None:
    y = mu = np.array([1.0, 2.0])
    with pytest.raises(MixedModelsError, match="dispersion"):
        family.loglik(y, mu)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(MixedModelsError, match="finite and positive"):
            family.loglik(y, mu, dispersion=bad)


# ------------------------------------------------------------------------------------
# Response checks
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [Binomial(), Bernoulli()], ids=lambda f: f.name)
def test_binary_response_outside_unit_interval_is_an_error(family: Family) -> None:
    with pytest.raises(MixedModelsError, match=r"must lie in \[0, 1\].*e\.g\. 1\.5"):
        family.check_response([0.0, 1.5, 1.0], [2.0, 2.0, 2.0])
    with pytest.raises(MixedModelsError, match=r"outside \[0, 1\]"):
        family.check_response([-0.25, 1.0])
    # R ignores the response where the weight is zero.
    family.check_response([0.0, 7.0, 1.0], [1.0, 0.0, 1.0])


def test_binomial_negative_trials_and_failures_are_errors() -> None:
    with pytest.raises(MixedModelsError, match="numbers of trials .* non-negative"):
        Binomial().check_response([0.5, 0.5], [4.0, -2.0])
    with pytest.raises(MixedModelsError, match="failures must be non-negative"):
        Binomial.from_counts([1, 2], [3, -1])
    with pytest.raises(MixedModelsError, match="successes must be non-negative"):
        Binomial.from_counts([-1, 2], [3, 1])


def test_binomial_from_counts() -> None:
    y, n = Binomial.from_counts([2, 0, 0], [12, 5, 0])
    np.testing.assert_allclose(y, [2 / 14, 0.0, 0.0])
    np.testing.assert_allclose(n, [14, 5, 0])


def test_binomial_non_integer_successes_warn() -> None:
    with pytest.warns(UserWarning, match="non-integer numbers of successes"):
        Binomial().check_response([0.3], [5.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Binomial().check_response([0.4, 1.0], [5.0, 3.0])


def test_bernoulli_fractional_response_is_an_error() -> None:
    with pytest.raises(MixedModelsError, match="must be 0 or 1.*use Binomial"):
        Bernoulli().check_response([0.0, 0.5, 1.0])
    Bernoulli().check_response(np.array([True, False]))


def test_poisson_negative_counts_error_and_fractional_counts_warn() -> None:
    with pytest.raises(MixedModelsError, match="non-negative counts.*e\\.g\\. -2"):
        Poisson().check_response([1.0, -2.0, 3.0])
    with pytest.warns(UserWarning, match="non-integer counts"):
        Poisson().check_response([1.0, 2.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Poisson().check_response([0.0, 1.0, 40.0])


@pytest.mark.parametrize("family", [Gamma(), InverseGaussian()], ids=lambda f: f.name)
@pytest.mark.parametrize("bad", [0.0, -3.0])
def test_positive_families_reject_non_positive_responses(family: Family, bad: float) -> None:
    with pytest.raises(MixedModelsError, match=f"{family.name} response must be strictly positive"):
        family.check_response([1.0, bad, 2.0])
    family.check_response([0.1, 5.0])


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.name)
def test_common_response_checks(family: Family) -> None:
    with pytest.raises(MixedModelsError, match="NaN or infinite"):
        family.check_response([1.0, np.nan])
    with pytest.raises(MixedModelsError, match="do not match the response"):
        family.check_response([1.0, 1.0, 1.0], [1.0, 1.0])
    with pytest.raises(MixedModelsError, match="must be non-negative"):
        family.check_response([1.0, 1.0], [1.0, -1.0])


# ------------------------------------------------------------------------------------
# Starting values and PIRLS ingredients
# ------------------------------------------------------------------------------------


def test_mustart_follows_r() -> None:
    np.testing.assert_allclose(
        Binomial().mustart([0.0, 1.0, 0.5], [4.0, 2.0, 10.0]), [0.1, 2.5 / 3, 5.5 / 11]
    )
    np.testing.assert_allclose(Bernoulli().mustart([0.0, 1.0]), [0.25, 0.75])
    np.testing.assert_allclose(Poisson().mustart([0.0, 3.0]), [0.1, 3.1])
    np.testing.assert_allclose(Gamma().mustart([0.5, 3.0]), [0.5, 3.0])
    np.testing.assert_allclose(InverseGaussian().mustart([0.5, 3.0]), [0.5, 3.0])
    np.testing.assert_allclose(Gaussian().mustart([-1.0, 3.0]), [-1.0, 3.0])


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.name)
def test_mustart_is_a_valid_mean(family: Family, rng: np.random.Generator) -> None:
    y, _ = sample_pairs(rng, family, 20)
    if isinstance(family, (Bernoulli, Binomial)):
        y = np.round(y)  # the boundary values 0 and 1
    if isinstance(family, Poisson):
        y = np.floor(y)
    mu = family.mustart(y)
    assert family.valid_mu(mu)
    assert family.link.valid_eta(family.link.linkfun(mu))


def test_gaussian_mustart_must_suit_the_link() -> None:
    with pytest.raises(MixedModelsError, match="log link needs positive responses"):
        Gaussian(link="log").mustart([1.0, 0.0])
    with pytest.raises(MixedModelsError, match="inverse link needs non-zero"):
        Gaussian(link="inverse").mustart([1.0, 0.0])


def test_valid_mu() -> None:
    assert Binomial().valid_mu([0.1, 0.9]) and not Binomial().valid_mu([0.0, 0.5])
    assert not Bernoulli().valid_mu([1.0])
    assert Poisson().valid_mu([0.1]) and not Poisson().valid_mu([0.0])
    assert not Gamma().valid_mu([-1.0]) and not InverseGaussian().valid_mu([np.nan])
    assert Gaussian().valid_mu([-3.0]) and not Gaussian().valid_mu([np.inf])


@pytest.mark.parametrize(
    "family", [Binomial(link="probit"), Poisson(link="sqrt"), Gamma(link="log")], ids=repr
)
def test_working_weights_and_response(family: Family, rng: np.random.Generator) -> None:
    y, mu = sample_pairs(rng, family, 30)
    eta = family.link.linkfun(mu)
    wt = rng.uniform(0.5, 2, 30)
    d = family.link.mu_eta(eta)
    np.testing.assert_allclose(
        family.working_weights(mu, eta, wt), wt * d**2 / family.variance(mu), rtol=1e-14
    )
    np.testing.assert_allclose(family.working_response(y, mu, eta), eta + (y - mu) / d)


def irls(family: Family, X: np.ndarray, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """Plain iteratively reweighted least squares built from the family's pieces."""
    mu = family.mustart(y, wt)
    eta = family.link.linkfun(mu)
    for _ in range(50):
        w = family.working_weights(mu, eta, wt)
        z = family.working_response(y, mu, eta)
        beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * z))
        eta = X @ beta
        mu = family.link.linkinv(eta)
    return beta


@pytest.mark.parametrize(
    ("family", "simulate"),
    [
        (Poisson(), lambda rng, mu: rng.poisson(mu).astype(float)),
        (Binomial(link="probit"), lambda rng, mu: rng.binomial(8, mu) / 8.0),
        (Gamma(link="log"), lambda rng, mu: rng.gamma(2.0, mu / 2.0)),
    ],
    ids=["poisson", "binomial-probit", "gamma-log"],
)
def test_irls_reaches_the_glm_score_equations(
    family: Family, simulate: Callable[..., np.ndarray], rng: np.random.Generator
) -> None:
    n = 200
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    mu_true = family.link.linkinv(X @ np.array([0.3 if family.name != "Gamma" else 1.0, 0.4]))
    y = simulate(rng, mu_true)
    wt = np.full(n, 8.0) if isinstance(family, Binomial) else np.ones(n)
    beta = irls(family, X, y, wt)
    eta = X @ beta
    mu = family.link.linkinv(eta)
    # The maximum-likelihood score: X' diag(wt * dmu/deta / V(mu)) (y - mu) = 0.
    score = X.T @ (wt * family.link.mu_eta(eta) / family.variance(mu) * (y - mu))
    np.testing.assert_allclose(score, 0.0, atol=1e-8)


# ------------------------------------------------------------------------------------
# Reference values from R
# ------------------------------------------------------------------------------------

# First 10 rows of lme4's cbpp (herd, incidence, size, period), and the fitted values and
# deviance residuals of glmer(cbind(incidence, size - incidence) ~ 1 + period + (1|herd),
# family = binomial, data = cbpp) (Laplace), from the project's R reference file
# shared/reference/cbpp_laplace.json (fields fitted_head and residuals_head).
CBPP_INCIDENCE = [2, 3, 4, 0, 3, 1, 1, 8, 2, 0]
CBPP_SIZE = [14, 12, 9, 5, 22, 18, 21, 22, 16, 16]
CBPP_FITTED = [
    0.308164724138358,
    0.141773370296958,
    0.125985555168936,
    0.0840570118481407,
    0.154800410038821,
    0.0636040557992863,
    0.0559536071344158,
    0.270423090593126,
    0.120850360620874,
    0.107101754230952,
]
CBPP_RESIDUALS = [
    -1.43770782358759,
    0.988471951761238,
    2.35668825773889,
    -0.937022711858596,
    -0.243173158378381,
    -0.142829380665727,
    -0.170329302835785,
    0.954576528513172,
    0.0506754709456432,
    -1.90395505077412,
]


def test_cbpp_deviance_residuals_match_lme4() -> None:
    family = get_family("binomial")
    size = np.array(CBPP_SIZE, dtype=float)
    failures = size - np.array(CBPP_INCIDENCE, dtype=float)
    y, wt = Binomial.from_counts(CBPP_INCIDENCE, failures)
    np.testing.assert_array_equal(wt, size)
    family.check_response(y, wt)
    mu = np.array(CBPP_FITTED)
    signed = np.sign(y - mu) * np.sqrt(family.dev_resid(y, mu, wt))
    np.testing.assert_allclose(signed, CBPP_RESIDUALS, rtol=0, atol=1e-8)
    np.testing.assert_allclose(family.deviance_residuals(y, mu, wt), CBPP_RESIDUALS, atol=1e-8)


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "gamma", "gaussian"])
def test_complex_values_are_refused_not_truncated(name):
    from mixedmodels.errors import MixedModelsError
    from mixedmodels.families import get_family

    family = get_family(name)
    y = np.array([0.0, 1.0, 1.0]) + (name in ("gamma",))
    with pytest.raises(MixedModelsError, match="complex"):
        family.check_response(y + 0.5j)
    with pytest.raises(MixedModelsError, match="complex"):
        family.check_response(y, np.ones(3) * (1 + 0j))


def test_complex_binomial_counts_are_refused():
    from mixedmodels.errors import MixedModelsError
    from mixedmodels.families import Binomial

    with pytest.raises(MixedModelsError, match="successes are complex"):
        Binomial.from_counts(np.array([1.0 + 1j, 2.0]), np.array([1.0, 1.0]))


@pytest.mark.parametrize("family", [Binomial(), Poisson(), Gamma()])
def test_deviance_terms_sum_to_the_deviance(family, rng: np.random.Generator) -> None:
    """deviance_terms (the quadrature's summands) equal dev_resid and sum to deviance, any shape."""
    n = 50
    if isinstance(family, Binomial):
        y = rng.integers(0, 8, n) / 7.0
        mu = rng.uniform(0.05, 0.95, (n, 3))
    elif isinstance(family, Poisson):
        y = rng.poisson(3.0, n).astype(float)
        mu = rng.uniform(0.5, 6.0, (n, 3))
    else:
        y = rng.gamma(2.0, 1.0, n)
        mu = rng.uniform(0.5, 4.0, (n, 3))
    wt = rng.uniform(0.5, 3.0, n)
    terms = family.deviance_terms(y[:, None], mu, wt[:, None])
    assert terms.shape == mu.shape
    np.testing.assert_allclose(
        terms, family.dev_resid(y[:, None], mu, wt[:, None]), rtol=1e-9, atol=1e-12
    )
    for j in range(3):
        assert terms[:, j].sum() == pytest.approx(family.deviance(y, mu[:, j], wt), rel=1e-12)


def test_clamp_probability_is_np_clip():
    """The clamp of the logit-type links: np.clip's values, NaN and the extremes included."""
    from mixedmodels.families import _EPS, _clamp_probability

    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(-0.5, 1.5, 200), [0.0, 1.0, np.nan, _EPS, 1 - _EPS, 1e-300]])
    expected = np.clip(p, _EPS, 1.0 - _EPS)
    assert np.array_equal(_clamp_probability(p), expected, equal_nan=True)
    assert np.nanmin(_clamp_probability(p)) == _EPS


@pytest.mark.parametrize("link_cls", list(LINK_DOMAINS))
def test_inverse_and_slope_are_linkinv_and_mu_eta(link_cls):
    """The shared computation gives exactly the two methods' values, extremes included."""
    link = link_cls()
    rng = np.random.default_rng(11)
    lo, hi = LINK_DOMAINS[link_cls]
    eta = link.linkfun(rng.uniform(lo, hi, 300))
    if link_cls in (LogitLink, LogLink, ProbitLink, CauchitLink, CloglogLink, IdentityLink):
        eta = np.concatenate([eta, [-800.0, -40.0, 0.0, 40.0, 800.0, np.nan]])
    with np.errstate(all="ignore"):
        mu, slope = link.inverse_and_slope(eta)
        assert np.array_equal(mu, link.linkinv(eta), equal_nan=True)
        assert np.array_equal(slope, link.mu_eta(eta), equal_nan=True)
    assert mu is not slope
