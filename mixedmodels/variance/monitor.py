"""Reporting objective evaluations while a variance model is fitted (on :mod:`mixedmodels.progress`)."""

from __future__ import annotations

import numpy as np

from ..progress import ProgressOption, progress_bar

__all__ = ["EvaluationMonitor"]


class EvaluationMonitor:
    """Prints (``verbose``) or counts on the package's progress bar (``progress``) each evaluation."""

    def __init__(self, label: str, verbose: bool = False, progress: ProgressOption = False):
        self.verbose = verbose
        self.bar = progress_bar(progress=progress, desc=label, unit=" eval")

    def __call__(self, params: np.ndarray, value: float) -> None:
        if self.verbose:
            print(f"f: {value:.8f} [{', '.join(f'{v:.6g}' for v in params)}]")
        self.bar.update(1)
        self.bar.set_postfix_str(f"objective {value:.6f}", refresh=False)

    def close(self) -> None:
        self.bar.close()
