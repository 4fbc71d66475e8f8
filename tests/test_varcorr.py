"""Variance components (mixedmodels/varcorr.py): the wide and long frames and their correlations.

Reference: tests/data/varcorr_reference.json, written by
tools/make_varcorr_reference.R (lme4 1.1-31, lmerTest 3.1-3, R 4.2.2): θ and
``as.data.frame(VarCorr(m))`` of Machines' ``(0 + Machine|Worker)`` (REML; lme4
prints the correlations 0.80, 0.62 and the B–C correlation 0.77) and of
sleepstudy's ``(1 + Days|Subject)``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm

REFS = json.loads((Path(__file__).parent / "data" / "varcorr_reference.json").read_text())
REF = REFS["machines_vector_reml"]


def lme4_correlation(theta, k: int) -> np.ndarray:
    """Correlation matrix of λλ' with λ lower triangular, θ its lower triangle column by column (lme4)."""
    lam = np.zeros((k, k))
    lam[np.triu_indices(k)[::-1]] = (
        theta  # (rows, cols) of the lower triangle in column-major order
    )
    cov = lam @ lam.T
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


@cache
def machines():
    return mm.LinearMixedModel(
        REF["formula"], mm.datasets.load(REF["data"]), reml=REF["reml"]
    ).fit()


def test_lme4_theta_layout_helper_is_column_major():
    # θ = (1, 2, 3) for k = 2 is λ = [[1, 0], [2, 3]]: correlation 2 / sqrt(1 * 13)
    assert lme4_correlation([1.0, 2.0, 3.0], 2)[1, 0] == pytest.approx(2 / np.sqrt(13))


def test_wide_frame_has_every_correlation_of_a_three_column_term():
    vc = machines().varcorr()
    ref = lme4_correlation(REF["theta"], 3)
    worker = vc[vc["group"] == "Worker"].reset_index(drop=True)
    assert [c for c in vc.columns if c.startswith("corr_")] == ["corr_1", "corr_2"]
    np.testing.assert_allclose(worker.loc[1, "corr_1"], ref[1, 0], atol=2e-3)
    np.testing.assert_allclose(
        worker.loc[2, ["corr_1", "corr_2"]].to_numpy(float), ref[2, :2], atol=2e-3
    )
    assert worker.loc[0, ["corr_1", "corr_2"]].isna().all() and np.isnan(worker.loc[1, "corr_2"])
    assert vc.loc[vc["group"] == "Residual", ["corr_1", "corr_2"]].isna().all(axis=None)


@pytest.mark.parametrize("name", ["machines_vector_reml", "sleepstudy_reml"])
def test_long_form_equals_lme4s(name):
    ref = REFS[name]
    m = mm.LinearMixedModel(ref["formula"], mm.datasets.load(ref["data"]), reml=ref["reml"]).fit()
    ours = m.varcorr(form="long")
    assert len(ours) == len(ref["varcorr"])
    for (_, row), want in zip(ours.iterrows(), ref["varcorr"]):
        assert (
            row["grp"],
            row["var1"] if isinstance(row["var1"], str) else None,
            row["var2"] if isinstance(row["var2"], str) else None,
        ) == (want["grp"], want["var1"], want["var2"])
        tol = 2e-3 if want["var2"] else 2e-4  # our optimum is a little lower than lme4's
        assert row["sdcor"] == pytest.approx(want["sdcor"], rel=tol, abs=tol)


def test_correlations_at_lme4_theta_equal_lme4s():
    m = machines().copy()
    m.objective_at(np.asarray(REF["theta"]))  # the fitted model moved to lme4's estimate
    wide = m.varcorr().iloc[:3]
    ref = lme4_correlation(REF["theta"], 3)
    got = np.array(
        [[wide.iloc[i][f"corr_{j + 1}"] for j in range(i)] for i in range(1, 3)], dtype=object
    )
    np.testing.assert_allclose(
        np.concatenate(got).astype(float), ref[np.tril_indices(3, -1)], rtol=1e-10
    )


def _four_column_model(seed: int):
    rng = np.random.default_rng(seed)
    n_g = 25
    df = pd.DataFrame(
        {"g": np.repeat([f"g{i}" for i in range(n_g)], 8), "f": np.tile(list("abcd"), 2 * n_g)}
    )
    df["y"] = rng.normal(size=len(df))
    df["g"], df["f"] = df["g"].astype("category"), df["f"].astype("category")
    return mm.LinearMixedModel("y ~ 1 + f + (0 + f|g)", df)


@pytest.mark.filterwarnings("ignore:boundary \\(singular\\) fit")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wide_and_long_forms_agree_on_a_four_column_term(seed):
    m = _four_column_model(seed).fit()
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=10)
    theta[[0, 4, 7, 9]] = np.abs(theta[[0, 4, 7, 9]]) + 0.1  # the diagonal of λ
    m.objective_at(theta)
    ref = lme4_correlation(theta, 4)
    wide, long = m.varcorr(), m.varcorr(form="long")
    pairs = long[long["var2"].notna()]
    assert len(pairs) == 6
    names = list(wide["name"][:4])
    for _, r in pairs.iterrows():
        i, j = names.index(r["var2"]), names.index(r["var1"])
        assert i > j
        assert wide.iloc[i][f"corr_{j + 1}"] == pytest.approx(r["sdcor"], rel=1e-12)
        assert r["sdcor"] == pytest.approx(ref[i, j], rel=1e-9)
    assert wide.iloc[:4][[f"corr_{j}" for j in (1, 2, 3)]].notna().to_numpy().sum() == 6


def test_scalar_terms_have_no_correlation_columns(sleepstudy):
    m = mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)", sleepstudy
    ).fit()
    vc = m.varcorr()
    assert list(vc.columns) == ["group", "name", "variance", "std. dev."]
    np.testing.assert_allclose(vc["std. dev."], np.sqrt(vc["variance"]))


def test_printout_shows_the_full_lower_triangle():
    m = machines()
    text = str(m)
    row_c = next(
        line
        for line in text.splitlines()
        if "MachineC" in line and "Std" not in line and line.split()[0] in ("MachineC", "Worker")
    )
    shown = [float(tok) for tok in row_c.split()[-2:]]
    vc = m.varcorr()
    np.testing.assert_allclose(shown, vc.iloc[2][["corr_1", "corr_2"]].to_numpy(float), atol=0.005)
