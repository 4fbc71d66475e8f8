"""The standard-deviation / correlation parametrisation of the variance components.

The optimiser works with θ, the lower triangles of the relative covariance
factors λ (one per original random-effects term, in lme4's order).  People
read standard deviations and correlations instead.  For a term with k columns,

    Σ = σ² λλ',   sdᵢ = sqrt(Σᵢᵢ),   corᵢⱼ = Σᵢⱼ / (sdᵢ sdⱼ),

and conversely λ = chol(D R D) / σ with D = diag(sd) and R the correlation
matrix.  The sd/cor values of a term are laid out like its θ elements (lower
triangle column by column, sd on the diagonal, cor below it), so the vector
of all of them has the length of θ.  The names are lme4's profile names:
``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``.

A term with a covariance structure (:mod:`mixedmodels.covstruct`) has its
own natural parameters, one per θ element: its standard deviations
(``sd_<col>|g``, or ``sd|g`` when shared) and correlation parameters
(``rho|g`` for cs and ar1, ``rho<lag>|g`` for toep), with the structure's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..covstruct import CovStructure
from ..errors import MixedModelsError
from ..remat import lower_tri_positions
from ..structure import lme4_blocks

__all__ = ["TermLayout", "VarianceLayout", "variance_layout", "NotPositiveDefinite", "psd_cholesky"]


class NotPositiveDefinite(ArithmeticError):
    """Standard deviations and correlations that do not form a covariance matrix."""


@dataclass(frozen=True)
class TermLayout:
    """One original random-effects term: its group label, column names and size."""

    group: str
    cnames: tuple[str, ...]
    structure: CovStructure | None = None

    @property
    def k(self) -> int:
        """Number of columns (random effects per level)."""
        return len(self.cnames)

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2 if self.structure is None else self.structure.ntheta

    def is_sd(self) -> np.ndarray:
        if self.structure is not None:
            return self.structure.is_sd()
        return np.array([r == c for r, c in self.positions], dtype=bool)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.structure is not None:
            return self.structure.natural_bounds()
        sd = self.is_sd()
        return np.where(sd, 0.0, -1.0), np.where(sd, np.inf, 1.0)

    @property
    def positions(self) -> list[tuple[int, int]]:
        """(row, column) of each θ element of the term (lower triangle, column by column)."""
        return lower_tri_positions(0, self.k)

    def names(self) -> list[str]:
        """lme4's names: ``sd_<col>|<group>`` on the diagonal, ``cor_<row>.<col>|<group>`` below."""
        if self.structure is not None:
            return self.structure.natural_names(self.group, list(self.cnames))
        out = []
        for r, c in self.positions:
            if r == c:
                out.append(f"sd_{self.cnames[r]}|{self.group}")
            else:
                out.append(f"cor_{self.cnames[r]}.{self.cnames[c]}|{self.group}")
        return out

    def lower_triangle(self, chunk: np.ndarray) -> np.ndarray:
        """The k x k lower-triangular matrix whose θ-ordered elements are ``chunk``."""
        lam = np.zeros((self.k, self.k))
        for (r, c), v in zip(self.positions, chunk):
            lam[r, c] = v
        return lam

    def to_sdcor(self, chunk: np.ndarray, sigma: float) -> np.ndarray:
        """θ elements of the term -> its sd/cor values (correlations of a zero sd are 0)."""
        if self.structure is not None:
            return self.structure.to_natural(chunk, sigma)
        lam = self.lower_triangle(chunk)
        cov = sigma**2 * (lam @ lam.T)
        sd = np.sqrt(np.diag(cov))
        out = []
        for r, c in self.positions:
            if r == c:
                out.append(sd[r])
            else:
                denom = sd[r] * sd[c]
                out.append(cov[r, c] / denom if denom > 0 else 0.0)
        return np.array(out)

    def to_theta(self, values: np.ndarray, sigma: float) -> np.ndarray:
        """sd/cor values of the term -> its θ elements: λ = chol(D R D) / σ."""
        if self.structure is not None:
            try:
                return self.structure.from_natural(values, sigma)
            except ValueError as exc:
                raise NotPositiveDefinite(str(exc)) from exc
        m = self.lower_triangle(values)
        sd = np.diag(m).copy()
        off = np.tril(m, -1)
        corr = off + off.T + np.eye(self.k)
        lam = psd_cholesky(corr * np.outer(sd, sd)) / sigma
        return np.array([lam[r, c] for r, c in self.positions])


def psd_cholesky(S: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Lower factor L with LL' = S for a positive semi-definite S (zero pivots allowed).

    A column whose pivot is zero (a standard deviation of 0, or a correlation
    of ±1) gets zeros below its diagonal, which is the limit of the factor
    of nearby positive-definite matrices that lme4's bounds allow.

    Raises
    ------
    NotPositiveDefinite
        If a pivot is negative beyond ``tol`` relative to the diagonal.
    """
    k = len(S)
    L = np.zeros_like(S, dtype=float)
    scale = max(float(np.max(np.abs(np.diag(S)))), 1e-300)
    for j in range(k):
        pivot = S[j, j] - L[j, :j] @ L[j, :j]
        if pivot < -tol * scale:
            raise NotPositiveDefinite(f"pivot {j} is {pivot:.3g}")
        if pivot <= tol * scale:
            continue
        L[j, j] = np.sqrt(pivot)
        L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


@dataclass(frozen=True)
class VarianceLayout:
    """All random-effects terms of a model in lme4's θ order."""

    terms: tuple[TermLayout, ...]

    def names(self) -> list[str]:
        """sd/cor names in θ order; repeated names (two terms alike) get ``.1``, ``.2``."""
        raw = [n for t in self.terms for n in t.names()]
        seen: dict[str, int] = {}
        out = []
        for n in raw:
            count = seen.get(n, 0)
            seen[n] = count + 1
            out.append(n if count == 0 else f"{n}.{count}")
        return out

    def _chunks(self, vec: np.ndarray):
        start = 0
        for t in self.terms:
            size = t.ntheta
            yield t, vec[start : start + size]
            start += size

    def to_sdcor(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """θ (lme4's order) and σ -> standard deviations and correlations, shape (ntheta,)."""
        return np.concatenate(
            [t.to_sdcor(c, sigma) for t, c in self._chunks(np.asarray(theta, float))]
        )

    def to_theta(self, sdcor: np.ndarray, sigma: float) -> np.ndarray:
        """Standard deviations and correlations and σ -> θ in lme4's order."""
        if not sigma > 0:
            raise NotPositiveDefinite("sigma must be positive")
        return np.concatenate(
            [t.to_theta(c, sigma) for t, c in self._chunks(np.asarray(sdcor, float))]
        )

    def is_sd(self) -> np.ndarray:
        """Boolean per element: a standard deviation (True) or a correlation (False)."""
        return np.concatenate([t.is_sd() for t in self.terms])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds: [0, ∞) for standard deviations, [-1, 1] for correlations."""
        pairs = [t.bounds() for t in self.terms]
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def variance_layout(model) -> VarianceLayout:
    """The :class:`VarianceLayout` of a fitted linear or generalised mixed model."""
    reterms = model.reterms
    if not reterms:
        raise MixedModelsError("the model has no random-effects terms")
    terms = []
    for ri, bi in lme4_blocks(reterms):
        r = reterms[ri]
        terms.append(TermLayout(r.name, tuple(r.cnames[r.blocks[bi]]), r.structures[bi]))
    return VarianceLayout(tuple(terms))
