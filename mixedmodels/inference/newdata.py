"""Model matrices of a fitted model evaluated on new data.

Prediction and simulation need X, the random-effects terms' small model
matrices and the grouping-factor levels for rows the model has not seen,
built with the *training* encodings: the same factor levels and contrasts,
the same column order.  formulaic's spec learnt on the training frame does
the encoding, but it silently turns an unseen level into a row of zeros and
treats integer codes of a categorical as numbers, so columns are first
brought to their training types here, and an unseen level of a factor that
enters a model matrix is an error naming the column and the level.  Unseen
levels of grouping factors are allowed: they are reported as -1 codes.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..modelframe import check_dataframe, used_columns

__all__ = ["NewData", "new_data", "term_design", "level_codes"]

_DESIGNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model -> {term id: training Design}; kept off the model so that it stays copyable."""


@dataclass
class NewData:
    """The usable rows of new data, with the training encodings applied.

    Attributes
    ----------
    frame : DataFrame
        Complete rows of the needed columns, categoricals with training categories.
    complete : ndarray of bool
        Which rows of the user's data are in ``frame`` (others predict NaN).
    index : Index
        The user's row labels.
    groups : DataFrame
        Grouping-factor columns as text labels (for level matching).
    """

    frame: pd.DataFrame
    complete: np.ndarray
    index: pd.Index
    groups: pd.DataFrame


def _kept(model, keep: set[int] | None) -> list:
    terms = model.structure.formula.random
    return [t for i, t in enumerate(terms) if keep is None or i in keep]


def _matrix_columns(model, keep: set[int] | None = None) -> list[str]:
    """Training columns that enter a model matrix (fixed part, offsets, the kept random terms)."""
    parsed = model.structure.formula
    texts = [parsed.fixed, *parsed.offsets, *(t.expr for t in _kept(model, keep))]
    return used_columns(texts, model.structure.frame.frame)


def _group_columns(model, keep: set[int] | None = None) -> list[str]:
    return list(dict.fromkeys(c for t in _kept(model, keep) for c in t.factors))


def _training_levels(col: pd.Series) -> list[Any]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return list(col.cat.categories)
    return sorted(pd.unique(col.dropna()), key=str)


def _as_training_type(name: str, values: pd.Series, train: pd.Series, in_matrix: bool) -> pd.Series:
    """``values`` converted to the type of the training column ``train``."""
    if pd.api.types.is_bool_dtype(train):
        return values.astype("boolean") if values.isna().any() else values.astype(bool)
    if pd.api.types.is_numeric_dtype(train):
        converted = pd.to_numeric(values, errors="coerce")
        bad = values[converted.isna() & values.notna()]
        if len(bad):
            raise DataError(
                f"column {name!r} must be numeric as in the training data; got {bad.iloc[0]!r}"
            )
        return converted.astype(float)
    levels = _training_levels(train)
    by_label = {str(v): v for v in levels}
    labels = values.map(lambda v: v if pd.isna(v) else str(v))
    unseen = sorted({v for v in labels.dropna() if v not in by_label})
    if unseen and in_matrix:
        raise DataError(
            f"column {name!r} of the new data has level(s) {', '.join(map(repr, unseen))} that the model "
            f"was not fitted with; its levels are {', '.join(map(repr, map(str, levels)))}"
        )
    mapped = labels.map(lambda v: by_label.get(v, np.nan) if not pd.isna(v) else np.nan)
    if isinstance(train.dtype, pd.CategoricalDtype):
        return pd.Series(
            pd.Categorical(mapped, categories=train.cat.categories), index=values.index
        )
    # plain objects: formulaic reads pandas' nullable string dtype as numbers
    return pd.Series(mapped.to_numpy(dtype=object, na_value=np.nan), index=values.index)


def _group_labels(values: pd.Series, train: pd.Series) -> pd.Series:
    """Text labels of a grouping column, spelt as the training levels are (308 and 308.0 -> "308")."""
    integer, floating = pd.api.types.is_integer_dtype(train), pd.api.types.is_float_dtype(train)

    def label(v: Any) -> Any:
        if pd.isna(v):
            return v
        try:
            number = float(v)
        except (TypeError, ValueError):
            return str(v)
        if integer and number.is_integer():
            return str(int(number))
        return str(number) if floating else str(v)

    return values.map(label)


def new_data(model, data: pd.DataFrame, keep: set[int] | None = None) -> NewData:
    """Check ``data`` against the model's training frame and encode it as the training data.

    Only the columns of the random-effects terms in ``keep`` (indices in
    formula order; all terms when None) are needed, so population
    predictions need no grouping columns.
    """
    data = check_dataframe(data)
    train = model.structure.frame.frame
    in_matrix, groups = _matrix_columns(model, keep), _group_columns(model, keep)
    needed = list(dict.fromkeys(in_matrix + groups))
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise DataError(
            f"the new data lack column(s) {', '.join(map(repr, missing))} used by the model"
        )
    raw = data.loc[:, needed].reset_index(drop=True)
    converted = {c: _as_training_type(c, raw[c], train[c], c in in_matrix) for c in in_matrix}
    labels = {c: _group_labels(raw[c], train[c]) for c in groups}
    missing_any = pd.DataFrame(converted, index=raw.index).isna().any(axis=1)
    missing_any |= pd.DataFrame(labels, index=raw.index).isna().any(axis=1)
    complete = ~missing_any.to_numpy()
    frame = pd.DataFrame(converted, index=raw.index).loc[complete].reset_index(drop=True)
    group_frame = pd.DataFrame(labels, index=raw.index).loc[complete].reset_index(drop=True)
    return NewData(frame, complete, data.index, group_frame)


def term_design(model, term_id: int):
    """The training Design of random-effects term ``term_id`` (formula order), built once per model.

    Rebuilding it from the training frame gives the same formulaic spec (levels,
    contrasts, column order) as the fit used.
    """
    from ..design import model_matrix

    cache = _DESIGNS.setdefault(model, {})
    if term_id not in cache:
        term = model.structure.formula.random[term_id]
        cache[term_id] = model_matrix(
            term.expr, model.structure.frame.frame, model.structure.contrasts
        )
    return cache[term_id]


def level_codes(
    remat, groups: pd.DataFrame, factors: tuple[str, ...], number_unseen: bool = False
) -> np.ndarray:
    """Codes of the new rows in ``remat.levels``.

    A level the model has not seen is coded -1, or, with ``number_unseen``,
    nlevels, nlevels + 1, ... in order of first appearance.
    """
    labels = (
        groups[list(factors)].astype(str).agg(":".join, axis=1)
        if len(factors) > 1
        else groups[factors[0]]
    )
    lookup = {lev: i for i, lev in enumerate(remat.levels)}
    codes = []
    for v in labels:
        if v not in lookup and number_unseen:
            lookup[v] = len(lookup)
        codes.append(lookup.get(v, -1))
    return np.array(codes, dtype=np.intp)
