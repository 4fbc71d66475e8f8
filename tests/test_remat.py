"""Random-effects terms against their dense definitions, on random inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.remat import ReMat, lower_tri_positions


def random_remat(seed: int, n: int, nlevels: int, sizes: list[int]) -> ReMat:
    rng = np.random.default_rng(seed)
    refs = np.concatenate([np.arange(nlevels), rng.integers(0, nlevels, max(n - nlevels, 0))])
    rng.shuffle(refs)
    k = sum(sizes)
    z = (
        np.column_stack([np.ones(len(refs)), rng.normal(size=(len(refs), k - 1))])
        if k > 1
        else np.ones((len(refs), 1))
    )
    blocks, start = [], 0
    for size in sizes:
        blocks.append(slice(start, start + size))
        start += size
    remat = ReMat(
        "g",
        refs,
        [f"L{i}" for i in range(nlevels)],
        z,
        [f"c{j}" for j in range(k)],
        blocks,
        list(range(len(sizes))),
    )
    theta = rng.uniform(0.2, 1.5, remat.ntheta) * np.where(
        remat.is_diagonal(), 1.0, rng.choice([-1, 1], remat.ntheta)
    )
    remat.set_theta(theta)
    return remat


def dense_Z(remat: ReMat) -> np.ndarray:
    """Z_i[t, refs[t] * k + j] = z[t, j], from the definition."""
    Z = np.zeros((len(remat.refs), remat.q))
    for t, level in enumerate(remat.refs):
        Z[t, level * remat.k : (level + 1) * remat.k] = remat.z[t]
    return Z


shapes = st.tuples(
    st.integers(0, 10_000), st.integers(2, 12), st.lists(st.integers(1, 3), min_size=1, max_size=3)
)


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_Z_against_dense(shape):
    seed, nlevels, sizes = shape
    remat = random_remat(seed, 60, nlevels, sizes)
    np.testing.assert_array_equal(remat.Z().toarray(), dense_Z(remat))
    w = np.random.default_rng(seed).uniform(0.5, 2, 60)
    np.testing.assert_allclose(remat.dense_Z(np.sqrt(w)), np.sqrt(w)[:, None] * dense_Z(remat))


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_lambda_block_diagonal_and_b_from_u(shape):
    seed, nlevels, sizes = shape
    remat = random_remat(seed, 60, nlevels, sizes)
    lam = remat.lambda_
    mask = np.zeros_like(lam, dtype=bool)
    for b in remat.blocks:
        mask[b, b] = np.tril(np.ones((b.stop - b.start,) * 2, dtype=bool))
    assert (lam[~mask] == 0).all() and (np.diag(lam) > 0).all()
    u = np.random.default_rng(seed + 1).normal(size=remat.q)
    b = np.kron(np.eye(nlevels), lam) @ u
    np.testing.assert_allclose(remat.b_from_u(u).ravel(), b)


@settings(max_examples=30, deadline=None)
@given(shapes)
def test_theta_round_trip_and_bounds(shape):
    seed, nlevels, sizes = shape
    remat = random_remat(seed, 60, nlevels, sizes)
    theta = np.random.default_rng(seed).normal(size=remat.ntheta)
    remat.set_theta(theta)
    np.testing.assert_array_equal(remat.get_theta(), theta)
    assert remat.ntheta == sum(s * (s + 1) // 2 for s in sizes)
    np.testing.assert_array_equal(remat.lowerbd() == 0, remat.is_diagonal())
    np.testing.assert_array_equal(remat.initial_theta(), remat.is_diagonal().astype(float))


@settings(max_examples=30, deadline=None)
@given(shapes)
def test_row_order_and_level_relabelling(shape):
    """Permuting rows permutes Z's rows; renumbering levels permutes Z's column blocks."""
    seed, nlevels, sizes = shape
    remat = random_remat(seed, 60, nlevels, sizes)
    rng = np.random.default_rng(seed)
    rows, relabel = rng.permutation(60), rng.permutation(nlevels)
    shuffled = ReMat(
        "g",
        remat.refs[rows],
        remat.levels,
        remat.z[rows],
        remat.cnames,
        remat.blocks,
        remat.term_ids,
    )
    np.testing.assert_array_equal(shuffled.Z().toarray(), remat.Z().toarray()[rows])
    renamed = ReMat(
        "g",
        relabel[remat.refs],
        [remat.levels[i] for i in np.argsort(relabel)],
        remat.z,
        remat.cnames,
        remat.blocks,
        remat.term_ids,
    )
    cols = (np.argsort(relabel)[:, None] * remat.k + np.arange(remat.k)).ravel()
    np.testing.assert_array_equal(renamed.Z().toarray(), remat.Z().toarray()[:, cols])


def test_theta_names_as_lme4():
    remat = random_remat(0, 20, 4, [2, 1])
    remat.cnames = ["(Intercept)", "Days", "x"]
    assert remat.theta_names() == ["g.(Intercept)", "g.Days.(Intercept)", "g.Days", "g.x"]
    assert lower_tri_positions(1, 2) == [(1, 1), (2, 1), (2, 2)]


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_Zb_is_Z_Lambda_u(shape):
    """ReMat.Zb (PIRLS's ZΛu) against the dense Z times the block-diagonal Λ times u."""
    seed, nlevels, sizes = shape
    remat = random_remat(seed, 60, nlevels, sizes)
    u = np.random.default_rng(seed + 1).normal(size=remat.q)
    Lambda = np.kron(np.eye(nlevels), remat.lambda_)
    np.testing.assert_allclose(remat.Zb(u), dense_Z(remat) @ (Lambda @ u), rtol=1e-12, atol=1e-12)
