"""Tests for mixedmodels.quadrature: Gauss–Hermite rules for the standard normal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixedmodels.errors import MixedModelsError
from mixedmodels.quadrature import gauss_hermite


def normal_moment(p: int) -> float:
    """E Z^p for Z ~ N(0, 1): 0 for odd p, (p - 1)!! for even p."""
    if p % 2:
        return 0.0
    return float(math.prod(range(p - 1, 0, -2)))


def test_one_node_is_the_laplace_rule() -> None:
    z, w = gauss_hermite(1)
    np.testing.assert_array_equal(z, [0.0])
    np.testing.assert_array_equal(w, [1.0])


@pytest.mark.parametrize("k", [2, 3, 4, 7, 10, 25])
def test_nodes_sorted_symmetric_and_weights_positive_summing_to_one(k: int) -> None:
    z, w = gauss_hermite(k)
    assert z.shape == w.shape == (k,)
    assert np.all(np.diff(z) > 0)
    np.testing.assert_array_equal(z, -z[::-1])
    np.testing.assert_array_equal(w, w[::-1])
    assert np.all(w > 0)
    assert abs(w.sum() - 1.0) < 1e-15


@pytest.mark.parametrize("k", range(1, 16))
def test_polynomials_up_to_degree_2k_minus_1_are_exact(k: int) -> None:
    z, w = gauss_hermite(k)
    for p in range(2 * k):
        terms = w * z**p
        got, want = float(np.sum(terms)), normal_moment(p)
        # Rounding in the sum scales with the size of its terms, which for odd p cancel.
        scale = max(1.0, float(np.sum(np.abs(terms))))
        assert abs(got - want) <= 1e-12 * scale, (k, p, got, want)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_degree_2k_is_not_exact(k: int) -> None:
    # The first moment a k-point rule misses: the error is k! (positive), never zero.
    z, w = gauss_hermite(k)
    got = float(np.sum(w * z ** (2 * k)))
    assert normal_moment(2 * k) - got == pytest.approx(math.factorial(k), rel=1e-9)


def test_smooth_function_converges() -> None:
    # E exp(Z) = exp(1/2); the tail of the exponential series makes this a real test.
    z, w = gauss_hermite(20)
    assert float(np.sum(w * np.exp(z))) == pytest.approx(math.exp(0.5), rel=1e-13)
    z, w = gauss_hermite(3)
    assert abs(float(np.sum(w * np.exp(z))) - math.exp(0.5)) > 1e-4


def test_rules_are_cached_and_read_only() -> None:
    assert gauss_hermite(9) is gauss_hermite(9)
    assert gauss_hermite(np.int64(9)) is gauss_hermite(9)
    z, w = gauss_hermite(9)
    with pytest.raises(ValueError):
        z[0] = 1.0
    with pytest.raises(ValueError):
        w[0] = 1.0


@pytest.mark.parametrize("k", [0, -3])
def test_too_few_nodes_is_an_error(k: int) -> None:
    with pytest.raises(MixedModelsError, match="at least 1"):
        gauss_hermite(k)


@pytest.mark.parametrize("k", [2.0, 2.5, "3", None, True])
def test_non_integer_node_count_is_an_error(k: object) -> None:
    with pytest.raises(MixedModelsError, match="must be an integer"):
        gauss_hermite(k)  # type: ignore[arg-type]
