"""Fitting one chunk of responses on a shared design: the task every worker runs.

:func:`fit_chunk` takes a :class:`~.responses.Chunk` and the :class:`Plan`
(the shared design and the options, sent to each worker once) and returns
one row per response.  Within a chunk

* a Gaussian response on a small design is fitted by the dense kernel of
  :mod:`.design` with the package's optimizer driver and post-fit check
  (:func:`~mixedmodels.optimize.minimize`,
  :func:`~mixedmodels.convergence.ensure_converged`), exactly as
  :meth:`LinearMixedModel.fit` does with the blocked factor;
* other responses (large designs, generalised families) are refitted by
  the model classes (``refit(y)``), one model per chunk;
* ``start="moment"`` (the default) starts each response from lme4's own
  start for it, so results do not depend on chunking; ``"warm"`` from the
  previous converged θ of the chunk (as variancePartition's refits do);
  an array starts every response there;
* a response with missing values is a model of its complete rows: its own
  design (cached per missingness pattern in the worker);
* whatever goes wrong with one response (bad values, too few
  observations, a failed fit) is that row's ``message``.

The chunk runs with one BLAS thread (:data:`mixedmodels.threads.POLICY`):
parallelism comes from workers, not from BLAS threads on 57 × 57 matrices.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..convergence import ensure_converged
from ..errors import DataError
from ..optimize import guarded, minimize
from ..optsummary import OptSummary
from ..threads import POLICY
from .design import SharedDesign, check_enough, moment_start, quiet
from .responses import Chunk

__all__ = ["Plan", "fit_chunk", "result_columns"]

SINGULAR_TOL = 1e-4
"""A standard-deviation θ within this of 0 is a singular fit (as the models' ``issingular``)."""


@dataclass
class Plan:
    """The shared design and the options of a run: what each worker receives once.

    ``theta`` is None (optimise), or a fixed θ (screening at a consensus value).
    """

    design: SharedDesign
    start: Any = "moment"
    theta: np.ndarray | None = None
    ddf: str | None = None
    optimizer: str | None = None
    cache_size: int = 32
    _subsets: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_subsets"] = OrderedDict()  # a worker's cache is its own
        return state

    def subset(self, mask: np.ndarray) -> tuple[SharedDesign, np.ndarray]:
        """The design of a missingness pattern, from this worker's cache if seen before."""
        key = np.packbits(mask).tobytes()
        hit = self._subsets.get(key)
        if hit is None:
            hit = self.design.subset(mask)
            self._subsets[key] = hit
            while len(self._subsets) > self.cache_size:
                self._subsets.popitem(last=False)
        return hit


def result_columns(design: SharedDesign, ddf: str | None) -> list[str]:
    """Columns of the result table, in order."""
    stat = "t" if ddf else "z"
    theta = [f"theta.{n}" for n in _theta_names(design)]
    coef = [f"{k}.{c}" for c in design.coefnames for k in ("beta", "se", stat, "df", "p")]
    if not ddf:
        coef = [c for c in coef if not c.startswith("df.")]
    head = [
        "response",
        "nobs",
        "converged",
        "singular",
        "convergence",
        "feval",
        "objective",
        "sigma",
    ]
    return head + theta + design.layout.names() + coef + ["message"]


def _theta_names(design: SharedDesign) -> list[str]:
    names = [n for r in design.structure.reterms for n in r.theta_names()]
    return [names[i] for i in design.structure.theta_perm]


def fit_chunk(chunk: Chunk, plan: Plan) -> pd.DataFrame:
    """One row per response of the chunk (the columns of :func:`result_columns`)."""
    with POLICY.single_thread(), quiet():
        fitter = _ChunkFitter(plan)
        rows = [fitter.row(chunk, j) for j in range(len(chunk.names))]
    return _frame(rows, plan)


def _frame(rows: list[dict], plan: Plan) -> pd.DataFrame:
    from scipy.stats import norm
    from scipy.stats import t as student

    columns = result_columns(plan.design, plan.ddf)
    out = pd.DataFrame.from_records(rows, columns=columns)
    stat = "t" if plan.ddf else "z"
    for c in plan.design.coefnames:
        value = out[f"beta.{c}"] / out[f"se.{c}"]
        out[f"{stat}.{c}"] = value
        tail = student.sf(np.abs(value), out[f"df.{c}"]) if plan.ddf else norm.sf(np.abs(value))
        out[f"p.{c}"] = 2 * tail
    for col in ("converged", "singular"):
        out[col] = out[col].astype(bool)
    out["feval"] = out["feval"].astype("Int64")
    out["nobs"] = out["nobs"].astype("Int64")
    out["message"] = out["message"].fillna("").astype(str)
    return out


class _ChunkFitter:
    """State of one chunk: the warm start and the models of the model-class path."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.previous: np.ndarray | None = None
        # design -> (its model, the model's own start); the key keeps the design alive, so
        # a design evicted from the subset cache cannot be mistaken for a new one
        self.models: dict[SharedDesign, tuple] = {}

    def row(self, chunk: Chunk, j: int) -> dict[str, Any]:
        name = chunk.names[j]
        try:
            if j in chunk.invalid:
                raise DataError(chunk.invalid[j])
            design, y = self._design_for(chunk.Y[:, j])
            row = self._fit(design, y)
        except Exception as exc:  # noqa: BLE001 - a failed response is a row with its reason
            return {"response": name, "converged": False, "singular": False,
                    "message": f"{type(exc).__name__}: {exc}"}  # fmt: skip
        row["response"] = name
        return row

    def _design_for(self, y: np.ndarray) -> tuple[SharedDesign, np.ndarray]:
        design = self.plan.design
        observed = ~np.isnan(y)
        n_obs = int(observed.sum())
        if n_obs == 0:
            raise DataError("all values are missing")
        check_enough(n_obs, design)
        if np.ptp(y[observed]) == 0:
            raise DataError(f"the response is constant ({y[observed][0]:g})")
        if n_obs == len(y):
            return design, y
        sub, positions = self.plan.subset(observed)
        check_enough(sub.nobs, sub)
        return sub, y[positions]

    def _start(self, design: SharedDesign, y: np.ndarray) -> np.ndarray | None:
        start = self.plan.start
        if isinstance(start, str) and start == "warm" and self.previous is not None:
            return _lifted(self.previous, _lowerbd(design))
        if not isinstance(start, str):
            return np.asarray(start, dtype=float).copy()
        if design.family is not None:
            return None  # the GLMM's own start (λ = I), as a single fit
        return moment_start(design.structure, y)

    def _fit(self, design: SharedDesign, y: np.ndarray) -> dict[str, Any]:
        if design.kernel is not None:
            row = _dense_fit(design, y, self._start(design, y), self.plan)
        else:
            row = self._model_fit(design, y)
        if row["converged"]:
            self.previous = np.array([row[f"theta.{n}"] for n in _theta_names(design)])
        return _with_sdcor(row, design)

    # ---- the model classes' path ---------------------------------------------------------------
    def _model_fit(self, design: SharedDesign, y: np.ndarray) -> dict[str, Any]:
        if self.plan.theta is not None:
            raise DataError(
                "a fixed θ (screening) needs the dense kernel: a Gaussian, small design"
            )
        held = self.models.get(design)
        if held is None:
            model, initial = _new_model(design, y, self._start(design, y))
            self.models[design] = (model, initial)
        else:
            model, initial = held
            start = self._start(design, y)
            _refit(model, design, y, initial if start is None else start)
        return _model_row(model, design, self.plan.ddf)


WARM_FLOOR = 0.1
"""A warm start keeps bounded θ components at least this far above their bound.

NLopt's first step for a bounded component is 0.75 × its distance to the
bound, so a start at 3e-5 (a previous response's near-singular fit) would
leave BOBYQA steps too short to move away from the boundary.
"""


def _lifted(theta: np.ndarray, lower: np.ndarray) -> np.ndarray:
    bounded = np.isfinite(lower)
    return np.where(bounded, np.maximum(theta, np.where(bounded, lower, 0.0) + WARM_FLOOR), theta)


def _new_model(design: SharedDesign, y: np.ndarray, start: np.ndarray):
    if design.family is None:
        from ..lmm import LinearMixedModel

        model = LinearMixedModel.from_structure(design.structure, y, reml=design.reml)
        model.optsum = OptSummary(start, model.lowerbd, reml=design.reml)
        return model.fit(), None
    from ..glmm import GeneralizedLinearMixedModel

    model = GeneralizedLinearMixedModel(design.formula, design.data_with(y), family=design.family)
    initial = model.lmm.optsum.initial.copy()  # λ = I: where a single fit starts
    if start is not None:
        model.lmm.optsum.initial = start
    return model.fit(), initial


def _refit(model, design: SharedDesign, y: np.ndarray, start: np.ndarray) -> None:
    if design.family is None:
        model.optsum = OptSummary(start, model.lowerbd, reml=design.reml)
        model.refit(y)
        return
    # the GLMM's first stage starts from its working model's initial θ
    model.lmm.optsum.initial = np.asarray(start, dtype=float).copy()
    model.refit(y)


def _model_row(model, design: SharedDesign, ddf: str | None) -> dict[str, Any]:
    opt = model.optsum
    row = _common(design, model.theta, opt, model.objective, model.sigma)
    table = model.coeftable(ddf=ddf) if ddf else None
    se = table["Std. Error"].to_numpy() if ddf else model.stderror
    row.update(_coefficients(model.coefnames, model.beta, se))
    if ddf:
        row.update({f"df.{c}": v for c, v in zip(model.coefnames, table["df"])})
    return row


# ---- the dense kernel's path -------------------------------------------------------------------
def _dense_fit(design: SharedDesign, y: np.ndarray, start: np.ndarray, plan: Plan) -> dict:
    kernel = design.kernel
    zxy, yy = kernel.products(y[:, None])
    A = kernel.system(zxy[:, 0], float(yy[0]))
    lower = _lowerbd(design)
    if plan.theta is not None:
        return _dense_row(design, y, A, np.asarray(plan.theta, dtype=float), None, plan)
    optsum = OptSummary(np.clip(start, lower, np.inf), lower, reml=design.reml)
    if plan.optimizer:
        optsum.optimizer = plan.optimizer
    objective = guarded(lambda theta: kernel.objective(theta, A), "the profiled deviance")
    minimize(objective, optsum)
    ensure_converged(objective, optsum, names=_theta_names(design))
    _settle_boundary(optsum, lower, objective)
    return _dense_row(design, y, A, optsum.final, optsum, plan)


def _settle_boundary(optsum: OptSummary, lower: np.ndarray, objective) -> None:
    """Tiny standard deviations set to exactly 0 when that does not worsen the fit (as the LMM does)."""
    theta = optsum.final
    small = (lower == 0) & (theta != 0) & (np.abs(theta) < 1e-5)
    if not small.any():
        return
    trial = np.where(small, 0.0, theta)
    value = objective(trial)
    if value <= optsum.fmin:
        optsum.final, optsum.fmin = trial, value


def _dense_row(design, y, A, theta, optsum: OptSummary | None, plan: Plan) -> dict[str, Any]:
    est = design.kernel.estimates(theta, A)
    row = _common(design, theta, optsum, est["objective"], est["sigma"])
    row.update(_coefficients(design.coefnames, est["beta"], est["se"]))
    if plan.ddf:
        row.update(_ddf_columns(design, y, theta, est, plan.ddf))
    return row


def _ddf_columns(design, y, theta, est, ddf: str) -> dict[str, float]:
    """Satterthwaite (or Kenward–Roger) df from a linear model moved to the fitted θ."""
    from ..lmm import LinearMixedModel

    model = LinearMixedModel.from_structure(design.structure, y, reml=design.reml)
    saved = OptSummary(theta, model.lowerbd, reml=design.reml)
    saved.final, saved.fmin, saved.fitted = theta.copy(), est["objective"], True
    model.apply_optsum(saved)
    table = model.coeftable(ddf=ddf)
    return {f"df.{c}": v for c, v in zip(design.coefnames, table["df"])}


def _common(design, theta, optsum: OptSummary | None, objective: float, sigma) -> dict[str, Any]:
    theta = np.asarray(theta, dtype=float)
    lower = _lowerbd(design)
    verdict = "fixed θ" if optsum is None else (optsum.convergence or optsum.returnvalue)
    row = {
        "nobs": design.nobs,
        "converged": verdict in ("converged", "boundary", "fixed θ"),
        "singular": bool(np.any(np.abs(theta[lower == 0]) < SINGULAR_TOL)),
        "convergence": verdict,
        "feval": 1 if optsum is None else optsum.feval,
        "objective": objective,
        "sigma": np.nan if sigma is None else sigma,
        "message": "" if verdict != "not converged" else "the optimum may not be reached",
    }
    row.update({f"theta.{n}": v for n, v in zip(_theta_names(design), theta)})
    return row


def _coefficients(names, beta, se) -> dict[str, float]:
    out = {f"beta.{c}": b for c, b in zip(names, beta)}
    out.update({f"se.{c}": s for c, s in zip(names, se)})
    return out


def _with_sdcor(row: dict[str, Any], design: SharedDesign) -> dict[str, Any]:
    theta = np.array([row[f"theta.{n}"] for n in _theta_names(design)])
    sigma = row["sigma"]
    values = design.layout.to_sdcor(theta, 1.0 if not np.isfinite(sigma) else sigma)
    row.update(dict(zip(design.layout.names(), values)))
    return row


def _lowerbd(design: SharedDesign) -> np.ndarray:
    reterms = design.structure.reterms
    return np.concatenate([r.lowerbd() for r in reterms])[design.structure.theta_perm]
