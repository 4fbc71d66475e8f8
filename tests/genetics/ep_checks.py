"""Shared set-ups of the EP tests: exact two-individual expectations, a gradient problem."""

from __future__ import annotations

import numpy as np


def log_expectation_two(mean: float, cov: np.ndarray, site1, site2, nodes: int) -> float:
    """log E[site1(f1) site2(f2)] for f ~ N(mean, cov) (2 x 2), on a nodes x nodes product rule.

    ``site1`` and ``site2`` are vectorised likelihoods of one latent value each.
    """
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    R = np.linalg.cholesky(cov)
    f1 = mean + R[0, 0] * z[:, None] + 0 * z[None, :]
    f2 = mean + R[1, 0] * z[:, None] + R[1, 1] * z[None, :]
    return float(np.log(np.sum(w[:, None] * w[None, :] * site1(f1) * site2(f2))))


def gradient_problem(n: int = 30):
    """A generator and a random kinship K (n x n) and design X = [1, x] for gradient checks."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(n, 50))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return rng, A @ A.T / 50, X
