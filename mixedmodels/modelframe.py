"""The model frame: the rows and columns of the user's data that a model uses.

As lme4's ``model.frame`` with ``na.action = na.omit``: the columns named in
the formula (and weights) are selected, rows with a missing value in any of
them are dropped and counted, and numeric columns are checked to be finite.
The user's DataFrame is never modified: the frame is a new object.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError

__all__ = [
    "ModelFrame",
    "model_frame",
    "check_dataframe",
    "identifiers",
    "grouping_factor",
]

_TOKEN = re.compile(r"`([^`]+)`|(?<![\w.])([A-Za-z_.][\w.]*)")


@dataclass
class ModelFrame:
    """Complete cases of the columns a model uses.

    Attributes
    ----------
    frame : DataFrame
        The used columns, complete rows only, with a fresh 0..n-1 index.
    rows : ndarray of int
        Positions of the kept rows in the user's data.
    n_dropped : int
        Number of rows dropped for missing values.
    """

    frame: pd.DataFrame
    rows: np.ndarray
    n_dropped: int

    @property
    def nobs(self) -> int:
        return len(self.frame)


def check_dataframe(data: object) -> pd.DataFrame:
    """Raise DataError unless ``data`` is a non-empty pandas DataFrame."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data must be a pandas DataFrame, got {type(data).__name__}; "
            "convert it with pandas.DataFrame(...) first"
        )
    if data.shape[0] == 0:
        raise DataError("data has no rows")
    return data


def identifiers(text: str) -> list[str]:
    """Names (plain or back-quoted) that occur in a formula expression."""
    return [m.group(1) or m.group(2) for m in _TOKEN.finditer(text)]


def used_columns(texts: Iterable[str], data: pd.DataFrame) -> list[str]:
    """Columns of ``data`` named anywhere in ``texts``, in the data's column order."""
    names = {tok for text in texts for tok in identifiers(text)}
    return [col for col in data.columns if str(col) in names]


def model_frame(data: pd.DataFrame, columns: list[str], extra: dict[str, np.ndarray] | None = None) -> ModelFrame:
    """Select ``columns`` of ``data`` and drop rows with a missing value.

    Parameters
    ----------
    data : DataFrame
        The user's data (not modified).
    columns : list of str
        Columns to keep.
    extra : dict, optional
        Arrays of length ``len(data)`` (weights, offsets given as arrays)
        that take part in the missing-value screening and are carried along
        as columns with these names.
    """
    check_dataframe(data)
    frame = data.loc[:, list(columns)].copy()
    for name, values in (extra or {}).items():
        frame[name] = values
    frame = frame.reset_index(drop=True)
    complete = ~frame.isna().any(axis=1).to_numpy()
    n_dropped = int((~complete).sum())
    if n_dropped == len(frame):
        raise DataError(
            "no complete rows: every row has a missing value in one of "
            + ", ".join(map(repr, frame.columns))
        )
    if n_dropped:
        bad = [c for c in frame.columns if frame[c].isna().any()]
        warnings.warn(
            f"{n_dropped} row(s) with missing values in {', '.join(map(repr, bad))} were dropped",
            stacklevel=3,
        )
        frame = frame.loc[complete].reset_index(drop=True)
    _check_finite(frame)
    return ModelFrame(frame, np.flatnonzero(complete), n_dropped)


def _check_finite(frame: pd.DataFrame) -> None:
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            arr = values.to_numpy(dtype=float)
            if not np.isfinite(arr).all():
                raise DataError(f"column {col!r} has infinite values")


def _factor_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes 0..k-1 and labels of the levels present, in level order.

    Categoricals keep their category order (unused categories dropped, as
    lme4 does); other columns are sorted, as R's ``factor`` does.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy().astype(np.intp), [str(c) for c in cat.cat.categories]
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp), [str(u) for u in uniques]


def grouping_factor(frame: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Level codes and labels of a grouping factor, the interaction of ``factors``.

    For an interaction ``g:h`` the levels present are ordered with ``g``
    varying slowest and labelled ``"glevel:hlevel"``, as R's ``:`` on factors.
    """
    for col in factors:
        if col not in frame.columns:
            raise FormulaError(f"grouping factor {col!r} is not a column of the data")
    codes, labels = _factor_codes(frame[factors[0]])
    for col in factors[1:]:
        codes2, labels2 = _factor_codes(frame[col])
        combined = codes * len(labels2) + codes2
        present, codes = np.unique(combined, return_inverse=True)
        labels = [f"{labels[c // len(labels2)]}:{labels2[c % len(labels2)]}" for c in present]
    return codes.astype(np.intp).ravel(), labels
