"""DHARMa-style simulated residuals: uniform under a correct model, tests reject misspecified ones.

Small fixed-seed checks; the calibration study over 200 data sets is
benchmarks/residual_calibration.py (its table is in docs/diagnostics.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.inference.residuals_sim import _scaled


def poisson_data(seed, kind="correct", n_groups=30, per=10):
    """y ~ Poisson(exp(0.5 + 0.6 x + b_g)), b_g ~ N(0, 0.5²); optionally with observation-level
    N(0, 0.8²) noise on the log scale (overdispersed) or 30% structural zeros (zero-inflated)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(len(g))
    eta = 0.5 + 0.6 * x + 0.5 * rng.standard_normal(n_groups)[g]
    if kind == "overdispersed":
        eta = eta + 0.8 * rng.standard_normal(len(g))
    y = rng.poisson(np.exp(eta)).astype(float)
    if kind == "zeroinflated":
        y[rng.random(len(g)) < 0.3] = 0
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


def fit(kind, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.GeneralizedLinearMixedModel(
            "y ~ x + (1|g)", poisson_data(seed, kind), family="poisson"
        ).fit()


def test_correct_model_gives_uniform_residuals():
    r = mm.simulate_residuals(fit("correct", 2), n=250, seed=1, progress=False)
    assert r.integer and r.simulated.shape == (300, 250)
    assert r.test_uniformity()["p_value"] > 0.05
    assert r.test_dispersion()["p_value"] > 0.05
    assert r.test_zero_inflation()["p_value"] > 0.05
    assert r.test_outliers()["p_value"] > 0.05


def test_overdispersion_is_detected():
    m = fit("overdispersed", 1)
    for re_form in ("~0", None):
        r = mm.simulate_residuals(m, n=250, seed=1, re_form=re_form, progress=False)
        d = r.test_dispersion()
        assert d["p_value"] < 0.05 and d["dispersion"] > 1


def test_zero_inflation_is_detected():
    z = mm.simulate_residuals(fit("zeroinflated", 0), n=250, seed=1, progress=False)
    zi = z.test_zero_inflation()
    assert zi["p_value"] < 0.05 and zi["ratio"] > 1


def test_residuals_are_indexed_like_the_data_and_reproducible(sleep_ml):
    r1 = mm.simulate_residuals(sleep_ml, n=50, seed=3, progress=False)
    r2 = mm.simulate_residuals(sleep_ml, n=50, seed=3, progress=False)
    assert isinstance(r1.residuals, pd.Series) and r1.residuals.index.equals(sleep_ml.obs_index)
    assert r1.residuals.equals(r2.residuals) and not r1.integer
    assert ((r1.residuals >= 0) & (r1.residuals <= 1)).all()
    assert "180 observations, 50 simulations" in repr(r1)
    assert "Kolmogorov-Smirnov" in repr(r1.test_uniformity())


def test_pit_randomises_ties_only():
    rng = np.random.default_rng(0)
    sims = np.array([[0.0, 1, 1, 2], [0.5, 1.5, 2.5, 3.5]])
    u = _scaled(np.array([1.0, 2.0]), sims, rng)
    assert 0.25 <= u[0] <= 0.75 and u[1] == 0.5


def test_binomial_residuals_use_successes(fitted):
    m = fitted("cbind(incidence, size - incidence) ~ period + (1|herd)", "cbpp", family="binomial")
    r = mm.simulate_residuals(m, n=20, seed=1, progress=False)
    assert r.integer and np.allclose(r.observed, mm.datasets.load("cbpp")["incidence"])
    assert np.allclose(r.simulated, np.rint(r.simulated))


def test_plot(sleep_ml):
    pytest.importorskip("matplotlib")
    fig = mm.simulate_residuals(sleep_ml, n=20, seed=1, progress=False).plot()
    assert len(fig.axes) == 2 and "KS p" in fig.axes[0].get_title()


def test_bad_input(sleep_ml):
    with pytest.raises(mm.MixedModelsError, match="at least 2"):
        mm.simulate_residuals(sleep_ml, n=1)
    with pytest.raises(mm.MixedModelsError, match="at least 2"):
        mm.simulate_residuals(sleep_ml, n=2.5)
    with pytest.raises(mm.MixedModelsError, match="simulate"):
        mm.simulate_residuals(object())
    unfitted = mm.LinearMixedModel("Reaction ~ Days + (1|Subject)", mm.datasets.load("sleepstudy"))
    with pytest.raises(mm.NotFittedError):
        mm.simulate_residuals(unfitted)


def test_progress_bar_when_asked(sleep_ml, capsys):
    mm.simulate_residuals(sleep_ml, n=30, seed=1, progress=True)
    assert "simulations" in capsys.readouterr().err
