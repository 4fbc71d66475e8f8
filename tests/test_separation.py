"""Constant responses and (quasi-)complete separation, on data sets built to have them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mixedmodels.errors import DataError
from mixedmodels.families import get_family
from mixedmodels.separation import (
    SeparationWarning,
    check_constant_response,
    check_separation,
    separation_direction,
)

BERNOULLI, BINOMIAL, POISSON = (
    get_family("bernoulli"),
    get_family("binomial"),
    get_family("poisson"),
)


def covariate_data(seed: int = 1, n: int = 120, separated: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (
        (x > 0.3).astype(float)
        if separated
        else (rng.uniform(size=n) < 1 / (1 + np.exp(-x))).astype(float)
    )
    return np.column_stack([np.ones(n), x]), y


def factor_design(n_per: int = 30, levels: int = 4):
    f = np.repeat(np.arange(levels), n_per)
    X = np.column_stack([np.ones(len(f))] + [(f == j).astype(float) for j in range(1, levels)])
    return X, f, ["(Intercept)"] + [f"f{j}" for j in range(1, levels)]


def no_warning(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def test_complete_separation_by_a_covariate():
    X, y = covariate_data()
    with pytest.warns(SeparationWarning, match=r"x \(\+inf\)"):
        diverging = check_separation(X, y, ["(Intercept)", "x"], BERNOULLI)
    assert "x (+inf)" in diverging
    d = separation_direction(X, y, BERNOULLI)
    eta = X @ d
    assert (eta[y == 1] >= -1e-9).all() and (eta[y == 0] <= 1e-9).all() and np.abs(eta).max() > 0


def test_flipped_outcome_diverges_the_other_way():
    X, y = covariate_data()
    with pytest.warns(SeparationWarning, match=r"x \(-inf\)"):
        check_separation(X, 1 - y, ["(Intercept)", "x"], BERNOULLI)


def test_no_separation_no_warning():
    X, y = covariate_data(separated=False)
    assert no_warning(lambda: check_separation(X, y, ["(Intercept)", "x"], BERNOULLI)) == []


def test_quasi_complete_separation_names_the_level():
    X, f, names = factor_design()
    y = (np.random.default_rng(2).uniform(size=len(f)) < 0.4).astype(float)
    y[f == 2] = 1.0
    with pytest.warns(SeparationWarning) as record:
        assert check_separation(X, y, names, BERNOULLI) == ["f2 (+inf)"]
    assert "'f1'" not in str(record[0].message)


def test_binomial_counts():
    X, f, names = factor_design(n_per=5)
    trials = np.full(len(f), 10.0)
    successes = np.random.default_rng(3).binomial(10, 0.3, len(f)).astype(float)
    successes[(f == 1) & (successes == 0)] = 1  # level 1 has both outcomes in every row
    assert (
        no_warning(lambda: check_separation(X, successes / trials, names, BINOMIAL, trials)) == []
    )
    successes[f == 3] = 0.0
    with pytest.warns(SeparationWarning):
        assert check_separation(X, successes / trials, names, BINOMIAL, trials) == ["f3 (-inf)"]


def test_poisson_level_of_zeros():
    X, f, names = factor_design()
    counts = np.random.default_rng(4).poisson(3.0, len(f)).astype(float)
    counts[counts == 0] = 1
    assert no_warning(lambda: check_separation(X, counts, names, POISSON)) == []
    counts[f == 1] = 0.0
    with pytest.warns(SeparationWarning):
        assert check_separation(X, counts, names, POISSON) == ["f1 (-inf)"]


def test_zero_weight_observations_do_not_count():
    X, y = covariate_data(separated=False)
    separated = (X[:, 1] > 0.3).astype(float)
    wt = np.where(separated == y, 1.0, 0.0)  # the rows that break the separation get weight 0
    assert separation_direction(X, y, BERNOULLI, wt) is not None
    assert separation_direction(X, y, BERNOULLI) is None


def test_fitted_means_skip_the_programme_when_away_from_the_boundary():
    X, y = covariate_data()
    assert (
        no_warning(
            lambda: check_separation(X, y, ["(Intercept)", "x"], BERNOULLI, mu=np.full(len(y), 0.5))
        )
        == []
    )
    mu = np.where(y == 1, 1 - 1e-9, 1e-9)  # what a diverging IRLS produces
    with pytest.warns(SeparationWarning):
        check_separation(X, y, ["(Intercept)", "x"], BERNOULLI, mu=mu)


def test_other_families_are_not_checked():
    X, y = covariate_data()
    assert separation_direction(X, y + 1.0, get_family("gamma")) is None


@pytest.mark.parametrize(
    "y, family",
    [
        (np.zeros(8), BERNOULLI),
        (np.ones(8), BERNOULLI),
        (np.ones(8), BINOMIAL),
        (np.zeros(8), POISSON),
        (np.full(8, 2.5), get_family("gamma")),
    ],
)
def test_constant_response_is_an_error(y, family):
    with pytest.raises(DataError, match=r"the response 'resp' is constant \(all"):
        check_constant_response(y, family, "resp")


def test_two_values_are_not_constant():
    check_constant_response(np.array([0.0, 1.0, 1.0]), BERNOULLI, "y")
