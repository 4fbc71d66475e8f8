"""Satterthwaite df and a type III ANOVA on afex's fhch2010: ours against lmerTest.

The model is the crossed psycholinguistic design of 12,960 correct trials,
45 subjects and 600 items with 13 covariance parameters,

    log_rt ~ task_c * stim_c * dens_c * freq_c
             + (1 + stim_c + dens_c + freq_c | id) + (1 + task_c | item),

fitted once by REML in R (lme4, not timed).  Timed on each side, from a
fitted model with nothing cached:

* lmerTest: ``as_lmerModLmerTest(m)`` (its Hessian and Jacobian of vcov(β̂)
  with respect to (θ, σ)), the Satterthwaite coefficient table and
  ``anova(type = 3)``;
* ours, at lmerTest's θ (``restore_optsum``): ``coeftable(ddf="satterthwaite")``
  and ``anova(type=3)`` on a fresh copy of the model (the cache is per fit).

Reports medians, their ratio, the largest relative difference of the df and
of the ANOVA's DenDF and F, and ``os.getloadavg()`` before and after, into
``benchmarks/results/ddf_speed.json`` and ``.md``.

    python benchmarks/ddf_speed.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "anova_emmeans_fhch2010.csv.gz"
FORMULA = (
    "log_rt ~ task_c * stim_c * dens_c * freq_c + (1 + stim_c + dens_c + freq_c | id) "
    "+ (1 + task_c | item)"
)

R_CODE = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$id <- factor(d$id); d$item <- factor(d$item)
m <- lme4::lmer(as.formula(args[2]), d, REML = TRUE, control = lmerControl(optimizer = "bobyqa", calc.derivs = FALSE))
reps <- as.integer(args[4]); times <- numeric(reps)
for (i in seq_len(reps)) {
  t0 <- proc.time()[["elapsed"]]
  mt <- as_lmerModLmerTest(m)
  ct <- coef(summary(mt)); a <- anova(mt, type = 3)
  times[i] <- proc.time()[["elapsed"]] - t0
}
out <- list(theta = unname(getME(m, "theta")), objective = -2 * as.numeric(logLik(m)), times = times,
            df = unname(ct[, "df"]), coef = rownames(ct), anova_F = unname(a[["F value"]]),
            anova_DenDF = unname(a$DenDF), anova_terms = rownames(a),
            lmerTest = as.character(packageVersion("lmerTest")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), args[3])
"""


def run_r(reps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "ddf.R", Path(tmp) / "out.json"
        csv = Path(tmp) / "fhch.csv"
        pd.read_csv(DATA).to_csv(csv, index=False)
        script.write_text(R_CODE)
        subprocess.run(["Rscript", str(script), str(csv), FORMULA, str(out), str(reps)], check=True)
        return json.loads(out.read_text())


def at_r_optimum(ref: dict):
    import mixedmodels as mm
    from mixedmodels.optsummary import OptSummary

    model = mm.LinearMixedModel(FORMULA, pd.read_csv(DATA), reml=True)
    theta = np.asarray(ref["theta"], dtype=float)
    saved = OptSummary(theta, np.full(len(theta), -np.inf), reml=True, nagq=1, fitted=True)
    saved.fmin = float(ref["objective"])
    return model.restore_optsum(saved, rtol=1e-6)


def time_ours(model, reps: int) -> tuple[list[float], pd.DataFrame, pd.DataFrame]:
    times = []
    for _ in range(reps):
        fresh = model.copy()
        start = time.perf_counter()
        table = fresh.coeftable(ddf="satterthwaite")
        anova = fresh.anova(type=3)
        times.append(time.perf_counter() - start)
    return times, table, anova


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    ref = run_r(args.reps)
    model = at_r_optimum(ref)
    ours, table, anova = time_ours(model, args.reps)
    result = {
        "formula": FORMULA,
        "nobs": model.nobs,
        "ntheta": len(model.theta),
        "reps": args.reps,
        "lmerTest_version": ref["lmerTest"],
        "lmerTest_seconds": ref["times"],
        "ours_seconds": ours,
        "lmerTest_median": statistics.median(ref["times"]),
        "ours_median": statistics.median(ours),
        "df_max_rel_diff": rel(table["df"], ref["df"]),
        "anova_DenDF_max_rel_diff": rel(anova["DenDF"], ref["anova_DenDF"]),
        "anova_F_max_rel_diff": rel(anova["F value"], ref["anova_F"]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    result["ratio_ours_over_lmerTest"] = result["ours_median"] / result["lmerTest_median"]
    results = HERE / "results"
    (results / "ddf_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / "ddf_speed.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict) -> str:
    return (
        "# Satterthwaite df + type III ANOVA on fhch2010 (benchmarks/ddf_speed.py)\n\n"
        f"`{r['formula']}`, {r['nobs']} rows, {r['ntheta']} θ, REML, at lmerTest's θ; {r['reps']} repetitions.\n\n"
        "| | median s | all s |\n|---|---|---|\n"
        f"| lmerTest {r['lmerTest_version']} (as_lmerModLmerTest + summary + anova) | {r['lmerTest_median']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in r['lmerTest_seconds'])} |\n"
        f"| mixedmodels (coeftable(ddf) + anova(type=3)) | {r['ours_median']:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in r['ours_seconds'])} |\n\n"
        f"Ratio ours / lmerTest: {r['ratio_ours_over_lmerTest']:.3f}.  "
        f"Max relative difference: df {r['df_max_rel_diff']:.1e}, ANOVA DenDF {r['anova_DenDF_max_rel_diff']:.1e}, "
        f"F {r['anova_F_max_rel_diff']:.1e}.\n\n"
        f"Load average before {tuple(round(x, 2) for x in r['loadavg_before'])}, "
        f"after {tuple(round(x, 2) for x in r['loadavg_after'])} (2 shared cores).\n"
    )


if __name__ == "__main__":
    main()
