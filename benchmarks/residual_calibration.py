"""Calibration and power of the simulated-residual tests (mm.simulate_residuals).

For each scenario, R data sets are simulated, the model ``y ~ x + (1|g)`` is
fitted (a Poisson GLMM, or an LMM for the Gaussian scenario) and the tests
of DHARMa-style residuals from S = 250 simulations are run, with the random
effects re-simulated (``re_form="~0"``, the default) and conditional on the
fitted ones (``re_form=None``).  Scenarios (30 groups of 10, x ~ N(0, 1)):

* ``gaussian``:       y = 1 + 0.6 x + b_g + ε,  b_g ~ N(0, 0.5²), ε ~ N(0, 1)        (correct);
* ``poisson``:        y ~ Poisson(exp(0.5 + 0.6 x + b_g))                           (correct);
* ``overdispersed``:  the log mean also has observation-level N(0, 0.8²) noise;
* ``zero-inflated``:  30% of the Poisson responses set to 0.

The table gives the fraction of data sets in which each test rejects at 5%.
Under a correct model it should be near 0.05 (Monte Carlo standard error
sqrt(0.05 · 0.95 / R), 0.015 for R = 200); under misspecification, the
higher the better.

Run:  python benchmarks/residual_calibration.py --datasets 200
Prints a Markdown table (docs/diagnostics.md shows it) and writes
benchmarks/results/residual_calibration.md.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixedmodels as mm

SCENARIOS = ("gaussian", "poisson", "overdispersed", "zero-inflated")
TESTS = {"KS": "test_uniformity", "dispersion": "test_dispersion", "zeros": "test_zero_inflation"}


def simulate_data(scenario: str, rng: np.random.Generator, n_groups: int = 30, per: int = 10):
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(len(g))
    b = 0.5 * rng.standard_normal(n_groups)[g]
    if scenario == "gaussian":
        y = 1 + 0.6 * x + b + rng.standard_normal(len(g))
    else:
        eta = 0.5 + 0.6 * x + b
        if scenario == "overdispersed":
            eta = eta + 0.8 * rng.standard_normal(len(g))
        y = rng.poisson(np.exp(eta)).astype(float)
        if scenario == "zero-inflated":
            y[rng.random(len(g)) < 0.3] = 0
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


def fit(scenario: str, data: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if scenario == "gaussian":
            return mm.LinearMixedModel("y ~ x + (1|g)", data).fit()
        return mm.GeneralizedLinearMixedModel("y ~ x + (1|g)", data, family="poisson").fit()


def one(scenario: str, seed: np.random.SeedSequence, nsim: int) -> dict:
    rng = np.random.default_rng(seed)
    model = fit(scenario, simulate_data(scenario, rng))
    row = {}
    for label, re_form in (("unconditional", "~0"), ("conditional", None)):
        r = mm.simulate_residuals(model, n=nsim, seed=rng, re_form=re_form, progress=False)
        for name, method in TESTS.items():
            row[(label, name)] = getattr(r, method)()["p_value"]
    return row


def run(datasets: int, nsim: int, seed: int) -> pd.DataFrame:
    seeds = np.random.SeedSequence(seed).spawn(len(SCENARIOS))
    rows = {}
    for scenario, ss in zip(SCENARIOS, seeds):
        t0 = time.perf_counter()
        p = pd.DataFrame([one(scenario, s, nsim) for s in ss.spawn(datasets)])
        rows[scenario] = (p < 0.05).mean()
        print(f"{scenario}: {time.perf_counter() - t0:.0f} s", flush=True)
    table = pd.DataFrame(rows).T
    table.columns = [f"{cond} {test}" for cond, test in table.columns]
    return table


def markdown(table: pd.DataFrame, datasets: int, nsim: int) -> str:
    head = "| scenario | " + " | ".join(table.columns) + " |"
    rule = "|" + " --- |" * (len(table.columns) + 1)
    body = [
        f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
        for name, row in table.iterrows()
    ]
    note = f"\nRejection rates at 5% over {datasets} data sets, {nsim} simulations each."
    return "\n".join([head, rule, *body]) + "\n" + note + "\n"


def figure() -> None:
    """The plot of docs/diagnostics.md: an overdispersed Poisson data set and its misfit."""
    model = fit("overdispersed", simulate_data("overdispersed", np.random.default_rng(1)))
    fig = mm.simulate_residuals(model, n=250, seed=1, progress=False).plot()
    fig.savefig(Path(__file__).parents[1] / "docs" / "img" / "simulated_residuals.png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--nsim", type=int, default=250)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--figure", action="store_true", help="only draw docs/img/simulated_residuals.png"
    )
    args = parser.parse_args()
    if args.figure:
        return figure()
    text = markdown(run(args.datasets, args.nsim, args.seed), args.datasets, args.nsim)
    print(text)
    out = Path(__file__).parent / "results" / "residual_calibration.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
