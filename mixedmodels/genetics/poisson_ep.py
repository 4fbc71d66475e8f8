"""Expectation propagation for the Poisson (log link) GLMM with kinship and overdispersion.

Model, for individuals ``i = 1..n`` with counts ``y_i ∈ {0, 1, 2, ...}``:

.. math:: y_i \\mid f \\sim \\text{Poisson}(e^{f_i}), \\qquad f \\sim N(Xβ, Σ),
          \\quad Σ = σ_g^2 K + σ_e^2 I,

i.e. ``f = Xβ + g + e`` with ``g ~ N(0, σg² K)`` and an observation-level
``e ~ N(0, σe² I)`` for the overdispersion (limix's Poisson model); the
latent-scale heritability is ``h² = σg² / (σg² + σe²)``.

The sweep, ``log Z_EP`` and its gradient are those of :mod:`.ep`; only the
sites differ.  A Poisson site has no closed-form tilted moments, so they come
from Gauss–Hermite quadrature *adapted to each tilted density*
``p_i(f) ∝ Poisson(y_i; e^f) N(f; μ₋, σ₋²)``: centred at its mode ``f̂``
(Newton's method on the concave ``log p_i``) and scaled by its curvature there,
``ŝ = (e^{f̂} + 1/σ₋²)^{-½}``, so that a few dozen nodes suffice whether the
cavity is broad or the count large.  The sums are formed by log-sum-exp and
``log y!`` by ``lgamma``, so nothing overflows.

With ``Σ = σg²K + σe²I`` the gradient of ``log Z_EP`` (:class:`.ep.EPEvidence`) is
``∂/∂β = X'α``, ``∂/∂log σg² = ½(σg² α'Kα - tr(AΣ) + σe² tr A)`` and
``∂/∂log σe² = ½ σe² (α'α - tr A)``; ``(β, log σg², log σe²)`` maximise it by
L-BFGS-B.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.special import gammaln, logsumexp

from mixedmodels.errors import DataError
from mixedmodels.genetics.ep import EPFit, EPState, Tilted, ep_evidence, maximise_evidence
from mixedmodels.quadrature import gauss_hermite

__all__ = ["PoissonEPFit", "PoissonEPMarginal", "fit_poisson_ep", "poisson_ep_marginal"]

#: Nodes of the adaptive Gauss–Hermite rule for the tilted moments.
NODES = 64


def _tilted_mode(y: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Mode of ``y f - e^f - (f - μ)²/(2σ²)`` (all (n,)) by Newton's method.

    The function is concave with a curvature that grows with ``f``, so Newton
    steps started to the right of the mode approach it monotonically from the
    right.  The mode is below ``μ + σ²y`` (the derivative is ``y - e^f - (f-μ)/σ²``)
    and, when above ``μ``, below ``log y``: the start is the smaller bound.
    """
    with np.errstate(divide="ignore"):
        f = np.minimum(mu + var * y, np.maximum(mu, np.log(y)))
    for _ in range(100):
        ef = np.exp(f)
        step = (y - ef - (f - mu) / var) / (ef + 1.0 / var)
        f = f + step
        if np.abs(step).max() < 1e-11 * (1.0 + np.abs(f).max()):
            break
    return f


def poisson_tilted(
    y: np.ndarray, cav_mu: np.ndarray, cav_var: np.ndarray, nodes: int = NODES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``log Ẑ``, mean and variance of ``Poisson(y; e^f) N(f; μ₋, σ₋²)``, all (n,).

    With ``f = f̂ + ŝ z`` the integral is
    ``Ẑ = ŝ √(2π) E_φ[exp(log p(f̂ + ŝZ) + Z²/2)]`` for ``Z ~ N(0, 1)``, a
    ``nodes``-point Gauss–Hermite sum taken in logs.
    """
    rule = gauss_hermite(nodes)
    mode = _tilted_mode(y, cav_mu, cav_var)
    scale = 1.0 / np.sqrt(np.exp(mode) + 1.0 / cav_var)
    f = mode[:, None] + scale[:, None] * rule.z[None, :]
    with np.errstate(over="ignore"):  # e^f = inf far in the right tail: weight 0
        log_lik = y[:, None] * f - np.exp(f) - gammaln(y + 1.0)[:, None]
    log_prior = -0.5 * (f - cav_mu[:, None]) ** 2 / cav_var[:, None] - 0.5 * np.log(
        2 * np.pi * cav_var[:, None]
    )
    terms = log_lik + log_prior + 0.5 * rule.z**2 + np.log(rule.w)
    log_sum = logsumexp(terms, axis=1)
    weights = np.exp(terms - log_sum[:, None])
    z_mean = weights @ rule.z
    z_var = np.einsum("ij,ij->i", weights, (rule.z[None, :] - z_mean[:, None]) ** 2)
    log_z = log_sum + np.log(scale) + 0.5 * np.log(2 * np.pi)
    return log_z, mode + scale * z_mean, scale**2 * z_var


def poisson_sites(y: np.ndarray, nodes: int = NODES) -> Tilted:
    """The tilted-moment function of :func:`.ep.run_ep` for counts ``y`` (n,)."""
    return partial(poisson_tilted, np.asarray(y, dtype=np.float64), nodes=nodes)


@dataclass(frozen=True)
class PoissonEPMarginal:
    """``log Z_EP`` and its gradient in ``β``, ``log σg²`` and ``log σe²``."""

    log_z: float
    grad_beta: np.ndarray
    grad_log_s2g: float
    grad_log_s2e: float
    sweeps: int


def poisson_ep_marginal(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    beta: np.ndarray,
    s2g: float,
    s2e: float,
    state: EPState,
) -> PoissonEPMarginal:
    """``log Z_EP`` at ``(β, σg², σe²)`` after running EP (warm-started from ``state``).

    ``y`` (n,) counts, ``X`` (n, p), ``K`` (n, n).
    """
    Sigma = s2g * K
    Sigma[np.diag_indices_from(Sigma)] += s2e
    ev = ep_evidence(poisson_sites(y), X @ beta, Sigma, state)
    grad_g = 0.5 * (s2g * ev.alpha @ K @ ev.alpha - ev.trace_a_sigma + s2e * ev.trace_a)
    grad_e = 0.5 * s2e * (ev.alpha @ ev.alpha - ev.trace_a)
    return PoissonEPMarginal(ev.log_z, X.T @ ev.alpha, float(grad_g), float(grad_e), ev.sweeps)


PoissonEPFit = EPFit
"""A Poisson trait's fit: ep's :class:`~mixedmodels.genetics.ep.EPFit` with ``sigma2_e`` estimated."""


def check_counts(y: np.ndarray) -> None:
    """Non-negative whole numbers, not all zero."""
    if y.ndim != 1 or not np.isfinite(y).all() or (y < 0).any() or (y != np.round(y)).any():
        raise DataError("a poisson trait must be one column of non-negative whole counts (no NaN)")
    if y.max() == 0:
        raise DataError(f"the count trait is 0 for all {y.size} individuals: σg² is not identified")


def _start(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``(β, log σg², log σe²)`` from the overdispersion of the counts.

    For ``f ~ N(η, v)``: ``E y = e^{η + v/2}``, ``Var y = E y + (E y)²(e^v - 1)``; the
    moment estimate of ``v`` is split equally between the two components.
    """
    mean, var = float(y.mean()), float(y.var())
    v = float(np.clip(np.log1p(max(var - mean, 0.0) / mean**2), 0.1, 3.0))
    beta = np.zeros(X.shape[1])
    intercept = np.flatnonzero(np.all(X == 1.0, axis=0))
    if intercept.size:
        beta[intercept[0]] = np.log(mean) - v / 2
    return np.append(beta, [np.log(v / 2), np.log(v / 2)])


def fit_poisson_ep(
    y: np.ndarray,
    X: np.ndarray,
    K: np.ndarray,
    *,
    bounds_log_s2: tuple[float, float] = (-9.0, 4.0),
) -> PoissonEPFit:
    """Maximise the EP marginal likelihood over ``β``, ``log σg²``, ``log σe²`` (L-BFGS-B).

    ``y`` (n,) counts, ``X`` (n, p), ``K`` (n, n) the kinship.  The exact
    gradient is used; EP is warm-started from the previous evaluation's sites.
    """
    y = np.asarray(y, dtype=np.float64)
    check_counts(y)
    n, p = X.shape
    state = EPState(np.full(n, 0.5), np.zeros(n))

    def marginal(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s2g, s2e = np.exp(theta[p:])
        out = poisson_ep_marginal(y, X, K, theta[:p], s2g, s2e, state)
        return out.log_z, np.append(out.grad_beta, [out.grad_log_s2g, out.grad_log_s2e])

    result, evaluations = maximise_evidence(marginal, _start(y, X), p, bounds_log_s2, maxiter=300)
    s2g, s2e = (float(v) for v in np.exp(result.x[p:]))
    return EPFit(
        result.x[:p], s2g, -float(result.fun), evaluations, bool(result.success),
        str(result.message), sigma2_e=s2e,
    )  # fmt: skip
