"""Latent-scale heritability of binary and count traits (mixedmodels.genetics.latent)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import mixedmodels as mm
from mixedmodels.errors import DataError
from mixedmodels.genetics.heritability import heritability
from mixedmodels.genetics.latent import LINK_VARIANCE, latent_heritability


@pytest.fixture(scope="module")
def families():
    rng = np.random.default_rng(4)
    nfam, size = 50, 4
    n = nfam * size
    K = np.kron(np.eye(nfam), 0.5 * np.ones((size, size)) + 0.5 * np.eye(size))
    g = np.linalg.cholesky(K) @ rng.normal(size=n) * np.sqrt(0.6)
    y = ((g + rng.normal(size=n) * np.sqrt(0.4)) > 0.3).astype(float)
    counts = rng.poisson(np.exp(0.5 + 0.8 * g + 0.3 * rng.normal(size=n))).astype(float)
    return K, y, counts


def test_glmm_probit_uses_the_fitted_genetic_variance(families):
    K, y, _ = families
    r = latent_heritability(y, K, method="glmm")
    s2g = r.model.theta[0] ** 2
    assert r.link == "probit" and r.sigma2_g == pytest.approx(s2g)
    assert r.h2 == pytest.approx(s2g / (s2g + 1.0))
    assert 0.0 <= r.h2 < 1.0
    logit = latent_heritability(y, K, link="logit", method="glmm")
    assert logit.sigma2_residual == pytest.approx(np.pi**2 / 3) == LINK_VARIANCE["logit"]


def test_threshold_method_is_the_liability_transform_of_observed_reml(families):
    K, y, _ = families
    r = latent_heritability(y, K, method="threshold", prevalence=0.2)
    h2_obs = heritability(y, None, K).h2
    k, p = 0.2, y.mean()
    z = norm.pdf(norm.ppf(1 - k))
    assert r.h2 == pytest.approx(
        h2_obs * k * (1 - k) / z**2 * k * (1 - k) / (p * (1 - p)), rel=1e-10
    )


def test_poisson_with_overdispersion_term(families):
    K, _, counts = families
    r = latent_heritability(counts, K, family="poisson", method="glmm")
    assert r.link == "log" and 0.0 <= r.h2 <= 1.0
    assert r.h2_observation is not None and r.h2_observation <= r.h2
    assert r.model.theta_names[0].startswith("obs.") or r.model.theta_names[1].startswith("obs.")


def test_bad_requests(families):
    K, y, counts = families
    with pytest.raises(DataError, match="bernoulli, binomial or poisson"):
        latent_heritability(y, K, family="gamma")
    with pytest.raises(DataError, match="0/1 trait"):
        latent_heritability(counts, K, method="threshold")
    with pytest.raises(DataError, match="unknown method"):
        latent_heritability(y, K, method="nonsense")  # "ep" is a method since EP was added
    with pytest.raises(DataError, match="200 values"):
        latent_heritability(y, K[:10, :10])


def test_formula_route_with_kinship_matches_reference_h2():
    """y ~ covariates + (1|iid) with covariance={"iid": K} by REML gives the reference h²."""
    import json
    from pathlib import Path

    import pandas as pd

    from mixedmodels.genetics import kinship, read_plink

    ref = json.loads((Path(__file__).parent / "data" / "geno_kernel.json").read_text())
    folder = mm.datasets.genetics_path()
    plink = read_plink(folder / "geno")
    pheno = pd.read_csv(folder / "geno_pheno.csv")
    ids = [str(i) for i in plink.iid]
    K = pd.DataFrame(kinship(plink), index=ids, columns=ids)
    m = mm.LinearMixedModel(
        "pheno1 ~ 1 + age + sex + (1|iid)", pheno, reml=True, covariance={"iid": K}
    ).fit()
    h2 = m.theta[0] ** 2 / (1 + m.theta[0] ** 2)
    assert h2 == pytest.approx(ref["pheno1"]["reml"]["h2"], abs=1e-4)
    np.testing.assert_allclose(m.beta, ref["pheno1"]["reml"]["beta"], rtol=1e-4)


def test_labelled_trait_is_paired_with_the_kinship_by_id(families):
    import pandas as pd

    K, y, _ = families
    ids = [f"ind{i}" for i in range(len(y))]
    right = latent_heritability(y, K, method="threshold")
    order = np.random.default_rng(5).permutation(len(y))
    y_shuffled = pd.Series(y, index=ids).iloc[order]
    K_labelled = pd.DataFrame(K, index=ids, columns=ids)
    again = latent_heritability(y_shuffled, K_labelled, method="threshold")
    assert again.h2 == pytest.approx(right.h2, rel=1e-10)
    with pytest.raises(DataError, match="labelled by sample ID but the kinship K carries none"):
        latent_heritability(y_shuffled, K, method="threshold")


def test_default_method_is_the_familys_and_prevalence_belongs_to_threshold(families):
    K, y, counts = families
    assert type(latent_heritability(y, K)) is type(latent_heritability(y, K, method="ep"))
    assert latent_heritability(y, K).h2 == pytest.approx(latent_heritability(y, K, method="ep").h2)
    with pytest.raises(DataError, match="method='threshold' only"):
        latent_heritability(y, K, prevalence=0.1)
    for bad in (2, 0, "a", float("nan")):
        with pytest.raises(DataError, match="strictly between 0 and 1"):
            latent_heritability(y, K, method="threshold", prevalence=bad)
