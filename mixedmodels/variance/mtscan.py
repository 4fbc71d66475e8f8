"""Multi-trait association scan with trait designs (limix's any / common / specific effect tests).

Under the Kronecker model of :mod:`.multitrait`, a SNP g (n-vector) adds
g b A to the n x t mean, where b (1 x k) are its effects and the trait
design A (k x t) says how they reach the traits:

=============  =========  ========  ======================================
test           A1         A0        question
=============  =========  ========  ======================================
``any``        I_t        —         does the SNP affect any trait? (t df)
``common``     1_t'       —         one effect shared by all traits? (1 df)
``specific``   I_t        1_t'      do the effects differ between traits? (t - 1 df)
=============  =========  ========  ======================================

Cg and Cn are held at the null model's estimates, as limix does.  In the
transformed coordinates of :mod:`.multitrait` the traits are independent
with weights W = 1/ω, the design of b for transformed trait j is g̃ Ã_j
(g̃ = U'g, Ã = A T), and eliminating the covariates trait by trait gives

    information  I_b = Σ_j ρ_j Ã_j Ã_j',   score  s_b = Σ_j η_j Ã_j,
    ρ_j = g̃'W_j g̃ - g̃'W_j X̃ (X̃'W_j X̃)⁻¹ X̃'W_j g̃,   η_j = g̃'W_j ê_j,

with ê the null model's residuals.  b̂ = I_b⁻¹ s_b and the likelihood-ratio
statistic with fixed covariances is s_b' I_b⁻¹ s_b; a test of A1 against
a nested A0 is the difference of the two statistics, χ² with
rank(A1) - rank(A0) degrees of freedom.  All SNPs are processed at once
in O(n m t p) operations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import DataError
from .multitrait import KroneckerFit

__all__ = ["mt_scan", "trait_design"]


def trait_design(test: str, t: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(A1, A0) of a named test for t traits (see the module docstring)."""
    designs = {
        "any": (np.eye(t), None),
        "common": (np.ones((1, t)), None),
        "specific": (np.eye(t), np.ones((1, t))),
    }
    if test not in designs:
        raise DataError(
            f"unknown test {test!r}: use 'any', 'common', 'specific' or give A1 (and A0)"
        )
    return designs[test]


def _snp_sufficient(fit: KroneckerFit, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ρ and η (m x t) of the module docstring for the columns of G (n x m)."""
    st, lik = fit.state, fit.lik
    Gr = lik.U.T @ G  # (n, m)
    XWG = np.einsum("ip,ij,im->jpm", lik.Xr, st.W, Gr)  # (t, p, m)
    rho = st.W.T @ Gr**2 - np.einsum("jpm,jpq,jqm->mj", XWG, st.Cinv, XWG).T
    eta = Gr.T @ (st.W * st.E)  # (m, t)
    return rho.T, eta


def _statistic(
    At: np.ndarray, rho: np.ndarray, eta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per SNP: s'I⁻¹s, b̂ = I⁻¹s and Var(b̂) = I⁻¹, for transformed design At (k x t)."""
    info = np.einsum("kj,mj,lj->mkl", At, rho, At)
    score = eta @ At.T  # (m, k)
    cov = np.linalg.pinv(info, hermitian=True)
    b = np.einsum("mkl,ml->mk", cov, score)
    return np.einsum("mk,mk->m", score, b), b, cov


def _effect_names(A1: np.ndarray, test: str | None, traits: list[str]) -> list[str]:
    if test == "common":
        return ["common"]
    if A1.shape[0] == len(traits) and np.allclose(A1, np.eye(len(traits))):
        return list(traits)
    return [f"effect{k}" for k in range(A1.shape[0])]


def mt_scan(
    fit: KroneckerFit,
    G,
    *,
    test: str | None = "any",
    A1: np.ndarray | None = None,
    A0: np.ndarray | None = None,
    snp_names: list[str] | None = None,
) -> pd.DataFrame:
    """Test each column of G for effects on the traits of a fitted Kronecker model.

    Parameters
    ----------
    fit : KroneckerFit
        The null model (:func:`~mixedmodels.variance.multitrait.fit_kronecker`).
    G : array (n, m)
        Genotypes of the tested SNPs (complete; impute missing values first).
    test : {"any", "common", "specific"} or None
        A named pair of trait designs; ignored when A1 is given.
    A1, A0 : array (k, t), optional
        Trait designs of the alternative and the (nested) null; A0 None is no effect.
    snp_names : list of str, optional

    Returns
    -------
    DataFrame
        Per SNP: ``lrt``, ``df``, ``p``, and for each row of A1 its effect
        ``beta_<name>`` and standard error ``se_<name>``.
    """
    G = np.asarray(G, dtype=float)
    G = G[:, None] if G.ndim == 1 else G
    t = fit.Cg.shape[0]
    if G.shape[0] != fit.nobs or not np.isfinite(G).all():
        raise DataError(
            f"G must be complete with one row per individual ({fit.nobs}), got shape {G.shape}"
        )
    if A1 is None:
        A1, A0 = trait_design(test, t)
    A1 = np.atleast_2d(np.asarray(A1, dtype=float))
    df = np.linalg.matrix_rank(A1) - (0 if A0 is None else np.linalg.matrix_rank(np.atleast_2d(A0)))
    if A1.shape[1] != t or df < 1:
        raise DataError(
            f"A1 must have {t} columns and more rank than A0 (got A1 {A1.shape}, {df} df)"
        )
    rho, eta = _snp_sufficient(fit, G)
    stat, b, cov = _statistic(A1 @ fit.state.T, rho, eta)
    if A0 is not None:
        stat = stat - _statistic(np.atleast_2d(A0) @ fit.state.T, rho, eta)[0]
    stat = np.maximum(stat, 0.0)
    out = pd.DataFrame({"lrt": stat, "df": df, "p": chi2.sf(stat, df)}, index=snp_names)
    se = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    for k, name in enumerate(_effect_names(A1, test, fit.trait_names)):
        out[f"beta_{name}"], out[f"se_{name}"] = b[:, k], se[:, k]
    return out
