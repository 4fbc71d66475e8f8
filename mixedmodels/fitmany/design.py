"""What every response shares: the formula's structure, built once, and the dense A blocks.

For a formula ``~ fixed + (random)`` and the samples, :class:`SharedDesign`
holds the model structure (complete cases of the design columns, X, the
random-effects terms, θ's layout) with a placeholder response.  When the
random effects are few (q + p ≤ :data:`DENSE_MAX`, true of designs such as
donors and batches of an expression study) it also holds

    A₀ = [Z X]'[Z X]   ((q + p) × (q + p), dense)

and the map from θ to the entries of Λθ.  A response y then adds only the
column [Z X]'y and y'y, which one product [Z X]'Y gives for a whole chunk
(:meth:`SharedDesign.products`), and each evaluation of the profiled
objective is one dense Cholesky factor of

    M(θ) = D'AD + diag(I_q, 0),   D = blockdiag(Λθ, I_{p+1}),   A = [Z X y]'[Z X y],

whose diagonal gives log|L_Z|², log|L_X|² and r²(θ) (see :mod:`mixedmodels.lmm`).
This is the dense form of the blocked factor of :mod:`mixedmodels.blocks`,
cheaper than the blocked one when q is small because it is one LAPACK call.
Larger designs, known covariances and generalised families fit through the
model classes themselves (``refit``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..errors import CholeskyFailed, DataError, FormulaError
from ..inference.params import variance_layout
from ..results import group_means
from ..structure import ModelStructure, build_structure
from ..thetalayout import lambdas
from ..threads import POLICY

__all__ = [
    "SharedDesign",
    "DenseKernel",
    "DENSE_MAX",
    "moment_start",
    "moment_starts",
    "ordered_sum",
    "quiet",
]

DENSE_MAX = 400
"""Largest q + p (random effects plus fixed effects) for the dense kernel."""

_PLACEHOLDER = "fit_many_response"


def _placeholder(columns: pd.Index) -> str:
    name, k = _PLACEHOLDER, 0
    while name in columns:
        k += 1
        name = f"{_PLACEHOLDER}_{k}"
    return name


def _right_side(formula: str) -> str:
    """The formula's right-hand side; a response on the left is refused (it comes from ``responses``)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise FormulaError(
            f"fit_many needs a one-sided formula such as '~ 1 + condition + (1|donor)', got {formula!r}"
        )
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if lhs:
        raise FormulaError(
            f"the formula {formula!r} has a response ({lhs!r}); fit_many takes the responses from "
            "responses=: give the right-hand side only, e.g. '~ 1 + condition + (1|donor)'"
        )
    return rhs


class SharedDesign:
    """The structure of ``~ rhs`` on ``samples`` (complete design rows), and its dense kernel if small.

    Attributes
    ----------
    structure : ModelStructure
    rows : ndarray of int
        Positions, in ``samples``, of the rows the design uses.
    frame : DataFrame
        Those rows of the used columns (what subsets for missing responses are cut from).
    kernel : DenseKernel or None
    """

    def __init__(
        self,
        rhs: str,
        samples: pd.DataFrame,
        *,
        family: Any = None,
        reml: bool = False,
        contrasts: Any = None,
    ):
        self.rhs, self.family, self.reml, self.contrasts = rhs, family, bool(reml), contrasts
        self.response_name = _placeholder(samples.columns)
        filler = np.random.default_rng(0).standard_normal(len(samples))
        data = samples.assign(**{self.response_name: filler})  # the user's frame is not touched
        self.structure: ModelStructure = build_structure(
            f"{self.response_name} ~ {rhs}",
            data,
            contrasts=contrasts,
            strict_levels=family is None,
        )
        self.rows = self.structure.frame.rows
        self.frame = self.structure.frame.frame.drop(columns=[self.response_name])
        self.layout = variance_layout(SimpleNamespace(reterms=self.structure.reterms))
        dense_ok = not any(r.has_factor for r in self.structure.reterms)
        size = sum(r.q for r in self.structure.reterms) + self.structure.fe.rank
        kernel = (
            DenseKernel(self.structure, self.reml)
            if family is None and dense_ok and size <= DENSE_MAX
            else None
        )
        self.kernel = (
            kernel if kernel is not None and kernel.linear_in_theta(self.structure) else None
        )

    @property
    def formula(self) -> str:
        return f"{self.response_name} ~ {self.rhs}"

    @property
    def nobs(self) -> int:
        return self.structure.nobs

    @property
    def coefnames(self) -> list[str]:
        return self.structure.fe.coefnames

    @property
    def ntheta(self) -> int:
        return len(self.structure.theta_perm)

    @functools.cached_property
    def lowerbd(self) -> np.ndarray:
        """θ's lower bounds in lme4's order (0 for a standard deviation, -∞ otherwise); do not modify."""
        bounds = np.concatenate([r.lowerbd() for r in self.structure.reterms])
        return bounds[self.structure.theta_perm]

    @functools.cached_property
    def theta_names(self) -> list[str]:
        """θ's names in lme4's order."""
        names = [n for r in self.structure.reterms for n in r.theta_names()]
        return [names[i] for i in self.structure.theta_perm]

    def subset(self, mask: np.ndarray) -> tuple[SharedDesign, np.ndarray]:
        """The design on the rows where ``mask`` is True, and those rows' positions in this design.

        A response with missing values is a model of its complete rows: its
        own X, levels and A blocks (a level may vanish, a column of X may
        become aliased), built from the formula again.
        """
        with quiet():  # a rank-deficient subset is reported by its NaN β
            sub = SharedDesign(
                self.rhs,
                self.frame.iloc[np.flatnonzero(mask)],
                family=self.family,
                reml=self.reml,
                contrasts=self.contrasts,
            )
        return sub, np.flatnonzero(mask)[sub.rows]

    def data_with(self, y: np.ndarray) -> pd.DataFrame:
        """The design's rows with ``y`` as the placeholder response (for a model class)."""
        return self.frame.assign(**{self.response_name: y})


@contextlib.contextmanager
def quiet():
    """Warnings off in the main thread (a row's verdict and message say it all).

    ``warnings.catch_warnings`` saves and restores the process's filters, so
    entered from several threads at once it could leave them off for good:
    in worker threads the (rare) warnings are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def moment_start(structure: ModelStructure, y: np.ndarray) -> np.ndarray:
    """lme4's starting θ for a response: √(v_g / v_e) when every term is a random intercept, else λ = I.

    v_g is the variance of y's group means over observations and
    v_e = var(y) - Σ v_g (as :class:`~mixedmodels.lmm.LinearMixedModel`
    starts, so a fit here follows the same optimizer path as a single fit).
    """
    reterms, perm = structure.reterms, structure.theta_perm
    theta = np.concatenate([r.initial_theta() for r in reterms])[perm]
    if not all(r.cnames == ["(Intercept)"] and not r.has_factor for r in reterms):
        return theta
    v = np.array([np.var(group_means(y, r.refs, r.nlevels)[r.refs], ddof=1) for r in reterms])
    v_e = np.var(y, ddof=1) - v.sum()
    return np.sqrt(v / v_e)[perm] if v_e > 0 else theta


def ordered_sum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Σ along ``axis`` in index order (the last element of a cumulative sum).

    ``np.sum`` (pairwise, with SIMD blocks) and BLAS products may add in an
    order that depends on the other axes' sizes; a cumulative sum cannot.
    Stacked computations use this so that a response's numbers do not
    depend on how many others share its stack (its chunk).
    """
    if a.shape[axis] == 0:
        return np.zeros(np.delete(a.shape, axis % a.ndim))
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


def _ordered_var(Yt: np.ndarray) -> np.ndarray:
    """Variance (ddof = 1) of each row of Yt, with :func:`ordered_sum` (two passes)."""
    n = Yt.shape[1]
    centred = Yt - (ordered_sum(Yt) / n)[:, None]
    return ordered_sum(centred**2) / (n - 1)


def moment_starts(structure: ModelStructure, Y: np.ndarray) -> np.ndarray:
    """:func:`moment_start` of every column of Y (shape (n, R)) at once: shape (R, k).

    The same formula, each response's numbers from its own values only (the
    variances by :func:`ordered_sum`), so a start does not depend on the
    other columns; it equals :func:`moment_start` to rounding.  The variance
    over observations of the level means m_l is Σ_l n_l (m_l − ȳ)² / (n − 1),
    with n_l the level counts and ȳ = Σ_l n_l m_l / n.
    """
    reterms, perm = structure.reterms, structure.theta_perm
    default = np.concatenate([r.initial_theta() for r in reterms])[perm]
    Yt = np.ascontiguousarray(np.asarray(Y, dtype=float).T)
    if not all(r.cnames == ["(Intercept)"] and not r.has_factor for r in reterms):
        return np.tile(default, (len(Yt), 1))
    v = np.empty((len(Yt), len(reterms)))
    n = Yt.shape[1]
    for t, r in enumerate(reterms):
        counts = np.bincount(r.refs, minlength=r.nlevels).astype(float)
        used = counts > 0
        sums = np.array([np.bincount(r.refs, y, minlength=r.nlevels)[used] for y in Yt])
        means, counts = sums / counts[used], counts[used]
        centred = means - (ordered_sum(means * counts) / n)[:, None]
        v[:, t] = ordered_sum(counts * centred**2) / (n - 1)
    v_e = _ordered_var(Yt) - ordered_sum(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        theta = np.sqrt(v / v_e[:, None])[:, perm]
    return np.where((v_e > 0)[:, None], theta, default)


class DenseKernel:
    """A₀ = [Z X]'[Z X], the θ → Λ map and the profiled objective of one response.

    When the first term (the one with most levels) is scalar, its block of
    M(θ) is diagonal, m₁ = λ₁²·diag(Z₁'Z₁) + 1, and is eliminated first:
    the rest R = (other terms, X, y) is factored from the Schur complement

        S = D_R'(A_RR - λ₁² A_R1 diag(1/m₁) A_1R)D_R + diag(I_qB, 0),

    a matrix of size qB + p + 1 (7 × 7 for donors and batches with two fixed
    effects), with log|L_Z|² = Σ log m₁ + log|L_B|² (the blocked algorithm
    of :mod:`mixedmodels.blocks` with a dense block B).  Read-only once
    built: workers (threads of one process included) share it.
    """

    def __init__(self, structure: ModelStructure, reml: bool):
        reterms, X = structure.reterms, structure.fe.X
        Z = np.hstack([r.dense_Z() for r in reterms])
        self.ZX = np.ascontiguousarray(np.hstack([Z, X]))
        self.A0 = _gram(self.ZX)
        self.q, self.p, self.n = Z.shape[1], X.shape[1], X.shape[0]
        self.reml = reml
        self.dof = self.n - self.p if reml else self.n
        probe = lambdas(
            reterms, structure.theta_perm, np.arange(1.0, len(structure.theta_perm) + 1)
        )
        Lam = sla.block_diag(*(np.kron(np.eye(r.nlevels), lam) for r, lam in zip(reterms, probe)))
        first = reterms[0]
        self.q1 = first.q if first.is_scalar else 0
        self.first_theta = int(probe[0][0, 0]) - 1
        self.a1 = np.diag(self.A0)[: self.q1].copy()
        rest = Lam[self.q1 :, self.q1 :]
        self.lam_rows, self.lam_cols = np.nonzero(rest)
        self.lam_theta = rest[self.lam_rows, self.lam_cols].astype(np.intp) - 1
        self.diagonal = bool(np.array_equal(self.lam_rows, self.lam_cols))
        self.qB = self.q - self.q1
        self.size = self.qB + self.p + 1  # rows of the matrix factored per evaluation
        self.b_diag = np.arange(self.qB) * (self.size + 1)

    def linear_in_theta(self, structure: ModelStructure) -> bool:
        """True if every λ entry is a θ element (the map read off a probe holds at a random θ).

        Covariance structures whose λ is a nonlinear function of θ (AR(1),
        compound symmetry) are left to the model classes.
        """
        theta = np.random.default_rng(1).uniform(0.2, 1.5, len(structure.theta_perm))
        lams = lambdas(structure.reterms, structure.theta_perm, theta)
        Lam = sla.block_diag(
            *(np.kron(np.eye(r.nlevels), lam) for r, lam in zip(structure.reterms, lams))
        )
        if self.q1 and not np.allclose(np.diag(Lam)[: self.q1], theta[self.first_theta]):
            return False
        mine = np.zeros((self.qB, self.qB))
        mine[self.lam_rows, self.lam_cols] = theta[self.lam_theta]
        return bool(np.allclose(mine, Lam[self.q1 :, self.q1 :], rtol=0, atol=1e-14))

    def products(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[Z X]'Y and y'y of every column of Y (one matrix product for the chunk)."""
        return self.ZX.T @ Y, np.einsum("ij,ij->j", Y, Y)

    def system(self, zxy: np.ndarray, yy: float) -> tuple[np.ndarray, np.ndarray]:
        """(A_R1, A_RR) of one response: A = [Z X y]'[Z X y] without its diagonal first block."""
        q1 = self.q1
        A = np.empty((self.size, self.size))
        A[:-1, :-1] = self.A0[q1:, q1:]
        A[:-1, -1] = A[-1, :-1] = zxy[q1:]
        A[-1, -1] = yy
        A_R1 = np.empty((self.size, q1))
        A_R1[:-1] = self.A0[q1:, :q1]
        A_R1[-1] = zxy[:q1]
        return A_R1, A

    def factor(self, theta: np.ndarray, system) -> tuple[np.ndarray, float]:
        """Lower Cholesky factor of S(θ) and Σ log m₁ (0 when nothing is eliminated)."""
        A_R1, A = system
        if self.q1:
            lam2 = theta[self.first_theta] ** 2
            m1 = lam2 * self.a1 + 1.0
            C = A - (A_R1 * (lam2 / m1)) @ A_R1.T
            logm1 = float(np.log(m1).sum())
        else:
            C, logm1 = A.copy(), 0.0
        if self.diagonal:
            d = np.ones(self.size)
            d[self.lam_rows] = theta[self.lam_theta]
            C *= d[:, None] * d
        else:
            D = np.eye(self.size)
            D[self.lam_rows, self.lam_cols] = theta[self.lam_theta]
            C = D.T @ C @ D
        C.flat[self.b_diag] += 1.0
        L, info = sla.lapack.dpotrf(C, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise CholeskyFailed(
                f"leading minor {info} of the penalised system is not positive definite"
            )
        return L, logm1

    def objective_of(self, L: np.ndarray, logm1: float) -> float:
        """Profiled deviance or REML criterion (mixedmodels.lmm's formulas)."""
        logs = np.log(L.diagonal())
        qB = self.qB
        ld = logm1 + 2.0 * logs[:qB].sum()
        if self.reml:
            ld += 2.0 * logs[qB : qB + self.p].sum()
        r2 = L[-1, -1] ** 2
        value = ld + self.dof * (1.0 + math.log(2.0 * math.pi * r2 / self.dof))
        if not math.isfinite(value):
            raise CholeskyFailed("the profiled objective is not finite at this θ")
        return float(value)

    def objective(self, theta: np.ndarray, system) -> float:
        return self.objective_of(*self.factor(theta, system))

    def estimates(self, theta: np.ndarray, system) -> dict[str, Any]:
        """Objective, σ, β and their standard errors at θ."""
        L, logm1 = self.factor(theta, system)
        objective = self.objective_of(L, logm1)
        qB, p = self.qB, self.p
        Lx = L[qB : qB + p, qB : qB + p]
        beta = sla.solve_triangular(
            Lx, L[-1, qB : qB + p], lower=True, trans="T", check_finite=False
        )
        Linv = sla.solve_triangular(Lx, np.eye(p), lower=True, check_finite=False)
        sigma = math.sqrt(L[-1, -1] ** 2 / self.dof)
        se = sigma * np.sqrt(np.einsum("ij,ij->j", Linv, Linv))
        return {"objective": objective, "sigma": sigma, "beta": beta, "se": se}


SMALL_GRAM = 1e8
"""Multiply-adds below which [Z X]'[Z X] is formed with one BLAS thread."""


def _gram(ZX: np.ndarray) -> np.ndarray:
    """ZX'ZX; with one BLAS thread when small (on a busy machine threads then cost 100× the product)."""
    n, m = ZX.shape
    if n * m * m > SMALL_GRAM:
        return ZX.T @ ZX
    with POLICY.single_thread():
        return ZX.T @ ZX


def check_enough(n_complete: int, design: SharedDesign) -> None:
    """DataError unless the complete observations exceed β's and θ's count by at least two."""
    need = design.structure.fe.rank + design.ntheta + 2
    if n_complete < need:
        raise DataError(
            f"too few complete observations ({n_complete}; this model needs at least {need})"
        )
