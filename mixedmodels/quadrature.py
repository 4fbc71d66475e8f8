r"""Gauss–Hermite quadrature against the standard normal density.

Adaptive Gauss–Hermite quadrature (lme4's ``nAGQ > 1``) approximates, for each group,
an integral over a scalar random effect by a weighted sum at ``k`` nodes:

.. math:: E\,f(Z) = \int f(z)\,\varphi(z)\,dz \approx \sum_{j=1}^{k} w_j f(z_j),
   \qquad Z \sim N(0, 1),

which is exact whenever :math:`f` is a polynomial of degree at most :math:`2k - 1`.
The nodes are the roots of the probabilists' Hermite polynomial :math:`He_k` and the
weights sum to one.
"""

from __future__ import annotations

import operator
from functools import cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from mixedmodels.errors import MixedModelsError

__all__ = ["GaussHermiteRule", "gauss_hermite"]


class GaussHermiteRule(NamedTuple):
    """Nodes ``z`` and weights ``w`` (summing to 1) of a rule for :math:`N(0, 1)`.

    Both arrays are read-only because rules are cached and shared.
    """

    z: NDArray[np.float64]
    w: NDArray[np.float64]


def gauss_hermite(k: int) -> GaussHermiteRule:
    r"""The ``k``-point Gauss–Hermite rule normalised for the standard normal density.

    Parameters
    ----------
    k : int
        Number of nodes, at least 1.  ``k = 1`` gives the single node 0 with weight 1,
        which makes adaptive quadrature the Laplace approximation.

    Returns
    -------
    GaussHermiteRule
        ``(z, w)`` with :math:`\sum_j w_j f(z_j) \approx E f(Z)`, nodes ascending and
        symmetric about 0.

    Raises
    ------
    MixedModelsError
        If ``k`` is not an integer or is less than 1.
    """
    if isinstance(k, bool):
        raise MixedModelsError("number of quadrature nodes must be an integer, not a bool")
    try:
        n = operator.index(k)
    except TypeError:
        raise MixedModelsError(
            f"number of quadrature nodes must be an integer, not {type(k).__name__}"
        ) from None
    if n < 1:
        raise MixedModelsError(f"number of quadrature nodes must be at least 1, got {n}")
    return _rule(n)


@cache
def _rule(k: int) -> GaussHermiteRule:
    """Compute (once per ``k``) the normalised rule."""
    # Imported here: numpy.polynomial is not needed by `import mixedmodels`.
    from numpy.polynomial.hermite_e import hermegauss

    z, w = hermegauss(k)
    # The rule is symmetric in exact arithmetic; averaging with its mirror image removes
    # rounding asymmetry, so odd moments integrate to zero exactly and the middle node of
    # an odd rule is exactly 0.
    z = 0.5 * (z - z[::-1])
    w = 0.5 * (w + w[::-1])
    # hermegauss integrates against exp(-z^2/2), whose total mass is sqrt(2 pi); dividing
    # by the computed sum rather than that constant makes the weights sum to 1 exactly.
    w = w / w.sum()
    z.setflags(write=False)
    w.setflags(write=False)
    return GaussHermiteRule(z, w)
