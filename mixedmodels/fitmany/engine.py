"""Fitting one chunk of responses on a shared design: the task every worker runs.

:func:`fit_chunk` takes a :class:`~.responses.Chunk` and the :class:`Plan`
(the shared design and the options, sent to each worker once) and returns
one row per response.  Within a chunk

* Gaussian responses on a small design (the dense kernel of :mod:`.design`)
  are fitted in lockstep (``method="lockstep"``, the default): the
  responses of each missingness pattern together, by the stacked objective
  and Newton method of :mod:`.lockstep`; a response that method leaves
  (not converged, a failed evaluation) is fitted by itself as below;
* with ``method="each"``, ``start="warm"`` or after the lockstep method,
  a Gaussian response on a small design is fitted by the dense kernel with
  the package's optimizer driver and post-fit check
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
from .design import SharedDesign, check_enough, moment_start, moment_starts, quiet
from .lockstep import (
    newton_lockstep,
    sign_map,
    stack_systems,
    stacked_estimates,
    stacked_factor,
    stacked_objective,
)
from .responses import Chunk

__all__ = ["Plan", "fit_chunk", "result_columns"]

SINGULAR_TOL = 1e-4
"""A standard-deviation θ within this of 0 is a singular fit (as the models' ``issingular``)."""


@dataclass
class Plan:
    """The shared design and the options of a run: what each worker receives once.

    ``theta`` is None (optimise), or a fixed θ (screening at a consensus value).
    ``method`` is "lockstep" (the responses of a missingness pattern fitted
    together where the dense kernel applies) or "each" (one by one).
    """

    design: SharedDesign
    start: Any = "moment"
    theta: np.ndarray | None = None
    ddf: str | None = None
    optimizer: str | None = None
    method: str = "lockstep"
    cache_size: int = 32
    _subsets: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_subsets"] = OrderedDict()  # a worker's cache is its own
        return state

    @property
    def lockstep(self) -> bool:
        """True if responses are fitted in lockstep: asked for, θ optimised, no warm start, dense kernel."""
        warm = isinstance(self.start, str) and self.start == "warm"
        dense = self.design.kernel is not None
        return self.method == "lockstep" and self.theta is None and not warm and dense

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
        "optimizer",
        "feval",
        "objective",
        "sigma",
    ]
    return head + theta + design.layout.names() + coef + ["message"]


def _theta_names(design: SharedDesign) -> list[str]:
    return design.theta_names


def fit_chunk(chunk: Chunk, plan: Plan) -> pd.DataFrame:
    """One row per response of the chunk (the columns of :func:`result_columns`)."""
    with POLICY.single_thread(), quiet():
        fitter = _ChunkFitter(plan)
        if plan.lockstep:
            rows = _lockstep_rows(chunk, fitter)
        else:
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
    for col in ("convergence", "optimizer", "message"):  # "" for a failed row, whatever the chunk
        values = out[col].astype(object)
        out[col] = values.where(values.notna(), "").astype(str)
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
            design, y = self.design_of(chunk, j)
            row = self.fit(design, y)
        except Exception as exc:  # noqa: BLE001 - a failed response is a row with its reason
            return _failed_row(name, exc)
        row["response"] = name
        return row

    def design_of(self, chunk: Chunk, j: int) -> tuple[SharedDesign, np.ndarray]:
        """The design of response j of the chunk and its values on that design's rows (DataError if none)."""
        if j in chunk.invalid:
            raise DataError(chunk.invalid[j])
        return self._design_for(chunk.Y[:, j])

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

    def start(self, design: SharedDesign, y: np.ndarray) -> np.ndarray | None:
        start = self.plan.start
        if isinstance(start, str) and start == "warm" and self.previous is not None:
            return _lifted(self.previous, _lowerbd(design))
        if not isinstance(start, str):
            return np.asarray(start, dtype=float).copy()
        if design.family is not None:
            return None  # the GLMM's own start (λ = I), as a single fit
        return moment_start(design.structure, y)

    def fit(self, design: SharedDesign, y: np.ndarray) -> dict[str, Any]:
        """The row of one response fitted by itself (dense kernel and BOBYQA, or the model classes)."""
        if design.kernel is not None:
            row = _dense_fit(design, y, self.start(design, y), self.plan)
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
            model, initial = _new_model(design, y, self.start(design, y))
            self.models[design] = (model, initial)
        else:
            model, initial = held
            start = self.start(design, y)
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
    if optsum is None:
        return _head(design, theta, "fixed θ", "none", 1, objective, sigma)
    verdict = optsum.convergence or optsum.returnvalue
    optimizer = optsum.winner or optsum.optimizer
    return _head(design, theta, verdict, optimizer, optsum.feval, objective, sigma)


def _head(design, theta, verdict: str, optimizer: str, feval: int, objective, sigma) -> dict:
    """The row's columns up to θ: verdict, optimizer, evaluations, objective, σ and θ."""
    theta = np.asarray(theta, dtype=float)
    lower = _lowerbd(design)
    row = {
        "nobs": design.nobs,
        "converged": verdict in ("converged", "boundary", "fixed θ"),
        "singular": bool(np.any(np.abs(theta[lower == 0]) < SINGULAR_TOL)),
        "convergence": verdict,
        "optimizer": optimizer,
        "feval": feval,
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
    return design.lowerbd.copy()


def _failed_row(name: str, exc: Exception) -> dict[str, Any]:
    return {"response": name, "converged": False, "singular": False,
            "message": f"{type(exc).__name__}: {exc}"}  # fmt: skip


# ---- the lockstep path -------------------------------------------------------------------------
LOCKSTEP = "lockstep Newton"
"""The ``optimizer`` of a row the lockstep method fitted."""

BOUNDARY = 1e-5
"""A standard deviation below this makes a converged fit's verdict "boundary" (as the post-fit check's)."""


def _lockstep_rows(chunk: Chunk, fitter: _ChunkFitter) -> list[dict[str, Any]]:
    """Rows of a chunk: failures first found, then each design's responses fitted together.

    Responses are grouped by design (the complete one, or a missingness
    pattern's); rows come back in the chunk's order.
    """
    rows: list[dict[str, Any] | None] = [None] * len(chunk.names)
    groups: dict[SharedDesign, list[tuple[int, np.ndarray]]] = {}
    for j, name in enumerate(chunk.names):
        try:
            design, y = fitter.design_of(chunk, j)
        except Exception as exc:  # noqa: BLE001 - a failed response is a row with its reason
            rows[j] = _failed_row(name, exc)
            continue
        groups.setdefault(design, []).append((j, y))
    for design, members in groups.items():
        for (j, _), row in zip(members, _fit_together(design, [y for _, y in members], fitter)):
            row["response"] = chunk.names[j]
            rows[j] = row
    return rows


def _fit_together(design: SharedDesign, ys: list[np.ndarray], fitter: _ChunkFitter) -> list[dict]:
    """Rows of responses sharing ``design``: in lockstep where the kernel allows, else one by one."""
    kernel = design.kernel
    column_diagonal = None if kernel is None else sign_map(kernel, design.lowerbd)
    if column_diagonal is None:
        return [_guarded(fitter.fit, design, y) for y in ys]
    try:
        return _in_lockstep(design, ys, fitter, column_diagonal)
    except Exception as exc:  # noqa: BLE001 - the group's responses are then fitted one by one
        reason = f"{type(exc).__name__}: {exc}"
        return [_noted(_guarded(fitter.fit, design, y), reason, 0) for y in ys]


def _in_lockstep(design, ys, fitter: _ChunkFitter, column_diagonal) -> list[dict]:
    """Rows of responses sharing ``design``, fitted in lockstep (those it leaves, one by one)."""
    kernel = design.kernel
    systems = _stacked_systems(kernel, ys)

    def evaluate(rows: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return stacked_objective(kernel, *stacked_factor(kernel, systems.take(rows), theta))

    result = newton_lockstep(evaluate, _starts(design, ys, fitter.plan), column_diagonal)
    L = stacked_factor(kernel, systems, result.theta[:, None, :])[0][:, 0]
    # a response left unconverged gets identity factors here: its row comes from its own fit
    L = np.where(result.converged[:, None, None], L, np.eye(kernel.size))
    rows = _lockstep_table(design, result, stacked_estimates(kernel, L), fitter.plan, ys)
    return [
        row if result.converged[i] else _fallback_row(design, ys[i], result, i, fitter)
        for i, row in enumerate(rows)
    ]


def _stacked_systems(kernel, ys: list[np.ndarray]):
    """The stacked systems of the responses ``ys``, from one [Z X]'y product per response.

    Not [Z X]'Y for all at once: BLAS's result for one column depends on how
    many columns share the call (and on the column's stride: each is copied
    to contiguous memory first), and a row must not depend on its chunk.
    """
    products = [kernel.products(np.ascontiguousarray(y)[:, None]) for y in ys]
    zxy = np.array([p[0][:, 0] for p in products])
    yy = np.array([float(p[1][0]) for p in products])
    return stack_systems(kernel, zxy, yy)


def _starts(design: SharedDesign, ys: list[np.ndarray], plan: Plan) -> np.ndarray:
    """Starting θ per response, shape (R, k): lme4's moment start of each, or the given θ for all."""
    if isinstance(plan.start, str):
        return moment_starts(design.structure, np.column_stack(ys))
    return np.tile(np.asarray(plan.start, dtype=float), (len(ys), 1))


def _guarded(fit, design: SharedDesign, y: np.ndarray) -> dict[str, Any]:
    try:
        return fit(design, y)
    except Exception as exc:  # noqa: BLE001 - a failed response is a row with its reason
        return _failed_row("", exc)


def _lockstep_table(design, result, est: dict, plan: Plan, ys) -> list[dict[str, Any]]:
    """Rows of the lockstep fits (those of unconverged responses are replaced by their own fits)."""
    theta, sigma = result.theta, est["sigma"]
    bounded = design.lowerbd == 0
    singular = np.any(np.abs(theta[:, bounded]) < SINGULAR_TOL, axis=1)
    boundary = np.any(theta[:, bounded] < BOUNDARY, axis=1)
    sdcor = stacked_sdcor(design.layout, theta, sigma)
    theta_cols = [f"theta.{n}" for n in design.theta_names]
    sd_cols = design.layout.names()
    rows = []
    for i in range(len(theta)):
        row = {
            "nobs": design.nobs, "converged": True, "singular": bool(singular[i]),
            "convergence": "boundary" if boundary[i] else "converged", "optimizer": LOCKSTEP,
            "feval": int(result.feval[i]), "objective": float(result.fmin[i]),
            "sigma": float(sigma[i]), "message": "",
        }  # fmt: skip
        row.update(zip(theta_cols, theta[i]))
        row.update(zip(sd_cols, sdcor[i]))
        row.update(_coefficients(design.coefnames, est["beta"][i], est["se"][i]))
        if plan.ddf and result.converged[i]:
            one = {"objective": row["objective"], "sigma": row["sigma"]}
            row.update(_ddf_columns(design, ys[i], theta[i], one, plan.ddf))
        rows.append(row)
    return rows


def stacked_sdcor(layout, theta: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Standard deviations and correlations of every response, shape (R, k), as ``layout.to_sdcor``.

    For each term Σ = σ²λλ' (λ from the term's θ), sdᵢ = √Σᵢᵢ and
    corᵢⱼ = Σᵢⱼ/(sdᵢ sdⱼ) (0 when a standard deviation is 0).  A term with a
    covariance structure goes through its own map, response by response.
    """
    out = np.empty_like(theta)
    start = 0
    for term in layout.terms:
        cols = slice(start, start + term.ntheta)
        start += term.ntheta
        if term.structure is not None:
            out[:, cols] = [term.to_sdcor(t, s) for t, s in zip(theta[:, cols], sigma)]
            continue
        rows_, cols_ = np.array(term.positions).T
        lam = np.zeros((len(theta), term.k, term.k))
        lam[:, rows_, cols_] = theta[:, cols]
        cov = sigma[:, None, None] ** 2 * (lam @ np.swapaxes(lam, 1, 2))
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        denom = sd[:, rows_] * sd[:, cols_]
        with np.errstate(invalid="ignore", divide="ignore"):
            cor = np.where(denom > 0, cov[:, rows_, cols_] / denom, 0.0)
        out[:, cols] = np.where(rows_ == cols_, sd[:, rows_], cor)
    return out


def _fallback_row(design, y, result, i: int, fitter: _ChunkFitter) -> dict[str, Any]:
    """A response the lockstep method left, fitted by itself; its evaluations and the reason recorded."""
    return _noted(_guarded(fitter.fit, design, y), result.reason[i], int(result.feval[i]))


def _noted(row: dict[str, Any], reason: str, feval: int) -> dict[str, Any]:
    """A row fitted by itself after the lockstep method: why, and the lockstep's evaluations added."""
    if "optimizer" in row:
        row["optimizer"] = f"{row['optimizer']} after lockstep ({reason})"
        row["feval"] += feval
    return row
