"""Likelihood-ratio and Wald tests of per-SNP fixed effects at a fixed ``h²``, a block at a time.

For SNP ``j`` the alternative model adds ``q`` columns ``C_j`` (n × q) to the
null design ``X``: the SNP itself (``q = 1``), or the SNP and its products with
environmental covariates for an interaction test.  The hypothesis is that the
coefficients of the last ``q - q0`` columns are zero, the first ``q0`` staying
in both models (``q0 = 0`` for a plain scan, ``1`` for an interaction scan).

With ``V`` fixed, everything follows from the null fit by the Schur complement
of ``A = X'V⁻¹X`` in the cross-product matrix of ``[X C_j y]``:

.. math::
    M_j = C_j'V^{-1}C_j - C_j'V^{-1}X A^{-1} X'V^{-1}C_j, \\qquad
    a_j = C_j'V^{-1}(y - X\\hat β_0), \\\\
    \\hat γ_j = M_j^{-1} a_j, \\qquad r_j = r_0 - a_j' \\hat γ_j ,

where ``r = (y - Xβ)'V⁻¹(y - Xβ)`` is the weighted residual sum of squares.  With
``β`` and ``s²`` profiled by maximum likelihood the likelihood-ratio statistic is
``n log(r_null / r_alt)``, the Wald statistic ``γ_T' [s² (M⁻¹)_TT]⁻¹ γ_T`` with
``s² = r_alt / n`` and ``T`` the tested columns.  All SNPs of a block are
handled by batched ``q × q`` algebra: ``O(n c q (p + q))`` for ``c`` SNPs once
they are rotated.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NullFit", "TestResult", "nested_tests", "wald_statistic", "weighted_cross_products"]


class NullFit(NamedTuple):
    """The null model of one phenotype at fixed ``h²``: what every SNP test reuses.

    ``h2``; ``delta`` (k,) ``= w - w0`` and ``w0`` the weights of
    :func:`~mixedmodels.genetics.likelihood.spectral_weights`; ``beta`` (p,);
    ``A_inv`` (p, p) ``= (X'V⁻¹X)⁻¹``; ``rss`` the weighted residual sum of
    squares; ``loglik`` the ML log-likelihood.
    """

    h2: float
    delta: np.ndarray
    w0: float
    beta: np.ndarray
    A_inv: np.ndarray
    rss: float
    loglik: float


class TestResult(NamedTuple):
    """Per-SNP results for a block of ``c`` SNPs.

    ``gamma`` (c, q) coefficients of ``C_j`` in the alternative model, ``se``
    (c, q) their standard errors, ``wald`` and ``lrt`` (c,) the statistics for
    the tested columns; ``NaN`` where the SNP cannot be tested (monomorphic or
    collinear with ``X``).
    """

    gamma: np.ndarray
    se: np.ndarray
    wald: np.ndarray
    lrt: np.ndarray


def weighted_cross_products(
    C_rot: np.ndarray,
    X_rot: np.ndarray,
    y_rot: np.ndarray,
    null: NullFit,
    raw: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``C'V⁻¹C`` (c, q, q), ``C'V⁻¹X`` (c, q, p) and ``C'V⁻¹y`` (c, q) for each SNP.

    Parameters
    ----------
    C_rot : ndarray, shape (k, c, q)
        ``U'C`` for the block.
    X_rot : ndarray, shape (k, p)
    y_rot : ndarray, shape (k,)
    null : NullFit
        Supplies the weights ``w - w0`` and ``w0``.
    raw : tuple or None
        The unweighted ``C'C``, ``C'X``, ``C'y`` for a low-rank decomposition
        (the complement's share, times ``w0``); ``None`` for a full one.
    """
    weighted = C_rot * null.delta[:, None, None]
    CVC = np.einsum("kcq,kcr->cqr", weighted, C_rot)
    CVX = np.tensordot(weighted, X_rot, axes=([0], [0]))
    CVy = np.tensordot(weighted, y_rot, axes=([0], [0]))
    if raw is not None:
        CC, CX, Cy = raw
        CVC, CVX, CVy = CVC + null.w0 * CC, CVX + null.w0 * CX, CVy + null.w0 * Cy
    return CVC, CVX, CVy


def nested_tests(
    CVC: np.ndarray, CVX: np.ndarray, CVy: np.ndarray, null: NullFit, n: int, q0: int
) -> TestResult:
    """Test the last ``q - q0`` columns of each ``C_j`` at the null's ``h²``.

    Parameters
    ----------
    CVC, CVX, CVy : ndarray
        From :func:`weighted_cross_products`, shapes (c, q, q), (c, q, p), (c, q).
    null : NullFit
    n : int
        Number of individuals.
    q0 : int
        Columns of ``C_j`` kept in the null model.
    """
    M = CVC - np.einsum("cqp,ps,crs->cqr", CVX, null.A_inv, CVX)
    a = CVy - CVX @ null.beta
    valid = _testable(M, CVC)
    eye = np.eye(M.shape[-1])
    M_inv = np.linalg.inv(np.where(valid[:, None, None], M, eye))
    gamma = np.einsum("cqr,cr->cq", M_inv, a)
    rss_alt = null.rss - np.einsum("cq,cq->c", a, gamma)
    rss_null = null.rss - (_explained(M, a, q0, valid) if q0 else 0.0)
    # log1p keeps small statistics accurate: r_null and r_alt agree to many digits.
    lrt = -n * np.log1p(-np.clip((rss_null - rss_alt) / rss_null, 0.0, 1.0))
    s2 = rss_alt / n
    se = np.sqrt(s2[:, None] * np.diagonal(M_inv, axis1=1, axis2=2))
    wald = wald_statistic(gamma[:, q0:], s2[:, None, None] * M_inv[:, q0:, q0:])
    for out in (gamma, se, wald, lrt):
        out[~valid] = np.nan
    return TestResult(gamma, se, wald, lrt)


def _testable(M: np.ndarray, CVC: np.ndarray) -> np.ndarray:
    """SNPs whose columns keep some variance after projecting out ``X`` (and each other).

    ``M`` is positive definite unless ``C_j`` is (nearly) in the span of ``X``;
    relative to ``C'V⁻¹C`` its smallest eigenvalue measures how far from it.
    """
    scale = np.diagonal(CVC, axis1=1, axis2=2).max(axis=1)
    smallest = np.linalg.eigvalsh(M)[:, 0]
    return (scale > 0) & (smallest > 1e-9 * scale)


def _explained(M: np.ndarray, a: np.ndarray, q0: int, valid: np.ndarray) -> np.ndarray:
    """Reduction of ``r`` by the first ``q0`` columns alone: ``a_0' M_00⁻¹ a_0``."""
    M00 = np.where(valid[:, None, None], M[:, :q0, :q0], np.eye(q0))
    return np.einsum("cq,cq->c", a[:, :q0], np.linalg.solve(M00, a[:, :q0, None])[..., 0])


def wald_statistic(gamma: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``γ' Cov(γ)⁻¹ γ`` for tested coefficients ``γ`` (..., r) and their covariance (..., r, r)."""
    solved = np.linalg.solve(cov, gamma[..., None])[..., 0]
    return np.einsum("...q,...q->...", gamma, solved)
