"""Reference results (lme4 1.1-31 on R 4.2.2) and a cache of fitted reference models.

A plain module rather than conftest.py, so that test files import it by a
name no other conftest shadows.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).parent / "data" / "reference"


def reference(name: str) -> dict:
    """A reference result by file stem, e.g. ``"sleepstudy_ml"``."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def reference_names(kind: str) -> list[str]:
    return sorted(p.stem for p in REFERENCE.glob("*.json") if json.loads(p.read_text())["kind"] == kind)


@lru_cache(maxsize=None)
def fitted_lmm(name: str):
    """The LMM of reference ``name`` fitted once per test session."""
    import mixedmodels as mm

    ref = reference(name)
    return mm.LinearMixedModel(ref["formula"], mm.datasets.load(ref["data"]), reml=ref["reml"]).fit()
