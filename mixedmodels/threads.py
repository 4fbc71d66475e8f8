"""The BLAS thread policy: as many BLAS threads as a fit can use and the machine can give.

OpenBLAS's threads spin while they wait for work.  For matrices of a few
hundred rows they gain nothing, and on a busy machine a thread that spins on
a core another process needs makes every factorisation wait for it: with
two threads on two cores and one busy neighbour, a 1156 x 1156 Cholesky
took 138 ms instead of the 16 ms one thread needs (InstEval's fit: 22 s
instead of 2).  So each fit chooses its number of BLAS threads ``n``:

* one thread when its largest dense block has fewer than ``SMALL_DENSE``
  rows (threads cannot pay off there);
* otherwise ``n`` set by :func:`set_threads` (or the environment variable
  ``MIXEDMODELS_THREADS``) when given;
* otherwise the cores this process may run on that other processes leave
  idle, measured from ``/proc/stat`` over a short window (cached for
  ``IDLE_CACHE_SECONDS``), never more than the BLAS libraries' own setting
  (``OPENBLAS_NUM_THREADS``, threadpoolctl) and never fewer than one.

BLAS thread limits are process-wide, so concurrent fits in several Python
threads share one limit: :class:`ThreadPolicy` keeps the requests of the
fits running now, applies the smallest (two fits in two threads already
share the cores), and restores the libraries' original setting when the
last fit leaves, whatever the order in which they finish.  (threadpoolctl's
own context manager restores the value it saw on entry, so two interleaved
fits would leave the process at one thread.)
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "ThreadPolicy",
    "POLICY",
    "blas_threads_for",
    "set_threads",
    "usable_cores",
    "CpuMonitor",
    "SMALL_DENSE",
    "ENV_VAR",
]

SMALL_DENSE = 1000
"""Dense blocks with fewer rows than this are factored with one BLAS thread."""

ENV_VAR = "MIXEDMODELS_THREADS"
"""Environment variable giving the BLAS threads of fits with large dense blocks."""

IDLE_CACHE_SECONDS = 2.0
"""How long a measurement of the other processes' load is reused."""

SAMPLE_SECONDS = 0.05
"""Length of the /proc/stat window when no recent measurement exists."""

RESTORE_SECONDS = 5.0
"""How long a restore of the original thread count that OpenBLAS ignored is retried."""

SPARE_CORE = 0.25
"""A core counts as free only if other processes leave at least 1 - SPARE_CORE of it idle."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _proc_stat_busy() -> float | None:
    """Seconds of CPU time all cores have spent busy since boot, or None without /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    fields = [int(v) for v in first[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process (every thread)."""
    t = os.times()
    return t.user + t.system


class CpuMonitor:
    """Cores kept busy by other processes: (busy − own CPU time) / wall time over a window.

    The window runs from the previous reading when that is recent (a few
    seconds), else over a fresh ``SAMPLE_SECONDS``; the result is cached for
    ``IDLE_CACHE_SECONDS``.  Where /proc/stat is missing the 1-minute load
    average stands in (less this process's share, which it cannot tell
    apart: an overestimate, so never more threads than with the exact count).
    """

    def __init__(self, cache_seconds: float = IDLE_CACHE_SECONDS):
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None  # (time, busy, own)
        self._value: tuple[float, float] | None = None  # (time, other cores)

    def _reading(self) -> tuple[float, float, float] | None:
        busy = _proc_stat_busy()
        if busy is None:
            return None
        return time.monotonic(), busy, _own_cpu_seconds()

    def other_busy_cores(self) -> float:
        """Average number of cores other processes kept busy, recently."""
        with self._lock:
            now = time.monotonic()
            if self._value is not None and now - self._value[0] < self.cache_seconds:
                return self._value[1]
            start = self._last
            if start is None or not (SAMPLE_SECONDS <= now - start[0] <= 5 * self.cache_seconds):
                start = self._reading()
                time.sleep(SAMPLE_SECONDS)
            end = self._reading()
            if start is None or end is None:
                value = self._from_load_average()
            else:
                wall = max(end[0] - start[0], 1e-9)
                value = max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / wall)
            self._last, self._value = end, (time.monotonic(), value)
            return value

    @staticmethod
    def _from_load_average() -> float:
        try:
            return max(0.0, os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0.0

    def free_cores(self, cores: int) -> int:
        """Cores of ``cores`` that other processes leave (almost) idle, at least one."""
        free = cores - self.other_busy_cores()
        return max(1, min(cores, math.floor(free + SPARE_CORE)))


def _env_threads() -> int | None:
    """``MIXEDMODELS_THREADS`` as a positive integer, None when unset or not usable."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        warnings.warn(
            f"{ENV_VAR}={raw!r} is not a positive integer; choosing BLAS threads automatically",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return n


def _set_threads(settings: list) -> bool:
    """Set each (library, threads); True if every library reads the new count back."""
    for lib, n in settings:
        lib.set_num_threads(n)
    return all(lib.num_threads == n for lib, n in settings)


class ThreadPolicy:
    """Process-wide BLAS thread limits for fits, reference-counted, safe under concurrent fits."""

    def __init__(self, small_dense: int = SMALL_DENSE, monitor: CpuMonitor | None = None):
        self.small_dense = small_dense
        self.monitor = monitor or CpuMonitor()
        self.threads: int | None = None  # set_threads(); None: the environment or automatic
        self.last_choice: dict | None = None  # the most recent fit's choice (benchmarks report it)
        self._lock = threading.Lock()
        self._requests: list[int] = []
        self._saved: list | None = None
        self._libs: list | None = None
        self._unrestored: list | None = None  # originals a failed restore still owes
        self._restorer: threading.Thread | None = None

    @property
    def _count(self) -> int:
        """Fits inside a limited section now."""
        return len(self._requests)

    def _blas_libraries(self) -> list:
        """The BLAS libraries loaded (numpy's and scipy's may be two copies of OpenBLAS).

        Found at the first fit (threadpoolctl's scan of the loaded libraries
        takes milliseconds, as long as a small fit); numpy and scipy, which
        load them, are imported by then.
        """
        from threadpoolctl import ThreadpoolController

        if self._libs is None or not self._libs:
            controller = ThreadpoolController()
            self._libs = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
        return self._libs

    def _apply(self) -> None:
        """Set every BLAS library to the smallest request (the caller holds the lock)."""
        n = min(self._requests)
        _set_threads([(lib, n) for lib, _ in self._saved or []])

    @contextlib.contextmanager
    def limited(self, n: int) -> Iterator[None]:
        """``n`` BLAS threads inside the block, or fewer while another fit asks for fewer.

        Process-wide; the libraries' own setting is restored when the last
        section leaves.
        """
        with self._lock:
            if not self._requests:
                self._saved = self._unrestored or [
                    (lib, lib.num_threads) for lib in self._blas_libraries()
                ]
                self._unrestored = None
            self._requests.append(max(1, int(n)))
            self._apply()
        try:
            yield
        finally:
            with self._lock:
                self._requests.remove(max(1, int(n)))
                if self._requests:
                    self._apply()
                else:
                    self._restore(self._saved or [])
                    self._saved = None

    def _restore(self, saved: list) -> None:
        """Give the libraries back their original counts (the caller holds the lock).

        OpenBLAS (scipy-openblas 0.3.31) can ignore a rise of its thread
        count while other Python threads are inside BLAS calls: the count
        reads back unchanged.  Then a background thread tries again every
        10 ms (for up to ``RESTORE_SECONDS``) until the count reads back, and
        a fit that starts meanwhile takes these originals, not the stale
        count, as the ones to restore.
        """
        if _set_threads(saved):
            return
        self._unrestored = saved
        if self._restorer is None or not self._restorer.is_alive():
            self._restorer = threading.Thread(target=self._retry_restore, daemon=True)
            self._restorer.start()

    def _retry_restore(self) -> None:
        deadline = time.monotonic() + RESTORE_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.01)
            with self._lock:
                if self._requests or self._unrestored is None:
                    return  # a fit started: it restores the originals when it ends
                if _set_threads(self._unrestored):
                    self._unrestored = None
                    return

    def settle(self, timeout: float = RESTORE_SECONDS) -> None:
        """Wait for a pending restore of the original thread counts (tests and benchmarks)."""
        restorer = self._restorer
        if restorer is not None:
            restorer.join(timeout)

    def single_thread(self):
        """One BLAS thread inside the block."""
        return self.limited(1)

    def original_threads(self) -> int:
        """The BLAS libraries' own setting (outside any fit's limit)."""
        with self._lock:
            if self._saved:
                return max(n for _, n in self._saved)
            libs = self._blas_libraries()
            return max((lib.num_threads for lib in libs), default=1)

    def threads_for(self, dense_dim: int) -> int:
        """BLAS threads for a fit whose largest dense block has ``dense_dim`` rows."""
        if dense_dim < self.small_dense:
            self.last_choice = {"threads": 1, "why": "small dense blocks", "other_cores": None}
            return 1
        explicit = self.threads if self.threads is not None else _env_threads()
        if explicit is not None:
            self.last_choice = {"threads": explicit, "why": "set", "other_cores": None}
            return explicit
        cores = min(usable_cores(), self.original_threads())
        other = self.monitor.other_busy_cores() if cores > 1 else 0.0
        n = self.monitor.free_cores(cores) if cores > 1 else 1
        self.last_choice = {"threads": n, "why": "free cores", "other_cores": other}
        return n

    def for_fit(self, dense_dim: int):
        """The context for a fit whose largest dense block has ``dense_dim`` rows."""
        return self.limited(self.threads_for(dense_dim))


POLICY = ThreadPolicy()
"""The process's policy (one per process: BLAS limits are process-wide)."""


def blas_threads_for(dense_dim: int):
    """The context choosing BLAS threads for a fit whose largest dense block has ``dense_dim`` rows."""
    return POLICY.for_fit(dense_dim)


def set_threads(n: int | None) -> int | None:
    """BLAS threads for fits with large dense blocks; ``None`` chooses them from the idle cores.

    Overrides the environment variable ``MIXEDMODELS_THREADS``.  Fits whose
    dense blocks are small (under ``SMALL_DENSE`` rows) use one thread
    whatever is set.  Returns the previous setting.

    >>> import mixedmodels as mm
    >>> previous = mm.set_threads(1)
    >>> mm.set_threads(previous)
    1
    """
    from .errors import MixedModelsError

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise MixedModelsError(f"set_threads takes a positive integer or None, got {n!r}")
    previous, POLICY.threads = POLICY.threads, n
    return previous
