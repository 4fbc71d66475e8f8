"""PIRLS (mixedmodels/pirls.py): the failure contract and the conditional modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import EVALUATION_FAILURES, CholeskyFailed
from mixedmodels.pirls import pirls


def poisson_slope_data(seed: int = 1, n_groups: int = 40, per: int = 12) -> pd.DataFrame:
    """Counts with a random slope on a covariate of sd ~20: weights reach ~1e18 at bad θ."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(50, 20, len(g))
    b0 = rng.normal(0, 0.5, n_groups)
    b1 = rng.normal(0, 0.01, n_groups)
    eta = 0.5 + 0.01 * x + b0[g] + b1[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": [f"g{i}" for i in g]})


def test_pirls_matches_the_penalised_deviance_minimum():
    m = mm.GeneralizedLinearMixedModel(
        "TICKS ~ 1 + YEAR + (1|BROOD)", mm.datasets.load("grouseticks"), family="poisson"
    ).fit()
    pdev = pirls(m, fast=False)
    u = m.u.copy()
    for step in (1e-4, -1e-4):  # a perturbed u has a larger penalised deviance
        m.u = u + step
        assert m.penalized_deviance() > pdev
    m.u = u


def test_a_failing_start_restarts_from_zero_modes():
    m = mm.GeneralizedLinearMixedModel(
        "TICKS ~ 1 + YEAR + (1|BROOD)", mm.datasets.load("grouseticks"), family="poisson"
    ).fit()
    good = pirls(m, fast=False)
    m.u = np.full_like(m.u, 800.0)  # exp(η) overflows: the warm start is unusable
    assert pirls(m, fast=False) == pytest.approx(good, rel=1e-8)


def test_factorisation_failures_are_the_packages_error():
    from mixedmodels.blocks import dense_cholesky

    with pytest.raises(CholeskyFailed):
        dense_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(CholeskyFailed):
        dense_cholesky(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    assert CholeskyFailed in EVALUATION_FAILURES


def test_poisson_random_slope_fits_and_bootstraps():
    df = poisson_slope_data()
    m = mm.GeneralizedLinearMixedModel("y ~ 1 + x + (1 + x|g)", df, family="poisson").fit()
    assert np.isfinite(m.objective) and m.optsum.fitted
    boot = mm.parametric_bootstrap(m, 6, seed=2, progress=False)
    assert len(boot) == 6 and boot.attrs["complete"]
    assert boot.attrs["failed"] == len(boot.failures)
