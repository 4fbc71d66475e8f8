"""Eigen and low-rank (thin SVD) decompositions of the kinship."""

from __future__ import annotations

import numpy as np
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import eigh_kinship, kinship, svd_genotypes
from mixedmodels.genetics.decomposition import decompose

from .conftest import random_panel


def test_eigh_reconstructs_and_is_orthonormal(decomposition, genotypes):
    K = kinship(genotypes)
    np.testing.assert_allclose(decomposition.kinship(), K, atol=1e-10)
    np.testing.assert_allclose(decomposition.U.T @ decomposition.U, np.eye(400), atol=1e-10)
    assert decomposition.full_rank and (decomposition.S >= 0).all()
    # A standardised kinship is centred (K 1 = 0): V is singular at h² = 1.
    assert decomposition.singular


def test_svd_path_decomposes_the_same_kinship():
    rng = np.random.default_rng(5)
    G = random_panel(rng, 50, 20, missing=0.05)
    low = svd_genotypes(G)
    assert (low.n, low.k) == (50, 20) and not low.full_rank and low.singular
    np.testing.assert_allclose(low.kinship(), kinship(G), atol=1e-12)
    full = eigh_kinship(kinship(G))
    np.testing.assert_allclose(np.sort(low.S)[::-1], np.sort(full.S)[::-1][:20], atol=1e-10)
    np.testing.assert_allclose(full.S[:30], 0, atol=1e-10)


def test_unstandardised_factor_must_be_complete():
    G = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]])
    with pytest.raises(DataError, match="missing values"):
        svd_genotypes(G, standardise_snps=False)
    low = svd_genotypes(np.nan_to_num(G), standardise_snps=False)
    np.testing.assert_allclose(low.kinship(), np.nan_to_num(G) @ np.nan_to_num(G).T / 2)


def test_decompose_picks_the_route():
    rng = np.random.default_rng(1)
    G = random_panel(rng, 30, 10)
    assert decompose(G=G, n=30).k == 10  # fewer SNPs than individuals: thin SVD
    assert decompose(G=random_panel(rng, 30, 40), n=30).k == 30
    dec = eigh_kinship(kinship(G))
    assert decompose(dec, n=30) is dec
    with pytest.raises(DataError, match="exactly one of K"):
        decompose(dec, G, n=30)
    with pytest.raises(DataError, match="exactly one of K"):
        decompose(n=30)
    with pytest.raises(DataError, match="describes 30 individuals but the phenotype has 31"):
        decompose(dec, n=31)
