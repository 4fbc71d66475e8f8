"""Synthetic scale series: crossed two-factor LMMs at 10^4, 10^5 and 10^6 observations.

Usage::

    python benchmarks/scale.py [--sizes 1e4,1e5,1e6] [--reps 3] [--budget 60] [--r-max-n 1e5] [--no-r]

Factor ``a`` has n/10 levels and ``b`` 10^3 levels (so 10^6 observations give the
10^5 x 10^3 case of the targets); every level of each factor has the same number
of observations and the two are crossed at random.  Each (model, n) is fitted in a
fresh Python process, which reports the median time of its fits, its peak resident
memory (``getrusage``) and, in a second process, the peak of Python/numpy
allocations during one fit (``tracemalloc``, kept apart because tracing slows
the fit).  lme4 fits the same data (written to CSV) for n <= --r-max-n.
Results: ``benchmarks/results/scale.{csv,md}`` and ``docs/img/scale.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib as bl

MODELS = {
    "crossed": "y ~ 1 + x + (1|a) + (1|b)",
    "slope": "y ~ 1 + x + (1 + x|a) + (1|b)",
}
LEVELS_B = 1000
SEED = 20240501
PLOT = bl.REPO_DIR / "docs" / "img" / "scale.png"
TARGET_SECONDS, TARGET_BYTES = 60.0, 4 * 2**30


# ---- data --------------------------------------------------------------------------------
def balanced_codes(rng, n: int, nlevels: int):
    """Level codes with every level used n/nlevels times, in random order."""
    return rng.permutation(n) % nlevels


def make_data(n: int, seed: int = SEED):
    """y = 1 + 0.5 x + a-intercept + a-slope x + b-intercept + noise (σ = 1)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + n)
    na = n // 10
    a, b = balanced_codes(rng, n, na), balanced_codes(rng, n, LEVELS_B)
    x = rng.standard_normal(n)
    ua, sa, ub = (
        0.5 * rng.standard_normal(na),
        0.2 * rng.standard_normal(na),
        0.3 * rng.standard_normal(LEVELS_B),
    )
    y = 1.0 + 0.5 * x + ua[a] + sa[a] * x + ub[b] + rng.standard_normal(n)
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "a": pd.Categorical.from_codes(a, [f"a{i}" for i in range(na)]),
            "b": pd.Categorical.from_codes(b, [f"b{i}" for i in range(LEVELS_B)]),
        }
    )


# ---- the worker (one fresh process per case) ----------------------------------------------------
def rss_bytes(field: str = "VmRSS") -> int:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def fit(formula: str, df):
    import mixedmodels as mm

    return mm.LinearMixedModel(formula, df).fit()


def timed_fits(formula: str, df, reps: int, budget: float) -> tuple[list[float], object]:
    """Up to ``reps`` fits, stopping early once they have taken ``budget`` seconds."""
    times, m = [], None
    while len(times) < reps and sum(times) < budget:
        t0 = time.perf_counter()
        m = fit(formula, df)
        times.append(time.perf_counter() - t0)
    return times, m


def traced_peak(formula: str, df) -> int:
    """Peak bytes of Python/numpy allocations made during one fit (the data excluded)."""
    import tracemalloc

    tracemalloc.start()
    fit(formula, df)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def worker(model: str, n: int, reps: int, budget: float, trace: bool) -> dict:
    import resource

    formula = MODELS[model]
    fit(formula, make_data(20_000))  # imports and first-call costs, outside the timing
    df = make_data(n)
    out = {"rss_before_fit": rss_bytes()}
    if trace:
        out["tracemalloc_peak"] = traced_peak(formula, df)
        return out
    times, m = timed_fits(formula, df, reps, budget)
    out.update(times=times, feval=m.optsum.feval, objective=m.objective, theta=m.theta.tolist())
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return out


def run_worker(model: str, n: int, args, trace: bool = False) -> dict:
    """One case in a fresh interpreter; a timeout is reported, not hidden."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        model,
        str(n),
        "--reps",
        str(args.reps),
        "--budget",
        str(args.budget),
    ]
    cmd += ["--trace"] if trace else []
    bl.wait_for_quiet(max_wait=args.quiet_wait)
    t0 = time.perf_counter()
    try:
        with bl.OtherLoad() as load:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, check=False
            )
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {args.timeout:g} s"}
    if done.returncode != 0:
        return {"status": "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(status="ok", wall=time.perf_counter() - t0, other_cores=load.cores)
    return out


# ---- lme4 on the same data -------------------------------------------------------------------
def lme4_cases(cases: list[tuple[str, int]], args) -> dict[tuple[str, int], dict]:
    """lme4 fits of the cases with n <= --r-max-n, one R process, data written as CSV."""
    small = [(m, n) for m, n in cases if n <= args.r_max_n]
    if not small:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for n in sorted({n for _, n in small}):
            path = Path(tmp) / f"scale_{n}.csv"
            make_data(n).to_csv(path, index=False)
            for model in (m for m, k in small if k == n):
                jobs.append(
                    {
                        "name": f"{model}_{n}",
                        "csv": str(path),
                        "levels": "-",
                        "formula": MODELS[model],
                        "kind": "lmm",
                        "reml": "FALSE",
                        "family": "gaussian",
                        "nagq": "1",
                        "reps": str(r_reps(n, args)),
                    }
                )
        bl.wait_for_quiet(max_wait=args.quiet_wait)
        try:
            with bl.OtherLoad() as load:
                res = bl.run_lme4(jobs, timeout=args.timeout * len(jobs))
        except subprocess.TimeoutExpired:
            return {case: {"status": "timeout"} for case in small}
    return {(m, n): {**res[f"{m}_{n}"], "other_cores": load.cores} for m, n in small}


def r_reps(n: int, args) -> int:
    """lme4 repetitions: fewer at 10^5, where one lme4 fit takes tens of seconds."""
    return args.reps if n <= 10_000 else max(1, args.reps - 1)


# ---- results --------------------------------------------------------------------------------
FIELDS = [
    "model",
    "formula",
    "n",
    "levels_a",
    "levels_b",
    "tool",
    "status",
    "reps",
    "median_s",
    "min_s",
    "ratio_to_lme4",
    "feval",
    "objective",
    "peak_rss_mib",
    "rss_before_fit_mib",
    "tracemalloc_peak_mib",
    "other_cores",
]
MIB = 2**20


def our_row(model: str, n: int, res: dict, traced: dict) -> dict:
    row = {
        "model": model,
        "formula": MODELS[model],
        "n": n,
        "levels_a": n // 10,
        "levels_b": LEVELS_B,
        "tool": "mixedmodels",
        "status": res["status"],
    }
    if res["status"] != "ok":
        return row
    row.update(
        reps=len(res["times"]),
        median_s=bl.median(res["times"]),
        min_s=min(res["times"]),
        feval=res["feval"],
        objective=res["objective"],
        peak_rss_mib=res["peak_rss"] / MIB,
        rss_before_fit_mib=res["rss_before_fit"] / MIB,
        tracemalloc_peak_mib=traced["tracemalloc_peak"] / MIB
        if traced.get("status") == "ok"
        else None,
        other_cores=res["other_cores"],
    )
    return row


def lme4_row(model: str, n: int, res: dict) -> dict:
    row = {
        "model": model,
        "formula": MODELS[model],
        "n": n,
        "levels_a": n // 10,
        "levels_b": LEVELS_B,
        "tool": "lme4",
    }
    if "median_s" not in res:
        return {**row, "status": res.get("status", "failed")}
    return {
        **row,
        "status": "ok",
        "reps": res["reps"],
        "median_s": res["median_s"],
        "min_s": res["min_s"],
        "feval": res["feval_reported"],
        "objective": res["objective"],
        "other_cores": res["other_cores"],
    }


def add_ratios(rows: list[dict]) -> None:
    r_time = {
        (r["model"], r["n"]): r["median_s"]
        for r in rows
        if r["tool"] == "lme4" and r.get("median_s")
    }
    for r in rows:
        peer = r_time.get((r["model"], r["n"]))
        if r["tool"] == "mixedmodels" and peer and r.get("median_s"):
            r["ratio_to_lme4"] = r["median_s"] / peer


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | n | levels a × b | tool | median s (reps) | ours/lme4 | evals | peak RSS MiB | RSS before fit MiB | tracemalloc peak MiB | other load (cores) | status |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['n']:.0e} | {r['levels_a']} × {r['levels_b']} | {r['tool']} "
            f"| {fmt(r.get('median_s'), '.3f')} ({r.get('reps', '–')}) | {fmt(r.get('ratio_to_lme4'), '.3f')} "
            f"| {r.get('feval', '–')} | {fmt(r.get('peak_rss_mib'), '.0f')} | {fmt(r.get('rss_before_fit_mib'), '.0f')} "
            f"| {fmt(r.get('tracemalloc_peak_mib'), '.0f')} | {fmt(r.get('other_cores'), '.2f')} | {r['status']} |"
        )
    return "\n".join(lines)


def target_markdown(rows: list[dict]) -> str:
    """The 10^6 x (10^5, 10^3) target for the crossed model."""
    big = [
        r
        for r in rows
        if r["tool"] == "mixedmodels" and r["model"] == "crossed" and r["n"] == 10**6
    ]
    if not big or big[0]["status"] != "ok":
        return "10^6 target: not measured" + (f" ({big[0]['status']})" if big else "")
    r = big[0]
    t_ok, m_ok = r["median_s"] < TARGET_SECONDS, r["peak_rss_mib"] * MIB < TARGET_BYTES
    return (
        f"10^6 observations, (1|a) + (1|b) with 10^5 and 10^3 levels: {r['median_s']:.1f} s "
        f"(target < 60 s: {'met' if t_ok else 'NOT met'}), peak RSS {r['peak_rss_mib']:.0f} MiB "
        f"(target < 4 GiB: {'met' if m_ok else 'NOT met'})."
    )


# ---- plot --------------------------------------------------------------------------------
def plot(rows: list[dict], path: Path) -> None:
    """Log-log time and peak memory against n, one line per model and tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for (model, tool), style in _series_styles(rows).items():
        pts = [r for r in rows if r["model"] == model and r["tool"] == tool and r.get("median_s")]
        ax_t.plot(
            [r["n"] for r in pts],
            [r["median_s"] for r in pts],
            style,
            label=f"{tool}: {MODELS[model]}",
        )
        mem = [r for r in pts if r.get("peak_rss_mib")]
        if mem:
            ax_m.plot(
                [r["n"] for r in mem],
                [r["peak_rss_mib"] for r in mem],
                style,
                label=f"{tool}: {model}",
            )
    ax_t.axhline(TARGET_SECONDS, color="grey", lw=0.8, ls=":")
    ax_m.axhline(TARGET_BYTES / MIB, color="grey", lw=0.8, ls=":")
    _decorate(ax_t, "seconds per fit (median)", "fit time (dotted: 60 s target)")
    _decorate(ax_m, "peak RSS of the process (MiB)", "peak memory, mixedmodels (dotted: 4 GiB)")
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _series_styles(rows: list[dict]) -> dict:
    marks = {"crossed": "o", "slope": "s"}
    lines = {"mixedmodels": "-", "lme4": "--"}
    keys = sorted({(r["model"], r["tool"]) for r in rows})
    return {(m, t): marks.get(m, "^") + lines.get(t, ":") for m, t in keys}


def _decorate(ax, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observations n (a: n/10 levels, b: 1000 levels)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", lw=0.3)


# ---- main --------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated numbers of observations")
    p.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS)
    )
    p.add_argument("--reps", type=int, default=3, help="fits per case (fewer if --budget runs out)")
    p.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds of fitting after which a case stops repeating",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds before a case is reported as timed out",
    )
    p.add_argument("--r-max-n", type=float, default=1e5, help="largest n also fitted by lme4")
    p.add_argument("--no-r", action="store_true", help="skip lme4")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a quiet machine before a case",
    )
    p.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR)
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    bl.ensure_python({**bl.BASE_NEEDS, "matplotlib": "matplotlib"})
    if args.worker:
        print(
            json.dumps(
                worker(args.worker[0], int(args.worker[1]), args.reps, args.budget, args.trace)
            )
        )
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    cases = [(m, n) for n in sizes for m in args.models.split(",")]
    r_note = "skipped by --no-r" if args.no_r else bl.ensure_lme4()
    load_start = bl.load_average()
    rows = []
    for model, n in cases:
        print(f"[scale] mixedmodels: {model}, n = {n}", file=sys.stderr, flush=True)
        res = run_worker(model, n, args)
        traced = (
            {} if args.no_trace or res["status"] != "ok" else run_worker(model, n, args, trace=True)
        )
        rows.append(our_row(model, n, res, traced))
    if not r_note:
        print("[scale] lme4", file=sys.stderr, flush=True)
        rows += [lme4_row(m, n, res) for (m, n), res in lme4_cases(cases, args).items()]
    add_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "scale.csv", rows)
    plot(rows, args.plot)
    desc = bl.machine_description(with_r=not r_note)
    desc["load average (1 min) at start / end"] = f"{load_start} / {bl.load_average()}"
    md = (
        "\n\n".join(
            [
                "# Synthetic scale series\n\n`python benchmarks/scale.py` "
                + " ".join(sys.argv[1:]),
                "## Machine\n\n" + bl.machine_markdown(desc),
                target_markdown(rows) + (f"\n\nlme4 skipped: {r_note}" if r_note else ""),
                table_markdown(rows),
            ]
        )
        + "\n"
    )
    (args.out / "scale.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
