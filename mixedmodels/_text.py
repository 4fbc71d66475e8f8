"""Wording shared by error messages."""

from __future__ import annotations

from collections.abc import Iterable


def few(labels: Iterable[object], k: int = 5, *, quote: bool = True) -> str:
    """The first ``k`` labels (quoted), then how many more: ``'a', 'b' and 3 more``."""
    items = [str(v) for v in labels]
    shown = ", ".join(repr(v) if quote else v for v in items[:k])
    return shown + (f" and {len(items) - k} more" if len(items) > k else "")
