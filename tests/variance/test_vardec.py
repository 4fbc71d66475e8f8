"""REML variance decomposition (mixedmodels.variance.vardec)."""

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.numderiv import jacobian
from mixedmodels.variance.vardec import RemlLikelihood, vardec


@pytest.fixture(scope="module")
def three_kernels(genetics):
    return vardec(
        genetics.pheno["pheno1"], genetics.X, {"genetic": genetics.K, "family": genetics.F}
    )


def test_three_kernel_decomposition_matches_reference(three_kernels, reference):
    # ../shared/reference/variance/geno_vardec.json: V = s1 K + s2 F + s3 I by direct optimisation.
    ref, res = reference("geno_vardec"), three_kernels
    assert res.names == ["genetic", "family", "residual"]
    np.testing.assert_allclose(res.reml_loglik, ref["reml_loglik"], rtol=1e-6)
    np.testing.assert_allclose(res.variances, ref["variances"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.fractions, ref["fractions"], atol=1e-4)
    assert res.converged and not res.boundary.any() and np.all(np.isfinite(res.fraction_se))
    np.testing.assert_allclose(res.fractions.sum(), 1.0)


def test_genetic_plus_residual_matches_the_kinship_reference(genetics, reference):
    # ../shared/reference/genetics/geno_kernel.json: V = s2 (h2 K + (1 - h2) I) by REML, same criterion.
    ref = reference("geno_kernel_excerpt")
    for phenotype in ("pheno1", "pheno2"):
        res = vardec(genetics.pheno[phenotype], genetics.X, {"genetic": genetics.K})
        r = ref[phenotype]["reml"]
        np.testing.assert_allclose(res.reml_loglik, r["loglik"], rtol=1e-6)
        np.testing.assert_allclose(res.fractions[0], r["h2"], atol=1e-4)
        np.testing.assert_allclose(
            res.variances, [r["sigma2_g"], r["sigma2_e"]], rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(res.beta, r["beta"], rtol=1e-4, atol=1e-4)


def test_boundary_component_is_flagged(genetics):
    res = vardec(
        genetics.pheno["pheno2"], genetics.X, {"genetic": genetics.K, "family": genetics.F}
    )
    assert res.boundary.tolist() == [True, False, False]
    assert res.variances[0] == 0.0 and res.fractions[0] == 0.0
    assert np.isnan(res.variance_se[0]) and np.isnan(res.fraction_se[0])
    # On the boundary the REML criterion must increase inwards.
    lik = RemlLikelihood(
        genetics.pheno["pheno2"].to_numpy(), genetics.X, [genetics.K, genetics.F, None]
    )
    assert lik.objective_gradient(res.variances)[1][0] > 0
    assert "on the boundary" in str(res) and res.table()["boundary"].tolist() == [
        True,
        False,
        False,
    ]


def _small_problem(seed=0, n=90):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 30))
    K = A @ A.T / 30
    fam = np.repeat(np.arange(n // 3), 3)
    F = (fam[:, None] == fam[None, :]).astype(float)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 0.5] + np.linalg.cholesky(
        0.6 * K + 0.3 * F + 0.5 * np.eye(n) + 1e-9 * np.eye(n)
    ) @ rng.normal(size=n)
    return y, X, K, F


def test_reml_criterion_equals_error_contrast_likelihood():
    # REML is the likelihood of error contrasts A'y (A: orthonormal basis of X's orthogonal complement):
    # -2ℓ_R = log|A'VA| + log|X'X| + y'A(A'VA)⁻¹A'y + (n - p) log 2π, with P = A(A'VA)⁻¹A'.
    y, X, K, F = _small_problem()
    sigma = np.array([0.7, 0.2, 0.4])
    lik = RemlLikelihood(y, X, [K, F, None])
    V = 0.7 * K + 0.2 * F + 0.4 * np.eye(len(y))
    Q = np.linalg.qr(X, mode="complete")[0]
    A = Q[:, X.shape[1] :]
    AVA = A.T @ V @ A
    Ay = A.T @ y
    expected = (
        np.linalg.slogdet(AVA)[1] + np.linalg.slogdet(X.T @ X)[1]
        + Ay @ np.linalg.solve(AVA, Ay) + (len(y) - X.shape[1]) * np.log(2 * np.pi)
    )  # fmt: skip
    np.testing.assert_allclose(lik.objective_gradient(sigma)[0], expected, rtol=1e-11)
    np.testing.assert_allclose(lik.state(sigma).P, A @ np.linalg.solve(AVA, A.T), atol=1e-10)


def test_derivatives_match_finite_differences():
    y, X, K, F = _small_problem(1)
    lik = RemlLikelihood(y, X, [K, F, None])
    sigma = np.array([0.5, 0.3, 0.6])
    g = jacobian(lambda v: lik.objective_gradient(v)[0], sigma)[0]
    np.testing.assert_allclose(lik.objective_gradient(sigma)[1], g, rtol=1e-6)
    H = jacobian(lambda v: lik.objective_gradient(v)[1], sigma)
    np.testing.assert_allclose(lik.hessian(sigma), H, rtol=1e-5)


def test_fraction_standard_errors_are_the_delta_method():
    y, X, K, F = _small_problem(2)
    res = vardec(y, X, {"K": K, "F": F})
    free = ~res.boundary
    s = res.variances
    # Jacobian of f = σ / Σσ by numerical differentiation.
    J = jacobian(lambda v: v / v.sum(), s)
    cov = res.vcov[np.ix_(free, free)]
    expected = np.sqrt(np.diag(J[:, free] @ cov @ J[:, free].T))
    np.testing.assert_allclose(res.fraction_se[free], expected[free], rtol=1e-5)


def test_scaling_and_several_phenotypes():
    y, X, K, F = _small_problem(3)
    Y = pd.DataFrame({"a": y, "b": 3.0 * y, "c": np.where(np.arange(len(y)) < 6, np.nan, y)})
    res = vardec(Y, X, {"K": K, "F": F}, residual="noise")
    assert list(res) == ["a", "b", "c"] and res["a"].names == ["K", "F", "noise"]
    np.testing.assert_allclose(res["b"].variances, 9.0 * res["a"].variances, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res["b"].fractions, res["a"].fractions, atol=1e-7)
    alone = vardec(y[6:], X[6:], {"K": K[6:, 6:], "F": F[6:, 6:]}, residual="noise")
    assert res["c"].nobs == len(y) - 6
    np.testing.assert_allclose(res["c"].variances, alone.variances, rtol=1e-8, atol=1e-12)


def test_explicit_identity_instead_of_the_residual():
    y, X, K, _ = _small_problem(4)
    default = vardec(y, X, {"K": K})
    explicit = vardec(y, X, {"K": K, "I": np.eye(len(y))}, residual=None)
    np.testing.assert_allclose(explicit.variances, default.variances, rtol=1e-8)


def test_bad_kernels():
    y, X, K, _ = _small_problem(5)
    with pytest.raises(DataError, match="90 x 90"):
        vardec(y, X, {"K": K[:10, :10]})
    with pytest.raises(DataError, match="symmetric"):
        vardec(y, X, {"K": K + np.triu(np.ones_like(K), 1)})
    with pytest.raises(DataError, match="residual"):
        vardec(y, X, {"residual": K})
    with pytest.raises(DataError, match="no kernels"):
        vardec(y, X, {}, residual=None)


def test_labelled_phenotype_is_paired_with_kernels_by_id():
    y, X, K, _ = _small_problem(4)
    ids = [f"s{i}" for i in range(len(y))]
    right = vardec(y, X, {"K": K})
    order = np.random.default_rng(0).permutation(len(y))
    y_shuffled = pd.Series(y, index=ids).iloc[order]
    K_labelled = pd.DataFrame(K, index=ids, columns=ids)
    again = vardec(y_shuffled, X[order], {"K": K_labelled})
    np.testing.assert_allclose(again.variances, right.variances, rtol=1e-8)
    with pytest.raises(DataError, match="labelled by sample ID but kernel 'K' carries none"):
        vardec(y_shuffled, X[order], {"K": K})
