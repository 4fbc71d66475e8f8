"""The fixed-effects term: aliased columns, whatever the columns' units, and lme4's check.scaleX."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.feterm import independent_columns, scale_problem


def aliased_matrix(seed: int) -> np.ndarray:
    """Columns 0-2 independent, 3 = 2*col1 - col2, 4 independent, 5 = col4 + col0."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(50, 3))
    extra = rng.normal(size=50)
    return np.column_stack([A, 2 * A[:, 1] - A[:, 2], extra, extra + A[:, 0]])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), powers=st.lists(st.integers(-140, 140), min_size=6, max_size=6))
def test_aliasing_does_not_depend_on_units(seed, powers):
    """Rescaling any column by up to 1e±140 keeps the same columns as numpy's rank says."""
    X = aliased_matrix(seed)
    kept = independent_columns(X)
    assert kept.tolist() == [0, 1, 2, 4]
    assert np.linalg.matrix_rank(X) == len(kept)
    assert independent_columns(X * 10.0 ** np.array(powers, dtype=float)).tolist() == kept.tolist()


def test_zero_column_is_aliased():
    X = np.column_stack([np.ones(5), np.zeros(5), np.arange(5.0)])
    assert independent_columns(X).tolist() == [0, 2]


@pytest.mark.parametrize("factor", [1e-6, 1e4])
def test_scale_warning_as_lme4(sleepstudy, factor):
    """lme4 1.1.31 warns "Some predictor variables are on very different scales" for both."""
    data = sleepstudy.assign(Days=sleepstudy["Days"] * factor)
    with pytest.warns(UserWarning, match="very different scales: consider rescaling.*Days"):
        mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", data)


def test_no_scale_warning_for_ordinary_or_indicator_columns(sleepstudy):
    data = sleepstudy.assign(d=(sleepstudy["Days"] > 4).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mm.LinearMixedModel("Reaction ~ 1 + Days + d + (1|Subject)", data)


def test_scale_problem_rule():
    rng = np.random.default_rng(1)
    x = rng.normal(size=100)
    ones = np.ones(100)
    assert scale_problem(np.column_stack([ones, x, 50 * x]), ["(Intercept)", "x", "z"]) is None
    assert "z (sd" in scale_problem(np.column_stack([ones, x, 2000 * x]), ["(Intercept)", "x", "z"])
    ratio = np.column_stack(
        [ones, 0.9 * x, 2 * x * 1e3 / 1.1]
    )  # each sd within [1e-3, 1e3], ratio > 1e3
    assert scale_problem(ratio, ["(Intercept)", "x", "z"]) is not None
    assert (
        scale_problem(np.column_stack([ones, 2 * ones]), ["a", "b"]) is None
    )  # no spread: no scale


def test_a_covariate_far_from_zero_beside_an_intercept_is_warned_about():
    from mixedmodels.feterm import centring_problem

    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    X = np.column_stack([np.ones(50), x + 1e6])
    assert "centre" in centring_problem(X, ["(Intercept)", "x"])
    assert centring_problem(np.column_stack([np.ones(50), x + 10]), ["(Intercept)", "x"]) is None
    assert centring_problem(X[:, 1:], ["x"]) is None  # no intercept: nothing to be aliased with
    ss = mm.datasets.load("sleepstudy")
    with pytest.warns(UserWarning, match="Days .*centre"):
        mm.LinearMixedModel("Reaction ~ Days + (1|Subject)", ss.assign(Days=ss.Days + 1e6))
