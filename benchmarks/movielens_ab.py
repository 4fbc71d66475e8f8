"""MovieLens-shaped design, two checkouts side by side: per evaluation and whole fits, alternating.

Usage::

    python benchmarks/movielens_ab.py --base /tmp/base [--rounds 3] [--fits 1] [--out FILE]

The ratings of ``movielens.py`` are simulated once and handed to two worker
processes, one importing ``mixedmodels`` from ``--base`` (the baseline
checkout) and one from this checkout.  Each builds the model (timed), then
the driver asks them in turn, A B A B ..., for one evaluation of the
objective at the moment start scaled by 1 + 0.1 i (``--rounds`` each), and
then for ``--fits`` whole fits each, alternating again.  Only one worker
computes at a time; each measures the cores other processes kept busy while
it worked and its BLAS thread count, and the load average is recorded at the
start and the end.  Results go to ``benchmarks/results/movielens_ab.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import benchlib as bl

WORKER = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
import pandas as pd
import benchlib as bl
import mixedmodels as mm
from mixedmodels.threads import blas_threads_for

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

df = pd.read_pickle(sys.argv[1])
t = time.perf_counter()
m = mm.LinearMixedModel("y ~ 1 + (1|user) + (1|item)", df)
print(json.dumps({"build_s": time.perf_counter() - t, "rss": rss()}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    with bl.OtherLoad() as load:
        t = time.perf_counter()
        if cmd["what"] == "eval":
            with blas_threads_for(m.system.dense_dim):
                from threadpoolctl import threadpool_info
                threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
                value = m.objective_at(m.optsum.initial * cmd["factor"])
            out = {"value": value, "threads": threads}
        else:
            m.fit()
            out = {"value": m.objective, "evals": m.optsum.feval, "theta": m.theta.tolist(),
                   "end": m.optsum.returnvalue, "check": m.optsum.check_feval}
        out["s"] = time.perf_counter() - t
    out.update(other=load.cores, rss=rss())
    print(json.dumps(out), flush=True)
"""


def start(tree: Path, data: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(data), str(Path(__file__).parent)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def ask(worker: subprocess.Popen, **cmd) -> dict:
    worker.stdin.write(json.dumps(cmd) + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def main(argv=None) -> None:
    import movielens

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fits", type=int, default=1)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=bl.RESULTS_DIR / "movielens_ab.md")
    args = p.parse_args(argv)
    load_start = os.getloadavg()[0]
    trees = {"base": args.base.resolve(), "new": bl.REPO_DIR}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ratings.pkl"
        movielens.simulate(args.n).to_pickle(data)
        workers, builds = {}, {}
        for name, tree in trees.items():  # one builds while the other waits
            workers[name] = start(tree, data)
            builds[name] = json.loads(workers[name].stdout.readline())
        for i in range(args.rounds):
            for name in trees if i % 2 == 0 else reversed(list(trees)):
                rec = ask(workers[name], what="eval", factor=1.0 + 0.1 * i)
                rows.append(dict(rec, kind="eval", variant=name, round=i))
                print(f"[ab] eval {i} {name}: {rec['s']:.3f} s", file=sys.stderr, flush=True)
        for i in range(args.fits):
            for name in trees if i % 2 == 0 else reversed(list(trees)):
                rec = ask(workers[name], what="fit")
                rows.append(dict(rec, kind="fit", variant=name, round=i))
                print(f"[ab] fit {i} {name}: {rec['s']:.1f} s", file=sys.stderr, flush=True)
        for w in workers.values():
            w.stdin.close()
            w.wait()
    print(report(args, rows, builds, trees, load_start))


def report(args, rows, builds, trees, load_start) -> str:
    lines = [
        "# MovieLens-shaped design: baseline against this checkout, alternating\n",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, `python benchmarks/movielens_ab.py "
        f"--base {args.base} --rounds {args.rounds} --fits {args.fits}`; load average at start "
        f"{load_start:.2f}, at end {os.getloadavg()[0]:.2f}. This checkout: commit "
        f"{describe(trees['new'])}; baseline: {describe(trees['base'])}.\n",
        "- construction (one after the other): "
        + ", ".join(f"{k} {v['build_s']:.2f} s" for k, v in builds.items()),
        "",
        "| kind | round | variant | s | objective | BLAS threads / evaluations | other cores | peak RSS MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        extra = r.get("threads", r.get("evals"))
        lines.append(
            f"| {r['kind']} | {r['round']} | {r['variant']} | {r['s']:.3f} | {r['value']:.10f} "
            f"| {extra} | {r['other']:.2f} | {r['rss']:.0f} |"
        )
    lines.append("")
    for r in rows:
        if r["kind"] == "fit":
            lines.append(
                f"- fit {r['round']} {r['variant']}: θ {[round(t, 7) for t in r['theta']]}, "
                f"{r['evals']} evaluations + {r['check']} of the convergence check, {r['end']}"
            )
    for kind in ("eval", "fit"):
        med = {
            v: bl.median([r["s"] for r in rows if r["kind"] == kind and r["variant"] == v])
            for v in trees
            if any(r["kind"] == kind and r["variant"] == v for r in rows)
        }
        if len(med) == 2:
            lines.append(
                f"- {kind}: median base {med['base']:.3f} s, new {med['new']:.3f} s, "
                f"ratio new/base {med['new'] / med['base']:.3f}"
            )
    md = "\n".join(lines) + "\n"
    args.out.write_text(md)
    return md


def describe(tree: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(tree)


if __name__ == "__main__":
    main()
