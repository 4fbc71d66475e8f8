"""Satterthwaite's denominator degrees of freedom for t tests of a linear mixed model.

With variance parameters φ = (θ, σ) and V(φ) = σ² (L_X L_X')⁻¹ the
covariance of β̂, a contrast c'β has variance v = c'Vc.  Its approximate
distribution is scaled χ² with

    ν = 2 v² / (g' A g),    gᵢ = c' (∂V/∂φᵢ) c,    A = 2 H⁻¹,

where H is the Hessian, at the estimate, of the deviance (ML) or REML
criterion as a function of φ with β profiled out:

    d(θ, σ)   = log|L_Z|² + r²(θ)/σ² + n log(2πσ²)
    d_R(θ, σ) = d(θ, σ) + log|L_X|² - p log(2πσ²).

A = 2H⁻¹ is the asymptotic covariance of φ̂.  This is the method of
Kuznetsova, Brockhoff & Christensen (2017, lmerTest), in the same
parametrisation.  H and ∂V/∂φ are analytic (:mod:`.varpar`, one dense
q x q factorisation); models outside its scope (known covariances, very
many random effects) get numerical derivatives (:mod:`.numderiv`) instead.
A singular H is inverted on its positive eigenvalues.  The state is
computed once per fit and cached (:mod:`.fitcache`), so every table, F
test and marginal mean of a fit reuses it.

For a hypothesis Lβ = 0 with q > 1 rows (an F test), lmerTest's
construction is followed: with LVL' = PDP' (eigenvalues dᵢ), the rows of
P'L are q independent contrasts with t² statistics whose sum over q is F,
each with its ν_m; the F statistic's denominator df is 2E/(E - q) with
E = Σ ν_m/(ν_m - 2) (2 where some ν_m ≤ 2, their mean where all agree).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import MixedModelsError
from ..model import MixedModel
from ..numderiv import hessian, jacobian
from .fitcache import cached_at_fit
from .modelcopy import copy_model
from .varpar import varpar_derivatives

__all__ = ["SatterthwaiteState", "satterthwaite_state", "satterthwaite_df", "satterthwaite_ftest"]


@dataclass
class SatterthwaiteState:
    """What every contrast needs: V, ∂V/∂φᵢ (stacked) and A = cov(φ̂)."""

    vcov: np.ndarray  # (p, p)
    jac: np.ndarray  # (k, p, p): ∂V/∂φᵢ
    cov_varpar: np.ndarray  # (k, k)


def _criterion(m, varpar: np.ndarray) -> float:
    """d or d_R of :mod:`this module <.satterthwaite>` at φ = (θ, σ)."""
    return m.objective_at(varpar[:-1], sigma=varpar[-1])


def _vcov_at(m, varpar: np.ndarray) -> np.ndarray:
    """σ² (L_X L_X')⁻¹ at φ = (θ, σ), flattened."""
    m.objective_at(varpar[:-1])
    return (varpar[-1] ** 2 * m.unscaled_vcov).ravel()


def _pseudo_inverse(H: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Inverse of a symmetric matrix on its eigenvalues above ``tol`` (with a warning otherwise)."""
    values, vectors = np.linalg.eigh(H)
    if np.any(values < -tol):
        warnings.warn(
            "the Hessian of the criterion has negative eigenvalues: the fit may not have converged, "
            "so the degrees of freedom are unreliable",
            stacklevel=4,
        )
    keep = values > tol
    return (vectors[:, keep] / values[keep]) @ vectors[:, keep].T


def satterthwaite_state(model: MixedModel) -> SatterthwaiteState:
    """Derivatives at the fit of a linear mixed model (ML or REML), computed once per fit."""
    if model.family is not None:
        raise MixedModelsError("denominator degrees of freedom are for linear mixed models only")
    model.require_fit("denominator degrees of freedom")
    return cached_at_fit(model, "satterthwaite", lambda: _compute_state(model))


def _compute_state(model: MixedModel) -> SatterthwaiteState:
    exact = varpar_derivatives(model)
    if exact is not None:
        return SatterthwaiteState(model.vcov, exact.jac, 2 * _pseudo_inverse(exact.hessian))
    return numerical_state(model)


def numerical_state(model: MixedModel) -> SatterthwaiteState:
    """The state from numerical derivatives of ``objective_at``, on a private copy."""
    m = copy_model(model)
    varpar = np.append(model.theta, model.sigma)
    p = len(model.beta)
    H = hessian(lambda x: _criterion(m, x), varpar)
    J = jacobian(lambda x: _vcov_at(m, x), varpar)
    jac = np.moveaxis(J.reshape(p, p, len(varpar)), 2, 0)
    return SatterthwaiteState(model.vcov, jac, 2 * _pseudo_inverse(H))


def satterthwaite_df(state: SatterthwaiteState, contrast: np.ndarray) -> float:
    """ν = 2 (c'Vc)² / (g'Ag) for one contrast vector c of length p."""
    c = np.asarray(contrast, dtype=float)
    v = c @ state.vcov @ c
    g = np.einsum("a,kab,b->k", c, state.jac, c)
    return float(2 * v**2 / (g @ state.cov_varpar @ g))


def satterthwaite_ftest(state: SatterthwaiteState, L: np.ndarray, beta: np.ndarray) -> tuple:
    """F statistic, numerator and denominator df of Lβ = 0 (L: q x p), as lmerTest's ``contestMD``.

    Directions of LVL' with eigenvalues at most √ε times the largest are
    dropped (linearly dependent rows of L), so NumDF is the rank of L.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    values, vectors = np.linalg.eigh(L @ state.vcov @ L.T)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(np.finfo(float).eps ** 0.5 * values[0], 0.0)
    PtL = vectors[:, keep].T @ L
    d = values[keep]
    q = len(d)
    F = float(np.sum((PtL @ beta) ** 2 / d) / q)
    nu = np.array([satterthwaite_df(state, row) for row in PtL])
    return F, q, _f_ddf(nu)


def _f_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's denominator df of an F statistic from its q t statistics' df."""
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))
