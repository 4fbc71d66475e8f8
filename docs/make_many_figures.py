"""Draw the figures of docs/many-responses.md into docs/img/ (needs the ``plot`` extra).

A simulated expression study (the page's, with more features): 200 samples
from 20 donors in 4 batches, two conditions, 2,000 features of which 10%
respond to the condition.  Run from the repository root:

    python docs/make_many_figures.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import mixedmodels as mm  # noqa: E402

OUT = Path(__file__).parent / "img"
FORMULA = "~ 1 + condition + (1|donor) + (1|batch)"


def simulate(features: int = 2000, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Samples and log-expression: donor and batch effects of varying size, a condition effect in 10%."""
    rng = np.random.default_rng(seed)
    donors, per, batches = 20, 10, 4
    n = donors * per
    donor = np.repeat(np.arange(donors), per)
    batch = rng.integers(0, batches, n)
    samples = pd.DataFrame(
        {
            "donor": [f"D{i:02d}" for i in donor],
            "batch": [f"B{i}" for i in batch],
            "condition": np.tile(["control", "treated"], n // 2),
        },
        index=pd.Index([f"S{i:03d}" for i in range(n)], name="sample"),
    )
    sd_donor, sd_batch = rng.gamma(2, 0.35, features), rng.gamma(1.5, 0.25, features)
    effect = np.where(rng.random(features) < 0.1, rng.normal(0, 0.8, features), 0.0)
    treated = (samples["condition"] == "treated").to_numpy()[:, None]
    expr = (
        8
        + sd_donor * rng.standard_normal((donors, features))[donor]
        + sd_batch * rng.standard_normal((batches, features))[batch]
        + treated * effect
        + rng.standard_normal((n, features))
    )
    names = [f"gene{j:04d}" for j in range(features)]
    return samples, pd.DataFrame(expr, index=samples.index, columns=names)


def varpart_figure(vp: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    columns = list(vp.columns)
    ax.violinplot([vp[c].dropna() * 100 for c in columns], showmedians=True)
    ax.set_xticks(range(1, len(columns) + 1), columns)
    ax.set_ylabel("variance explained (%)")
    ax.set_title("variance partition per gene")
    fig.tight_layout()
    return fig


def volcano_figure(coef: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(5, 4))
    hit = coef["p_adj"] < 0.05
    ax.scatter(coef["estimate"][~hit], -np.log10(coef["p"][~hit]), s=4, c="grey", alpha=0.5)
    ax.scatter(coef["estimate"][hit], -np.log10(coef["p"][hit]), s=6, c="crimson",
               label=f"BH-adjusted p < 0.05 ({int(hit.sum())})")  # fmt: skip
    ax.set_xlabel("treated − control (log expression)")
    ax.set_ylabel("−log10 p")
    ax.legend(loc="upper left", frameon=False)
    ax.set_title("conditiontreated")
    fig.tight_layout()
    return fig


def main() -> None:
    OUT.mkdir(exist_ok=True)
    samples, expr = simulate()
    res = mm.fit_many(FORMULA, samples, expr, reml=True, progress=False)
    figures = {
        "many_varpart.png": varpart_figure(res.varpart()),
        "many_volcano.png": volcano_figure(res.coef("conditiontreated")),
    }
    for name, fig in figures.items():
        fig.savefig(OUT / name, dpi=90)
        print(OUT / name)


if __name__ == "__main__":
    main()
