"""Reference models on a quiet machine and beside one and two busy neighbours.

Usage::

    python benchmarks/load.py [--reps 3] [--slow-reps 1] [--neighbours 0,1,2] [--models PATTERN]
                              [--no-r] [--no-mixedlm]

For each load level the script starts that many neighbours itself (a
Python process burning one core in a fixed loop), waits a second, and then
times, in the same run and under the same neighbours: every reference
model with mixedmodels, the same with mixedlm (a Rust-backed Python peer,
``pip install mixedlm``; LMMs and the GLMMs its formula syntax accepts) and
with lme4 (one Rscript process for all models of the level).  Each row
records the 1-minute load average when it started, the idle fraction of
all cores from /proc/stat over its timing, and the cores other processes
(the neighbours and anyone else on the machine) kept busy, so rows measured
while outside work ran are visible.  Results go to
``benchmarks/results/load.{csv,md}``.

Targets (issue 17): with one busy neighbour no model slower than 1.5 x its
quiet time in this run; InstEval at most 0.5 x mixedlm's time beside one
neighbour.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl
import run

BURN = "x = 0\nwhile True:\n    x = (x * 1103515245 + 12345) % 2147483648\n"
SLOW = ("insteval",)  # models timed --slow-reps times


# ---- neighbours ---------------------------------------------------------------------------
class Neighbours:
    """``k`` processes burning one core each, started and stopped by this script."""

    def __init__(self, k: int):
        self.k = k
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(self.k)]
        time.sleep(1.0 if self.k else 0.0)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=10)
        return False


# ---- what the machine was doing ---------------------------------------------------------------
def idle_jiffies() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[3] + fields[4], sum(fields)


class Conditions:
    """Load average at the start, idle fraction and other processes' cores during a block."""

    def __enter__(self):
        self.loadavg = os.getloadavg()[0]
        self.idle0 = idle_jiffies()
        self.other = bl.OtherLoad().__enter__()
        return self

    def __exit__(self, *exc):
        self.other.__exit__(*exc)
        idle1 = idle_jiffies()
        total = max(idle1[1] - self.idle0[1], 1)
        self.idle = (idle1[0] - self.idle0[0]) / total
        return False

    def record(self) -> dict:
        return {"loadavg": self.loadavg, "idle": self.idle, "other_cores": self.other.cores}


MIN_SECONDS = 0.5
"""A fast fit is repeated until its repetitions take this long (at most MAX_REPS): the median
of three 6 ms fits moves by a scheduler tick, more than the load does."""
MAX_REPS = 60


def timed(call, reps: int) -> tuple[list[float], dict]:
    call()  # warm-up (and the check that it fits at all)
    times = []
    with Conditions() as cond:
        while len(times) < reps or (sum(times) < MIN_SECONDS and len(times) < MAX_REPS):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    return times, cond.record()


# ---- the tools ----------------------------------------------------------------------------
def time_ours(spec: dict, df, reps: int) -> dict:
    from mixedmodels.threads import POLICY

    times, cond = timed(lambda: run.fit_ours(spec, df), reps)
    return {"times": times, **cond, "threads": (POLICY.last_choice or {}).get("threads")}


CBIND = re.compile(r"^\s*cbind\(\s*(\w+)\s*,\s*(\w+)\s*-\s*\1\s*\)\s*~")


def mixedlm_call(spec: dict, df):
    """A function fitting the model with mixedlm, or None and why it cannot."""
    import mixedlm

    formula, weights = run.python_formula(spec["formula"]), None
    if spec["kind"] == "lmm":
        return lambda: mixedlm.lmer(formula, df, REML=spec["reml"]), ""
    m = CBIND.match(formula)
    if m:  # mixedlm has no cbind(): proportions with the trials as weights
        hits, trials = m.group(1), m.group(2)
        df = df.assign(_prop=df[hits] / df[trials])
        formula, weights = CBIND.sub("_prop ~", formula), df[trials].to_numpy(float)
    family = getattr(mixedlm.families, spec["family"].capitalize())()
    nagq = spec["nAGQ"]
    return (
        lambda: mixedlm.glmer(formula, df, family=family, nAGQ=nagq, weights=weights),
        "",
    )


def time_mixedlm(spec: dict, df, reps: int) -> dict:
    call, note = mixedlm_call(spec, df)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times, cond = timed(call, reps)
    except Exception as exc:  # noqa: BLE001 - a model the peer refuses is a row, not a crash
        return {"note": f"mixedlm: {type(exc).__name__}: {str(exc)[:80]}"}
    return {"times": times, **cond, "note": note}


def time_lme4(specs: list[dict], reps_of) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [run.lme4_job(s, reps_of(s), Path(tmp)) for s in specs]
        with Conditions() as cond:
            out = bl.run_lme4(jobs)
    for rec in out.values():
        rec.update(cond.record())  # one R process for all models: one record
    return out


# ---- one load level -------------------------------------------------------------------------
def measure_level(k: int, specs: list[dict], args) -> list[dict]:
    reps_of = run_reps(args)
    rows = []
    with Neighbours(k):
        for spec in specs:
            df = run.load_data(spec["data"])
            print(f"[load] {k} neighbour(s): {spec['name']}", file=sys.stderr, flush=True)
            ours = time_ours(spec, df, reps_of(spec))
            peer = {"note": "skipped"} if args.no_mixedlm else time_mixedlm(spec, df, reps_of(spec))
            rows.append(row(k, spec, "mixedmodels", ours))
            rows.append(row(k, spec, "mixedlm", peer))
        if not args.no_r:
            print(f"[load] {k} neighbour(s): lme4", file=sys.stderr, flush=True)
            lme4 = time_lme4(specs, reps_of)
            rows += [row(k, spec, "lme4", lme4.get(spec["name"], {})) for spec in specs]
    return rows


def run_reps(args):
    def reps_of(spec: dict) -> int:
        return args.slow_reps if spec["name"].startswith(SLOW) else args.reps

    return reps_of


def row(k: int, spec: dict, tool: str, rec: dict) -> dict:
    times = rec.get("times") or []
    return {
        "neighbours": k,
        "model": spec["name"],
        "tool": tool,
        "median_s": bl.median(times) if times else None,
        "reps": len(times),
        "loadavg": rec.get("loadavg"),
        "idle": rec.get("idle"),
        "other_cores": rec.get("other_cores"),
        "blas_threads": rec.get("threads"),
        "note": rec.get("note") or ("" if times else rec.get("status", "")),
    }


FIELDS = [
    "neighbours",
    "model",
    "tool",
    "median_s",
    "reps",
    "loadavg",
    "idle",
    "other_cores",
    "blas_threads",
    "note",
]


# ---- the report -----------------------------------------------------------------------------
def lookup(rows: list[dict]) -> dict:
    return {(r["neighbours"], r["model"], r["tool"]): r for r in rows}


def fmt(v, spec=".3g"):
    return "–" if v is None else format(v, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def table(rows: list[dict], levels: list[int], models: list[str]) -> str:
    at = lookup(rows)
    head = ["model"]
    for k in levels:
        head += [f"ours, {k} nb (s)", f"mixedlm, {k} nb (s)", f"lme4, {k} nb (s)"]
    head += [f"ours {k} nb / quiet" for k in levels if k]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for m in models:
        cells = [m]
        for k in levels:
            cells += [fmt((at.get((k, m, t)) or {}).get("median_s")) for t in TOOLS]
        quiet = (at.get((levels[0], m, "mixedmodels")) or {}).get("median_s")
        for k in levels[1:]:
            cells.append(
                fmt(ratio((at.get((k, m, "mixedmodels")) or {}).get("median_s"), quiet), ".2f")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TOOLS = ["mixedmodels", "mixedlm", "lme4"]


def conditions_table(rows: list[dict]) -> str:
    lines = [
        "| neighbours | model | tool | load avg at start | idle fraction | other cores | BLAS threads | note |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['neighbours']} | {r['model']} | {r['tool']} | {fmt(r['loadavg'], '.2f')} "
            f"| {fmt(r['idle'], '.2f')} | {fmt(r['other_cores'], '.2f')} | {fmt(r['blas_threads'], 'd')} | {r['note']} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict], levels: list[int], models: list[str]) -> str:
    at = lookup(rows)
    out = ["| target | limit | measured | |", "|---|---:|---:|---|"]
    if 1 in levels and 0 in levels:
        worst = max(
            (
                (
                    ratio(
                        at[(1, m, "mixedmodels")]["median_s"], at[(0, m, "mixedmodels")]["median_s"]
                    ),
                    m,
                )
                for m in models
                if (1, m, "mixedmodels") in at and (0, m, "mixedmodels") in at
            ),
            default=(None, ""),
        )
        verdict = "met" if worst[0] is not None and worst[0] <= 1.5 else "NOT met"
        out.append(
            f"| slowest model beside 1 neighbour / quiet ({worst[1]}) | ≤ 1.5 | {fmt(worst[0], '.2f')} | {verdict} |"
        )
        inst = [m for m in models if m.startswith("insteval")]
        if inst:
            r = ratio(
                (at.get((1, inst[0], "mixedmodels")) or {}).get("median_s"),
                (at.get((1, inst[0], "mixedlm")) or {}).get("median_s"),
            )
            v = "not measured" if r is None else ("met" if r <= 0.5 else "NOT met")
            out.append(
                f"| InstEval ours / mixedlm beside 1 neighbour | ≤ 0.5 | {fmt(r, '.2f')} | {v} |"
            )
    return "\n".join(out)


def report(rows, levels, models, args, desc) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "\n\n".join(
            [
                f"# Reference models under load\n\nRun {stamp} with `python benchmarks/load.py "
                f"--reps {args.reps} --slow-reps {args.slow_reps} --neighbours {args.neighbours}`.",
                "## Machine\n\n" + bl.machine_markdown(desc),
                "## Targets\n\n" + targets(rows, levels, models),
                "## Median seconds (nb: busy neighbours started by the benchmark)\n\n"
                + table(rows, levels, models),
                "## Conditions of every row\n\n"
                "The idle fraction is over all cores during the row's timed repetitions; "
                "'other cores' counts every other process, the benchmark's neighbours included, "
                "so with k neighbours anything above k is outside load.\n\n"
                + conditions_table(rows),
            ]
        )
        + "\n"
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--slow-reps", type=int, default=1)
    p.add_argument("--neighbours", default="0,1,2")
    p.add_argument("--models", default="*")
    p.add_argument("--no-r", action="store_true")
    p.add_argument("--no-mixedlm", action="store_true")
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    bl.ensure_python({**bl.BASE_NEEDS, **({} if args.no_mixedlm else {"mixedlm": "mixedlm"})})
    if not args.no_r and bl.ensure_lme4() is not None:
        args.no_r = True
    specs = run.load_specs(args.models)
    levels = [int(v) for v in args.neighbours.split(",")]
    rows = []
    models = [s["name"] for s in specs]
    desc = bl.machine_description(with_r=not args.no_r)
    for i, k in enumerate(levels):
        rows += measure_level(k, specs, args)
        md = write_results(rows, levels[: i + 1], models, args, desc)  # after every level
    print(md)


def write_results(rows, levels, models, args, desc) -> str:
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "load.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    md = report(rows, levels, models, args, desc)
    (args.out / "load.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
