"""Simulation study: latent-scale heritability of a count trait by EP and Laplace.

Run from the repository root::

    python benchmarks/poisson_heritability.py --replicates 10          # the study
    python benchmarks/poisson_heritability.py --replicates 1 --n 200   # a quick look

Design as in ``benchmarks/binary_heritability.py`` (whose kinship, loop,
summary and table this script reuses): ``n`` individuals in sibling pairs,
``K`` their realised kinship from 2,000 SNPs.  The latent predictor is
``f = β₀ + g + e`` with ``g ~ N(0, h² v K)``, ``e ~ N(0, (1 - h²) v I)``, total
latent variance ``v = 1``, and ``β₀ = log λ - v/2`` so that the mean count
``E y = E e^f = λ``; ``y ~ Poisson(e^f)``.  For every (h², λ) in
{0.2, 0.5, 0.8} × {0.5, 2, 10} and each replicate, each method estimates
the latent h² = σg²/(σg² + σe²):

* ``ep``      — :func:`mixedmodels.genetics.heritability` ``family="poisson", method="ep"``;
* ``laplace`` — the Laplace GLMM with kinship and observation-level effects.

Results go to ``benchmarks/results/poisson_heritability.json`` and ``.md``
(bias, RMSE, replicates reached per cell and method, seconds per fit, load
average before and after).  Options as the binary study's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from binary_heritability import Study, merge, report, run, study_parser  # noqa: E402

POISSON = Study("poisson_heritability", ("ep", "laplace"), "mean", "mean count")
MEAN_COUNTS = (0.5, 2.0, 10.0)
LATENT_VARIANCE = 1.0


def count_trait(rng, K_chol, h2: float, mean: float) -> np.ndarray:
    """Counts with latent h² ``h2`` and mean ``mean`` (module docstring)."""
    n = K_chol.shape[0]
    g = np.sqrt(h2 * LATENT_VARIANCE) * (K_chol @ rng.normal(size=n))
    e = np.sqrt((1 - h2) * LATENT_VARIANCE) * rng.normal(size=n)
    return rng.poisson(np.exp(np.log(mean) - LATENT_VARIANCE / 2 + g + e)).astype(float)


def estimate(method: str, y: np.ndarray, K: np.ndarray, mean: float) -> float:
    from mixedmodels.genetics import heritability

    return heritability(y, K=K, family="poisson", method=method).h2


def main() -> None:
    args = study_parser(__doc__.splitlines()[0], POISSON.methods).parse_args()
    if args.merge:
        runs = (json.loads(Path(p).read_text()) for p in args.merge)
        out = merge(*runs, tag=args.tag, study=POISSON)
    else:
        args.loadavg_before = list(os.getloadavg())
        out = run(args, POISSON, MEAN_COUNTS, count_trait, estimate)
    report(out, POISSON, args.tag)


if __name__ == "__main__":
    main()
