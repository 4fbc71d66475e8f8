"""Phenotypes and covariates: reading them from a file and checking what users pass in.

The genetic models take a response ``y`` (n,) or several ``Y`` (n × t) and a
fixed-effects design ``X`` (n × p).  Arrays, Series and DataFrames are accepted;
the helpers here turn them into float arrays plus names, and stop with a
:class:`DataError` that names the column when something cannot be used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.feterm import independent_columns
from mixedmodels.genio.samples import labels_of
from mixedmodels.genio.tables import read_phenotypes

__all__ = ["Phenotypes", "as_covariates", "as_phenotypes", "covariate_matrix", "read_phenotypes"]

INTERCEPT = "(Intercept)"


class Phenotypes(NamedTuple):
    """Responses as used by the models.

    ``values`` (n, t) float; ``names`` (t,); ``index`` the individuals' sample IDs
    when ``y`` was a pandas object with a non-default index (else ``None``, see
    :mod:`mixedmodels.genio.samples`); ``one_d`` whether ``y`` was 1-D.
    """

    values: np.ndarray
    names: list[str]
    index: pd.Index | None
    one_d: bool


def as_phenotypes(y: object) -> Phenotypes:
    """Check ``y`` (n,) or (n, t): at least one column, numeric, complete, not constant."""
    index = labels_of(y)
    if isinstance(y, pd.DataFrame) and y.shape[1] == 0:
        raise DataError("the phenotype table has no columns: give at least one phenotype")
    if isinstance(y, pd.DataFrame):
        names = [str(c) for c in y.columns]
    elif isinstance(y, pd.Series):
        names = [str(y.name) if y.name is not None else "y"]
    else:
        names = None
    values = _numeric(y, "the phenotype")
    one_d = values.ndim == 1
    values = values.reshape(len(values), -1)
    if values.shape[1] == 0:
        raise DataError("the phenotype matrix has no columns: give at least one phenotype")
    if names is None:
        names = ["y"] if one_d else [f"y{j}" for j in range(values.shape[1])]
    for j, name in enumerate(names):
        _check_complete(values[:, j], f"phenotype {name!r}")
        if np.ptp(values[:, j]) == 0:
            raise DataError(f"phenotype {name!r} is constant: there is no variance to model")
    return Phenotypes(values, names, index, one_d)


def as_covariates(X: object, n: int, index: pd.Index | None = None) -> tuple[np.ndarray, list[str]]:
    """Check the fixed-effects design: (n, p), numeric, complete, full column rank.

    ``X=None`` means an intercept only.  A labelled ``X`` beside a labelled
    phenotype is aligned to it by sample ID (its other rows are left out);
    every phenotyped individual must be in it.
    """
    if X is None:
        return np.ones((n, 1)), [INTERCEPT]
    x_ids = labels_of(X)
    if index is not None and x_ids is not None and not x_ids.equals(index):
        X = _aligned_covariates(X, x_ids, index)
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    values = _numeric(X, "X")
    values = values.reshape(len(values), -1)
    names = names or [f"x{j}" for j in range(values.shape[1])]
    if values.shape[0] != n:
        raise DataError(f"X has {values.shape[0]} rows but the phenotype has {n}")
    for j, name in enumerate(names):
        _check_complete(values[:, j], f"covariate {name!r}")
    _check_full_rank(values, names)
    return values, names


def _aligned_covariates(X, x_ids: pd.Index, index: pd.Index):
    """The rows of a labelled ``X`` in the phenotype's order of sample IDs."""
    if x_ids.has_duplicates:
        raise DataError(f"X has repeated sample IDs: {few(x_ids[x_ids.duplicated()].unique())}")
    missing = index.difference(x_ids, sort=False)
    if len(missing):
        raise DataError(
            f"{len(missing)} phenotyped individual(s) missing from the covariates X: {few(missing)}"
        )
    rows = x_ids.get_indexer(index)
    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[rows]


def _numeric(a: object, what: str) -> np.ndarray:
    try:
        values = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if values.ndim not in (1, 2) or values.shape[0] == 0:
        raise DataError(f"{what} must be a non-empty vector or matrix; its shape is {values.shape}")
    return values


def _check_complete(column: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(column))
    if bad.size:
        raise DataError(
            f"{what} has {bad.size} missing or infinite value(s) (rows {few(bad, quote=False)}); drop those "
            "individuals from the phenotype, the covariates and the kinship first "
            "(match_samples does this for PLINK data)"
        )


def _check_full_rank(X: np.ndarray, names: list[str]) -> None:
    """A rank-deficient ``X`` has no unique ``β``: name the columns that depend on earlier ones.

    The aliased columns are found as the core's fixed-effects term finds them
    (:func:`mixedmodels.feterm.independent_columns`); the kinship models refuse
    rather than drop them, since their ``β`` is reported by column.
    """
    keep = independent_columns(X)
    if keep.size == X.shape[1]:
        return
    aliased = [name for j, name in enumerate(names) if j not in set(keep.tolist())]
    raise DataError(
        f"the covariates are linearly dependent (rank {keep.size} < {X.shape[1]} columns): "
        f"{few(aliased)} {'is a combination' if len(aliased) == 1 else 'are combinations'} "
        "of the columns before; drop it or them"
    )


def covariate_matrix(
    frame: pd.DataFrame, columns: list[str], *, intercept: bool = True
) -> pd.DataFrame:
    """The design ``X``: an intercept, then the named columns of ``frame``.

    Numeric columns enter as they are; a text or categorical column is
    expanded into indicator columns for all but its first level (treatment
    coding, as R does).
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"covariate column(s) {few(missing)} not found; available: {few(frame.columns, 10)}"
        )
    parts = [pd.DataFrame({INTERCEPT: 1.0}, index=frame.index)] if intercept else []
    for name in columns:
        col = frame[name]
        if col.isna().any():
            raise DataError(
                f"covariate {name!r} has {int(col.isna().sum())} missing value(s); "
                "drop those individuals first (match_samples does this)"
            )
        if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
            parts.append(col.astype(np.float64).to_frame())
        else:
            parts.append(
                pd.get_dummies(col, prefix=name, prefix_sep="", drop_first=True, dtype=float)
            )
    if not parts:
        raise DataError("the design has no columns: ask for an intercept or some covariates")
    return pd.concat(parts, axis=1)
