"""The layout of θ: the one place that maps the optimizer's vector to the terms' λ.

θ is reported in lme4's order (terms by decreasing number of levels, then
the lower triangle of each term's λ column by column); internally each
:class:`~mixedmodels.remat.ReMat` holds its own elements in its own order.
``theta_perm`` (from :mod:`mixedmodels.structure`) maps between the two:
``internal[theta_perm] = theta``.

What θ means per term: for an unstructured term (``(x | g)``, ``us(x | g)``)
the lower triangle of λ; for a structured one (``diag``, ``cs``, ``ar1``,
``toep``) the structure's φ — relative standard deviations, then transformed
correlations — from which λ = chol(D R D) is computed
(:mod:`mixedmodels.covstruct`).  Everything downstream reads λ, so the map
here is the only place that knows the difference.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "to_internal",
    "lambdas",
    "gather_theta",
    "scatter_theta",
    "has_structures",
    "structured_boundary",
]


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
    return [r.lambda_of(piece) for r, piece in _pieces(reterms, to_internal(theta, theta_perm))]


def scatter_theta(reterms, theta_perm: np.ndarray, theta: np.ndarray) -> None:
    """Write θ (lme4's order) into the terms' λ, in place."""
    for r, piece in _pieces(reterms, to_internal(theta, theta_perm)):
        r.set_theta(piece)


def gather_theta(reterms, theta_perm: np.ndarray) -> np.ndarray:
    """θ in lme4's order from the terms' λ."""
    return np.concatenate([r.get_theta() for r in reterms])[theta_perm]


def has_structures(reterms) -> bool:
    """True if some term has a covariance structure (``diag``, ``cs``, ``ar1``, ``toep``)."""
    return any(r.is_structured for r in reterms)


def structured_boundary(reterms, theta_perm: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Per θ element (lme4's order): a structure's correlation at its limit (|ρ| = 1, or cs's lower end).

    Standard deviations at 0 are found from the lower bounds as for any term;
    this adds the structures' correlation parameters, whose bounds are at ±∞.
    """
    theta = np.asarray(theta, dtype=float)
    flags = []
    for r, piece in _pieces(reterms, to_internal(theta, theta_perm)):
        for bi, s in enumerate(r.structures):
            phi = r.block_theta(piece, bi)
            flags.append(np.zeros(len(phi), bool) if s is None else s.on_boundary(phi) & ~s.is_sd())
    internal = np.concatenate(flags) if flags else np.zeros(0, bool)
    return internal[theta_perm]
