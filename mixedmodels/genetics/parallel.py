"""Running a function over SNP blocks: in this process, or as Dask tasks on a cluster.

``scheduler="threads"`` runs the blocks one after another here; each block's
linear algebra already uses every core through the BLAS threads.  A
``dask.distributed.Client`` (or a scheduler address such as
``"tcp://10.0.0.1:8786"``) sends each block to a worker as a task: the shared
state (the decomposition and the null fits) is scattered once to every worker,
and at most two tasks per worker thread are in flight, so memory stays bounded
however many SNPs there are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from mixedmodels.errors import DataError, MixedModelsError
from mixedmodels.progress import ProgressOption, progress_bar

__all__ = ["CONNECT_TIMEOUT", "Scheduler", "open_scheduler", "run_blocks"]

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Dask scheduler given by address before giving up."""

Block = tuple[int, int]


def run_blocks(
    func: Callable[[Any, Any], Any],
    blocks: Sequence[Block],
    task_input: Callable[[int, int], Any],
    shared: Any,
    *,
    scheduler: object = "threads",
    progress: ProgressOption = "auto",
) -> list[Any]:
    """``[func(task_input(start, stop), shared) for (start, stop) in blocks]``, in order.

    Parameters
    ----------
    func : callable
        Must be importable by Dask workers (a module-level function).
    blocks : sequence of (start, stop)
        SNP ranges.
    task_input : callable
        Builds a task's first argument; called only when the task is started, so
        at most a window of blocks exists at once.
    shared : object
        Second argument of every call (scattered once with Dask).
    scheduler : "threads", a ``dask.distributed.Client`` or a scheduler address
    progress : bool or "auto"
        A bar counting SNPs (:func:`mixedmodels.progress.progress_bar`).
    """
    total = sum(stop - start for start, stop in blocks)
    with (
        open_scheduler(scheduler) as runner,
        progress_bar(total=total, progress=progress, unit="SNP", desc="scan", leave=True) as bar,
    ):
        if runner.scheduler == "threads":
            return [_one(func, task_input, block, shared, bar) for block in blocks]
        return _on_dask(runner.scheduler, func, blocks, task_input, shared, bar)


class Scheduler:
    """Where blocks run: ``"threads"`` or a Dask client, closed on exit if opened here."""

    def __init__(self, scheduler: Any, owned: bool):
        self.scheduler, self.owned = scheduler, owned

    def __enter__(self) -> Scheduler:  # noqa: PYI034 - Scheduler is not subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.scheduler.close()
            self.owned = False


def _one(func: Callable, task_input: Callable, block: Block, shared: Any, bar: Any) -> Any:
    result = func(task_input(*block), shared)
    bar.update(block[1] - block[0])
    return result


def open_scheduler(scheduler: object, timeout: float = CONNECT_TIMEOUT) -> Scheduler:
    """Check ``scheduler`` and connect to it: ``"threads"``, a Dask ``Client`` or an address.

    An address is connected to at once, waiting at most ``timeout`` seconds, so
    a typo or an unreachable cluster fails before any work is done.
    """
    if isinstance(scheduler, str) and scheduler == "threads":
        return Scheduler("threads", False)
    usage = (
        "scheduler must be 'threads', a dask.distributed.Client or a scheduler address "
        f"such as 'tcp://10.0.0.1:8786', not {scheduler!r}"
    )
    if isinstance(scheduler, str) and ":" not in scheduler:
        raise DataError(usage)
    try:
        from distributed import Client
    except ImportError:
        if not isinstance(scheduler, str):
            raise DataError(usage) from None
        raise MixedModelsError(
            "a Dask scheduler needs the 'dask' extra: pip install mixedmodels[dask]"
        ) from None
    if isinstance(scheduler, Client):
        return Scheduler(scheduler, False)
    if not isinstance(scheduler, str):
        raise DataError(usage)
    try:
        return Scheduler(Client(scheduler, timeout=timeout), True)
    except Exception as exc:  # noqa: BLE001 - whatever the network gives (seen: OSError, MemoryError on junk replies)
        raise DataError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reply'})"
        ) from None


def _on_dask(
    client: Any,
    func: Callable,
    blocks: Sequence[Block],
    task_input: Callable,
    shared: Any,
    bar: Any,
) -> list[Any]:
    """Submit the blocks in a sliding window and gather the results in block order."""
    from distributed import as_completed

    shared_future = client.scatter(shared, broadcast=True)
    window = 2 * max(1, sum(client.nthreads().values()))
    pending = iter(enumerate(blocks))
    results: list[Any] = [None] * len(blocks)
    position: dict[str, int] = {}

    def submit(i: int, block: Block) -> Any:
        future = client.submit(func, task_input(*block), shared_future, pure=False)
        position[future.key] = i
        return future

    running = as_completed([submit(i, block) for i, block in islice(pending, window)])
    for future in running:
        i = position.pop(future.key)
        results[i] = future.result()
        bar.update(blocks[i][1] - blocks[i][0])
        following = next(pending, None)
        if following is not None:
            running.add(submit(*following))
    return results
