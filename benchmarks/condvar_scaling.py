"""Time of ranef(condvar=True) against the number of levels of a scalar term (issue 12: linear).

Run: python benchmarks/condvar_scaling.py  (prints a table; the machine's load is recorded).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

import mixedmodels as mm


def data(nlevels: int, per: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(nlevels), per)
    h = rng.integers(0, 50, len(g))
    y = rng.normal(size=nlevels)[g] + rng.normal(size=50)[h] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "g": g.astype(str), "h": h.astype(str)})


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'levels':>8} {'terms':>6} {'condvar s':>10}")
    for nlevels in (10**3, 10**4, 10**5):
        for formula in ("y ~ 1 + (1|g)", "y ~ 1 + (1|g) + (1|h)"):
            m = mm.LinearMixedModel(formula, data(nlevels))
            m.optsum.maxfeval = 10
            m.fit()
            t0 = time.perf_counter()
            m.ranef(condvar=True)
            print(f"{nlevels:>8} {formula.count('|'):>6} {time.perf_counter() - t0:>10.3f}")


if __name__ == "__main__":
    main()
