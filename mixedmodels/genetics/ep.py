"""Expectation propagation for a GLMM with a Gaussian prior ``f ~ N(m, Σ)``, and its probit case.

The sweep (:func:`run_ep`) and ``log Z_EP`` with the pieces of its gradient
(:func:`ep_evidence`) take any ``Σ`` and any sites through a function giving
their tilted moments; this module supplies the probit sites and fits the
liability model, :mod:`.poisson_ep` the Poisson sites.

Model, for individuals ``i = 1..n`` with ``y_i ∈ {0, 1}``:

.. math:: P(y_i = 1 \\mid f) = Φ(f_i), \\qquad f \\sim N(m, Σ), \\quad m = Xβ, \\quad Σ = σ_g^2 K,

the liability model ``l = Xβ + g + e``, ``g ~ N(0, σg² K)``, ``e ~ N(0, 1)``,
``y = 1[l > 0]``; the liability-scale heritability is ``h² = σg² / (σg² + 1)``.

EP (Minka 2001; Rasmussen & Williams 2006, §3.6; glimix-core's ``EP``)
replaces each probit factor by a Gaussian site ``t̃_i(f_i) = Z̃_i N(f_i; ν̃_i/τ̃_i, 1/τ̃_i)``
so that the approximate posterior ``q(f) ∝ N(f; m, Σ) Π t̃_i`` is Gaussian:
``Σ_q = (Σ⁻¹ + T̃)⁻¹``, ``μ_q = m + Σ_q (ν̃ - T̃ m)``.  Each sweep forms every
cavity ``q_{-i}(f_i) = N(μ₋, σ₋²)`` (``τ₋ = 1/Σ_q,ii - τ̃_i``,
``ν₋ = μ_q,i/Σ_q,ii - ν̃_i``), matches the moments of the tilted
``Φ((2y_i - 1) f_i) q_{-i}(f_i)`` (closed form for the probit) and updates all
sites at once (parallel EP, damped).  ``Σ_q`` is never inverted: with
``B = I + T̃^½ Σ T̃^½ = LL'`` (eigenvalues ≥ 1, so the Cholesky is stable),
``Σ_q = Σ - V'V`` with ``V = L⁻¹ T̃^½ Σ``.

The EP approximation of the marginal likelihood is

.. math:: \\log Z_{EP} = Σ_i \\log \\hat Z_i - Σ_i \\log N(μ_{-i}; \\tilde μ_i, σ_{-i}^2 + 1/\\tilde τ_i)
          + \\log N(\\tilde μ; m, Σ + \\tilde T^{-1}),

(each site's ``Z̃_i`` chosen so that site times cavity integrates to the tilted
``Ẑ_i = Φ(z_i)``), evaluated in the form that stays finite as ``τ̃_i → 0``.
At the EP fixed point its gradient in ``(m, Σ)`` ignores the sites' dependence
on them: ``∂/∂m = α``, ``∂/∂Σ = ½(αα' - (Σ + T̃⁻¹)⁻¹)`` with
``α = (Σ + T̃⁻¹)⁻¹(μ̃ - m)``; ``σg²`` and ``β`` maximise it by L-BFGS-B.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.special import log_ndtr

from mixedmodels.errors import ConvergenceError, DataError

__all__ = [
    "EPEvidence",
    "EPFit",
    "EPState",
    "ep_evidence",
    "ep_marginal",
    "fit_probit_ep",
    "maximise_evidence",
    "probit_sites",
    "run_ep",
]

#: ``tilted(μ₋, σ₋²) -> (log Ẑ, mean, variance)`` of every site's tilted distribution, all (n,).
Tilted = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: Site precisions are kept at least this (a site with τ̃ = 0 carries no information).
TAU_MIN = 1e-10


@dataclass
class EPState:
    """Site parameters ``τ̃``, ``ν̃`` (n,), reused to warm-start the next EP run."""

    tau: np.ndarray
    nu: np.ndarray


@dataclass(frozen=True)
class EPMarginal:
    """``log Z_EP`` and its gradient in ``β`` and ``log σg²`` at one parameter value."""

    log_z: float
    grad_beta: np.ndarray
    grad_log_s2: float
    sweeps: int


def _posterior(Sigma: np.ndarray, m: np.ndarray, state: EPState):
    """Cholesky ``L`` of ``B``, ``diag Σ_q`` and ``μ_q`` for the current sites."""
    s = np.sqrt(state.tau)
    B = np.eye(m.size) + s[:, None] * Sigma * s[None, :]
    try:
        L = scipy.linalg.cholesky(B, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise ConvergenceError("EP: I + T^½ Σ T^½ is not positive definite") from None
    V = scipy.linalg.solve_triangular(L, s[:, None] * Sigma, lower=True, check_finite=False)
    var = np.diag(Sigma) - np.einsum("ij,ij->j", V, V)
    b = state.nu - state.tau * m
    mu = m + Sigma @ b - V.T @ (V @ b)
    return L, var, mu


def _tilted(y_sign: np.ndarray, cav_mu: np.ndarray, cav_var: np.ndarray):
    """Moments of ``Φ(y f) N(f; μ₋, σ₋²)``: ``log Ẑ``, mean, variance."""
    root = np.sqrt(1.0 + cav_var)
    z = y_sign * cav_mu / root
    log_z = log_ndtr(z)
    ratio = np.exp(-0.5 * z**2 - 0.5 * np.log(2 * np.pi) - log_z)  # N(z)/Φ(z), stable for z ≪ 0
    mean = cav_mu + y_sign * cav_var * ratio / root
    var = cav_var - cav_var**2 * ratio * (z + ratio) / (1.0 + cav_var)
    return log_z, mean, var


def _cavity(var: np.ndarray, mu: np.ndarray, state: EPState):
    tau_c = 1.0 / var - state.tau
    nu_c = mu / var - state.nu
    return tau_c, nu_c


def run_ep(
    tilted: Tilted,
    m: np.ndarray,
    Sigma: np.ndarray,
    state: EPState,
    *,
    tol: float = 1e-7,
    max_sweeps: int = 300,
    damping: float = 1.0,
) -> int:
    """Iterate parallel EP to a fixed point, updating ``state`` in place; returns the sweeps.

    ``tilted(μ₋, σ₋²)`` gives each site's ``(log Ẑ, mean, variance)`` of its tilted
    distribution (all (n,)).  Undamped steps converge in a few sweeps for a
    log-concave likelihood (probit, Poisson); if they have not after 30 sweeps
    they are damped by half, which stops oscillation.
    """
    for sweep in range(1, max_sweeps + 1):
        if sweep == 30:
            damping = min(damping, 0.5)
        _, var, mu = _posterior(Sigma, m, state)
        tau_c, nu_c = _cavity(var, mu, state)
        if (tau_c <= 0).any():  # a site more precise than its marginal: damp harder
            tau_c = np.maximum(tau_c, TAU_MIN)
        _, mean, var_hat = tilted(nu_c / tau_c, 1.0 / tau_c)
        tau_new = np.maximum(1.0 / var_hat - tau_c, TAU_MIN)
        nu_new = mean / var_hat - nu_c
        step = max(np.abs(tau_new - state.tau).max(), np.abs(nu_new - state.nu).max())
        state.tau = (1 - damping) * state.tau + damping * tau_new
        state.nu = (1 - damping) * state.nu + damping * nu_new
        if step < tol:
            return sweep
    raise ConvergenceError(f"EP did not converge in {max_sweeps} sweeps (last change {step:.2g})")


@dataclass(frozen=True)
class EPEvidence:
    """``log Z_EP`` at an EP fixed point and what its gradient needs.

    ``alpha`` (n,) is ``(Σ + T̃⁻¹)⁻¹(μ̃ - m)``; with ``A = (Σ + T̃⁻¹)⁻¹``,
    ``trace_a_sigma = tr(AΣ) = n - tr(B⁻¹)`` and ``trace_a = tr(A)``, so that
    for ``Σ = σg²K + σe²I`` the trace against ``K`` is
    ``(trace_a_sigma - σe² trace_a) / σg²`` without forming ``A``.
    """

    log_z: float
    alpha: np.ndarray
    trace_a_sigma: float
    trace_a: float
    sweeps: int


def ep_evidence(tilted: Tilted, m: np.ndarray, Sigma: np.ndarray, state: EPState) -> EPEvidence:
    """Run EP (warm-started from ``state``) and evaluate ``log Z_EP`` there (module docstring).

    ``m`` (n,) the prior mean, ``Sigma`` (n, n) the prior covariance of ``f``.
    """
    sweeps = run_ep(tilted, m, Sigma, state)
    L, var, mu = _posterior(Sigma, m, state)
    tau_c, nu_c = _cavity(var, mu, state)
    tau_c = np.maximum(tau_c, TAU_MIN)
    cav_mu, cav_var = nu_c / tau_c, 1.0 / tau_c
    log_zhat, _, _ = tilted(cav_mu, cav_var)
    tau, nu = state.tau, state.nu
    s = np.sqrt(tau)
    a = scipy.linalg.solve_triangular(L, (nu - tau * m) / s, lower=True, check_finite=False)
    log_z = (
        log_zhat.sum()
        + 0.5 * np.log1p(cav_var * tau).sum()
        + ((tau * cav_mu - nu) ** 2 / (2 * tau * (1 + tau * cav_var))).sum()
        - np.log(np.diag(L)).sum()
        - 0.5 * a @ a
    )
    alpha = s * scipy.linalg.solve_triangular(L, a, lower=True, trans="T", check_finite=False)
    L_inv, info = scipy.linalg.lapack.dtrtri(L, lower=1)
    if info != 0:
        raise ConvergenceError("EP: the Cholesky factor of I + T^½ Σ T^½ is singular")
    # A = T̃^½ B⁻¹ T̃^½ = (L⁻¹T̃^½)'(L⁻¹T̃^½);  AΣ = T̃^½ B⁻¹ (B - I) T̃^-½
    trace_a_sigma = m.size - np.einsum("ij,ij->", L_inv, L_inv)
    trace_a = float(np.einsum("ij,ij,j->", L_inv, L_inv, tau))
    return EPEvidence(float(log_z), alpha, float(trace_a_sigma), trace_a, sweeps)


def probit_sites(y: np.ndarray) -> Tilted:
    """Tilted moments of the probit sites ``Φ((2y_i - 1) f_i)`` for a 0/1 ``y`` (n,)."""
    y_sign = 2.0 * np.asarray(y, dtype=np.float64) - 1.0
    return partial(_tilted, y_sign)


def ep_marginal(
    y: np.ndarray, X: np.ndarray, K: np.ndarray, beta: np.ndarray, s2: float, state: EPState
) -> EPMarginal:
    """``log Z_EP`` of the probit model at ``(β, σg²)`` after running EP (warm-started).

    With ``Σ = σg²K`` the gradient in ``log σg²`` is
    ``½ σg² (α'Kα - tr(AK)) = ½ (σg² α'Kα - tr(AΣ))``.
    """
    ev = ep_evidence(probit_sites(y), X @ beta, s2 * K, state)
    grad_log_s2 = 0.5 * (s2 * ev.alpha @ K @ ev.alpha - ev.trace_a_sigma)
    return EPMarginal(ev.log_z, X.T @ ev.alpha, float(grad_log_s2), ev.sweeps)


@dataclass(frozen=True)
class EPFit:
    """Maximum of ``log Z_EP`` over ``β`` and the variances.

    ``sigma2_e`` is the residual variance on the latent scale: 1 by
    definition for the probit's liability, estimated for a Poisson trait.
    """

    beta: np.ndarray
    sigma2_g: float
    log_z: float
    evaluations: int
    converged: bool
    message: str
    sigma2_e: float = 1.0

    @property
    def h2(self) -> float:
        """Latent-scale (for the probit: liability-scale) heritability ``σg² / (σg² + σe²)``."""
        return self.sigma2_g / (self.sigma2_g + self.sigma2_e)


def maximise_evidence(
    marginal, theta0: np.ndarray, p: int, bounds_log_s2: tuple[float, float], maxiter: int
) -> tuple[scipy.optimize.OptimizeResult, int]:
    """L-BFGS-B on ``-log Z_EP`` over ``θ = (β, log variances)``, and the evaluations it took.

    ``marginal(θ)`` returns ``(log Z_EP, its gradient in θ)``; β is free, each
    log variance within ``bounds_log_s2``.
    """
    evaluations = 0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        log_z, grad = marginal(theta)
        return -log_z, -grad

    result = scipy.optimize.minimize(
        objective, theta0, jac=True, method="L-BFGS-B",
        bounds=[(None, None)] * p + [bounds_log_s2] * (len(theta0) - p),
        options={"maxiter": maxiter, "ftol": 1e-10, "gtol": 1e-6},
    )  # fmt: skip
    return result, evaluations


def _start(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Probit intercept at the case fraction, other coefficients 0."""
    beta = np.zeros(X.shape[1])
    p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    intercept = np.flatnonzero(np.all(X == 1.0, axis=0))
    if intercept.size:
        from scipy.stats import norm

        beta[intercept[0]] = norm.ppf(p)
    return beta


def fit_probit_ep(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    *,
    bounds_log_s2: tuple[float, float] = (-9.0, 4.0),
) -> EPFit:
    """Maximise the EP marginal likelihood over ``β`` and ``log σg²`` (L-BFGS-B, exact gradient).

    ``y`` (n,) 0/1 with both values present, ``X`` (n, p), ``K`` (n, n) the kinship.
    """
    y = np.asarray(y, dtype=np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("the EP probit model needs a 0/1 trait")
    if y.min() == y.max():
        raise DataError(
            f"the binary trait has no {'cases' if y.max() == 0 else 'controls'}: "
            "σg² is not identified"
        )
    n, p = X.shape
    state = EPState(np.full(n, 0.5), np.zeros(n))

    def marginal(theta: np.ndarray) -> tuple[float, np.ndarray]:
        out = ep_marginal(y, X, K, theta[:p], float(np.exp(theta[p])), state)
        return out.log_z, np.append(out.grad_beta, out.grad_log_s2)

    theta0 = np.append(_start(y, X), np.log(0.3))
    result, evaluations = maximise_evidence(marginal, theta0, p, bounds_log_s2, maxiter=200)
    s2 = float(np.exp(result.x[p]))
    return EPFit(
        result.x[:p], s2, -float(result.fun), evaluations, bool(result.success), str(result.message)
    )
