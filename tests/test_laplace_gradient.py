"""The analytic gradient of the Laplace objective (mixedmodels.laplace.laplace_gradient)
and the gradient-based joint stage that uses it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from glmmtmb_fits import reference, ziformula
from scipy.differentiate import derivative

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError


def _model(name: str):
    ref = reference(name)
    data = mm.datasets.load(ref["data"])
    return mm.GeneralizedLinearMixedModel(
        ref["formula"], data, family=ref.get("family", "nbinom2"), ziformula=ziformula(ref)
    )


def _away_from_optimum(m) -> np.ndarray:
    """The fast fit's parameters moved by 0.05 in each coordinate (a point with a real slope)."""
    m.fit(fast=True)
    x = m.outer_parameters() + 0.05 * np.random.default_rng(3).standard_normal(
        len(m.outer_parameters())
    )
    x[: len(m.theta)] = np.abs(x[: len(m.theta)])
    return x


def _scipy_gradient(m, x: np.ndarray) -> np.ndarray:
    """scipy.differentiate.derivative along each coordinate (adaptive central differences)."""
    out = np.empty(len(x))
    for i in range(len(x)):

        def along(t, i=i):
            t = np.asarray(t, dtype=float)
            flat = [
                m.outer_objective(np.where(np.arange(len(x)) == i, x + s, x)) for s in t.ravel()
            ]
            return np.reshape(flat, t.shape)

        res = derivative(along, 0.0, initial_step=1e-3, order=4, maxiter=3)
        out[i] = res.df
    return out


@pytest.mark.parametrize(
    "name", ["epil_nb2", "sal_nb1", "beta_sim", "sal_zip", "owls_nb2_zi", "sal_zinb_zimined"]
)
def test_gradient_matches_scipy_finite_differences(name):
    """NB2, NB1, beta, ZIP and ZINB: every coordinate (θ, β, β_zi, log d) to 1e-5 relative."""
    m = _model(name)
    x = _away_from_optimum(m)
    value, grad = m.outer_value_and_gradient(x)
    assert value == pytest.approx(m.outer_objective(x), rel=1e-12)
    numeric = _scipy_gradient(m, x)
    scale = np.abs(numeric) + 1e-3 * np.abs(numeric).max()
    assert np.all(np.abs(grad - numeric) <= 1e-5 * scale), (grad, numeric)


def test_gradient_is_zero_at_the_joint_optimum():
    """At the fitted optimum every component of the gradient is small against its curvature."""
    m = _model("epil_nb2").fit()
    _, grad = m.outer_value_and_gradient(m.outer_parameters())
    se = np.concatenate([[0.05], m.stderror, [m.coeftable(component="disp").iloc[0, 1]]])
    assert np.all(np.abs(grad * se) < 1e-3)  # the objective would fall by < 1e-6 along any SE


def test_joint_stage_records_the_gradient_search():
    """optsum names L-BFGS-B, counts every evaluation in its log, and a refit repeats it."""
    m = _model("owls_nb2_zi").fit()
    assert m.optsum.optimizer == "L-BFGS-B"
    assert m.optsum.feval == len(m.optsum.fitlog) > 0
    assert m.optsum.returnvalue == "SUCCESS"
    np.testing.assert_allclose(m.optsum.final, m.outer_parameters(), rtol=1e-12)
    assert m.optsum.fmin == pytest.approx(m.objective, rel=1e-12)
    before = m.objective
    m.refit()
    assert m.optsum.optimizer == "L-BFGS-B"
    assert m.objective == pytest.approx(before, rel=1e-10)


def test_other_optimizer_uses_nlopt_and_agrees():
    """A user's NLopt choice is kept (no gradient search) and reaches the same optimum."""
    grad_fit = _model("epil_nb2").fit()
    m = _model("epil_nb2")
    m.optsum.optimizer = "LN_NEWUOA_BOUND"
    m.fit()
    assert m.optsum.optimizer == "LN_NEWUOA_BOUND"
    assert m.objective == pytest.approx(grad_fit.objective, rel=1e-9)
    np.testing.assert_allclose(m.beta, grad_fit.beta, atol=1e-3 * grad_fit.stderror.max())


def test_fast_stage_modes_are_stationary_in_beta_zi():
    """The fast stage puts β_zi in Newton: at its modes ∂h/∂β_zi = ZI_RIDGE β_zi (the ridge's slope)."""
    from mixedmodels.laplace import ZI_RIDGE, zi_curvature, zi_eta

    m = _model("sal_zip").fit(fast=True)
    gz, _, _ = zi_curvature(m, m.eta, zi_eta(m))
    np.testing.assert_allclose(m.zi.X.T @ gz, ZI_RIDGE * m.beta_zi, atol=1e-6)


def test_known_covariance_is_refused_naming_term_and_family():
    df = mm.datasets.load("epil")
    subjects = sorted(df["subject"].astype(str).unique())
    K = pd.DataFrame(np.eye(len(subjects)), index=subjects, columns=subjects)
    with pytest.raises(MixedModelsError, match=r"'subject'.*known covariance.*'nbinom2'") as info:
        mm.GeneralizedLinearMixedModel(
            "y ~ lbase * trt + lage + V4 + (1 | subject)",
            df,
            family="nbinom2",
            covariance={"subject": K},
        )
    assert not isinstance(info.value, mm.errors.ConvergenceError)


def _simulated_nb(seed: int, sd: float, n: int = 400, groups: int = 30) -> pd.DataFrame:
    """Negative binomial counts of shape 0.7 with a normal group effect of standard deviation ``sd``."""
    rng = np.random.default_rng(seed)
    g, x = rng.integers(0, groups, n), rng.normal(size=n)
    mu = np.exp(0.3 + 0.5 * x + rng.normal(0.0, sd, groups)[g])
    y = rng.negative_binomial(0.7, 0.7 / (0.7 + mu)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def _third_of_a_series() -> pd.DataFrame:
    """The third of a series of simulated data sets (the second zero-inflated), as first found."""
    rng = np.random.default_rng(11)
    for rep in range(3):
        g, x = rng.integers(0, 30, 400), rng.normal(size=400)
        mu = np.exp(0.3 + 0.5 * x + rng.normal(0, 0.6, 30)[g])
        k = rng.choice([0.7, 2.0, 8.0])
        y = rng.negative_binomial(k, k / (k + mu)).astype(float)
        if rep == 1:
            y[rng.random(400) < 0.2] = 0
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def test_gradient_search_leaves_a_fast_stage_boundary():
    """This nbinom1 fast stage ends at θ = 0, where the even objective has zero slope; the
    gradient search starts inside and finds the interior optimum (θ ≈ 0.25) without restarts,
    as low as NEWUOA's derivative-free fit."""
    df = _third_of_a_series()
    m = mm.GeneralizedLinearMixedModel("y ~ x + (1|g)", df, family="nbinom1").fit()
    assert m.optsum_fast.final[0] == 0.0
    assert m.optsum.restarts == 0 and m.theta[0] > 0.1
    other = mm.GeneralizedLinearMixedModel("y ~ x + (1|g)", df, family="nbinom1")
    other.optsum.optimizer = "LN_NEWUOA_BOUND"
    assert m.objective <= other.fit().objective + 1e-6


def test_gradient_search_finds_a_boundary_optimum():
    """No group effect in the data: the search returns to θ = 0 (a singular fit)."""
    df = _simulated_nb(0, 0.3)
    with pytest.warns(mm.errors.SingularFitWarning):
        m = mm.GeneralizedLinearMixedModel("y ~ x + (1|g)", df, family="nbinom1").fit()
    assert m.optsum.optimizer == "L-BFGS-B"
    assert m.theta[0] == 0.0
    assert m.optsum.convergence == "boundary"
