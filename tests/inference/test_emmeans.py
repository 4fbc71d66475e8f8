"""emmeans, pairs and emtrends against R's emmeans (Satterthwaite and Kenward-Roger df).

References: tests/data/anova_emmeans_reference.json (tools/make_anova_emmeans_reference.R),
models at lme4's θ (tests/inference/anova_cases.py).  Tolerances: estimates and
standard errors 1e-8 relative, df 1e-6 (Satterthwaite) / 1e-4 (Kenward-Roger),
adjusted p-values 1e-4 (emmeans' Tukey p comes from R's ptukey, ours from
scipy's studentized_range).  The df of pairwise differences agree to 2e-6: lmerTest
differentiates numerically (numDeriv), ours are analytic (on the same models the
anova df agree to 1e-6).  GLMM: lme4's vcov(use.hessian = FALSE) at lme4's
estimates, which agrees with ours to 3e-5 (see test_anova.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError

from .anova_cases import glmm, lmm, reference


def _frame(ref: dict) -> pd.DataFrame:
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in ref.items() if k != "adjust"})


def _aligned(
    ours: pd.DataFrame, ref: pd.DataFrame, keys: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ours = ours.copy()
    for k in keys:
        ours[k] = ours[k].astype(str)
        ref[k] = ref[k].astype(str)
    merged = ref.merge(ours, on=keys, suffixes=("_r", ""), how="left", validate="one_to_one")
    assert len(merged) == len(ours)
    return merged, ref


def _emm_cases():
    out = []
    for case, spec in reference()["lmm"].items():
        for i in range(len(spec.get("emmeans", []))):
            out.append((case, i))
    return out


def _spec(case: str, i: int) -> dict:
    return reference()["lmm"][case]["emmeans"][i]


def _names(spec) -> list[str]:
    return spec.replace("|", ":").split(":")


@pytest.mark.parametrize("case,i", _emm_cases())
@pytest.mark.parametrize("method", ["satterthwaite", "kenward_roger"])
def test_emmeans_match_r(case, i, method):
    spec = _spec(case, i)
    by = spec.get("by")
    grid = mm.emmeans(lmm(case), spec["specs"], by=by, ddf=method)
    keys = _names(spec["specs"]) + ([by] if by else [])
    merged, _ = _aligned(grid.table, _frame(spec[method]), keys)
    np.testing.assert_allclose(merged["emmean"], merged["emmean_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["SE"], merged["SE_r"], rtol=1e-8)
    np.testing.assert_allclose(
        merged["df"], merged["df_r"], rtol=1e-6 if method == "satterthwaite" else 1e-4
    )
    np.testing.assert_allclose(merged["lower.CL"], merged["lower.CL_r"], rtol=1e-6)


@pytest.mark.parametrize("case,i", _emm_cases())
@pytest.mark.parametrize("adjust", ["tukey", "holm", "bonferroni", "sidak", "none"])
def test_pairs_match_r(case, i, adjust):
    spec = _spec(case, i)
    by = spec.get("by")
    ref = next(p for p in spec["pairs"] if p["adjust"] == adjust)
    pairs = mm.emmeans(lmm(case), spec["specs"], by=by).pairs(adjust=adjust)
    merged, _ = _aligned(pairs, _frame(ref), ["contrast"] + ([by] if by else []))
    np.testing.assert_allclose(merged["estimate"], merged["estimate_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["SE"], merged["SE_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["df"], merged["df_r"], rtol=5e-6)
    np.testing.assert_allclose(merged["t.ratio"], merged["t.ratio_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["p.value"], merged["p.value_r"], rtol=1e-4, atol=1e-12)


def test_emtrends_match_r():
    ref = reference()["lmm"]["splitplot"]["emtrends"][0]
    trends = mm.emtrends(lmm("splitplot"), "Variety", var="nitro")
    merged, _ = _aligned(trends.table, _frame(ref["table"]), ["Variety"])
    np.testing.assert_allclose(merged["nitro.trend"], merged["nitro.trend_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["SE"], merged["SE_r"], rtol=1e-8)
    np.testing.assert_allclose(merged["df"], merged["df_r"], rtol=1e-6)
    pairs, _ = _aligned(trends.pairs(), _frame(ref["pairs"]), ["contrast"])
    np.testing.assert_allclose(pairs["estimate"], pairs["estimate_r"], rtol=1e-8)
    np.testing.assert_allclose(pairs["p.value"], pairs["p.value_r"], rtol=1e-4)


@pytest.mark.parametrize(
    "type,key,name", [("link", "emmeans", "emmean"), ("response", "emmeans_response", "prob")]
)
def test_glmm_emmeans_are_asymptotic(type, key, name):
    ref = _frame(reference()["glmm"][key])
    table = mm.emmeans(glmm(), "period", type=type).table
    merged, _ = _aligned(table, ref, ["period"])
    np.testing.assert_allclose(merged[name], merged[f"{name}_r"], rtol=1e-6)
    np.testing.assert_allclose(merged["SE"], merged["SE_r"], rtol=1e-4)
    np.testing.assert_allclose(merged["asymp.LCL"], merged["asymp.LCL_r"], rtol=1e-4)


def test_printed_like_emmeans():
    text = str(mm.emmeans(lmm("crossed"), "stimulus", by="task"))
    assert "task = lexdec:" in text and "Degrees-of-freedom method: satterthwaite" in text
    pairs = str(mm.emmeans(lmm("splitplot"), "Variety").pairs())
    assert "tukey method for comparing a family of 3 estimates" in pairs


def test_unknown_factor_lists_the_models_factors():
    with pytest.raises(
        MixedModelsError, match=r"'cond' is not a factor.*'task', 'stimulus'|'stimulus', 'task'"
    ):
        mm.emmeans(lmm("crossed"), "cond")
    with pytest.raises(MixedModelsError, match="'Varietee'.*'Variety'"):
        mm.emmeans(lmm("splitplot"), "Variety", by="Varietee")
    with pytest.raises(MixedModelsError, match="numeric covariate"):
        mm.emtrends(lmm("splitplot"), "Variety", var="Variety")
    with pytest.raises(MixedModelsError, match="adjust"):
        mm.emmeans(lmm("splitplot"), "Variety").pairs(adjust="scheffe")


def test_empty_cell_mean_is_not_estimable():
    table = mm.emmeans(lmm("missing_cell"), "Variety", by="nf").table
    missing = (table["Variety"].astype(str) == "Victory") & (table["nf"].astype(str) == "0.6")
    assert table.loc[missing, "emmean"].isna().all()
    assert table.loc[~missing, "emmean"].notna().all()


def test_at_is_checked_against_the_covariates():
    ss = mm.datasets.load("sleepstudy")
    m = mm.LinearMixedModel(
        "Reaction ~ Days + f + (1|Subject)", ss.assign(f=np.where(ss.Days < 5, "a", "b"))
    ).fit()
    shifted = mm.emmeans(m, "f", at={"Days": 2}).table["emmean"]
    at_mean = mm.emmeans(m, "f").table["emmean"]
    slope = m.coeftable().loc["Days", "Estimate"]
    np.testing.assert_allclose(shifted - at_mean, slope * (2 - ss.Days.mean()), rtol=1e-10)
    with pytest.raises(MixedModelsError, match="'Dayz'.*not a numeric covariate.*'Days'"):
        mm.emmeans(m, "f", at={"Dayz": 2})
    with pytest.raises(MixedModelsError, match=r"at\['Days'\] must be one number"):
        mm.emmeans(m, "f", at={"Days": "two"})
    with pytest.raises(MixedModelsError, match="specs must be a factor name or a list"):
        mm.emmeans(m, 3)


def test_contrast_of_marginal_means_is_emmeans_contrast():
    grid = mm.emmeans(lmm("splitplot"), "Variety")
    pairs = grid.pairs()
    pd.testing.assert_frame_equal(mm.contrast(grid), pairs)
    pd.testing.assert_frame_equal(mm.contrast(grid, "pairwise", adjust="holm"), grid.pairs("holm"))
    rev = mm.contrast(grid, "revpairwise")
    np.testing.assert_allclose(rev["estimate"], -pairs["estimate"], rtol=1e-12)
    # a custom contrast is the same test as the pair it spells out, unadjusted as in emmeans
    levels = list(grid.table["Variety"])
    first = mm.contrast(grid, {"first - second": [1, -1] + [0] * (len(levels) - 2)})
    plain = grid.pairs(adjust="none").iloc[0]
    assert first["contrast"].iloc[0] == "first - second"
    for col in ("estimate", "SE", "df", "t.ratio", "p.value"):
        assert first[col].iloc[0] == pytest.approx(plain[col], rel=1e-10)
    with pytest.raises(MixedModelsError, match="needs 3 finite coefficients"):
        mm.contrast(grid, {"bad": [1, -1]})
    with pytest.raises(MixedModelsError, match="not available"):
        mm.contrast(grid, "trt.vs.ctrl")
    with pytest.raises(MixedModelsError, match="marginal means"):
        mm.contrast(lmm("splitplot"), np.eye(len(lmm("splitplot").beta)), adjust="holm")
    with pytest.raises(MixedModelsError, match="not a str"):
        mm.contrast("model", "pairwise")
