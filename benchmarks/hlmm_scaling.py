"""Scaling of one HLMM likelihood-and-gradient evaluation: O(n q²), against O(n³) for a dense V.

Times ``HeteroskedasticGaussian.objective_gradient`` (the profiled -2 log-likelihood
and its analytic gradient, what the optimiser calls) on simulated data:

* n = 1,000 ... 64,000 observations at q = 50 random effects,
* q = 10 ... 640 random effects at n = 8,000,
* the same likelihood evaluated densely (n x n Cholesky factor) for n up to 4,000, q = 50.

Each point is the median of several repetitions, single-threaded BLAS (the
machine may be shared).  Results go to benchmarks/results/hlmm_scaling.csv and
a log-log plot with fitted slopes to docs/img/hlmm_scaling.png.

    python benchmarks/hlmm_scaling.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: timings of one core
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mixedmodels.variance.hlmm import hlmm_likelihood

ROOT = Path(__file__).resolve().parent.parent


def simulate(n: int, q: int, seed: int = 0):
    """y, X, V (with a covariate each) and standardised G / √q, as in a window scan."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    G = rng.normal(size=(n, q)) / np.sqrt(q)
    y = X @ [1.0, 0.3] + G @ rng.normal(size=q) * 0.7 + rng.normal(size=n) * np.exp(0.1 * x)
    return y, X, X, G


def median_seconds(f, repeats: int) -> tuple[float, float]:
    f()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def woodbury_time(n: int, q: int, repeats: int) -> tuple[float, float]:
    lik = hlmm_likelihood(*simulate(n, q))
    phi = np.array([0.0, 0.1, 0.7])
    return median_seconds(lambda: lik.objective_gradient(phi), repeats)


def dense_time(n: int, q: int, repeats: int) -> tuple[float, float]:
    """The same -2 log-likelihood (β profiled) with V formed and factorised: O(n³)."""
    y, X, D, G = simulate(n, q)
    gamma, sigma = np.array([0.0, 0.1]), 0.7

    def evaluate():
        V = sigma**2 * (G @ G.T)
        V[np.diag_indices(n)] += np.exp(D @ gamma)
        L = np.linalg.cholesky(V)
        Xs, ys = np.linalg.solve(L, X), np.linalg.solve(L, y)
        beta = np.linalg.lstsq(Xs, ys, rcond=None)[0]
        r = ys - Xs @ beta
        return n * np.log(2 * np.pi) + 2 * np.log(np.diag(L)).sum() + r @ r

    return median_seconds(evaluate, repeats)


def run(quick: bool) -> pd.DataFrame:
    rows = []
    n_grid = [1000, 2000, 4000, 8000, 16000, 32000, 64000][:: 2 if quick else 1]
    q_grid = [10, 20, 40, 80, 160, 320, 640][:: 2 if quick else 1]
    dense_grid = [250, 500, 1000, 2000, 4000][: 3 if quick else None]
    reps = 3 if quick else 9
    for n in n_grid:
        rows.append(("n at q = 50", "woodbury", n, 50, *woodbury_time(n, 50, reps)))
    for q in q_grid:
        rows.append(("q at n = 8000", "woodbury", 8000, q, *woodbury_time(8000, q, reps)))
    for n in dense_grid:
        rows.append(("n at q = 50", "dense", n, 50, *dense_time(n, 50, max(3, reps // 3))))
    return pd.DataFrame(
        rows, columns=["experiment", "method", "n", "q", "seconds_median", "seconds_min"]
    )


def slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def plot(results: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_q) = plt.subplots(1, 2, figsize=(10, 4.2))
    by_n = results[results["experiment"] == "n at q = 50"]
    for method, marker in (("woodbury", "o"), ("dense", "s")):
        part = by_n[by_n["method"] == method]
        b = slope(part["n"], part["seconds_median"])
        label = (
            f"Woodbury O(n q²) (slope {b:.2f})"
            if method == "woodbury"
            else f"dense V, O(n³) (slope {b:.2f})"
        )
        ax_n.loglog(part["n"], part["seconds_median"], marker + "-", label=label)
    ax_n.set(xlabel="n (observations)", ylabel="seconds per evaluation", title="time vs n, q = 50")
    by_q = results[results["experiment"] == "q at n = 8000"]
    upper = by_q[by_q["q"] >= 80]
    b = slope(upper["q"], upper["seconds_median"])
    ax_q.loglog(
        by_q["q"], by_q["seconds_median"], "o-", label=f"Woodbury (slope {b:.2f} for q ≥ 80)"
    )
    ref = upper["seconds_median"].iloc[-1] * (upper["q"] / upper["q"].iloc[-1]) ** 2
    ax_q.loglog(upper["q"], ref, "k--", label="slope 2 (q²)")
    ax_q.set(xlabel="q (random effects)", title="time vs q, n = 8,000")
    for ax in (ax_n, ax_q):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("HLMM likelihood + gradient evaluation (median, one core)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grids and fewer repetitions")
    args = parser.parse_args()
    results = run(args.quick)
    out = ROOT / "benchmarks" / "results" / "hlmm_scaling.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    results.to_csv(out, index=False, float_format="%.6g")
    plot(results, ROOT / "docs" / "img" / "hlmm_scaling.png")
    print(results.to_string(index=False))
    print(f"written {out} and docs/img/hlmm_scaling.png")


if __name__ == "__main__":
    main()
