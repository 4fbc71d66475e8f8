"""Structured covariances of random-effects terms: ``diag``, ``cs``, ``ar1``, ``toep``.

A term written ``ar1(0 + f | g)`` (lme4 2.0's and glmmTMB's spelling) has a
relative covariance Σ(φ)/σ² = D R(ρ) D with D = diag(s) the relative standard
deviations and R a correlation matrix of a given form.  Its part of θ is φ:

=========  ===========================================  =================================
structure  R                                            φ (in this order)
=========  ===========================================  =================================
diag       I                                            s_1..s_k (hom: s)
cs         (1 - ρ) I + ρ 11',  -1/(k-1) < ρ < 1          s_1..s_k (hom: s), φ_ρ
ar1        R_ij = ρ^|i-j|,  -1 < ρ < 1                   s (het: s_1..s_k), φ_ρ
toep       R_ij = ρ_|i-j| (any positive-definite one)    s_1..s_k (hom: s), φ_1..φ_{k-1}
=========  ===========================================  =================================

Standard deviations are bounded below by 0 (as the diagonal of an
unstructured λ).  Correlations are reached through an unbounded transform,
so that the optimizer needs no upper bounds: t = tanh φ ∈ (-1, 1) is
ρ for ``ar1``, ρ = -a + (1 + a)(1 + t)/2 with a = 1/(k-1) for ``cs``, and for
``toep`` the t's are the partial autocorrelations, which Durbin–Levinson's
recursion turns into the lag correlations ρ_1..ρ_{k-1} of a positive-definite
Toeplitz matrix (every φ gives one, and every one has a φ).  ρ = ±1 (φ = ±∞)
is a boundary, reported as a singular fit.  tanh rather than glmmTMB's
algebraic φ/√(1 + φ²): the objective flattens exponentially towards ρ = ±1,
so that a fit whose optimum is on that boundary (cs with ρ → 1 is common)
gets there in a few steps of φ instead of drifting.

λ for the term is the lower Cholesky factor of D R D, computed from φ at
every evaluation (k x k, closed forms for ``ar1`` and ``cs``).  The
unstructured term (``(x | g)`` or ``us(x | g)``) has no CovStructure: its θ
is λ's lower triangle, scattered linearly (:mod:`mixedmodels.remat`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FormulaError

__all__ = [
    "CovStructure",
    "KNOWN_STRUCTURES",
    "STRUCTURE_ALIASES",
    "structure_for",
    "psd_cholesky_lower",
    "toeplitz_correlations",
    "partial_autocorrelations",
]

KNOWN_STRUCTURES = ("us", "diag", "cs", "ar1", "toep")
"""The structure names of lme4 2.0 and glmmTMB that this package fits."""

STRUCTURE_ALIASES = {
    "homdiag": ("diag", True),
    "homcs": ("cs", True),
    "hetcs": ("cs", False),
    "hetar1": ("ar1", False),
    "homar1": ("ar1", True),
    "homtoep": ("toep", True),
}
"""glmmTMB's names with the homogeneity built in: name -> (structure, hom)."""

DEFAULT_HOM = {"diag": False, "cs": False, "ar1": True, "toep": False}
"""As lme4 2.0 and glmmTMB: ``ar1`` has one variance, the others one per column."""

BOUNDARY_TOL = 1e-4
"""|ρ| within this of 1 (or of cs's lower limit) is a boundary (singular) fit."""


def rho_of(phi):
    """t = tanh φ in [-1, 1] (±1 at φ = ±∞)."""
    return np.tanh(np.asarray(phi, dtype=float))


_T_MAX = float(np.nextafter(1.0, 0.0))


def phi_of(t):
    """The inverse of :func:`rho_of`: φ = atanh t, finite.

    At |t| = 1 (a correlation on its boundary, where a profile can step) φ is
    ±atanh(1 - 2⁻⁵³) ≈ ±18.7, whose tanh is within 2⁻⁵³ of ±1: the same
    covariance to rounding, at a point an optimizer can start from and step away from.
    """
    return np.arctanh(np.clip(np.asarray(t, dtype=float), -_T_MAX, _T_MAX))


def psd_cholesky_lower(S: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Lower L with LL' = S for positive semi-definite S; a zero pivot gives a zero column."""
    k = len(S)
    L = np.zeros((k, k))
    scale = max(float(np.max(np.diag(S))), 1e-300)
    for j in range(k):
        pivot = S[j, j] - L[j, :j] @ L[j, :j]
        if pivot <= tol * scale:
            continue
        L[j, j] = np.sqrt(pivot)
        L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def toeplitz_correlations(pacf: np.ndarray) -> np.ndarray:
    """Durbin–Levinson: partial autocorrelations π_1..π_m -> lag correlations ρ_0 = 1, ρ_1..ρ_m."""
    rho = np.ones(len(pacf) + 1)
    coef = np.zeros(0)
    for m, p in enumerate(pacf, start=1):
        coef = np.append(coef - p * coef[::-1], p)
        rho[m] = coef @ rho[m - 1 :: -1][: len(coef)]
    return rho


def partial_autocorrelations(rho: np.ndarray) -> np.ndarray:
    """The inverse of :func:`toeplitz_correlations` (ρ_0 = 1 first); ValueError if not positive definite."""
    out, coef = [], np.zeros(0)
    for m in range(1, len(rho)):
        denom = 1 - coef @ rho[1:m]
        p = (rho[m] - coef @ rho[m - 1 : 0 : -1]) / denom if denom > 0 else np.nan
        if not abs(p) <= 1:
            raise ValueError(
                f"lag correlations {rho[1:]} do not form a positive-definite Toeplitz matrix"
            )
        coef = np.append(coef - p * coef[::-1], p)
        out.append(p)
    return np.array(out)


def _ar1_factor(k: int, rho: float) -> np.ndarray:
    """chol of R_ij = ρ^|i-j|: column 0 is ρ^i, column j > 0 is ρ^(i-j) √(1-ρ²) below the diagonal."""
    i, j = np.indices((k, k))
    lag = np.where(i >= j, i - j, 0)
    L = np.where(i >= j, rho**lag, 0.0)
    L[:, 1:] *= np.sqrt(max(1.0 - rho * rho, 0.0))
    return L


def _cs_factor(k: int, rho: float) -> np.ndarray:
    """chol of (1-ρ)I + ρ11': each Schur complement is again compound symmetric (a on, b off the diagonal)."""
    L = np.zeros((k, k))
    a, b = 1.0, rho
    for j in range(k):
        if a <= 1e-14:
            break
        d = np.sqrt(a)
        c = b / d
        L[j, j] = d
        L[j + 1 :, j] = c
        a, b = a - c * c, b - c * c
    return L


@dataclass(frozen=True)
class CovStructure:
    """The parametrisation φ -> λ of one structured term of ``k`` columns.

    Attributes
    ----------
    kind : str
        ``"diag"``, ``"cs"``, ``"ar1"`` or ``"toep"``.
    k : int
        Number of columns of the term.
    hom : bool
        One standard deviation shared by all columns.
    """

    kind: str
    k: int
    hom: bool

    # ---- sizes and bounds -------------------------------------------------
    @property
    def nsd(self) -> int:
        return 1 if self.hom else self.k

    @property
    def ncor(self) -> int:
        return {"diag": 0, "cs": 1, "ar1": 1, "toep": self.k - 1}[self.kind]

    @property
    def ntheta(self) -> int:
        return self.nsd + self.ncor

    @property
    def label(self) -> str:
        """How printing names it: ``ar1``, ``cs (hom)``."""
        default = DEFAULT_HOM[self.kind]
        return self.kind if self.hom == default else f"{self.kind} ({'hom' if self.hom else 'het'})"

    def is_sd(self) -> np.ndarray:
        """Boolean per φ element: a relative standard deviation (bounded by 0)."""
        return np.arange(self.ntheta) < self.nsd

    def lowerbd(self) -> np.ndarray:
        return np.where(self.is_sd(), 0.0, -np.inf)

    def initial(self) -> np.ndarray:
        """λ = I: unit standard deviations, zero correlations."""
        return self.is_sd().astype(float)

    def theta_names(self, group: str, cnames: list[str]) -> list[str]:
        """``g.col`` per standard deviation (``g.sd`` if shared), ``g.phi_rho`` / ``g.phi_pacf<lag>``."""
        sds = [f"{group}.sd"] if self.hom else [f"{group}.{c}" for c in cnames]
        if self.kind == "toep":
            return sds + [f"{group}.phi_pacf{lag}" for lag in range(1, self.k)]
        return sds + ([f"{group}.phi_rho"] if self.ncor else [])

    # ---- φ -> λ -------------------------------------------------------------
    def sds(self, phi: np.ndarray) -> np.ndarray:
        """Relative standard deviations s, one per column."""
        return np.broadcast_to(phi[: self.nsd], (self.k,))

    def correlations(self, phi: np.ndarray) -> np.ndarray:
        """ρ (cs, ar1) or the lag correlations ρ_1..ρ_{k-1} (toep) at φ."""
        t = rho_of(phi[self.nsd :])
        if self.kind == "cs":
            a = 1.0 / (self.k - 1)
            return -a + (1 + a) * (1 + t) / 2
        if self.kind == "toep":
            return toeplitz_correlations(t)[1:]
        return t

    def correlation_matrix(self, phi: np.ndarray) -> np.ndarray:
        k = self.k
        if self.kind == "diag":
            return np.eye(k)
        rho = self.correlations(phi)
        if self.kind == "cs":
            return (1 - rho[0]) * np.eye(k) + rho[0]
        lags = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
        return (rho[0] ** lags) if self.kind == "ar1" else np.concatenate([[1.0], rho])[lags]

    def lambda_(self, phi: np.ndarray) -> np.ndarray:
        """The k x k lower Cholesky factor of D R D (zero columns where it is singular)."""
        s = self.sds(phi)
        if self.kind == "diag":
            return np.diag(s)
        if self.kind == "ar1":
            L = _ar1_factor(self.k, float(self.correlations(phi)[0]))
        elif self.kind == "cs":
            L = _cs_factor(self.k, float(self.correlations(phi)[0]))
        else:
            L = psd_cholesky_lower(self.correlation_matrix(phi))
        return s[:, None] * L

    # ---- the scale people read: standard deviations and ρ -----------------
    def natural_names(self, group: str, cnames: list[str]) -> list[str]:
        """lme4-style profile names: ``sd_<col>|g`` (``sd|g`` if shared), ``rho|g``, ``rho<lag>|g``."""
        sds = [f"sd|{group}"] if self.hom else [f"sd_{c}|{group}" for c in cnames]
        if self.kind == "toep":
            return sds + [f"rho{lag}|{group}" for lag in range(1, self.k)]
        return sds + ([f"rho|{group}"] if self.ncor else [])

    def to_natural(self, phi: np.ndarray, sigma: float) -> np.ndarray:
        """φ -> (σ s, ρ): standard deviations on the data's scale and the correlation parameters."""
        phi = np.asarray(phi, dtype=float)
        return np.concatenate([sigma * phi[: self.nsd], self.correlations(phi)])

    def from_natural(self, values: np.ndarray, sigma: float) -> np.ndarray:
        """(sd, ρ) -> φ; ValueError for correlations outside the structure's range."""
        values = np.asarray(values, dtype=float)
        rho = values[self.nsd :]
        if self.kind == "cs":
            a = 1.0 / (self.k - 1)
            t = 2 * (rho + a) / (1 + a) - 1
        elif self.kind == "toep":
            t = partial_autocorrelations(np.concatenate([[1.0], rho]))
        else:
            t = rho
        if np.any(np.abs(t) > 1):
            raise ValueError(f"correlations {rho} are outside the range of {self.kind}")
        return np.concatenate([values[: self.nsd] / sigma, phi_of(t)])

    def natural_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """[0, ∞) for standard deviations; (-1/(k-1), 1) for cs's ρ, (-1, 1) otherwise."""
        low = -1.0 / (self.k - 1) if self.kind == "cs" else -1.0
        sd = self.is_sd()
        return np.where(sd, 0.0, low), np.where(sd, np.inf, 1.0)

    def on_boundary(self, phi: np.ndarray) -> np.ndarray:
        """Per φ element: a standard deviation at 0 or a correlation transform at its limit (|t| ≈ 1)."""
        phi = np.asarray(phi, dtype=float)
        t = rho_of(phi[self.nsd :])
        return np.concatenate(
            [np.abs(phi[: self.nsd]) < BOUNDARY_TOL, np.abs(t) > 1 - BOUNDARY_TOL]
        )

    def describe(self, phi: np.ndarray) -> dict[str, float]:
        """The structure's correlation parameters by name (``rho``, ``rho1``, ...)."""
        rho = self.correlations(np.asarray(phi, dtype=float))
        if self.kind == "toep":
            return {f"rho{lag}": float(r) for lag, r in enumerate(rho, start=1)}
        return {"rho": float(rho[0])} if self.ncor else {}


def structure_for(name: str, hom: bool | None, k: int, source: str) -> CovStructure | None:
    """The CovStructure of a term written ``name(...)`` with ``k`` columns (None for ``us``).

    Raises
    ------
    FormulaError
        For an unknown name, ``hom=`` that the structure does not have or that
        contradicts its name, and ``cs``/``ar1``/``toep`` with one column.
    """
    kind, fixed = STRUCTURE_ALIASES.get(name, (name, None))
    if kind not in KNOWN_STRUCTURES:
        raise FormulaError(
            f"unknown covariance structure {name!r} in {source!r}; known: "
            + ", ".join([*KNOWN_STRUCTURES, *STRUCTURE_ALIASES])
        )
    if kind == "us":
        if hom is not None:
            raise FormulaError(
                f"hom= in {source!r}: the unstructured covariance us() has no homogeneous form; "
                "use diag(..., hom=TRUE), cs(..., hom=TRUE), ar1() or toep(..., hom=TRUE)"
            )
        return None
    if fixed is not None and hom is not None and hom != fixed:
        raise FormulaError(
            f"hom={hom} in {source!r} contradicts {name}(), which is {kind} with hom={fixed}"
        )
    if kind != "diag" and k < 2:
        raise FormulaError(
            f"{name}() in {source!r} has one column; a correlation structure needs at least two "
            "(write the term as (1 | g) or diag(...) for a single variance)"
        )
    hom = fixed if fixed is not None else (DEFAULT_HOM[kind] if hom is None else hom)
    return CovStructure(kind, k, bool(hom))
