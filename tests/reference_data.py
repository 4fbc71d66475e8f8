"""The one loader of reference results, and a cache of fitted reference models.

Every reference file lives under ``tests/`` (the R script that made it is in
``tools/``): ``tests/data/reference/*.json`` (lme4 1.1-31 on R 4.2.2, one model
each), ``tests/data/*.json`` and the data folders of the test packages.  A plain
module rather than conftest.py, so that test files import it by a name no
other conftest shadows.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TESTS = Path(__file__).parent
REFERENCE = TESTS / "data" / "reference"


@cache
def load_json(relative: str) -> dict:
    """A reference file by its path relative to ``tests/``, e.g. ``"data/more_reference.json"``."""
    return json.loads((TESTS / relative).read_text())


def reference(name: str) -> dict:
    """A reference result by file stem, e.g. ``"sleepstudy_ml"``."""
    return load_json(f"data/reference/{name}.json")


def reference_names(kind: str) -> list[str]:
    return sorted(
        p.stem for p in REFERENCE.glob("*.json") if json.loads(p.read_text())["kind"] == kind
    )


@cache
def fitted_lmm(name: str):
    """The LMM of reference ``name`` fitted once per test session."""
    import mixedmodels as mm

    ref = reference(name)
    return mm.LinearMixedModel(
        ref["formula"], mm.datasets.load(ref["data"]), reml=ref["reml"]
    ).fit()
