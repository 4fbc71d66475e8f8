"""Classic mixed-model data sets shipped with the package.

The CSV files were written from R (lme4 and nlme).  Columns that R holds as
factors are loaded as pandas categoricals whose category order is R's level
order (from ``factor_levels.json``), so that treatment contrasts and the
order of coefficients match lme4.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import DataError

__all__ = ["names", "load", "path", "genetics_path", "UnknownDatasetError"]

_DATA = Path(__file__).parent / "data"


class UnknownDatasetError(DataError, KeyError):
    """No bundled data set has this name (a DataError, and a KeyError for dict-like use)."""

    __str__ = DataError.__str__  # KeyError would quote the message


@lru_cache(maxsize=1)
def _factor_levels() -> dict[str, dict[str, list[str]]]:
    with open(_DATA / "factor_levels.json") as fh:
        return json.load(fh)


def names() -> list[str]:
    """Names of the bundled data sets, sorted."""
    return sorted(p.stem for p in _DATA.glob("*.csv"))


def path(name: str) -> Path:
    """Path of the CSV file of data set ``name``."""
    if name not in names():
        import difflib

        close = difflib.get_close_matches(str(name).lower(), names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownDatasetError(
            f"unknown data set {name!r}{hint}; available: {', '.join(names())}"
        )
    return _DATA / f"{name}.csv"


def genetics_path() -> Path:
    """Folder holding the simulated PLINK panel (``geno.bed/.bim/.fam``) and ``geno_pheno.csv``."""
    return _DATA / "genetics"


def load(name: str):
    """Load data set ``name`` as a pandas DataFrame (a fresh copy on each call).

    Factor columns are categoricals with R's level order.
    """
    import pandas as pd

    levels = _factor_levels().get(name, {})
    df = pd.read_csv(path(name), dtype={col: str for col in levels})
    for col, lev in levels.items():
        if col in df.columns:
            df[col] = pd.Categorical(df[col], categories=lev)
    return df
