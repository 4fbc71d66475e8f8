"""Run a task over chunks: in this process, in threads or processes, or on a Dask cluster.

``run_chunks(func, tasks, shared, scheduler, on_result)`` calls
``func(task, shared)`` for every task and hands each result to
``on_result(i, result)`` as it arrives.  ``shared`` (the design of a
many-response fit, or a bootstrap's model and simulation plan) goes to each
worker once: scattered with ``broadcast=True`` on Dask, pickled once into
each worker process, or shared by reference between threads; ``func`` must
therefore not change it.  At most two tasks per worker are in flight, and
tasks are created from the iterator only as they are submitted, so memory
is bounded by the chunk size whatever the number of tasks.

``scheduler`` is ``None`` (in this process, one task after another),
``"threads"`` or ``"processes"`` (a local pool of ``n_workers``), a
``dask.distributed.Client`` or a scheduler address such as
``"tcp://10.0.0.1:8786"`` (connected to at once, failing within
:data:`CONNECT_TIMEOUT` seconds with the address in the message).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from ..errors import MixedModelsError

__all__ = ["run_chunks", "check_scheduler", "CONNECT_TIMEOUT"]

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Dask scheduler given by address."""

_WORKER: dict[str, Any] = {}


def check_scheduler(scheduler: object) -> None:
    """MixedModelsError for a scheduler that is none of the accepted kinds."""
    if scheduler is None or scheduler in ("threads", "processes"):
        return
    if isinstance(scheduler, str) and "://" in scheduler or _is_client(scheduler):
        return
    raise MixedModelsError(
        "scheduler must be None, 'threads', 'processes', a dask.distributed.Client or a "
        f"scheduler address such as 'tcp://10.0.0.1:8786', not {scheduler!r}"
    )


def _is_client(obj: object) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def run_chunks(
    func: Callable[[Any, Any], Any],
    tasks: Iterable[Any],
    shared: Any,
    *,
    scheduler: object = None,
    n_workers: int | None = None,
    on_result: Callable[[int, Any], None],
) -> None:
    """``on_result(i, func(task_i, shared))`` for every task, on ``scheduler``."""
    check_scheduler(scheduler)
    if scheduler is None:
        for i, task in enumerate(tasks):
            on_result(i, func(task, shared))
        return
    if scheduler in ("threads", "processes"):
        _on_pool(func, tasks, shared, scheduler, n_workers or os.cpu_count() or 1, on_result)
        return
    client, owned = _connect(scheduler)
    try:
        _on_dask(client, func, tasks, shared, on_result)
    finally:
        if owned:
            client.close()


def _connect(scheduler: object) -> tuple[Any, bool]:
    if _is_client(scheduler):
        return scheduler, False
    try:
        from distributed import Client
    except ImportError:
        raise MixedModelsError(
            "a Dask scheduler needs the 'dask' extra: pip install mixedmodels[dask]"
        ) from None
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT), True
    except Exception as exc:  # noqa: BLE001 - whatever the network gives (OSError, TimeoutError, ...)
        first = str(exc).splitlines()[0] if str(exc) else "no reply"
        raise MixedModelsError(
            f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT:g} s "
            f"({type(exc).__name__}: {first})"
        ) from None


def _window(submit: Callable[[int, Any], Any], tasks: Iterable[Any], size: int):
    """The first ``size`` submissions and the iterator of the rest."""
    pending = enumerate(tasks)
    return [submit(i, t) for i, t in islice(pending, size)], pending


def _on_dask(client, func, tasks, shared, on_result) -> None:
    from distributed import as_completed

    shared_future = client.scatter(shared, broadcast=True, hash=False)
    position: dict[str, int] = {}

    def submit(i: int, task: Any):
        future = client.submit(func, task, shared_future, pure=False)
        position[future.key] = i
        return future

    first, pending = _window(submit, tasks, 2 * max(1, sum(client.nthreads().values())))
    running = as_completed(first)
    for future in running:
        on_result(position.pop(future.key), future.result())
        following = next(pending, None)
        if following is not None:
            running.add(submit(*following))


def _init_process(payload: bytes) -> None:
    _WORKER["shared"] = pickle.loads(payload)


def _in_process(func, task):
    return func(task, _WORKER["shared"])


def _on_pool(func, tasks, shared, kind: str, n_workers: int, on_result) -> None:
    from concurrent.futures import (
        FIRST_COMPLETED,
        ProcessPoolExecutor,
        ThreadPoolExecutor,
        wait,
    )

    if kind == "processes":
        pool = ProcessPoolExecutor(
            n_workers, initializer=_init_process, initargs=(_pickled(shared),)
        )
    else:
        pool = ThreadPoolExecutor(n_workers)

    def submit(i: int, task: Any):
        future = (
            pool.submit(_in_process, func, task)
            if kind == "processes"
            else pool.submit(func, task, shared)
        )
        position[future] = i
        return future

    position: dict[Any, int] = {}
    try:
        running, pending = _window(submit, tasks, 2 * n_workers)
        running = set(running)
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                on_result(position.pop(future), future.result())
                following = next(pending, None)
                if following is not None:
                    running.add(submit(*following))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _pickled(shared: Any) -> bytes:
    try:
        return pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise MixedModelsError(
            f"the shared state cannot be sent to worker processes ({exc}); use scheduler=None or 'threads'"
        ) from None
