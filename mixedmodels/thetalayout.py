"""The layout of θ: the one place that maps the optimizer's vector to the terms' λ.

θ is reported in lme4's order (terms by decreasing number of levels, then
the lower triangle of each term's λ column by column); internally each
:class:`~mixedmodels.remat.ReMat` holds its own elements in its own order.
``theta_perm`` (from :mod:`mixedmodels.structure`) maps between the two:
``internal[theta_perm] = theta``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_internal", "lambdas", "gather_theta", "scatter_theta"]


def to_internal(theta: np.ndarray, theta_perm: np.ndarray) -> np.ndarray:
    """θ in the terms' own order (the inverse of lme4's ordering)."""
    theta = np.asarray(theta, dtype=float)
    internal = np.empty_like(theta)
    internal[theta_perm] = theta
    return internal


def _pieces(reterms, internal: np.ndarray):
    start = 0
    for r in reterms:
        yield r, internal[start : start + r.ntheta]
        start += r.ntheta


def lambdas(reterms, theta_perm: np.ndarray, theta: np.ndarray) -> list[np.ndarray]:
    """λ of each term for θ (lme4's order), without touching the terms."""
    out = []
    for r, piece in _pieces(reterms, to_internal(theta, theta_perm)):
        lam = np.zeros((r.k, r.k))
        lam.flat[r.inds] = piece
        out.append(lam)
    return out


def scatter_theta(reterms, theta_perm: np.ndarray, theta: np.ndarray) -> None:
    """Write θ (lme4's order) into the terms' λ, in place."""
    for r, piece in _pieces(reterms, to_internal(theta, theta_perm)):
        r.set_theta(piece)


def gather_theta(reterms, theta_perm: np.ndarray) -> np.ndarray:
    """θ in lme4's order from the terms' λ."""
    return np.concatenate([r.get_theta() for r in reterms])[theta_perm]
