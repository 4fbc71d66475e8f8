"""Hard models on real data (tools/make_hard_models.R): their data and lme4/glmmTMB references.

A plain module, like reference_data.py, so test files and scripts import it by name.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
HARD = DATA / "hard"


@lru_cache(maxsize=1)
def references() -> dict:
    """The whole reference file: ``models`` by name, factor ``levels`` by data set, ``versions``."""
    return json.loads((HARD / "hard_models.json").read_text())


def reference(name: str) -> dict:
    return references()["models"][name]


def model_names(kind: str | None = None) -> list[str]:
    models = references()["models"]
    return sorted(n for n, r in models.items() if kind is None or r["kind"] == kind)


def load(data: str):
    """Data set ``data``: R's factors as categoricals, in R's level order where it matters (fixed effects).

    The levels of grouping factors (hundreds to thousands) are not stored:
    their order does not change the model, so their text columns simply
    become categoricals.
    """
    import pandas as pd

    levels = references()["levels"].get(data, {})
    df = pd.read_csv(HARD / f"{data}.csv.gz", dtype={col: str for col in levels})
    for col, lev in levels.items():
        df[col] = pd.Categorical(df[col], categories=lev if isinstance(lev, list) else [lev])
    for col in df.columns[[pd.api.types.is_object_dtype(t) for t in df.dtypes]]:
        df[col] = df[col].astype("category")
    return df


def build(name: str):
    """The unfitted model of reference ``name``."""
    import mixedmodels as mm

    ref = reference(name)
    df = load(ref["data"])
    if ref["kind"] == "lmm":
        return mm.LinearMixedModel(ref["formula"], df, reml=ref["reml"])
    return mm.GeneralizedLinearMixedModel(ref["formula"], df, family=ref["family"])
