"""Coverage of 95% intervals for sleepstudy-like data: bootstrap, profile and Wald.

Data sets are simulated from the ML fit of
``Reaction ~ 1 + Days + (1 + Days | Subject)`` to sleepstudy (its estimates
are the true values), each is refitted, and intervals for the fixed effects,
σ and the random-effect standard deviations are computed by

* the parametric bootstrap (shortest coverage and percentile),
* the likelihood profile,
* Wald (fixed effects only).

The coverage is the fraction of data sets whose interval holds the true
value; with R data sets its standard error is about sqrt(0.95 * 0.05 / R).

With ``--reml`` the simulated data sets are fitted by REML (the bootstrap then
refits by REML too; profiles are always of the likelihood).

Run:  python benchmarks/bootstrap_coverage.py --datasets 200 --replicates 199 --jobs 2 [--reml]
Prints a Markdown table (docs/inference.md shows them).
"""

from __future__ import annotations

import argparse
import os
import time

# the data sets run in parallel worker processes: one BLAS thread each
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FORMULA = "Reaction ~ 1 + Days + (1 + Days|Subject)"
PARAMETERS = ["(Intercept)", "Days", "sigma", "sd_(Intercept)|Subject", "sd_Days|Subject"]


def truth():
    """The fitted model whose estimates are the true values, and those values."""
    import mixedmodels as mm
    from mixedmodels.inference.intervals import parameter_names
    from mixedmodels.inference.params import variance_layout

    data = mm.datasets.load("sleepstudy")
    model = mm.LinearMixedModel(FORMULA, data).fit()
    sdcor = variance_layout(model).to_sdcor(model.theta, model.sigma)
    values = dict(zip(parameter_names(model), [*sdcor, model.sigma, *model.beta]))
    return data, model, values


def one_dataset(args: tuple[int, int, int, bool]) -> dict:
    """Intervals of every method for simulated data set ``index``: {(method, parameter): covered}."""
    import mixedmodels as mm
    from mixedmodels.inference import parametric_bootstrap

    index, replicates, seed, reml = args
    data, model, values = truth()
    y = model.simulate(1, seed=np.random.SeedSequence([seed, index])).to_numpy()[:, 0]
    fit = mm.LinearMixedModel(FORMULA, data.assign(Reaction=y), reml=reml).fit()
    boot = parametric_bootstrap(fit, replicates, seed=[seed, index, 1], progress=False)
    tables = {
        "bootstrap (shortest)": boot.confint(0.95),
        "bootstrap (percentile)": boot.confint(0.95, method="percentile"),
        "profile": fit.confint("profile", parm=PARAMETERS, progress=False),
        "Wald": fit.confint("wald"),
    }
    out = {}
    for method, table in tables.items():
        for p in PARAMETERS:
            lo, hi = table.loc[p]
            out[(method, p)] = np.nan if np.isnan(lo) else float(lo <= values[p] <= hi)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--replicates", type=int, default=199)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--reml", action="store_true", help="fit the simulated data by REML")
    args = parser.parse_args()
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    tasks = [(i, args.replicates, args.seed, args.reml) for i in range(args.datasets)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one_dataset, tasks))
    covered = pd.DataFrame(rows)
    covered.columns = pd.MultiIndex.from_tuples(covered.columns)
    order = ["bootstrap (shortest)", "bootstrap (percentile)", "profile", "Wald"]
    table = covered.mean().unstack(level=1).loc[order, PARAMETERS]
    se = np.sqrt(0.95 * 0.05 / args.datasets)
    print(
        f"{'REML' if args.reml else 'ML'} fits of {args.datasets} simulated data sets, "
        f"{args.replicates} bootstrap replicates each, "
        f"nominal 0.95 (Monte Carlo s.e. {se:.3f}); {time.perf_counter() - start:.0f} s\n"
    )
    print(markdown(table))


def markdown(table: pd.DataFrame) -> str:
    """The coverage table as Markdown (methods as rows, parameters as columns)."""
    cells = lambda v: "–" if np.isnan(v) else f"{v:.3f}"  # noqa: E731
    lines = [
        "| method | " + " | ".join(c.replace("|", "\\|") for c in table.columns) + " |",
        "|---" * (len(table.columns) + 1) + "|",
    ]
    lines += [f"| {m} | " + " | ".join(cells(v) for v in row) + " |" for m, row in table.iterrows()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
