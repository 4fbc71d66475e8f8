"""The model frame: the rows and columns of the user's data that a model uses.

As lme4's ``model.frame`` with ``na.action = na.omit``: the columns named in
the formula (and weights) are selected, rows with a missing value in any of
them are dropped and counted, and numeric columns are checked to be finite.
The user's DataFrame is never modified: the frame is a new object.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError

__all__ = [
    "ModelFrame",
    "model_frame",
    "check_dataframe",
    "identifiers",
    "grouping_factor",
    "check_magnitude",
    "check_unique_columns",
    "usable_column",
    "NAME_PATTERN",
]

NAME_PATTERN = re.compile(r"`([^`]+)`|(?<![\w.])((?:[^\W\d]|\.)[\w.]*)")
"""A back-quoted name, or a plain R/Python name (letters of any script, digits, ``_`` and ``.``)."""


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
    """``data`` as a non-empty pandas DataFrame.

    A pandas DataFrame is returned as is.  Other data frames are converted,
    trying in turn narwhals (polars, pyarrow, modin, ...), the Arrow
    PyCapsule stream interface and the dataframe interchange protocol; only
    when nothing converts them is this a DataError naming their type.
    """
    frame = data if isinstance(data, pd.DataFrame) else _to_pandas(data)
    if frame is None:
        raise DataError(
            f"data must be a pandas DataFrame, got {type(data).__name__}; "
            "convert it with pandas.DataFrame(...) first"
        )
    if frame.shape[0] == 0:
        raise DataError("data has no rows")
    return frame


def _to_pandas(data: object) -> pd.DataFrame | None:
    """A pandas copy of a foreign data frame, or None if it is not one."""
    if data is None or isinstance(data, (dict, list, tuple, np.ndarray)):
        return None
    for convert in (_via_narwhals, _via_arrow_stream, _via_interchange):
        try:
            frame = convert(data)
        except Exception:  # each route fails in its own way on objects it does not know
            continue
        if isinstance(frame, pd.DataFrame):
            return frame
    return None


def _via_narwhals(data: object) -> pd.DataFrame:
    import narwhals as nw

    return nw.from_native(data, eager_only=True).to_pandas()


def _via_arrow_stream(data: object) -> pd.DataFrame:
    """Objects exporting the Arrow PyCapsule stream interface (polars, duckdb, ...), through pyarrow."""
    if not hasattr(data, "__arrow_c_stream__"):
        raise TypeError("no Arrow stream")
    import pyarrow as pa

    return pa.table(data).to_pandas()


def _via_interchange(data: object) -> pd.DataFrame:
    """The older dataframe interchange protocol (deprecated by pandas, still offered by some libraries)."""
    if not hasattr(data, "__dataframe__"):
        raise TypeError("no interchange protocol")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        return pd.api.interchange.from_dataframe(data)


def identifiers(text: str) -> list[str]:
    """Names (plain or back-quoted) that occur in a formula expression."""
    return [m.group(1) or m.group(2) for m in NAME_PATTERN.finditer(text)]


def used_columns(texts: Iterable[str], data: pd.DataFrame) -> list[str]:
    """Columns of ``data`` named anywhere in ``texts``, in the data's column order (each once)."""
    names = {tok for text in texts for tok in identifiers(text)}
    return list(dict.fromkeys(col for col in data.columns if str(col) in names))


def check_unique_columns(data: pd.DataFrame, columns: Iterable[str]) -> None:
    """DataError if a column the model uses occurs more than once in ``data``."""
    if data.columns.is_unique:  # cached by pandas: the usual case costs nothing
        return
    counts = data.columns.value_counts()
    for col in columns:
        if counts.get(col, 0) > 1:
            raise DataError(
                f"the data have {counts[col]} columns named {col!r}, and the model uses it; "
                "rename or drop the duplicates"
            )


def model_frame(
    data: pd.DataFrame, columns: list[str], extra: dict[str, np.ndarray] | None = None
) -> ModelFrame:
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

    Notes
    -----
    As lme4's ``model.frame(drop.unused.levels = TRUE)``: after incomplete
    rows are removed, categories without rows are dropped, so that the
    baseline of a treatment contrast is the first level that has rows.
    Columns backed by pyarrow or pandas' nullable types become numpy
    columns, and columns no model matrix can use are refused by name.
    """
    data = check_dataframe(data)
    check_unique_columns(data, columns)
    # one pass over plain arrays (pandas >= 3 copies on write, so sharing the user's
    # buffers cannot modify their data); the frame is built once at the end
    raw = {col: _column_array(data[col]) for col in columns}
    raw.update({name: np.asarray(values) for name, values in (extra or {}).items()})
    missing = np.zeros(len(data), dtype=bool)
    for values in raw.values():
        missing |= _missing(values)
    n_dropped = int(missing.sum())
    if n_dropped == len(data):
        raise DataError(
            "no complete rows: every row has a missing value in one of " + ", ".join(map(repr, raw))
        )
    complete = ~missing
    if n_dropped:
        bad = [c for c, values in raw.items() if _missing(values).any()]
        warnings.warn(
            f"{n_dropped} row(s) with missing values in {', '.join(map(repr, bad))} were dropped",
            stacklevel=3,
        )
        raw = {c: values[complete] for c, values in raw.items()}
    usable = {c: _usable_array(values, c) for c, values in raw.items()}
    for col, values in usable.items():
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":  # as for a Series
            check_magnitude(np.asarray(values), f"column {col!r}")
    frame = pd.DataFrame(usable, copy=False)
    return ModelFrame(frame, np.flatnonzero(complete), n_dropped)


def _column_array(values: pd.Series):
    """A column's values: a numpy array for numpy-backed columns, else pandas' extension array."""
    array = values.array
    return array.to_numpy() if isinstance(array, pd.arrays.NumpyExtensionArray) else array


def _missing(values) -> np.ndarray:
    """Boolean mask of the missing entries of a column's array (NaN, None, NA, NaT)."""
    if isinstance(values, pd.Categorical):
        return values.codes < 0
    kind = getattr(values, "dtype", None)
    if isinstance(kind, np.dtype) and kind.kind in "iub":
        return np.zeros(len(values), dtype=bool)  # plain integers and booleans cannot be missing
    if isinstance(kind, np.dtype) and kind.kind == "f":
        return np.isnan(np.asarray(values))
    return np.asarray(pd.isna(values), dtype=bool)


def _every_category_used(codes: np.ndarray, ncategories: int) -> bool:
    """Do the codes of a complete categorical use each of its categories?"""
    if len(codes) == 0 or codes.min() < 0:
        return False
    return bool((np.bincount(codes, minlength=ncategories) > 0).all())


def _usable_array(values, name: str):
    """:func:`usable_column` on a complete column's array, without pandas' overhead for the common kinds.

    Plain numbers and booleans and categoricals with every category present
    are returned as they are (after the finiteness check); anything else
    goes through :func:`usable_column`.
    """
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iubf":
        if dtype.kind == "f" and not np.isfinite(np.asarray(values)).all():
            raise DataError(f"column {name!r} has infinite values")
        return values
    if isinstance(values, pd.Categorical) and _every_category_used(
        values.codes, len(dtype.categories)
    ):
        return values
    return _column_array(usable_column(pd.Series(values, name=name, copy=False), name))


def usable_column(values: pd.Series, name: str) -> pd.Series:
    """A complete column in a form the model matrices can use, or a DataError naming it.

    Numbers and booleans become numpy columns, categoricals lose their
    unused categories, text stays text; complex numbers, dates, time
    differences and mixtures of types are refused with what to do instead.
    """
    values = _numpy_backed(values)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return values.cat.remove_unused_categories()
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(
            f"column {name!r} is complex-valued; a mixed model needs real numbers "
            "(use its .real, .imag or abs() explicitly)"
        )
    if pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(
            f"column {name!r} holds time differences; convert it to a number in the unit you mean, "
            f"e.g. data[{name!r}] / pandas.Timedelta(days=1)"
        )
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        raise DataError(
            f"column {name!r} holds dates or times; convert it to a number (e.g. days since the "
            f"first date: (data[{name!r}] - data[{name!r}].min()) / pandas.Timedelta(days=1)) "
            "or to a categorical"
        )
    if (
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        and not pd.api.types.is_object_dtype(dtype)
    ):
        _check_finite(values, name)
        return values
    return _object_column(values, name)


def _numpy_backed(values: pd.Series) -> pd.Series:
    """pyarrow-backed and nullable (masked) columns as numpy / categorical columns."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        converted = pa.array(values.array).to_pandas()
        return pd.Series(
            np.asarray(converted) if not hasattr(converted, "cat") else converted.array,
            index=values.index,
            name=values.name,
        )
    masked = isinstance(dtype, pd.api.extensions.ExtensionDtype) and hasattr(dtype, "numpy_dtype")
    if masked and not isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype)):
        return values.astype(dtype.numpy_dtype)
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
        # pandas' nullable "string" dtype reads as numbers to formulaic; its default text
        # dtype ("str", missing as NaN) is text, as a plain object column of str is
        return values.astype(pd.StringDtype(dtype.storage, na_value=np.nan))
    return values


def _object_column(values: pd.Series, name: str) -> pd.Series:
    """An object column of text, numbers or booleans; anything else (or a mixture) is refused."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty", "categorical"):
        return values
    if kind == "boolean":
        return values.astype(bool)
    if kind == "integer":
        return values.astype(np.int64)
    if kind in ("floating", "mixed-integer-float", "decimal"):
        return values.astype(float)
    types = sorted({type(v).__name__ for v in values})
    what = (
        f"values of several kinds ({', '.join(types)})" if len(types) > 1 else f"{types[0]} values"
    )
    raise DataError(
        f"column {name!r} holds {what}, which a model matrix cannot use; make it numeric "
        f"(pandas.to_numeric) or text/categorical (data[{name!r}].astype(str)) before fitting"
    )


def _check_finite(values: pd.Series, name: str) -> None:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            raise DataError(f"column {name!r} has infinite values")


_HUGE, _TINY = 1e150, 1e-150
"""Largest absolute values a column may have: squares and sums of squares of
values beyond these limits overflow (or underflow) double precision."""


def check_magnitude(values: object, what: str) -> None:
    """DataError if the largest absolute value of ``values`` is beyond 1e150 or below 1e-150.

    Cross-products, variances and weights such as 1/μ² of such values leave
    double precision, so the fit would return NaN or mislabel columns as
    aliased; the message asks for the rescaling that avoids it.
    """
    if isinstance(values, pd.Series):
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return
        values = values.to_numpy(dtype=float)
    arr = np.abs(np.asarray(values, dtype=float))
    if arr.size == 0:
        return
    largest = float(arr.max())
    if largest > _HUGE or 0.0 < largest < _TINY:
        raise DataError(
            f"{what} has values of magnitude {largest:.3g}, beyond what double precision can "
            f"square and sum; rescale it (e.g. {_rescaling(largest)})"
        )


def _rescaling(largest: float) -> str:
    power = int(round(np.log10(largest)))
    return f"divide by 1e{power}" if power > 0 else f"multiply by 1e{-power}"


def _factor_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes 0..k-1 and labels of the levels present, in level order.

    Categoricals keep their category order (unused categories dropped, as
    lme4 does); other columns are sorted, as R's ``factor`` does.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, categories = values.array.codes, values.dtype.categories
        if _every_category_used(codes, len(categories)):  # the usual case: no copy needed
            return codes.astype(np.intp), _labels(categories)
        cat = values.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy().astype(np.intp), _labels(cat.cat.categories)
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.intp), _labels(uniques)


def _labels(levels) -> list[str]:
    """Levels as text (through ``tolist``: iterating a pyarrow-backed index is slow)."""
    return [str(v) for v in levels.tolist()]


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
