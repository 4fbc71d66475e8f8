"""Fit every reference model with mixedmodels, lme4 and statsmodels in one run.

Usage::

    python benchmarks/run.py [--reps 5] [--quick] [--models PATTERN] [--no-r] [--no-statsmodels]

Each fit is timed as the whole call from formula and data frame to a fitted
model, after one untimed warm-up fit (which also counts the objective
evaluations); medians of the repetitions are reported, and the ratio
ours / lme4 is taken between medians measured in this same run.  Results go
to ``benchmarks/results/reference_models.{csv,md}``.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

SLOW_LME4_SECONDS = 5.0  # models slower than this in lme4 (InstEval) get --slow-reps repetitions


# ---- the models ------------------------------------------------------------------------
def reference_dir() -> Path:
    """``../shared/reference`` beside the repository (as the issue says), else the test copy."""
    shared = bl.REPO_DIR.parent / "shared" / "reference"
    return shared if shared.is_dir() else bl.REPO_DIR / "tests" / "data" / "reference"


def load_specs(pattern: str) -> list[dict]:
    """Reference models whose name matches one of the comma-separated globs of ``pattern``."""
    specs = [json.loads(p.read_text()) for p in sorted(reference_dir().glob("*.json"))]
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    return [s for s in specs if any(fnmatch.fnmatch(s["name"], g) for g in globs)]


def python_formula(formula: str) -> str:
    """R's formula in the package's syntax: ``x^2`` inside ``I()`` is ``x**2``."""
    return formula.replace("^", "**")


def load_data(name: str):
    import mixedmodels as mm

    return mm.datasets.load(name)


# ---- mixedmodels ------------------------------------------------------------------------
def fit_ours(spec: dict, df, lme4_rule: bool = False):
    """The whole call: formula and data frame in, fitted model out (``lme4_rule``: lme4's
    nloptwrap stopping rule and NLopt's first steps, ``optsum.use_lme4_settings()``)."""
    import mixedmodels as mm

    formula = python_formula(spec["formula"])
    if spec["kind"] == "lmm":
        m = mm.LinearMixedModel(formula, df, reml=spec["reml"])
        if lme4_rule:
            m.optsum.use_lme4_settings()
        return m.fit()
    nagq = spec["nAGQ"]
    m = mm.GeneralizedLinearMixedModel(formula, df, family=spec["family"])
    return m.fit(fast=nagq == 0, nagq=max(1, nagq))


def our_stages(spec: dict, m) -> list[int]:
    """Objective evaluations per optimisation stage (a full GLMM fit has two)."""
    if spec["kind"] == "lmm" or spec["nAGQ"] == 0:
        return [m.optsum.feval]
    return [m.optsum_fast.feval, m.optsum.feval]


QUIET_WAIT = [
    30.0
]  # seconds to wait for other processes to calm down before a timing (--quiet-wait)


def repeat_timed(call, reps: int) -> tuple[list[float], float]:
    """Seconds of each of ``reps`` calls, and the cores other processes kept busy meanwhile."""
    bl.wait_for_quiet(max_wait=QUIET_WAIT[0])
    times = []
    with bl.OtherLoad() as load:
        for _ in range(reps):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    return times, load.cores


def time_ours(spec: dict, reps: int) -> dict:
    df = load_data(spec["data"])
    warm = fit_ours(spec, df)
    times, load = repeat_timed(lambda: fit_ours(spec, df), reps)
    out = {
        "times": times,
        "median_s": bl.median(times),
        "stages": our_stages(spec, warm),
        "objective": warm.objective,
        "other_cores": load,
    }
    if spec["kind"] == "lmm":
        # our defaults (MixedModels.jl's) stop later than lme4's nloptwrap; count both
        strict = fit_ours(spec, df, lme4_rule=True)
        out["feval_lme4_rule"], out["objective_lme4_rule"] = strict.optsum.feval, strict.objective
    return out


# ---- statsmodels ------------------------------------------------------------------------
BAR = re.compile(r"\(([^()|]*?)(\|\|?)([^()]*)\)")


def statsmodels_spec(spec: dict) -> tuple[dict | None, str]:
    """Arguments of ``smf.mixedlm`` for the model, or None and the reason it cannot be fitted."""
    if spec["kind"] != "lmm":
        return None, "no ML GLMM (only variational Bayes)"
    bars = BAR.findall(spec["formula"])
    groups = {g.strip() for _, _, g in bars}
    if len(groups) > 1:
        return None, "cannot fit crossed terms natively"
    lhs, bar, group = (s.strip() for s in bars[0])
    fixed = BAR.sub("", spec["formula"])
    fixed = re.sub(r"(\+\s*)+$", "", re.sub(r"\+\s*\+", "+", fixed).strip()).strip()
    kwargs = {"formula": fixed, "groups": group}
    if "/" in group:  # (1|g/h): h's effects as a variance component within g
        outer, inner = (s.strip() for s in group.split("/"))
        return {"formula": fixed, "groups": outer, "vc_formula": {inner: f"0 + C({inner})"}}, ""
    slopes = [t.strip() for t in lhs.split("+") if t.strip() not in ("1", "0")]
    if bar == "||":  # uncorrelated: intercept plus one variance component per slope
        kwargs.update(re_formula="~1", vc_formula={s: f"0 + {s}" for s in slopes})
    elif slopes:
        kwargs["re_formula"] = "~" + " + ".join(slopes)
    return kwargs, ""


def fit_statsmodels(spec: dict, kwargs: dict, df):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm(data=df, **kwargs).fit(reml=spec["reml"])


def time_statsmodels(spec: dict, reps: int) -> dict:
    kwargs, reason = statsmodels_spec(spec)
    if kwargs is None:
        return {"note": reason}
    df = load_data(spec["data"])
    warm = fit_statsmodels(spec, kwargs, df)
    times, _ = repeat_timed(lambda: fit_statsmodels(spec, kwargs, df), reps)
    return {"times": times, "median_s": bl.median(times), "objective": -2.0 * warm.llf, "note": ""}


# ---- lme4 -------------------------------------------------------------------------------
def levels_file(dataset: str, folder: Path) -> Path:
    """R's factor levels of ``dataset`` as the (column, level) TSV that lme4_fits.R reads."""
    from mixedmodels import datasets

    levels = json.loads((datasets.path(dataset).parent / "factor_levels.json").read_text()).get(
        dataset, {}
    )
    rows = [{"column": col, "level": lev} for col, levs in levels.items() for lev in levs]
    path = folder / f"{dataset}_levels.tsv"
    bl.write_tsv(path, ["column", "level"], rows)
    return path


def lme4_job(spec: dict, reps: int, folder: Path) -> dict:
    from mixedmodels import datasets

    return {
        "name": spec["name"],
        "csv": str(datasets.path(spec["data"])),
        "levels": str(levels_file(spec["data"], folder)),
        "formula": spec["formula"],
        "kind": spec["kind"],
        "reml": "TRUE" if spec["reml"] else "FALSE",
        "family": spec.get("family") or "gaussian",
        "nagq": str(1 if spec.get("nAGQ") is None else spec["nAGQ"]),  # nAGQ = 0 is a fast fit
        "reps": str(reps),
    }


def time_lme4(specs: list[dict], reps_of) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [lme4_job(s, reps_of(s), Path(tmp)) for s in specs]
        bl.wait_for_quiet(max_wait=QUIET_WAIT[0])
        with bl.OtherLoad() as load:
            out = bl.run_lme4(jobs)
    for rec in out.values():
        rec["other_cores"] = load.cores  # one R process for all models: one figure
    return out


# ---- start-up costs -----------------------------------------------------------------------
IMPORT_CODE = "import time; t=time.perf_counter(); import mixedmodels; print(time.perf_counter()-t)"
COLD_PY = (
    "import time; t=time.perf_counter(); import mixedmodels as mm; "
    "mm.LinearMixedModel('Yield ~ 1 + (1|Batch)', mm.datasets.load('dyestuff')).fit(); "
    "print(time.perf_counter()-t)"
)
COLD_R = (
    "t <- proc.time()[['elapsed']]; suppressPackageStartupMessages(library(lme4)); "
    "d <- read.csv('{csv}'); d$Batch <- factor(d$Batch); lmer(Yield ~ 1 + (1|Batch), d, REML=FALSE); "
    "cat(proc.time()[['elapsed']] - t)"
)


def subprocess_seconds(cmd: list[str], reps: int) -> list[float]:
    """Seconds printed by ``cmd``, each run in a fresh process."""
    return [
        float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])
        for _ in range(reps)
    ]


def startup_times(reps: int, with_r: bool) -> dict:
    from mixedmodels import datasets

    out = {
        "import": subprocess_seconds([sys.executable, "-c", IMPORT_CODE], reps),
        "cold_ours": subprocess_seconds([sys.executable, "-c", COLD_PY], reps),
    }
    if with_r:
        code = COLD_R.format(csv=datasets.path("dyestuff"))
        out["cold_lme4"] = subprocess_seconds(["Rscript", "-e", code], reps)
    return out


# ---- the table --------------------------------------------------------------------------
def evals_text(stages: list[int] | None) -> str:
    """'total' or 'total (stage1+stage2)'."""
    if not stages:
        return ""
    return str(sum(stages)) if len(stages) == 1 else f"{sum(stages)} ({'+'.join(map(str, stages))})"


def make_row(spec: dict, ours: dict, lme4: dict | None, sm: dict, r_note: str) -> dict:
    lme4 = lme4 or {}
    lme4_s = lme4.get("median_s")
    sm_s = sm.get("median_s")
    row = {
        "model": spec["name"],
        "kind": spec["kind"],
        "nobs": spec.get("nobs"),
        "ours_s": ours["median_s"],
        "lme4_s": lme4_s,
        "ratio": ours["median_s"] / lme4_s if lme4_s else None,
        "statsmodels_s": sm_s,
        "statsmodels_ratio": sm_s / lme4_s if sm_s and lme4_s else None,
        "statsmodels_note": sm.get("note", ""),
        "evals_ours": sum(ours["stages"]),
        "evals_ours_stages": "+".join(map(str, ours["stages"])),
        "evals_lme4": sum(lme4["feval_stages"]) if lme4 else None,
        "evals_lme4_stages": "+".join(map(str, lme4["feval_stages"])) if lme4 else "",
        "evals_ours_lme4_rule": ours.get("feval_lme4_rule"),
        "objective_ours": ours["objective"],
        "objective_lme4": lme4.get("objective"),
        "objective_statsmodels": sm.get("objective"),
        "objective_ours_lme4_rule": ours.get("objective_lme4_rule"),
        "reps_ours": len(ours["times"]),
        "reps_lme4": lme4.get("reps"),
        "reps_statsmodels": len(sm.get("times", [])) or None,
        "other_cores_ours": ours.get("other_cores"),
        "other_cores_lme4": lme4.get("other_cores"),
        "r_note": r_note,
    }
    return row


CSV_FIELDS = [
    "model",
    "kind",
    "nobs",
    "ours_s",
    "lme4_s",
    "ratio",
    "statsmodels_s",
    "statsmodels_ratio",
    "statsmodels_note",
    "evals_ours",
    "evals_ours_stages",
    "evals_lme4",
    "evals_lme4_stages",
    "evals_ours_lme4_rule",
    "objective_ours",
    "objective_lme4",
    "objective_statsmodels",
    "objective_ours_lme4_rule",
    "reps_ours",
    "reps_lme4",
    "reps_statsmodels",
    "other_cores_ours",
    "other_cores_lme4",
    "r_note",
]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def fmt(value, spec: str = ".4g", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def delta(a, b) -> str:
    """Objective difference ours - peer (negative: we found a lower deviance)."""
    return "–" if a is None or b is None else f"{a - b:+.1e}"


def table_markdown(rows: list[dict]) -> str:
    head = (
        "| model | kind | ours (s) | lme4 (s) | ours/lme4 | statsmodels (s) | statsmodels/lme4 "
        "| evals ours | evals lme4 | evals ours, lme4's stopping rule | Δobjective ours−lme4 | Δobjective statsmodels−lme4 | other load (cores) |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        sm = fmt(r["statsmodels_s"]) if r["statsmodels_s"] is not None else r["statsmodels_note"]
        lines.append(
            f"| {r['model']} | {r['kind']} | {fmt(r['ours_s'])} | {fmt(r['lme4_s'])} | {fmt(r['ratio'], '.3f')} "
            f"| {sm} | {fmt(r['statsmodels_ratio'], '.2f')} "
            f"| {evals_text(r['evals_ours_stages'] and list(map(int, r['evals_ours_stages'].split('+'))))} "
            f"| {evals_text(r['evals_lme4_stages'] and list(map(int, r['evals_lme4_stages'].split('+'))))} "
            f"| {fmt(r['evals_ours_lme4_rule'], 'd')} "
            f"| {delta(r['objective_ours'], r['objective_lme4'])} | {delta(r['objective_statsmodels'], r['objective_lme4'])} "
            f"| {fmt(r['other_cores_ours'], '.2f')} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict], startup: dict) -> dict:
    """The issue's targets, measured."""
    lmm = [r for r in rows if r["kind"] == "lmm"]
    glmm = [r for r in rows if r["kind"] == "glmm"]
    inst = [r["ratio"] for r in rows if r["model"].startswith("insteval")]
    comparable = [r for r in lmm if r["evals_lme4"] is not None]
    return {
        "geomean_ratio_lmm": bl.geomean([r["ratio"] for r in lmm]),
        "geomean_ratio_glmm": bl.geomean([r["ratio"] for r in glmm]),
        "insteval_ratio": inst[0] if inst else None,
        "lmm_evals_not_above_lme4": sum(r["evals_ours"] <= r["evals_lme4"] for r in comparable),
        "lmm_evals_not_above_lme4_lme4_rule": sum(
            r["evals_ours_lme4_rule"] <= r["evals_lme4"] for r in comparable
        ),
        "lmm_compared": len(comparable),
        "import_median_s": bl.median(startup["import"]),
        "cold_ours_median_s": bl.median(startup["cold_ours"]),
        "cold_lme4_median_s": bl.median(startup["cold_lme4"]) if "cold_lme4" in startup else None,
    }


def verdict(value, limit) -> str:
    if value is None or math.isnan(value):
        return "not measured"
    return "met" if value <= limit else "NOT met"


def target_row(what: str, limit: str, measured: str, status: str) -> str:
    return f"| {what} | {limit} | {measured} | {status} |"


def count_row(what: str, hits: int, n: int) -> str:
    return target_row(
        what, f"{n} of {n}", f"{hits} of {n}", "met" if n and hits == n else "NOT met"
    )


def summary_markdown(s: dict, startup_reps: int) -> str:
    n = s["lmm_compared"]
    cold = (
        f"{fmt(s['cold_ours_median_s'], '.3f')} s vs lme4 {fmt(s['cold_lme4_median_s'], '.3f')} s"
    )
    ratio_rows = [
        ("geometric mean ours/lme4, LMMs", s["geomean_ratio_lmm"], 0.5),
        ("InstEval ours/lme4", s["insteval_ratio"], 0.25),
        ("geometric mean ours/glmer, GLMMs", s["geomean_ratio_glmm"], 0.5),
    ]
    lines = ["| target | limit | measured | |", "|---|---:|---:|---|"]
    lines += [
        target_row(what, f"≤ {lim}", fmt(v, ".3f"), verdict(v, lim)) for what, v, lim in ratio_rows
    ]
    lines += [
        count_row(
            "LMMs with no more evaluations than lme4 (our default tolerances)",
            s["lmm_evals_not_above_lme4"],
            n,
        ),
        count_row("same, with lme4's stopping rule", s["lmm_evals_not_above_lme4_lme4_rule"], n),
        target_row(
            f"`import mixedmodels` (fresh process, median of {startup_reps})",
            "≤ 0.5 s",
            f"{fmt(s['import_median_s'], '.4f')} s",
            verdict(s["import_median_s"], 0.5),
        ),
        target_row(
            "import + first fit (dyestuff) in a fresh process, vs `library(lme4)` + read.csv + first `lmer`",
            "–",
            cold,
            "",
        ),
    ]
    return "\n".join(lines)


NOTES = """\
Notes on what is counted:
- Times: the whole call from formula and data frame to a fitted model (`LinearMixedModel(...).fit()`,
  `lmer(...)`, `glmer(...)`, `smf.mixedlm(...).fit()`), median of the repetitions after one untimed
  warm-up fit; data loading is not timed. lme4 times come from `proc.time()` in one R process
  (1 ms resolution).
- Evaluations: objective evaluations of the optimiser. A full GLMM fit has two stages (θ alone with β
  profiled by PIRLS, then θ and β together); both are counted, shown as total (stage 1 + stage 2). glmer's
  `m@optinfo$feval` reports stage 2 only: stage 1 is recorded by tracing `lme4:::optimizeGlmer`.
  lme4's finite-difference derivatives for its convergence checks (`calc.derivs`) are not counted as
  evaluations, but their time is in lme4's column.
- "lme4's stopping rule": our LMM refitted with nloptwrap's defaults (`xtol_rel = 1e-4`, `ftol_rel = 0`,
  `ftol_abs = 1e-8`, `xtol_abs = 1e-8`) instead of our default (MixedModels.jl's `ftol_rel = 1e-12`).
- Other load: cores kept busy by other processes while our repetitions ran (from /proc/stat less our own
  CPU time); each timing first waits up to `--quiet-wait` seconds for the machine to be quiet. lme4's single R run
  saw {lme4_load} cores of other load.
- Δobjective: −2 log-likelihood (or REML criterion) of the fit minus lme4's; negative means a better optimum.
- statsmodels' `MixedLM` is fitted where the model has a single grouping factor (random slopes through
  `re_formula`, `||` and nested terms through `vc_formula`); its Δobjective shows it fitted the same model."""


def report_markdown(rows: list[dict], s: dict, desc: dict, args, r_note: str | None) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        (
            f"# Reference models: mixedmodels vs lme4 vs statsmodels\n\nRun {stamp} with "
            f"`python benchmarks/run.py --reps {args.reps}{' --quick' if args.quick else ''}` "
            f"(models slower than {SLOW_LME4_SECONDS:g} s in lme4: {args.slow_reps} repetitions)."
        ),
        "## Machine\n\n" + bl.machine_markdown(desc),
        "## Targets\n\n" + summary_markdown(s, args.startup_reps),
        "## Models\n\n" + table_markdown(rows),
        NOTES.format(lme4_load=fmt(rows[0].get("other_cores_lme4") if rows else None, ".2f")),
    ]
    if r_note:
        parts.insert(1, f"**lme4 column skipped:** {r_note}")
    return "\n\n".join(parts) + "\n"


# ---- main -------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--reps", type=int, default=5, help="timed repetitions per fit (after one warm-up)"
    )
    p.add_argument(
        "--slow-reps", type=int, default=3, help="repetitions for models taking over 5 s in lme4"
    )
    p.add_argument(
        "--startup-reps", type=int, default=7, help="fresh processes for the import timings"
    )
    p.add_argument(
        "--quick", action="store_true", help="2 repetitions and no InstEval: a smoke test"
    )
    p.add_argument(
        "--models", default="*", help="globs on model names, e.g. 'sleepstudy*' or 'cbpp*,verbagg*'"
    )
    p.add_argument("--no-r", action="store_true", help="skip lme4")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a quiet machine before a timing",
    )
    p.add_argument("--no-statsmodels", action="store_true", help="skip statsmodels")
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR, help="folder for the result files")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.slow_reps, args.startup_reps = 2, 1, 3
    return args


def select_specs(args) -> list[dict]:
    specs = load_specs(args.models)
    if args.quick:
        specs = [s for s in specs if not s["name"].startswith("insteval")]
    return specs


def reps_for(args):
    """Repetitions of a model: fewer for the ones lme4 takes seconds over (InstEval)."""

    def reps_of(spec: dict) -> int:
        slow = (spec.get("lme4_seconds") or {}).get("median", 0.0) > SLOW_LME4_SECONDS
        return args.slow_reps if slow else args.reps

    return reps_of


def main(argv=None) -> None:
    args = parse_args(argv)
    bl.ensure_python({**bl.BASE_NEEDS})
    specs, reps_of = select_specs(args), reps_for(args)
    QUIET_WAIT[0] = args.quiet_wait
    load_start = bl.load_average()
    r_note = "skipped by --no-r" if args.no_r else bl.ensure_lme4()
    sm_note = "skipped by --no-statsmodels" if args.no_statsmodels else bl.ensure_statsmodels()
    ours, sm = {}, {}
    for spec in specs:
        print(f"[bench] mixedmodels: {spec['name']}", file=sys.stderr, flush=True)
        ours[spec["name"]] = time_ours(spec, reps_of(spec))
        sm[spec["name"]] = {"note": sm_note} if sm_note else time_statsmodels(spec, reps_of(spec))
    lme4 = {} if r_note else time_lme4(specs, reps_of)
    startup = startup_times(args.startup_reps, with_r=not r_note)
    rows = [
        make_row(s, ours[s["name"]], lme4.get(s["name"]), sm[s["name"]], r_note or "")
        for s in specs
    ]
    s = summary(rows, startup)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "reference_models.csv", rows)
    bl.save_json(args.out / "startup.json", {"seconds": startup, "summary": s})
    desc = bl.machine_description(with_r=not r_note)
    desc["load average (1 min) at start / end"] = f"{load_start} / {bl.load_average()}"
    md = report_markdown(rows, s, desc, args, r_note)
    (args.out / "reference_models.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
