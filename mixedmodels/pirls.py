"""Penalised iteratively reweighted least squares (PIRLS).

For fixed θ (and β, unless β is also being updated), the conditional modes
ũ of the spherical random effects minimise the penalised deviance

    pdev(u) = Σᵢ wᵢ d(yᵢ, μᵢ) + ‖u‖²,    μ = g⁻¹(η),  η = o + Xβ + ZΛθ u,

with d the family's unit deviance, w the prior weights and o the offset.
Each iteration linearises the model around the current η: with working
weights Wᵢ = wᵢ (dμ/dη)²/V(μ) and working response zᵢ = ηᵢ - oᵢ + (yᵢ - μᵢ)/(dμ/dη),
it solves the penalised weighted least-squares problem

    min over u (and β):  ‖W^½ (z - Xβ - ZΛu)‖² + ‖u‖²

with the LMM's blocked Cholesky factor (re-weighted).  A step that raises
pdev is halved, up to ``MAX_HALVINGS`` times; iteration stops when pdev
changes by less than ``tol`` relative, or after ``maxiter`` iterations
(with a warning), never in an infinite loop.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import EVALUATION_FAILURES, ConvergenceError

__all__ = ["pirls", "glm_start", "MAX_HALVINGS"]

MAX_HALVINGS = 10

U_STEP_TOL = 1e-10
"""Families with a dispersion parameter also stop only once u moves by less than this
(relative to 1 + max |u|).  Their Laplace objective uses φ = deviance / n, so it is not
stationary in u at the PIRLS mode: an error δu moves it by about 2 ũ'δu / φ.  And with a
non-canonical link (Gamma and inverse Gaussian with log link) Fisher scoring converges
only linearly, so a small change of pdev can leave δu ~ 1e-5: the objective was then noisy
at 1e-4 on sleepstudy's inverse Gaussian fit, and BOBYQA stopped short of lme4's optimum."""

MAX_SETTLING = 20
"""At most this many further iterations wait for u once pdev has settled (u's rounding floor
can lie above ``U_STEP_TOL`` in an ill-conditioned problem)."""


def _step(m, state, beta: np.ndarray, fast: bool) -> tuple[np.ndarray, np.ndarray]:
    """Re-weight the LMM at the η of ``state`` and return the PLS solution (β, u).

    The working weights and response come from ``state``, the working state
    at the current modes, whose penalised deviance was just computed (μ and
    dμ/dη are not evaluated again).
    """
    w, z = state.working_weights, state.working_response
    system = m.lmm.system
    if not fast:  # β fixed: only L_Z is needed
        system.factor_Z_at_weights(np.sqrt(w))
        return beta, system.solve_u_given_beta(z - m.X @ beta)
    system.set_weights(np.sqrt(w), z)
    system.update_L()
    beta = system.beta()
    return beta, system.u(beta)


def pirls(m, fast: bool, maxiter: int = 100, tol: float = 1e-10) -> float:
    """Update the modes of ``m`` (u, and β if ``fast``) to the conditional modes; return pdev.

    PIRLS starts from the current modes (those of the previous θ, usually
    close).  Where that start fails in any way (η overflows, working weights
    so extreme that a block of the factor is not positive definite, a
    deviance that is not finite) it starts again from u = 0, as
    MixedModels.jl always does, and then from u = 0 with the GLM's β; only
    if all three fail does the error (a :class:`~mixedmodels.errors.CholeskyFailed`
    or :class:`~mixedmodels.errors.ConvergenceError`) propagate.

    On return the LMM's factor L is evaluated at the weights of the final
    modes, so that log|L_Z| is the one the Laplace approximation needs.
    """
    zeros = np.zeros_like(m.u)
    starts = [None, (m.beta.copy(), zeros)]
    if fast:  # β moves too: last, the GLM's β
        starts.append((m.beta0.copy(), zeros))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for i, start in enumerate(starts):
            if start is not None:
                m.set_modes(*start)
            try:
                return _pirls(m, fast, maxiter, tol)
            except EVALUATION_FAILURES:
                if i == len(starts) - 1:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


def _pirls(m, fast: bool, maxiter: int, tol: float) -> float:
    """PIRLS from the model's modes; the model moves to the final modes, with their working state.

    The trial points are evaluated without moving the model
    (:meth:`~mixedmodels.glmm.GeneralizedLinearMixedModel.working_state_at`):
    only the accepted modes are handed to it, once, at the end.
    """
    beta, u = m.beta, m.u
    fixed = None if fast else m.offset + m.X @ beta  # o + Xβ, the same for every trial
    state = m.working_state_at(beta, u, fixed)
    pdev = state.deviance + float(u @ u)
    if not np.isfinite(pdev):
        raise ConvergenceError("PIRLS: the penalised deviance is not finite at the starting values")
    settling = 0  # iterations since pdev settled, waiting for u (see U_STEP_TOL)
    try:
        for _ in range(maxiter):
            beta1, u1 = _step(m, state, beta, fast)
            trial = _accept_or_halve(m, beta, u, beta1, u1, pdev, fixed)
            if trial is None:  # no decrease even after halving: at the optimum to rounding
                break
            u0 = u
            new, beta, u, state = trial
            flat = abs(pdev - new) <= tol * (abs(new) + 0.1)
            settling = settling + 1 if flat else 0
            pdev = new
            if flat and (settling > MAX_SETTLING or _u_settled(m, u, u0)):
                break
        else:
            warnings.warn(f"PIRLS did not converge in {maxiter} iterations", stacklevel=3)
    except EVALUATION_FAILURES:
        m.set_modes(beta, u)  # a failed step leaves the model at the modes it started from
        raise
    m.adopt_state(beta, u, state)
    _reweight(m, state)  # weights and L_Z at the final modes
    return pdev


def _u_settled(m, u: np.ndarray, u0: np.ndarray) -> bool:
    """True unless the family has a dispersion parameter and u still moves (see ``U_STEP_TOL``)."""
    if not m.family.has_dispersion or not u.size:
        return True
    return float(np.max(np.abs(u - u0))) <= U_STEP_TOL * (1.0 + float(np.max(np.abs(u))))


def _reweight(m, state) -> None:
    """L_Z at the working weights of ``state`` (the final modes')."""
    m.lmm.system.factor_Z_at_weights(np.sqrt(state.working_weights))


def _accept_or_halve(m, beta0, u0, beta1, u1, pdev0: float, fixed):
    """(pdev, β, u, state) at (β1, u1), the step halved while pdev rises; None if it never falls.

    ``fixed`` is o + Xβ when β is held fixed (None: computed for each trial β).
    """
    for _ in range(MAX_HALVINGS + 1):
        state = m.working_state_at(beta1, u1, fixed)
        pdev = state.deviance + float(u1 @ u1)
        if np.isfinite(pdev) and pdev <= pdev0 * (1 + 1e-12) + 1e-12:
            return pdev, beta1, u1, state
        beta1, u1 = 0.5 * (beta0 + beta1), 0.5 * (u0 + u1)
    return None


def glm_start(
    family, X: np.ndarray, y: np.ndarray, wt: np.ndarray, offset: np.ndarray, maxiter: int = 50
) -> np.ndarray:
    """β of the generalised linear model without random effects, by IRLS (starting values)."""
    mu = family.mustart(y, wt)
    eta = family.link.linkfun(mu)
    beta = np.zeros(X.shape[1])
    dev = np.inf
    for _ in range(maxiter):
        w = family.working_weights(mu, eta, wt)
        z = eta - offset + (y - mu) / family.link.mu_eta(eta)
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta = offset + X @ beta
        mu = family.link.linkinv(eta)
        new = family.deviance(y, mu, wt)
        if abs(dev - new) <= 1e-10 * (abs(new) + 0.1):
            break
        dev = new
    return beta
