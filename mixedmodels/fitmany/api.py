"""``fit_many``: one mixed model, many responses (an expression study's genes, say)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..families import Gaussian, IdentityLink, get_family
from ..modelframe import check_dataframe
from ..progress import progress_bar
from .design import SharedDesign, _right_side
from .engine import Plan, fit_chunk, result_columns
from .responses import as_responses
from .result import ManyFits, write_parquet
from .runner import check_scheduler, run_chunks

__all__ = ["fit_many"]


def fit_many(
    formula: str,
    data: pd.DataFrame,
    responses: Any,
    *,
    family: Any = "gaussian",
    reml: bool = False,
    scheduler: object = None,
    n_workers: int | None = None,
    chunk: int = 256,
    start: Any = "moment",
    theta: Any = None,
    pilot: int = 200,
    ddf: str | None = None,
    contrasts: Any = None,
    optimizer: str | None = None,
    method: str = "lockstep",
    out: Any = None,
    progress: bool | str = "auto",
) -> ManyFits:
    """Fit ``response ~ formula`` for every response, sharing everything but the response.

    Parameters
    ----------
    formula : str
        A one-sided formula, e.g. ``"~ 1 + condition + (1|donor) + (1|batch)"``.
    data : DataFrame
        The samples: one row per sample, the design's columns (not modified).
    responses : DataFrame, 2-D array or dask array
        Samples × features.  A DataFrame is matched to ``data`` by index
        labels (reordered if needed; labels missing on either side are an
        error); arrays row for row.  Missing values are allowed per response.
    family : str or Family
        ``"gaussian"`` (a linear mixed model), ``"poisson"``, ``"binomial"``, ...
    reml : bool
        REML instead of ML (linear models only).
    scheduler : None, "threads", "processes", a dask.distributed Client or an address
        Where the chunks run (see :mod:`mixedmodels.fitmany.runner`);
        ``n_workers`` sizes the local pools.
    chunk : int
        Responses per task; memory in a worker is a chunk's responses.
    start : "moment", "warm" or array
        θ each fit starts from: lme4's start for each response (default;
        results then do not depend on ``chunk`` or the scheduler, and equal
        single fits), the previous converged θ of the chunk (variancePartition's
        warm start; fewer evaluations only when features have similar
        variance components), or one θ for all.
    theta : None, "consensus" or array
        None optimises θ per response.  Otherwise θ is *fixed* (screening):
        at the given values, or at the element-wise median of θ̂ over
        ``pilot`` responses spread over the data ("consensus").  Fixing θ
        fixes the ratios of the variance components to σ² for every
        response (σ² and β are still estimated per response): a GLS fit
        with a common correlation structure, as limma's
        duplicateCorrelation uses.  Tests are valid for responses whose
        ratios are near the consensus and anti-conservative or conservative
        for others; variance fractions are not per-response estimates.
    ddf : None or "satterthwaite" (or "kenward-roger")
        t tests with those denominator degrees of freedom (linear models; off by default: costly).
    optimizer : str, optional
        NLopt algorithm of the per-response fits (default BOBYQA).
    method : "lockstep" or "each"
        "lockstep" (default): Gaussian responses on the dense kernel with θ
        optimised are fitted together, the responses of each missingness
        pattern in a chunk by one Newton method on stacked objectives
        (:mod:`mixedmodels.fitmany.lockstep`); a response it does not
        converge for is fitted by itself (its row's ``optimizer`` says so).
        ``start="warm"`` (sequential by nature) and everything the dense
        kernel does not cover are fitted one response at a time.  "each":
        every response by itself, with ``optimizer`` and the post-fit check.
    out : path, optional
        Also write the table to this Parquet file, chunk by chunk as results arrive.
    progress : bool or "auto"
        A bar counting responses.

    Returns
    -------
    ManyFits
        ``.table`` (one row per response), ``.coef(name)``, ``.varpart()``, ``.to_parquet(path)``.
    """
    t0 = time.perf_counter()
    _check_options(chunk, start, theta, ddf, reml, family, method)
    check_scheduler(scheduler)
    fam = _family(family)
    data = check_dataframe(data)
    design = SharedDesign(_right_side(formula), data, family=fam, reml=reml and fam is None,
                          contrasts=contrasts)  # fmt: skip
    resp = as_responses(responses, data, design.rows)
    plan = Plan(design, start=start, ddf=ddf, optimizer=optimizer, method=method)
    if theta is not None:
        plan.theta = _fixed_theta(theta, plan, resp, pilot)
    table = _run(plan, resp, chunk, scheduler, n_workers, out, progress)
    info = {
        "formula": formula, "family": "gaussian" if fam is None else type(fam).__name__.lower(),
        "criterion": "REML" if design.reml else ("ML" if fam is None else "Laplace"),
        "chunk": chunk, "scheduler": _describe(scheduler), "start": start,
        "theta": None if plan.theta is None else plan.theta.tolist(),
        "engine": "dense" if design.kernel is not None else "model refit",
        "method": "lockstep" if plan.lockstep else "each",
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    return ManyFits(table, design.coefnames, info, design)


def _check_options(chunk, start, theta, ddf, reml, family, method) -> None:
    if method not in ("lockstep", "each"):
        raise MixedModelsError(f"method must be 'lockstep' or 'each', got {method!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise MixedModelsError(f"chunk must be a positive integer, got {chunk!r}")
    if isinstance(start, str) and start not in ("warm", "moment"):
        raise MixedModelsError(f"start must be 'warm', 'moment' or a θ vector, got {start!r}")
    if isinstance(theta, str) and theta != "consensus":
        raise MixedModelsError(f"theta must be None, 'consensus' or a θ vector, got {theta!r}")
    if ddf is not None:
        from ..inference.ddf import normalize_ddf

        normalize_ddf(ddf)
    if ddf is not None and _family(family) is not None:
        raise MixedModelsError(
            f"ddf={ddf!r} applies to linear mixed models; family {family!r} has Wald z tests"
        )
    if reml and _family(family) is not None:
        raise MixedModelsError(
            f"reml=True applies to linear mixed models; family {family!r} is fitted by maximum likelihood"
        )


def _family(family: Any):
    """None for the linear mixed model (Gaussian, identity link), else the Family."""
    if family is None:
        return None
    fam = get_family(family, None) if isinstance(family, str) else family
    if isinstance(fam, Gaussian) and isinstance(fam.link, IdentityLink):
        return None
    return fam


def _describe(scheduler: object) -> str:
    if scheduler is None or isinstance(scheduler, str):
        return str(scheduler or "in-process")
    return type(scheduler).__name__


def _fixed_theta(theta: Any, plan: Plan, resp, pilot: int) -> np.ndarray:
    """The fixed θ: as given (checked), or the median θ̂ over pilot responses spread over the data."""
    design = plan.design
    if design.kernel is None:
        raise MixedModelsError(
            "a fixed θ (screening) needs a Gaussian model with few random effects (the dense kernel)"
        )
    if not isinstance(theta, str):
        value = np.asarray(theta, dtype=float)
        if value.shape != (design.ntheta,) or not np.isfinite(value).all():
            raise MixedModelsError(f"theta must be {design.ntheta} finite values, got {theta!r}")
        return value
    picks = np.unique(np.linspace(0, resp.count - 1, min(pilot, resp.count)).astype(int))
    rows = []
    for i in picks:
        rows.append(fit_chunk(resp.chunk(int(i), int(i) + 1), plan))
    pilot_table = pd.concat(rows)
    names = [c for c in pilot_table.columns if c.startswith("theta.")]
    good = pilot_table.loc[pilot_table["converged"], names]
    if good.empty:
        raise MixedModelsError("no pilot response converged: cannot form a consensus θ")
    return good.median().to_numpy(dtype=float)


def _run(plan: Plan, resp, chunk: int, scheduler, n_workers, out, progress) -> pd.DataFrame:
    """Fit every chunk; results kept in order (and streamed to ``out`` in order)."""
    parts: dict[int, pd.DataFrame] = {}
    sink = _OrderedSink(out)
    with progress_bar(
        total=resp.count, progress=progress, desc="fit_many", unit=" response"
    ) as bar:

        def on_result(i: int, frame: pd.DataFrame) -> None:
            parts[i] = frame
            sink.add(i, frame)
            bar.update(len(frame))

        try:
            run_chunks(fit_chunk, resp.chunks(chunk), plan, scheduler=scheduler,
                       n_workers=n_workers, on_result=on_result)  # fmt: skip
        finally:
            sink.close()
    if not parts:
        return pd.DataFrame(columns=result_columns(plan.design, plan.ddf)).set_index("response")
    table = pd.concat([parts[i] for i in sorted(parts)], ignore_index=True)
    return table.set_index("response")


class _OrderedSink:
    """Writes chunk results to a Parquet file in chunk order, as soon as the order allows."""

    def __init__(self, path: Any):
        self.path, self.next, self.waiting = path, 0, {}
        self._frames = None
        if path is not None:
            from ..cli import check_writable

            check_writable(str(path))
            self._queue: list[pd.DataFrame] = []

    def add(self, i: int, frame: pd.DataFrame) -> None:
        if self.path is None:
            return
        self.waiting[i] = frame
        while self.next in self.waiting:
            self._queue.append(self.waiting.pop(self.next).set_index("response"))
            self.next += 1
            self._flush()

    def _flush(self) -> None:
        if self._frames is None:
            self._frames = _Stream(self.path)
        for frame in self._queue:
            self._frames.write(frame)
        self._queue.clear()

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()


class _Stream:
    """An open Parquet writer taking one DataFrame (row group) at a time."""

    def __init__(self, path: Any):
        import pyarrow.parquet as pq  # noqa: F401 - fail here, before any fit, if missing

        self.path, self.writer = path, None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        batch = pa.Table.from_pandas(frame, preserve_index=True)
        if self.writer is None:
            self.writer = pq.ParquetWriter(str(self.path), batch.schema)
        self.writer.write_table(batch.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_ = write_parquet  # the whole-table writer lives in .result
