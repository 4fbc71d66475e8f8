"""Maximum-likelihood fit of the heteroskedastic Gaussian model of :mod:`.woodbury`.

β is profiled out; φ = (γ, θ) is found by :func:`.newton.minimize_bounded`
with the profiled gradient and, for the Newton steps, the Hessian of
the profiled objective, which is the Schur complement

    H_φφ - H_φβ H_ββ⁻¹ H_βφ

of the full Hessian at β̂(φ).  The covariance of all estimates (β, γ, θ) is
the inverse observed information, 2 H⁻¹ for the Hessian H of
F = -2 log-likelihood, over the parameters not held at a bound (zero
standard deviations get no standard error).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..optsummary import OptSummary
from .newton import minimize_bounded
from .woodbury import HeteroskedasticGaussian

__all__ = ["GaussianFit", "default_start", "fit_gaussian", "inverse_information"]


@dataclass
class GaussianFit:
    """Estimates of (β, γ, θ) with their covariance.

    Attributes
    ----------
    lik : HeteroskedasticGaussian
    beta : ndarray (p,)
    phi : ndarray (d + ntheta,)
        (γ, θ): log-variance coefficients, then covariance-factor elements.
    objective : float
        -2 log-likelihood at the estimates.
    vcov : ndarray (p + d + ntheta,) * 2
        Covariance of (β, γ, θ); NaN rows and columns for parameters on a bound.
    converged : bool
    nfev : int
    optsum : OptSummary
        The Newton search over φ (objective F = -2 log-likelihood, β profiled),
        recorded as the core's fits are.
    """

    lik: HeteroskedasticGaussian
    beta: np.ndarray
    phi: np.ndarray
    objective: float
    vcov: np.ndarray
    converged: bool
    nfev: int
    optsum: OptSummary | None = field(default=None, repr=False)

    @property
    def gamma(self) -> np.ndarray:
        return self.lik.split(self.phi)[0]

    @property
    def theta(self) -> np.ndarray:
        return self.lik.split(self.phi)[1]

    @property
    def stderror(self) -> np.ndarray:
        """Standard errors of (β, γ, θ) in that order."""
        return np.sqrt(np.diag(self.vcov))

    @property
    def loglikelihood(self) -> float:
        return -0.5 * self.objective


def default_start(lik: HeteroskedasticGaussian) -> np.ndarray:
    """φ from ordinary least squares: constant log variance, every random-effect sd equal to the residual sd.

    γ solves D γ ≈ log s² in least squares (γ = (log s², 0, ...) when D
    has an intercept), as lme4 starts from relative covariance factors of I.
    """
    beta, *_ = np.linalg.lstsq(lik.X, lik.y, rcond=None)
    e = lik.y - lik.X @ beta
    s2 = max(float(e @ e) / max(lik.nobs - lik.X.shape[1], 1), 1e-12)
    gamma, *_ = np.linalg.lstsq(lik.D, np.full(lik.nobs, np.log(s2)), rcond=None)
    theta = np.where(lik.pattern.is_diagonal(), np.sqrt(s2), 0.0)
    return np.concatenate([gamma, theta])


def profiled_hessian(lik: HeteroskedasticGaussian, phi: np.ndarray) -> np.ndarray:
    """Hessian of φ ↦ F(β̂(φ), φ): the Schur complement of the β block."""
    beta = lik.evaluate(phi).beta
    H = lik.hessian(phi, beta)
    p = len(beta)
    return H[p:, p:] - H[p:, :p] @ np.linalg.solve(H[:p, :p], H[:p, p:])


def inverse_information(info: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The inverse of ``info`` over the free parameters; NaN rows and columns elsewhere."""
    k = len(info)
    cov = np.full((k, k), np.nan)
    idx = np.flatnonzero(free)
    try:
        cov[np.ix_(idx, idx)] = np.linalg.inv(info[np.ix_(idx, idx)])
    except np.linalg.LinAlgError:
        warnings.warn(
            "the information matrix is singular: standard errors are not available", stacklevel=3
        )
    return cov


def fit_gaussian(
    lik: HeteroskedasticGaussian,
    start: np.ndarray | None = None,
    monitor: Callable[[np.ndarray, float], None] | None = None,
) -> GaussianFit:
    """Maximum-likelihood estimates of (β, γ, θ) and their covariance.

    Parameters
    ----------
    start : ndarray (d + ntheta,), optional
        Starting φ; :func:`default_start` when omitted.
    monitor : callable, optional
        Called with (φ, F) after each evaluation of the objective.
    """
    phi0 = default_start(lik) if start is None else np.asarray(start, dtype=float)
    fg = lik.objective_gradient if monitor is None else _monitored(lik.objective_gradient, monitor)
    # Saddle probes for standard deviations on their bound: 1% of the residual sd.
    sd = float(np.exp(0.5 * np.mean(lik.D @ phi0[: lik.ngamma])))
    probe = np.concatenate([np.full(lik.ngamma, 0.01), np.full(lik.ntheta, 0.01 * sd)])
    opt = minimize_bounded(fg, partial(profiled_hessian, lik), phi0, lik.lower, probe=probe)
    beta = lik.evaluate(opt.x).beta
    free = np.concatenate([np.ones(len(beta), dtype=bool), opt.free])
    # F = -2 log L, so the observed information is H / 2.
    vcov = inverse_information(0.5 * lik.hessian(opt.x, beta), free)
    return GaussianFit(lik, beta, opt.x, opt.fun, vcov, opt.converged, opt.nfev, opt.optsum)


def _monitored(fg, monitor):
    def wrapped(phi: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = fg(phi)
        monitor(phi, value)
        return value, grad

    return wrapped
