"""Single-threaded BLAS for small dense blocks.

OpenBLAS runs its own threads even for matrices of a few hundred rows, where
they gain nothing. On a busy machine their spin-waiting makes a small fit
tens of times slower (grouseticks: 0.25 s alone, 10 s beside one other busy
process). Fits whose largest dense block is small therefore run the
optimiser with one BLAS thread; large blocks, such as InstEval's 1156 x 1156
Cholesky, keep every thread.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

__all__ = ["blas_threads_for", "SMALL_DENSE"]

SMALL_DENSE = 1000
"""Dense blocks with fewer rows than this are factored with one BLAS thread."""


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a declared dependency, but keep working without it
        return None
    return ThreadpoolController()


def blas_threads_for(dense_dim: int):
    """A context limiting BLAS to one thread when ``dense_dim`` is small, else a no-op."""
    controller = _controller() if dense_dim < SMALL_DENSE else None
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")
