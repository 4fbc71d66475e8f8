"""Reporting objective evaluations while a variance model is fitted."""

from __future__ import annotations

import numpy as np

__all__ = ["EvaluationMonitor", "progress_iter"]


class EvaluationMonitor:
    """Prints (``verbose``) or counts on a progress bar (``progress``) each objective evaluation."""

    def __init__(self, label: str, verbose: bool = False, progress: bool = False):
        self.verbose = verbose
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=label, unit=" eval", leave=False)

    def __call__(self, params: np.ndarray, value: float) -> None:
        if self.verbose:
            print(f"f: {value:.8f} [{', '.join(f'{v:.6g}' for v in params)}]")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"objective {value:.6f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_iter(items, enabled: bool, desc: str, unit: str):
    """``items`` wrapped in a tqdm progress bar when ``enabled``."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit)
