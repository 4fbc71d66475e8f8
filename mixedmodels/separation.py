"""Responses a generalised model cannot fit: constant outcomes and separation.

A GLM's maximum-likelihood estimate is infinite when the data can be fitted
"perfectly" along some direction d of the fixed effects.  For a binary or
binomial outcome this is (quasi-)complete separation (Albert & Anderson
1984): there is d != 0 with

    x_i'd >= 0  where observation i has successes only,
    x_i'd <= 0  where it has failures only,
    x_i'd  = 0  where it has both,

and moving β along d never lowers the likelihood; for a Poisson outcome
x_i'd <= 0 where y_i = 0 and x_i'd = 0 where y_i > 0.  The random effects,
being penalised, cannot absorb such a direction, so the GLMM's β diverges as
the GLM's does.  The direction is found by the linear programme of Konis
(2007), maximising the total slack sum_i s_i x_i'd over |d_j| <= 1 (s_i the
sign required of observation i, 0 for an equality); a positive optimum means
separation, and the coefficients with d_j != 0 are the ones sent to ±infinity.

lme4 stops with "Response is constant" for a constant response
(``check.response.not.const``) and has no separation check: there the
estimates run off with a convergence warning at best.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ._text import few
from .errors import DataError
from .families import Bernoulli, Binomial, Family, Poisson

__all__ = [
    "SeparationWarning",
    "check_constant_response",
    "separation_direction",
    "check_separation",
]


class SeparationWarning(UserWarning):
    """Some fixed-effect estimates are infinite: the outcome is (quasi-)perfectly predicted."""


def check_constant_response(y: object, family: Family | None, expr: str) -> None:
    """DataError if the response ``y`` takes a single value.

    As lme4's ``checkResponse`` (``check.response.not.const = "stop"`` in
    both lmer and glmer): a response with a single value has nothing to
    model; for a binary outcome all 0 or all 1 the intercept would be ∓inf.

    Parameters
    ----------
    y : array, Series or (n, 2) array
        The response as evaluated: numbers, a categorical, or
        ``cbind(successes, failures)`` counts (compared as proportions).
    family : Family or None
        Only used to word the message.
    expr : str
        The response as written in the formula.
    """
    values = _response_values(y)
    if len(values) and np.all(values == values[0]):
        binary = isinstance(family, (Bernoulli, Binomial))
        extra = (
            " (every outcome is the same, so its probability is estimated as 0 or 1)"
            if binary
            else ""
        )
        shown = f"{values[0]:g}" if isinstance(values[0], (float, np.floating)) else str(values[0])
        raise DataError(
            f"the response {expr!r} is constant (all {shown}){extra}; there is nothing to model"
        )


def _response_values(y: object) -> np.ndarray:
    """Comparable values of a response: category codes, proportions of cbind counts, or the numbers."""
    import pandas as pd

    if isinstance(y, pd.Series) and isinstance(y.dtype, pd.CategoricalDtype):
        return np.asarray(y.astype(str))
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype.kind in "fiu":
        total = arr.sum(axis=1)
        return np.divide(arr[:, 0], total, out=np.zeros(len(arr)), where=total > 0)
    if arr.dtype.kind in "fiub":
        return arr.astype(float).ravel() if arr.dtype.kind != "b" else arr.ravel()
    return np.asarray([str(v) for v in arr.ravel()])


def _required_signs(y: np.ndarray, wt: np.ndarray, family: Family) -> np.ndarray | None:
    """The sign each x_i'd must have (+1, -1, or 0 for equality), or None if not applicable."""
    if isinstance(family, (Bernoulli, Binomial)):
        successes, failures = y > 0, y < 1
        return np.where(successes & failures, 0, np.where(successes, 1, -1))
    if isinstance(family, Poisson):
        return np.where(y > 0, 0, -1)
    return None


def separation_direction(
    X: np.ndarray, y: np.ndarray, family: Family, wt: np.ndarray | None = None, tol: float = 1e-6
) -> np.ndarray | None:
    """A direction d along which the GLM log-likelihood increases without bound, or None.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects model matrix (full rank).
    y : ndarray, shape (n,)
        Response on the family's scale (proportions for a binomial).
    family : Family
        Binomial/Bernoulli or Poisson; other families return None.
    wt : ndarray, optional
        Prior weights; observations of weight 0 are left out.
    tol : float
        The optimum of the linear programme counts as positive above ``tol``
        (X's columns are scaled to largest absolute value 1 first).

    Returns
    -------
    ndarray of shape (p,) or None
        d in the units of X's columns, with entries below ``tol`` set to 0.
    """
    from scipy.optimize import linprog

    signs = _required_signs(np.asarray(y, dtype=float), _weights(wt, len(y)), family)
    if signs is None or X.shape[1] == 0:
        return None
    keep = _weights(wt, len(y)) > 0
    scale = np.abs(X).max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    rows, s = _distinct_rows(X[keep] / scale, signs[keep])
    inequality, equality = rows[s != 0], rows[s == 0]
    result = linprog(
        c=-(s[s != 0] @ inequality),
        A_ub=-(s[s != 0][:, None] * inequality) if len(inequality) else None,
        b_ub=np.zeros(len(inequality)) if len(inequality) else None,
        A_eq=equality if len(equality) else None,
        b_eq=np.zeros(len(equality)) if len(equality) else None,
        bounds=[(-1.0, 1.0)] * X.shape[1],
        method="highs",
    )
    if result.status != 0 or -result.fun <= tol:
        return None
    d = np.where(np.abs(result.x) > tol, result.x, 0.0)
    return d / scale


def _near_boundary(y: np.ndarray, mu: np.ndarray, family: Family, eps: float = 1e-6) -> bool:
    """Does some fitted mean sit (numerically) on the value only a divergent β reaches?"""
    if isinstance(family, (Bernoulli, Binomial)):
        return bool(np.any(((y == 0) & (mu < eps)) | ((y == 1) & (mu > 1 - eps))))
    if isinstance(family, Poisson):
        return bool(np.any((y == 0) & (mu < eps)))
    return False


def _weights(wt: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if wt is None else np.asarray(wt, dtype=float)


def _distinct_rows(rows: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, sign) pairs: factor designs repeat rows, and the programme needs each once."""
    both = np.unique(np.column_stack([rows, signs]), axis=0)
    return both[:, :-1], both[:, -1]


def check_separation(
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    family: Family,
    wt: np.ndarray | None = None,
    mu: np.ndarray | None = None,
) -> list[str]:
    """Warn (SeparationWarning) naming the coefficients whose estimates are infinite.

    Parameters
    ----------
    X, y, family, wt
        As for :func:`separation_direction`.
    names : sequence of str
        Column names of X.
    mu : ndarray, optional
        Fitted means of the GLM without random effects (the starting fit).
        A finite MLE has every fitted mean away from the observed 0/1 (the
        score equations hold with positive weights |y - μ|, Stiemke's
        alternative to separation), so the linear programme is solved only
        when some μ is within 1e-6 of its observation's boundary.

    Returns
    -------
    list of str
        The names with their direction of divergence (``"x (+inf)"``),
        empty when the estimates are finite.
    """
    if mu is not None and not _near_boundary(
        np.asarray(y, dtype=float), np.asarray(mu, dtype=float), family
    ):
        return []
    d = separation_direction(X, y, family, wt)
    if d is None:
        return []
    diverging = [f"{name} ({'+' if dj > 0 else '-'}inf)" for name, dj in zip(names, d) if dj != 0]
    warnings.warn(
        "complete or quasi-complete separation: the fixed effects predict the outcome perfectly "
        f"for some observations, so the estimates of {few(diverging, quote=False)} are infinite "
        "(the reported values and their standard errors are arbitrary); consider removing or "
        "merging the predictor, or a penalised fit",
        SeparationWarning,
        stacklevel=3,
    )
    return diverging
