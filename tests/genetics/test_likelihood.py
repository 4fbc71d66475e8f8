"""The rotated profiled likelihood against the dense formulas, full and low rank."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.genetics import eigh_kinship, kinship, svd_genotypes
from mixedmodels.genetics.likelihood import RotatedData, profiled_loglik, profiled_score

from .conftest import dense_fit, random_panel

pytestmark = pytest.mark.filterwarnings("ignore:dropped .* monomorphic")


def _problem(seed: int, n: int, m: int, p: int):
    rng = np.random.default_rng(seed)
    G = random_panel(rng, n, m, missing=0.05)
    G[:, 0] = np.arange(n) % 3
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    y = X @ rng.normal(size=p) + rng.normal(size=n)
    return G, X, y


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(8, 40),
    m=st.integers(2, 60),
    p=st.integers(1, 3),
    h2=st.floats(0.0, 0.99),
    reml=st.booleans(),
)
def test_rotated_equals_dense(seed, n, m, p, h2, reml):
    G, X, y = _problem(seed, n, m, p)
    K = kinship(G)
    expected = dense_fit(y, X, K, h2, reml)
    decompositions = [eigh_kinship(K)]
    if m < n:
        decompositions.append(svd_genotypes(G))  # low rank: the complement matters
    for dec in decompositions:
        fit = profiled_loglik(RotatedData.build(dec, X, y), np.array([h2]), reml)
        np.testing.assert_allclose(fit.loglik[0], expected["loglik"], rtol=1e-9)
        np.testing.assert_allclose(fit.beta[0], expected["beta"], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(fit.s2[0] * fit.A_inv[0], expected["cov"], rtol=1e-7, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), h2=st.floats(0.05, 0.95), reml=st.booleans())
def test_score_is_the_derivative(seed, h2, reml):
    G, X, y = _problem(seed, 30, 12, 2)
    for dec in (eigh_kinship(kinship(G)), svd_genotypes(G)):
        data = RotatedData.build(dec, X, y)
        step = 1e-6
        ends = profiled_loglik(data, np.array([h2 - step, h2 + step]), reml).loglik
        numeric = (ends[1] - ends[0]) / (2 * step)
        analytic = profiled_score(data, np.array([h2]), reml)[0]
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5)


def test_grid_evaluation_is_vectorised_consistently():
    G, X, y = _problem(2, 25, 40, 2)
    data = RotatedData.build(eigh_kinship(kinship(G)), X, y)
    grid = np.linspace(0, 0.9, 7)
    together = profiled_loglik(data, grid, True).loglik
    one_by_one = [profiled_loglik(data, np.array([h]), True).loglik[0] for h in grid]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-13)
