"""The designs of tools/make_anova_emmeans_reference.R, rebuilt in Python at R's estimates.

Each model is placed at lme4's θ (and β for the GLMM) with ``restore_optsum``,
which also checks that our objective there equals lme4's: degrees of freedom
depend on θ̂, which lme4 determines only to its optimiser's tolerance, so
comparing at lme4's θ compares the methods rather than the optimisers.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from reference_data import TESTS, load_json

import mixedmodels as mm
from mixedmodels.optsummary import OptSummary

REF = "data/anova_emmeans_reference.json"
SUM = "sum"


def reference() -> dict:
    return load_json(REF)


@cache
def fhch2010() -> pd.DataFrame:
    return pd.read_csv(
        TESTS / "data" / "anova_emmeans_fhch2010.csv.gz", dtype={"id": str, "item": str}
    )


def _frame(name: str) -> pd.DataFrame:
    ref = reference()
    if name == "fhch2010_small":
        d = fhch2010()
        return d[d["item"].isin(ref["small_items"])].reset_index(drop=True)
    oats = mm.datasets.load("oats")
    if name == "oats":
        return oats
    unbal = oats.iloc[np.asarray(ref["unbalanced_rows"]) - 1].copy()
    unbal["nf"] = unbal["nitro"].map(lambda x: f"{x:g}")
    if name == "oats_unbalanced":
        return unbal
    return unbal[~((unbal["Variety"] == "Victory") & (unbal["nf"] == "0.6"))]


def _contrasts(frame: pd.DataFrame, formula: str) -> dict:
    """Sum-to-zero contrasts for every factor of the fixed part (R: options(contrasts = contr.sum))."""
    fixed = formula.split("~")[1].split("(")[0]
    return {
        c: SUM for c in frame.columns if c in fixed and not pd.api.types.is_numeric_dtype(frame[c])
    }


def _restore(model, final: np.ndarray, objective: float, reml: bool, rtol: float):
    saved = OptSummary(final, np.full(len(final), -np.inf), reml=reml, nagq=1, fitted=True)
    saved.fmin = objective
    return model.restore_optsum(saved, rtol=rtol)


@cache
def lmm(case: str):
    """The REML model of reference case ``case`` at lme4's θ."""
    spec = reference()["lmm"][case]
    frame = _frame(spec["data"])
    model = mm.LinearMixedModel(
        spec["formula"], frame, reml=True, contrasts=_contrasts(frame, spec["formula"])
    )
    theta = np.atleast_1d(np.asarray(spec["fit"]["theta"], dtype=float))
    return _restore(model, theta, float(spec["fit"]["objective"]), True, 1e-6)


@cache
def glmm():
    spec = reference()["glmm"]
    frame = mm.datasets.load("cbpp")
    model = mm.GeneralizedLinearMixedModel(
        spec["formula"], frame, family="binomial", contrasts={"period": SUM}
    )
    fit = spec["fit"]
    final = np.concatenate([np.atleast_1d(fit["theta"]), np.asarray(fit["beta"], dtype=float)])
    return _restore(model, final, float(fit["objective"]), False, 1e-5)
