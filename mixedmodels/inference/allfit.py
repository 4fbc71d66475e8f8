"""Refit a model under every derivative-free local optimizer (lme4's ``allFit``).

Each optimizer fits a private copy of the model from the model's own
starting values, with the post-fit check of :mod:`mixedmodels.convergence`
on but its restarts off (``max_restarts = 0``), so each row is that
optimizer's own answer.  A fit that raises is a row with its message and NaN
estimates: ``allfit`` never raises for a failed fit.  Agreeing objectives
and estimates across optimizers say the optimum is not an artefact of one
algorithm; disagreement points at a flat or multimodal likelihood.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from ..optsummary import check_optimizer
from .modelcopy import copy_model

__all__ = ["allfit", "AllFitResult", "OPTIMIZERS"]

OPTIMIZERS = (
    "LN_BOBYQA",
    "LN_NEWUOA",
    "LN_NEWUOA_BOUND",
    "LN_NELDERMEAD",
    "LN_SBPLX",
    "LN_COBYLA",
    "LN_PRAXIS",
)
"""NLopt's local derivative-free algorithms tried by default (the model's own optimizer first)."""

CONVERGED = ("converged", "boundary")
"""Statuses of the post-fit check that count as converged (a boundary optimum is a singular fit)."""


class AllFitResult(pd.DataFrame):
    """One row per optimizer: ``objective``, θ (``theta.<name>``), β (by coefficient name),
    ``time`` (seconds), ``feval``, ``converged``, ``check`` (the post-fit check's status)
    and ``message`` (NLopt's return code, warnings, or the error of a failed fit)."""

    @property
    def _constructor(self):
        return AllFitResult

    @property
    def spread(self) -> pd.Series:
        """max - min over the converged rows of each numeric estimate (objective, θ, β)."""
        ok = self[self["converged"].astype(bool)]
        numeric = ok[self.attrs.get("estimates", [])].astype(float)
        return numeric.max() - numeric.min()

    def __repr__(self) -> str:
        if not {"objective", "message"} <= set(self.columns):  # a selection of columns
            return pd.DataFrame(self).__repr__()
        shown = self.drop(columns=["message"]).to_string(
            formatters={"objective": "{:.6f}".format, "time": "{:.3f}".format},
            float_format=lambda v: f"{v:.6g}",
        )
        notes = [f"  {i}: {m}" for i, m in self["message"].items() if m]
        body = "\n".join([f"allfit: {len(self)} optimizers", shown])
        return body + ("\nmessages:\n" + "\n".join(notes) if notes else "")


def _one_fit(model: MixedModel, optimizer: str, maxfeval: int, maxtime: float) -> dict:
    """One optimizer's fit of a copy of ``model`` as a row (NaN estimates and the error on failure)."""
    m = copy_model(model)
    m.optsum.optimizer, m.optsum.max_restarts = optimizer, 0
    m.optsum.maxfeval, m.optsum.maxtime = maxfeval, maxtime
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.fit(**model.fit_options())
    except Exception as exc:  # noqa: BLE001 - a failed fit is a row with its reason, never an abort
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if optimizer.startswith("LN_NEWUOA") and "invalid_argument" in reason:
            reason += " (NEWUOA needs at least two parameters: a model with one θ, or a GLMM whose first stage has one)"
        return {"time": time.perf_counter() - t0, "message": reason}
    notes = [m.optsum.returnvalue, *dict.fromkeys(str(w.message) for w in caught)]
    return {
        "objective": m.objective,
        **dict(zip([f"theta.{n}" for n in m.theta_names], m.theta)),
        **dict(zip(m.coefnames, m.beta)),
        "time": time.perf_counter() - t0,
        "feval": m.optsum.feval,
        "converged": m.optsum.convergence in CONVERGED,
        "check": m.optsum.convergence,
        "message": "; ".join(notes),
    }


def _optimizers(model: MixedModel, optimizers: Sequence[str] | None) -> list[str]:
    names = list(OPTIMIZERS if optimizers is None else optimizers)
    if isinstance(optimizers, str) or not names:
        raise MixedModelsError("optimizers must be a non-empty list of NLopt algorithm names")
    for name in names:
        check_optimizer(name)
    names = [n.upper() for n in names]
    first = [model.optsum.optimizer] if optimizers is None else []
    return list(dict.fromkeys(first + names))


def allfit(
    model: MixedModel,
    optimizers: Sequence[str] | None = None,
    *,
    maxfeval: int = 2000,
    maxtime: float = -1.0,
    progress: bool | str = "auto",
) -> AllFitResult:
    """Fit ``model`` again with each optimizer and tabulate the results.

    Parameters
    ----------
    model : MixedModel
        A fitted model (not changed).
    optimizers : list of str, optional
        NLopt local derivative-free algorithms; by default the model's own
        optimizer and :data:`OPTIMIZERS`.
    maxfeval, maxtime : int, float
        Limits of each optimization (each stage of a GLMM's fit), -1 for
        none.  The default cap of 2000 evaluations stops algorithms that do
        not meet the tolerances (NLopt's PRAXIS on a one-parameter problem
        cycles without end); a fit that hits it says ``MAXEVAL_REACHED``.
    progress : bool or "auto"
        Progress bar (see :mod:`mixedmodels.progress`).

    Returns
    -------
    AllFitResult
        One row per optimizer (index ``optimizer``); failed fits are rows
        with NaN estimates, ``converged`` False and the error as ``message``.
    """
    from ..progress import progress_bar

    model.require_fit("allfit")
    if isinstance(maxfeval, bool) or not isinstance(maxfeval, (int, np.integer)) or maxfeval == 0:
        raise MixedModelsError(f"maxfeval must be a positive integer or -1, got {maxfeval!r}")
    names = _optimizers(model, optimizers)
    rows = []
    with progress_bar(names, progress=progress, desc="allfit", unit=" fit") as bar:
        for name in bar:
            bar.set_postfix_str(name, refresh=False)
            rows.append(_one_fit(model, name, int(maxfeval), float(maxtime)))
    return _result(model, names, rows)


def _result(model: MixedModel, names: list[str], rows: list[dict]) -> AllFitResult:
    estimates = ["objective", *(f"theta.{n}" for n in model.theta_names), *model.coefnames]
    columns = [*estimates, "time", "feval", "converged", "check", "message"]
    frame = pd.DataFrame(rows, index=pd.Index(names, name="optimizer")).reindex(columns=columns)
    frame["feval"] = frame["feval"].fillna(0).astype(int)
    frame["converged"] = frame["converged"].fillna(False).astype(bool)
    frame["check"] = frame["check"].fillna("failed")
    frame["message"] = frame["message"].fillna("")
    out = AllFitResult(frame)
    out.attrs.update(estimates=estimates, criterion=model.criterion, formula=model.formula)
    return out
