"""mlmRev's `star` (Tennessee STAR): a block B of 1,454 teachers and schools that fills in.

Usage::

    python benchmarks/star.py [--reps 3] [--no-r]

``math ~ 1 + gr + sx + eth + cltype + (1|id) + (1|tch) + (1|sch)`` on the
24,578 complete rows of mlmRev's ``star`` (``benchmarks/data/star.csv.gz``,
written from R with ``gr`` as an unordered factor).  Students (10,732
levels) form the diagonal first block; teachers (1,374, nested in the 80
schools) and schools form block B.  Our fit is timed with the automatic
choice of the factor of block B and with it forced dense and sparse (CHOLMOD),
beside lme4 in the same run; the 1-minute load average and the cores other
processes kept busy are recorded for every row.  Results go to
``benchmarks/results/star.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

DATA = bl.BENCH_DIR / "data" / "star.csv.gz"
FORMULA = "math ~ 1 + gr + sx + eth + cltype + (1|id) + (1|tch) + (1|sch)"
LEVELS = {
    "gr": ["K", "1", "2", "3"],
    "sx": ["M", "F"],
    "eth": ["W", "B", "A", "H", "I", "O"],
    "cltype": ["small", "reg", "reg+A"],
}


def load_star():
    import pandas as pd

    df = pd.read_csv(DATA, dtype={"id": str, "tch": str, "sch": str})
    for col, levels in LEVELS.items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    for col in ("id", "tch", "sch"):
        df[col] = df[col].astype("category")
    return df


def fit(df, sparse):
    import mixedmodels as mm

    return mm.LinearMixedModel(FORMULA, df, sparse=sparse).fit()


def time_ours(df, sparse, reps: int) -> dict:
    times = []
    with bl.OtherLoad() as load:
        load_avg = os.getloadavg()[0]
        for _ in range(reps):
            t0 = time.perf_counter()
            m = fit(df, sparse)
            times.append(time.perf_counter() - t0)
    kind = "CHOLMOD" if m.system.factorB.sparse else "dense"
    return {
        "median_s": bl.median(times),
        "reps": reps,
        "evals": m.optsum.feval,
        "objective": m.objective,
        "factor": kind,
        "loadavg": load_avg,
        "other": load.cores,
    }


def time_lme4(reps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        levels = Path(tmp) / "levels.tsv"
        rows = [{"column": c, "level": v} for c, vs in LEVELS.items() for v in vs]
        bl.write_tsv(levels, ["column", "level"], rows)
        job = {
            "name": "star",
            "csv": str(DATA),
            "levels": str(levels),
            "formula": FORMULA,
            "kind": "lmm",
            "reml": "FALSE",
            "family": "gaussian",
            "nagq": "1",
            "reps": str(reps),
        }
        load_avg = os.getloadavg()[0]
        with bl.OtherLoad() as load:
            out = bl.run_lme4([job])["star"]
    out.update(loadavg=load_avg, other=load.cores)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-r", action="store_true")
    args = p.parse_args(argv)
    df = load_star()
    fit(df, None)  # warm-up
    rows = {}
    for label, sparse in (("auto", None), ("dense", False), ("CHOLMOD", True)):
        print(f"[star] ours, {label}", file=sys.stderr, flush=True)
        rows[label] = time_ours(df, sparse, args.reps)
    lme4 = None if args.no_r or bl.ensure_lme4() else time_lme4(args.reps)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# star: `{FORMULA}`\n\nRun {stamp}, `python benchmarks/star.py --reps {args.reps}`.\n",
        "| fit | factor of block B | median s | evals | objective − lme4's | ours/lme4 | load avg | other cores |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows.items():
        d = "–" if lme4 is None else f"{r['objective'] - lme4['objective']:+.1e}"
        ratio = "–" if lme4 is None else f"{r['median_s'] / lme4['median_s']:.3f}"
        lines.append(
            f"| ours, sparse={label} | {r['factor']} | {r['median_s']:.3f} | {r['evals']} | {d} | {ratio} "
            f"| {r['loadavg']:.2f} | {r['other']:.2f} |"
        )
    if lme4 is not None:
        lines.append(
            f"| lme4 | Matrix (CHOLMOD) | {lme4['median_s']:.3f} | {lme4['feval_stages'][0]} | 0 | 1 "
            f"| {lme4['loadavg']:.2f} | {lme4['other']:.2f} |"
        )
    md = "\n".join(lines) + "\n"
    (bl.RESULTS_DIR / "star.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
