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

import math
import os
import pickle
import threading
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from .modelcopy import copy_model, is_lmm, portable_copy
from .params import variance_layout
from .simulation import simulation_plan

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
    and ``theta.<name>`` for θ.  ``attrs`` records the seed, the estimates and
    the number of failed refits.
    """

    @property
    def _constructor(self):
        return BootstrapResult

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
        self.offset = model.structure.offset if is_lmm(model) else None

    def run(self, seeds: list[np.random.SeedSequence]) -> np.ndarray:
        """One result row per seed (NaN for a refit that failed)."""
        return np.array([self._one(s) for s in seeds]).reshape(len(seeds), len(self.columns))

    def _one(self, seed: np.random.SeedSequence) -> np.ndarray:
        y = self.plan.draw(np.random.default_rng(seed))
        m = self.model
        try:
            if is_lmm(m):
                m.optsum.initial = self.start.copy()
                m.refit(y if self.offset is None else y - self.offset)
            else:
                m.refit(y)
        except (ArithmeticError, MixedModelsError):
            return np.full(len(self.columns), np.nan)
        return _estimates(m, self.layout)


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


def _run_process(seeds) -> np.ndarray:
    return _WORKER["rep"].run(seeds)


def _run_thread(payload: bytes, seeds) -> np.ndarray:
    if not hasattr(_LOCAL, "rep") or _LOCAL.payload is not payload:
        _LOCAL.rep, _LOCAL.payload = pickle.loads(payload), payload
    return _LOCAL.rep.run(seeds)


def _chunks(n: int, n_jobs: int) -> list[range]:
    size = max(1, min(25, n // (4 * n_jobs) or 1))
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _executor(backend: str, n_jobs: int, payload: bytes):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if backend == "processes":
        return ProcessPoolExecutor(max_workers=n_jobs, initializer=_init_process, initargs=(payload,)), _run_process
    return ThreadPoolExecutor(max_workers=n_jobs), lambda seeds: _run_thread(payload, seeds)


def _run_parallel(rep: _Replicator, seeds, n_jobs: int, backend: str, bar) -> np.ndarray:
    from concurrent.futures import as_completed

    try:
        payload = pickle.dumps(rep)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise MixedModelsError(
            f"the model cannot be sent to worker processes ({exc}); use n_jobs=1"
        ) from None
    out = np.empty((len(seeds), len(rep.columns)))
    pool, task = _executor(backend, n_jobs, payload)
    with pool:
        futures = {pool.submit(task, [seeds[i] for i in chunk]): chunk for chunk in _chunks(len(seeds), n_jobs)}
        for future in as_completed(futures):
            chunk = futures[future]
            out[chunk.start : chunk.stop] = future.result()
            if bar is not None:
                bar.update(len(chunk))
    return out


def _run_serial(rep: _Replicator, seeds, bar) -> np.ndarray:
    out = np.empty((len(seeds), len(rep.columns)))
    for i, seed in enumerate(seeds):
        out[i] = rep.run([seed])[0]
        if bar is not None:
            bar.update(1)
    return out


def parametric_bootstrap(model, n: int = 1000, seed: Any = None, *, n_jobs: int = 1, progress: bool = True,
                         backend: str = "processes") -> BootstrapResult:
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
    progress : bool
        Show a progress bar.
    backend : {"processes", "threads"}
        How workers run when ``n_jobs > 1``.

    Returns
    -------
    BootstrapResult
        One row per replicate; ``.confint(level, method)`` gives intervals.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MixedModelsError(f"n must be a positive integer, got {n!r}")
    if backend not in ("processes", "threads"):
        raise MixedModelsError(f"backend must be 'processes' or 'threads', got {backend!r}")
    if not model.optsum.fitted:
        raise MixedModelsError("the model is not fitted; call fit() first")
    n_jobs = os.cpu_count() or 1 if n_jobs == -1 else int(n_jobs)
    if n_jobs < 1:
        raise MixedModelsError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(n)
    layout = variance_layout(model)
    columns, params = _columns(model, layout)
    plan = simulation_plan(model)
    copy = copy_model(model) if n_jobs == 1 else portable_copy(model)
    rep = _Replicator(copy, plan, columns)
    bar = _bar(progress, n)
    try:
        values = _run_serial(rep, seeds, bar) if n_jobs == 1 else _run_parallel(rep, seeds, n_jobs, backend, bar)
    finally:
        if bar is not None:
            bar.close()
    return _result(values, columns, params, model, layout, root)


def _bar(progress: bool, n: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, desc="bootstrap", unit=" fit")


def _result(values, columns, params, model, layout, root) -> BootstrapResult:
    out = BootstrapResult(pd.DataFrame(values, columns=columns, index=pd.RangeIndex(len(values), name="replicate")))
    failed = int(np.isnan(values[:, 0]).sum())
    if failed:
        warnings.warn(f"{failed} of {len(values)} bootstrap refits failed; their rows are NaN", stacklevel=3)
    estimates = dict(zip(columns, _estimates(model, layout).tolist()))
    out.attrs.update(seed=root.entropy, parameters=params, estimates=estimates, failed=failed)
    return out
