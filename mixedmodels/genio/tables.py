"""Phenotype and covariate tables read from text files, for every command that pairs them with genotypes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError

__all__ = ["read_phenotypes"]


def read_phenotypes(path: str | Path, iid_column: str = "iid") -> pd.DataFrame:
    """Read a phenotype/covariate table: CSV if the name ends in ``.csv``, else whitespace-separated.

    Returns the table with ``iid_column`` as a string column, rows as in the file.

    Raises
    ------
    DataError
        The file is missing, a directory, empty, header-only, not text, not a
        table, or has no ``iid_column``; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"phenotype file not found: {path}")
    sep = "," if path.suffix.lower() == ".csv" else r"\s+"
    try:
        frame = pd.read_csv(path, sep=sep, dtype={iid_column: str})
    except pd.errors.EmptyDataError:
        raise DataError(f"phenotype file {path} is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"phenotype file {path} is not a readable text table: {first}") from None
    if iid_column not in frame.columns:
        raise DataError(
            f"{path} has no column {iid_column!r} of individual ids; its columns are "
            f"{few(frame.columns, 10)}"
        )
    if frame.empty:
        raise DataError(f"phenotype file {path} has a header but no rows")
    return frame
