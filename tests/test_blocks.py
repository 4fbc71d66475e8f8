"""The blocked Cholesky factorisation against a dense numpy computation of the same system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.blocks import PenalizedSystem, triangular_solve
from mixedmodels.errors import CholeskyFailed
from mixedmodels.formula import parse_formula
from mixedmodels.structure import build_reterms


def random_problem(seed: int, formula: str, n: int = 300):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.integers(0, 25, n).astype(str),
            "h": rng.integers(0, 7, n).astype(str),
            "k": rng.integers(0, 4, n).astype(str),
        }
    )
    remats, _ = build_reterms(parse_formula(formula), df, None, strict=False)
    for r in remats:
        theta = rng.uniform(0.2, 1.5, r.ntheta) * np.where(
            r.is_diagonal(), 1.0, rng.choice([-1, 1], r.ntheta)
        )
        r.set_theta(theta)
    X = np.column_stack([np.ones(n), df["x"], rng.normal(size=n)])
    y = X @ [1.0, 2.0, -1.0] + rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    return remats, X, y, w


def dense_solution(remats, X, y, w):
    Z = np.hstack([r.Z().toarray() for r in remats])
    Lam = np.zeros((Z.shape[1],) * 2)
    start = 0
    for r in remats:
        Lam[start : start + r.q, start : start + r.q] = np.kron(np.eye(r.nlevels), r.lambda_)
        start += r.q
    M = np.hstack([Z @ Lam, X, y[:, None]]) * np.sqrt(w)[:, None]
    A = M.T @ M
    q = Z.shape[1]
    A[:q, :q] += np.eye(q)
    L = np.linalg.cholesky(A)
    p = X.shape[1]
    beta = np.linalg.solve(L[q : q + p, q : q + p].T, L[-1, q : q + p])
    u = np.linalg.solve(L[:q, :q].T, L[-1, :q] - L[q : q + p, :q].T @ beta)
    return {
        "logdet_Z": np.log(np.diag(L)[:q]).sum(),
        "logdet_X": np.log(np.diag(L)[q : q + p]).sum(),
        "pwrss": L[-1, -1] ** 2,
        "beta": beta,
        "u": u,
        "LZinv": np.linalg.inv(L[:q, :q]),
    }


FORMULAS = [
    "y ~ (1|g)",
    "y ~ (1 + x|g)",
    "y ~ (1|g) + (1|h)",
    "y ~ (1 + x|g) + (1|h) + (0 + z|h)",
    "y ~ (1|g) + (1 + x + z|h) + (1|k)",
    "y ~ (1|g) + (1|g:h) + (0 + x|k)",
    "y ~ (0 + k|g) + (1|h)",
]


def check(seed, formula, sparse=None):
    remats, X, y, w = random_problem(seed, formula)
    system = PenalizedSystem(remats, np.column_stack([X, y]), np.sqrt(w), sparse=sparse)
    system.update_L()
    ref = dense_solution(remats, X, y, w)
    assert system.logdet_Z() == pytest.approx(ref["logdet_Z"], rel=1e-10)
    assert system.logdet_X() == pytest.approx(ref["logdet_X"], rel=1e-10)
    assert system.pwrss() == pytest.approx(ref["pwrss"], rel=1e-9)
    beta = system.beta()
    np.testing.assert_allclose(beta, ref["beta"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(system.u(beta), ref["u"], rtol=1e-7, atol=1e-9)
    q = ref["u"].size
    np.testing.assert_allclose(
        system.LZ_inverse_columns(0, q).T @ system.LZ_inverse_columns(0, q),
        ref["LZinv"].T @ ref["LZinv"],
        atol=1e-9,
    )
    return system, remats, X, y, w


@pytest.mark.parametrize("formula", FORMULAS)
def test_blocked_factor_matches_dense(formula):
    check(0, formula)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), which=st.integers(0, len(FORMULAS) - 1))
def test_blocked_factor_matches_dense_random(seed, which):
    check(seed, FORMULAS[which])


@pytest.mark.cholmod
@pytest.mark.parametrize("formula", [f for f in FORMULAS if f.count("|") > 1])
def test_cholmod_block_matches_dense(formula):
    system, *_ = check(1, formula, sparse=True)
    assert system.factorB.sparse


def test_reweighting_equals_fresh_assembly():
    remats, X, y, w = random_problem(5, "y ~ (1 + x|g) + (1|h)")
    Xy = np.column_stack([X, y])
    a = PenalizedSystem(remats, Xy, None)
    a.set_weights(np.sqrt(w), y * 2)
    b = PenalizedSystem(remats, np.column_stack([X, 2 * y]), np.sqrt(w))
    for s in (a, b):
        s.update_L()
    assert a.pwrss() == pytest.approx(b.pwrss(), rel=1e-12)
    a.set_response(y)
    a.update_L()
    c = PenalizedSystem(remats, Xy, np.sqrt(w))
    c.update_L()
    assert a.pwrss() == pytest.approx(c.pwrss(), rel=1e-12)


def test_u_given_beta_from_Z_only_factor():
    remats, X, y, w = random_problem(9, "y ~ (1|g) + (1 + x|h)")
    system = PenalizedSystem(remats, np.column_stack([X, y]), np.sqrt(w))
    system.update_L()
    beta = system.beta()
    full = system.u(beta)
    system.factor_Z_at_weights(np.sqrt(w))
    np.testing.assert_allclose(system.solve_u_given_beta(y - X @ beta), full, rtol=1e-8, atol=1e-10)


def nested_problem(seed: int, n: int = 2400):
    """Students crossed with teachers nested in schools: a block B (teachers, schools) that stays sparse."""
    rng = np.random.default_rng(seed)
    teacher = rng.integers(0, 240, n)
    student = (teacher // 4) * 10 + rng.integers(0, 10, n)  # students meet teachers of one school
    df = pd.DataFrame(
        {
            "s": student.astype(str),
            "t": teacher.astype(str),
            "c": (teacher // 12).astype(str),
            "x": rng.normal(size=n),
        }
    )
    remats, _ = build_reterms(parse_formula("y ~ (1|s) + (1|t) + (1|c)"), df, None, strict=False)
    X = np.column_stack([np.ones(n), df["x"]])
    y = X @ [1.0, 0.5] + rng.normal(size=n)
    return remats, X, y


@pytest.mark.cholmod
def test_cost_choice_takes_cholmod_for_a_nested_block_with_the_dense_objective():
    remats, X, y = nested_problem(0)
    assert remats[0].name.startswith("s") and sum(r.q for r in remats[1:]) >= 200
    systems = {s: PenalizedSystem(remats, np.column_stack([X, y]), sparse=s) for s in (None, False)}
    chosen = systems[None]
    assert chosen.factorB.sparse and chosen._sparse_C22 is not None
    assert chosen.factor_costs["sparse"] < chosen.factor_costs["dense"]
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = rng.uniform(0.1, 2.0, 3)
        values = []
        for system in systems.values():
            for r, t in zip(remats, theta):
                r.set_theta(np.array([t]))
            system.update_L()
            values.append((system.logdet_Z(), system.logdet_X(), system.pwrss()))
        np.testing.assert_allclose(values[0], values[1], rtol=1e-10)


@pytest.mark.cholmod
def test_cost_choice_keeps_a_block_that_fills_in_dense():
    rng = np.random.default_rng(2)
    n = 6000
    df = pd.DataFrame(
        {"g": rng.integers(0, 400, n).astype(str), "h": rng.integers(0, 250, n).astype(str)}
    )
    remats, _ = build_reterms(parse_formula("y ~ (1|g) + (1|h)"), df, None, strict=False)
    system = PenalizedSystem(remats, np.column_stack([np.ones(n), rng.normal(size=n)]))
    assert not system.factorB.sparse  # every pair of h's levels shares a level of g: L22 is full


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("nrhs", [None, 3])
@pytest.mark.parametrize("trans", [False, True])
def test_triangular_solve_matches_scipy(order, nrhs, trans):
    """LAPACK's dtrtrs called directly gives scipy's solve, for either memory order."""
    rng = np.random.default_rng(3)
    L = np.asarray(np.tril(rng.random((6, 6))) + 2 * np.eye(6), order=order)
    B = rng.random(6 if nrhs is None else (6, nrhs))
    expected = sla.solve_triangular(L, B, lower=True, trans="T" if trans else "N")
    np.testing.assert_allclose(triangular_solve(L, B, trans=trans), expected, rtol=1e-13)
    sub = np.asfortranarray(L)[:-1, :-1]  # a view in neither order (L33 without its y row)
    np.testing.assert_allclose(
        triangular_solve(sub, B[:-1], trans=trans),
        sla.solve_triangular(sub, B[:-1], lower=True, trans="T" if trans else "N"),
        rtol=1e-13,
    )


def test_triangular_solve_empty_and_singular():
    assert triangular_solve(np.zeros((0, 0)), np.zeros((0, 2))).shape == (0, 2)
    L = np.tril(np.ones((3, 3)))
    L[1, 1] = 0.0
    with pytest.raises(CholeskyFailed):
        triangular_solve(L, np.ones(3))
