"""Fixtures of the variance tests: reference results and the bundled genetics panel."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


def load_reference(name: str) -> dict:
    """A reference result in tests/variance/data by file stem (sources in data/README.md)."""
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def reference():
    return load_reference


@cache
def _fit_reference(name: str):
    """The heteroskedastic model of reference ``name``, fitted once per session."""
    import mixedmodels as mm
    from mixedmodels.variance import HeteroskedasticMixedModel

    ref = load_reference(name)
    if name.startswith("sleepstudy"):
        data = mm.datasets.load("sleepstudy")
    else:
        data = pd.read_csv(mm.datasets.genetics_path() / "geno_pheno.csv")
    return HeteroskedasticMixedModel(ref["formula"], data, dispformula=ref["dispformula"]).fit()


@pytest.fixture(scope="session")
def fitted_reference():
    return _fit_reference


@lru_cache(maxsize=1)
def _panel() -> SimpleNamespace:
    """The simulated panel: phenotypes, standardised genotypes, GRM K and same-family matrix F."""
    import mixedmodels as mm
    from mixedmodels.genio import read_dosages, read_plink, standardise

    path = mm.datasets.genetics_path()
    panel = read_plink(path / "geno.bed")
    Zs = standardise(read_dosages(panel, np.s_[:]))[0]
    pheno = pd.read_csv(path / "geno_pheno.csv")
    assert (pheno["iid"].to_numpy() == panel.fam["iid"].to_numpy()).all()
    fid = panel.fam["fid"].to_numpy()
    X = np.column_stack([np.ones(len(pheno)), pheno["age"], pheno["sex"]])
    return SimpleNamespace(
        path=path, panel=panel, pheno=pheno, X=X,
        K=Zs @ Zs.T / Zs.shape[1], F=(fid[:, None] == fid[None, :]).astype(float),
    )  # fmt: skip


@pytest.fixture(scope="session")
def genetics():
    return _panel()


@pytest.fixture(scope="session")
def sleepstudy():
    import mixedmodels as mm

    return mm.datasets.load("sleepstudy")
