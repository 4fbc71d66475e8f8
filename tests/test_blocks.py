"""The blocked Cholesky factorisation against a dense numpy computation of the same system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels import blocks
from mixedmodels.blocks import SPLIT_PAIR_COST, PenalizedSystem, SplitProduct, triangular_solve
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


def random_csr(rng, rows: int, cols: int, density: float, skew: float = 2.0) -> sp.csr_matrix:
    """A random non-negative pattern whose column counts are skewed (a few heavy columns)."""
    weight = rng.lognormal(0.0, skew, cols)
    p = np.minimum(1.0, density * cols * weight / weight.sum())
    mask = rng.uniform(size=(rows, cols)) < p[None, :]
    return sp.csr_matrix(mask * rng.uniform(0.5, 2.0, (rows, cols)))


@pytest.mark.parametrize("max_pairs", [0, 40, 300, 10**9])
@pytest.mark.parametrize("equal_lambda", [True, False])
@pytest.mark.parametrize("band_columns", [1, 7, 30])
def test_split_product_is_the_lower_triangle_of_L21_L21t(
    max_pairs, equal_lambda, band_columns, monkeypatch
):
    monkeypatch.setattr(blocks, "BAND_BYTES", 8 * 30 * band_columns)
    rng = np.random.default_rng(max_pairs + equal_lambda)
    A = random_csr(rng, 30, 50, 0.15)
    r1 = rng.uniform(0.1, 1.0, 50)
    lam = np.full(30, 0.7) if equal_lambda else rng.uniform(0.2, 1.5, 30)
    product = SplitProduct(A, A.data.copy(), max_pairs)
    assert product.light_pairs <= max_pairs
    assert len(product.heavy) + len(product.light) == 50
    L21 = lam[:, None] * A.toarray() * r1[None, :]
    got = product.lower_product(r1, lam)
    assert got.flags.f_contiguous
    np.testing.assert_allclose(got, np.tril(L21 @ L21.T), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("max_pairs", [0, 40, 10**9])
@pytest.mark.parametrize("equal_lambda", [True, False])
def test_split_product_reuses_its_buffer_and_scales(max_pairs, equal_lambda):
    """Each call overwrites the lower triangle whatever the caller left in the buffer."""
    rng = np.random.default_rng(11 + max_pairs + equal_lambda)
    A = random_csr(rng, 30, 50, 0.15)
    product = SplitProduct(A, A.data.copy(), max_pairs)
    first = None
    for scale in (-1.0, 2.5, -0.3):
        r1 = rng.uniform(0.1, 1.0, 50)
        lam = np.full(30, rng.uniform(0.2, 1.5)) if equal_lambda else rng.uniform(0.2, 1.5, 30)
        L21 = lam[:, None] * A.toarray() * r1[None, :]
        got = product.lower_product(r1, lam, scale=scale)
        first = got if first is None else first
        assert np.shares_memory(got, first)  # one buffer, no copy
        np.testing.assert_allclose(
            np.tril(got), scale * np.tril(L21 @ L21.T), rtol=1e-13, atol=1e-15
        )
        got[:] = rng.normal(size=got.shape)  # the caller factors it in place


def test_split_chooses_heavy_columns_by_cost():
    counts = np.array([1, 400, 2, 3, 900, 0])
    heavy, light = SplitProduct.split(counts, 100, max_pairs=10**9)
    # a column of c non-zeros costs SPLIT_PAIR_COST c(c+1)/2 light or 100² dense
    expected = np.flatnonzero(SPLIT_PAIR_COST * counts * (counts + 1) / 2 > 100**2)
    np.testing.assert_array_equal(heavy, expected)
    np.testing.assert_array_equal(np.sort(np.concatenate([heavy, light])), np.arange(6))
    heavy, _ = SplitProduct.split(counts, 100, max_pairs=0)
    np.testing.assert_array_equal(heavy, [0, 1, 2, 3, 4])  # every column with a non-zero


def crossed_problem(seed: int, n: int = 4000):
    """Skewed activity of 400 levels of g crossed with 150 of h (L21 about 6% full)."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, 400)
    df = pd.DataFrame(
        {
            "g": rng.choice(400, n, p=activity / activity.sum()).astype(str),
            "h": rng.integers(0, 150, n).astype(str),
            "k": rng.integers(0, 9, n).astype(str),
        }
    )
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + rng.normal(size=n)
    return df, X, y, rng


@pytest.mark.parametrize("formula", ["y ~ (1|g) + (1|h)", "y ~ (1|g) + (1|h) + (1|k)"])
@pytest.mark.parametrize("weighted", [False, True])
def test_split_product_objective_equals_the_sparse_product(formula, weighted, monkeypatch):
    df, X, y, rng = crossed_problem(3)
    sqrtw = np.sqrt(rng.uniform(0.5, 2.0, len(y))) if weighted else None
    remats, _ = build_reterms(parse_formula(formula), df, None, strict=False)
    Xy = np.column_stack([X, y])
    plain = PenalizedSystem(remats, Xy, sqrtw, sparse=False)
    plain._scalar_product, plain._L21_dense = None, False  # the general sparse product
    monkeypatch.setattr(PenalizedSystem, "MAX_PAIRS", 500)
    monkeypatch.setattr(blocks, "BAND_BYTES", 8 * 150 * 16)  # 10 bands of 16 columns
    split = PenalizedSystem(remats, Xy, sqrtw, sparse=False)
    assert isinstance(split._scalar_product, SplitProduct)
    assert len(split._scalar_product.heavy) and len(split._scalar_product.light)
    for _ in range(3):
        for r in remats:
            r.set_theta(rng.uniform(0.1, 2.0, 1))
        values = []
        for system in (plain, split):
            system.update_L()
            values.append((system.logdet_Z(), system.logdet_X(), system.pwrss()))
        np.testing.assert_allclose(values[1], values[0], rtol=1e-11)
    ref = dense_solution(remats, X, y, np.ones(len(y)) if sqrtw is None else sqrtw**2)
    assert split.pwrss() == pytest.approx(ref["pwrss"], rel=1e-10)
    assert split.logdet_Z() == pytest.approx(ref["logdet_Z"], rel=1e-10)


def test_choice_without_the_pattern_agrees_with_the_pattern():
    df, X, y, _ = crossed_problem(4)
    remats, _ = build_reterms(parse_formula("y ~ (1|g) + (1|h)"), df, None, strict=False)
    system = PenalizedSystem(remats, np.column_stack([X, y]), sparse=False)
    bound = system._pattern_nnz_lower_bound()
    assert bound <= system._C22_sparse(structural=True).nnz


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 6))
def test_level_sums_against_dense(seed, k, m):
    """Z_i'M from level_sums (the scalar path and the general one) against the dense product."""
    rng = np.random.default_rng(seed)
    nlevels = int(rng.integers(1, 9))
    refs = rng.integers(0, nlevels, 40)
    z, M = rng.normal(size=(40, k)), rng.normal(size=(40, m))
    Z = np.zeros((40, nlevels * k))
    for t, level in enumerate(refs):
        Z[t, level * k : (level + 1) * k] = z[t]
    got = blocks.level_sums(refs, nlevels, z, M)
    assert got.shape == (m, nlevels * k)
    np.testing.assert_allclose(got, (Z.T @ M).T, rtol=1e-12, atol=1e-12)


def many_small_levels(seed: int, n: int = 6000):
    """1500 levels of g with 1 to 7 observations (many equal counts) crossed with 40 of h, 6 of k."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 8, 1500)
    g = np.repeat(np.arange(1500), counts)[:n]
    df = pd.DataFrame(
        {
            "g": g.astype(str),
            "h": rng.integers(0, 40, len(g)).astype(str),
            "k": rng.integers(0, 6, len(g)).astype(str),
        }
    )
    X = np.column_stack([np.ones(len(g)), rng.normal(size=len(g))])
    y = X @ [1.0, 0.5] + rng.normal(size=len(g))
    return df, X, y, rng


@pytest.mark.parametrize("formula", ["y ~ (1|g) + (1|h)", "y ~ (1|g) + (1|h) + (1|k)"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dense_C22_equals_the_general_assembly(formula, weighted):
    df, X, y, rng = many_small_levels(5)
    sqrtw = np.sqrt(rng.uniform(0.5, 2.0, len(y))) if weighted else None
    remats, _ = build_reterms(parse_formula(formula), df, None, strict=False)
    Xy = np.column_stack([X, y])
    fused = PenalizedSystem(remats, Xy, sqrtw, sparse=False)
    assert isinstance(fused._dense_C22, blocks.DenseC22)
    # unweighted, levels of g with equal counts share r_l: their pair columns are summed
    assert (fused._dense_C22._rep is None) == weighted
    plain = PenalizedSystem(remats, Xy, sqrtw, sparse=False)
    plain._scalar_product, plain._dense_C22 = None, None  # the general sparse product
    for _ in range(3):
        for r in remats:
            r.set_theta(rng.uniform(0.1, 2.0, 1))
        for system in (plain, fused):
            system.update_L()
        C = fused._C22_dense()  # in the workspace, not in the current factor
        assert not np.shares_memory(C, fused.factorB.L)
        expected = plain._C22_dense()
        np.testing.assert_allclose(np.tril(C), np.tril(expected), rtol=1e-12, atol=1e-12)
        assert not np.triu(C, 1).any()
        np.testing.assert_allclose(fused.factorB.L, plain.factorB.L, rtol=1e-10, atol=1e-12)
        assert not np.triu(fused.factorB.L, 1).any()
        got = (fused.logdet_Z(), fused.logdet_X(), fused.pwrss())
        want = (plain.logdet_Z(), plain.logdet_X(), plain.pwrss())
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert fused._L21_stale  # refilled only when read
        np.testing.assert_allclose(fused.L21.toarray(), plain.L21.toarray(), rtol=1e-13)
        # solves with the bordered factor's leading block (padded right-hand sides)
        np.testing.assert_allclose(fused.beta(), plain.beta(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fused.u(fused.beta()), plain.u(plain.beta()), atol=1e-10)
        for system in (plain, fused):
            system.factor_Z_at_weights(sqrtw)  # L_Z alone (the border is [0 I])
        r = rng.normal(size=len(y))
        np.testing.assert_allclose(
            fused.solve_u_given_beta(r), plain.solve_u_given_beta(r), rtol=1e-9, atol=1e-11
        )
        assert fused.logdet_Z() == pytest.approx(plain.logdet_Z(), rel=1e-12)
    ref = dense_solution(remats, X, y, np.ones(len(y)) if sqrtw is None else sqrtw**2)
    fused.update_L()
    assert fused.pwrss() == pytest.approx(ref["pwrss"], rel=1e-10)
    assert fused.logdet_Z() == pytest.approx(ref["logdet_Z"], rel=1e-10)
    np.testing.assert_allclose(fused.u(fused.beta()), ref["u"], rtol=1e-7, atol=1e-9)


def test_dense_C22_follows_new_weights():
    df, X, y, rng = many_small_levels(6)
    remats, _ = build_reterms(parse_formula("y ~ (1|g) + (1|h) + (1|k)"), df, None, strict=False)
    Xy = np.column_stack([X, y])
    system = PenalizedSystem(remats, Xy, None, sparse=False)
    for r in remats:
        r.set_theta(rng.uniform(0.1, 2.0, 1))
    sqrtw = np.sqrt(rng.uniform(0.5, 2.0, len(y)))
    system.set_weights(sqrtw)
    system.update_L()
    fresh = PenalizedSystem(remats, Xy, sqrtw, sparse=False)
    fresh.update_L()
    assert system.pwrss() == pytest.approx(fresh.pwrss(), rel=1e-12)
    assert system.logdet_Z() == pytest.approx(fresh.logdet_Z(), rel=1e-12)


def test_dense_workspace_keeps_the_factor_when_a_factorisation_fails():
    rng = np.random.default_rng(7)
    G = rng.normal(size=(6, 6))
    factor = blocks.DenseFactor(6)
    W = factor.workspace()
    W[:] = np.tril(G @ G.T + 6 * np.eye(6))
    factor.factor_workspace(W)
    assert factor.L is W
    np.testing.assert_allclose(factor.L @ factor.L.T, G @ G.T + 6 * np.eye(6), rtol=1e-12)
    kept = factor.L.copy()
    W = factor.workspace()
    assert not np.shares_memory(W, factor.L)
    W[:] = -np.eye(6)
    with pytest.raises(CholeskyFailed):
        factor.factor_workspace(W)
    np.testing.assert_array_equal(factor.L, kept)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.integers(1, 12),
    st.floats(0.0, 1.0),
)
@settings(max_examples=60, deadline=None)
def test_csr_times_equals_the_dense_products(seed, m, n, density):
    """A x and A' x by the compiled kernels: the dense products, and scipy's own bit for bit."""
    rng = np.random.default_rng(seed)
    A = sp.random(m, n, density=density, format="csr", random_state=rng)
    x, y = rng.normal(size=n), rng.normal(size=m)
    np.testing.assert_allclose(blocks.csr_times(A, x), A.toarray() @ x, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(
        blocks.csr_times(A, y, transpose=True), A.toarray().T @ y, rtol=1e-13, atol=1e-13
    )
    assert np.array_equal(blocks.csr_times(A, x), A @ x)
    assert np.array_equal(blocks.csr_times(A, y, transpose=True), A.T @ y)


def test_csr_times_takes_a_block_of_vectors():
    rng = np.random.default_rng(3)
    A = sp.random(9, 5, density=0.4, format="csr", random_state=rng)
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(9, 3))
    np.testing.assert_allclose(blocks.csr_times(A, X), A.toarray() @ X, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(
        blocks.csr_times(A, Y, transpose=True), A.toarray().T @ Y, rtol=1e-13, atol=1e-13
    )
    # the same sums as scipy's own product, for either memory order of the block
    assert np.array_equal(blocks.csr_times(A, X), A @ X)
    assert np.array_equal(blocks.csr_times(A, np.asfortranarray(X)), A @ X)


@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 3), st.integers(1, 9))
@settings(max_examples=40, deadline=None)
def test_level_crossprod_equals_a_loop_over_observations(seed, ki, kj, nlevels):
    rng = np.random.default_rng(seed)
    n = 40
    refs = rng.integers(0, nlevels, n)
    zi, zj = rng.normal(size=(n, ki)), rng.normal(size=(n, kj))
    expected = np.zeros((nlevels, ki, kj))
    for t in range(n):
        expected[refs[t]] += np.outer(zi[t], zj[t])
    got = blocks.level_crossprod(refs, nlevels, zi, zj)
    assert got.shape == (nlevels, ki, kj)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 30))
@settings(max_examples=40, deadline=None)
def test_level_sums_by_the_indicator_equal_the_bincounts(seed, ncols, nlevels):
    """A scalar term's Z'M through its level indicator: a loop's sums, and the bincounts' exactly."""
    rng = np.random.default_rng(seed)
    n = 80
    refs = rng.integers(0, nlevels, n)
    z, M = rng.normal(size=(n, 1)), rng.normal(size=(n, ncols))
    if seed % 2:
        M = np.asfortranarray(M)
    fast = blocks.level_sums(refs, nlevels, z, M, blocks.level_indicator(refs, nlevels))
    expected = np.zeros((ncols, nlevels))
    for t in range(n):
        expected[:, refs[t]] += z[t, 0] * M[t]
    np.testing.assert_allclose(fast, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(fast, blocks.level_sums(refs, nlevels, z, M))
    assert fast.flags.c_contiguous
