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

from .errors import EVALUATION_FAILURES, CholeskyFailed, ConvergenceError, MixedModelsError
from .zeroinfl import zi_eta_derivatives, zi_logpdf, zi_nuisance_derivatives

__all__ = [
    "ZLambda",
    "SymmetricFactor",
    "system_matrix",
    "newton_modes",
    "log_density",
    "laplace_gradient",
    "gradient_available",
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
            if r.has_factor:  # the model checks first, naming the family
                raise MixedModelsError(f"the term on {r.name!r} has a known covariance matrix")
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
        """(ZΛ)' WX for a dense n x p matrix WX (a sparse product: ZΛ's pattern is a CSR's)."""
        n, K = self.cols.shape
        indptr = np.arange(0, n * K + 1, K)
        A = sp.csr_matrix((self.vals.ravel(), self.cols.ravel(), indptr), shape=(n, self.q))
        return np.asarray(A.T @ WX)


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
MODEL = object()
"""Default of ``eta_zi`` arguments: the model's own X_zi β_zi."""


def zi_eta(m) -> np.ndarray | None:
    """η_zi = X_zi β_zi, or None without zero inflation."""
    return None if m.zi is None else m.zi.X @ m.beta_zi


def _zi(m, eta_zi):
    return zi_eta(m) if eta_zi is MODEL else eta_zi


def log_density(m, eta: np.ndarray, eta_zi=MODEL, dispersion=None) -> np.ndarray:
    """wᵢ ℓᵢ(yᵢ | ηᵢ, η_zi,ᵢ) at the model's (or the given) dispersion and zero inflation."""
    return m.wt * _logpdf(m, eta, _zi(m, eta_zi), dispersion)


def _logpdf(m, eta, eta_zi, dispersion=None) -> np.ndarray:
    """Unweighted ℓᵢ (eta_zi None: no zero inflation)."""
    if eta_zi is None:
        return m.family.logpdf(m.y, eta, dispersion)
    return zi_logpdf(m.family, m.y, eta, eta_zi, dispersion)


def eta_derivatives(m, eta, eta_zi=MODEL, dispersion=None) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted (∂ℓᵢ/∂ηᵢ, ∂²ℓᵢ/∂ηᵢ²), each of shape (n,)."""
    f, eta_zi = m.family, _zi(m, eta_zi)
    if eta_zi is None:
        return f.eta_derivatives(m.y, eta, dispersion)
    return zi_eta_derivatives(f, m.y, eta, eta_zi, dispersion)


def curvature(m, eta: np.ndarray, eta_zi=MODEL) -> tuple[np.ndarray, np.ndarray]:
    """(wᵢ ∂ℓᵢ/∂ηᵢ, −wᵢ ∂²ℓᵢ/∂ηᵢ²): the gradient and observed curvature in η."""
    d1, d2 = eta_derivatives(m, eta, eta_zi)
    return m.wt * d1, -m.wt * d2


def zi_curvature(m, eta: np.ndarray, eta_zi: np.ndarray):
    """(wᵢ ∂ℓᵢ/∂zᵢ, −wᵢ ∂²ℓᵢ/∂zᵢ², −wᵢ ∂²ℓᵢ/∂ηᵢ∂zᵢ) in the zero-inflation predictor z = η_zi."""
    gz, d2z, cross = zi_nuisance_derivatives(m.family, m.y, eta, eta_zi)
    return m.wt * gz, -m.wt * d2z, -m.wt * cross


# ---- Newton's method for the modes ------------------------------------------------------------
def system_matrix(A: ZLambda, X: np.ndarray | None, W: np.ndarray, zi=None):
    """H = [A X]' diag(W) [A X] + diag(1_q, 0_p) (X None: the u block alone).

    With ``zi = (X_zi, W_zz, W_ηz)`` the unknowns are (u, β, β_zi) and H the
    negative Hessian of h in them: the fixed-effects design is then
    X̃ = [X 0] in η and [0 X_zi] in z, with per-observation curvature
    [[W, W_ηz], [W_ηz, W_zz]].  Dense when its order is at most
    DENSE_UP_TO, sparse otherwise; the blocks A'WA, A'W̃X̃ and X̃'W̃X̃ are
    formed separately.
    """
    q = A.q
    uu = A.gram(W)
    uu = uu + (np.eye(q) if isinstance(uu, np.ndarray) else sp.identity(q, format="csr"))
    if X is None:
        return uu
    WX, xx = _fixed_blocks(X, W, zi)
    ux = A.cross(WX)
    if isinstance(uu, np.ndarray) and q + xx.shape[0] <= DENSE_UP_TO:
        return np.block([[uu, ux], [ux.T, xx]])
    return sp.bmat(
        [[uu, sp.csr_matrix(ux)], [sp.csr_matrix(ux.T), sp.csr_matrix(xx)]], format="csc"
    )


def _fixed_blocks(X: np.ndarray, W: np.ndarray, zi) -> tuple[np.ndarray, np.ndarray]:
    """(W̃X̃ as seen from η, X̃'W̃X̃): n x (p + p_zi) and (p + p_zi) square (see system_matrix)."""
    if zi is None:
        WX = W[:, None] * X
        return WX, X.T @ WX
    Xz, Wzz, Wez = zi
    WX = np.hstack([W[:, None] * X, Wez[:, None] * Xz])
    zz = Xz.T @ (Wzz[:, None] * Xz) + ZI_RIDGE * np.eye(Xz.shape[1])
    xx = np.block(
        [[X.T @ WX[:, : X.shape[1]], X.T @ WX[:, X.shape[1] :]], [WX[:, X.shape[1] :].T @ X, zz]]
    )
    return WX, 0.5 * (xx + xx.T)


ZI_RIDGE = 0.01
"""The fast stage's penalty ZI_RIDGE ‖β_zi‖² (on the −2 log L scale) when β_zi is found by Newton.

Maximising the penalised likelihood in β_zi drives a small zero-inflation
probability to 0 (η_zi → −∞, one unit per Newton step) where the Laplace
objective's optimum is finite; this ridge, negligible against an identified
coefficient's curvature (about 2/SE²), keeps such coefficients near −6 so
that Newton converges in a few steps and the joint stage starts where the
objective still has a slope.  The joint stage has no such penalty.
"""


def newton_modes(m, fast: bool, maxiter: int = 100, tol: float = 1e-11) -> float:
    """Move m.u (and m.beta, m.beta_zi if ``fast``) to the conditional modes; return the Laplace objective.

    Starts from the current modes, then from u = 0, then (fast) from the
    GLM's β and β_zi = 0, as PIRLS does; the last failure propagates.
    """
    zeros = np.zeros_like(m.u)
    starts = [None, (m.beta.copy(), zeros, m.beta_zi.copy())]
    if fast:
        starts.append((m.beta0.copy(), zeros, np.zeros_like(m.beta_zi)))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for i, start in enumerate(starts):
            if start is not None:
                m.beta, m.u, m.beta_zi = (s.copy() for s in start)
            try:
                return _newton(m, fast, maxiter, tol)
            except EVALUATION_FAILURES:
                if i == len(starts) - 1:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


def _newton(m, fast: bool, maxiter: int, tol: float) -> float:
    A = m.zlambda.at(m.reterms)
    q, p = A.shape[1], len(m.beta)
    X = m.X if fast else None
    Xz = m.zi.X if (fast and m.zi is not None) else None
    fixed = m.offset if fast else m.offset + m.X @ m.beta
    parts = [m.u, m.beta] if fast else [m.u]
    v = np.concatenate(parts + ([m.beta_zi] if Xz is not None else []))
    nzi = 0 if Xz is None else Xz.shape[1]
    penalty = np.concatenate([np.ones(q), np.zeros(p if fast else 0), np.full(nzi, ZI_RIDGE)])
    eta_zi_fixed = zi_eta(m)  # used only when β_zi is not an unknown

    def linear(v):
        eta = fixed + A @ v[:q] + (X @ v[q : q + p] if fast else 0.0)
        return eta, (eta_zi_fixed if Xz is None else Xz @ v[q + p :])

    def pdev(v):
        eta = linear(v)
        return -2.0 * float(log_density(m, *eta).sum()) + float(v @ (penalty * v)), eta

    value, eta = pdev(v)
    if not np.isfinite(value):
        raise ConvergenceError("Newton: the log density is not finite at the starting modes")
    for _ in range(maxiter):
        grad, factor = _newton_system(m, A, X, Xz, eta)
        grad -= penalty * v
        step = factor.solve(grad)
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
        m.beta = v[q : q + p].copy()
    if Xz is not None:
        m.beta_zi = v[q + p :].copy()
    _, W = curvature(m, *eta)
    m.laplace_factor = SymmetricFactor(system_matrix(A, None, W))
    return value + m.laplace_factor.logdet


def _newton_system(m, A, X, Xz, eta) -> tuple[np.ndarray, SymmetricFactor]:
    """The gradient of h at (η, η_zi) (penalty excluded) and the factor of Newton's matrix there."""
    g, W = curvature(m, *eta)
    if X is None:
        return A.rmatvec(g), _newton_factor(A, None, W)
    if Xz is None:
        return np.concatenate([A.rmatvec(g), X.T @ g]), _newton_factor(A, X, W)
    gz, Wzz, Wez = zi_curvature(m, *eta)
    grad = np.concatenate([A.rmatvec(g), X.T @ g, Xz.T @ gz])
    return grad, _newton_factor(A, X, W, (Xz, Wzz, Wez))


def _newton_factor(A: ZLambda, X: np.ndarray | None, W: np.ndarray, zi=None) -> SymmetricFactor:
    """The factor of H at the observed curvature (Newton's step), or of a positive definite substitute.

    Where the observed H is indefinite the step uses max(W, 0) (and with
    zero inflation max(W_zz, 0) and no cross curvature): any positive
    definite matrix gives an ascent direction, which the line search needs.
    """
    try:
        return SymmetricFactor(system_matrix(A, X, W, zi))
    except CholeskyFailed:
        if zi is not None:
            zi = (zi[0], np.maximum(zi[1], 0.0), np.zeros_like(zi[2]))
        return SymmetricFactor(system_matrix(A, X, np.maximum(W, 0.0), zi))


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


# ---- the gradient of the Laplace objective in (β, β_zi, log d) -------------------------------
FD_STEP = 1e-4
"""Step of the central differences of the per-observation derivatives (truncation ~h²/6 ≈ 2e-9, rounding ~1e-12)."""


def gradient_available(m) -> bool:
    """The analytic gradient needs H⁻¹ densely (the leverages): q at most DENSE_UP_TO."""
    return m.laplace_factor is not None and m.laplace_factor.dense


def laplace_gradient(m) -> np.ndarray:
    """∇F in (θ, β, β_zi, log d), F = −2 Σ wᵢℓᵢ(ũ) + ‖ũ‖² + log|H(ũ)|, H = A'WA + I, A = ZΛθ.

    At the modes ũ (call after ``newton_modes(m, fast=False)``).  By the
    envelope theorem the first two terms need no derivative of ũ; the third
    is tr(H⁻¹ dH) with dH = dA'WA + A'W dA + A' diag(dW) A and
    dWᵢ = ∂Wᵢ/∂s Jᵢ + W'ᵢ (dA ũ + A dũ)ᵢ, W' = ∂W/∂η, where the modes move by
    dũ = H⁻¹[dA'g + A'(∂g/∂s J) − A'(W ∘ dA ũ)] (g = w ∂ℓ/∂η).  Every term
    of c'dũ, c = A'(h ∘ W'), is one solve s = H⁻¹c (the adjoint of the
    modes' response), r = As, and hᵢ = aᵢ'H⁻¹aᵢ are the leverages of A.

    * (β, β_zi, log d): each enters ℓᵢ through one per-observation channel s
      (η, z = η_zi, log d) with Jacobian J (X, X_zi, 1), and
      ∂F/∂φ = J'[−2 wℓ_s + h ∘ ∂W/∂s + r ∘ w ∂²ℓ/∂η∂s];
    * θⱼ, through A (dA = Z ∂Λ/∂θⱼ, rows daᵢ):
      ∂F/∂θⱼ = Σᵢ (−2gᵢ + hᵢW'ᵢ − rᵢWᵢ)(dA ũ)ᵢ + 2Wᵢ daᵢ'H⁻¹aᵢ + gᵢ(dA s)ᵢ.

    ∂ℓ/∂s and ∂²ℓ/∂η∂s are analytic for η and z (∂g/∂η = −W); the third
    derivatives ∂W/∂s, and every derivative in log d, are central
    differences of the analytic (ℓ, ∂ℓ/∂η, ∂²ℓ/∂η²) per observation
    (each observation's are functions of its own scalars alone, so the
    differences are accurate to about 1e-9 relative).  Returns an array of
    shape (ntheta + p + p_zi + n_dispersion,).
    """
    A, F = m.zlambda.at(m.reterms), m.laplace_factor
    eta, eta_zi = m.offset + m.X @ m.beta + A @ m.u, zi_eta(m)
    h, Hia = _leverages(A, F)
    channels = _channels(m, eta, eta_zi)
    d1, d2, W1 = channels["eta"]
    s = F.solve(A.rmatvec(h * W1))
    r = A @ s
    parts = [_theta_gradient(m, A, m.wt * d1, -m.wt * d2, W1, h, Hia, s, r)]
    for name, J in _jacobians(m):
        l_s, g_s, W_s = channels[name]
        v = m.wt * (-2.0 * l_s + r * g_s) + h * W_s
        parts.append(J.T @ v if J is not None else np.array([v.sum()]))
    return np.concatenate(parts)


def _theta_gradient(m, A, g, W, W1, h, Hia, s, r) -> np.ndarray:
    """∂F/∂θ (see laplace_gradient); g, W, W1 weighted (n,), Hia = (H⁻¹aᵢ) at aᵢ's columns (n x K)."""
    u_rows, s_rows = m.u[A.cols], s[A.cols]
    out = []
    for dV in _dvals(m):
        dAu = np.einsum("ik,ik->i", dV, u_rows)
        terms = (-2.0 * g + h * W1 - r * W) * dAu + 2.0 * W * np.einsum("ik,ik->i", dV, Hia)
        out.append(float((terms + g * np.einsum("ik,ik->i", dV, s_rows)).sum()))
    return np.array(out)


def _dvals(m) -> list[np.ndarray]:
    """∂(ZΛ)/∂θⱼ in ZLambda's row layout (n x K each), by central differences of Λ(θ).

    Exact (to rounding) for the unstructured terms, whose Λ is linear in θ;
    the model's θ is restored.
    """
    theta = m.theta.copy()
    out = []
    for j in range(len(theta)):
        step = THETA_STEP * max(abs(theta[j]), 1.0)
        plus, minus = theta.copy(), theta.copy()
        plus[j] += step
        minus[j] -= step
        m.set_theta(plus)
        up = np.hstack([r.z @ r.lambda_ for r in m.reterms])
        m.set_theta(minus)
        down = np.hstack([r.z @ r.lambda_ for r in m.reterms])
        out.append((up - down) / (2.0 * step))
    m.set_theta(theta)
    return out


THETA_STEP = 1e-4
"""Relative step of the central differences of Λ(θ) in :func:`_dvals`."""


def _jacobians(m):
    """(channel, Jacobian) for β, β_zi and log d (None: the sum, for the scalar log d)."""
    out = [("eta", m.X)]
    if m.zi is not None:
        out.append(("zi", m.zi.X))
    if m.n_dispersion:
        out.append(("logd", None))
    return out


def _channels(m, eta, eta_zi) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per channel s: unweighted ∂ℓ/∂s, ∂²ℓ/∂η∂s and the weighted ∂W/∂s = −w ∂³ℓ/∂η²∂s."""
    d1, d2 = eta_derivatives(m, eta, eta_zi)
    out = {"eta": (d1, d2, -m.wt * _central(lambda t: eta_derivatives(m, eta + t, eta_zi)[1]))}
    if eta_zi is not None:
        gz, _, cross = zi_nuisance_derivatives(m.family, m.y, eta, eta_zi)
        d3 = _central(lambda t: eta_derivatives(m, eta, eta_zi + t)[1])
        out["zi"] = (gz, cross, -m.wt * d3)
    if m.n_dispersion:
        logd = np.log(m.family.dispersion)

        def at(t):
            d = float(np.exp(logd + t))
            return np.stack([_logpdf(m, eta, eta_zi, d), *eta_derivatives(m, eta, eta_zi, d)])

        l_d, g_d, d3 = _central(at)
        out["logd"] = (l_d, g_d, -m.wt * d3)
    return out


def _central(fun, h: float = FD_STEP) -> np.ndarray:
    """d/dt fun(t) at t = 0: (f(h) − f(−h)) / 2h, elementwise."""
    return (fun(h) - fun(-h)) / (2.0 * h)


def _leverages(A: ZLambda, F: SymmetricFactor) -> tuple[np.ndarray, np.ndarray]:
    """hᵢ = aᵢ'H⁻¹aᵢ (n,) and H⁻¹aᵢ at aᵢ's columns (n x K), rows aᵢ of A = ZΛ, from the dense H⁻¹."""
    Hinv = F.solve(np.eye(A.q))
    block = Hinv[A.cols[:, :, None], A.cols[:, None, :]]  # n x K x K
    Hia = np.einsum("ikl,il->ik", block, A.vals)
    return np.einsum("ik,ik->i", A.vals, Hia), Hia


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
