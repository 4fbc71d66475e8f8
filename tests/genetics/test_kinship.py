"""Kinship from genotypes and checks of a user-given kinship."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixedmodels.errors import DataError
from mixedmodels.genetics import check_kinship, kinship

from .conftest import dense_kinship, random_panel


def test_reference_entries_and_trace(panel, reference):
    # geno_kernel.json: K_first (top-left 3 × 3) and trace, agreement 1e-8.
    labelled = kinship(panel[0].genotypes)
    ids = list(panel[0].genotypes.iid)
    assert list(labelled.index) == ids and list(labelled.columns) == ids  # IDs from the .fam file
    K = labelled.to_numpy()
    np.testing.assert_allclose(K[:3, :3], reference["K_first"], rtol=0, atol=1e-8)
    assert abs(np.trace(K) - reference["K_trace"]) < 1e-8


def test_chunked_plink_equals_in_memory(panel, genotypes):
    from_file = kinship(panel[0].genotypes, chunk_size=300)
    np.testing.assert_allclose(from_file.to_numpy(), kinship(genotypes), rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 25), m=st.integers(2, 40))
def test_matches_definition_with_missing_calls(seed, n, m):
    rng = np.random.default_rng(seed)
    G = random_panel(rng, n, m, missing=0.1)
    G[:, 0] = np.nan  # no observed call: must be dropped as monomorphic
    G[:, 1] = np.arange(n) % 3  # at least one SNP that varies
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = dense_kinship(G[:, 1:])
        K = kinship(G, chunk_size=7)
    np.testing.assert_allclose(K, expected, rtol=1e-10, atol=1e-10)
    assert np.linalg.eigvalsh(K)[0] > -1e-10
    # Standardised columns sum to zero, so K is centred: K 1 = 0.
    np.testing.assert_allclose(K.sum(axis=1), 0, atol=1e-9)


def test_monomorphic_snps_dropped_with_warning():
    rng = np.random.default_rng(3)
    G = random_panel(rng, 20, 10)
    G[:, 4] = 1.0
    named = pd.DataFrame(G, columns=[f"rs{j}" for j in range(10)])
    with pytest.warns(UserWarning, match=r"1 monomorphic SNP.*'rs4'"):
        K = kinship(named)
    np.testing.assert_allclose(K, dense_kinship(np.delete(G, 4, axis=1)), atol=1e-12)


def test_no_polymorphic_snp_is_an_error():
    with pytest.raises(DataError, match="no polymorphic SNP"):
        kinship(np.ones((5, 3)))


def test_genotype_input_errors():
    with pytest.raises(DataError, match="2-D"):
        kinship(np.zeros(5))
    with pytest.raises(DataError, match="infinite"):
        kinship(np.array([[0.0, np.inf], [1.0, 2.0]]))


def test_check_returns_symmetrised_copy():
    rng = np.random.default_rng(0)
    K = dense_kinship(random_panel(rng, 10, 30))
    K[0, 1] += 1e-12
    out = check_kinship(K)
    np.testing.assert_array_equal(out, out.T)
    assert out is not K


@pytest.mark.parametrize(
    ("K", "message"),
    [
        (np.ones((2, 3)), "must be square"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), "not symmetric"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "missing or infinite"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), r"not positive semi-definite: smallest eigenvalue -1"),
    ],
)
def test_check_errors(K, message):
    with pytest.raises(DataError, match=message):
        check_kinship(K)


def test_check_aligns_labelled_kinship():
    ids = ["a", "b", "c"]
    K = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.0]])
    frame = pd.DataFrame(K, index=ids, columns=ids)
    out = check_kinship(frame, levels=["c", "a"])
    np.testing.assert_array_equal(out, [[1.0, 0.1], [0.1, 1.0]])
    with pytest.raises(
        DataError, match=r"2 individual\(s\) missing from the kinship matrix: 'x', 'y'"
    ):
        check_kinship(frame, levels=["a", "x", "y"])
    with pytest.raises(DataError, match="same labels"):
        check_kinship(pd.DataFrame(K, index=ids, columns=["a", "b", "z"]))
    with pytest.raises(DataError, match="3 × 3 but there are 4 individuals"):
        check_kinship(K, levels=["a", "b", "e", "f"])
