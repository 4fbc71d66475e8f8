"""Sample IDs: which individual each row of a phenotype, genotype or kinship is.

Every genetics entry point pairs rows by ID when both sides carry IDs, and
refuses to pair a labelled phenotype with an unlabelled matrix by position
unless the user says the order is the same (``assume_same_order=True``): a
phenotype reordered against its kinship otherwise silently pairs the wrong
individuals.

A pandas object is labelled unless its index is the default ``0, 1, ..., n-1``
(a ``RangeIndex``), which says nothing about who is who.  Genotype sources
carry ``iid``; a kinship is labelled when it is a DataFrame (as :func:`kinship`
returns for labelled genotypes) or a decomposition of one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError

__all__ = ["labels_of", "positions"]


def labels_of(obj: object) -> pd.Index | None:
    """The sample IDs of ``obj`` as strings, or ``None`` when it has none."""
    if isinstance(obj, (pd.Series, pd.DataFrame)):
        index = obj.index
        if isinstance(index, pd.RangeIndex):
            return None
        return pd.Index(index.astype(str))
    ids = getattr(obj, "iid", None)
    if ids is None:
        ids = getattr(obj, "ids", None)
    return None if ids is None else pd.Index(np.asarray(ids).astype(str))


def positions(
    wanted: pd.Index | None,
    have: pd.Index | None,
    n_have: int,
    what: str,
    *,
    assume_same_order: bool = False,
) -> np.ndarray | None:
    """Rows of a matrix with IDs ``have`` (``n_have`` rows) for the individuals ``wanted``.

    ``None`` means "use the rows as they are" (checked to be ``len(wanted)``
    rows when ``wanted`` is known).

    Raises
    ------
    DataError
        ``wanted`` is labelled but ``have`` is not (and ``assume_same_order`` is
        False); IDs of ``wanted`` absent from ``have``; or a size mismatch.
    """
    if wanted is None or (have is None and assume_same_order):
        if wanted is not None and len(wanted) != n_have:
            raise DataError(f"{what} has {n_have} individuals but the phenotype has {len(wanted)}")
        return None
    if have is None:
        raise DataError(
            f"the phenotype is labelled by sample ID but {what} {'carry' if what.endswith('s') else 'carries'} none, so its rows cannot "
            "be matched to individuals: give it sample IDs (a DataFrame indexed by ID; kinship() of "
            "labelled genotypes returns one) or pass assume_same_order=True if its rows are "
            "in the phenotype's order"
        )
    if have.has_duplicates:
        raise DataError(f"{what} repeats sample ID(s) {few(have[have.duplicated()])}")
    found = have.get_indexer(wanted)
    if (found < 0).any():
        absent = wanted[found < 0]
        raise DataError(
            f"{len(absent)} individual(s) of the phenotype missing from {what}: {few(absent)}"
        )
    return None if (found.size == n_have and (found == np.arange(n_have)).all()) else found
