"""The thread policy's effect, A/B in one run: automatic BLAS threads vs every thread vs mixedlm.

Usage::

    python benchmarks/threads_ab.py [--models insteval_ml] [--rounds 2]

Each round fits every model with the automatic policy, then with
``mm.set_threads(os.cpu_count())`` (every core, whatever the load: the
behaviour without a policy for large blocks) and then with mixedlm, so the
three see the same machine; the load average and the cores other processes
kept busy are recorded for every fit.  Results go to
``benchmarks/results/threads_ab.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone

import benchlib as bl
import load
import run


def one(call) -> dict:
    la = os.getloadavg()[0]
    with bl.OtherLoad() as other:
        t = time.perf_counter()
        call()
        s = time.perf_counter() - t
    return {"s": s, "loadavg": la, "other": other.cores}


def main(argv=None) -> None:
    import mixedmodels as mm
    from mixedmodels.threads import POLICY

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="insteval_ml")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    specs = [s for s in run.load_specs("*") if s["name"] in args.models.split(",")]
    lines = [
        f"# BLAS thread policy A/B\n\nRun {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, "
        f"`python benchmarks/threads_ab.py --models {args.models} --rounds {args.rounds}`.\n",
        "| round | model | variant | s | BLAS threads | load avg | other cores |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for spec in specs:
        df = run.load_data(spec["data"])
        run.fit_ours(spec, df)  # warm-up
        peer, _ = load.mixedlm_call(spec, df)
        for r in range(args.rounds):
            for variant in ("automatic", "every core", "mixedlm"):
                print(f"[ab] {spec['name']} {variant}", file=sys.stderr, flush=True)
                mm.set_threads(os.cpu_count() if variant == "every core" else None)
                call = (
                    peer
                    if variant == "mixedlm"
                    else (lambda spec=spec, df=df: run.fit_ours(spec, df))
                )
                rec = one(call)
                threads = "–" if variant == "mixedlm" else (POLICY.last_choice or {}).get("threads")
                lines.append(
                    f"| {r + 1} | {spec['name']} | {variant} | {rec['s']:.2f} | {threads} "
                    f"| {rec['loadavg']:.2f} | {rec['other']:.2f} |"
                )
                print(lines[-1], file=sys.stderr, flush=True)  # a row as soon as it is measured
        mm.set_threads(None)
    md = "\n".join(lines) + "\n"
    (bl.RESULTS_DIR / "threads_ab.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
