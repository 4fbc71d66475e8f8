"""Numerical first and second derivatives with Richardson extrapolation.

A central difference with step h has error c₂h² + c₄h⁴ + ...; evaluating it
at h, h/2, h/4, ... and combining successive values as

    D_{k+1}(h) = (4ᵏ D_k(h/2) - D_k(h)) / (4ᵏ - 1)

removes one power of h² at a time.  Steps are relative to the coordinates,
h = r|x| (plus 10⁻⁴ where x is within 1.8·10⁻⁵ of 0), with R numDeriv's
defaults, which lmerTest uses for its degrees of freedom: r = 10⁻⁴ for first
derivatives and r = 0.1 for the Hessian (large steps keep rounding error
out of second differences; extrapolation removes the truncation error).
A model with an analytic gradient gets its Hessian as the symmetrised
Jacobian of the gradient (:func:`hessian_from_gradient`), first differences
being far less exposed to rounding than second ones.

This is the package's one numerical-derivative module: inference (the
Satterthwaite degrees of freedom) and the variance models use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["hessian", "hessian_from_gradient", "jacobian"]


ZERO_TOL = 1.78e-5
"""Coordinates smaller than this get an absolute step added."""


def _steps(x: np.ndarray, rel: float) -> np.ndarray:
    return rel * np.abs(x) + 1e-4 * (np.abs(x) < ZERO_TOL)


def _richardson(estimates: list[np.ndarray]) -> np.ndarray:
    """Extrapolate a list of estimates at steps h, h/2, h/4, ... (error in even powers of h)."""
    level = [np.asarray(e, dtype=float) for e in estimates]
    k = 1
    while len(level) > 1:
        factor = 4.0**k
        level = [(factor * fine - coarse) / (factor - 1) for coarse, fine in zip(level, level[1:])]
        k += 1
    return level[0]


def jacobian(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rel: float = 1e-4, levels: int = 4
) -> np.ndarray:
    """Jacobian of a vector function: shape (len(f(x)), len(x)).

    Parameters
    ----------
    f : callable
        x of shape (k,) -> array (flattened).
    levels : int
        Number of step halvings combined by Richardson extrapolation.
    """
    x = np.asarray(x, dtype=float)
    h0 = _steps(x, rel)
    cols = []
    for i in range(len(x)):
        estimates = []
        for level in range(levels):
            h = h0[i] / 2**level
            e = np.zeros_like(x)
            e[i] = h
            estimates.append((np.ravel(f(x + e)) - np.ravel(f(x - e))) / (2 * h))
        cols.append(_richardson(estimates))
    return np.column_stack(cols)


def hessian(
    f: Callable[[np.ndarray], float], x: np.ndarray, rel: float = 0.1, levels: int = 4
) -> np.ndarray:
    """Hessian of a scalar function by extrapolated central second differences, shape (k, k)."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    h0 = _steps(x, rel)
    f0 = float(f(x))
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i + 1):
            estimates = [
                _second_difference(f, x, f0, i, j, h0 / 2**level) for level in range(levels)
            ]
            H[i, j] = H[j, i] = float(_richardson(estimates))
    return H


def hessian_from_gradient(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rel: float = 1e-4, levels: int = 2
) -> np.ndarray:
    """Hessian ``(J + J')/2`` from the Jacobian ``J`` of an analytic gradient, shape (k, k).

    ``2 k levels`` gradient evaluations; with the default two levels the
    truncation error is O(h⁴).
    """
    J = jacobian(grad, x, rel=rel, levels=levels)
    return 0.5 * (J + J.T)


def _second_difference(f, x: np.ndarray, f0: float, i: int, j: int, h: np.ndarray) -> float:
    """Central estimate of ∂²f/∂xᵢ∂xⱼ with steps h."""
    ei = np.zeros_like(x)
    ei[i] = h[i]
    if i == j:
        return (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
    ej = np.zeros_like(x)
    ej[j] = h[j]
    return (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
