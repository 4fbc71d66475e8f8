"""SNP heritability ``h² = σg² / (σg² + σe²)`` of ``y = Xβ + g + e``, the FaST-LMM way.

``K`` is decomposed once (:mod:`mixedmodels.genetics.decomposition`); each
phenotype is rotated by ``U'`` once; then the profiled log-likelihood is a
function of ``h²`` alone costing ``O(n p²)`` per evaluation
(:mod:`mixedmodels.genetics.likelihood`).  It is maximised over ``[0, 1]`` by a
grid search, then Brent's method between the best grid point's neighbours:
on the analytic score ``dℓ/dh²`` (root finding, precise to ``1e-12``) and, if
the score does not bracket a root, on ``ℓ`` itself.  The ends of ``[0, 1]``
are grid points, and a score pointing outwards there puts the estimate
exactly on the boundary (``h² = 0`` is common), reported as such.  The
whole search is recorded in an :class:`~mixedmodels.optsummary.OptSummary`
(``optimizer="brent"``, objective ``-2ℓ``: every grid point and every
likelihood evaluation of the refinement) by
:func:`mixedmodels.optimize.record_search`, as the core's NLopt fits are.

REML is the default: it accounts for the degrees of freedom spent on ``β``,
and it stays bounded when ``K`` is singular (next paragraph).

When ``K`` has a zero eigenvalue (a centred kinship has ``K 1 = 0``; a
low-rank ``K`` has ``n - k`` of them), ``V`` is singular at ``h² = 1``.  If such
a direction lies in the span of ``X`` (the intercept for a centred ``K``), the
ML log-likelihood grows without bound as ``h² → 1``: ``log|V|`` tends to ``-∞``
while the residual has no component there to compensate.  The search then
stops at ``1 - 1e-6`` and, if the likelihood still rises there, the best
interior local maximum is reported with a warning (or the upper end, with a
warning, when there is none).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, overload

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar

from mixedmodels.errors import DataError
from mixedmodels.genetics.decomposition import Decomposition, decompose
from mixedmodels.genetics.likelihood import (
    Profile,
    RotatedData,
    profiled_loglik,
    profiled_score,
)
from mixedmodels.genetics.phenotypes import as_covariates, as_phenotypes
from mixedmodels.lmm import coef_table
from mixedmodels.optimize import record_search
from mixedmodels.optsummary import OptSummary
from mixedmodels.printing import format_coeftable

__all__ = [
    "H2Estimate",
    "HeritabilityResult",
    "HeritabilityResults",
    "estimate_h2",
    "heritability",
    "loglik_curve",
]

#: Default h² values of :func:`loglik_curve`: 0, 0.1, ..., 0.9.
_CALCLL_GRID = tuple(k / 10 for k in range(10))

#: Distance from 1 at which the search over h² stops when V is singular at h² = 1.
H2_MARGIN = 1e-6


class H2Estimate(NamedTuple):
    """The maximiser of the profiled log-likelihood over ``h²``.

    ``h2`` the estimate; ``fit`` the :class:`Profile` there (arrays of length 1);
    ``boundary`` ``"lower"``/``"upper"`` when the estimate is an end of the
    search interval, else ``None``; ``grid`` and ``grid_loglik`` the curve searched;
    ``note`` a warning for the user when the likelihood climbs towards a singular
    ``V`` (callers decide how to report it), else ``None``; ``optsum`` the
    record of the search (objective ``-2ℓ``).
    """

    h2: float
    fit: Profile
    boundary: str | None
    grid: np.ndarray
    grid_loglik: np.ndarray
    note: str | None = None
    optsum: OptSummary | None = None


def estimate_h2(data: RotatedData, *, reml: bool = True, grid_size: int = 101) -> H2Estimate:
    """Maximise the profiled (RE)ML log-likelihood over ``h² ∈ [0, 1]``.

    Parameters
    ----------
    data : RotatedData
        The rotated design and response.
    reml : bool
        REML (default) or ML.
    grid_size : int
        Points of the initial grid over ``[0, upper]``; Brent's method refines the
        best of them within its two neighbouring grid intervals.

    Returns
    -------
    H2Estimate
    """
    t0 = time.perf_counter()
    upper = 1.0 - H2_MARGIN if data.singular else 1.0
    grid = np.linspace(0.0, upper, max(grid_size, 3))
    grid_loglik = np.nan_to_num(profiled_loglik(data, grid, reml).loglik, nan=-np.inf)
    fitlog = [(np.array([h]), -2.0 * ll) for h, ll in zip(grid, grid_loglik)]
    peaks = _local_maxima(grid_loglik)

    def objective(h2: float) -> float:
        loglik = float(profiled_loglik(data, np.array([h2]), reml).loglik[0])
        fitlog.append((np.array([h2]), -2.0 * loglik))
        return loglik

    def score(h2: float) -> float:
        return float(profiled_score(data, np.array([h2]), reml)[0])

    h2, reason = _refine(objective, score, grid, grid_loglik, peaks[0])
    note = None
    if data.singular and h2 > upper - 1e-5:
        h2, reason, note = _away_from_one(objective, score, grid, grid_loglik, peaks)
    boundary = "lower" if h2 == 0.0 else "upper" if h2 == upper else None
    fit = profiled_loglik(data, np.array([h2]), reml)
    fitlog.append((np.array([h2]), -2.0 * float(fit.loglik[0])))
    optsum = record_search(
        OptSummary(initial=[0.0], lowerbd=[0.0], ftol_abs=0.0, xtol_abs=np.array([1e-12])),
        "brent", fitlog, np.array([h2]), -2.0 * float(fit.loglik[0]), reason,
        time.perf_counter() - t0,
    )  # fmt: skip
    return H2Estimate(h2, fit, boundary, grid, grid_loglik, note, optsum)


def _local_maxima(loglik: np.ndarray) -> list[int]:
    """Grid indices not lower than their neighbours, the highest first."""
    padded = np.concatenate([[-np.inf], loglik, [-np.inf]])
    middle = padded[1:-1]
    peak = (middle >= padded[:-2]) & (middle >= padded[2:])
    return sorted(np.flatnonzero(peak), key=lambda i: -loglik[i])


def _refine(
    objective: Callable[[float], float],
    score: Callable[[float], float],
    grid: np.ndarray,
    loglik: np.ndarray,
    i: int,
) -> tuple[float, str]:
    """The maximiser near grid point ``i``, found between its two grid neighbours, and how.

    Where the score ``dℓ/dh²`` changes sign, Brent's root finder locates its zero
    to ``1e-12`` (``"XTOL_REACHED"``); the log-likelihood is too flat at its
    maximum to locate ``h²`` beyond about ``1e-6`` from its values alone.  A score
    of the wrong sign at an end of ``[0, upper]`` puts the maximum exactly on that
    boundary (``"BOUNDARY"``).  Otherwise (a very flat or irregular curve)
    Brent's minimiser on ``-ℓ`` is used (``"XTOL_REACHED"``, or ``"GRID_POINT"``
    when it finds nothing better than the grid point).
    """
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    at = grid[i]
    score_at = score(at)
    if (score_at <= 0 and i == 0) or (score_at >= 0 and i == grid.size - 1):
        return float(at), "BOUNDARY"
    a, b = (at, hi) if score_at > 0 else (lo, at)
    if score(a) > 0 > score(b):
        root = brentq(score, a, b, xtol=1e-12, rtol=4 * np.finfo(float).eps)
        return float(root), "XTOL_REACHED"
    found = minimize_scalar(
        lambda h: -objective(h), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
    )
    return (float(found.x), "XTOL_REACHED") if -found.fun > loglik[i] else (float(at), "GRID_POINT")


def _away_from_one(
    objective: Callable[[float], float],
    score: Callable[[float], float],
    grid: np.ndarray,
    loglik: np.ndarray,
    peaks: list[int],
) -> tuple[float, str, str]:
    """The best interior local maximum when the likelihood climbs towards a singular ``V``.

    Returns the ``h²`` to report, how it was found and the note explaining the choice.
    """
    interior = [i for i in peaks if i < grid.size - 2]
    why = (
        "the log-likelihood increases towards h² = 1, where V = h²K + (1-h²)I is singular "
        "(K has a zero eigenvalue; under ML with an intercept a centred K makes the "
        "likelihood unbounded there); "
    )
    if not interior:
        return (
            float(grid[-1]),
            "BOUNDARY",
            why + f"reporting h² = {grid[-1]}, the end of the search",
        )
    h2, reason = _refine(objective, score, grid, loglik, interior[0])
    return h2, reason, why + f"reporting the interior local maximum h² = {h2:.6g}; REML avoids this"


@dataclass(frozen=True)
class HeritabilityResult:
    """Heritability fit of one phenotype.

    Attributes
    ----------
    phenotype : str
    h2 : float
        ``σg² / (σg² + σe²)``.
    sigma2_g, sigma2_e : float
        Genetic and residual variances; ``σg² = h² s²``, ``σe² = (1 - h²) s²``.
    loglik : float
        Maximised log-likelihood (REML or ML, see ``reml``).
    beta, se : Series
        Fixed effects and their standard errors ``sqrt(diag(s² (X'V⁻¹X)⁻¹))``.
    reml : bool
    boundary : str or None
        ``"lower"`` when ``h² = 0`` is the estimate, ``"upper"`` at the top of the range.
    n : int
        Number of individuals.
    curve : DataFrame
        The log-likelihood (same criterion as the fit) over the search grid,
        columns ``h2`` and ``loglik``.
    optsum : OptSummary
        The search over ``h²`` (objective ``-2 loglik``), recorded as the core's fits are.
    """

    phenotype: str
    h2: float
    sigma2_g: float
    sigma2_e: float
    loglik: float
    beta: pd.Series
    se: pd.Series
    reml: bool
    boundary: str | None
    n: int
    curve: pd.DataFrame
    optsum: OptSummary | None = field(default=None, repr=False, compare=False)

    @property
    def total_variance(self) -> float:
        """``s² = σg² + σe²``."""
        return self.sigma2_g + self.sigma2_e

    def to_frame(self) -> pd.DataFrame:
        """One row indexed by phenotype: variance components, log-likelihood, β and SEs."""
        row = {
            "h2": self.h2,
            "sigma2_g": self.sigma2_g,
            "sigma2_e": self.sigma2_e,
            "total_variance": self.total_variance,
            "loglik": self.loglik,
            "method": "REML" if self.reml else "ML",
            "boundary": self.boundary,
            "n": self.n,
        }
        row |= {f"beta[{k}]": v for k, v in self.beta.items()}
        row |= {f"se[{k}]": v for k, v in self.se.items()}
        return pd.DataFrame([row], index=pd.Index([self.phenotype], name="phenotype"))

    def coeftable(self) -> pd.DataFrame:
        """Fixed effects with Wald z statistics and p-values, as the core's models give them."""
        return coef_table(self.beta.to_numpy(), self.se.to_numpy(), list(self.beta.index))

    def summary(self) -> str:
        """A short printable report."""
        method = "REML" if self.reml else "ML"
        on_edge = f" (on the {self.boundary} boundary)" if self.boundary else ""
        lines = [
            f"Heritability of {self.phenotype!r} by {method}, n = {self.n}",
            f"  h2 = {self.h2:.4f}{on_edge}",
            (
                f"  sigma2_g = {self.sigma2_g:.4g}, sigma2_e = {self.sigma2_e:.4g}, "
                f"total = {self.total_variance:.4g}"
            ),
            f"  log-likelihood = {self.loglik:.4f}",
            "  fixed effects:",
            format_coeftable(self.coeftable()),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


class HeritabilityResults(Sequence[HeritabilityResult]):
    """Fits of several phenotypes sharing one decomposition; index by position or name."""

    def __init__(self, results: Sequence[HeritabilityResult]):
        self._results = tuple(results)

    @overload
    def __getitem__(self, key: int | str) -> HeritabilityResult: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[HeritabilityResult]: ...

    def __getitem__(
        self, key: int | str | slice
    ) -> HeritabilityResult | Sequence[HeritabilityResult]:
        if isinstance(key, str):
            for result in self._results:
                if result.phenotype == key:
                    return result
            raise KeyError(key)
        return self._results[key]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[HeritabilityResult]:
        return iter(self._results)

    def to_frame(self) -> pd.DataFrame:
        """One row per phenotype (see :meth:`HeritabilityResult.to_frame`)."""
        return pd.concat([r.to_frame() for r in self._results])

    def __repr__(self) -> str:
        columns = ["h2", "sigma2_g", "sigma2_e", "loglik", "method", "boundary", "n"]
        return "Heritability\n" + self.to_frame()[columns].to_string()


def _rotated_phenotypes(
    y: object, X: object, K: object, G: object, assume_same_order: bool = False
) -> tuple[list[RotatedData], list[str], list[str], bool]:
    """Check the inputs, decompose ``K`` if needed, and rotate ``[X Y]`` once.

    Returns one :class:`RotatedData` per phenotype, the phenotype names, the
    covariate names and whether ``y`` was one-dimensional.
    """
    pheno = as_phenotypes(y)
    n = pheno.values.shape[0]
    Xv, x_names = as_covariates(X, n, pheno.index)
    decomposition = decompose(K, G, n=n, levels=pheno.index, assume_same_order=assume_same_order)
    rotated = RotatedData.per_phenotype(decomposition, Xv, pheno.values)
    return rotated, pheno.names, x_names, pheno.one_d


def _result(
    name: str, x_names: list[str], data: RotatedData, est: H2Estimate, reml: bool
) -> HeritabilityResult:
    fit = est.fit
    s2 = float(fit.s2[0])
    se = np.sqrt(s2 * np.diag(fit.A_inv[0]))
    return HeritabilityResult(
        phenotype=name,
        h2=est.h2,
        sigma2_g=est.h2 * s2,
        sigma2_e=(1.0 - est.h2) * s2,
        loglik=float(fit.loglik[0]),
        beta=pd.Series(fit.beta[0], index=x_names, name="beta"),
        se=pd.Series(se, index=x_names, name="se"),
        reml=reml,
        boundary=est.boundary,
        n=data.n,
        curve=pd.DataFrame({"h2": est.grid, "loglik": est.grid_loglik}),
        optsum=est.optsum,
    )


def heritability(
    y: object,
    X: object = None,
    K: np.ndarray | pd.DataFrame | Decomposition | None = None,
    *,
    G: object = None,
    reml: bool = True,
    grid_size: int = 101,
    assume_same_order: bool = False,
) -> HeritabilityResult | HeritabilityResults:
    """Estimate SNP heritability by (RE)ML in ``y = Xβ + g + e``, ``g ~ N(0, σg² K)``.

    Parameters
    ----------
    y : array (n,) or (n, t), Series or DataFrame
        One phenotype, or ``t`` phenotypes fitted one after the other with a single
        decomposition of ``K``.  Must be complete (see :func:`match_samples`).
    X : array (n, p) or DataFrame, optional
        Fixed-effects design including the intercept column; default intercept only.
    K : array (n, n), DataFrame or Decomposition, optional
        Kinship matrix, or its decomposition from :func:`eigh_kinship` /
        :func:`svd_genotypes` to reuse across calls.  A DataFrame (as
        :func:`kinship` returns for labelled genotypes) or a decomposition of one
        is aligned by sample ID to a labelled ``y``.  A kinship with a mean
        diagonal far from 1 (outside 1e-6 .. 1e6) is rescaled to 1, with a warning.
    G : array (n, m), DataFrame or genotype source, optional
        Allele counts instead of ``K``: ``K = kinship(G)``, through the thin SVD
        when ``m < n``; a PLINK file is aligned by sample ID to a labelled ``y``.
    reml : bool
        REML (default) or ML; see the module notes on ML with a singular ``K``.
    grid_size : int
        Points of the ``h²`` grid searched before Brent's method.
    assume_same_order : bool
        A labelled ``y`` (a pandas object with an index other than ``0..n-1``)
        with an unlabelled ``K`` or ``G`` (an array) is an error, since its rows
        cannot be matched to individuals; True pairs them by position.

    Returns
    -------
    HeritabilityResult for a 1-D ``y``; HeritabilityResults for a 2-D ``y``.
    """
    rotated, names, x_names, one_d = _rotated_phenotypes(y, X, K, G, assume_same_order)
    results = []
    for name, data in zip(names, rotated):
        estimate = estimate_h2(data, reml=reml, grid_size=grid_size)
        if estimate.note:
            warnings.warn(f"phenotype {name!r}: {estimate.note}", stacklevel=2)
        results.append(_result(name, x_names, data, estimate, reml))
    return results[0] if one_d else HeritabilityResults(results)


def loglik_curve(
    y: object,
    X: object = None,
    K: np.ndarray | pd.DataFrame | Decomposition | None = None,
    *,
    G: object = None,
    h2: Sequence[float] | np.ndarray = _CALCLL_GRID,
    reml: bool = False,
    assume_same_order: bool = False,
) -> pd.DataFrame:
    """Profiled log-likelihood at given values of ``h²`` (like lmmlite's ``calcLL``).

    Parameters
    ----------
    y, X, K, G, assume_same_order
        As for :func:`heritability`.
    h2 : sequence of float in [0, 1]
        Where to evaluate; default ``0, 0.1, ..., 0.9``.
    reml : bool
        REML or ML (default, as ``calcLL``).

    Returns
    -------
    DataFrame
        Indexed by ``h2``, one column per phenotype.
    """
    grid = np.asarray(h2, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not ((grid >= 0) & (grid <= 1)).all():
        raise DataError("h2 must be a non-empty list of values between 0 and 1")
    rotated, names, _, _ = _rotated_phenotypes(y, X, K, G, assume_same_order)
    if (grid == 1).any() and rotated[0].singular:
        raise DataError("K has a zero eigenvalue, so V is singular at h2 = 1: leave 1 out of h2")
    curves = {name: profiled_loglik(data, grid, reml).loglik for name, data in zip(names, rotated)}
    return pd.DataFrame(curves, index=pd.Index(grid, name="h2"))
