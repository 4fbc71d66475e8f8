"""Kronecker multi-trait model and multi-trait scan against dense O((nt)³) computations."""

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.numderiv import jacobian
from mixedmodels.variance.mtscan import mt_scan, trait_design
from mixedmodels.variance.multitrait import KroneckerLikelihood, fit_kronecker
from mixedmodels.variance.vardec import vardec


def _problem(seed=0, n=50, t=2):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 15))
    K = A @ A.T / 15
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    Cg = np.array([[0.8, 0.4, 0.1], [0.4, 0.6, 0.0], [0.1, 0.0, 0.5]])[:t, :t]
    Cn = np.array([[0.5, 0.1, 0.0], [0.1, 0.7, 0.2], [0.0, 0.2, 0.6]])[:t, :t]
    Sigma = np.kron(Cg, K) + np.kron(Cn, np.eye(n))
    noise = np.linalg.cholesky(Sigma) @ rng.normal(size=n * t)
    Y = X @ rng.normal(size=(2, t)) + noise.reshape(t, n).T
    return Y, X, K, rng


def _dense_gls(Y, X, K, Cg, Cn, extra=None):
    """(-2 × the ML log-likelihood kernel r'Σ⁻¹r, coefficients, covariance) with Σ formed densely."""
    n, t = Y.shape
    Si = np.linalg.inv(np.kron(Cg, K) + np.kron(Cn, np.eye(n)))
    D = np.kron(np.eye(t), X) if extra is None else np.hstack([np.kron(np.eye(t), X), extra])
    C = D.T @ Si @ D
    y = Y.T.ravel()
    b = np.linalg.solve(C, D.T @ Si @ y)
    r = y - D @ b
    return r @ Si @ r, b, np.linalg.inv(C), Si, C


@pytest.mark.parametrize("reml", [False, True])
def test_objective_and_gradient_equal_dense(reml):
    Y, X, K, rng = _problem(1, t=3)
    lik = KroneckerLikelihood(Y, X, K, reml=reml)
    phi = np.concatenate(
        [np.array([1, 0.2, 0.9, -0.1, 0.3, 0.8]), np.array([0.7, 0.1, 0.8, 0.0, 0.2, 0.9])]
    )
    phi = phi + 0.1 * rng.normal(size=phi.size)
    Lg, Ln = lik.factors(phi)
    Cg, Cn = Lg @ Lg.T, Ln @ Ln.T
    n, t = Y.shape
    quad, _, _, Si, C = _dense_gls(Y, X, K, Cg, Cn)
    m = n - X.shape[1] if reml else n
    dense = (
        m * t * np.log(2 * np.pi)
        - np.linalg.slogdet(Si)[1]
        + quad
        + (np.linalg.slogdet(C)[1] if reml else 0.0)
    )
    f, g = lik.objective_gradient(phi)
    np.testing.assert_allclose(f, dense, rtol=1e-11)
    numeric = jacobian(lambda v: lik.objective_gradient(v)[0], phi)[0]
    np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-6)


def test_one_trait_is_the_two_component_vardec():
    Y, X, K, _ = _problem(2, t=1)
    fit = fit_kronecker(Y, X, K)
    vd = vardec(Y[:, 0], X, {"K": K})
    np.testing.assert_allclose([fit.Cg[0, 0], fit.Cn[0, 0]], vd.variances, rtol=1e-6)
    np.testing.assert_allclose(fit.loglik, vd.reml_loglik, rtol=1e-10)
    np.testing.assert_allclose(fit.B[:, 0], vd.beta, rtol=1e-6)
    np.testing.assert_allclose(fit.B_se[:, 0], vd.beta_se, rtol=1e-6)


def test_fit_is_a_stationary_point_with_gls_coefficients():
    Y, X, K, _ = _problem(3, t=2)
    frame = pd.DataFrame(Y, columns=["height", "weight"])
    fit = fit_kronecker(frame, X, K, reml=False)
    assert fit.converged and fit.trait_names == ["height", "weight"]
    phi = np.concatenate(
        [
            np.linalg.cholesky(fit.Cg)[np.tril_indices(2)],
            np.linalg.cholesky(fit.Cn)[np.tril_indices(2)],
        ]
    )
    np.testing.assert_allclose(fit.lik.objective_gradient(phi)[1], 0.0, atol=1e-6)
    _, b, cov, _, _ = _dense_gls(Y, X, K, fit.Cg, fit.Cn)
    np.testing.assert_allclose(fit.B.T.ravel(), b, rtol=1e-8)
    np.testing.assert_allclose(fit.B_se.T.ravel(), np.sqrt(np.diag(cov)), rtol=1e-8)
    h2 = np.diag(fit.Cg) / (np.diag(fit.Cg) + np.diag(fit.Cn))
    np.testing.assert_allclose(fit.heritability, h2)
    np.testing.assert_allclose(np.diag(fit.correlations("noise")), 1.0)


@pytest.mark.parametrize("test", ["any", "common", "specific"])
def test_scan_equals_dense_likelihood_ratio(test):
    Y, X, K, rng = _problem(4, t=3)
    G = rng.binomial(2, 0.3, size=(len(Y), 4)).astype(float)
    fit = fit_kronecker(Y, X, K)
    res = mt_scan(fit, G, test=test)
    A1, A0 = trait_design(test, 3)
    for j in range(G.shape[1]):
        g = G[:, [j]]
        q0 = _dense_gls(Y, X, K, fit.Cg, fit.Cn, None if A0 is None else np.kron(A0.T, g))[0]
        q1, b, cov, _, _ = _dense_gls(Y, X, K, fit.Cg, fit.Cn, np.kron(A1.T, g))
        np.testing.assert_allclose(res["lrt"].iloc[j], q0 - q1, rtol=1e-8, atol=1e-10)
        k = A1.shape[0]
        np.testing.assert_allclose(res.iloc[j, 3::2], b[-k:], rtol=1e-8)
        np.testing.assert_allclose(res.iloc[j, 4::2], np.sqrt(np.diag(cov))[-k:], rtol=1e-8)
    assert (res["df"] == {"any": 3, "common": 1, "specific": 2}[test]).all()


def test_scan_input_checks():
    Y, X, K, _ = _problem(5)
    fit = fit_kronecker(Y, X, K)
    with pytest.raises(DataError, match="unknown test"):
        mt_scan(fit, np.ones((50, 1)), test="all")
    with pytest.raises(DataError, match="complete"):
        mt_scan(fit, np.full((50, 1), np.nan))
    with pytest.raises(DataError, match="more rank"):
        mt_scan(fit, np.ones((50, 1)), A1=np.ones((1, 2)), A0=np.ones((1, 2)))
    with pytest.raises(DataError, match="kinship"):
        fit_kronecker(Y, X, K[:3, :3])
    with pytest.raises(DataError, match="complete"):
        fit_kronecker(np.where(Y > 2, np.nan, Y), X, K)


def test_summary_text():
    Y, X, K, _ = _problem(6)
    text = str(fit_kronecker(Y, X, K))
    assert "fit by REML" in text and "Genetic covariance Cg" in text and "trait1" in text
