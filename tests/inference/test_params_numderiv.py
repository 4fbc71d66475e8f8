"""The sd/cor parametrisation and the numerical derivatives behind the degrees of freedom."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.inference.params import (
    NotPositiveDefinite,
    TermLayout,
    VarianceLayout,
    psd_cholesky,
)
from mixedmodels.numderiv import hessian, jacobian

LAYOUT = VarianceLayout(
    (TermLayout("g", ("(Intercept)", "x", "z")), TermLayout("h", ("(Intercept)",)))
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=6, max_size=6), st.floats(0.05, 3), st.floats(0.1, 50))
def test_theta_sdcor_round_trip(lower, scalar, sigma):
    k = 3
    lam = np.zeros((k, k))
    lam[np.tril_indices(k)] = lower
    np.fill_diagonal(
        lam, np.abs(np.diag(lam)) + 0.05
    )  # λ with a positive diagonal is what θ encodes
    term = TermLayout("g", ("a", "b", "c"))
    theta = np.concatenate([[lam[r, c] for r, c in term.positions], [scalar]])
    sdcor = LAYOUT.to_sdcor(theta, sigma)
    np.testing.assert_allclose(LAYOUT.to_theta(sdcor, sigma), theta, rtol=1e-8, atol=1e-10)
    cov = sigma**2 * lam @ lam.T
    assert sdcor[0] == pytest.approx(np.sqrt(cov[0, 0]))
    assert sdcor[1] == pytest.approx(cov[1, 0] / np.sqrt(cov[0, 0] * cov[1, 1]))


def test_names_follow_lme4():
    assert LAYOUT.names() == [
        "sd_(Intercept)|g",
        "cor_x.(Intercept)|g",
        "cor_z.(Intercept)|g",
        "sd_x|g",
        "cor_z.x|g",
        "sd_z|g",
        "sd_(Intercept)|h",
    ]
    twice = VarianceLayout((TermLayout("g", ("(Intercept)",)), TermLayout("g", ("(Intercept)",))))
    assert twice.names() == ["sd_(Intercept)|g", "sd_(Intercept)|g.1"]


def test_semidefinite_factor_and_invalid_correlations():
    S = np.array([[4.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # rank 1 (cor = 1, sd = 0)
    L = psd_cholesky(S)
    np.testing.assert_allclose(L @ L.T, S, atol=1e-12)
    with pytest.raises(NotPositiveDefinite):
        psd_cholesky(np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]))


def test_derivatives_of_known_functions():
    f = lambda x: np.exp(x[0]) * np.sin(x[1]) + x[0] ** 3 * x[1]  # noqa: E731
    x = np.array([0.7, 1.3])
    e, s, c = np.exp(0.7), np.sin(1.3), np.cos(1.3)
    exact_h = np.array([[e * s + 6 * 0.7 * 1.3, e * c + 3 * 0.49], [e * c + 3 * 0.49, -e * s]])
    np.testing.assert_allclose(hessian(f, x), exact_h, rtol=1e-7)
    g = lambda x: np.array([np.exp(x[0]) * np.sin(x[1]), x[0] ** 2])  # noqa: E731
    np.testing.assert_allclose(jacobian(g, x), [[e * s, e * c], [1.4, 0.0]], rtol=1e-9, atol=1e-12)
    # a coordinate at zero gets an absolute step of 1e-4 (rounding error ~1e-6 after extrapolation)
    np.testing.assert_allclose(
        hessian(lambda x: np.cosh(x[0]), np.array([0.0])), [[1.0]], rtol=1e-5
    )


def test_kenward_roger_pieces_against_dense_formulas(fitted):
    """The low-rank evaluation of the REML information equals the dense n x n formulas."""
    from mixedmodels.inference import kenward_roger as kr

    model = fitted("Reaction ~ 1 + Days + (1 + Days|Subject)", "sleepstudy", reml=True)
    B, M, gamma = kr._structure(model)
    Bd = B.toarray()
    G = [Bd @ Mr.toarray() @ Bd.T for Mr in M]
    S = np.linalg.inv(sum(g * Gr for g, Gr in zip(gamma, G)))
    X = model.structure.fe.X
    P_ = S - S @ X @ np.linalg.solve(X.T @ S @ X, X.T @ S)
    dense = np.array([[np.trace(P_ @ Gr @ P_ @ Gs) for Gs in G] for Gr in G])
    _, _, _, info = kr._information_pieces(model)
    np.testing.assert_allclose(info, dense, rtol=1e-8)
