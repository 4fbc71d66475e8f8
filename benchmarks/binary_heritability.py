"""Simulation study: liability-scale heritability of a binary trait by EP, Laplace and threshold.

Run from the repository root::

    python benchmarks/binary_heritability.py --replicates 50          # the full study
    python benchmarks/binary_heritability.py --replicates 2 --n 300   # a quick look

Design: ``n`` individuals in sibling pairs (``n/2`` families; parents'
genotypes at ``m = 2000`` unlinked SNPs drawn with frequencies U(0.05, 0.5),
children by Mendelian transmission), ``K`` the realised standardised kinship
of the children (≈ 0.5 within a pair, ≈ 0 between).  Liability
``l = g + e``, ``g ~ N(0, h² K)``, ``e ~ N(0, 1 - h²)``; ``y = 1[l > Φ⁻¹(1 - k)]``
with prevalence ``k`` (the sample is the population: no ascertainment).  For
every (h², k) in {0.2, 0.5, 0.8} × {0.1, 0.3, 0.5} and each replicate, each
method estimates the liability h²:

* ``ep``        — :func:`mixedmodels.genetics.heritability` ``family="bernoulli"`` (default EP);
* ``laplace``   — the Laplace GLMM (``method="laplace"``);
* ``threshold`` — observed-scale REML transformed with the true prevalence.

Bias (mean estimate − truth) and RMSE per cell and method go to
``benchmarks/results/binary_heritability.json`` and a Markdown table (printed,
and pasted into docs/genetics.md).  A method that fails on a replicate is
counted in ``failed``, not averaged.  One BLAS thread (``--threads``).
``--methods`` and ``--tag`` split the study over processes (the same seed
gives every process the same kinship and traits); ``--budget`` stops after
the replicate that passes that many seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np
from scipy.stats import norm

RESULTS = Path(__file__).parent / "results"
METHODS = ("ep", "laplace", "threshold")


def sibling_kinship(rng: np.random.Generator, n: int, m: int = 2000) -> np.ndarray:
    """Realised kinship of ``n`` children in pairs of full siblings."""
    from mixedmodels.genetics import kinship

    freq = rng.uniform(0.05, 0.5, size=m)
    families = n // 2
    parents = rng.random((families, 2, 2, m)) < freq  # family, parent, haplotype, SNP
    children = np.empty((families, 2, m))
    for child in range(2):
        pick = rng.integers(0, 2, size=(families, 2, m))  # which haplotype each parent gives
        given = np.take_along_axis(parents, pick[:, :, None, :], axis=2)[:, :, 0, :]
        children[:, child] = given.sum(axis=1)
    return np.asarray(kinship(children.reshape(n, m)))


def liability_trait(rng, K_chol, h2: float, prevalence: float) -> np.ndarray:
    n = K_chol.shape[0]
    g = np.sqrt(h2) * (K_chol @ rng.normal(size=n))
    e = np.sqrt(1 - h2) * rng.normal(size=n)
    return (g + e > norm.ppf(1 - prevalence)).astype(float)


def estimate(method: str, y: np.ndarray, K: np.ndarray, prevalence: float) -> float:
    from mixedmodels.genetics import heritability

    if method == "threshold":
        return heritability(
            y, K=K, family="bernoulli", method="threshold", prevalence=prevalence
        ).h2
    return heritability(y, K=K, family="bernoulli", method=method).h2


def run(args) -> dict:
    rng = np.random.default_rng(args.seed)
    K = sibling_kinship(rng, args.n)
    K_chol = np.linalg.cholesky(K + 1e-8 * np.eye(args.n))
    rows, seconds = [], {m: 0.0 for m in args.methods}
    deadline = time.monotonic() + args.budget
    for rep in range(args.replicates):
        for h2 in (0.2, 0.5, 0.8):
            for k in (0.1, 0.3, 0.5):
                y = liability_trait(rng, K_chol, h2, k)
                for method in args.methods:
                    t0 = time.perf_counter()
                    try:
                        value = float(estimate(method, y, K, k))
                    except Exception as exc:  # a failed replicate is a row, not a stop
                        value = float("nan")
                        print(f"rep {rep} h2={h2} k={k} {method}: {exc}", file=sys.stderr)
                    seconds[method] += time.perf_counter() - t0
                    rows.append({"rep": rep, "h2": h2, "k": k, "method": method, "estimate": value})
        print(f"replicate {rep + 1} done", file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            break
        _save(rows, seconds, args, rep + 1)
    return _save(rows, seconds, args, rep + 1)


def _save(rows, seconds, args, replicates) -> dict:
    import pandas as pd

    table = pd.DataFrame(rows)
    ok = table.dropna(subset=["estimate"])
    summary = (
        ok.assign(error=ok["estimate"] - ok["h2"])
        .groupby(["h2", "k", "method"])
        .agg(
            bias=("error", "mean"),
            rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))),
            replicates=("error", "size"),
        )  # fmt: skip
        .reset_index()
    )
    failed = table[table["estimate"].isna()].groupby("method").size().to_dict()
    out = {
        "n": args.n,
        "replicates": replicates,
        "seconds_per_fit": {m: seconds[m] / max(1, len(table[table.method == m])) for m in seconds},
        "failed": failed,
        "mean_abs_bias": ok.assign(e=ok["estimate"] - ok["h2"])
        .groupby(["method", "h2", "k"])["e"]
        .mean()
        .abs()
        .groupby("method")
        .mean()
        .to_dict(),  # fmt: skip
        "mean_bias": (ok["estimate"] - ok["h2"]).groupby(ok["method"]).mean().to_dict(),
        "cells": summary.to_dict(orient="records"),
    }
    RESULTS.mkdir(exist_ok=True)
    name = "binary_heritability" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(summary, out))
    return out


def markdown(summary, out) -> str:
    wide = summary.pivot_table(index=["h2", "k"], columns="method", values=["bias", "rmse"])
    lines = [
        f"n = {out['n']}, {out['replicates']} replicate(s) per cell; seconds per fit: "
        + ", ".join(f"{m} {s:.1f}" for m, s in out["seconds_per_fit"].items()),
        "",
        "| h² | prevalence | " + " | ".join(f"bias {m}" for m in METHODS if ("bias", m) in wide)
        + " | " + " | ".join(f"RMSE {m}" for m in METHODS if ("rmse", m) in wide) + " |",
    ]  # fmt: skip
    cols = [c for c in (("bias", m) for m in METHODS) if c in wide] + [
        c for c in (("rmse", m) for m in METHODS) if c in wide
    ]
    lines.append("|" + " --- |" * (2 + len(cols)))
    for (h2, k), row in wide.iterrows():
        lines.append(
            f"| {h2} | {k} | "
            + " | ".join(f"{row[c]:+.3f}" if c[0] == "bias" else f"{row[c]:.3f}" for c in cols)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--budget", type=float, default=1e9, help="stop after this many seconds")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--tag", default="", help="suffix of the result files (runs in parallel)")
    args = parser.parse_args()
    out = run(args)
    print(json.dumps({k: v for k, v in out.items() if k != "cells"}, indent=2))
    print((RESULTS / f"binary_heritability{'_' + args.tag if args.tag else ''}.md").read_text())


if __name__ == "__main__":
    main()
