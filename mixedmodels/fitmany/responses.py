"""The responses of a many-response fit: checked, aligned with the samples, cut into chunks.

Responses come as a DataFrame (samples × features, its index the samples'
labels), a 2-D array or a dask array (rows = samples, in the samples'
order).  A chunk is a dense float block of the design's rows
(:class:`Chunk`); a feature that cannot be a response (not numbers, all
missing, infinite values) travels as a column of NaN with its reason, so
that it becomes a row of the result, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["Chunk", "Responses", "as_responses"]


@dataclass
class Chunk:
    """Responses ``start .. start + m - 1``: values on the design's rows and reasons to skip some.

    Attributes
    ----------
    start : int
        Position of the first response.
    names : list of str
        Feature names.
    Y : ndarray, shape (nobs, m)
        Values on the rows the design uses (NaN where missing).
    invalid : dict of int -> str
        Column (within the chunk) -> why it is not a response.
    """

    start: int
    names: list[str]
    Y: np.ndarray
    invalid: dict[int, str] = field(default_factory=dict)


@dataclass
class Responses:
    """Responses aligned with the samples: a source of chunks over the design's rows."""

    source: Any
    names: list[str]
    rows: np.ndarray  # positions (in the samples) of the design's rows

    @property
    def count(self) -> int:
        return len(self.names)

    def chunks(self, size: int) -> Iterator[Chunk]:
        for start in range(0, self.count, size):
            yield self.chunk(start, min(self.count, start + size))

    def chunk(self, start: int, stop: int) -> Chunk:
        src = self.source
        if isinstance(src, pd.DataFrame):
            return _frame_chunk(src.iloc[self.rows, start:stop], start, self.names[start:stop])
        block = np.asarray(src[:, start:stop])[self.rows]
        return _array_chunk(block, start, self.names[start:stop])


def _frame_chunk(frame: pd.DataFrame, start: int, names: list[str]) -> Chunk:
    Y = np.full(frame.shape, np.nan)
    invalid = {}
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            invalid[j] = f"not numeric ({col.dtype} values)"
        elif pd.api.types.is_complex_dtype(col):
            invalid[j] = "complex values"
        else:
            Y[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
    return _checked(Chunk(start, names, Y, invalid))


def _array_chunk(block: np.ndarray, start: int, names: list[str]) -> Chunk:
    if block.dtype.kind not in "fiub":
        reason = f"not numeric ({block.dtype} values)"
        return Chunk(
            start, names, np.full(block.shape, np.nan), dict.fromkeys(range(len(names)), reason)
        )
    return _checked(Chunk(start, names, block.astype(float), {}))


def _checked(chunk: Chunk) -> Chunk:
    """Infinite values make a feature invalid (they are not missing values)."""
    bad = np.isinf(chunk.Y).any(axis=0)
    for j in np.flatnonzero(bad):
        chunk.invalid.setdefault(int(j), "infinite values")
    return chunk


def as_responses(responses: Any, samples: pd.DataFrame, rows: np.ndarray) -> Responses:
    """Check ``responses`` against ``samples`` and keep the design's rows (positions ``rows``).

    A DataFrame is matched to the samples by its index labels: the same
    labels in another order are reordered to the samples' order; any label
    missing on either side, or repeated, is an error naming some of them
    (no silent inner join: a sample without a response would change the
    design).  Arrays are taken row for row.
    """
    if isinstance(responses, pd.Series):
        responses = responses.to_frame()
    if isinstance(responses, pd.DataFrame):
        frame = _aligned(responses, samples)
        return Responses(frame, [str(c) for c in frame.columns], rows)
    if _is_dask(responses) or isinstance(responses, np.ndarray):
        return _array_responses(responses, samples, rows)
    if isinstance(responses, (list, tuple)):
        return _array_responses(np.asarray(responses), samples, rows)
    raise DataError(
        "responses must be a DataFrame (samples × features), a 2-D numpy array or a dask array "
        f"(rows = samples), not {type(responses).__name__}"
    )


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.startswith("dask.") and hasattr(obj, "compute")


def _array_responses(arr: Any, samples: pd.DataFrame, rows: np.ndarray) -> Responses:
    if arr.ndim == 1:
        arr = arr[:, None] if not _is_dask(arr) else arr.reshape((-1, 1))
    if arr.ndim != 2:
        raise DataError(f"responses must be 2-D (samples × features), got shape {arr.shape}")
    if arr.shape[0] != len(samples):
        hint = " (transpose it: rows must be samples)" if arr.shape[1] == len(samples) else ""
        raise DataError(
            f"responses have {arr.shape[0]} rows but the samples have {len(samples)}{hint}"
        )
    names = [f"response{j + 1}" for j in range(arr.shape[1])]
    return Responses(arr, names, rows)


def _aligned(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its rows in the samples' order (same labels), or a DataError saying what differs."""
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()].unique()[:5]
        raise DataError(f"responses have repeated feature names: {', '.join(map(str, dup))}")
    if frame.index.equals(samples.index):
        return frame
    if frame.index.duplicated().any():
        dup = frame.index[frame.index.duplicated()].unique()[:5]
        raise DataError(f"the responses' index repeats sample labels: {', '.join(map(str, dup))}")
    missing = samples.index.difference(frame.index)
    extra = frame.index.difference(samples.index)
    if len(missing) == 0 and len(extra) == 0 and len(frame) == len(samples):
        return frame.loc[samples.index]
    hint = ""
    if samples.index.isin(frame.columns).mean() > 0.5:
        hint = "; its columns look like the sample labels: pass responses.T (rows = samples)"
    raise DataError(
        "the responses' index must hold the samples' index labels (rows = samples): "
        f"{len(missing)} sample(s) have no row in responses (e.g. {_some(missing)}) and "
        f"{len(extra)} row label(s) are not samples (e.g. {_some(extra)}){hint}. "
        "Select the common samples in both first, e.g. responses.loc[samples.index]"
    )


def _some(index: pd.Index) -> str:
    return ", ".join(map(repr, index[:3].tolist())) or "none"
