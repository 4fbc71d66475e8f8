"""The bases of the scan: whitening factors and the mixed-precision quadratic forms against dense algebra."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.genetics import eigh_kinship, kinship
from mixedmodels.genetics.basis import MixedWhitening, Rotation, Whitening

from .conftest import random_panel


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(21)
    n = 150
    G = random_panel(rng, n, 400, missing=0.0)
    dec = eigh_kinship(kinship(G))
    rotation = Rotation(dec.U, dec.S)
    h2 = 0.45
    V_inv = np.linalg.inv(h2 * dec.kinship() + (1 - h2) * np.eye(n))
    return rng, rotation, h2, V_inv


def _columns(rng, n, c, q):
    """Uncentred allele-count-like columns, one of them constant."""
    C = rng.binomial(2, rng.uniform(0.02, 0.98, size=(1, c, q)), size=(n, c, q)).astype(float)
    C[:, 0, :] = 1.7
    return C


def test_whitening_factor_is_the_precision(setting):
    _, rotation, h2, V_inv = setting
    L = Whitening.at(rotation, h2).L
    assert np.allclose(np.triu(L, 1), 0.0)
    np.testing.assert_allclose(L @ L.T, V_inv, rtol=0, atol=1e-12 * np.abs(V_inv).max())


@pytest.mark.parametrize("q", [1, 3])
def test_mixed_gram_equals_dense(setting, q):
    rng, rotation, h2, V_inv = setting
    basis = MixedWhitening.at(rotation, h2)
    n = V_inv.shape[0]
    # The split: V⁻¹ = shift I + L L' with the float32 factor, to float32 rounding.
    LL = basis.L.astype(np.float64) @ basis.L.T.astype(np.float64)
    np.testing.assert_allclose(basis.shift * np.eye(n) + LL, V_inv, atol=1e-6)
    np.testing.assert_allclose(basis.apply(np.eye(n)[:, :5]), V_inv[:, :5], atol=1e-12)
    C = _columns(rng, n, 40, q)
    dense = np.einsum("ncq,nm,mcr->cqr", C, V_inv, C)
    Cv = np.tensordot(C, V_inv.sum(axis=1), axes=([0], [0]))
    form, spread = basis.gram(C, Cv)
    centred = C - C.mean(axis=0)
    np.testing.assert_allclose(spread, np.einsum("ncq,ncr->cqr", centred, centred), atol=1e-10)
    assert np.all(np.abs(spread[0]) < 1e-10)  # the constant column
    # The float32 part is V⁻¹ - shift I, applied to centred columns: ~1e-7 of the form.
    np.testing.assert_allclose(form, dense, rtol=2e-6, atol=0)
    np.testing.assert_allclose(basis.exact_gram(C), dense, rtol=1e-11, atol=0)
    # Double precision would be closer still: the check can fail.
    assert np.abs(form - dense).max() > 1e-13 * np.abs(dense).max()


def test_centred_block_from_counts_equals_from_floats():
    from mixedmodels.genetics.basis import CentredBlock
    from mixedmodels.genio.plink import MISSING_COUNT

    rng = np.random.default_rng(5)
    G = random_panel(rng, 90, 12, missing=0.1)
    G[:, 2] = 2.0  # monomorphic
    G[:, 5] = np.nan  # no call observed
    G[::3, 7] = np.nan
    G[1::3, 7] = 1.0
    counts = np.asfortranarray(np.where(np.isnan(G), MISSING_COUNT, G).astype(np.int8))
    exact, other = CentredBlock.of(counts), CentredBlock.of(np.asfortranarray(G))
    for a, b in zip(exact, other):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert exact.centred.dtype == np.float32 and exact.centred.flags.f_contiguous
    assert exact.spread[2] == 0.0 and exact.spread[5] == 0.0 and np.isnan(exact.mean[5])
    centred = exact.filled - exact.filled.mean(axis=0)
    np.testing.assert_allclose(exact.spread, (centred**2).sum(axis=0), rtol=1e-12, atol=1e-12)


def test_plain_forms_equal_the_general_ones(setting):
    from mixedmodels.genetics.basis import CentredBlock

    rng, rotation, h2, V_inv = setting
    basis = MixedWhitening.at(rotation, h2)
    n = V_inv.shape[0]
    C = _columns(rng, n, 30, 1)
    block = CentredBlock.of(np.asfortranarray(C[:, :, 0]))
    partners = rng.normal(size=(n, 3))
    np.testing.assert_allclose(basis.linear(block, partners), C[:, :, 0].T @ partners, rtol=1e-12)
    Cv = C[:, :, 0].T @ V_inv.sum(axis=1)
    form, _ = basis.gram(C, Cv[:, None])
    np.testing.assert_allclose(basis.plain_gram(block, Cv), form[:, 0, 0], rtol=1e-9)
