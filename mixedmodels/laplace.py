"""Laplace fits of models whose response is not an exponential family with known scale.

For the negative binomial families (unknown shape), the beta family and
zero-inflated counts, the log density ℓ(y | η, ·) is used itself.  For fixed
θ, β, the zero-inflation coefficients β_zi and the dispersion d, the
conditional modes ũ maximise

    h(u) = Σᵢ wᵢ ℓᵢ(yᵢ | ηᵢ) − ‖u‖²/2,   η = o + Xβ + ZΛθ u,

by Newton's method (PIRLS is the exponential-family special case): with
A = ZΛθ, gᵢ = wᵢ ∂ℓᵢ/∂ηᵢ and Wᵢ = −wᵢ ∂²ℓᵢ/∂ηᵢ²,

    ∇h = A'g − u,   −∇²h = H(u) = A'WA + I,   u ← u + t H⁻¹∇h,

with t halved while h does not increase.  W is the observed curvature, so
this is Newton's method on h itself; where some Wᵢ are negative (zero
inflation, beta, nbinom1) and H is then not positive definite, the step
uses max(W, 0), which keeps H positive definite.  The Laplace approximation is

    −2 log L(θ, β, β_zi, d) ≈ −2 Σᵢ wᵢ ℓᵢ(ũ) + ‖ũ‖² + log|H(ũ)|,

with H at the observed curvature, the exact Hessian of the joint log
density in u that TMB (glmmTMB) uses; PIRLS's Fisher weights would give
lme4's value for glmer.nb, which differs in the log-determinant.

In the fast stage β joins u in the Newton iteration (the columns of X are
appended to A, unpenalised) and log|H| is that of the u block.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .errors import EVALUATION_FAILURES, CholeskyFailed, ConvergenceError
from .zeroinfl import zi_eta_derivatives, zi_logpdf

__all__ = [
    "ZLambda",
    "SymmetricFactor",
    "system_matrix",
    "newton_modes",
    "log_density",
    "MAX_HALVINGS",
]

MAX_HALVINGS = 30
DENSE_UP_TO = 1500
"""Systems of at most this order are factored densely, larger ones by a sparse LU."""


class ZLambda:
    """ZΛθ stored by rows: row i has its K nonzeros ``vals[i]`` in columns ``cols[i]`` (n x K each).

    Every random-effects term puts k entries in each row, so the pattern is
    fixed; only the values change with θ.  Products are bincounts over the
    pattern: no sparse-matrix objects on the hot path.
    """

    def __init__(self, reterms):
        for r in reterms:
            if r.has_factor:
                raise ConvergenceError(
                    f"the term {r.name!r} has a known covariance, which these families do not support"
                )
        starts = np.cumsum([0] + [r.q for r in reterms])
        self.cols = np.hstack(
            [r.refs[:, None] * r.k + np.arange(r.k) + s for r, s in zip(reterms, starts)]
        )
        self.q = int(starts[-1])
        self.vals = np.zeros(self.cols.shape)

    def at(self, reterms) -> ZLambda:
        """Refresh the values for the terms' current λ (in place); returns self."""
        self.vals = np.hstack([r.z @ r.lambda_ for r in reterms])
        return self

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.cols), self.q)

    def __matmul__(self, u: np.ndarray) -> np.ndarray:
        """ZΛu."""
        return np.einsum("ik,ik->i", self.vals, u[self.cols])

    def rmatvec(self, g: np.ndarray) -> np.ndarray:
        """(ZΛ)'g."""
        return np.bincount(self.cols.ravel(), (self.vals * g[:, None]).ravel(), minlength=self.q)

    def gram(self, W: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """(ZΛ)' diag(W) ZΛ: dense up to DENSE_UP_TO columns, sparse beyond."""
        K = self.cols.shape[1]
        rows = np.repeat(self.cols, K, axis=1).ravel()
        cols = np.tile(self.cols, (1, K)).ravel()
        vals = (np.repeat(self.vals, K, axis=1) * np.tile(self.vals, (1, K)) * W[:, None]).ravel()
        if self.q <= DENSE_UP_TO:
            flat = np.bincount(rows * self.q + cols, vals, minlength=self.q * self.q)
            return flat.reshape(self.q, self.q)
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.q, self.q))

    def cross(self, WX: np.ndarray) -> np.ndarray:
        """(ZΛ)' WX for a dense n x p matrix WX."""
        out = np.zeros((self.q, WX.shape[1]))
        for a in range(self.cols.shape[1]):
            np.add.at(out, self.cols[:, a], self.vals[:, a, None] * WX)
        return out


class SymmetricFactor:
    """Cholesky factor of a symmetric positive definite H (dense, or sparse LU above DENSE_UP_TO)."""

    def __init__(self, H):
        self.dense = H.shape[0] <= DENSE_UP_TO
        try:
            if self.dense:
                Hd = H.toarray() if sp.issparse(H) else np.asarray(H)
                self.c = sla.cho_factor(Hd, lower=True, check_finite=False)
                self.logdet = 2.0 * float(np.log(np.diag(self.c[0])).sum())
            else:
                self.lu = sp.linalg.splu(
                    sp.csc_matrix(H), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0
                )
                d = self.lu.U.diagonal()
                if np.any(d <= 0):
                    raise np.linalg.LinAlgError("not positive definite")
                self.logdet = float(np.log(d).sum())
        except (np.linalg.LinAlgError, ValueError, RuntimeError) as exc:
            raise CholeskyFailed(f"the Laplace Hessian is not positive definite ({exc})") from None
        if not np.isfinite(self.logdet):
            raise CholeskyFailed("the Laplace Hessian has a non-finite log-determinant")

    def solve(self, b: np.ndarray) -> np.ndarray:
        return sla.cho_solve(self.c, b, check_finite=False) if self.dense else self.lu.solve(b)


# ---- the response model --------------------------------------------------------------------
def zi_eta(m) -> np.ndarray | None:
    """η_zi = X_zi β_zi, or None without zero inflation."""
    return None if m.zi is None else m.zi.X @ m.beta_zi


def log_density(m, eta: np.ndarray) -> np.ndarray:
    """wᵢ ℓᵢ(yᵢ | ηᵢ) at the model's dispersion and zero inflation."""
    f, eta_zi = m.family, zi_eta(m)
    if eta_zi is None:
        return m.wt * f.logpdf(m.y, eta)
    return m.wt * zi_logpdf(f, m.y, eta, eta_zi)


def curvature(m, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wᵢ ∂ℓᵢ/∂ηᵢ, −wᵢ ∂²ℓᵢ/∂ηᵢ²): the gradient and observed curvature in η."""
    f, eta_zi = m.family, zi_eta(m)
    if eta_zi is None:
        d1, d2 = f.eta_derivatives(m.y, eta)
    else:
        d1, d2 = zi_eta_derivatives(f, m.y, eta, eta_zi)
    return m.wt * d1, -m.wt * d2


# ---- Newton's method for the modes ------------------------------------------------------------
def system_matrix(A: ZLambda, X: np.ndarray | None, W: np.ndarray):
    """H = [A X]' diag(W) [A X] + diag(1_q, 0_p) (X None: the u block alone).

    Dense when its order is at most DENSE_UP_TO, sparse otherwise; the
    blocks A'WA, A'WX and X'WX are formed separately.
    """
    q = A.q
    uu = A.gram(W)
    uu = uu + (np.eye(q) if isinstance(uu, np.ndarray) else sp.identity(q, format="csr"))
    if X is None:
        return uu
    WX = W[:, None] * X
    ux, xx = A.cross(WX), X.T @ WX
    if isinstance(uu, np.ndarray) and q + X.shape[1] <= DENSE_UP_TO:
        return np.block([[uu, ux], [ux.T, xx]])
    return sp.bmat(
        [[uu, sp.csr_matrix(ux)], [sp.csr_matrix(ux.T), sp.csr_matrix(xx)]], format="csc"
    )


def newton_modes(m, fast: bool, maxiter: int = 100, tol: float = 1e-11) -> float:
    """Move m.u (and m.beta if ``fast``) to the conditional modes; return the Laplace objective.

    Starts from the current modes, then from u = 0, then (fast) from the
    GLM's β, as PIRLS does; the last failure propagates.
    """
    zeros = np.zeros_like(m.u)
    starts = [None, (m.beta.copy(), zeros)]
    if fast:
        starts.append((m.beta0.copy(), zeros))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for i, start in enumerate(starts):
            if start is not None:
                m.beta, m.u = start[0].copy(), start[1].copy()
            try:
                return _newton(m, fast, maxiter, tol)
            except EVALUATION_FAILURES:
                if i == len(starts) - 1:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


def _newton(m, fast: bool, maxiter: int, tol: float) -> float:
    A = m.zlambda.at(m.reterms)
    q = A.shape[1]
    X = m.X if fast else None
    fixed = m.offset if fast else m.offset + m.X @ m.beta
    v = np.concatenate([m.u, m.beta]) if fast else m.u.copy()
    penalty = np.concatenate([np.ones(q), np.zeros(len(v) - q)])

    def linear(v):
        return fixed + A @ v[:q] + (X @ v[q:] if fast else 0.0)

    def pdev(v):
        eta = linear(v)
        return -2.0 * float(log_density(m, eta).sum()) + float(v[:q] @ v[:q]), eta

    value, eta = pdev(v)
    if not np.isfinite(value):
        raise ConvergenceError("Newton: the log density is not finite at the starting modes")
    for _ in range(maxiter):
        g, W = curvature(m, eta)
        grad = np.concatenate([A.rmatvec(g), X.T @ g]) if fast else A.rmatvec(g)
        grad -= penalty * v
        step = _newton_factor(A, X, W).solve(grad)
        decrement = float(grad @ step)
        value, eta, v = _line_search(pdev, v, step, value, eta)
        if decrement < tol:
            break
    else:
        raise ConvergenceError(
            f"Newton's method for the modes did not converge in {maxiter} iterations"
        )
    m.u = v[:q].copy()
    if fast:
        m.beta = v[q:].copy()
    _, W = curvature(m, eta)
    m.laplace_factor = SymmetricFactor(system_matrix(A, None, W))
    return value + m.laplace_factor.logdet


def _newton_factor(A: ZLambda, X: np.ndarray | None, W: np.ndarray) -> SymmetricFactor:
    """The factor of H at the observed curvature (Newton's step), or at max(W, 0) where that is indefinite."""
    if W.min() >= 0.0:
        return SymmetricFactor(system_matrix(A, X, W))
    try:
        return SymmetricFactor(system_matrix(A, X, W))
    except CholeskyFailed:
        return SymmetricFactor(system_matrix(A, X, np.maximum(W, 0.0)))


def _line_search(pdev, v, step, value, eta):
    """The full step, or the first halving that does not raise pdev; the old point if none does."""
    t = 1.0
    for _ in range(MAX_HALVINGS):
        new = v + t * step
        new_value, new_eta = pdev(new)
        if np.isfinite(new_value) and new_value <= value + 1e-10 * (abs(value) + 1.0):
            return new_value, new_eta, new
        t *= 0.5
    return value, eta, v


# ---- standard errors ----------------------------------------------------------------------------
HESSIAN_SHIFT = 10.0
"""Coordinates are offset by this before numderiv's relative steps, so each gets a step of about 1e-3."""


def parameter_covariance(objective, x: np.ndarray) -> np.ndarray:
    """Covariance of the estimates: 2 H⁻¹, H the Hessian of −2 log L at the optimum ``x``.

    As glmmTMB's ``sdreport`` (the inverse Hessian of the negative log
    likelihood in all its outer parameters), here by central second
    differences (:func:`mixedmodels.numderiv.hessian`, one level: the
    objective is smooth to about 1e-11 and steps of about 1e-3 keep both
    truncation and rounding below 1e-5 relative).  Where H is singular (a
    direction along which the objective is flat to within SINGULAR_CURVATURE
    of its largest curvature, e.g. a zero-inflation probability tending to
    0), the rows and columns of the parameters in that direction are NaN:
    their standard errors do not exist, while the others are those of the
    identified directions.
    """
    from .numderiv import hessian

    x = np.asarray(x, dtype=float)
    H = hessian(lambda z: objective(z - HESSIAN_SHIFT), x + HESSIAN_SHIFT, rel=1e-4, levels=1)
    values, vectors = np.linalg.eigh(0.5 * (H + H.T))
    flat = values <= SINGULAR_CURVATURE * max(values.max(), 1.0)
    kept = vectors[:, ~flat]
    cov = 2.0 * (kept / values[~flat]) @ kept.T
    unidentified = np.any(np.abs(vectors[:, flat]) > 1e-3, axis=1)
    cov[unidentified, :] = np.nan
    cov[:, unidentified] = np.nan
    return cov


SINGULAR_CURVATURE = 1e-8
"""Curvatures below this times the largest count as flat in :func:`parameter_covariance`."""
