"""Whole-call fit times of the small GLMMs and LMMs, A/B against a baseline checkout in one run.

Usage::

    python benchmarks/glmm_ab.py --base /tmp/base-glmmfast [--rounds 3] [--reps 7]

Each round runs the baseline tree and this tree in turn (fresh processes, the
order alternating between rounds), and each process times ``--reps`` calls of
:func:`run.fit_ours` per model (construction and fit, as a user calls them)
after one warm-up call.  The report gives, per side, the fastest and the
median call over all rounds, their ratio, and the objectives (which should
agree), with the load average at the start and the end.  The table goes to
``benchmarks/results/glmm_ab.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

MODELS = "cbpp_fast,cbpp_laplace,cbpp_agq25,grouseticks_laplace,verbagg_laplace,dyestuff_ml,sleepstudy_ml"

# what one process runs: warm up, then time every model --reps times
CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
import run
out = {{}}
for name in {models!r}:
    spec = run.load_specs(name)[0]
    df = run.load_data(spec["data"])
    m = run.fit_ours(spec, df)
    times = []
    for _ in range({reps}):
        t = time.perf_counter()
        m = run.fit_ours(spec, df)
        times.append(time.perf_counter() - t)
    out[name] = {{"times": times, "objective": m.objective, "evals": run.our_stages(spec, m)}}
print(json.dumps(out))
"""


def commit(tree: Path) -> str:
    """Short commit of a checkout, marked when its package has uncommitted changes."""
    git = ["git", "-C", str(tree)]
    out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "mixedmodels"], capture_output=True, text=True
    )
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def side(tree: Path, models: list[str], reps: int) -> dict:
    """Timings of one fresh process importing the package from ``tree``."""
    code = CHILD.format(bench=str(bl.REPO_DIR / "benchmarks"), models=models, reps=reps)
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", required=True, help="the baseline checkout (a git worktree)")
    p.add_argument("--models", default=MODELS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args(argv)
    models = args.models.split(",")
    trees = {"before": Path(args.base).resolve(), "after": bl.REPO_DIR}
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for name in order:
            print(f"[glmm_ab] round {r + 1} {name}", file=sys.stderr, flush=True)
            runs[name].append(side(trees[name], models, args.reps))
    load_end = os.getloadavg()[0]
    md = report(runs, models, args, load_start, load_end)
    (bl.RESULTS_DIR / "glmm_ab.md").write_text(md)
    print(md)


def report(runs: dict, models: list[str], args, load_start: float, load_end: float) -> str:
    lines = [
        f"# GLMM / small-model overhead A/B\n\nRun {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, "
        f"`python benchmarks/glmm_ab.py --base {args.base} --rounds {args.rounds} --reps {args.reps}`"
        f" (before: {commit(Path(args.base))}, after: {commit(bl.REPO_DIR)}); "
        f"load average (1 min) {load_start:.2f} at the start, {load_end:.2f} at the end.\n",
        "| model | before fastest (s) | after fastest (s) | ratio | before median (s) "
        "| after median (s) | ratio | evaluations before → after | objective rel. diff |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name in models:
        t = {k: [x for run in runs[k] for x in run[name]["times"]] for k in runs}
        fast = {k: min(v) for k, v in t.items()}
        med = {k: statistics.median(v) for k, v in t.items()}
        ob, oa = runs["before"][0][name]["objective"], runs["after"][0][name]["objective"]
        lines.append(
            f"| {name} | {fast['before']:.4f} | {fast['after']:.4f} | "
            f"{fast['after'] / fast['before']:.2f} | {med['before']:.4f} | {med['after']:.4f} | "
            f"{med['after'] / med['before']:.2f} | {runs['before'][0][name]['evals']} → "
            f"{runs['after'][0][name]['evals']} | {abs(oa - ob) / abs(ob):.1e} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
