"""A MovieLens-shaped crossed design: ``y ~ 1 + (1|user) + (1|item)``, 10^6 ratings.

Usage::

    python benchmarks/movielens.py [--n 1000000] [--evals 3] [--fit] [--lme4] [--mixedlm]
                                   [--peer-timeout 900] [--scaling]

The ratings are simulated (seeded) with MovieLens 1M's shape: 6,040 users
and 3,706 items, activity and popularity skewed (log-normal counts: every
user rates at least 20 items, a few rate thousands), each rating
1 + user effect + item effect + noise.  Users (the factor with more levels)
form the diagonal first block; the 3,706 items form block B, which fills in
completely (any two items share a user).

By default the script builds the model, times ``--evals`` evaluations of the
objective, then times one evaluation with the split product and one with the
general sparse product, alternating (two rounds, the objectives compared);
``--fit`` fits for real.  Peak
resident memory (``getrusage``) is reported with the load average and the
cores other processes kept busy.  ``--lme4`` and ``--mixedlm`` time the peers
on the same data, each in a child process stopped after ``--peer-timeout``
seconds (mixedlm's peak RSS is its own VmHWM; lme4's is not measured).  Results go to
``benchmarks/results/movielens.md``.

``--scaling`` instead times one evaluation against the size q_B of block B,
for a dense B (levels crossed at random: B fills in, LAPACK) and a sparse B
(levels crossed within clusters of 40: CHOLMOD, and the same design forced
dense), writing ``benchmarks/results/movielens_scaling.json`` and the plot
``docs/img/movielens_scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

USERS, ITEMS = 6040, 3706
FORMULA = "y ~ 1 + (1|user) + (1|item)"


def simulate(n: int, seed: int = 17):
    """Ratings with skewed user activity and item popularity (no pair repeated)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, USERS)
    popularity = rng.lognormal(0.0, 1.2, ITEMS)
    counts = 20 + np.floor((n - 20 * USERS) * activity / activity.sum()).astype(int)
    counts = np.minimum(counts, ITEMS // 2)
    p = popularity / popularity.sum()
    users, items = [], []
    for u, c in enumerate(counts):  # once, to simulate the data; not in the package
        users.append(np.full(c, u))
        items.append(rng.choice(ITEMS, size=c, replace=False, p=p))
    user, item = np.concatenate(users), np.concatenate(items)
    y = 1.0 + rng.normal(0, 0.5, USERS)[user] + rng.normal(0, 0.7, ITEMS)[item]
    y += rng.normal(0, 1.0, len(y))
    return pd.DataFrame(
        {
            "y": y,
            "user": pd.Categorical(user.astype(str)),
            "item": pd.Categorical(item.astype(str)),
        }
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def text_levels(df):
    """The ratings with user and item levels as text ("u17", "i3"), so that R reads factors."""
    return df.assign(user="u" + df["user"].astype(str), item="i" + df["item"].astype(str))


def product_description(system) -> str:
    """How L21 L21' is formed for this system (which kernel, its split)."""
    product = system._scalar_product
    if product is None:
        return "sparse product each evaluation"
    if hasattr(product, "heavy"):
        return (
            f"SplitProduct: {len(product.heavy)} heavy levels by dsyrk, "
            f"{len(product.light)} light levels with {product.light_pairs:.3g} pairs"
        )
    return f"ScalarProduct pair lists ({len(product.P1):.3g} pairs)"


def ours(df, evals: int, fit: bool) -> dict:
    import numpy as np

    import mixedmodels as mm

    t0 = time.perf_counter()
    m = mm.LinearMixedModel(FORMULA, df)
    build = time.perf_counter() - t0
    out = {
        "build_s": build,
        "factor": "CHOLMOD" if m.system.factorB.sparse else "dense",
        "product": product_description(m.system),
        "rss_after_build": peak_rss_mib(),
    }
    theta = m.optsum.initial
    with bl.OtherLoad() as load:
        from mixedmodels.threads import blas_threads_for

        with blas_threads_for(m.system.dense_dim):
            times = []
            for i in range(evals):
                t = time.perf_counter()
                m.objective_at(theta * (1.0 + 0.1 * i))
                times.append(time.perf_counter() - t)
    out.update(eval_s=bl.median(times), eval_other=load.cores, rss_after_evals=peak_rss_mib())
    out.update(alternate(m, theta, rounds=2))
    if fit:
        t = time.perf_counter()
        with bl.OtherLoad() as load:
            m.fit()
        out.update(fit_s=time.perf_counter() - t, evals=m.optsum.feval, fit_other=load.cores)
        out["objective"] = m.objective
        out["theta"] = np.round(m.theta, 5).tolist()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def alternate(m, theta, rounds: int) -> dict:
    """One evaluation with the split product and one with the general sparse product, alternating.

    The sparse product (``L21 @ L21.T`` then a dense copy) is what an
    evaluation did before :class:`SplitProduct`; both give the same objective.
    """
    from mixedmodels.threads import blas_threads_for

    system = m.system
    split = system._scalar_product
    times = {"split": [], "sparse product": []}
    values = {}
    with bl.OtherLoad() as load, blas_threads_for(system.dense_dim):
        for _ in range(rounds):
            for name, product in (("split", split), ("sparse product", None)):
                system._scalar_product = product
                t = time.perf_counter()
                values[name] = m.objective_at(theta)
                times[name].append(time.perf_counter() - t)
    system._scalar_product = split
    return {
        "alt_split_s": bl.median(times["split"]),
        "alt_sparse_s": bl.median(times["sparse product"]),
        "alt_rel_diff": abs(values["split"] - values["sparse product"]) / abs(values["split"]),
        "alt_other": load.cores,
    }


def lme4(df, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ratings.csv"
        text_levels(df).to_csv(csv, index=False)
        job = {
            "name": "movielens",
            "csv": str(csv),
            "levels": "-",
            "formula": FORMULA,
            "kind": "lmm",
            "reml": "FALSE",
            "family": "gaussian",
            "nagq": "1",
            "reps": "1",
        }
        t = time.perf_counter()
        with bl.OtherLoad() as load:
            try:
                rec = bl.run_lme4([job], timeout=timeout)["movielens"]
            except subprocess.TimeoutExpired:
                rec = {"status": f"stopped after {timeout:.0f} s"}
        rec["wall_s"] = time.perf_counter() - t
    rec["other"] = load.cores  # R's memory is not measured: lme4_fits.R does not report it
    return rec


MIXEDLM_CHILD = """
import json, sys, time
import pandas as pd
import mixedlm as ml
df = pd.read_csv(sys.argv[1], dtype={"user": str, "item": str})
t = time.perf_counter()
r = ml.lmer(sys.argv[2], df, REML=False)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"fit_s": time.perf_counter() - t, "objective": -2 * r.logLik().value,
                  "peak_rss_mib": int(hwm) / 1024}))
"""


def mixedlm(df, timeout: float) -> dict:
    """mixedlm's ``lmer`` in a child process (so that it can be stopped), timed inside it."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ratings.csv"
        text_levels(df).to_csv(csv, index=False)
        t = time.perf_counter()
        with bl.OtherLoad() as load:
            try:
                run = subprocess.run(
                    [sys.executable, "-c", MIXEDLM_CHILD, str(csv), FORMULA],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                rec = (
                    json.loads(run.stdout.strip().splitlines()[-1])
                    if run.returncode == 0
                    else {"status": "failed: " + run.stderr.strip().splitlines()[-1]}
                )
            except subprocess.TimeoutExpired:
                rec = {"status": f"stopped after {timeout:.0f} s"}
        rec["wall_s"] = time.perf_counter() - t
    rec["other"] = load.cores
    return rec


def crossed_ratings(q_b: int, clustered: bool, per_user: int = 30, seed: int = 5):
    """``per_user`` ratings by each of 2 q_b users of q_b items, at random or within clusters of 40."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    users = 2 * q_b
    if clustered:  # a user rates items of one cluster: B is nearly block diagonal
        base = 40 * rng.integers(0, q_b // 40, users)
        items = (
            base[:, None] + rng.permuted(np.tile(np.arange(40), (users, 1)), axis=1)[:, :per_user]
        )
    else:
        items = rng.integers(0, q_b, (users, per_user))  # a repeated pair just counts twice
    user = np.repeat(np.arange(users), per_user)
    item = items.ravel()
    y = rng.normal(0, 0.5, users)[user] + rng.normal(0, 0.7, q_b)[item] + rng.normal(size=len(user))
    return pd.DataFrame(
        {"y": y, "user": pd.Categorical(user.astype(str)), "item": pd.Categorical(item.astype(str))}
    )


def time_one_evaluation(df, sparse: bool, evals: int = 2) -> dict:
    """Median time of ``evals`` evaluations with block B's factor forced dense or sparse."""
    import mixedmodels as mm
    from mixedmodels.threads import blas_threads_for

    m = mm.LinearMixedModel(FORMULA, df, sparse=sparse)
    times = []
    with bl.OtherLoad() as load, blas_threads_for(m.system.dense_dim):
        for i in range(evals):
            t = time.perf_counter()
            m.objective_at(m.optsum.initial * (1.0 + 0.1 * i))
            times.append(time.perf_counter() - t)
    return {"q_B": m.system.qB, "eval_s": bl.median(times), "other": load.cores}


SCALING_SIZES = (250, 500, 1000, 2000, 4000, 10000)


def scaling(out_json: Path, plot: Path) -> None:
    """Time per evaluation against q_B: dense B, sparse B by CHOLMOD, sparse B forced dense."""
    series = {"dense B (random crossing), LAPACK": (False, False)}
    series["sparse B (clustered), CHOLMOD"] = (True, True)
    series["sparse B (clustered), forced dense"] = (True, False)
    rows = []
    for q_b in SCALING_SIZES:
        for label, (clustered, sparse) in series.items():
            evals = 2 if q_b < 5000 else 1
            rec = time_one_evaluation(crossed_ratings(q_b, clustered), sparse, evals)
            rec.update(series=label, load=os.getloadavg()[0])
            rows.append(rec)
            print(
                f"[scaling] {label} q_B={q_b}: {rec['eval_s']:.3f} s", file=sys.stderr, flush=True
            )
    bl.save_json(out_json, rows)
    plot_scaling(rows, plot)


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label in dict.fromkeys(r["series"] for r in rows):
        pts = [(r["q_B"], r["eval_s"]) for r in rows if r["series"] == label]
        ax.loglog(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("levels in block B (q_B)")
    ax.set_ylabel("seconds per evaluation")
    ax.set_title("y ~ 1 + (1|user) + (1|item), 2 q_B users x 30 ratings")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--evals", type=int, default=3)
    p.add_argument("--fit", action="store_true")
    p.add_argument("--lme4", action="store_true")
    p.add_argument("--mixedlm", action="store_true")
    p.add_argument("--peer-timeout", type=float, default=900.0)
    p.add_argument("--scaling", action="store_true")
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR / "movielens.md")
    args = p.parse_args(argv)
    if args.scaling:
        scaling(
            bl.RESULTS_DIR / "movielens_scaling.json",
            bl.REPO_DIR / "docs/img/movielens_scaling.png",
        )
        return
    load_start = os.getloadavg()[0]
    df = simulate(args.n)
    rss_data = peak_rss_mib()
    print(f"[movielens] {len(df)} ratings simulated", file=sys.stderr, flush=True)
    res = ours(df, args.evals, args.fit)
    load_ours = os.getloadavg()[0]
    flags = "".join(f" --{k}" for k in ("fit", "lme4", "mixedlm") if getattr(args, k))
    lines = [
        f"# MovieLens-shaped design: `{FORMULA}`\n",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, `python benchmarks/movielens.py "
        f"--n {args.n} --evals {args.evals}{flags} --peer-timeout {args.peer_timeout:.0f}`; "
        f"load average at start {load_start:.2f}, after our runs {load_ours:.2f}, "
        f"at end LOAD_END. Commit {bl.package_commit()}.\n",
        f"- ratings: {len(df)}; users {df['user'].nunique()}, items {df['item'].nunique()}; "
        f"ratings per user: median {int(df['user'].value_counts().median())}, max {df['user'].value_counts().max()}",
        f"- model construction: {res['build_s']:.2f} s; factor of block B: {res['factor']}; "
        f"L21L21': {res['product']}",
        f"- one evaluation of the objective (median of {args.evals}): {res['eval_s']:.2f} s, "
        f"other processes keeping {res['eval_other']:.2f} cores busy meanwhile",
        f"- side by side, alternating (2 rounds): one evaluation {res['alt_split_s']:.2f} s with "
        f"the split product, {res['alt_sparse_s']:.2f} s with the general sparse product "
        f"(the previous code path; ratio {res['alt_split_s'] / res['alt_sparse_s']:.2f}); "
        f"objectives differ by {res['alt_rel_diff']:.1e} relative; other cores {res['alt_other']:.2f}",
        f"- peak RSS: {res['peak_rss_mib']:.0f} MiB (after simulating the data: {rss_data:.0f} MiB, "
        f"after construction {res['rss_after_build']:.0f} MiB)",
    ]
    if args.fit:
        lines.append(
            f"- fit: {res['fit_s']:.1f} s, {res['evals']} evaluations "
            f"({res['fit_s'] / res['evals']:.2f} s each), construction + fit "
            f"{res['build_s'] + res['fit_s']:.1f} s; objective {res['objective']:.4f}, "
            f"θ {res['theta']}, other processes keeping {res['fit_other']:.2f} cores busy"
        )
    save_markdown(lines, args.out)  # again after each peer: a slow peer loses nothing
    if args.lme4 and bl.ensure_lme4() is None:
        rec = lme4(df, args.peer_timeout)
        detail = (
            f"fit {rec['median_s']:.1f} s (timed fit after one untimed warm-up fit), "
            f"{rec['feval_reported']} evaluations, objective {rec['objective']:.4f}"
            if rec["status"] == "ok"
            else rec["status"]
        )
        lines.append(
            f"- lme4: {detail}; R process {rec['wall_s']:.0f} s wall in all, "
            f"other cores {rec['other']:.2f}"
        )
        save_markdown(lines, args.out)
    if args.mixedlm:
        rec = mixedlm(df, args.peer_timeout)
        detail = (
            f"fit {rec['fit_s']:.1f} s, objective {rec['objective']:.4f}, "
            f"peak RSS {rec['peak_rss_mib']:.0f} MiB"
            if "fit_s" in rec
            else rec["status"]
        )
        lines.append(
            f"- mixedlm: {detail}; child process {rec['wall_s']:.0f} s wall, "
            f"other cores {rec['other']:.2f}"
        )
    print(save_markdown(lines, args.out))


def save_markdown(lines: list[str], path: Path) -> str:
    md = ("\n".join(lines) + "\n").replace("LOAD_END", f"{os.getloadavg()[0]:.2f}")
    path.write_text(md)
    return md


if __name__ == "__main__":
    main()
