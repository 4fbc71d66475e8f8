"""Minimise a model's objective with NLopt, recording everything in an OptSummary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from .errors import EVALUATION_FAILURES, ConvergenceError, MixedModelsError
from .optsummary import OptSummary, check_optimizer

__all__ = ["minimize", "guarded", "record_search", "RESULT_NAMES"]


RESULT_NAMES = {
    1: "SUCCESS",
    2: "STOPVAL_REACHED",
    3: "FTOL_REACHED",
    4: "XTOL_REACHED",
    5: "MAXEVAL_REACHED",
    6: "MAXTIME_REACHED",
}


def guarded(
    objective: Callable[[np.ndarray], float], what: str = "the objective"
) -> Callable[[np.ndarray], float]:
    """``objective``, returning the first evaluation's value wherever an evaluation fails.

    A failed evaluation (a factor that is not positive definite, PIRLS that
    cannot finish, a value that is not finite) returns a finite value, not
    infinity, so that BOBYQA's quadratic model of the objective survives
    (MixedModels.jl does the same).  The first evaluation must succeed: there
    is nothing to fall back on, so its failure raises a
    :class:`~mixedmodels.errors.ConvergenceError` naming ``what``.
    """
    first: list[float] = []

    def wrapped(x: np.ndarray) -> float:
        try:
            value = float(objective(x))
        except EVALUATION_FAILURES as exc:
            if not first:
                raise ConvergenceError(
                    f"{what} cannot be evaluated at the starting values ({exc})"
                ) from exc
            return first[0]
        if not np.isfinite(value):
            if not first:
                raise ConvergenceError(f"{what} is not finite at the starting values")
            return first[0]
        if not first:
            first.append(value)
        return value

    return wrapped


ROUNDOFF_ULPS = 100.0
"""Values within this many units of roundoff (ε |f_best|) of the best are indistinguishable from it."""


class _RoundoffStall(Exception):
    """Raised by :class:`_Recorder` to end a search whose evaluations no longer differ beyond roundoff."""


class _Recorder:
    """Objective wrapper that logs every evaluation and remembers the best one.

    With ``roundoff_evals`` = K > 0 it also ends the search (raising
    :class:`_RoundoffStall`) once K consecutive evaluations after the
    optimizer's first ``skip`` (BOBYQA's initial interpolation points) all
    lie within ROUNDOFF_ULPS ε |f_best| of the best value: the objective
    can then no longer tell those points apart from the best one, so
    further evaluations only sample its rounding error.
    """

    def __init__(
        self,
        objective: Callable[[np.ndarray], float],
        verbose: bool,
        progress,
        to_params=None,
        roundoff_evals: int = 0,
        skip: int = 0,
    ):
        self.objective = objective
        self.to_params = to_params if to_params is not None else (lambda x: x.copy())
        self.verbose = verbose
        self.progress = progress
        self.fitlog: list[tuple[np.ndarray, float]] = []
        self.best = (np.inf, None)
        self.roundoff_evals, self.skip, self.stall = int(roundoff_evals), int(skip), 0

    def __call__(self, x: np.ndarray, grad: np.ndarray) -> float:
        value = float(self.objective(x))
        params = self.to_params(x)
        self.fitlog.append((params, value))
        self._count_stall(value)
        if value < self.best[0]:
            self.best = (value, x.copy())
        if self.verbose:
            print(
                f"f_{len(self.fitlog)}: {value:.8f} [{', '.join(f'{v:.6g}' for v in params)}]",
                file=sys.stdout,
            )
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(f"objective {self.best[0]:.6f}", refresh=False)
        if self.roundoff_evals and self.stall >= self.roundoff_evals:
            raise _RoundoffStall
        return value

    def _count_stall(self, value: float) -> None:
        """Consecutive evaluations (after the first ``skip``) indistinguishable from the best."""
        best = min(self.best[0], value)
        close = abs(value - self.best[0]) <= ROUNDOFF_ULPS * np.finfo(float).eps * abs(best)
        counted = len(self.fitlog) > self.skip and np.isfinite(self.best[0])
        self.stall = self.stall + 1 if counted and close else 0


def _progress_bar(enabled: bool, label: str):
    if not enabled:
        return None
    from .progress import progress_bar

    return progress_bar(progress=enabled, desc=label or "evaluations", unit=" eval")


def _check_settings(optsum: OptSummary, n: int) -> None:
    """Settings NLopt would accept but misuse: NaN steps or tolerances silently end a search."""
    step = np.broadcast_to(np.asarray(optsum.initial_step, dtype=float), (n,))
    if not (np.isfinite(step).all() and (step > 0).all()):
        raise MixedModelsError(f"optsum.initial_step must be positive and finite, got {step}")
    tolerances = {
        "ftol_rel": optsum.ftol_rel,
        "ftol_abs": optsum.ftol_abs,
        "xtol_rel": optsum.xtol_rel,
        "xtol_abs": optsum.xtol_abs,
    }
    for name, value in tolerances.items():
        if np.isnan(np.asarray(value, dtype=float)).any():
            raise MixedModelsError(f"optsum.{name} must be a number, got {value}")


def _configure(optsum: OptSummary):
    import nlopt

    n = len(optsum.initial)
    _check_settings(optsum, n)
    opt = nlopt.opt(check_optimizer(optsum.optimizer), n)
    lower = np.where(np.isfinite(optsum.lowerbd), optsum.lowerbd, -np.inf)
    opt.set_lower_bounds(lower)
    opt.set_ftol_rel(optsum.ftol_rel)
    opt.set_ftol_abs(optsum.ftol_abs)
    opt.set_xtol_rel(optsum.xtol_rel)
    opt.set_xtol_abs(np.broadcast_to(np.asarray(optsum.xtol_abs, dtype=float), (n,)).copy())
    opt.set_initial_step(np.broadcast_to(np.asarray(optsum.initial_step, dtype=float), (n,)).copy())
    opt.set_maxeval(int(optsum.maxfeval) if optsum.maxfeval and optsum.maxfeval > 0 else 0)
    opt.set_maxtime(float(optsum.maxtime) if optsum.maxtime and optsum.maxtime > 0 else 0.0)
    return opt


def _refused(optsum: OptSummary) -> MixedModelsError:
    """The error for settings NLopt refuses (it says only ``invalid_argument``)."""
    n = len(optsum.initial)
    if optsum.optimizer.startswith("LN_NEWUOA") and n < 2:
        hint = "NEWUOA needs at least two parameters; use LN_BOBYQA"
    else:
        hint = "initial_step must be positive and finite, the tolerances non-negative"
    return MixedModelsError(
        f"NLopt refused {optsum.optimizer} for {n} parameter(s) with these settings: {hint}"
    )


def minimize(
    objective: Callable[[np.ndarray], float],
    optsum: OptSummary,
    *,
    verbose: bool = False,
    progress: bool = False,
    label: str = "",
    start: np.ndarray | None = None,
    to_params: Callable[[np.ndarray], np.ndarray] | None = None,
) -> OptSummary:
    """Minimise ``objective`` from ``optsum.initial`` with ``optsum``'s settings.

    NLopt's roundoff-limited stop (the objective cannot be reduced further
    at the precision of floating point) is a normal end: the best point seen
    is returned with ``returnvalue = "ROUNDOFF_LIMITED"``.

    When the optimiser works in other coordinates than the model's parameters
    (the GLMM whitens β), ``start`` is the starting point in those
    coordinates and ``to_params`` maps them back; the fit log and
    ``optsum.final`` are then in the model's parameters.
    """
    import nlopt

    try:
        opt = _configure(optsum)
    except nlopt.invalid_argument as exc:
        raise _refused(optsum) from exc
    bar = _progress_bar(progress, label)
    n = len(optsum.initial if start is None else start)
    rec = _Recorder(
        objective, verbose, bar, to_params, getattr(optsum, "roundoff_evals", 0), 2 * n + 1
    )
    t0 = time.perf_counter()
    x0 = np.clip(
        np.asarray(optsum.initial if start is None else start, dtype=float), optsum.lowerbd, np.inf
    )
    try:
        opt.set_min_objective(rec)
        xmin = opt.optimize(x0)
        fmin, code = (
            opt.last_optimum_value(),
            RESULT_NAMES.get(opt.last_optimize_result(), "UNKNOWN"),
        )
    except (nlopt.RoundoffLimited, _RoundoffStall):
        fmin, xmin = rec.best
        code = "ROUNDOFF_LIMITED"
    except nlopt.invalid_argument as exc:  # a setting NLopt refuses for this problem
        raise _refused(optsum) from exc
    finally:
        if bar is not None:
            bar.close()
    if rec.best[0] < fmin:  # some algorithms report their last, not their best, point
        fmin, xmin = rec.best
    optsum.finitial = rec.fitlog[0][1] if rec.fitlog else np.nan
    optsum.final, optsum.fmin, optsum.returnvalue = (
        rec.to_params(np.asarray(xmin, dtype=float)),
        float(fmin),
        code,
    )
    optsum.feval, optsum.fitlog = len(rec.fitlog), rec.fitlog
    optsum.elapsed = time.perf_counter() - t0
    optsum.fitted = True
    return optsum


def record_search(
    optsum: OptSummary,
    optimizer: str,
    fitlog: list[tuple[np.ndarray, float]],
    final: np.ndarray,
    fmin: float,
    returnvalue: str,
    elapsed: float = 0.0,
) -> OptSummary:
    """Record a search that is not NLopt's (Brent's, Newton's) in ``optsum`` as :func:`minimize` does.

    The extensions' one-dimensional and Newton searches (``genetics``' h²,
    ``variance``' projected Newton) keep the same record as NLopt fits:
    ``optimizer`` names the algorithm that ran (``"brent"``, ``"newton"``),
    ``fitlog`` holds every objective evaluation ``(parameters, objective)`` in
    order, its first being at ``optsum.initial``; ``final``, ``fmin`` and
    ``returnvalue`` (the search's reason for stopping) describe the end.
    Such an ``optimizer`` is a record of what ran, not an NLopt setting: pass
    the summary to :func:`minimize` only after setting an NLopt name.
    """
    optsum.optimizer = optimizer
    optsum.fitlog = [
        (np.atleast_1d(np.asarray(x, dtype=float)).copy(), float(f)) for x, f in fitlog
    ]
    optsum.finitial = optsum.fitlog[0][1] if optsum.fitlog else np.nan
    optsum.final = np.atleast_1d(np.asarray(final, dtype=float)).copy()
    optsum.fmin, optsum.returnvalue = float(fmin), returnvalue
    optsum.feval, optsum.elapsed = len(optsum.fitlog), elapsed
    optsum.fitted = True
    return optsum
