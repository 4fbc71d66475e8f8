"""Phenotype transforms, kinship rescaling and the p-value tools."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from mixedmodels.errors import DataError
from mixedmodels.genetics import (
    adjust_pvalues,
    boxcox,
    chi2_mixture_sf,
    empirical_pvalues,
    gower_rescale,
    quantile_normalise,
)


def test_quantile_normalise_matches_limix_example_and_keeps_nan():
    # limix.qc.quantile_gaussianize([-1, 0, 2]) = [-0.67449, 0, 0.67449] (its doctest).
    np.testing.assert_allclose(
        quantile_normalise([-1, 0, 2]), [-0.6744897501960817, 0, 0.6744897501960817]
    )
    y = pd.Series([3.0, np.nan, 1.0, 1.0, 10.0], index=list("abcde"))
    out = quantile_normalise(y, c=3 / 8)
    assert list(out.index) == list("abcde") and np.isnan(out["b"])
    rank = np.array([3, 1.5, 1.5, 4])  # ties share their mean rank
    np.testing.assert_allclose(out.dropna(), scipy.stats.norm.ppf((rank - 3 / 8) / (4 + 1 / 4)))


def test_boxcox_agrees_with_scipy():
    y = np.random.default_rng(0).lognormal(size=50)
    out, lam = boxcox(y)
    ref, ref_lam = scipy.stats.boxcox(y)
    np.testing.assert_allclose(out, ref)
    assert lam == pytest.approx(ref_lam)
    np.testing.assert_allclose(boxcox(y, lmbda=0.0)[0], np.log(y))
    with pytest.raises(DataError, match="positive values"):
        boxcox(np.array([1.0, 0.0, 2.0]))


def test_gower_rescale_gives_unit_expected_sample_variance():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(20, 30))
    K = 3.7 * A @ A.T
    Kg = gower_rescale(pd.DataFrame(K))
    n = 20
    P = np.eye(n) - 1 / n
    assert np.trace(P @ Kg.to_numpy() @ P) / (n - 1) == pytest.approx(1.0)
    with pytest.raises(DataError, match="no variance"):
        gower_rescale(np.ones((4, 4)))


def test_adjust_pvalues_bh_by_hand_and_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    q = adjust_pvalues(p, "fdr_bh")
    # BH by hand on the 4 finite values: sorted p·m/rank, then running minimum from the top.
    np.testing.assert_allclose(
        q[[0, 3, 1, 4]], [0.04, 0.04 * 4 / 3 * 0 + 0.05333333333333333, 0.05333333333333333, 0.5]
    )
    assert np.isnan(q[2])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni")[[0, 4]], [0.04, 1.0])
    with pytest.raises(DataError, match="unknown"):
        adjust_pvalues(p, "nonsense")


def test_empirical_pvalues():
    null = np.arange(1.0, 100.0)  # 99 values
    p = empirical_pvalues([0.5, 50.0, 1000.0, np.nan], null)
    np.testing.assert_allclose(p[:3], [1.0, 51 / 100, 1 / 100])
    assert np.isnan(p[3])


def test_chi2_mixture_is_half_the_chi2_tail():
    t = np.array([0.0, 1.0, 3.84])
    np.testing.assert_allclose(
        chi2_mixture_sf(t),
        [1.0, 0.5 * scipy.stats.chi2.sf(1.0, 1), 0.5 * scipy.stats.chi2.sf(3.84, 1)],
    )
    # The mixture's 5% critical value is the χ²₁ 10% one (2.7055).
    assert chi2_mixture_sf(scipy.stats.chi2.isf(0.10, 1)) == pytest.approx(0.05)


def test_permutation_pvalues_pool_the_permuted_statistics():
    from mixedmodels.genetics.permutation import permutation_pvalues

    from .conftest import dense_kinship, random_panel

    rng = np.random.default_rng(5)
    n, m = 60, 20
    G = random_panel(rng, n, m)
    y = rng.normal(size=n) + 1.5 * (G[:, 0] - G[:, 0].mean())
    r = permutation_pvalues(G, y, K=dense_kinship(G), n_permutations=5, seed=1)
    assert r.attrs["n_permutations"] == 5
    assert r["p_empirical"].iloc[0] == pytest.approx(1 / (1 + 5 * m))  # beyond every null value
    assert ((r["p_empirical"] >= 1 / (1 + 5 * m)) & (r["p_empirical"] <= 1)).all()
    # Null SNPs: empirical and analytic p-values rank the SNPs alike.
    rho = scipy.stats.spearmanr(r["p_empirical"][1:], r["p_lrt"][1:])[0]
    assert rho > 0.9
