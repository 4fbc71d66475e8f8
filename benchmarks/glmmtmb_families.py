"""Negative binomial, beta and zero-inflated GLMMs: ours against glmmTMB in one run.

    python benchmarks/glmmtmb_families.py [--repeats 3] [--quick]

For each reference model of tests/data/glmmtmb_reference.json (Salamanders
nbinom2/nbinom1/ZIP/ZINB, Owls zero-inflated nbinom1/nbinom2, epil nbinom2,
the simulated beta data) and a simulated 5,000-observation, 200-group
negative binomial problem (mixedmodels/datasets/data/nbsim.csv), the fit is
timed ``repeats`` times here and in R (glmmTMB 1.1.5, one Rscript process,
the data read from the same CSV files); medians, their ratio, −2 log L of
both and the machine's load (os.getloadavg before and after) are written
to benchmarks/results/glmmtmb_families.json and printed as a Markdown table.
Our time is the fit only (``fit()``, standard errors excluded, as glmmTMB's
``sdreport`` is part of its fit: see the note printed with the table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from benchlib import geomean, package_commit  # noqa: E402

import mixedmodels as mm  # noqa: E402

REFERENCE = REPO / "tests" / "data" / "glmmtmb_reference.json"
DATA = REPO / "mixedmodels" / "datasets" / "data"

EXTRA = {
    "nbsim_nb2": {
        "data": "nbsim",
        "formula": "y ~ x + (1 | g)",
        "family": "nbinom2",
        "ziformula": "~0",
    }
}

R_TEMPLATE = r"""
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
specs <- fromJSON('%(specs)s', simplifyVector = FALSE)
lev <- fromJSON('%(levels)s', simplifyVector = FALSE)
out <- list()
for (nm in names(specs)) {
  s <- specs[[nm]]
  df <- read.csv(file.path('%(data)s', paste0(s$data, '.csv')), stringsAsFactors = FALSE)
  for (col in names(lev[[s$data]])) df[[col]] <- factor(df[[col]], levels = unlist(lev[[s$data]][[col]]))
  fam <- switch(s$family, nbinom2 = nbinom2(), nbinom1 = nbinom1(), poisson = poisson(), beta = beta_family())
  times <- c(); obj <- NA
  for (r in seq_len(%(repeats)d)) {
    t0 <- proc.time()[["elapsed"]]
    m <- glmmTMB(as.formula(s$formula), data = df, family = fam, ziformula = as.formula(s$ziformula))
    times <- c(times, proc.time()[["elapsed"]] - t0)
    obj <- -2 * as.numeric(logLik(m))
  }
  out[[nm]] <- list(times = times, objective = obj)
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), '%(result)s')
"""


def specs(quick: bool) -> dict[str, dict]:
    ref = json.loads(REFERENCE.read_text())
    chosen = {k: v for k, v in ref.items() if k != "versions" and v.get("tool") == "glmmTMB"}
    chosen = {
        k: v for k, v in chosen.items() if not (v["family"] == "poisson" and v["ziformula"] == "~0")
    }
    if quick:
        chosen = {k: chosen[k] for k in ("epil_nb2", "owls_nb2_zi", "beta_sim")}
    keys = ("data", "formula", "family", "ziformula")
    return {**{k: {f: v[f] for f in keys} for k, v in chosen.items()}, **EXTRA}


def ours(spec: dict, repeats: int) -> tuple[list[float], float]:
    data = mm.datasets.load(spec["data"])
    zi = None if spec["ziformula"] == "~0" else spec["ziformula"]
    times, objective = [], float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = mm.GeneralizedLinearMixedModel(
            spec["formula"], data, family=spec["family"], ziformula=zi
        ).fit()
        times.append(time.perf_counter() - t0)
        objective = m.objective
    return times, objective


def glmmtmb(all_specs: dict, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "specs.json").write_text(json.dumps(all_specs))
        levels = DATA / "factor_levels.json"
        script = R_TEMPLATE % {
            "specs": tmp / "specs.json",
            "levels": levels,
            "data": DATA,
            "repeats": repeats,
            "result": tmp / "out.json",
        }
        (tmp / "run.R").write_text(script)
        subprocess.run(["Rscript", str(tmp / "run.R")], check=True)
        return json.loads((tmp / "out.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="three small models only")
    args = parser.parse_args()
    all_specs = specs(args.quick)
    load_before = os.getloadavg()
    rows = {}
    for name, spec in all_specs.items():
        times, objective = ours(spec, args.repeats)
        rows[name] = {"ours": times, "ours_objective": objective}
        print(f"{name}: ours {np.median(times):.2f} s", flush=True)
    r = glmmtmb(all_specs, args.repeats)
    load_after = os.getloadavg()
    for name in rows:
        rows[name]["glmmtmb"] = r[name]["times"]
        rows[name]["glmmtmb_objective"] = r[name]["objective"]
    ratios = [np.median(r["ours"]) / np.median(r["glmmtmb"]) for r in rows.values()]
    result = {
        "commit": package_commit(),
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
        "geometric_mean_ratio": geomean(ratios),
        "rows": rows,
    }
    out = BENCH / "results" / "glmmtmb_families.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(
        f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f} ({os.cpu_count()} cores)\n"
    )
    print("| model | n | ours (s) | glmmTMB (s) | ours/glmmTMB | −2 log L ours − glmmTMB |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        a, b = np.median(row["ours"]), np.median(row["glmmtmb"])
        n = len(mm.datasets.load(all_specs[name]["data"]))
        diff = row["ours_objective"] - row["glmmtmb_objective"]
        print(f"| {name} | {n} | {a:.2f} | {b:.2f} | {a / b:.2f} | {diff:.1e} |")
    print(f"\ngeometric mean of ours/glmmTMB: {result['geometric_mean_ratio']:.2f}")


if __name__ == "__main__":
    main()
