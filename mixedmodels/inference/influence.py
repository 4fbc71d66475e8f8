"""Leverage and Cook's distance of the observations and of the groups of a mixed model.

At the estimates θ̂ (and σ̂) the linear predictor solves the penalised
weighted least-squares problem with the n x (q + p) matrix A = [ZΛ  X],
weights W and

    M = A'WA + diag(I_q, 0_p),     H = W^½ A M⁻¹ A' W^½.

``leverage`` is hᵢ = Hᵢᵢ = wᵢ aᵢ'M⁻¹aᵢ, the diagonal of the full hat matrix
(lme4's ``hatvalues``, MixedModels.jl's ``leverage``; their sum is the
effective number of parameters).  W holds the prior weights of a linear
model and the working weights wᵢ = pwᵢ μ'(ηᵢ)² / V(μᵢ) at the conditional
modes of a generalised one (lme4 uses the prior weights there as well,
which mixes two scales; we do not).

Cook's distance measures the change of β̂ when observation i (or all
observations of a group) is deleted, with θ and σ held at their estimates
(the one-step deletion of HLMdiag and of Christensen, Pearson & Johnson
1992): with V = σ²(W⁻¹ + ZΛΛ'Z'), the GLS estimate on the other rows is
exactly

    β̂ − β̂₍ₛ₎ = F⁻¹ G_s' (E_s'P E_s)⁻¹ W_s r_s,
    D_s = (β̂ − β̂₍ₛ₎)' F (β̂ − β̂₍ₛ₎) / (p σ²),

where F = X'V₀⁻¹X (V₀ = V/σ², so σ²F⁻¹ is vcov(β̂)), G = V₀⁻¹X,
E_s'PE_s = W_s − W_s A_s M⁻¹ A_s' W_s and r = y − Aĉ the conditional
residuals (for a GLMM: the working residuals at the modes, a one-step
approximation of the IRLS refit).  For one observation this is
D_i = rᵢ² G_iF⁻¹G_i' / ((1 − hᵢ)² p σ²).  A refit without the rows at the
same θ gives the same β̂₍ₛ₎ (tests/inference/test_influence.py).

The work is dense in q + p: O(n (q + p)²) time and n (q + p) memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import CholeskyFailed, MixedModelsError
from ..model import MixedModel

__all__ = ["influence", "InfluenceSystem"]


def _zlambda(model: MixedModel) -> sp.csr_matrix:
    """ZΛ (n x q), the random-effects columns on the spherical scale u."""
    blocks = []
    for r in model.reterms:
        if r.has_factor:
            raise MixedModelsError(
                f"influence measures are not available for the term on {r.name!r} with a known covariance"
            )
        blocks.append(r.Z() @ sp.kron(sp.identity(r.nlevels), r.lambda_))
    return sp.hstack(blocks).tocsr()


def _working(model: MixedModel) -> tuple[np.ndarray, np.ndarray]:
    """Weights W and residuals r of the penalised least-squares problem at the estimates."""
    w = model.prior_weights
    if model.family is None:
        return w, np.asarray(model.residuals("response"), dtype=float)
    eta = np.asarray(model.predict(), dtype=float)
    mu = np.asarray(model.fitted(), dtype=float)
    d = model.family.link.mu_eta(eta)
    return w * d**2 / model.family.variance(mu), (model.response - mu) / d


class InfluenceSystem:
    """The factor of M and the pieces of the deletion formulas (see the module docstring)."""

    def __init__(self, model: MixedModel):
        model.require_fit("influence measures")
        self.w, self.r = _working(model)
        X = model.structure.fe.X
        ZL = _zlambda(model)
        self.q, self.p = ZL.shape[1], X.shape[1]
        A = np.hstack([ZL.toarray(), X])
        M = A.T @ (self.w[:, None] * A)
        M[np.arange(self.q), np.arange(self.q)] += 1.0
        try:
            L = sla.cholesky(M, lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise CholeskyFailed(f"the penalised system is not positive definite ({exc})") from None
        self.K = sla.solve_triangular(L, A.T, lower=True, check_finite=False)  # L⁻¹A'
        self.leverage = self.w * np.einsum("ij,ij->j", self.K, self.K)
        self.G = self._v0inv_x(ZL, X, M[: self.q, : self.q])
        self.F = X.T @ self.G
        self.sigma2 = 1.0 if model.sigma is None else float(model.sigma) ** 2

    def _v0inv_x(self, ZL, X, C) -> np.ndarray:
        """V₀⁻¹X = WX − WZΛ C⁻¹ Λ'Z'WX, C = Λ'Z'WZΛ + I."""
        WX = self.w[:, None] * X
        inner = sla.cho_solve(sla.cho_factor(C, lower=True), np.asarray(ZL.T @ WX))
        return WX - self.w[:, None] * np.asarray(ZL @ inner)

    def delta_beta(self, rows: np.ndarray) -> np.ndarray:
        """β̂ − β̂₍ₛ₎ for deleting ``rows``, at fixed θ and σ."""
        Ks, ws = self.K[:, rows], self.w[rows]
        EPE = np.diag(ws) - (ws[:, None] * (Ks.T @ Ks)) * ws[None, :]
        gamma = np.linalg.solve(EPE, ws * self.r[rows])
        return np.linalg.solve(self.F, self.G[rows].T @ gamma)

    def cooks(self, delta: np.ndarray) -> float:
        return float(delta @ self.F @ delta / (self.p * self.sigma2))

    def cooks_observations(self) -> np.ndarray:
        """D_i for every observation, in closed form."""
        quad = np.einsum("ij,ij->i", self.G, np.linalg.solve(self.F, self.G.T).T)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.r**2 * quad / ((1.0 - self.leverage) ** 2 * self.p * self.sigma2)


def _group_codes(model: MixedModel, level: str):
    for r in model.reterms:
        if r.name == level:
            return r.refs, r.levels
    names = ", ".join(dict.fromkeys(r.name for r in model.reterms))
    raise MixedModelsError(
        f"no grouping factor {level!r} in the model; its grouping factors are {names}"
    )


def influence(model: MixedModel, level: str | None = None) -> pd.DataFrame:
    """Leverage and Cook's distance per observation, or Cook's distance per group of ``level``.

    Parameters
    ----------
    model : MixedModel
        A fitted model.
    level : str, optional
        A grouping factor (``"Subject"``): one row per level, deleting all
        its observations at once.

    Returns
    -------
    DataFrame
        Per observation (indexed like the data): ``leverage``, ``residual``
        (conditional, or working for a GLMM) and ``cooks_distance``.  Per
        group (indexed by level): ``nobs`` and ``cooks_distance``.
    """
    system = InfluenceSystem(model)
    if level is None:
        return pd.DataFrame(
            {
                "leverage": system.leverage,
                "residual": system.r,
                "cooks_distance": system.cooks_observations(),
            },
            index=model.obs_index.copy(),
        )
    refs, levels = _group_codes(model, level)
    rows = [np.flatnonzero(refs == j) for j in range(len(levels))]
    cooks = [system.cooks(system.delta_beta(s)) for s in rows]
    index = pd.Index(levels, name=level)
    return pd.DataFrame({"nobs": [len(s) for s in rows], "cooks_distance": cooks}, index=index)
