"""Is the optimum reached?  A cheap post-fit check, automatic restarts, and true warnings.

BOBYQA stops when its quadratic model of the objective says it cannot do
better, which on hard problems (large data with random slopes, many
uncorrelated terms, components near zero) can be far from the optimum.  After
a fit, :func:`ensure_converged` looks at the objective around the returned
point x̂ by finite differences along each coordinate,

* the forward slope dᵢ = (f(x̂ + hᵢeᵢ) − f̂)/hᵢ = gᵢ + Hᵢᵢhᵢ/2 + O(hᵢ²),
  inward at a lower bound; where it exceeds the gradient tolerance, the
  central gradient and curvature
  ``gᵢ ≈ (f(x̂ + hᵢeᵢ) − f(x̂ − hᵢeᵢ)) / 2hᵢ``,
  ``Hᵢᵢ ≈ (f(x̂ + hᵢeᵢ) − 2f̂ + f(x̂ − hᵢeᵢ)) / hᵢ²``;
* the predicted decrease of a Newton step along each coordinate,
  ``gᵢ² / 2Hᵢᵢ``, and the scaled gradient ``gᵢ / Hᵢᵢ`` (the diagonal form
  of lme4's ``H⁻¹g``): how far, in the parameter's own units, the optimum
  is from x̂;
* the boundary: a component on its bound whose inward derivative is
  negative could still decrease the objective (not converged); one whose
  inward derivative is positive is a boundary optimum (a singular fit).

This costs n to 2n evaluations of the objective for n parameters (one per
coordinate where the slope is already below tolerance).  When the check
fails, the optimizer is restarted from x̂ with fresh steps (lme4's
``restart_edge`` idea, generalised): BOBYQA with the original initial steps,
then Nelder–Mead, then NEWUOA's bound-constrained variant, each from the best
point so far, until the check passes or two consecutive runs agree.  A
:class:`~mixedmodels.errors.ConvergenceWarning` is issued only if, after the
restarts, the optimum still looks unreached or not identified (a flat
direction); never for a converged fit.  A boundary optimum (a singular fit)
is recorded (``optsum.convergence == "boundary"``) but not warned about
here: the model's own singular-fit notice says which component is zero.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConvergenceWarning
from .optimize import minimize
from .optsummary import OptSummary

__all__ = ["RESTART_OPTIMIZERS", "Check", "check_optimum", "ensure_converged"]

RESTART_OPTIMIZERS = ("LN_BOBYQA", "LN_NELDERMEAD", "LN_NEWUOA_BOUND")
"""Algorithms of successive restarts (the first with the original initial steps)."""

STEP = 1e-5
"""Finite-difference step relative to max(|xᵢ|, 1) (the objective is accurate to about 1e-14 relative)."""

DECREASE_TOL = 1e-7
"""Restart if a Newton step is predicted to lower the objective by more than this times max(|f|, 1)."""

SCALED_GRADIENT_TOL = 1e-3
"""Warn if |gᵢ / Hᵢᵢ| exceeds this times max(|xᵢ|, 1) after the restarts."""

ROUNDING = 1e-13
"""Relative accuracy assumed of an objective value (a second difference below it is noise)."""


@dataclass
class Check:
    """Finite-difference view of the objective around x̂ (all arrays have one entry per parameter).

    ``at_bound`` marks components on their lower bound, where ``gradient``
    is the one-sided inward slope.  ``curvature`` is NaN where it was not
    needed (a forward slope below the gradient tolerance: the coordinate is
    converged whatever its curvature).
    """

    x: np.ndarray
    fmin: float
    gradient: np.ndarray
    curvature: np.ndarray
    at_bound: np.ndarray
    flat: np.ndarray
    feval: int

    @property
    def scale(self) -> float:
        return max(abs(self.fmin), 1.0)

    @property
    def tolerance(self) -> np.ndarray:
        """Gradient below which a coordinate is converged: a step of the parameter's own size gains < 1e-7 |f|."""
        return gradient_tolerance(self.x, self.fmin)

    @property
    def scaled_gradient(self) -> np.ndarray:
        """gᵢ / Hᵢᵢ: how far, in the parameter's units, a Newton step would move (0 at a boundary optimum)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(self.curvature > 0, self.gradient / self.curvature, np.nan)
        return np.where(self.singular | (np.abs(self.gradient) <= self.tolerance), 0.0, out)

    @property
    def leaves_bound(self) -> np.ndarray:
        """Components on the bound along which moving inward lowers the objective."""
        return self.at_bound & (self.gradient < -self.tolerance)

    @property
    def singular(self) -> np.ndarray:
        """Components on the bound at a boundary optimum."""
        return self.at_bound & ~self.leaves_bound

    @property
    def gains(self) -> np.ndarray:
        """Predicted decrease gᵢ²/2Hᵢᵢ of a Newton step along each interior coordinate (inf if Hᵢᵢ ≤ 0)."""
        g, H = self.gradient, self.curvature
        moving = ~self.at_bound & (np.abs(g) > self.tolerance)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(H > 0, g**2 / (2.0 * H), np.inf)
        return np.where(moving, gain, 0.0)

    @property
    def decrease(self) -> float:
        return float(self.gains.sum())

    @property
    def passed(self) -> bool:
        return self.decrease <= DECREASE_TOL * self.scale and not self.leaves_bound.any()


def gradient_tolerance(x: np.ndarray, fmin: float) -> np.ndarray:
    """|gᵢ| below 1e-7 max(|f|, 1) / max(|xᵢ|, 1): moving xᵢ by its own size would gain less than the tolerance."""
    return DECREASE_TOL * max(abs(fmin), 1.0) / np.maximum(np.abs(np.asarray(x, dtype=float)), 1.0)


# ---- the check -----------------------------------------------------------------------------
def check_optimum(
    objective: Callable[[np.ndarray], float],
    x: np.ndarray,
    fmin: float,
    lower: np.ndarray,
    block: slice | None = None,
) -> Check:
    """Gradient (and where needed curvature) of ``objective`` along each coordinate at ``x``.

    ``fmin`` is the objective at ``x`` (known from the fit).  With steps
    hᵢ = 1e-5 max(|xᵢ|, 1), each coordinate costs one evaluation, the
    forward (inward, at a bound) slope dᵢ = (f(x̂ + hᵢeᵢ) − f̂)/hᵢ = gᵢ + Hᵢᵢhᵢ/2.
    If |dᵢ| is below the gradient tolerance the coordinate is converged:
    either gᵢ is small, or gᵢ ≈ −Hᵢᵢhᵢ/2 and the optimum along it is
    within hᵢ of x̂.  Otherwise a second evaluation at x̂ − hᵢeᵢ gives the
    central gradient and the curvature; where that curvature is not
    clearly positive (lost in rounding, or in the noise PIRLS's tolerance
    leaves in a GLMM's objective) both are measured again over a 100 times
    longer step.  Where the change in f is below the objective's rounding,
    one evaluation over the longer step measures the curvature.
    At a bound one slope decides: negative means the fit can leave the
    bound.  A coordinate along which f does not change measurably, even
    over the longer step, is flat.

    The coordinates of ``block`` (the GLMM's whitened β, where the
    objective is close to a quadratic of curvature 2I that BOBYQA models
    well) are probed together, along one direction: 2 evaluations in all.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    h = STEP * np.maximum(np.abs(x), 1.0)
    at_bound = np.isfinite(lower) & (x - lower < h)
    tol, rounding = gradient_tolerance(x, fmin), ROUNDING * max(abs(fmin), 1.0)
    g, H, flat = np.empty(n), np.full(n, np.nan), np.zeros(n, dtype=bool)
    inblock = np.zeros(n, dtype=bool)
    if block is not None:
        inblock[block] = True
    feval = 0
    for i in np.flatnonzero(~inblock):
        g[i], H[i], flat[i], used = _coordinate(
            objective, x, fmin, i, h[i], at_bound[i], tol[i], rounding
        )
        feval += used
    if inblock.any():
        g[inblock], H[inblock] = _along_block(objective, x, fmin, inblock)
        feval += 2
    return Check(x, float(fmin), g, H, at_bound, flat, feval)


def _coordinate(
    objective, x, fmin, i, h, at_bound, tol, rounding
) -> tuple[float, float, bool, int]:
    """Slope, curvature (NaN if not needed), flatness and evaluations used along coordinate i."""
    f1 = objective(_moved(x, i, h))
    g = (f1 - fmin) / h
    if at_bound:
        return g, np.nan, False, 1
    if abs(g) > tol:
        g, H = _central(objective, x, fmin, i, h, f1)
        if H * h**2 >= 10.0 * rounding:
            return g, H, False, 2
        # a curvature lost in rounding, or negative: PIRLS's tolerance can make f noisier than assumed
        g, H = _central(objective, x, fmin, i, 100.0 * h)
        return g, H, False, 4
    elif abs(f1 - fmin) > rounding:
        return g, np.nan, False, 1
    H, change = _long_step(objective, x, fmin, i, 100.0 * h, g)
    return g, H, abs(change) < 10.0 * rounding, 2


def _along_block(
    objective, x: np.ndarray, fmin: float, inblock: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences along one fixed pseudo-random unit direction v of the block (2 evaluations).

    Returns per-coordinate gᵢ = (gᵀv) vᵢ and Hᵢᵢ = vᵀHv: their Newton gain
    Σ gᵢ²/2Hᵢᵢ is the gain (gᵀv)²/2vᵀHv along v.
    """
    v = np.random.default_rng(20).standard_normal(int(inblock.sum()))
    v /= np.linalg.norm(v)
    # a long step: the block's curvature is O(1), whose second difference over 1e-5 would be rounding
    h = 100.0 * STEP * max(float(np.max(np.abs(x[inblock]), initial=0.0)), 1.0)
    step = np.zeros_like(x)
    step[inblock] = h * v
    fp, fm = objective(x + step), objective(x - step)
    slope, curvature = (fp - fm) / (2.0 * h), (fp - 2.0 * fmin + fm) / h**2
    return slope * v, np.full(len(v), curvature)


def _long_step(
    objective, x: np.ndarray, f0: float, i: int, h: float, g: float
) -> tuple[float, float]:
    """Curvature from one evaluation at x + h eᵢ given the slope g: H ≈ 2(f₁ − f₀ − g h)/h²; also f₁ − f₀."""
    change = objective(_moved(x, i, h)) - f0
    return 2.0 * (change - g * h) / h**2, change


def _central(
    objective, x: np.ndarray, f0: float, i: int, h: float, f_plus: float | None = None
) -> tuple[float, float]:
    """Central first and second differences along coordinate i (``f_plus`` = f(x + h eᵢ) if known)."""
    f1 = objective(_moved(x, i, h)) if f_plus is None else f_plus
    f2 = objective(_moved(x, i, -h))
    return (f1 - f2) / (2.0 * h), (f1 - 2.0 * f0 + f2) / h**2


def _moved(x: np.ndarray, i: int, step: float) -> np.ndarray:
    out = x.copy()
    out[i] += step
    return out


# ---- coordinates ---------------------------------------------------------------------------
def _coordinates(
    to_params: Callable[[np.ndarray], np.ndarray] | None, n: int
) -> Callable[[np.ndarray], np.ndarray]:
    """The map from the model's parameters p back to the optimizer's coordinates x, where p = c + Mx.

    ``minimize`` records the model's parameters; the check and the restarts
    work in x.  The maps the models use are affine (the GLMM's whitening of
    β), so M and c are read off ``to_params`` at 0 and the unit vectors.
    """
    if to_params is None:
        return lambda p: np.array(p, dtype=float)
    c = np.asarray(to_params(np.zeros(n)), dtype=float)
    M = np.column_stack([to_params(np.eye(n)[i]) - c for i in range(n)])
    return lambda p: np.linalg.solve(M, np.asarray(p, dtype=float) - c)


# ---- restarts ------------------------------------------------------------------------------
def _run_record(optsum: OptSummary, label: str) -> dict:
    return {
        "optimizer": optsum.optimizer,
        "start": label,
        "fmin": float(optsum.fmin),
        "feval": int(optsum.feval),
        "returnvalue": optsum.returnvalue,
    }


def _restart(
    objective,
    best: OptSummary,
    optimizer: str,
    x0: np.ndarray,
    initial_step: np.ndarray,
    to_params,
    maxfeval: int,
) -> OptSummary:
    """One more run of ``optimizer`` from x0 (optimizer coordinates), at most ``maxfeval`` evaluations."""
    run = OptSummary(
        best.final.copy(),
        best.lowerbd,
        optimizer=optimizer,
        ftol_rel=best.ftol_rel,
        ftol_abs=best.ftol_abs,
        xtol_rel=best.xtol_rel,
        xtol_abs=best.xtol_abs,
        initial_step=initial_step,
        maxfeval=maxfeval,
        maxtime=best.maxtime,
    )
    if optimizer == "LN_NELDERMEAD":  # NLopt's Nelder–Mead stops too early on ftol_rel alone
        run.xtol_rel = max(run.xtol_rel, 1e-10)
    return minimize(objective, run, start=x0, to_params=to_params)


def ensure_converged(
    objective: Callable[[np.ndarray], float],
    optsum: OptSummary,
    *,
    policy: OptSummary | None = None,
    names: Sequence[str] | None = None,
    final: bool = True,
    start: np.ndarray | None = None,
    to_params: Callable[[np.ndarray], np.ndarray] | None = None,
    block: slice | None = None,
) -> OptSummary:
    """Check the optimum ``minimize`` returned in ``optsum``; restart if it is not reached; warn if still not.

    Parameters
    ----------
    objective, start, to_params
        As given to :func:`~mixedmodels.optimize.minimize` (``start`` only
        fixes the dimension of the optimizer's coordinates).
    optsum
        The finished run's summary; updated in place with the best run's
        result, the check (``gradient``, ``curvature``,
        ``scaled_gradient``, ``convergence``), ``restarts`` and ``runs``.
    policy
        The summary holding the user's settings (``max_restarts``,
        ``check_convergence``) when ``optsum`` is a stage's copy; default
        ``optsum`` itself.  ``optsum.maxfeval``, when set, bounds the
        evaluations of all runs together (the check's own are not counted).
    names
        Parameter names for the warnings.
    block
        Coordinates (of the optimizer's) checked together along one
        direction; see :func:`check_optimum`.
    final
        False for a stage that another one refines (the GLMM's fast stage
        before the joint one): nothing is done, as the next stage's check
        covers the same parameters.
    """
    policy = optsum if policy is None else policy
    optsum.check_convergence, optsum.max_restarts = policy.check_convergence, policy.max_restarts
    _clear(optsum)
    if not (final and policy.check_convergence) or not np.all(np.isfinite(optsum.final)):
        return optsum
    n = len(optsum.initial if start is None else start)
    to_x = _coordinates(to_params, n)
    lower_x = _lower_in_x(optsum.lowerbd, n, to_params)

    def f(x):
        return float(objective(x))

    t0 = time.perf_counter()

    def check(point, value):
        return check_optimum(f, to_x(point), value, lower_x, block)

    state = _Runs(optsum, check(optsum.final, optsum.fmin))
    for _ in range(policy.max_restarts):
        plan = _next_run(state, lower_x, optsum.initial_step, _theta_part(n, block))
        budget = _budget(optsum.maxfeval, state.feval, state.runs[0]["feval"], n)
        if plan is None or budget == 0:
            break
        optimizer, x0, step, label = plan
        run = _restart(f, state.best, optimizer, x0, step, to_params, budget)
        if not state.add(run, label, check):
            break  # two consecutive runs agree
    state.record(optsum, time.perf_counter() - t0)
    _warn(state.check, names, n)
    return optsum


class _Runs:
    """The runs so far: the best one, its check, and the evaluations of all."""

    def __init__(self, first: OptSummary, check: Check):
        self.best, self.check, self.winner = first, check, 0
        self.runs = [_run_record(first, "initial")]
        self.fitlog, self.feval, self.check_feval = list(first.fitlog), first.feval, check.feval
        self.edge_tried = False

    def add(self, run: OptSummary, label: str, check) -> bool:
        """Take a restart's result; True if it lowered the best objective by more than the tolerance."""
        self.runs.append(_run_record(run, label))
        self.fitlog += run.fitlog
        self.feval += run.feval
        improved = run.fmin < self.best.fmin - DECREASE_TOL * max(abs(run.fmin), 1.0)
        if run.fmin < self.best.fmin:
            self.best, self.winner = run, len(self.runs) - 1
            self.check = check(run.final, run.fmin)
            self.check_feval += self.check.feval
        return improved

    def record(self, optsum: OptSummary, seconds: float) -> None:
        """Write the best run's result, the check and the history into ``optsum``."""
        if self.best is not optsum:
            optsum.final, optsum.fmin, optsum.returnvalue = (
                self.best.final.copy(),
                self.best.fmin,
                self.best.returnvalue,
            )
        optsum.fitlog, optsum.feval = self.fitlog, self.feval
        optsum.restarts, optsum.runs, optsum.winner = (
            len(self.runs) - 1,
            self.runs,
            self.runs[self.winner]["optimizer"],
        )
        optsum.gradient, optsum.curvature = self.check.gradient.copy(), self.check.curvature.copy()
        optsum.scaled_gradient, optsum.check_feval = self.check.scaled_gradient, self.check_feval
        optsum.convergence = _verdict(self.check)
        optsum.elapsed += seconds


def restart_optimizers(n: int) -> tuple[str, ...]:
    """:data:`RESTART_OPTIMIZERS` that NLopt accepts for ``n`` parameters (NEWUOA needs two or more)."""
    return tuple(o for o in RESTART_OPTIMIZERS if n >= 2 or o != "LN_NEWUOA_BOUND")


def _theta_part(n: int, block: slice | None) -> slice:
    """The leading coordinates that are θ: all of them, or those before ``block`` (β and the like)."""
    return slice(0, n if block is None or block.start is None else block.start)


def _next_run(state: _Runs, lower: np.ndarray, original_step: np.ndarray, theta: slice):
    """(optimizer, start, steps, label) of the next restart, or None when there is nothing to do.

    A failed check, or a restart that just improved the objective (to be
    confirmed), calls for the next algorithm in :data:`RESTART_OPTIMIZERS`
    from the best point.  A passed check on the boundary of a vector-valued
    term calls, once, for Nelder–Mead from the boundary pushed inward: such
    edges are often local optima that BOBYQA, restarted there, returns to.
    """
    check = state.check
    in_vector = np.zeros(len(lower), dtype=bool)
    in_vector[theta] = _in_vector_term(lower[theta])  # β's -∞ bounds are not off-diagonals
    edge = check.singular & in_vector
    if check.passed and edge.any() and not state.edge_tried:
        state.edge_tried = True
        x0, step = _edge_start(check.x, edge, original_step)
        return (
            "LN_NELDERMEAD",
            x0,
            step,
            "edge: Nelder-Mead from the boundary components pushed inward",
        )
    if check.passed and len(state.runs) == 1:
        return None
    k = sum(1 for r in state.runs[1:] if not r["start"].startswith("edge"))
    x0, step = _fresh_start(check.x, lower, original_step)
    choices = restart_optimizers(len(x0))
    return (
        choices[k % len(choices)],
        x0,
        step,
        "from the best point, fresh steps",
    )


def _in_vector_term(lower: np.ndarray) -> np.ndarray:
    """Bounded components next to an unbounded one: in lme4's order of θ, the diagonal of a vector-valued term.

    (θ lists each term's lower triangle by columns, so every diagonal
    element of a term with two or more columns neighbours an off-diagonal,
    whose bound is -∞; a scalar term's neighbours are other diagonals.)
    """
    unbounded = ~np.isfinite(lower)
    beside = np.zeros_like(unbounded)
    beside[1:] |= unbounded[:-1]
    beside[:-1] |= unbounded[1:]
    return np.isfinite(lower) & beside


def _edge_start(
    x: np.ndarray, edge: np.ndarray, original_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """x̂ with the ``edge`` components moved to a tenth of their original step, and steps that keep inside."""
    step = np.broadcast_to(np.asarray(original_step, dtype=float), x.shape).copy()
    step = np.where(step > 0, step, 0.1)
    x0 = np.where(edge, x + 0.1 * step, x)
    return x0, np.where(edge, 0.1 * step, step)


def _clear(optsum: OptSummary) -> None:
    """Forget an earlier fit's check (a refit reuses the model's summary)."""
    optsum.gradient = optsum.curvature = optsum.scaled_gradient = None
    optsum.convergence, optsum.check_feval, optsum.restarts, optsum.runs, optsum.winner = (
        "",
        0,
        0,
        [],
        "",
    )


def _lower_in_x(lowerbd: np.ndarray, n: int, to_params) -> np.ndarray:
    """Bounds in the optimizer's coordinates: the model's bounds on the leading (θ) coordinates, which the maps keep."""
    out = np.full(n, -np.inf)
    out[: len(lowerbd)] = lowerbd[:n]
    return out


def _budget(maxfeval: int, used: int, first: int, n: int) -> int:
    """Evaluations a restart may use: what the user's ``maxfeval`` leaves, and at most max(2 × the first run's, 200n)."""
    cap = max(2 * first, 200 * n)
    return min(cap, max(maxfeval - used, 0)) if maxfeval and maxfeval > 0 else cap


def _fresh_start(
    x: np.ndarray, lower: np.ndarray, original: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Start and initial steps of a restart: x̂ with the run's original steps, kept inside the bounds.

    NLopt's BOBYQA moves a start that lies closer to a bound than its first
    step onto the bound or a step away from it; to restart at x̂ itself the
    step of such a component is its distance to the bound, or, where that
    is under a thousandth of the original step, the component starts on
    the bound (a restart from the edge, as lme4's ``restart_edge``).
    """
    step = np.broadcast_to(np.asarray(original, dtype=float), x.shape).copy()
    step = np.where(step > 0, step, 0.1)
    gap = np.where(np.isfinite(lower), x - lower, np.inf)
    edge = gap < 1e-3 * step
    x0 = np.where(edge, lower, x)
    return x0, np.where(~edge & (gap < step), gap, step)


def _verdict(check: Check) -> str:
    if not check.passed:
        return "not converged"
    if check.flat.any():
        return "flat direction"
    return "boundary" if check.singular.any() else "converged"


def _warn(check: Check, names: Sequence[str] | None, n: int) -> None:
    names = (
        list(names) if names is not None and len(names) == n else [f"x{i + 1}" for i in range(n)]
    )

    def pick(mask):
        return ", ".join(names[i] for i in np.flatnonzero(mask))

    if not check.passed:
        worst = int(np.argmax(np.where(check.leaves_bound, np.inf, check.gains)))
        warnings.warn(
            f"the optimizer may not have reached the optimum after restarts: gradient {check.gradient[worst]:.3g} "
            f"and scaled gradient {check.scaled_gradient[worst]:.3g} for {names[worst]} "
            f"(predicted decrease of the objective {check.decrease:.3g})"
            + (
                f"; moving {pick(check.leaves_bound)} off the boundary would lower the objective"
                if check.leaves_bound.any()
                else ""
            ),
            ConvergenceWarning,
            stacklevel=4,
        )
    elif check.flat.any():
        warnings.warn(
            f"the objective is flat along {pick(check.flat)}: not identified by the data",
            ConvergenceWarning,
            stacklevel=4,
        )
