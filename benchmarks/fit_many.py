"""Many responses, one design: fit_many against a loop of single fits and lme4's refit loop.

A simulated expression study: 500 samples from 50 donors (10 each) in 4
batches, two conditions, ``--features`` responses (default 10,000).  Measured,
in responses per second:

* ``fit_many`` in this process, Gaussian, REML, both ways: ``method="lockstep"``
  (the default: a chunk's responses fitted together by one Newton method on
  stacked objectives) and ``method="each"`` (one BOBYQA fit per response);
  median of ``--repeats`` runs for the lockstep path, whose runs are short;
* ``fit_many`` (lockstep) on a Dask LocalCluster with 2 worker processes (1 thread each);
* Poisson on a subset (one model refit per response: no lockstep path);
* a Python loop of ``LinearMixedModel(formula, data).fit()`` on ``--naive``
  responses (per-response rate; the loop over all responses is extrapolated);
* R: ``lmer`` once, then ``lme4::refit(fit, newresp = y)`` per response, as
  variancePartition's loop does, on ``--r-features`` responses, run by
  Rscript beside ours (interleaved: R, ours both ways on the same responses, R again);
  ``glmer`` + ``refit`` for the Poisson model.

Peak memory: tracemalloc's peak during ``fit_many`` for two chunk sizes, on a
dask array input (the responses are never all in memory).  The load average
(``os.getloadavg``) is recorded around each measurement: the machine is shared.

Agreement of the two paths (objectives, θ, evaluations, fallbacks) is recorded too.

    python benchmarks/fit_many.py [--features 10000] [--naive 40] [--r-features 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

import mixedmodels as mm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FORMULA = "~ 1 + condition + (1|donor) + (1|batch)"

R_LOOP = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
samples <- read.csv(args[1], stringsAsFactors = TRUE)
Y <- as.matrix(read.csv(args[2]))
family <- args[3]
form <- y ~ 1 + condition + (1|donor) + (1|batch)
samples$y <- Y[, 1]
fit <- if (family == "gaussian") lmer(form, samples, REML = TRUE) else glmer(form, samples, family = poisson)
t0 <- proc.time()[["elapsed"]]
theta <- matrix(NA, ncol(Y), 2)
for (j in seq_len(ncol(Y))) {
  f <- suppressMessages(suppressWarnings(refit(fit, newresp = Y[, j])))
  theta[j, ] <- getME(f, "theta")
}
cat(proc.time()[["elapsed"]] - t0, "\n")
write.table(theta, stdout(), row.names = FALSE, col.names = FALSE)
"""


def simulate(features: int, seed: int = 1, counts: bool = False):
    rng = np.random.default_rng(seed)
    n, donors, batches = 500, 50, 4
    donor = np.repeat(np.arange(donors), n // donors)
    batch = rng.integers(0, batches, n)
    samples = pd.DataFrame(
        {
            "donor": [f"d{i:02d}" for i in donor],
            "batch": [f"b{i}" for i in batch],
            "condition": np.tile(["a", "b"], n // 2),
        },
        index=pd.Index([f"s{i:03d}" for i in range(n)], name="sample"),
    )
    sd = rng.gamma(2.0, 0.3, size=(3, features))  # each feature its own variance components
    eta = (
        sd[0] * rng.standard_normal((donors, features))[donor]
        + sd[1] * rng.standard_normal((batches, features))[batch]
        + (samples["condition"] == "b").to_numpy()[:, None] * rng.normal(0, 0.3, features)
    )
    if counts:
        values = rng.poisson(np.exp(1.5 + 0.5 * eta + 0.2 * rng.standard_normal((n, features))))
    else:
        values = 6 + eta + rng.standard_normal((n, features))
    return samples, values.astype(float)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def timed(fn):
    before = load()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, {"load_before": before, "load_after": load()}


def ours(samples, Y, family="gaussian", scheduler=None, chunk=256, method="lockstep"):
    reml = family == "gaussian"
    return mm.fit_many(FORMULA, samples, Y, family=family, reml=reml, scheduler=scheduler,
                       chunk=chunk, method=method, progress=False)  # fmt: skip


def repeated(fn, repeats: int):
    """(last result, median seconds, all seconds, load before the first and after the last run)."""
    before, times = load(), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)), times, {"load_before": before, "load_after": load()}


def agreement(lock, each) -> dict:
    """How the lockstep rows compare with the per-response (BOBYQA) rows of the same responses."""
    a, b = lock.table, each.table
    ok = a["converged"] & b["converged"]
    diff = (a["objective"] - b["objective"])[ok]
    names = ["theta.donor.(Intercept)", "theta.batch.(Intercept)"]
    return {
        "both_converged": int(ok.sum()),
        "max_rel_objective_diff": float((diff.abs() / b["objective"][ok].abs()).max()),
        "lockstep_higher_by_more_than_1e-10_rel": int(
            (diff > 1e-10 * b["objective"][ok].abs()).sum()
        ),
        "lockstep_lower_by_more_than_1e-8": int((diff < -1e-8).sum()),
        "max_abs_theta_diff": float((a.loc[ok, names] - b.loc[ok, names]).abs().to_numpy().max()),
        "fallbacks": int((a["optimizer"] != "lockstep Newton").sum()),
        "median_feval_lockstep": float(a["feval"].median()),
        "median_feval_each": float(b["feval"].median()),
        "boundary_lockstep": int((a["convergence"] == "boundary").sum()),
        "boundary_each": int((b["convergence"] == "boundary").sum()),
    }


def naive(samples, Y):
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(Y.shape[1]):
            data = samples.assign(y=Y[:, j])
            out.append(mm.LinearMixedModel("y " + FORMULA, data, reml=True).fit().objective)
    return out


def r_loop(samples, Y, family: str):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        samples.to_csv(tmp / "samples.csv", index=False)
        pd.DataFrame(Y).to_csv(tmp / "y.csv", index=False)
        (tmp / "loop.R").write_text(R_LOOP)
        run = subprocess.run(
            ["Rscript", str(tmp / "loop.R"), str(tmp / "samples.csv"), str(tmp / "y.csv"), family],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    lines = run.stdout.split()
    return float(lines[0]), np.array([float(v) for v in lines[1:]]).reshape(-1, 2)


def theta_diff(table, r_theta) -> float:
    """Largest |θ ours - θ lme4| (lme4's refit objective is not comparable: see the results file)."""
    ours_theta = table.table[["theta.donor.(Intercept)", "theta.batch.(Intercept)"]].to_numpy()
    return float(np.max(np.abs(ours_theta - r_theta)))


def peak_memory(samples, Y, chunk: int) -> float:
    """tracemalloc's peak (MiB) of fit_many on a dask array of the responses."""
    import dask.array as da

    lazy = da.from_array(Y, chunks=(len(Y), chunk))
    tracemalloc.start()
    ours(samples, lazy, chunk=chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def dask_run(samples, Y):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        # every worker warm (imports, first calls): several small tasks, not one
        ours(samples, Y[:, :256], scheduler=client, chunk=32)
        return timed(lambda: ours(samples, Y, scheduler=client))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, default=10_000)
    p.add_argument("--naive", type=int, default=40)
    p.add_argument("--r-features", type=int, default=300)
    p.add_argument("--poisson", type=int, default=60)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-dask", action="store_true")
    args = p.parse_args()
    samples, Y = simulate(args.features)
    res: dict = {"features": args.features, "samples": len(samples), "cpus": os.cpu_count(),
                 "commit": benchlib.package_commit()}  # fmt: skip
    for method in ("lockstep", "each"):  # imports and first-call costs out of the timings
        ours(samples, Y[:, :20], method=method)

    table, secs, times, ld = repeated(lambda: ours(samples, Y), args.repeats)
    res["lockstep_inprocess"] = {"seconds": secs, "all_seconds": times, "rate": args.features / secs,
                                 **ld, "converged": int(table.table["converged"].sum())}  # fmt: skip
    print("lockstep in-process", res["lockstep_inprocess"], flush=True)
    each, esecs, ld = timed(lambda: ours(samples, Y, method="each"))
    res["each_inprocess"] = {"seconds": esecs, "rate": args.features / esecs, **ld,
                             "converged": int(each.table["converged"].sum())}  # fmt: skip
    res["agreement"] = agreement(table, each)
    print("each in-process", res["each_inprocess"], res["agreement"], flush=True)

    k = min(args.r_features, args.features)
    (r_secs_a, r_theta), _, ld_a = timed(lambda: r_loop(samples, Y[:, :k], "gaussian"))
    sub, lsecs, ltimes, ld_l = repeated(lambda: ours(samples, Y[:, :k]), args.repeats)
    _, esecs1, ld_e = timed(lambda: ours(samples, Y[:, :k], method="each"))
    (r_secs_b, _), _, ld_b = timed(lambda: r_loop(samples, Y[:, :k], "gaussian"))
    r1 = min(r_secs_a, r_secs_b)
    res["r_refit_gaussian"] = {"features": k, "seconds": [r_secs_a, r_secs_b], "rate": k / r1,
                               "lockstep_seconds": lsecs, "lockstep_all_seconds": ltimes,
                               "lockstep_rate": k / lsecs, "each_seconds": esecs1,
                               "each_rate": k / esecs1, "load": [ld_a, ld_l, ld_e, ld_b],
                               "max_abs_theta_diff_vs_lme4": theta_diff(sub, r_theta)}  # fmt: skip
    print("R refit", res["r_refit_gaussian"], flush=True)

    m = min(args.naive, args.features)
    _, naive_secs, ld = timed(lambda: naive(samples, Y[:, :m]))
    res["naive_loop"] = {"features": m, "seconds": naive_secs, "rate": m / naive_secs,
                         "extrapolated_seconds_all": naive_secs / m * args.features, **ld}  # fmt: skip
    print("naive", res["naive_loop"], flush=True)

    if not args.no_dask:
        dtable, dsecs, ld = dask_run(samples, Y)
        same = bool(np.allclose(dtable.table["objective"], table.table["objective"], rtol=1e-8))
        res["lockstep_dask_2_workers"] = {"seconds": dsecs, "rate": args.features / dsecs, **ld,
                                          "objectives_match_in_process": same}  # fmt: skip
        print("dask", res["lockstep_dask_2_workers"], flush=True)

    res["peak_mib"] = {}
    peak_memory(samples, Y[:, :64], 64)  # dask's own first-use allocations out of the peaks
    for chunk in (64, 512):
        peak = peak_memory(samples, Y[:, : min(2048, args.features)], chunk)
        res["peak_mib"][f"chunk_{chunk}"] = round(peak, 1)
    print("peak", res["peak_mib"], flush=True)

    samples_c, C = simulate(args.poisson, seed=2, counts=True)
    ours(samples_c, C[:, :2], family="poisson")
    pt, psecs, ld_p = timed(lambda: ours(samples_c, C, family="poisson"))
    (rp_secs, rp_obj), _, ld_r = timed(lambda: r_loop(samples_c, C, "poisson"))
    res["poisson"] = {"features": args.poisson, "ours_seconds": psecs, "ours_rate": args.poisson / psecs,
                      "r_refit_seconds": rp_secs, "r_rate": args.poisson / rp_secs, "load": [ld_p, ld_r],
                      "max_abs_theta_diff_vs_lme4": theta_diff(pt, rp_obj)}  # fmt: skip
    print("poisson", res["poisson"], flush=True)

    rr = res["r_refit_gaussian"]
    res["ratios"] = {
        "lockstep_vs_r_refit_same_features": rr["lockstep_rate"] / rr["rate"],
        "each_vs_r_refit_same_features": rr["each_rate"] / rr["rate"],
        "lockstep_vs_each_all_features": res["lockstep_inprocess"]["rate"] / res["each_inprocess"]["rate"],
        "lockstep_vs_naive": res["lockstep_inprocess"]["rate"] / res["naive_loop"]["rate"],
        "each_vs_naive": res["each_inprocess"]["rate"] / res["naive_loop"]["rate"],
        "poisson_vs_r_refit": res["poisson"]["ours_rate"] / res["poisson"]["r_rate"],
    }  # fmt: skip
    if "lockstep_dask_2_workers" in res:
        res["ratios"]["dask2_vs_inprocess"] = (
            res["lockstep_dask_2_workers"]["rate"] / res["lockstep_inprocess"]["rate"]
        )
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fit_many.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res["ratios"], indent=1))


if __name__ == "__main__":
    main()
