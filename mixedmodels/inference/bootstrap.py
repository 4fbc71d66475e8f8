"""Parametric bootstrap of a fitted mixed model.

Each replicate i simulates a response from the fitted model (new random
effects and noise, :mod:`.simulation`) and refits the model to it, reusing
its structure (no formula parsing, no new model matrices).  Replicate i
draws its random numbers from ``SeedSequence(seed).spawn(n)[i]`` and
every refit starts from the estimate θ̂, so a replicate's result depends on
the seed and i only: the same whatever ``n_jobs`` and however the
replicates are spread over workers.

The result is a DataFrame with one row per replicate (objective, β, σ,
standard deviations and correlations, θ) whose :meth:`BootstrapResult.confint`
gives shortest-coverage or percentile intervals.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import threading
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .modelcopy import copy_model
from .params import variance_layout
from .simulation import seed_sequence, simulation_plan

__all__ = ["parametric_bootstrap", "BootstrapResult", "shortest_interval"]


def shortest_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The shortest interval holding a fraction ``level`` of the values (NaN ignored).

    With m = ceil(level * N) of the N sorted values v, the interval is
    [v_i, v_{i+m-1}] for the i that makes it narrowest.
    """
    v = np.sort(np.asarray(values, dtype=float)[~np.isnan(values)])
    if len(v) == 0:
        return math.nan, math.nan
    m = max(1, math.ceil(level * len(v)))
    widths = v[m - 1 :] - v[: len(v) - m + 1]
    i = int(np.argmin(widths))
    return float(v[i]), float(v[i + m - 1])


class BootstrapResult(pd.DataFrame):
    """Parametric bootstrap replicates: one row per replicate.

    Columns: ``objective``, the fixed effects, ``sigma`` (linear models and
    families with a dispersion), the ``sd_``/``cor_`` variance parameters
    and ``theta.<name>`` for θ.  ``attrs`` records the seed, the estimates,
    the number of failed refits and each replicate's message; :attr:`failures`
    lists the replicates that failed (with the exception that stopped them)
    or were not run.
    """

    @property
    def _constructor(self):
        return BootstrapResult

    @property
    def failures(self) -> pd.DataFrame:
        """The replicates that failed or were not run, with the reason (one row each)."""
        messages = pd.Series(
            self.attrs.get("messages", [""] * len(self)), index=self.index, name="message"
        )
        return messages[messages != ""].to_frame()

    @property
    def parameters(self) -> list[str]:
        """Columns with an interval: β, σ, standard deviations and correlations."""
        return list(self.attrs.get("parameters", []))

    def confint(self, level: float = 0.95, method: str = "shortest") -> pd.DataFrame:
        """Bootstrap intervals: ``"shortest"`` coverage (default) or ``"percentile"``.

        Returns a DataFrame with columns ``lower`` and ``upper``, one row per parameter.
        """
        if not 0 < level < 1:
            raise MixedModelsError(f"level must be strictly between 0 and 1, got {level!r}")
        if method not in ("shortest", "percentile"):
            raise MixedModelsError(f"method must be 'shortest' or 'percentile', got {method!r}")
        rows = {}
        for name in self.parameters:
            values = self[name].to_numpy(dtype=float)
            if method == "shortest":
                rows[name] = shortest_interval(values, level)
            else:
                rows[name] = tuple(np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2]))
        return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])


# ---- one replicate --------------------------------------------------------------------------
class _Replicator:
    """A private model copy and the simulation plan at the estimates; refits one replicate at a time."""

    def __init__(self, model, plan, columns: list[str]):
        self.model, self.plan, self.columns = model, plan, columns
        self.layout = variance_layout(model)
        self.start = model.theta.copy()

    def run(self, seeds: list[np.random.SeedSequence]) -> tuple[np.ndarray, list[str]]:
        """One result row per seed (NaN for a refit that failed) and its message ("" when it worked)."""
        results = [self._one(s) for s in seeds]
        rows = np.array([r for r, _ in results]).reshape(len(seeds), len(self.columns))
        return rows, [msg for _, msg in results]

    def _one(self, seed: np.random.SeedSequence) -> tuple[np.ndarray, str]:
        y = self.plan.draw(np.random.default_rng(seed))
        m = self.model
        if len(m.optsum.initial) == len(
            self.start
        ):  # warm start from θ̂ where the fit takes θ alone
            m.optsum.initial = self.start.copy()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.refit(y)
            return _estimates(m, self.layout), ""
        except Exception as exc:  # noqa: BLE001 - a failed replicate is a row with its reason, never an abort
            return np.full(len(self.columns), np.nan), f"{type(exc).__name__}: {exc}"


def _estimates(model, layout) -> np.ndarray:
    """objective, β, [σ], sd/cor, θ of a fitted model, as one row."""
    sigma = model.sigma  # None for generalised models without a dispersion parameter
    sdcor = layout.to_sdcor(model.theta, 1.0 if sigma is None else sigma)
    extra = [] if sigma is None else [sigma]
    return np.concatenate([[model.objective], model.beta, extra, sdcor, model.theta])


def _columns(model, layout) -> tuple[list[str], list[str]]:
    """All result columns, and those that get an interval."""
    sigma = ["sigma"] if model.sigma is not None else []
    params = list(model.coefnames) + sigma + layout.names()
    return ["objective", *params, *(f"theta.{n}" for n in model.theta_names)], params


# ---- workers ---------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}
_LOCAL = threading.local()


def _init_process(payload: bytes) -> None:
    _WORKER["rep"] = pickle.loads(payload)


def _run_process(seeds):
    return _WORKER["rep"].run(seeds)


def _run_thread(payload: bytes, seeds):
    if not hasattr(_LOCAL, "rep") or _LOCAL.payload is not payload:
        _LOCAL.rep, _LOCAL.payload = pickle.loads(payload), payload
    return _LOCAL.rep.run(seeds)


def _chunks(n: int, n_jobs: int) -> list[range]:
    size = max(1, min(25, n // (4 * n_jobs) or 1))
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _executor(backend: str, n_jobs: int, payload: bytes):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if backend == "processes":
        return ProcessPoolExecutor(
            max_workers=n_jobs, initializer=_init_process, initargs=(payload,)
        ), _run_process
    return ThreadPoolExecutor(max_workers=n_jobs), lambda seeds: _run_thread(payload, seeds)


class _Results:
    """Rows and messages of the replicates; a replicate never run is NaN with the message ``NOT_RUN``."""

    def __init__(self, n: int, ncol: int):
        self.values = np.full((n, ncol), np.nan)
        self.messages = [NOT_RUN] * n

    def store(self, start: int, rows: np.ndarray, messages: list[str]) -> None:
        self.values[start : start + len(rows)] = rows
        self.messages[start : start + len(rows)] = messages

    @property
    def complete(self) -> bool:
        return NOT_RUN not in self.messages


NOT_RUN = "not run (interrupted)"


def _run_parallel(rep: _Replicator, seeds, n_jobs: int, backend: str, bar, out: _Results) -> None:
    from concurrent.futures import as_completed

    try:
        payload = pickle.dumps(rep)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise MixedModelsError(
            f"the model cannot be sent to worker processes ({exc}); use n_jobs=1"
        ) from None
    pool, task = _executor(backend, n_jobs, payload)
    futures = {
        pool.submit(task, [seeds[i] for i in chunk]): chunk for chunk in _chunks(len(seeds), n_jobs)
    }
    try:
        for future in as_completed(futures):
            chunk = futures[future]
            out.store(chunk.start, *future.result())
            if bar is not None:
                bar.update(len(chunk))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _replicate_chunk(chunk: tuple[int, list], rep: _Replicator):
    """A task of :func:`mixedmodels.fitmany.runner.run_chunks`: its own copy of the replicator."""
    start, seeds = chunk
    return start, copy.deepcopy(rep).run(seeds)  # workers' threads may share ``rep``


def _run_scheduled(rep: _Replicator, seeds, scheduler, bar, out: _Results) -> None:
    """The replicates as chunked tasks on the many-response engine's runner (Dask, threads, processes)."""
    from ..fitmany.runner import run_chunks

    def store(_: int, result) -> None:
        start, (rows, messages) = result
        out.store(start, rows, messages)
        if bar is not None:
            bar.update(len(rows))

    chunks = ((c.start, [seeds[i] for i in c]) for c in _chunks(len(seeds), 2))
    run_chunks(_replicate_chunk, chunks, rep, scheduler=scheduler, on_result=store)


def _run_serial(rep: _Replicator, seeds, bar, out: _Results) -> None:
    for i, seed in enumerate(seeds):
        out.store(i, *rep.run([seed]))
        if bar is not None:
            bar.update(1)


def parametric_bootstrap(
    model: MixedModel,
    n: int = 1000,
    seed: Any = None,
    *,
    n_jobs: int = 1,
    progress: bool | str = "auto",
    backend: str = "processes",
    scheduler: object = None,
) -> BootstrapResult:
    """Parametric bootstrap: refit the model to ``n`` responses simulated from it.

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
        A fitted model (not changed).
    n : int
        Number of replicates.
    seed : int or SeedSequence, optional
        Entropy for ``numpy.random.SeedSequence``; replicate i uses its i-th
        spawned child.  The seed used is recorded in ``attrs["seed"]``.
    n_jobs : int
        Workers (-1: one per CPU).  Results do not depend on it.
    progress : bool or "auto"
        Show a progress bar (``"auto"``: when the run is long and the output
        is a terminal or a notebook; see :mod:`mixedmodels.progress`).
    backend : {"processes", "threads"}
        How workers run when ``n_jobs > 1``.
    scheduler : None, "threads", "processes", a dask.distributed Client or an address
        Run the replicates as chunked tasks of the many-response engine
        (:mod:`mixedmodels.fitmany.runner`) instead; the result is the same.

    Returns
    -------
    BootstrapResult
        One row per replicate; ``.confint(level, method)`` gives intervals.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MixedModelsError(f"n must be a positive integer, got {n!r}")
    if backend not in ("processes", "threads"):
        raise MixedModelsError(f"backend must be 'processes' or 'threads', got {backend!r}")
    model.require_fit("the parametric bootstrap")
    n_jobs = os.cpu_count() or 1 if n_jobs == -1 else int(n_jobs)
    if n_jobs < 1:
        raise MixedModelsError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    root = seed_sequence(seed)
    seeds = root.spawn(n)
    layout = variance_layout(model)
    columns, params = _columns(model, layout)
    plan = simulation_plan(model)
    rep = _Replicator(copy_model(model), plan, columns)
    bar = _bar(progress, n)
    out = _Results(n, len(columns))
    try:
        if scheduler is not None:
            _run_scheduled(rep, seeds, scheduler, bar, out)
        elif n_jobs == 1:
            _run_serial(rep, seeds, bar, out)
        else:
            _run_parallel(rep, seeds, n_jobs, backend, bar, out)
    except KeyboardInterrupt:
        # stop promptly and keep what is done: the rows not run are NaN and marked so
        warnings.warn(
            f"bootstrap interrupted: {n - out.messages.count(NOT_RUN)} of {n} replicates done; "
            "the result holds them (attrs['complete'] is False)",
            stacklevel=2,
        )
    finally:
        if bar is not None:
            bar.close()
    return _result(out, columns, params, model, layout, root)


def _bar(progress: bool | str, n: int):
    from ..progress import progress_bar

    return progress_bar(progress=progress, total=n, desc="bootstrap", unit=" fit")


def _result(res: _Results, columns, params, model, layout, root) -> BootstrapResult:
    index = pd.RangeIndex(len(res.values), name="replicate")
    out = BootstrapResult(pd.DataFrame(res.values, columns=columns, index=index))
    failed = sum(1 for msg in res.messages if msg and msg != NOT_RUN)
    if failed:
        warnings.warn(
            f"{failed} of {len(res.values)} bootstrap refits failed; their rows are NaN and "
            "result.failures says why",
            stacklevel=3,
        )
    estimates = dict(zip(columns, _estimates(model, layout).tolist()))
    out.attrs.update(
        seed=root.entropy,
        parameters=params,
        estimates=estimates,
        failed=failed,
        complete=res.complete,
        messages=list(res.messages),
    )
    return out
