"""R-like printing of result tables (anova, emmeans, contrasts).

Numbers get five significant digits, as R prints anova tables
(``digits = max(getOption("digits") - 2, 3)``); p-values below R's
machine-epsilon display bound print as ``<2e-16``; NaN prints blank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["format_table"]

_P_COLUMNS = {"Pr(>F)", "Pr(>Chisq)", "p.value", "p"}


def _number(x: float) -> str:
    if not np.isfinite(x):
        return "Inf" if x == np.inf else ""
    return f"{x:.5g}"


def _pvalue(x: float) -> str:
    if not np.isfinite(x):
        return ""
    return "<2e-16" if x < 2.2e-16 else f"{x:.4g}"


def format_table(table: pd.DataFrame) -> str:
    """The table as text, numbers to five significant digits."""
    formatters = {}
    for col in table.columns:
        if pd.api.types.is_float_dtype(table[col]):
            formatters[col] = _pvalue if col in _P_COLUMNS else _number
    return pd.DataFrame(table).to_string(formatters=formatters)
