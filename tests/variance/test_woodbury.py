"""The O(n q²) Woodbury evaluation against a dense O(n³) evaluation of the same likelihood."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.errors import DataError
from mixedmodels.numderiv import jacobian
from mixedmodels.variance.lambdapattern import LambdaPattern
from mixedmodels.variance.woodbury import HeteroskedasticGaussian


def _vector_term_pattern(levels: int, k: int) -> LambdaPattern:
    """I_levels ⊗ λ with λ a full k x k lower triangle (as an lme4 term (x1 + ... | g))."""
    pos = [(a, b) for b in range(k) for a in range(b, k)]
    base = np.arange(levels) * k
    return LambdaPattern(
        levels * k,
        tuple(base + a for a, _ in pos),
        tuple(base + b for _, b in pos),
        np.array([0.0 if a == b else -np.inf for a, b in pos]),
        tuple(f"l{a}{b}" for a, b in pos),
    )


def _random_model(seed: int, vector: bool, sparse: bool, weighted: bool):
    """A small random model, its parameters and β."""
    rng = np.random.default_rng(seed)
    n, levels, k = int(rng.integers(15, 40)), int(rng.integers(2, 6)), 2 if vector else 1
    X = np.column_stack([np.ones(n), rng.normal(size=(n, int(rng.integers(0, 3))))])
    D = np.column_stack([np.ones(n), rng.normal(size=(n, int(rng.integers(0, 3))))])
    g = rng.integers(0, levels, n)
    Z = np.zeros((n, levels * k))
    for j in range(k):
        Z[np.arange(n), g * k + j] = 1.0 if j == 0 else rng.normal(size=n)
    pattern = _vector_term_pattern(levels, k)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    y = X @ rng.normal(size=X.shape[1]) + Z @ rng.normal(size=Z.shape[1]) + rng.normal(size=n)
    lik = HeteroskedasticGaussian(y, X, D, sp.csr_matrix(Z) if sparse else Z, pattern, w)
    phi = np.concatenate([0.3 * rng.normal(size=D.shape[1]), rng.uniform(0.2, 1.5, pattern.ntheta)])
    return lik, phi, rng.normal(size=X.shape[1]), Z


def _dense_objective(
    lik: HeteroskedasticGaussian, Z: np.ndarray, phi: np.ndarray, beta: np.ndarray
) -> float:
    """n log 2π + log|V| + e'V⁻¹e with V formed and factorised densely."""
    gamma, theta = lik.split(phi)
    Lam = lik.pattern.Lambda(theta)
    V = np.diag(lik.residual_variance(gamma)) + Z @ Lam @ Lam.T @ Z.T
    e = lik.y - lik.X @ beta
    return lik.nobs * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + e @ np.linalg.solve(V, e)


def _full_gradient(lik, phi, beta):
    ev = lik.evaluate(phi, beta)
    return np.concatenate([-2.0 * lik.X.T @ ev.a, ev.gradient])


def _central_differences(f, x):
    """Jacobian of f at x by the package's numerical derivatives (rows: outputs)."""
    return np.atleast_2d(jacobian(f, x, rel=1e-5, levels=2)).squeeze()


model_cases = {
    "seed": st.integers(0, 10_000),
    "vector": st.booleans(),
    "sparse": st.booleans(),
    "weighted": st.booleans(),
}


@settings(max_examples=30, deadline=None)
@given(**model_cases)
def test_objective_equals_dense_evaluation(seed, vector, sparse, weighted):
    lik, phi, beta, Z = _random_model(seed, vector, sparse, weighted)
    expected = _dense_objective(lik, Z, phi, beta)
    np.testing.assert_allclose(lik.evaluate(phi, beta).objective, expected, rtol=1e-11)


@settings(max_examples=15, deadline=None)
@given(**model_cases)
def test_profiled_beta_is_generalised_least_squares(seed, vector, sparse, weighted):
    lik, phi, _, Z = _random_model(seed, vector, sparse, weighted)
    gamma, theta = lik.split(phi)
    Lam = lik.pattern.Lambda(theta)
    Vinv = np.linalg.inv(np.diag(lik.residual_variance(gamma)) + Z @ Lam @ Lam.T @ Z.T)
    gls = np.linalg.solve(lik.X.T @ Vinv @ lik.X, lik.X.T @ Vinv @ lik.y)
    np.testing.assert_allclose(lik.evaluate(phi).beta, gls, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(**model_cases)
def test_gradient_and_hessian_match_finite_differences(seed, vector, sparse, weighted):
    lik, phi, beta, _ = _random_model(seed, vector, sparse, weighted)
    x = np.concatenate([beta, phi])
    p = len(beta)

    def objective(v):
        return lik.evaluate(v[p:], v[:p]).objective

    def gradient(v):
        return _full_gradient(lik, v[p:], v[:p])

    g = gradient(x)
    np.testing.assert_allclose(g, _central_differences(objective, x), rtol=1e-5, atol=1e-5)
    H = lik.hessian(phi, beta)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        H, _central_differences(gradient, x), rtol=1e-5, atol=1e-5 * np.abs(H).max()
    )


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), vector=st.booleans())
def test_profiled_gradient_matches_finite_differences(seed, vector):
    lik, phi, _, _ = _random_model(seed, vector, sparse=False, weighted=False)
    numeric = _central_differences(lambda v: lik.evaluate(v).objective, phi)
    np.testing.assert_allclose(lik.evaluate(phi).gradient, numeric, rtol=1e-5, atol=1e-6)


def test_zero_covariance_factor_is_the_model_without_random_effects():
    lik, phi, beta, _ = _random_model(3, vector=True, sparse=True, weighted=True)
    gamma, theta = lik.split(phi)
    plain = HeteroskedasticGaussian(lik.y, lik.X, lik.D, weights=lik.weights)
    zero = np.concatenate([gamma, np.zeros_like(theta)])
    np.testing.assert_allclose(
        lik.evaluate(zero, beta).objective, plain.evaluate(gamma, beta).objective, rtol=1e-13
    )


def test_shape_and_value_checks():
    y, X = np.zeros(5), np.ones((5, 1))
    with pytest.raises(DataError, match="one row per observation"):
        HeteroskedasticGaussian(y, X, np.ones((4, 1)))
    with pytest.raises(DataError, match="must be finite"):
        HeteroskedasticGaussian(np.array([0, 1, np.nan, 0, 1.0]), X, X)
    with pytest.raises(DataError, match="q = 1"):
        HeteroskedasticGaussian(y, X, X, np.ones((5, 2)), LambdaPattern.scalar(1))
    with pytest.raises(DataError, match="weights"):
        HeteroskedasticGaussian(y, X, X, weights=-np.ones(5))
