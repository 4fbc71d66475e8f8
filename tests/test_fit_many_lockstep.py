"""Lockstep fits of fit_many: the stacked objective against the dense kernel, the Newton method on
known functions, and whole fits against single fits of LinearMixedModel."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.fitmany import lockstep
from mixedmodels.fitmany.design import SharedDesign, moment_start, moment_starts

FORMULA = "~ 1 + condition + (1|donor) + (1|batch)"


def simulate(n_donors=12, per=6, seed=5):
    """Samples in donors and 3 crossed batches; features with donor and batch effects, some with none.

    Features g0-g5 have both effects, g6-g8 no batch effect (their batch
    standard deviation is usually estimated as 0), g9 no donor effect.
    """
    rng = np.random.default_rng(seed)
    n = n_donors * per
    donor = np.repeat(np.arange(n_donors), per)
    batch = rng.integers(0, 3, n)
    samples = pd.DataFrame(
        {
            "donor": [f"d{i:02d}" for i in donor],
            "batch": [f"b{i}" for i in batch],
            "condition": np.tile(["a", "b"], n // 2),
        },
        index=[f"s{i}" for i in range(n)],
    )
    features = 10
    sd_donor = np.r_[np.full(9, 0.8), 0.0]
    sd_batch = np.r_[np.full(6, 0.6), 0.0, 0.0, 0.0, 0.6]
    values = (
        5.0
        + sd_donor * rng.standard_normal((n_donors, features))[donor]
        + sd_batch * rng.standard_normal((3, features))[batch]
        + (samples["condition"] == "b").to_numpy()[:, None] * rng.normal(0, 0.5, features)
        + rng.standard_normal((n, features))
    )
    return samples, pd.DataFrame(values, index=samples.index, columns=[f"g{j}" for j in range(10)])


@pytest.fixture(scope="module")
def study():
    samples, expr = simulate()
    holes = expr["g1"].copy()
    holes.iloc[[2, 9, 30, 31]] = np.nan
    expr = expr.assign(holes=holes, constant=3.0, empty=np.nan)
    return samples, expr


def single_fit(samples, y, reml, formula=FORMULA):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm.LinearMixedModel("y " + formula, samples.assign(y=y), reml=reml).fit()


def kernel_and_systems(samples, Y, reml, rhs="1 + condition + (1|donor) + (1|batch)"):
    design = SharedDesign(rhs, samples, reml=reml)
    kernel = design.kernel
    zxy, yy = kernel.products(Y)
    return design, kernel, zxy.T, yy, lockstep.stack_systems(kernel, zxy.T, yy)


# ---- the stacked objective ---------------------------------------------------------------------
@pytest.mark.parametrize("reml", [False, True])
def test_stacked_objective_equals_the_dense_kernel(study, reml):
    samples, expr = study
    Y = expr.iloc[:, :8].to_numpy()
    _, kernel, zxy, yy, systems = kernel_and_systems(samples, Y, reml)
    theta = np.random.default_rng(1).uniform(-2.0, 2.0, (8, 3, 2))
    theta[0, 0] = [0.0, 0.7]  # a standard deviation on its bound
    theta[1, 1] = [0.0, 0.0]
    values = lockstep.stacked_objective(kernel, *lockstep.stacked_factor(kernel, systems, theta))
    for r in range(8):
        system = kernel.system(zxy[r], yy[r])
        for p in range(3):
            assert values[r, p] == pytest.approx(kernel.objective(theta[r, p], system), rel=1e-12)


def test_stacked_objective_with_a_full_lambda(study):
    samples, expr = study
    with_x = samples.assign(x=np.linspace(-1, 1, len(samples)))
    Y = expr.iloc[:, :4].to_numpy()
    _, kernel, zxy, yy, systems = kernel_and_systems(with_x, Y, True, "1 + x + (1 + x|donor)")
    assert not kernel.diagonal and kernel.q1 == 0  # nothing eliminated: the whole system is stacked
    theta = np.random.default_rng(2).uniform(-1.5, 1.5, (4, 2, 3))
    values = lockstep.stacked_objective(kernel, *lockstep.stacked_factor(kernel, systems, theta))
    for r in range(4):
        for p in range(2):
            expected = kernel.objective(theta[r, p], kernel.system(zxy[r], yy[r]))
            assert values[r, p] == pytest.approx(expected, rel=1e-12)


def test_stacked_estimates_equal_the_dense_kernel(study):
    samples, expr = study
    Y = expr.iloc[:, :5].to_numpy()
    _, kernel, zxy, yy, systems = kernel_and_systems(samples, Y, True)
    theta = np.random.default_rng(3).uniform(0.0, 2.0, (5, 1, 2))
    est = lockstep.stacked_estimates(
        kernel, lockstep.stacked_factor(kernel, systems, theta)[0][:, 0]
    )
    for r in range(5):
        one = kernel.estimates(theta[r, 0], kernel.system(zxy[r], yy[r]))
        np.testing.assert_allclose(est["beta"][r], one["beta"], rtol=1e-10)
        np.testing.assert_allclose(est["se"][r], one["se"], rtol=1e-10)
        assert est["sigma"][r] == pytest.approx(one["sigma"], rel=1e-12)


def test_a_failed_factor_is_inf_for_that_response_only(study):
    samples, expr = study
    Y = expr.iloc[:, :3].to_numpy()
    _, kernel, zxy, yy, _ = kernel_and_systems(samples, Y, False)
    broken = yy.copy()
    broken[1] = -1.0  # y'y < 0: no such response; the last pivot of S is negative
    systems = lockstep.stack_systems(kernel, zxy, broken)
    theta = np.full((3, 2, 2), 0.5)
    values = lockstep.stacked_objective(kernel, *lockstep.stacked_factor(kernel, systems, theta))
    assert np.isinf(values[1]).all()
    for r in (0, 2):
        assert values[r, 0] == pytest.approx(
            kernel.objective(theta[r, 0], kernel.system(zxy[r], yy[r])), rel=1e-12
        )


def test_moment_starts_are_lme4s_start_of_each_response(study):
    samples, expr = study
    design = SharedDesign("1 + condition + (1|donor) + (1|batch)", samples)
    Y = expr.iloc[:, :10].to_numpy()
    starts = moment_starts(design.structure, Y)
    for j in range(10):
        np.testing.assert_allclose(starts[j], moment_start(design.structure, Y[:, j]), rtol=1e-13)


# ---- the Newton method on functions with known minima ------------------------------------------
def even_quartic(targets, weights):
    """f_r(θ) = Σᵢ wᵢ(θᵢ² − t_ri)²: even in each θᵢ, minimum at √t_ri, or at 0 when t_ri ≤ 0."""

    def evaluate(rows, theta):
        return np.sum(weights * (theta**2 - targets[rows][:, None, :]) ** 2, axis=-1)

    return evaluate


def test_newton_lockstep_reaches_interior_and_boundary_minima():
    targets = np.array([[1.5, 0.25], [-0.3, 2.0], [0.8, -1.0], [-0.5, -0.2], [4.0, 0.01]])
    weights = np.array([3.0, 0.5])
    start = np.array([[1.0, 1.0], [0.5, -0.7], [2.0, 0.3], [0.9, 1.1], [-0.4, 2.5]])
    result = lockstep.newton_lockstep(even_quartic(targets, weights), start, np.arange(2))
    assert result.converged.all() and result.reason == [""] * 5
    expected = np.sqrt(np.maximum(targets, 0.0))
    np.testing.assert_allclose(
        result.theta, expected, atol=1e-5
    )  # FTOL: f ≈ 0 here, so θ is within √(2 FTOL / H)
    assert (result.theta[targets <= 0] == 0.0).all()  # boundary optima settled on the bound
    assert (result.theta >= 0).all()  # negative starts and iterates mapped to the same ΛΛ'
    assert (result.iterations < 15).all() and (result.feval > result.iterations).all()


def test_newton_lockstep_leaves_a_saddle_and_an_unfinished_response():
    targets, weights = np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0])
    # at θ₁ = 0 the slope is 0 and the curvature negative: no descent direction
    saddle = lockstep.newton_lockstep(even_quartic(targets, weights), np.array([[0.0, 1.0]]),
                                      np.arange(2))  # fmt: skip
    assert not saddle.converged[0] and "not positive definite" in saddle.reason[0]
    short = lockstep.newton_lockstep(even_quartic(targets, weights), np.array([[3.0, 3.0]]),
                                     np.arange(2), max_iterations=1)  # fmt: skip
    assert not short.converged[0] and short.reason[0] == "not converged in 1 Newton steps"


def test_derivatives_of_the_stencil_match_a_quadratic():
    rng = np.random.default_rng(4)
    H = rng.standard_normal((3, 3))
    H = H @ H.T
    g, theta = rng.standard_normal(3), rng.standard_normal((1, 3))
    h = np.full((1, 3), 1e-3)
    points = lockstep.stencil(theta, h)[0]
    values = np.array([[g @ x + 0.5 * x @ H @ x for x in points]])
    f0 = np.array([g @ theta[0] + 0.5 * theta[0] @ H @ theta[0]])
    grad, hess = lockstep.derivatives(f0, values, h)
    np.testing.assert_allclose(grad[0], g + H @ theta[0], rtol=1e-7)
    np.testing.assert_allclose(hess[0], H, rtol=1e-5, atol=1e-5)


# ---- whole fits --------------------------------------------------------------------------------
def assert_as_good_as(row, model):
    """The lockstep fit is the single fit's optimum or a better one, to BOBYQA's accuracy.

    BOBYQA stops at ftol_rel = 1e-12 of its quadratic model, a few 1e-6 from
    the optimum in θ (and 1e-5 from a boundary optimum it does not reach);
    the lockstep Newton method goes to the optimum, so its objective is at
    most the single fit's (plus rounding) and θ is close.
    """
    assert row["objective"] == pytest.approx(model.objective, rel=1e-8)
    assert row["objective"] <= model.objective + 1e-10 * abs(model.objective)
    theta = [row[f"theta.{n}"] for n in model.theta_names]
    np.testing.assert_allclose(theta, model.theta, atol=1e-4)
    se = np.array([row[f"se.{c}"] for c in model.coefnames])
    beta = np.array([row[f"beta.{c}"] for c in model.coefnames])
    assert np.all(np.abs(beta - model.beta) < 0.01 * model.stderror)
    np.testing.assert_allclose(se, model.stderror, rtol=1e-3)
    assert row["sigma"] == pytest.approx(model.sigma, rel=1e-5)


@pytest.mark.parametrize("reml", [False, True])
def test_lockstep_matches_single_fits(study, reml):
    samples, expr = study
    res = mm.fit_many(FORMULA, samples, expr, reml=reml, chunk=5, progress=False)
    assert res.info["method"] == "lockstep"
    table = res.table
    fitted = [c for c in expr.columns if c not in ("constant", "empty")]
    assert (table.loc[fitted, "optimizer"] == "lockstep Newton").all()
    for name in fitted:
        assert_as_good_as(table.loc[name], single_fit(samples, expr[name], reml))
    assert table.loc["holes", "nobs"] == len(expr) - 4
    # the responses without a batch effect: at least two fits with σ_batch exactly 0
    boundary = table[table["convergence"] == "boundary"]
    assert len(boundary) >= 2 and (boundary["theta.batch.(Intercept)"] == 0).sum() >= 2
    assert boundary["singular"].all() and boundary["converged"].all()
    assert "constant" in table.loc["constant", "message"]
    assert table.loc["empty", "message"] == "DataError: all values are missing"
    assert not table.loc[["constant", "empty"], "converged"].any()


def test_lockstep_rows_do_not_depend_on_the_chunk(study):
    samples, expr = study
    tables = [
        mm.fit_many(FORMULA, samples, expr, reml=True, chunk=chunk, progress=False).table
        for chunk in (1, 4, 64)
    ]
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other, check_exact=True)


def test_lockstep_and_each_agree(study):
    samples, expr = study
    together = mm.fit_many(FORMULA, samples, expr, progress=False).table
    each = mm.fit_many(FORMULA, samples, expr, method="each", progress=False)
    assert each.info["method"] == "each"
    ok = each.table["converged"]
    assert (each.table.loc[ok, "optimizer"] == "LN_BOBYQA").all()
    np.testing.assert_allclose(together.loc[ok, "objective"], each.table.loc[ok, "objective"],
                               rtol=1e-9)  # fmt: skip
    assert (together.loc[ok, "objective"] <= each.table.loc[ok, "objective"] + 1e-9).all()
    # fewer (stacked) evaluations than BOBYQA's one-at-a-time ones
    assert together.loc[ok, "feval"].median() < each.table.loc[ok, "feval"].median()


def test_a_response_left_by_lockstep_is_fitted_by_itself(study, monkeypatch):
    samples, expr = study
    each = mm.fit_many(FORMULA, samples, expr, method="each", progress=False).table
    monkeypatch.setattr(lockstep, "MAX_ITERATIONS", 1)
    res = mm.fit_many(FORMULA, samples, expr, progress=False).table
    left = res["optimizer"].str.startswith("LN_BOBYQA after lockstep")
    assert left.sum() >= 5
    reason = "LN_BOBYQA after lockstep (not converged in 1 Newton steps)"
    assert (res.loc[left, "optimizer"] == reason).all()
    # the same fit as method="each" (same start, same optimizer), with the lockstep's evaluations added
    cols = ["objective", "theta.donor.(Intercept)", "theta.batch.(Intercept)", "beta.conditionb"]
    pd.testing.assert_frame_equal(res.loc[left, cols], each.loc[left, cols], check_exact=True)
    assert (res.loc[left, "feval"] > each.loc[left, "feval"]).all()
    assert res.loc[left, "converged"].all()


def test_random_slopes_in_lockstep(study):
    samples, expr = study
    with_x = samples.assign(x=np.linspace(-1, 1, len(samples)))
    formula = "~ 1 + x + (1 + x|donor)"
    res = mm.fit_many(formula, with_x, expr.iloc[:, :4], progress=False)
    for name in expr.columns[:4]:
        row = res.table.loc[name]
        model = single_fit(with_x, expr[name], False, formula)
        assert row["optimizer"] == "lockstep Newton"
        assert row["objective"] == pytest.approx(model.objective, rel=1e-8)
        assert row["objective"] <= model.objective + 1e-10 * abs(model.objective)
        theta = [row[f"theta.{n}"] for n in model.theta_names]
        np.testing.assert_allclose(theta, model.theta, atol=2e-3)  # BOBYQA stalls near the edge


def test_stacked_sdcor_equals_the_layouts(study):
    from mixedmodels.fitmany.engine import stacked_sdcor

    samples, _ = study
    with_x = samples.assign(x=np.linspace(-1, 1, len(samples)))
    design = SharedDesign("1 + x + (1 + x|donor) + (1|batch)", with_x)
    rng = np.random.default_rng(6)
    theta, sigma = rng.uniform(-1, 2, (6, design.ntheta)), rng.uniform(0.5, 2, 6)
    theta[0, 0] = 0.0  # a zero standard deviation: its correlation is 0
    out = stacked_sdcor(design.layout, theta, sigma)
    for r in range(6):
        np.testing.assert_allclose(out[r], design.layout.to_sdcor(theta[r], sigma[r]), rtol=1e-13)


def test_warm_starts_and_fixed_theta_fit_one_at_a_time(study):
    samples, expr = study
    warm = mm.fit_many(FORMULA, samples, expr.iloc[:, :3], start="warm", progress=False)
    assert warm.info["method"] == "each" and (warm.table["optimizer"] == "LN_BOBYQA").all()
    fixed = mm.fit_many(FORMULA, samples, expr.iloc[:, :3], theta=[0.5, 0.5], progress=False)
    assert fixed.info["method"] == "each" and (fixed.table["optimizer"] == "none").all()


def test_a_lockstep_failure_leaves_the_whole_group_to_single_fits(study, monkeypatch):
    from mixedmodels.fitmany import engine

    samples, expr = study
    each = mm.fit_many(FORMULA, samples, expr.iloc[:, :3], method="each", progress=False).table

    def broken(*args, **kwargs):
        raise RuntimeError("no stacked fit today")

    monkeypatch.setattr(engine, "newton_lockstep", broken)
    res = mm.fit_many(FORMULA, samples, expr.iloc[:, :3], progress=False).table
    expected = "LN_BOBYQA after lockstep (RuntimeError: no stacked fit today)"
    assert (res["optimizer"] == expected).all() and res["converged"].all()
    pd.testing.assert_series_equal(res["objective"], each["objective"], check_exact=True)
