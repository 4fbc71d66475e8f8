"""A MovieLens-shaped crossed design: ``y ~ 1 + (1|user) + (1|item)``, 10^6 ratings.

Usage::

    python benchmarks/movielens.py [--n 1000000] [--evals 3] [--fit] [--lme4] [--mixedlm]

The ratings are simulated (seeded) with MovieLens 1M's shape: 6,040 users
and 3,706 items, activity and popularity skewed (log-normal counts: every
user rates at least 20 items, a few rate thousands), each rating
1 + user effect + item effect + noise.  Users (the factor with more levels)
form the diagonal first block; the 3,706 items form block B, which fills in
completely (any two items share a user).

By default the script builds the model, times ``--evals`` evaluations of the
objective and extrapolates to a fit with the number of evaluations lme4
makes for a two-factor model (about 30); ``--fit`` fits for real.  Peak
resident memory (``getrusage``) is reported with the load average and the
cores other processes kept busy.  ``--lme4`` and ``--mixedlm`` time the peers
on the same data (each can take many minutes).  Results go to
``benchmarks/results/movielens.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def ours(df, evals: int, fit: bool) -> dict:
    import numpy as np

    import mixedmodels as mm

    t0 = time.perf_counter()
    m = mm.LinearMixedModel(FORMULA, df)
    build = time.perf_counter() - t0
    out = {"build_s": build, "factor": "CHOLMOD" if m.system.factorB.sparse else "dense"}
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
    if fit:
        t = time.perf_counter()
        with bl.OtherLoad() as load:
            m.fit()
        out.update(fit_s=time.perf_counter() - t, evals=m.optsum.feval, fit_other=load.cores)
        out["objective"] = m.objective
        out["theta"] = np.round(m.theta, 5).tolist()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def lme4(df) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ratings.csv"
        df.to_csv(csv, index=False)
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
        with bl.OtherLoad() as load:
            rec = bl.run_lme4([job])["movielens"]
    rec["other"] = load.cores
    return rec


def mixedlm(df) -> dict:
    import mixedlm as ml

    t = time.perf_counter()
    with bl.OtherLoad() as load:
        r = ml.lmer(FORMULA, df, REML=False)
    return {
        "fit_s": time.perf_counter() - t,
        "other": load.cores,
        "objective": -2 * r.logLik().value,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--evals", type=int, default=3)
    p.add_argument("--fit", action="store_true")
    p.add_argument("--lme4", action="store_true")
    p.add_argument("--mixedlm", action="store_true")
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR / "movielens.md")
    args = p.parse_args(argv)
    load_start = os.getloadavg()[0]
    df = simulate(args.n)
    rss_data = peak_rss_mib()
    print(f"[movielens] {len(df)} ratings simulated", file=sys.stderr, flush=True)
    res = ours(df, args.evals, args.fit)
    lines = [
        f"# MovieLens-shaped design: `{FORMULA}`\n",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, `python benchmarks/movielens.py "
        f"--n {args.n} --evals {args.evals}{' --fit' if args.fit else ''}`; load average at start "
        f"{load_start:.2f}, at end {os.getloadavg()[0]:.2f}.\n",
        f"- ratings: {len(df)}; users {df['user'].nunique()}, items {df['item'].nunique()}; "
        f"ratings per user: median {int(df['user'].value_counts().median())}, max {df['user'].value_counts().max()}",
        f"- model construction: {res['build_s']:.2f} s; factor of block B: {res['factor']}",
        f"- one evaluation of the objective (median of {args.evals}): {res['eval_s']:.2f} s, "
        f"other processes keeping {res['eval_other']:.2f} cores busy meanwhile",
        f"- extrapolated fit at 30 evaluations: {res['build_s'] + 30 * res['eval_s']:.1f} s",
        f"- peak RSS: {res['peak_rss_mib']:.0f} MiB (after simulating the data: {rss_data:.0f} MiB)",
    ]
    if args.fit:
        lines.append(
            f"- fit: {res['fit_s']:.1f} s, {res['evals']} evaluations, objective {res['objective']:.4f}, "
            f"θ {res['theta']}, other cores {res['fit_other']:.2f}"
        )
    if args.lme4 and bl.ensure_lme4() is None:
        rec = lme4(df)
        lines.append(
            f"- lme4: {rec.get('median_s')} s ({rec.get('status')}), other cores {rec['other']:.2f}"
        )
    if args.mixedlm:
        rec = mixedlm(df)
        lines.append(
            f"- mixedlm: {rec['fit_s']:.1f} s, objective {rec['objective']:.4f}, other cores {rec['other']:.2f}"
        )
    md = "\n".join(lines) + "\n"
    args.out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
