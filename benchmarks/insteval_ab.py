"""InstEval before/after, A/B in one run: two checkouts alternate in fresh processes.

Usage::

    python benchmarks/insteval_ab.py --base /tmp/base-insteval [--rounds 5] [--evals 20]

Each round runs, in a fresh Python process per checkout (the baseline first,
then this one, then the order swaps), one untimed warm-up fit of
``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)``, one timed fit (from
formula and data frame) and the median of ``--evals`` timed objective
evaluations at the optimum, with the BLAS threads the fit chose.  The load average and the cores other processes
kept busy are recorded for every process.  Results:
``benchmarks/results/insteval_ab.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

CHILD = r"""
import json, sys, time
import numpy as np
import mixedmodels as mm
formula = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
df = mm.datasets.load("insteval")
mm.LinearMixedModel(formula, df).fit()
t = time.perf_counter()
m = mm.LinearMixedModel(formula, df).fit()
fit_s = time.perf_counter() - t
theta = np.asarray(m.optsum.final)
times = []
from mixedmodels.threads import blas_threads_for
with blas_threads_for(m.system.dense_dim):  # the BLAS threads the fit uses
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter()
        m.objective_at(theta)
        times.append(time.perf_counter() - t)
print(json.dumps({"fit_s": fit_s, "eval_ms": 1e3 * float(np.median(times)),
                  "feval": m.optsum.feval, "objective": m.objective}))
"""


def run_child(checkout: Path, evals: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    la = os.getloadavg()[0]
    with bl.OtherLoad() as other:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(evals)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "loadavg": la, "other": other.cores}


def commit_of(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", required=True, help="checkout of the baseline commit")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--out", default=str(bl.RESULTS_DIR))
    args = p.parse_args(argv)
    sides = {"base": Path(args.base).resolve(), "this": bl.REPO_DIR}
    start_load = os.getloadavg()[0]
    rows = []
    for r in range(args.rounds):
        order = ["base", "this"] if r % 2 == 0 else ["this", "base"]
        for side in order:
            rec = {"round": r + 1, "side": side, **run_child(sides[side], args.evals)}
            rows.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
    end_load = os.getloadavg()[0]
    summary = {}
    for side in sides:
        mine = [x for x in rows if x["side"] == side]
        summary[side] = {k: bl.median([x[k] for x in mine]) for k in ("fit_s", "eval_ms")}
    ratio = {k: summary["this"][k] / summary["base"][k] for k in ("fit_s", "eval_ms")}
    md = [
        f"# InstEval A/B\n\nRun {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}: "
        f"`python benchmarks/insteval_ab.py --rounds {args.rounds} --evals {args.evals}`; "
        f"base {commit_of(sides['base'])}, this {bl.package_commit()}; "
        f"load average (1 min) at start / end: {start_load:.2f} / {end_load:.2f}.\n",
        "| round | side | fit (s) | evaluation (ms) | evals | objective | load avg | other cores |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {x['round']} | {x['side']} | {x['fit_s']:.3f} | {x['eval_ms']:.2f} | {x['feval']} "
        f"| {x['objective']:.6f} | {x['loadavg']:.2f} | {x['other']:.2f} |"
        for x in rows
    ]
    md.append(
        f"\nMedians: base fit {summary['base']['fit_s']:.3f} s, evaluation "
        f"{summary['base']['eval_ms']:.2f} ms; this fit {summary['this']['fit_s']:.3f} s, "
        f"evaluation {summary['this']['eval_ms']:.2f} ms; ratios this/base: fit "
        f"{ratio['fit_s']:.3f}, evaluation {ratio['eval_ms']:.3f}.\n"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "insteval_ab.md").write_text("\n".join(md))
    bl.save_json(out / "insteval_ab.json", {"rows": rows, "summary": summary, "ratio": ratio})
    print("\n".join(md))


if __name__ == "__main__":
    main()
