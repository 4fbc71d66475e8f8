"""Shared fixtures of the genetics tests: the bundled panel, its reference numbers,
and a dense, textbook computation of the kinship-model likelihood to check against."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixedmodels import datasets

REFERENCE = Path(__file__).parent / "data" / "geno_kernel.json"


@pytest.fixture(scope="session")
def reference() -> dict:
    """Reference results on the bundled panel (see data/README.md for their source)."""
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="session")
def panel():
    """The bundled panel matched to its phenotypes: (SampleMatch, X with intercept, age, sex)."""
    from mixedmodels.genetics import covariate_matrix, match_samples, read_phenotypes, read_plink

    folder = datasets.genetics_path()
    match = match_samples(read_plink(folder / "geno"), read_phenotypes(folder / "geno_pheno.csv"))
    return match, covariate_matrix(match.phenotypes, ["age", "sex"])


@pytest.fixture(scope="session")
def genotypes(panel) -> np.ndarray:
    """All allele counts of the panel, 400 × 2000."""
    return panel[0].genotypes.read()


@pytest.fixture(scope="session")
def decomposition(panel):
    """The eigendecomposition of the panel's kinship, labelled by sample ID (from the .fam file)."""
    from mixedmodels.genetics import eigh_kinship, kinship

    return eigh_kinship(kinship(panel[0].genotypes))


def dense_fit(y: np.ndarray, X: np.ndarray, K: np.ndarray, h2: float, reml: bool) -> dict:
    """Profiled (RE)ML fit at ``h2`` with explicit ``V⁻¹``: the formulas as written, O(n³).

    ML:   -½ [n log(2π r/n) + log|V| + n]
    REML: -½ [(n-p) log(2π r/(n-p)) + log|V| + log|X'V⁻¹X| + (n-p)]
    with r = (y - Xβ)'V⁻¹(y - Xβ) at the GLS β.
    """
    n, p = X.shape
    V = h2 * K + (1 - h2) * np.eye(n)
    Vi = np.linalg.inv(V)
    A = X.T @ Vi @ X
    beta = np.linalg.solve(A, X.T @ Vi @ y)
    e = y - X @ beta
    r = e @ Vi @ e
    dof = n - p if reml else n
    loglik = -0.5 * (dof * np.log(2 * np.pi * r / dof) + np.linalg.slogdet(V)[1] + dof)
    if reml:
        loglik -= 0.5 * np.linalg.slogdet(A)[1]
    return {"loglik": loglik, "beta": beta, "s2": r / dof, "cov": r / dof * np.linalg.inv(A)}


def dense_kinship(G: np.ndarray) -> np.ndarray:
    """K = Zs Zs'/m by the definition, NaN mean-imputed, monomorphic SNPs dropped."""
    mean = np.nanmean(G, axis=0)
    filled = np.where(np.isnan(G), mean, G)
    sd = filled.std(axis=0)
    keep = sd > 1e-12
    Z = (filled[:, keep] - mean[keep]) / sd[keep]
    return Z @ Z.T / keep.sum()


def random_panel(rng: np.random.Generator, n: int, m: int, missing: float = 0.0) -> np.ndarray:
    """Allele counts with varied frequencies, a fraction ``missing`` set to NaN."""
    freq = rng.uniform(0.05, 0.5, size=m)
    G = rng.binomial(2, freq, size=(n, m)).astype(float)
    G[rng.random((n, m)) < missing] = np.nan
    return G
