"""Bounded minimisation with exact first and second derivatives (projected Newton).

The variance models here have few parameters (up to a few dozen) and an
exact Hessian, so Newton's method is the natural optimiser: it converges
quadratically near the optimum, which agreement to 1e-4 in coefficients
of size 10² needs, and it is invariant to the parameters' scales.

Each iteration (Bertsekas, 1982):

1. parameters on their lower bound whose gradient points outwards are held
   there (the active set); the others are free;
2. the free block of the Hessian is made positive definite by replacing its
   eigenvalues λ by max(|λ|, 1e-8 max|λ|), so the step is a descent
   direction even where the objective is not convex;
3. the step is halved until the projected point x(t) = max(x + t·step, lower)
   satisfies Armijo's condition f(x(t)) ≤ f(x) + 10⁻⁴ ∇f'(x(t) - x).

It stops after a step whose Newton decrement -∇f'·step (the predicted
decrease of f, independent of the parameters' scales) was below
``ftol · max(1, |f|)``: relative, because near the optimum f and its
gradient are known only to rounding error relative to |f| (an objective of
10³ carries noise of ~10⁻¹³·10³), and an absolute test below that noise
would take ever-smaller "improving" steps until ``maxiter``.

Iterates that converge to a bound are put on it at the end.  A point on a
bound can be a saddle rather than a minimum: with a Cholesky
parametrisation, a zero column of a covariance factor has zero gradient
in every direction that would revive it, and only the (negative)
curvature shows that it should.  So each parameter that ends on its bound
is probed: if moving it inwards by a small step lowers f, Newton's method
restarts from there.

Every evaluation is recorded, as the core's NLopt fits are, in an
:class:`~mixedmodels.optsummary.OptSummary` (``optimizer="newton"``) through
:func:`mixedmodels.optimize.record_search`; the result's ``optsum`` holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..optimize import record_search
from ..optsummary import OptSummary

__all__ = ["Minimum", "free_parameters", "minimize_bounded"]

ObjectiveGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]
Hessian = Callable[[np.ndarray], np.ndarray]


@dataclass
class Minimum:
    """Where the minimisation ended.

    Attributes
    ----------
    x : ndarray
        The minimiser.
    fun : float
        The objective there.
    grad : ndarray
        Its gradient.
    free : ndarray of bool
        Parameters not held at their lower bound.
    nfev : int
        Evaluations of the objective and gradient (Hessians not counted).
    niter : int
        Newton iterations.
    decrement : float
        The last Newton decrement, the decrease of f still expected.
    converged : bool
        The decrement fell below the tolerance.
    optsum : OptSummary or None
        The record of the whole search (set by :func:`minimize_bounded`).
    """

    x: np.ndarray
    fun: float
    grad: np.ndarray
    free: np.ndarray
    nfev: int
    niter: int
    decrement: float
    converged: bool
    optsum: OptSummary | None = field(default=None, repr=False)


def free_parameters(x: np.ndarray, grad: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Parameters that may move: off their bound, or on it with the objective falling inwards."""
    return (x > lower) | (grad < 0)


def _safe(fg: ObjectiveGradient, x: np.ndarray) -> tuple[float, np.ndarray]:
    """fg(x), with an infinite value where the model cannot be evaluated (e.g. V not positive definite)."""
    try:
        f, g = fg(x)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError):
        return np.inf, np.full_like(x, np.nan)
    return (f, g) if np.isfinite(f) and np.all(np.isfinite(g)) else (np.inf, g)


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """-|H|⁻¹g with H's eigenvalues replaced by max(|λ|, 1e-8 max|λ|)."""
    lam, U = np.linalg.eigh(0.5 * (H + H.T))
    size = np.abs(lam)
    size = np.maximum(size, 1e-8 * max(size.max(initial=0.0), 1e-300))
    return -U @ ((U.T @ g) / size)


def minimize_bounded(
    fg: ObjectiveGradient,
    hess: Hessian,
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    maxiter: int = 200,
    ftol: float = 1e-12,
    probe: np.ndarray | None = None,
) -> Minimum:
    """Minimise f over x ≥ lower (elementwise; -inf for unbounded parameters) from x0.

    Parameters
    ----------
    fg : callable
        x → (f(x), ∇f(x)).
    hess : callable
        x → ∇²f(x).
    x0, lower : ndarray (k,)
    maxiter : int
        Maximum number of Newton iterations.
    ftol : float
        Stop when the Newton decrement is below ``ftol · max(1, |f|)``.
    probe : ndarray (k,), optional
        Inward steps that test whether a parameter ending on its bound is at a
        saddle; by default 1e-3 times the parameter's starting magnitude (or 1e-3).
    """
    lower = np.asarray(lower, dtype=float)
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    if probe is None:
        probe = 1e-3 * np.where(x != 0, np.abs(x), 1.0)
    fitlog: list[tuple[np.ndarray, float]] = []
    logged = _logging(fg, fitlog)
    t0 = time.perf_counter()
    for _ in range(int(np.isfinite(lower).sum()) + 1):
        res = _settle_on_bounds(
            logged, _newton(logged, hess, x, lower, maxiter, ftol), lower, probe
        )
        x = _escape_bounds(logged, res, lower, probe)
        if x is None:
            break
    res.optsum = _record(res, x0, lower, fitlog, time.perf_counter() - t0, maxiter, ftol)
    return res


def _logging(fg: ObjectiveGradient, fitlog: list[tuple[np.ndarray, float]]) -> ObjectiveGradient:
    """``fg`` appending each evaluation ``(x, f)`` to ``fitlog``."""

    def logged(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fg(x)
        fitlog.append((np.array(x, dtype=float), float(f)))
        return f, g

    return logged


def _record(
    res: Minimum,
    x0: np.ndarray,
    lower: np.ndarray,
    fitlog: list,
    elapsed: float,
    maxiter: int,
    ftol: float,
) -> OptSummary:
    """The search's :class:`OptSummary`; ``returnvalue`` says why Newton's method stopped.

    ``FTOL_REACHED``: the Newton decrement fell below ``ftol · max(1, |f|)``
    (recorded as ``ftol_rel``); ``MAXITER_REACHED``: ``maxiter`` iterations (``maxfeval``
    counts evaluations and stays unlimited); ``ROUNDOFF_LIMITED``: no step
    lowered f, which is flat to rounding error there.
    """
    if res.converged:
        reason = "FTOL_REACHED"
    else:
        reason = "MAXITER_REACHED" if res.niter >= maxiter else "ROUNDOFF_LIMITED"
    start = np.maximum(np.asarray(x0, dtype=float), lower)
    optsum = OptSummary(initial=start, lowerbd=lower, ftol_rel=ftol, ftol_abs=0.0)
    return record_search(optsum, "newton", fitlog, res.x, res.fun, reason, elapsed)


def _settle_on_bounds(
    fg: ObjectiveGradient, res: Minimum, lower: np.ndarray, probe: np.ndarray
) -> Minimum:
    """Put parameters within 1e-6 probes of their bound on it, if f does not rise beyond rounding.

    Newton's iterates approach a minimum on the bound from inside (in the limit,
    not exactly), where a standard deviation of zero should be reported as zero.
    """
    near = (res.x > lower) & (res.x - lower < 1e-6 * probe)
    if not near.any():
        return res
    trial = np.where(near, lower, res.x)
    f, g = _safe(fg, trial)
    if f > res.fun + 1e-12 * max(1.0, abs(res.fun)):
        return res
    free = free_parameters(trial, g, lower)
    return Minimum(trial, f, g, free, res.nfev + 1, res.niter, res.decrement, res.converged)


def _newton(
    fg: ObjectiveGradient,
    hess: Hessian,
    x: np.ndarray,
    lower: np.ndarray,
    maxiter: int,
    ftol: float,
) -> Minimum:
    """Projected Newton iterations from x (see the module docstring)."""
    f, g = _safe(fg, x)
    if not np.isfinite(f):
        raise FloatingPointError("the objective cannot be evaluated at the starting values")
    nfev, it, decrement = 1, 0, np.inf
    tol = ftol * max(1.0, abs(f))
    for it in range(1, maxiter + 1):  # noqa: B007 - the count is returned
        free = free_parameters(x, g, lower)
        step = _newton_step(hess(x)[np.ix_(free, free)], g[free])
        decrement = float(-g[free] @ step)
        x_new, f_new, g_new, evals = _line_search(fg, x, f, g, free, step, lower)
        nfev += evals
        if x_new is None:  # no decrease along a descent direction: f is flat to rounding error
            break
        x, f, g = x_new, f_new, g_new
        if decrement < tol:  # this last step took x to about the square of that precision
            break
    free = free_parameters(x, g, lower)
    return Minimum(x, f, g, free, nfev, it, decrement, decrement < 1e3 * tol)


def _escape_bounds(
    fg: ObjectiveGradient, res: Minimum, lower: np.ndarray, probe: np.ndarray
) -> np.ndarray | None:
    """A point with lower f next to a bound where ``res`` stopped, or None if there is none."""
    for i in np.flatnonzero(res.x <= lower):
        trial = res.x.copy()
        trial[i] += probe[i]
        f, _ = _safe(fg, trial)
        if f < res.fun - 1e-10 * max(1.0, abs(res.fun)):
            return trial
    return None


def _line_search(fg: ObjectiveGradient, x, f, g, free, step, lower, halvings: int = 40):
    """Armijo backtracking along the projected path; (None, ...) if no decrease is found."""
    t = 1.0
    for evals in range(1, halvings + 1):
        trial = x.copy()
        trial[free] = np.maximum(x[free] + t * step, lower[free])
        f_new, g_new = _safe(fg, trial)
        if f_new <= f + 1e-4 * float(g @ (trial - x)):
            return trial, f_new, g_new, evals
        t *= 0.5
    return None, f, g, halvings
