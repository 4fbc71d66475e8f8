"""Expectation propagation for the Poisson kinship model with overdispersion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm, poisson

from mixedmodels.errors import DataError
from mixedmodels.genetics import heritability
from mixedmodels.genetics.ep import EPState
from mixedmodels.genetics.poisson_ep import poisson_ep_marginal, poisson_tilted

from .ep_checks import gradient_problem, log_expectation_two


def _marginal(y, X, K, beta, s2g, s2e):
    n = len(y)
    state = EPState(np.full(n, 0.5), np.zeros(n))
    return poisson_ep_marginal(y, X, K, np.asarray(beta, float), s2g, s2e, state)


def _brute_force_moments(y, mu, var):
    """Z, mean, variance of Poisson(y; e^f) N(f; μ, σ²) by adaptive quadrature (scipy.quad)."""

    def density(f):
        return poisson.pmf(y, np.exp(f)) * norm.pdf(f, mu, np.sqrt(var))

    lo, hi = mu - 14 * np.sqrt(var), mu + 14 * np.sqrt(var)
    opts = {"points": [np.log(max(y, 0.5))], "limit": 500, "epsabs": 0, "epsrel": 1e-12}
    z = integrate.quad(density, lo, hi, **opts)[0]
    mean = integrate.quad(lambda f: f * density(f), lo, hi, **opts)[0] / z
    v = integrate.quad(lambda f: (f - mean) ** 2 * density(f), lo, hi, **opts)[0] / z
    return z, mean, v


@pytest.mark.parametrize(
    ("y", "mu", "var", "tol"),
    [
        (0, 0.0, 1.0, 1e-7),
        (3, 0.5, 0.3, 1e-7),
        (50, 1.0, 25.0, 1e-7),
        (7, -3.0, 0.01, 1e-7),
        (1, 5.0, 4.0, 1e-7),
        # y = 0 under a broad cavity: a Gaussian left tail against a soft wall at
        # e^f ≈ 1, far from Gaussian, so the rule centred at the mode is less exact.
        (0, -2, 9.0, 1e-5),
    ],
)
def test_tilted_moments_match_numerical_integration(y, mu, var, tol):
    log_z, mean, v = poisson_tilted(np.array([float(y)]), np.array([mu]), np.array([var]))
    z_ref, mean_ref, v_ref = _brute_force_moments(y, mu, var)
    assert log_z[0] == pytest.approx(np.log(z_ref), abs=tol)
    assert mean[0] == pytest.approx(mean_ref, abs=10 * tol)
    assert v[0] == pytest.approx(v_ref, rel=10 * tol)


def test_tilted_moments_stay_finite_for_large_counts_and_far_cavities():
    y = np.array([0.0, 5000.0, 20.0])
    log_z, mean, v = poisson_tilted(y, np.array([30.0, -20.0, 0.0]), np.array([1.0, 1.0, 1e6]))
    assert np.isfinite(log_z).all() and np.isfinite(mean).all() and (v > 0).all()
    assert mean[1] == pytest.approx(np.log(5000.0), abs=0.05)  # the count dominates the cavity


def test_one_individual_ep_is_exact():
    # One site is matched exactly: log Z_EP = log E Poisson(3; e^f), f ~ N(0.4, 0.9).
    z, w = np.polynomial.hermite_e.hermegauss(150)
    exact = np.log(np.sum(w / w.sum() * poisson.pmf(3, np.exp(0.4 + np.sqrt(0.9) * z))))
    out = _marginal(np.array([3.0]), np.ones((1, 1)), np.eye(1), [0.4], 0.6, 0.3)
    assert out.log_z == pytest.approx(exact, abs=1e-10)


def test_two_relatives_ep_is_close_to_quadrature():
    K = np.array([[1.0, 0.5], [0.5, 1.0]])
    beta, s2g, s2e = 0.4, 0.6, 0.3
    # E[Poisson(3; e^f1) Poisson(0; e^f2)], f ~ N(β, Σ), by a 150 × 150 product rule.
    cov = s2g * K + s2e * np.eye(2)
    exact = log_expectation_two(
        beta, cov, lambda f: poisson.pmf(3, np.exp(f)), lambda f: poisson.pmf(0, np.exp(f)), 150
    )
    out = _marginal(np.array([3.0, 0.0]), np.ones((2, 1)), K, [beta], s2g, s2e)
    assert out.log_z == pytest.approx(exact, abs=5e-4)  # EP is close, not exact, for n > 1


def test_gradient_equals_finite_differences():
    n = 30
    rng, K, X = gradient_problem(n)
    y = rng.poisson(1.5, size=n).astype(float)
    beta, s2g, s2e, h = np.array([0.2, 0.1]), 0.6, 0.3, 1e-5
    out = _marginal(y, X, K, beta, s2g, s2e)
    for j in range(2):
        e = h * np.eye(2)[j]
        up, down = _marginal(y, X, K, beta + e, s2g, s2e), _marginal(y, X, K, beta - e, s2g, s2e)
        assert out.grad_beta[j] == pytest.approx((up.log_z - down.log_z) / (2 * h), rel=1e-6)
    up, down = (_marginal(y, X, K, beta, s2g * np.exp(t), s2e) for t in (h, -h))
    assert out.grad_log_s2g == pytest.approx((up.log_z - down.log_z) / (2 * h), rel=1e-6)
    up, down = (_marginal(y, X, K, beta, s2g, s2e * np.exp(t)) for t in (h, -h))
    assert out.grad_log_s2e == pytest.approx((up.log_z - down.log_z) / (2 * h), rel=1e-6)


@pytest.fixture(scope="module")
def counts():
    """300 sibling pairs, σg² = 0.8, σe² = 0.2 (h² = 0.8), mean count ≈ 2."""
    rng = np.random.default_rng(5)
    n = 600
    K = np.kron(np.eye(n // 2), np.array([[1.0, 0.5], [0.5, 1.0]]))
    f = 0.2 + np.linalg.cholesky(0.8 * K) @ rng.normal(size=n) + np.sqrt(0.2) * rng.normal(size=n)
    return rng.poisson(np.exp(f)).astype(float), K


def test_poisson_heritability_by_ep_recovers_the_simulated_values(counts):
    y, K = counts
    fit = heritability(y, K=K, family="poisson")  # EP is the poisson default
    assert fit.link == "log" and fit.model.converged
    # Sampling error at n = 600 pairs is about 0.1 on h²; the seed's estimate is 0.74.
    assert fit.h2 == pytest.approx(0.8, abs=0.15)
    assert fit.sigma2_g + fit.sigma2_residual == pytest.approx(1.0, abs=0.25)
    assert fit.model.beta[0] == pytest.approx(0.2, abs=0.15)
    assert fit.h2_observation < fit.h2
    X = np.ones((len(y), 1))
    for dg, de in [(1.2, 1.0), (0.8, 1.0), (1.0, 1.3), (1.0, 0.7)]:  # a maximum of log Z_EP
        other = _marginal(y, X, K, fit.model.beta, fit.sigma2_g * dg, fit.sigma2_residual * de)
        assert other.log_z < fit.model.log_z


def test_poisson_ep_refuses_what_it_cannot_fit():
    K = np.eye(5)
    with pytest.raises(DataError, match="non-negative whole counts"):
        heritability(np.array([0, 1, 2.5, 3, 1]), K=K, family="poisson")
    with pytest.raises(DataError, match="0 for all 5"):
        heritability(np.zeros(5), K=K, family="poisson", method="ep")
    with pytest.raises(DataError, match="log link"):
        heritability(np.ones(5), K=K, family="binomial", method="ep")
