"""The record of an optimisation: settings before, results after.

Mirrors MixedModels.jl's ``OptSummary``.  Users change the optimizer or its
tolerances on a model's ``optsum`` and call ``fit()`` again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MixedModelsError

__all__ = ["OptSummary", "check_optimizer"]


def check_optimizer(name: str, derivative_free_only: bool = True) -> int:
    """NLopt's code for algorithm ``name`` (e.g. ``"LN_BOBYQA"``); a clear error if unknown."""
    import nlopt

    known = sorted(
        a
        for a in dir(nlopt)
        if a[:3] in ("LN_", "GN_", "LD_", "GD_") and isinstance(getattr(nlopt, a), int)
    )
    # local derivative-free algorithms only: global ones (GN_) need finite bounds on every
    # parameter, which θ's off-diagonal elements and β do not have
    allowed = [a for a in known if a.startswith("LN_")] if derivative_free_only else known
    if not isinstance(name, str) or name.upper() not in allowed:
        upper = name.upper() if isinstance(name, str) else ""
        hint = (
            " (it needs finite bounds on every parameter, which θ and β do not have)"
            if upper.startswith("GN_") and upper in known
            else " (it needs gradients, which this model does not provide)"
            if upper in known
            else ""
        )
        raise MixedModelsError(
            f"unknown optimizer {name!r}{hint}; use an NLopt derivative-free algorithm such as "
            + ", ".join(a for a in allowed if a.startswith("LN_"))
        )
    return int(getattr(nlopt, name.upper()))


def default_initial_step(initial: np.ndarray, lowerbd: np.ndarray) -> np.ndarray:
    """NLopt's own choice of first step, which lme4 uses: 0.75 (x - lower) above a bound, else |x| or 1.

    From λ = I this is 0.75 for diagonal θ elements and 1 for the others.
    """
    bounded = np.isfinite(lowerbd) & (initial > lowerbd)
    free = np.where(initial != 0, np.abs(initial), 1.0)
    return np.where(bounded, 0.75 * (initial - np.where(bounded, lowerbd, 0.0)), free)


@dataclass
class OptSummary:
    """Settings and results of the optimisation of a model's objective.

    Settings (change them, then refit)
        ``initial``, ``lowerbd``, ``optimizer`` (an NLopt name, default
        ``"LN_BOBYQA"``), ``ftol_rel``, ``ftol_abs``, ``xtol_rel``,
        ``xtol_abs`` (one per parameter), ``initial_step`` (one per
        parameter), ``maxfeval`` (-1: no limit), ``maxtime`` (seconds, -1:
        no limit), ``check_convergence`` (check the optimum after the fit,
        default True), ``max_restarts`` (restarts allowed when the check
        fails, default 3; 0 with :meth:`use_lme4_settings`),
        ``roundoff_evals`` (K > 0: also stop, ``"ROUNDOFF_LIMITED"``, once K
        consecutive evaluations after the initial interpolation points are
        within 100 ε |f| of the best value; default 0, never; set by a
        model whose evaluations are expensive, see
        ``LinearMixedModel``).
    Results
        ``finitial`` (objective at ``initial``), ``final``, ``fmin``,
        ``feval`` (number of evaluations), ``returnvalue`` (NLopt's reason
        for stopping), ``fitlog`` (θ and objective of each evaluation).
    Results of the post-fit check (:mod:`mixedmodels.convergence`)
        ``gradient`` and ``curvature`` (finite differences along each
        coordinate at ``final``, one-sided inward at a bound; in the
        optimizer's coordinates, which for the GLMM's joint stage are θ and
        the whitened β, whose coordinates share one directional probe),
        ``scaled_gradient`` (gradient / curvature), ``convergence``
        (``"converged"``, ``"boundary"``, ``"flat direction"`` or ``"not
        converged"``), ``check_feval`` (evaluations the check used),
        ``restarts``, ``runs`` (one record per run: optimizer, start,
        fmin, feval, returnvalue) and ``winner`` (the best run's optimizer).
        ``feval`` and ``fitlog`` cover all runs; ``returnvalue`` is the
        best run's.
    """

    initial: np.ndarray
    lowerbd: np.ndarray
    optimizer: str = "LN_BOBYQA"
    ftol_rel: float = 1e-12
    ftol_abs: float = 1e-8
    xtol_rel: float = 0.0
    xtol_abs: np.ndarray | None = None
    initial_step: np.ndarray | None = None
    maxfeval: int = -1
    maxtime: float = -1.0
    finitial: float = np.nan
    final: np.ndarray | None = None
    fmin: float = np.inf
    feval: int = -1
    returnvalue: str = "FAILURE"
    fitlog: list[tuple[np.ndarray, float]] = field(default_factory=list)
    reml: bool = False
    nagq: int = 0
    fitted: bool = False
    elapsed: float = 0.0
    check_convergence: bool = True
    max_restarts: int = 3
    roundoff_evals: int = 0
    gradient: np.ndarray | None = None
    curvature: np.ndarray | None = None
    scaled_gradient: np.ndarray | None = None
    convergence: str = ""
    check_feval: int = 0
    restarts: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    winner: str = ""

    def __post_init__(self) -> None:
        self.initial = np.asarray(self.initial, dtype=float)
        self.lowerbd = np.asarray(self.lowerbd, dtype=float)
        if self.xtol_abs is None:
            self.xtol_abs = np.full(len(self.initial), 1e-10)
        if self.initial_step is None:
            self.initial_step = default_initial_step(self.initial, self.lowerbd)
        if self.final is None:
            self.final = self.initial.copy()

    def use_lme4_settings(self) -> OptSummary:
        """Stop as lme4's default ``nloptwrap`` does: xtol_rel 1e-4 (nloptr's default), xtol_abs and ftol_abs 1e-8.

        With the same start and NLopt's initial steps (restored here), BOBYQA then follows lme4's path
        evaluation for evaluation, which helps when comparing with lme4 to many
        digits; the defaults (MixedModels.jl's) converge further.  Restarts
        are switched off (``max_restarts = 0``), so the result is lme4's; the
        post-fit check still runs and reports.
        """
        self.max_restarts, self.roundoff_evals = 0, 0
        self.xtol_rel, self.ftol_rel, self.ftol_abs = 1e-4, 0.0, 1e-8
        self.xtol_abs = np.full(len(self.initial), 1e-8)
        self.initial_step = default_initial_step(self.initial, self.lowerbd)
        return self

    # ---- display ---------------------------------------------------------------
    def rows(self) -> list[tuple[str, str]]:
        def fmt(a):
            return "[" + ", ".join(f"{v:.6g}" for v in np.atleast_1d(a)) + "]"

        return [
            ("Initial parameter vector", fmt(self.initial)),
            ("Initial objective value", f"{self.finitial:.10g}"),
            ("Optimizer", self.optimizer),
            ("Lower bounds", fmt(self.lowerbd)),
            ("ftol_rel", f"{self.ftol_rel:g}"),
            ("ftol_abs", f"{self.ftol_abs:g}"),
            ("xtol_rel", f"{self.xtol_rel:g}"),
            ("xtol_abs", fmt(self.xtol_abs)),
            ("initial_step", fmt(self.initial_step)),
            ("maxfeval", str(self.maxfeval)),
            ("maxtime", f"{self.maxtime:g}"),
            *self._roundoff_rows(),
            ("Function evaluations", str(self.feval)),
            ("Final parameter vector", fmt(self.final)),
            ("Final objective value", f"{self.fmin:.10g}"),
            ("Return code", self.returnvalue),
            *self._check_rows(fmt),
        ]

    def _roundoff_rows(self) -> list[tuple[str, str]]:
        k = getattr(self, "roundoff_evals", 0)  # absent from summaries saved before it existed
        return [("roundoff_evals", str(k))] if k else []

    def _check_rows(self, fmt) -> list[tuple[str, str]]:
        if not self.convergence:
            return []
        return [
            ("Convergence check", self.convergence),
            ("Gradient", fmt(self.gradient)),
            ("Scaled gradient", fmt(self.scaled_gradient)),
            ("Restarts", f"{self.restarts}" + (f" (best: {self.winner})" if self.restarts else "")),
        ]

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        rule = "─" * (width + 2 + max(len(v) for _, v in rows))
        body = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
        return f"{rule}\n{body}\n{rule}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in self.rows()
        )
        return f"<table>{cells}</table>"

    def to_frame(self):
        """The fit log as a DataFrame: one row per evaluation, θ columns and the objective."""
        import pandas as pd

        theta = (
            np.array([t for t, _ in self.fitlog])
            if self.fitlog
            else np.empty((0, len(self.initial)))
        )
        df = pd.DataFrame(theta, columns=[f"theta{i + 1}" for i in range(theta.shape[1])])
        df["objective"] = [f for _, f in self.fitlog]
        return df

    # ---- persistence ---------------------------------------------------------------
    _ARRAYS = ("initial", "lowerbd", "xtol_abs", "initial_step", "final")
    _SCALARS = (
        "optimizer",
        "ftol_rel",
        "ftol_abs",
        "xtol_rel",
        "maxfeval",
        "maxtime",
        "finitial",
        "fmin",
        "feval",
        "returnvalue",
        "reml",
        "nagq",
        "fitted",
        "elapsed",
        "check_convergence",
        "max_restarts",
        "roundoff_evals",
        "convergence",
        "check_feval",
        "restarts",
        "winner",
    )
    _OPTIONAL_ARRAYS = ("gradient", "curvature", "scaled_gradient")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: np.asarray(getattr(self, k)).tolist() for k in self._ARRAYS}
        out.update({k: getattr(self, k) for k in self._SCALARS})
        out.update({k: _nan_to_none(getattr(self, k)) for k in self._OPTIONAL_ARRAYS})
        out["runs"] = [dict(r) for r in self.runs]
        out["fitlog"] = [[np.asarray(t).tolist(), f] for t, f in self.fitlog]
        return out

    def save(self, path: str | Path) -> None:
        """Write the optimisation record as JSON (restore it with :meth:`restore`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptSummary:
        arrays = {k: np.asarray(d[k], dtype=float) for k in cls._ARRAYS}
        scalars = {k: d[k] for k in cls._SCALARS if k in d}
        optional = {k: _none_to_nan(d[k]) for k in cls._OPTIONAL_ARRAYS if d.get(k) is not None}
        out = cls(**arrays, **scalars, **optional)
        out.runs = [dict(r) for r in d.get("runs", [])]
        out.fitlog = [(np.asarray(t, dtype=float), float(f)) for t, f in d.get("fitlog", [])]
        return out

    @classmethod
    def load(cls, path: str | Path) -> OptSummary:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _nan_to_none(a) -> list | None:
    """An array as a JSON list (NaN as null: JSON has no NaN)."""
    if a is None:
        return None
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


def _none_to_nan(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)
