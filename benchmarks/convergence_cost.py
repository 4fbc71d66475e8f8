"""Cost of the post-fit convergence check on the reference models: fits with and without it, interleaved.

Usage::

    python benchmarks/convergence_cost.py [--reps 5] [--models PATTERN]

Times the whole call (formula and data frame in, fitted model out) with
``optsum.check_convergence`` off and on, alternating, and reports the
fastest of the repetitions of each (the least disturbed by other load on
the machine), their ratio and the evaluations the check used.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import time
import warnings
from pathlib import Path

import mixedmodels as mm

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference"


def fit(spec: dict, df, check: bool):
    formula = spec["formula"].replace("^", "**")
    if spec["kind"] == "lmm":
        m = mm.LinearMixedModel(formula, df, reml=spec["reml"])
        m.optsum.check_convergence = check
        return m.fit()
    m = mm.GeneralizedLinearMixedModel(formula, df, family=spec["family"])
    m.optsum.check_convergence = check
    return m.fit(fast=spec["nAGQ"] == 0, nagq=max(1, spec["nAGQ"]))


def timed(spec, df, check: bool) -> tuple[float, object]:
    t0 = time.perf_counter()
    m = fit(spec, df, check)
    return time.perf_counter() - t0, m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="*")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(
        "| model | without check (s) | with check (s) | ratio | check evaluations | fit evaluations | restarts |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in sorted(REFERENCE.glob("*.json")):
        spec = json.loads(path.read_text())
        if "name" not in spec or not fnmatch.fnmatch(spec["name"], args.models):
            continue
        df = mm.datasets.load(spec["data"])
        fit(spec, df, True)  # warm-up
        reps = 3 if spec["name"].startswith("insteval") else args.reps
        off, on = [], []
        for _ in range(reps):
            off.append(timed(spec, df, False)[0])
            t, m = timed(spec, df, True)
            on.append(t)
        checks = m.optsum.check_feval + (
            getattr(m, "optsum_fast", m.optsum).check_feval
            if spec["kind"] == "glmm" and spec["nAGQ"] > 0
            else 0
        )
        a, b = min(off), min(on)
        print(
            f"| {spec['name']} | {a:.4g} | {b:.4g} | {b / a:.3f} | {checks} | {m.optsum.feval} | {m.optsum.restarts} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
