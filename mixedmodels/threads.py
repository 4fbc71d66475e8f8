"""The BLAS thread policy: one BLAS thread for fits whose dense blocks are small.

OpenBLAS runs its own threads even for matrices of a few hundred rows, where
they gain nothing; on a busy machine their spin-waiting makes a small fit
tens of times slower (grouseticks: 0.25 s alone, 10 s beside one other busy
process).  Fits whose largest dense block is small therefore run with one
BLAS thread; large blocks, such as InstEval's 1156 x 1156 Cholesky, keep
every thread.

BLAS thread limits are process-wide, so concurrent fits in several Python
threads must share one limit: :class:`ThreadPolicy` counts the fits that
asked for a single thread, sets the limit when the first enters and restores
the original setting when the last leaves, whatever the order in which
they finish.  (threadpoolctl's own context manager restores the value it
saw on entry, so two interleaved fits would leave the process at one
thread.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["ThreadPolicy", "POLICY", "blas_threads_for", "SMALL_DENSE"]

SMALL_DENSE = 1000
"""Dense blocks with fewer rows than this are factored with one BLAS thread."""


class ThreadPolicy:
    """Reference-counted single-thread BLAS sections, safe under concurrent fits."""

    def __init__(self, small_dense: int = SMALL_DENSE):
        self.small_dense = small_dense
        self._lock = threading.Lock()
        self._count = 0
        self._saved: list | None = None

    @staticmethod
    def _blas_libraries() -> list:
        """The BLAS libraries loaded now (numpy's and scipy's may be two copies of OpenBLAS)."""
        from threadpoolctl import ThreadpoolController

        return [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]

    @contextlib.contextmanager
    def single_thread(self) -> Iterator[None]:
        """One BLAS thread inside the block (process-wide, restored when no fit needs it)."""
        with self._lock:
            if self._count == 0:
                self._saved = [(lib, lib.num_threads) for lib in self._blas_libraries()]
                for lib, _ in self._saved:
                    lib.set_num_threads(1)
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                if self._count == 0:
                    for lib, n in self._saved or []:
                        lib.set_num_threads(n)
                    self._saved = None

    def for_fit(self, dense_dim: int):
        """The context for a fit whose largest dense block has ``dense_dim`` rows."""
        if dense_dim < self.small_dense:
            return self.single_thread()
        return contextlib.nullcontext()


POLICY = ThreadPolicy()
"""The process's policy (one per process: BLAS limits are process-wide)."""


def blas_threads_for(dense_dim: int):
    """A context limiting BLAS to one thread when ``dense_dim`` is small, else a no-op."""
    return POLICY.for_fit(dense_dim)
