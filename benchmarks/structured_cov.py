"""Structured covariance terms against unstructured ones of the same size, and against glmmTMB.

Usage::

    python benchmarks/structured_cov.py [--subjects 300] [--times 6] [--reps 3] [--no-r]

Simulated repeated measures: ``subjects`` people measured twice at each of
``times`` visits (AR(1) random effects, ρ = 0.7, plus noise), so that the
unstructured ``us(0 + timef | id)`` is identified and every model has the
same Z (q = subjects x times).  For ``us``, ``diag``, ``cs``, ``ar1`` and
``toep`` it records, as medians over ``reps`` runs: the time of one objective
evaluation at the optimum (where the θ -> λ map is the only difference), the
whole fit and its number of evaluations; and glmmTMB's fit of the same
formula in one R process (``Rscript``; skipped with ``--no-r`` or when
glmmTMB does not load).  The load average (``os.getloadavg``) is recorded
before and after, as the machine is shared.

Results: ``benchmarks/results/structured_cov.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import benchlib as bl
import numpy as np
import pandas as pd

STRUCTURES = ["us", "diag", "cs", "ar1", "toep"]

R_TIMING = r"""
suppressPackageStartupMessages(library(glmmTMB))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$id <- factor(d$id); d$timef <- factor(d$time)
reps <- as.integer(args[2]); out <- list()
for (s in strsplit(args[3], ",")[[1]]) {
  f <- as.formula(paste0("y ~ timef + ", s, "(0 + timef | id)"))
  secs <- numeric(reps); m2ll <- NA
  for (i in seq_len(reps)) {
    t0 <- proc.time()[["elapsed"]]
    m <- glmmTMB(f, d, REML = FALSE)
    secs[i] <- proc.time()[["elapsed"]] - t0
    m2ll <- 2 * m$fit$objective
  }
  out[[s]] <- list(seconds = secs, m2loglik = m2ll)
}
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def simulate(subjects: int, times: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lags = np.abs(np.subtract.outer(np.arange(times), np.arange(times)))
    b = rng.multivariate_normal(np.zeros(times), 4.0 * 0.7**lags, size=subjects)
    rows = [
        (i, t, 0.3 * t + b[i, t] + rng.normal())
        for i in range(subjects)
        for t in range(times)
        for _ in range(2)
    ]
    df = pd.DataFrame(rows, columns=["id", "time", "y"])
    df["id"] = pd.Categorical(df["id"].astype(str))
    df["timef"] = pd.Categorical(df["time"], categories=range(times), ordered=True)
    return df


def time_ours(df: pd.DataFrame, structure: str, reps: int) -> dict:
    import mixedmodels as mm

    formula = f"y ~ timef + {structure}(0 + timef | id)"
    fits, evals = [], []
    for _ in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            m = mm.LinearMixedModel(formula, df).fit()
            fits.append(time.perf_counter() - t0)
    theta = m.theta.copy()
    for _ in range(max(20, 5 * reps)):
        t0 = time.perf_counter()
        m.objective_at(theta)
        evals.append(time.perf_counter() - t0)
    return {
        "formula": formula,
        "ntheta": len(theta),
        "m2loglik": m.objective,
        "feval": m.optsum.feval,
        "fit_seconds": bl.median(fits),
        "eval_ms": 1e3 * bl.median(evals),
    }


def time_glmmtmb(df: pd.DataFrame, reps: int) -> dict | str:
    probe = subprocess.run(["Rscript", "-e", "library(glmmTMB)"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "glmmTMB does not load"
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "d.csv", Path(tmp) / "t.R"
        df[["id", "time", "y"]].to_csv(data, index=False)
        script.write_text(R_TIMING)
        run = subprocess.run(
            ["Rscript", str(script), str(data), str(reps), ",".join(STRUCTURES)],
            capture_output=True,
            text=True,
            check=False,
        )
    if run.returncode != 0:
        return f"Rscript failed: {run.stderr[-300:]}"
    return json.loads(run.stdout)


def markdown(result: dict) -> str:
    lines = [
        f"{result['subjects']} subjects x {result['times']} visits x 2 measurements "
        f"({result['nobs']} observations, q = {result['q']}); medians of {result['reps']} fits; "
        f"load average {result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after.",
        "",
        "| structure | θ | evaluation (ms) | fit (s) | evaluations | glmmTMB fit (s) | ours / glmmTMB | −2 log L (ours − glmmTMB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    peer = result["glmmTMB"] if isinstance(result["glmmTMB"], dict) else {}
    for s, r in result["ours"].items():
        p = peer.get(s)
        tmb = bl.median(p["seconds"]) if p else float("nan")
        diff = r["m2loglik"] - p["m2loglik"] if p and p["m2loglik"] is not None else float("nan")
        lines.append(
            f"| {s} | {r['ntheta']} | {r['eval_ms']:.2f} | {r['fit_seconds']:.2f} | {r['feval']} | "
            f"{tmb:.2f} | {r['fit_seconds'] / tmb:.2f} | {diff:.2g} |"
        )
    if not peer:
        lines.append(f"\nglmmTMB: {result['glmmTMB']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--times", type=int, default=6)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-r", action="store_true")
    args = parser.parse_args(argv)
    df = simulate(args.subjects, args.times)
    result = {
        "subjects": args.subjects,
        "times": args.times,
        "nobs": len(df),
        "q": args.subjects * args.times,
        "reps": args.reps,
        "load_before": os.getloadavg(),
    }
    result["ours"] = {s: time_ours(df, s, args.reps) for s in STRUCTURES}
    result["glmmTMB"] = "skipped (--no-r)" if args.no_r else time_glmmtmb(df, args.reps)
    result["load_after"] = os.getloadavg()
    bl.RESULTS_DIR.mkdir(exist_ok=True)
    (bl.RESULTS_DIR / "structured_cov.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (bl.RESULTS_DIR / "structured_cov.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
