"""The BLAS thread policy (mixedmodels/threads.py): correct under concurrent fits and load."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.linalg  # noqa: F401 - loads scipy's own BLAS before thread counts are compared
from threadpoolctl import threadpool_info, threadpool_limits

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.threads import ENV_VAR, POLICY, CpuMonitor, ThreadPolicy, usable_cores


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class FixedLoad(CpuMonitor):
    """A monitor that reports a given number of busy cores (no /proc/stat)."""

    def __init__(self, other: float):
        super().__init__()
        self.other = other

    def other_busy_cores(self) -> float:
        return self.other


@pytest.fixture
def automatic(monkeypatch):
    """No set_threads() and no environment variable during the test."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    previous = mm.set_threads(None)
    yield
    mm.set_threads(previous)


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


def test_sections_of_different_counts_apply_the_smallest_and_restore():
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        policy = ThreadPolicy()
        two, one = policy.limited(2), policy.limited(1)
        two.__enter__()
        assert all(n == 2 for n in blas_threads())
        one.__enter__()
        assert all(n == 1 for n in blas_threads())
        two.__exit__(None, None, None)  # the one-thread fit is still running
        assert all(n == 1 for n in blas_threads())
        one.__exit__(None, None, None)
        assert blas_threads() == before
        assert policy._count == 0


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
    POLICY.settle()  # a restore OpenBLAS ignored while other threads ran BLAS is retried
    assert blas_threads() == before
    assert POLICY._count == 0


def test_concurrent_large_and_small_sections_leave_no_limit_behind(automatic):
    """Threads entering large (automatic) and small sections in any order restore the setting."""
    before = blas_threads()
    policy = ThreadPolicy(monitor=FixedLoad(0.0))
    barrier = threading.Barrier(6)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(20):
            with policy.for_fit(10**6 if i % 2 else 10):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    policy.settle()
    assert blas_threads() == before
    assert policy._count == 0


def test_large_blocks_keep_every_thread_on_a_quiet_machine(automatic):
    before = blas_threads()
    policy = ThreadPolicy(monitor=FixedLoad(0.0))
    with policy.for_fit(10**6):
        assert blas_threads() == before


def test_large_blocks_use_only_the_free_cores(automatic):
    policy = ThreadPolicy(monitor=FixedLoad(float(usable_cores())))  # every core busy
    assert policy.threads_for(10**6) == 1
    with policy.for_fit(10**6):
        assert all(n == 1 for n in blas_threads())
    assert policy.last_choice["why"] == "free cores"


def test_free_cores_counts_a_core_only_when_mostly_idle():
    assert FixedLoad(0.0).free_cores(4) == 4
    assert FixedLoad(0.9).free_cores(4) == 3
    assert FixedLoad(0.6).free_cores(2) == 1  # 1.4 free cores: one thread, not two
    assert FixedLoad(1.9).free_cores(2) == 1  # never fewer than one
    assert FixedLoad(7.0).free_cores(2) == 1


def test_small_blocks_use_one_thread_whatever_is_set(automatic):
    policy = ThreadPolicy(monitor=FixedLoad(0.0))
    policy.threads = 2
    assert policy.threads_for(10) == 1


def test_set_threads_and_the_environment_variable(automatic, monkeypatch):
    policy = ThreadPolicy(monitor=FixedLoad(float(usable_cores())))
    monkeypatch.setenv(ENV_VAR, "3")
    assert policy.threads_for(10**6) == 3  # the environment overrides the measured load
    policy.threads = 2
    assert policy.threads_for(10**6) == 2  # set_threads overrides the environment
    before = blas_threads()
    with policy.for_fit(10**6):
        assert all(n == 2 for n in blas_threads())
    assert blas_threads() == before


def test_a_bad_environment_variable_warns_and_is_ignored(automatic, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "many")
    policy = ThreadPolicy(monitor=FixedLoad(float(usable_cores())))
    with pytest.warns(RuntimeWarning, match=ENV_VAR):
        assert policy.threads_for(10**6) == 1


def test_set_threads_checks_its_argument_and_returns_the_previous(automatic):
    with pytest.raises(MixedModelsError, match="positive integer"):
        mm.set_threads(0)
    with pytest.raises(MixedModelsError, match="positive integer"):
        mm.set_threads(1.5)
    assert mm.set_threads(2) is None
    assert mm.set_threads(None) == 2


def test_the_monitor_measures_a_plausible_load():
    monitor = CpuMonitor(cache_seconds=0.0)
    other = monitor.other_busy_cores()
    assert 0.0 <= other <= 4 * usable_cores()  # /proc/stat's ticks are coarse: a loose bound
    cached = CpuMonitor(cache_seconds=60.0)
    assert cached.other_busy_cores() == cached.other_busy_cores()
