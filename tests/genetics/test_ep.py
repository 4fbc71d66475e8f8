"""Expectation propagation for the probit kinship model, and the heritability dispatcher."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mixedmodels.errors import DataError
from mixedmodels.genetics import heritability
from mixedmodels.genetics.ep import EPState, ep_marginal

from .ep_checks import gradient_problem, log_expectation_two


def _marginal(y, X, K, beta, s2):
    n = len(y)
    return ep_marginal(y, X, K, np.asarray(beta, float), s2, EPState(np.full(n, 0.5), np.zeros(n)))


@pytest.mark.parametrize(("y", "m", "s2"), [(1, 0.3, 0.7), (0, -1.2, 2.0), (1, -3.0, 0.1)])
def test_one_individual_ep_is_exact(y, m, s2):
    # ∫ N(f; m, s2) Φ(±f) df = Φ(±m / √(1 + s2)): a single site is matched exactly.
    out = _marginal(np.array([float(y)]), np.ones((1, 1)), np.eye(1), [m], s2)
    assert out.log_z == pytest.approx(norm.logcdf((2 * y - 1) * m / np.sqrt(1 + s2)), abs=1e-10)


def test_two_relatives_ep_is_close_to_quadrature():
    K = np.array([[1.0, 0.5], [0.5, 1.0]])
    s2, m = 1.5, 0.2
    # E[Φ(f1) Φ(-f2)], f ~ N(m, s2 K), by an 80 × 80 Gauss–Hermite product rule.
    exact = log_expectation_two(m, s2 * K, norm.cdf, lambda f: norm.cdf(-f), 80)
    out = _marginal(np.array([1.0, 0.0]), np.ones((2, 1)), K, [m], s2)
    assert out.log_z == pytest.approx(exact, abs=1e-3)  # EP is close, not exact, for n > 1


def test_gradient_equals_finite_differences():
    n = 30
    rng, K, X = gradient_problem(n)
    y = (rng.random(n) < 0.4).astype(float)
    beta, s2, h = np.array([-0.2, 0.3]), 0.8, 1e-5
    out = _marginal(y, X, K, beta, s2)
    for j in range(2):
        e = h * np.eye(2)[j]
        fd = (_marginal(y, X, K, beta + e, s2).log_z - _marginal(y, X, K, beta - e, s2).log_z) / (
            2 * h
        )
        assert out.grad_beta[j] == pytest.approx(fd, rel=1e-5, abs=1e-7)
    fd = (
        _marginal(y, X, K, beta, s2 * np.exp(h)).log_z
        - _marginal(y, X, K, beta, s2 * np.exp(-h)).log_z
    ) / (2 * h)
    assert out.grad_log_s2 == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.fixture(scope="module")
def families():
    """60 sibling pairs (K = 1 on the diagonal, 0.5 within a pair) and a liability trait."""
    rng = np.random.default_rng(3)
    n = 120
    K = np.kron(np.eye(n // 2), np.array([[1.0, 0.5], [0.5, 1.0]]))
    g = np.linalg.cholesky(0.6 * K) @ rng.normal(size=n)
    y = (g + np.sqrt(0.4) * rng.normal(size=n) > norm.ppf(0.7)).astype(float)
    return y, K


@pytest.fixture(scope="module")
def ep_fit(families):
    y, K = families
    return heritability(pd.Series(y, index=[f"i{j}" for j in range(len(y))]),
                        K=pd.DataFrame(K, index=[f"i{j}" for j in range(len(y))],
                                       columns=[f"i{j}" for j in range(len(y))]),
                        family="bernoulli")  # fmt: skip


def test_fit_is_a_maximum_of_the_ep_marginal(families, ep_fit):
    y, K = families
    X = np.ones((len(y), 1))
    fit = ep_fit.model
    assert fit.converged and ep_fit.link == "probit" and ep_fit.h2 == fit.h2
    for db, ds in [(0.05, 1.0), (-0.05, 1.0), (0.0, 1.2), (0.0, 0.8)]:
        other = _marginal(y, X, K, fit.beta + db, fit.sigma2_g * ds).log_z
        assert other < fit.log_z
    assert 0.0 < fit.h2 < 1.0


def test_heritability_dispatches_on_family_and_method(families):
    y, K = families
    threshold = heritability(y, K=K, family="bernoulli", method="threshold", prevalence=0.3)
    direct = heritability(y, K=K)  # the observed-scale REML fit it transforms
    assert threshold.model.h2 == pytest.approx(direct.h2)
    assert threshold.h2 > direct.h2  # the liability scale is above the 0/1 scale at k = 0.3


def test_binary_trait_without_cases_or_with_agq():
    K = np.eye(10)
    with pytest.raises(DataError, match="no cases"):
        heritability(np.zeros(10), K=K, family="bernoulli")
    with pytest.raises(DataError, match="no controls"):
        heritability(np.ones(10), K=K, family="bernoulli", method="laplace")
    y = np.r_[np.ones(5), np.zeros(5)]
    with pytest.raises(DataError, match="quadrature does not apply"):
        heritability(y, K=K, family="bernoulli", method="agq")
    with pytest.raises(DataError, match="0/1"):
        heritability(np.r_[y[:-1], 2.0], K=K, family="bernoulli")
