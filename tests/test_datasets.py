"""Bundled data sets: names, factor levels in R's order, fresh copies."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.datasets import _DATA


def test_names():
    names = mm.datasets.names()
    assert {
        "sleepstudy",
        "dyestuff",
        "insteval",
        "verbagg",
        "cbpp",
        "grouseticks",
        "pastes",
        "penicillin",
    } <= set(names)


@pytest.mark.parametrize("name", mm.datasets.names())
def test_factor_levels_in_r_order(name):
    levels = json.loads((_DATA / "factor_levels.json").read_text()).get(name, {})
    df = mm.datasets.load(name)
    for col, lev in levels.items():
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
        assert list(df[col].cat.categories) == lev
        assert not df[col].isna().any()


def test_fresh_copy_each_time():
    a = mm.datasets.load("sleepstudy")
    a.loc[0, "Reaction"] = -1
    assert mm.datasets.load("sleepstudy").loc[0, "Reaction"] != -1


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown data set 'nope'"):
        mm.datasets.load("nope")
    with pytest.raises(
        mm.DataError, match=r"unknown data set 'SleepStudy' \(did you mean 'sleepstudy'\?\)"
    ):
        mm.datasets.load("SleepStudy")


def test_genetics_panel_shipped():
    folder = mm.datasets.genetics_path()
    for suffix in ("bed", "bim", "fam"):
        assert (folder / f"geno.{suffix}").exists()
    assert (folder / "geno_pheno.csv").exists()
