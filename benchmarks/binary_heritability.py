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
the replicate that passes that many seconds.  All draws come from one
generator in a fixed order, so ``--first-replicate r`` (draw replicates
``0..r-1`` without fitting them) continues an earlier run exactly, and
``--merge EARLIER LATER`` pools the two runs' cells (the JSON also keeps every
replicate's estimate under ``rows``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np
from scipy.stats import norm

RESULTS = Path(__file__).parent / "results"
METHODS = ("ep", "laplace", "threshold")


@dataclass(frozen=True)
class Study:
    """What differs between the binary and count studies in their results files.

    ``name`` the file stem, ``methods`` in table order, ``level`` the second
    design factor's column (``k``: prevalence; ``mean``: mean count) and its
    table heading.
    """

    name: str
    methods: tuple[str, ...]
    level: str
    level_label: str


BINARY = Study("binary_heritability", METHODS, "k", "prevalence")


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


def run(args, study: Study = BINARY, levels=(0.1, 0.3, 0.5), simulate=None, fit=None) -> dict:
    """Every replicate of every (h², level) cell; ``simulate(rng, K_chol, h2, level)`` draws a
    trait and ``fit(method, y, K, level)`` estimates h² (defaults: the binary study's)."""
    simulate, fit = simulate or liability_trait, fit or estimate
    rng = np.random.default_rng(args.seed)
    K = sibling_kinship(rng, args.n)
    K_chol = np.linalg.cholesky(K + 1e-8 * np.eye(args.n))
    rows, seconds = [], {m: 0.0 for m in args.methods}
    deadline = time.monotonic() + args.budget
    for rep in range(args.replicates):
        for h2 in (0.2, 0.5, 0.8):
            for k in levels:
                y = simulate(rng, K_chol, h2, k)
                if rep < args.first_replicate:
                    continue  # drawn only to keep the random stream of later replicates
                for method in args.methods:
                    t0 = time.perf_counter()
                    try:
                        value = float(fit(method, y, K, k))
                    except Exception as exc:  # a failed replicate is a row, not a stop
                        value = float("nan")
                        print(
                            f"rep {rep} h2={h2} {study.level}={k} {method}: {exc}", file=sys.stderr
                        )
                    seconds[method] += time.perf_counter() - t0
                    rows.append(
                        {"rep": rep, "h2": h2, study.level: k, "method": method, "estimate": value}
                    )
        print(f"replicate {rep + 1} done", file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            break
        if rows:
            _save(rows, seconds, args, rep + 1, study)
    return _save(rows, seconds, args, rep + 1, study)


def _save(rows, seconds, args, replicates, study: Study = BINARY) -> dict:
    """Summarise ``rows`` (one per replicate, cell and method) into the study's JSON and table."""
    import pandas as pd

    k = study.level
    table = pd.DataFrame(rows)
    ok = table.dropna(subset=["estimate"])
    summary = (
        ok.assign(error=ok["estimate"] - ok["h2"])
        .groupby(["h2", k, "method"])
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
        .groupby(["method", "h2", k])["e"]
        .mean()
        .abs()
        .groupby("method")
        .mean()
        .to_dict(),  # fmt: skip
        "mean_bias": (ok["estimate"] - ok["h2"]).groupby(ok["method"]).mean().to_dict(),
        "cells": summary.to_dict(orient="records"),
        "first_replicate": args.first_replicate,
        "loadavg_before": args.loadavg_before,
        "loadavg_after": list(os.getloadavg()),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = study.name + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(summary, out, study))
    return out


def merge(earlier: dict, later: dict, tag: str, study: Study = BINARY) -> dict:
    """Pool two runs over disjoint replicates of the same cells.

    Per cell and method with counts ``r₁, r₂``: bias is the count-weighted mean
    of the two biases, RMSE ``√((r₁ RMSE₁² + r₂ RMSE₂²)/(r₁ + r₂))`` — exact,
    because both are means of per-replicate errors.  Seconds per fit are
    weighted the same way (the two runs may have had different loads).
    """
    import pandas as pd

    cells = pd.concat([pd.DataFrame(earlier["cells"]), pd.DataFrame(later["cells"])])
    cells = cells.assign(
        wb=cells["bias"] * cells["replicates"], wm=cells["rmse"] ** 2 * cells["replicates"]
    )
    keys = ["h2", study.level, "method"]
    pooled = cells.groupby(keys)[["wb", "wm", "replicates"]].sum().reset_index()
    summary = pooled.assign(
        bias=pooled["wb"] / pooled["replicates"],
        rmse=np.sqrt(pooled["wm"] / pooled["replicates"]),
    )[[*keys, "bias", "rmse", "replicates"]]
    fits = {}
    for run in (earlier, later):
        for m, s in run["seconds_per_fit"].items():
            count = sum(c["replicates"] for c in run["cells"] if c["method"] == m)
            total, n = fits.get(m, (0.0, 0))
            fits[m] = (total + s * count, n + count)
    failed = dict(earlier.get("failed", {}))
    for m, f in later.get("failed", {}).items():
        failed[m] = failed.get(m, 0) + f
    per_method = summary.groupby("method")
    out = {
        "n": earlier["n"],
        "replicates": int(summary["replicates"].max()),
        "replicates_per_cell": {
            f"{r.h2}/{getattr(r, study.level)}/{r.method}": int(r.replicates)
            for r in summary.itertuples()
        },
        "seconds_per_fit": {m: t / max(1, n) for m, (t, n) in fits.items()},
        "failed": failed,
        "mean_abs_bias": per_method["bias"].apply(lambda b: float(np.mean(np.abs(b)))).to_dict(),
        "mean_bias": {
            m: float(np.average(g["bias"], weights=g["replicates"])) for m, g in per_method
        },
        "cells": summary.to_dict(orient="records"),
        "merged_from": [earlier.get("replicates"), later.get("replicates")],
    }
    name = study.name + (f"_{tag}" if tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(summary, out, study))
    return out


def markdown(summary, out, study: Study = BINARY) -> str:
    """The bias/RMSE table, one row per cell, with the replicates each method reached there."""
    index, methods = ["h2", study.level], study.methods
    wide = summary.pivot_table(index=index, columns="method", values=["bias", "rmse"])
    lines = [
        f"n = {out['n']}; seconds per fit: "
        + ", ".join(f"{m} {s:.1f}" for m, s in out["seconds_per_fit"].items()),
        "",
        f"| h² | {study.level_label} | "
        + " | ".join(f"bias {m}" for m in methods if ("bias", m) in wide)
        + " | " + " | ".join(f"RMSE {m}" for m in methods if ("rmse", m) in wide) + " |",
    ]  # fmt: skip
    cols = [c for c in (("bias", m) for m in methods) if c in wide] + [
        c for c in (("rmse", m) for m in methods) if c in wide
    ]
    lines[-1] += " replicates |"
    counts = summary.pivot_table(index=index, columns="method", values="replicates")
    lines.append("|" + " --- |" * (3 + len(cols)))
    for (h2, k), row in wide.iterrows():
        reps = "/".join(str(int(r)) for r in dict.fromkeys(counts.loc[(h2, k)].dropna()))
        lines.append(
            f"| {h2} | {k} | "
            + " | ".join(f"{row[c]:+.3f}" if c[0] == "bias" else f"{row[c]:.3f}" for c in cols)
            + f" | {reps} |"
        )
    return "\n".join(lines) + "\n"


def study_parser(description: str, methods: tuple[str, ...]) -> argparse.ArgumentParser:
    """The options both studies take (the Poisson study imports this)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--methods", nargs="+", default=list(methods))
    parser.add_argument("--budget", type=float, default=1e9, help="stop after this many seconds")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--tag", default="", help="suffix of the result files (runs in parallel)")
    parser.add_argument(
        "--first-replicate",
        type=int,
        default=0,
        help="draw but do not fit replicates before this index (extends an earlier run)",
    )
    parser.add_argument(
        "--merge",
        nargs=2,
        metavar=("EARLIER", "LATER"),
        help="combine two result JSON files of disjoint replicates into --tag's files",
    )
    return parser


def report(out: dict, study: Study, tag: str) -> None:
    print(json.dumps({k: v for k, v in out.items() if k not in ("cells", "rows")}, indent=2))
    print((RESULTS / f"{study.name}{'_' + tag if tag else ''}.md").read_text())


def main() -> None:
    args = study_parser(__doc__.splitlines()[0], METHODS).parse_args()
    if args.merge:
        out = merge(*(json.loads(Path(p).read_text()) for p in args.merge), tag=args.tag)
    else:
        args.loadavg_before = list(os.getloadavg())
        out = run(args)
    report(out, BINARY, args.tag)


if __name__ == "__main__":
    main()
