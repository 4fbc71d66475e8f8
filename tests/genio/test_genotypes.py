"""Mean imputation, standardisation and the genotype-source wrapper."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedmodels.genio import ArrayGenotypes, mean_impute, standardise
from mixedmodels.genio.genotypes import as_genotype_source, chunk_bounds


def test_mean_impute():
    G = np.array([[0.0, np.nan, 2.0], [2.0, np.nan, np.nan], [np.nan, np.nan, 1.0]])
    filled, mean = mean_impute(G)
    np.testing.assert_array_equal(mean, [1.0, np.nan, 1.5])
    np.testing.assert_array_equal(filled, [[0.0, 0.0, 2.0], [2.0, 0.0, 1.5], [1.0, 0.0, 1.0]])
    assert np.isnan(G).sum() == 5  # the input is left alone


def test_mean_impute_equals_nanmean_on_random_blocks():
    rng = np.random.default_rng(5)
    G = np.asfortranarray(rng.binomial(2, 0.3, size=(200, 30)).astype(float))
    G[rng.random(G.shape) < 0.05] = np.nan
    G[:, 4] = np.nan  # never called
    filled, mean = mean_impute(G)
    calls = [column[~np.isnan(column)] for column in G.T]
    expected_mean = np.array([c.mean() if c.size else np.nan for c in calls])
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-14)
    expected = np.where(np.isnan(G), np.nan_to_num(expected_mean), G)
    np.testing.assert_allclose(filled, expected, rtol=1e-14)
    assert filled.flags["F_CONTIGUOUS"]  # kept in the order the rotation wants


def test_standardise_population_sd_and_drops_constants():
    G = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, np.nan], [2.0, 1.0, 0.0], [1.0, 1.0, 2.0]])
    Z, kept = standardise(G)
    assert kept.tolist() == [True, False, True]
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose((Z**2).mean(axis=0), 1)  # ddof = 0
    # The missing call sits at the mean: zero after centring.
    assert Z[1, 1] == 0.0


def test_sources_and_blocks():
    frame = pd.DataFrame([[0, 1], [2, 1]], columns=["rs1", "rs2"])
    source = as_genotype_source(frame)
    assert isinstance(source, ArrayGenotypes)
    assert source.snp_table()["snp"].tolist() == ["rs1", "rs2"]
    assert source.read(1, 2).tolist() == [[1.0], [1.0]]
    assert as_genotype_source(source) is source
    assert chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
