"""The fixed-effects term: model matrix X, its rank and the aliased columns.

Columns of X that are (numerically) linear combinations of earlier columns
are dropped, as lme4 does: the norm of what column j adds to the span of the
kept columns before it is computed by Gram-Schmidt, and the column
is kept when that is more than ``tol`` times its own norm.  Unlike norm
pivoting, this drops the later of two aliased columns, which is what a user
who ordered the formula expects (and what R's limited pivoting does).  The
decision does not depend on the columns' units: each column is divided by
its largest absolute value first, so that neither a huge nor a tiny
covariate has a norm that overflows or underflows into "aliased".

Fixed-effects columns on very different scales get lme4's ``check.scaleX``
warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .design import Design

__all__ = ["FeTerm", "independent_columns", "scale_problem", "column_scales"]


def independent_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Indices of the columns of X kept after dropping aliased ones (in order).

    Column j is kept when the part of it orthogonal to the kept columns
    before it has norm above ``tol`` times its own norm (Gram-Schmidt with
    re-orthogonalisation against the kept columns only).
    """
    n, p = X.shape
    X = X / column_scales(X)
    Q = np.empty((n, 0))
    keep: list[int] = []
    for j in range(p):
        x = X[:, j]
        norm = np.linalg.norm(x)
        r = x - Q @ (Q.T @ x)
        r -= Q @ (Q.T @ r)
        rnorm = np.linalg.norm(r)
        if norm > 0 and rnorm > tol * norm:
            keep.append(j)
            Q = np.column_stack([Q, r / rnorm])
    return np.asarray(keep, dtype=np.intp)


def column_scales(X: np.ndarray) -> np.ndarray:
    """Largest absolute value of each column (1 for an all-zero column)."""
    scale = np.abs(X).max(axis=0) if X.shape[0] else np.ones(X.shape[1])
    return np.where(scale > 0, scale, 1.0)


SCALE_TOL = 1e3
"""lme4's ``check.scaleX`` tolerance: standard deviations more than 1000-fold apart, or beyond 1000 or 1/1000."""


def scale_problem(X: np.ndarray, names: list[str], tol: float = SCALE_TOL) -> str | None:
    """Why the columns of X are on very different scales, or None if they are not.

    As lme4's ``checkScaleX``: among the columns that are not all 0/1
    (continuous covariates), the ratio of any two standard deviations, and
    each standard deviation itself, must lie within ``[1/tol, tol]``.
    Constant columns are left out (they have no scale to compare).
    """
    if len(X) < 2:
        return None
    continuous = ~((X == 0.0) | (X == 1.0)).all(axis=0)
    spread = np.std(X, axis=0, ddof=1)
    sds = {names[j]: float(spread[j]) for j in np.flatnonzero(continuous & (spread > 0))}
    if not sds:
        return None
    logs = np.log10(np.array(list(sds.values())))
    limit = np.log10(tol)
    if np.abs(logs).max() <= limit and logs.max() - logs.min() <= limit:
        return None
    shown = ", ".join(f"{name} (sd {sd:.3g})" for name, sd in sds.items())
    return f"Some predictor variables are on very different scales: consider rescaling: {shown}"


CENTRING_TOL = 1e4
"""Largest |mean| / sd of a covariate beside an intercept before the fit warns: X'X then
has a condition number of about (mean/sd)², and above 10⁸ the objective is noisy in θ."""


def centring_problem(X: np.ndarray, names: list[str], tol: float = CENTRING_TOL) -> str | None:
    """Covariates so far from 0 relative to their spread that, beside an intercept, they are nearly aliased.

    None when X has no constant column (then the column's offset is not
    confounded with anything) or every covariate's |mean|/sd is at most ``tol``.
    """
    if len(X) < 2 or not ((np.ptp(X, axis=0) == 0) & (X[0] != 0)).any():
        return None
    means, sds = np.mean(X, axis=0), np.std(X, axis=0, ddof=1)
    far = [
        f"{names[j]} (mean {means[j]:.4g}, sd {sds[j]:.3g})"
        for j in np.flatnonzero((sds > 0) & (np.abs(means) > tol * sds))
    ]
    if not far:
        return None
    return (
        "covariate(s) far from 0 relative to their spread, nearly aliased with the intercept: "
        f"{', '.join(far)}; the estimates lose precision: centre them (subtract the mean)"
    )


@dataclass
class FeTerm:
    """Fixed-effects model matrix with aliased columns removed.

    Attributes
    ----------
    design : Design
        The full model matrix as formulaic built it, with its spec.
    keep : ndarray of int
        Indices of the columns kept.
    """

    design: Design
    keep: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.keep = independent_columns(self.design.matrix)
        dropped = self.dropped
        if dropped:
            warnings.warn(
                f"fixed-effects model matrix is rank deficient: dropping aliased column(s) "
                f"{', '.join(dropped)} (rank {self.rank} of {len(self.design.names)})",
                stacklevel=4,
            )
        X, names = self.X, self.coefnames
        for problem in (scale_problem(X, names), centring_problem(X, names)):
            if problem:
                warnings.warn(problem, stacklevel=4)

    @property
    def X(self) -> np.ndarray:
        """Model matrix of the kept columns (n x rank)."""
        return self.design.matrix[:, self.keep]

    @property
    def rank(self) -> int:
        return len(self.keep)

    @property
    def coefnames(self) -> list[str]:
        return [self.design.names[j] for j in self.keep]

    @property
    def dropped(self) -> list[str]:
        kept = set(self.keep.tolist())
        return [n for j, n in enumerate(self.design.names) if j not in kept]

    def X_on(self, data) -> np.ndarray:
        """Kept columns of the model matrix evaluated on new data."""
        return self.design.on(data)[:, self.keep]
