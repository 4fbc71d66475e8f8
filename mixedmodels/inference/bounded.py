"""Minimise a function of a few parameters within box bounds (NLopt's BOBYQA).

The profiles re-optimise the parameters that are not held fixed; those may
have upper bounds (correlations in [-1, 1]), which the core optimiser does
not take, and very different scales (a correlation next to a standard
deviation of 25), so the search runs on ``x / scale``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["minimize_bounded"]


class _Scaled:
    """``fun`` of z = x / scale for NLopt, remembering the best point and the worst finite value."""

    def __init__(self, fun: Callable[[np.ndarray], float], scale: np.ndarray, x0: np.ndarray):
        self.fun, self.scale = fun, scale
        self.worst = -np.inf
        self.best = (np.inf, x0.copy())

    def __call__(self, z: np.ndarray, grad: np.ndarray) -> float:
        x = z * self.scale
        value = float(self.fun(x))
        if not np.isfinite(value):  # NaN or ∞ would wreck BOBYQA's quadratic model
            return self.worst if np.isfinite(self.worst) else 1e300
        self.worst = max(self.worst, value)
        if value < self.best[0]:
            self.best = (value, x.copy())
        return value


def minimize_bounded(
    fun: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    scale: np.ndarray,
    *,
    step: float = 0.1,
    ftol_abs: float = 1e-10,
    maxeval: int = 5000,
) -> tuple[float, np.ndarray]:
    """Minimum and minimiser of ``fun`` over lower <= x <= upper, starting at ``x0``.

    Parameters
    ----------
    fun : callable
        x of shape (m,) -> float.  Non-finite values are replaced by the
        largest finite value seen.
    x0, lower, upper, scale : ndarray, shape (m,)
        Start, bounds (may be infinite) and typical magnitudes (> 0).
    step : float
        Initial trust-region radius in units of ``scale``.
    """
    import nlopt

    x0 = np.clip(np.asarray(x0, float), lower, upper)
    if len(x0) == 0:
        return float(fun(x0)), x0
    scale = np.asarray(scale, float)
    objective = _Scaled(fun, scale, x0)
    opt = nlopt.opt(nlopt.LN_BOBYQA, len(x0))
    opt.set_lower_bounds(lower / scale)
    opt.set_upper_bounds(upper / scale)
    opt.set_min_objective(objective)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(1e-10)
    opt.set_maxeval(maxeval)
    opt.set_initial_step(_initial_step(x0 / scale, lower / scale, upper / scale, step))
    try:
        opt.optimize(x0 / scale)
    except nlopt.RoundoffLimited:
        pass  # the best point seen is as good as the arithmetic allows
    return objective.best


def _initial_step(z0: np.ndarray, lo: np.ndarray, hi: np.ndarray, step: float) -> np.ndarray:
    """A step that fits inside the bounds on at least one side of the start."""
    room = np.maximum(hi - z0, z0 - lo)
    return np.minimum(step, np.where(room > 0, 0.5 * room, step))
