"""The dense penalised system (mixedmodels/densesystem.py).

Checked against the same quantities computed from their definitions with dense
numpy, on random models, weights and θ; and against the blocked system
(mixedmodels/blocks.py) on models both can hold (no known covariance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixedmodels as mm
from mixedmodels.blocks import PenalizedSystem
from mixedmodels.densesystem import DenseSystem

FORMULAS = [
    "y ~ 1 + x + (1 + x|g) + (1|h)",
    "y ~ 1 + x + (1|g)",
    "y ~ 1 + (1|g) + (0 + x|g) + (1|h)",
]


def random_frame(rng: np.random.Generator, n: int = 48) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "g": pd.Categorical(rng.choice([f"g{i}" for i in range(6)], size=n)),
            "h": pd.Categorical(rng.choice([f"h{i}" for i in range(4)], size=n)),
        }
    )


def random_kinship(rng: np.random.Generator, levels: list[str]) -> pd.DataFrame:
    F = rng.normal(size=(len(levels), len(levels) + 2))
    return pd.DataFrame(
        F @ F.T / F.shape[1] + 0.1 * np.eye(len(levels)), index=levels, columns=levels
    )


def model_at_random_theta(rng, formula: str, kinship: bool = False):
    df = random_frame(rng)
    cov = {"g": random_kinship(rng, list(df["g"].cat.categories))} if kinship else None
    m = mm.LinearMixedModel(formula, df, covariance=cov)
    lower = np.asarray(m.lowerbd)
    theta = rng.normal(size=len(lower))
    theta[lower == 0] = np.abs(theta[lower == 0]) + 0.2
    m.set_theta(theta)
    return m


def dense_lambda(reterms) -> np.ndarray:
    """Λ from its definition: kron(I_levels, λ) per term, θ I for a term with a known covariance."""
    blocks = [
        np.eye(r.q) * r.lambda_[0, 0] if r.has_factor else np.kron(np.eye(r.nlevels), r.lambda_)
        for r in reterms
    ]
    q = sum(b.shape[0] for b in blocks)
    Lam, start = np.zeros((q, q)), 0
    for b in blocks:
        Lam[start : start + len(b), start : start + len(b)] = b
        start += len(b)
    return Lam


def reference(m, sqrtw):
    """The penalised least-squares problem solved directly: L of [ZΛ X y]'W[ZΛ X y] + diag(I, 0)."""
    ZL = np.hstack([r.dense_Z() for r in m.reterms]) @ dense_lambda(m.reterms)
    X, y = m.structure.fe.X, m.y
    w = np.ones(len(y)) if sqrtw is None else sqrtw**2
    M = np.hstack([ZL, X, y[:, None]])
    A = M.T @ (w[:, None] * M)
    q = ZL.shape[1]
    A[:q, :q] += np.eye(q)
    L = np.linalg.cholesky(A)
    # β, u minimise ‖W½(y - Xβ - ZΛu)‖² + ‖u‖²
    P = np.vstack([np.hstack([ZL, X]), np.hstack([np.eye(q), np.zeros((q, X.shape[1]))])])
    rhs = np.concatenate([np.sqrt(w) * y, np.zeros(q)])
    coef = np.linalg.lstsq(
        np.vstack([np.sqrt(w)[:, None] * P[: len(y)], P[len(y) :]]), rhs, rcond=None
    )[0]
    return {"L": L, "q": q, "u": coef[:q], "beta": coef[q:], "ZL": ZL, "w": w}


def dense_system(m, sqrtw):
    Xy = np.column_stack([m.structure.fe.X, m.y])
    s = DenseSystem(m.reterms, Xy, sqrtw)
    s.update_L()
    return s


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    formula=st.sampled_from(FORMULAS),
    weighted=st.booleans(),
    kinship=st.booleans(),
)
def test_dense_system_against_numpy(seed, formula, weighted, kinship):
    rng = np.random.default_rng(seed)
    if kinship:
        formula = "y ~ 1 + x + (1|g) + (1|h)"
    m = model_at_random_theta(rng, formula, kinship)
    sqrtw = rng.uniform(0.5, 1.5, size=m.nobs) if weighted else None
    s, ref = dense_system(m, sqrtw), reference(m, sqrtw)
    q, L = ref["q"], ref["L"]
    np.testing.assert_allclose(s.LZ, L[:q, :q], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s.LXZ, L[q:, :q], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s.L33, L[q:, q:], rtol=1e-9, atol=1e-10)
    assert s.logdet_Z() == pytest.approx(np.log(np.diag(L[:q, :q])).sum(), rel=1e-11)
    assert s.logdet_X() == pytest.approx(np.log(np.diag(L[q:-1, q:-1])).sum(), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(s.beta(), ref["beta"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(s.u(s.beta()), ref["u"], rtol=1e-8, atol=1e-10)
    resid = np.sqrt(ref["w"]) * (m.y - m.structure.fe.X @ ref["beta"] - ref["ZL"] @ ref["u"])
    assert s.pwrss() == pytest.approx(resid @ resid + ref["u"] @ ref["u"], rel=1e-9)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), weighted=st.booleans())
def test_solves_with_L_Z(seed, weighted):
    rng = np.random.default_rng(seed)
    m = model_at_random_theta(rng, FORMULAS[0])
    sqrtw = rng.uniform(0.5, 1.5, size=m.nobs) if weighted else None
    s, ref = dense_system(m, sqrtw), reference(m, sqrtw)
    LZ = ref["L"][: ref["q"], : ref["q"]]
    v = rng.normal(size=ref["q"])
    np.testing.assert_allclose(LZ @ s.solve_LZ(v), v, atol=1e-9)
    np.testing.assert_allclose(LZ.T @ s.solve_LZt(v), v, atol=1e-9)
    np.testing.assert_allclose(s.LZ_inverse_columns(2, 5), np.linalg.inv(LZ)[:, 2:5], atol=1e-9)
    r = rng.normal(size=m.nobs)
    ZL, w = ref["ZL"], ref["w"]
    want = np.linalg.solve(ZL.T @ (w[:, None] * ZL) + np.eye(ref["q"]), ZL.T @ (w * r))
    np.testing.assert_allclose(s.solve_u_given_beta(r), want, rtol=1e-8, atol=1e-10)


def test_new_response_and_new_weights_refactor():
    rng = np.random.default_rng(11)
    m = model_at_random_theta(rng, FORMULAS[0])
    s = dense_system(m, None)
    y2 = rng.normal(size=m.nobs)
    s.set_response(y2)
    s.update_L()
    m.system.set_response(y2)
    m.system.update_L()
    np.testing.assert_allclose(s.L33, m.system.L33, rtol=1e-9, atol=1e-11)
    sqrtw = rng.uniform(0.5, 1.5, size=m.nobs)
    s.factor_Z_at_weights(sqrtw)
    ref = reference(m, sqrtw)
    np.testing.assert_allclose(s.LZ, ref["L"][: ref["q"], : ref["q"]], rtol=1e-9, atol=1e-10)
    assert not s.ok  # L_Z only: the fixed-effects rows wait for update_L


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), formula=st.sampled_from(FORMULAS), weighted=st.booleans())
def test_dense_and_blocked_systems_agree(seed, formula, weighted):
    rng = np.random.default_rng(seed)
    m = model_at_random_theta(rng, formula)
    sqrtw = rng.uniform(0.5, 1.5, size=m.nobs) if weighted else None
    Xy = np.column_stack([m.structure.fe.X, m.y])
    dense = dense_system(m, sqrtw)
    blocked = PenalizedSystem(m.reterms, Xy, sqrtw)
    blocked.update_L()
    assert dense.logdet_Z() == pytest.approx(blocked.logdet_Z(), rel=1e-11)
    np.testing.assert_allclose(dense.L33, blocked.L33, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(
        dense.u(dense.beta()), blocked.u(blocked.beta()), rtol=1e-8, atol=1e-10
    )
    v = rng.normal(size=dense.q)
    np.testing.assert_allclose(dense.solve_LZ(v), blocked.solve_LZ(v), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dense.solve_LZt(v), blocked.solve_LZt(v), rtol=1e-8, atol=1e-10)
    r = rng.normal(size=m.nobs)
    np.testing.assert_allclose(
        dense.solve_u_given_beta(r), blocked.solve_u_given_beta(r), rtol=1e-8, atol=1e-10
    )


def test_kinship_model_objective_matches_dense_formula():
    """The profiled ML objective of a model with a kinship term, from its definition."""
    rng = np.random.default_rng(5)
    m = model_at_random_theta(rng, "y ~ 1 + x + (1|g) + (1|h)", kinship=True)
    assert isinstance(m.system, DenseSystem)
    theta = m.theta
    got = m.objective_at(theta)
    ZL = np.hstack([r.dense_Z() for r in m.reterms]) @ dense_lambda(m.reterms)
    X, y, n = m.structure.fe.X, m.y, m.nobs
    V = ZL @ ZL.T + np.eye(n)  # Cov(y) / σ²
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    s2 = r @ Vi @ r / n
    want = np.linalg.slogdet(V)[1] + n * np.log(2 * np.pi * s2) + n
    assert got == pytest.approx(want, rel=1e-9)
