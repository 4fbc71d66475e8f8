"""The hard models (tests/data/hard, from tools/make_hard_models.R): our objective before and after the restarts.

Usage::

    python benchmarks/hard_models.py [--models PATTERN]

For each model: the package's default fit with restarts switched off
("before") and on ("after"), lme4's default and the best reference (the
best of lme4's ``allFit`` optimizers and glmmTMB), the restarts used and the
time of both fits.  Writes ``benchmarks/results/hard_models.md``.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hard_models as hm  # noqa: E402 - from tests/, put on the path above


def fit(name: str, restarts: bool):
    m = hm.build(name)
    if not restarts:
        m.optsum.max_restarts = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        m.fit()
        seconds = time.perf_counter() - t0
    return m, seconds, sorted({w.category.__name__ for w in caught})


def row(name: str) -> str:
    ref = hm.reference(name)
    best = ref["reference_objective"]
    before, t_before, _ = fit(name, False)
    after, t_after, warned = fit(name, True)
    o = after.optsum

    def rel(v):
        return f"{(v - best) / abs(best):+.1e}"

    return (
        f"| {name} | {ref['nobs']} | {before.objective:.6f} ({rel(before.objective)}) | {after.objective:.6f} "
        f"({rel(after.objective)}) | {ref['lme4_default']['objective']:.6f} ({rel(ref['lme4_default']['objective'])}) "
        f"| {best:.6f} | {o.restarts} ({o.winner}) | {o.convergence} | {t_before:.2f} | {t_after:.2f} "
        f"| {', '.join(warned) or '–'} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="*")
    args = ap.parse_args()
    lines = [
        "# Hard models: the package before and after its convergence check and restarts",
        "",
        "Objectives: -2 log-likelihood (ML, Laplace) or the REML criterion; in brackets relative to the best",
        "reference (the best of lme4's allFit optimizers and glmmTMB; tools/make_hard_models.R).",
        "'before': the default fit with `optsum.max_restarts = 0`; 'after': the default fit.",
        "",
        "| model | n | ours before | ours after | lme4 default | best reference | restarts (winner) | check | s before | s after | warnings |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for name in hm.model_names():
        if fnmatch.fnmatch(name, args.models):
            lines.append(row(name))
            print(lines[-1], flush=True)
    out = ROOT / "benchmarks" / "results" / "hard_models.md"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
