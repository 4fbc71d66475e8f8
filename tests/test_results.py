"""Shared results (mixedmodels/results.py): conditional variances against dense algebra."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import mixedmodels as mm
from mixedmodels.results import conditional_variances


def dense_condvar(m) -> np.ndarray:
    """σ² Λ (Λ'Z'WZΛ + I)⁻¹ Λ' with every matrix dense."""
    Z = sp.hstack([r.Z() for r in m.reterms]).toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    start = 0
    for r in m.reterms:
        Lam[start : start + r.q, start : start + r.q] = np.kron(np.eye(r.nlevels), r.lambda_)
        start += r.q
    M = Lam.T @ Z.T @ Z @ Lam + np.eye(len(Lam))
    return m.sigma**2 * Lam @ np.linalg.inv(M) @ Lam.T


@pytest.mark.parametrize(
    "formula,data",
    [
        ("Reaction ~ 1 + Days + (1 + Days|Subject)", "sleepstudy"),
        ("strength ~ 1 + (1|batch) + (1|sample)", "pastes"),
        ("diameter ~ 1 + (1|plate) + (1|sample)", "penicillin"),
    ],
)
def test_conditional_variances_equal_the_dense_inverse(formula, data):
    m = mm.LinearMixedModel(formula, mm.datasets.load(data)).fit()
    V = dense_condvar(m)
    blocks = conditional_variances(m.system, m.reterms, m.sigma)
    start = 0
    for r, cv in zip(m.reterms, blocks):
        for level in range(r.nlevels):
            i = start + level * r.k
            np.testing.assert_allclose(
                cv[level], V[i : i + r.k, i : i + r.k], rtol=1e-8, atol=1e-12
            )
        start += r.q


def test_chunking_does_not_change_the_first_block():
    m = mm.LinearMixedModel(
        "diameter ~ 1 + (1|plate) + (1|sample)", mm.datasets.load("penicillin")
    ).fit()
    whole = m.system.first_block_inverse_crossprod()
    chunked = m.system.first_block_inverse_crossprod(max_entries=7)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
