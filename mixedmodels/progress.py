"""The package's one progress bar: shown for long work on a terminal or in a notebook.

Every long loop (optimizer evaluations, SNP blocks of a scan, phenotypes of a
variance decomposition, SNPs of an hlmm scan) asks :func:`progress_bar` for
its bar.  The ``progress`` argument users pass means:

``"auto"`` (the default of the extensions)
    a bar only when the output is a terminal or a Jupyter notebook, and only
    once the work has lasted :data:`AUTO_DELAY` seconds: short work and logs
    (output redirected to a file, a batch job) get no bar.
``True``
    a bar, wherever the output goes.
``False`` or ``None``
    no bar.

The bar is always a ``tqdm`` object (a disabled one when no bar is shown), so
callers ``update`` and ``close`` it without checking.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from .errors import MixedModelsError

__all__ = ["AUTO_DELAY", "ProgressOption", "check_progress", "interactive", "progress_bar"]

ProgressOption = bool | str | None

AUTO_DELAY = 2.0
"""Seconds of work before ``progress="auto"`` shows a bar."""


def check_progress(progress: object) -> bool | str:
    """``progress`` as True, False or ``"auto"``; a clear error for anything else."""
    if progress is None:
        return False
    if isinstance(progress, bool) or progress == "auto":
        return progress  # type: ignore[return-value]
    raise MixedModelsError(f"progress must be True, False or 'auto', not {progress!r}")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm draws a widget)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def interactive(stream: TextIO | None = None) -> bool:
    """Whether output to ``stream`` (default stderr) is seen by a person: a terminal or a notebook."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        terminal = bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        terminal = False
    return terminal or in_notebook()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    progress: ProgressOption = "auto",
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    leave: bool = False,
    stream: TextIO | None = None,
):
    """A ``tqdm`` bar over ``iterable`` (or counting to ``total``) following ``progress``.

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped as tqdm does; else call ``update(k)`` on the result.
    progress : True, False, None or "auto"
        See the module docstring.
    total, desc, unit, leave
        As for ``tqdm``.
    stream : file-like, optional
        Where the bar is drawn (default stderr).
    """
    option = check_progress(progress)
    shown = option is True or (option == "auto" and interactive(stream))
    delay = AUTO_DELAY if option == "auto" else 0.0
    if in_notebook() and stream is None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(
        iterable, total=total, desc=desc or None, unit=unit, leave=leave, disable=not shown,
        delay=delay, file=stream,
    )  # fmt: skip
