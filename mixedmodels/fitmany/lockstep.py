"""Lockstep fits: the profiled objectives of many responses evaluated together, and one Newton
method moving all their θ at once.

Responses that share a design (the same rows: the same missingness
pattern) share every block of A = [Z X y]'[Z X y] but its last row and
column.  After the diagonal first block is eliminated (see
:class:`~.design.DenseKernel`), the Schur complement of response r at θ is

    S_r(θ) = D(θ)'(A_r − Σ_v w_v(θ) M_rv)D(θ) + diag(I_qB, 0),
    w_v(θ) = λ₁² / (λ₁² v + 1),

where v runs over the distinct values of diag(Z₁'Z₁) (the first term's
level counts: one value for a balanced design), A_r is A_RR of response r
and M_rv = Σ_{j: (Z₁'Z₁)_jj = v} a_rj a_rj' sums the outer products of the
columns a_rj of A_R1 with that count.  Grouping the eliminated levels by
their count is exact and makes an evaluation cost O(V s²) instead of
O(q₁ s²) for a Schur complement of size s.  :func:`stacked_objective`
evaluates S_r at any number P of θ per response, shape (R, P, k), in a
handful of numpy calls and one stacked Cholesky factorisation; the objective
(ML or REML) follows from the factors' diagonals as for one response.

:func:`newton_lockstep` minimises R objectives together: a Newton method
whose gradient and Hessian come from central differences (a stencil of
k(k + 1) points per response, one stacked evaluation), with a backtracking
line search in which each response halves its own step, and a mask that
drops each response as soon as it has converged.  A response that does
not converge within :data:`MAX_ITERATIONS`, whose objective cannot be
evaluated, or which sits at a saddle, is returned as not converged with
its reason, for the per-response optimizer to fit.

Bounds.  The profiled objective depends on θ only through ΛΛ': flipping
the sign of a column of a term's λ (its diagonal element and the elements
below it) changes nothing.  So θ is optimised without bounds, and each
iterate is mapped to the equivalent θ whose λ has a non-negative diagonal
(:func:`canonical`); the objective is the same at both points, so the line
search is unaffected.  An active set is not needed (nor would it work
here: along a standard deviation the objective is even about 0, so its
slope there is 0 whether or not 0 is the optimum; the curvature decides,
and Newton's method on the even function uses it).  A standard deviation
whose optimum is 0 is approached quickly by Newton's method (cubically
when f ≈ aθ² + bθ⁴) and set to exactly 0 at the end if that is no worse,
as a single fit does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .design import DenseKernel, ordered_sum

__all__ = [
    "StackedSystems",
    "stack_systems",
    "stacked_factor",
    "stacked_objective",
    "stacked_estimates",
    "sign_map",
    "canonical",
    "LockstepResult",
    "newton_lockstep",
]

STEP = 1e-4
"""Finite-difference step relative to max(|θᵢ|, 1) (the objective is accurate to about 1e-13 relative)."""

FTOL = 1e-12
"""Converged when a Newton step is predicted to lower the objective by at most this times max(|f|, 1)."""

MAX_ITERATIONS = 40
"""Newton steps a response may take before it is left to the per-response optimizer."""

MAX_HALVINGS = 30
"""Step halvings of the line search before it gives up."""

ARMIJO = 1e-4
"""A step is accepted when it lowers f by at least this fraction of the decrease its slope predicts."""

SETTLE = 1e-5
"""A standard deviation below this at the optimum is tried at exactly 0 (as a single fit's result)."""


# ---- the stacked objective ---------------------------------------------------------------------
@dataclass
class StackedSystems:
    """The parts of A that differ between the responses of one design.

    Attributes
    ----------
    A : ndarray, shape (R, s, s)
        A_RR of each response: the shared block of the remaining terms and
        X, bordered by the response's [Z_R X]'y and y'y.
    M : ndarray, shape (R, V, s, s)
        Σ a_rj a_rj' over the eliminated levels j of count ``levels[v]``,
        a_rj = column j of A_R1 (shared rows, the response's Z₁'y last).
    levels, counts : ndarray, shape (V,)
        The distinct counts v of the first term's levels, and how many
        levels have each.
    """

    A: np.ndarray
    M: np.ndarray
    levels: np.ndarray
    counts: np.ndarray

    def take(self, rows: np.ndarray) -> StackedSystems:
        """The systems of some responses (positions ``rows``)."""
        return StackedSystems(self.A[rows], self.M[rows], self.levels, self.counts)


def stack_systems(kernel: DenseKernel, zxy: np.ndarray, yy: np.ndarray) -> StackedSystems:
    """The stacked systems of R responses from their [Z X]'y (shape (R, q + p)) and y'y (shape (R,)).

    The per-response sums are :func:`~.design.ordered_sum`s, so a response's
    numbers do not depend on which others share its chunk.
    """
    R, q1, s = len(yy), kernel.q1, kernel.size
    A = np.empty((R, s, s))
    A[:, :-1, :-1] = kernel.A0[q1:, q1:]
    A[:, :-1, -1] = zxy[:, q1:]
    A[:, -1, :-1] = zxy[:, q1:]
    A[:, -1, -1] = yy
    levels, group = np.unique(kernel.a1, return_inverse=True)
    M = np.empty((R, len(levels), s, s))
    for v in range(len(levels)):
        cols = np.flatnonzero(group == v)
        B, c = kernel.A0[q1:, cols], zxy[:, cols]
        M[:, v, :-1, :-1] = B @ B.T
        M[:, v, :-1, -1] = M[:, v, -1, :-1] = ordered_sum(c[:, None, :] * B)
        M[:, v, -1, -1] = ordered_sum(c * c)
    return StackedSystems(A, M, levels, np.bincount(group, minlength=len(levels)))


def stacked_factor(
    kernel: DenseKernel, systems: StackedSystems, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of S_r(θ_rp) and Σ log m₁ for θ of shape (R, P, k).

    Returns L of shape (R, P, s, s) (NaN where S is not positive definite)
    and Σ_j log(λ₁² (Z₁'Z₁)_jj + 1) of shape (R, P).
    """
    C, logm1 = _eliminated(kernel, systems, theta)
    _scale(kernel, C, theta)
    diag = np.arange(kernel.qB)
    C[..., diag, diag] += 1.0
    return _cholesky(C), logm1


def _eliminated(kernel: DenseKernel, systems: StackedSystems, theta: np.ndarray):
    """A_RR − λ₁² A_R1 diag(1/m₁) A_1R per point, shape (R, P, s, s), and Σ log m₁ (R, P)."""
    R, P = theta.shape[:2]
    if not kernel.q1:
        return np.repeat(systems.A[:, None], P, axis=1), np.zeros((R, P))
    lam2 = theta[..., kernel.first_theta] ** 2
    C = np.repeat(systems.A[:, None], P, axis=1)
    logm1 = np.zeros((R, P))
    # one level count at a time (elementwise): no sum whose order could depend on R
    for v, (level, count) in enumerate(zip(systems.levels, systems.counts)):
        m1 = lam2 * level + 1.0
        C -= (lam2 / m1)[..., None, None] * systems.M[:, None, v]
        logm1 += count * np.log(m1)
    return C, logm1


def _scale(kernel: DenseKernel, C: np.ndarray, theta: np.ndarray) -> None:
    """C ← D'CD in place, D = blockdiag(Λ_R(θ), I_{p+1}) (a row and column scaling when Λ_R is diagonal)."""
    if kernel.diagonal:
        d = np.ones(C.shape[:-1])
        d[..., kernel.lam_rows] = theta[..., kernel.lam_theta]
        C *= d[..., :, None] * d[..., None, :]
        return
    D = np.broadcast_to(np.eye(kernel.size), C.shape).copy()
    D[..., kernel.lam_rows, kernel.lam_cols] = theta[..., kernel.lam_theta]
    C[...] = np.swapaxes(D, -1, -2) @ C @ D


def _cholesky(C: np.ndarray) -> np.ndarray:
    """Stacked lower Cholesky factors; a matrix that is not positive definite gets NaN, not an exception."""
    return _per_matrix(np.linalg.cholesky, C)


def _inverse(Lx: np.ndarray) -> np.ndarray:
    """Stacked inverses; NaN for a singular matrix."""
    return _per_matrix(np.linalg.inv, Lx)


def _per_matrix(fn, C: np.ndarray) -> np.ndarray:
    """``fn`` (a stacked numpy.linalg routine) of the stack C, NaN for a matrix where it fails.

    numpy's stacked routines raise for the whole stack if one matrix fails,
    so the (rare) failing stack is done again one matrix at a time.
    """
    try:
        return fn(C)
    except np.linalg.LinAlgError:
        flat = C.reshape((-1,) + C.shape[-2:])
        out = np.full_like(flat, np.nan)
        for i, matrix in enumerate(flat):
            try:
                out[i] = fn(matrix)
            except np.linalg.LinAlgError:
                pass
        return out.reshape(C.shape)


def stacked_objective(kernel: DenseKernel, L: np.ndarray, logm1: np.ndarray) -> np.ndarray:
    """Profiled deviance (or REML criterion) of every factor, shape L.shape[:-2]; +inf where it failed.

    As :meth:`DenseKernel.objective_of`: log|L_Z|² = Σ log m₁ + 2 Σ log diag(L_B),
    REML adds 2 Σ log diag(L_X), and r² is the last diagonal element squared.
    """
    qB, p = kernel.qB, kernel.p
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.diagonal(L, axis1=-2, axis2=-1))
        ld = logm1 + 2.0 * ordered_sum(logs[..., :qB])
        if kernel.reml:
            ld = ld + 2.0 * ordered_sum(logs[..., qB : qB + p])
        r2 = L[..., -1, -1] ** 2
        value = ld + kernel.dof * (1.0 + np.log(2.0 * np.pi * r2 / kernel.dof))
    return np.where(np.isfinite(value), value, np.inf)


def stacked_estimates(kernel: DenseKernel, L: np.ndarray) -> dict[str, np.ndarray]:
    """σ (shape (R,)), β and their standard errors (shape (R, p)) from factors of shape (R, s, s).

    β = L_X'⁻¹ l_Xy (l_Xy the last row of L under X) and Var(β) = σ² (L_X L_X')⁻¹, whose diagonal is
    σ² times the squared column norms of L_X⁻¹.
    """
    qB, p = kernel.qB, kernel.p
    Lx = L[:, qB : qB + p, qB : qB + p]
    Linv = _inverse(Lx)
    beta = (np.swapaxes(Linv, -1, -2) @ L[:, -1, qB : qB + p, None])[..., 0]
    sigma = np.sqrt(L[:, -1, -1] ** 2 / kernel.dof)
    se = sigma[:, None] * np.sqrt(ordered_sum(Linv**2, axis=1))
    return {"sigma": sigma, "beta": beta, "se": se}


# ---- bounds by symmetry ------------------------------------------------------------------------
def sign_map(kernel: DenseKernel, lower: np.ndarray) -> np.ndarray | None:
    """For each θ element, the θ element on the diagonal of its column of λ (itself for a diagonal).

    None when the bounds are not those of a Cholesky factor (0 on every
    diagonal element, none elsewhere): lockstep fits then do not apply.
    """
    k = len(lower)
    column_diagonal = np.full(k, -1)
    on_diagonal = kernel.lam_rows == kernel.lam_cols
    diagonal_of = dict(zip(kernel.lam_cols[on_diagonal], kernel.lam_theta[on_diagonal]))
    for col, t in zip(kernel.lam_cols, kernel.lam_theta):
        column_diagonal[t] = diagonal_of.get(col, -1)
    if kernel.q1:
        column_diagonal[kernel.first_theta] = kernel.first_theta
    is_diagonal = column_diagonal == np.arange(k)
    if (column_diagonal < 0).any() or not np.array_equal(lower == 0, is_diagonal):
        return None
    if not np.all(np.isneginf(lower[~is_diagonal])):
        return None
    return column_diagonal


def canonical(theta: np.ndarray, column_diagonal: np.ndarray) -> np.ndarray:
    """The θ with the same ΛΛ' and a non-negative diagonal: each λ column times the sign of its diagonal."""
    return theta * np.where(theta[..., column_diagonal] < 0, -1.0, 1.0)


# ---- the lockstep optimizer --------------------------------------------------------------------
@dataclass
class LockstepResult:
    """Outcome per response (arrays of length R; ``theta`` of shape (R, k)).

    ``feval`` counts the stacked evaluations a response took part in (a
    stencil of k(k + 1) points counts once); ``iterations`` its Newton
    steps; ``reason`` is "" for a converged response, else why it was left.
    """

    theta: np.ndarray
    fmin: np.ndarray
    converged: np.ndarray
    feval: np.ndarray
    iterations: np.ndarray
    reason: list[str]


Evaluate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""evaluate(rows, theta): objectives of responses ``rows`` at θ of shape (len(rows), P, k), shape (len(rows), P)."""


def newton_lockstep(
    evaluate: Evaluate,
    start: np.ndarray,
    column_diagonal: np.ndarray,
    *,
    max_iterations: int | None = None,
) -> LockstepResult:
    """Minimise R objectives together from ``start`` (shape (R, k)) by Newton steps.

    Each iteration evaluates the stencil of every response still running
    (one stacked call), forms its gradient g and Hessian H by central
    differences, and stops the response when the predicted decrease
    ½ g'H⁻¹g is at most :data:`FTOL` max(|f|, 1) with H positive definite.
    The others take a Newton step on H with its eigenvalues replaced by
    their absolute values (a descent direction where H is indefinite), at
    most max(1, |θ|∞) long, and halve it until the Armijo condition holds
    (one stacked call per halving, over the responses still searching).
    Converged standard deviations below :data:`SETTLE` are then tried at 0.
    ``max_iterations`` defaults to :data:`MAX_ITERATIONS`.
    """
    max_iterations = MAX_ITERATIONS if max_iterations is None else max_iterations
    R = len(start)
    state = LockstepResult(
        theta=canonical(np.array(start, dtype=float), column_diagonal),
        fmin=np.full(R, np.inf),
        converged=np.zeros(R, dtype=bool),
        feval=np.zeros(R, dtype=int),
        iterations=np.zeros(R, dtype=int),
        reason=[""] * R,
    )
    running = np.arange(R)
    if R:
        state.fmin[:] = evaluate(running, state.theta[:, None, :])[:, 0]
        state.feval += 1
    running = _drop(state, running, ~np.isfinite(state.fmin), "the objective fails at the start")
    for _ in range(max_iterations):
        if not len(running):
            break
        running = _iteration(evaluate, state, running, column_diagonal)
    _drop(state, running, None, f"not converged in {max_iterations} Newton steps")
    _settle(evaluate, state, column_diagonal)
    return state


def _drop(state: LockstepResult, rows: np.ndarray, mask, reason: str) -> np.ndarray:
    """Leave rows[mask] (all rows if mask is None) with ``reason``; return the other rows."""
    mask = np.ones(len(rows), dtype=bool) if mask is None else mask
    for r in rows[mask]:
        state.reason[r] = reason
    return rows[~mask]


def _iteration(evaluate: Evaluate, state: LockstepResult, rows: np.ndarray, column_diagonal):
    """One Newton iteration of the responses ``rows``; returns those still running."""
    theta, f0 = state.theta[rows], state.fmin[rows]
    h = STEP * np.maximum(np.abs(theta), 1.0)
    values = evaluate(rows, stencil(theta, h))
    state.feval[rows] += 1
    finite = np.isfinite(values).all(axis=1)
    rows, theta, f0, h, values = _keep(finite, rows, theta, f0, h, values, state=state,
                                       reason="the objective fails near θ")  # fmt: skip
    g, H = derivatives(f0, values, h)
    step, decrease, positive = newton_step(g, H, theta)
    rows, step, decrease, positive, g, f0 = _keep(
        np.isfinite(decrease), rows, step, decrease, positive, g, f0, state=state,
        reason="the Hessian could not be decomposed",
    )  # fmt: skip
    small = decrease <= FTOL * np.maximum(np.abs(f0), 1.0)
    state.converged[rows[small & positive]] = True
    _drop(
        state,
        rows,
        small & ~positive,
        "a stationary point where the Hessian is not positive definite",
    )
    moving = ~small
    rows, step, slope = rows[moving], step[moving], ordered_sum(g * step)[moving]
    state.iterations[rows] += 1
    found = _line_search(evaluate, state, rows, step, slope, column_diagonal)
    return _drop(state, rows, ~found, "the line search found no lower objective")


def _keep(mask, rows, *arrays, state: LockstepResult, reason: str):
    """Rows (and their arrays) where ``mask`` holds; the others leave with ``reason``."""
    _drop(state, rows, ~mask, reason)
    return (rows[mask], *(a[mask] for a in arrays))


def stencil(theta: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points θ ± hᵢeᵢ (i = 1..k) then θ ± (hᵢeᵢ + hⱼeⱼ) (i < j), shape (R, k(k + 1), k)."""
    return theta[:, None, :] + _offsets(theta.shape[1])[None] * h[:, None, :]


def _offsets(k: int) -> np.ndarray:
    eye = np.eye(k)
    single = [sign * eye[i] for i in range(k) for sign in (1.0, -1.0)]
    pairs = [
        sign * (eye[i] + eye[j]) for i in range(k) for j in range(i + 1, k) for sign in (1.0, -1.0)
    ]
    return np.array(single + pairs).reshape(-1, k)


def derivatives(f0: np.ndarray, values: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient (R, k) and Hessian (R, k, k) from the :func:`stencil` values (R, P).

    gᵢ = (f₊ᵢ − f₋ᵢ)/2hᵢ, Hᵢᵢ = (f₊ᵢ − 2f₀ + f₋ᵢ)/hᵢ², and, since
    f(θ + a) + f(θ − a) = 2f₀ + a'Ha + O(|a|⁴) with a = hᵢeᵢ + hⱼeⱼ,
    Hᵢⱼ = (f₊ᵢ₊ⱼ + f₋ᵢ₋ⱼ − f₊ᵢ − f₋ᵢ − f₊ⱼ − f₋ⱼ + 2f₀)/2hᵢhⱼ.
    """
    k = h.shape[1]
    fp, fm = values[:, 0 : 2 * k : 2], values[:, 1 : 2 * k : 2]
    g = (fp - fm) / (2.0 * h)
    H = np.empty((len(f0), k, k))
    diag = np.arange(k)
    H[:, diag, diag] = (fp - 2.0 * f0[:, None] + fm) / h**2
    column = 2 * k
    for i in range(k):
        for j in range(i + 1, k):
            both = values[:, column] + values[:, column + 1]
            mixed = both - fp[:, i] - fm[:, i] - fp[:, j] - fm[:, j] + 2.0 * f0
            H[:, i, j] = H[:, j, i] = mixed / (2.0 * h[:, i] * h[:, j])
            column += 2
    return g, H


def newton_step(
    g: np.ndarray, H: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Modified Newton steps (R, k), their predicted decreases ½ g'|H|⁻¹g (R,) and whether H > 0 (R,).

    |H| = V|Λ|V' (eigenvalues below 1e-8 of the largest raised to that):
    the Newton step where H is positive definite, a descent direction
    where it is not.  A step longer than max(1, |θ|∞) is shortened to that.
    """
    lam, V = _eigh(H)
    size = np.abs(lam)
    floor = np.maximum(1e-8 * size.max(axis=1, keepdims=True), np.finfo(float).tiny)
    size = np.maximum(size, floor)
    gv = (np.swapaxes(V, -1, -2) @ g[..., None])[..., 0]
    step = -(V @ (gv / size)[..., None])[..., 0]
    decrease = 0.5 * ordered_sum(gv**2 / size)
    cap = np.maximum(1.0, np.abs(theta).max(axis=1))
    longest = np.abs(step).max(axis=1)
    step *= np.minimum(1.0, cap / np.where(longest > 0, longest, 1.0))[:, None]
    return step, decrease, lam[:, 0] > 0


def _eigh(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stacked eigen-decompositions; NaN for a matrix LAPACK cannot decompose (not an exception)."""
    try:
        return np.linalg.eigh(H)
    except np.linalg.LinAlgError:
        lam, V = np.full(H.shape[:-1], np.nan), np.full(H.shape, np.nan)
        for i, matrix in enumerate(H):
            try:
                lam[i], V[i] = np.linalg.eigh(matrix)
            except np.linalg.LinAlgError:
                pass
        return lam, V


def _line_search(
    evaluate: Evaluate,
    state: LockstepResult,
    rows: np.ndarray,
    step: np.ndarray,
    slope: np.ndarray,
    column_diagonal: np.ndarray,
) -> np.ndarray:
    """Backtracking from a full step, each response halving its own; True where a step was accepted.

    A trial point is mapped to its canonical θ (same objective); it is
    accepted when f ≤ f₀ + :data:`ARMIJO` α g'd.
    """
    alpha = np.ones(len(rows))
    found = np.zeros(len(rows), dtype=bool)
    pending = np.arange(len(rows))
    for _ in range(MAX_HALVINGS):
        if not len(pending):
            break
        r = rows[pending]
        trial = canonical(state.theta[r] + alpha[pending, None] * step[pending], column_diagonal)
        value = evaluate(r, trial[:, None, :])[:, 0]
        state.feval[r] += 1
        good = value <= state.fmin[r] + ARMIJO * alpha[pending] * slope[pending]
        state.theta[r[good]], state.fmin[r[good]] = trial[good], value[good]
        found[pending[good]] = True
        alpha[pending[~good]] *= 0.5
        pending = pending[~good]
    return found


def _settle(evaluate: Evaluate, state: LockstepResult, column_diagonal: np.ndarray) -> None:
    """Converged standard deviations below :data:`SETTLE` set to 0 unless that raises f by more than FTOL."""
    theta = state.theta
    bounded = column_diagonal == np.arange(theta.shape[1])
    small = state.converged[:, None] & bounded & (theta != 0) & (np.abs(theta) < SETTLE)
    rows = np.flatnonzero(small.any(axis=1))
    if not len(rows):
        return
    trial = np.where(small[rows], 0.0, theta[rows])
    value = evaluate(rows, trial[:, None, :])[:, 0]
    state.feval[rows] += 1
    better = value <= state.fmin[rows] + FTOL * np.maximum(np.abs(state.fmin[rows]), 1.0)
    theta[rows[better]], state.fmin[rows[better]] = trial[better], value[better]
