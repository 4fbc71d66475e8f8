"""The BLAS thread policy (mixedmodels/threads.py): correct under concurrent fits."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

import mixedmodels as mm
from mixedmodels.threads import POLICY, ThreadPolicy


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_interleaved_sections_restore_the_original_count():
    before = blas_threads()
    policy = ThreadPolicy()
    a, b = policy.single_thread(), policy.single_thread()
    a.__enter__()
    b.__enter__()
    assert all(n == 1 for n in blas_threads())
    a.__exit__(None, None, None)  # the first to enter leaves first: still one fit needs one thread
    assert all(n == 1 for n in blas_threads())
    b.__exit__(None, None, None)
    assert blas_threads() == before


def test_concurrent_fits_leave_the_thread_count_as_it_was(sleepstudy):
    before = blas_threads()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            rng = np.random.default_rng(seed)
            df = sleepstudy.assign(
                Reaction=sleepstudy["Reaction"] + rng.normal(0, 5, len(sleepstudy))
            )
            for _ in range(3):
                mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", df).fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert blas_threads() == before
    assert POLICY._count == 0


def test_large_blocks_keep_every_thread():
    before = blas_threads()
    with POLICY.for_fit(10**6):
        assert blas_threads() == before
