"""Responses simulated from a fitted model (parametric bootstrap, power and coverage studies).

For each replicate, random effects are drawn afresh for the terms that are
not conditioned on,

    b_t = σ Λ_t u_t,   u_t ~ N(0, I)   (one k-vector per level),

with σ the residual standard deviation of a linear model, the square root of
the dispersion of a generalised model, or 1 for families without one (the
covariance σ²ΛΛ' that the variance components report; lme4 leaves the random
effects of gamma and inverse Gaussian models unscaled), while terms kept by ``re_form`` use their conditional modes b̂ (lme4's
``simulate``: ``re_form="~0"``, the default, conditions on none).  Then

* linear models: y = o + Xβ + Zb + ε,  εᵢ ~ N(0, σ²/wᵢ);
* generalised models: μ = g⁻¹(o + Xβ + Zb) and y from the family:
  Bernoulli, binomial (as a proportion of wᵢ trials), Poisson, gamma
  (shape wᵢ/φ), inverse Gaussian (shape wᵢ/φ) or Gaussian (variance φ/wᵢ),
  with φ = σ² the dispersion.

β, σ and θ default to the fitted values and may be replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from ..thetalayout import lambdas
from .newdata import new_data
from .prediction import _offset, random_part, selected_terms, term_rows

__all__ = ["simulate", "simulation_plan", "SimulationPlan", "lambdas_for"]


def lambdas_for(model: MixedModel, theta: np.ndarray | None) -> list[np.ndarray]:
    """Relative covariance factors λ per ReMat for θ (lme4's order), without touching the model."""
    if theta is None:
        return [r.lambda_.copy() for r in model.reterms]
    theta = np.asarray(theta, dtype=float)
    if theta.shape != model.lowerbd.shape:
        raise MixedModelsError(
            f"theta must have {len(model.lowerbd)} elements, got shape {theta.shape}"
        )
    return lambdas(model.reterms, model.structure.theta_perm, theta)


def _family_draw(
    family, phi: float, mu: np.ndarray, wt: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Responses from a GLM family with means ``mu``, dispersion φ and prior weights ``wt``."""
    from ..families import Bernoulli, Binomial, Gamma, Gaussian, InverseGaussian, Poisson

    if isinstance(family, Bernoulli):
        return (rng.random(len(mu)) < mu).astype(float)
    if isinstance(family, Binomial):
        trials = np.rint(wt).astype(np.int64)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)
    if isinstance(family, Poisson):
        return rng.poisson(mu).astype(float)
    if isinstance(family, Gamma):
        shape = wt / phi
        return rng.gamma(shape, mu / shape)
    if isinstance(family, InverseGaussian):
        return rng.wald(mu, wt / phi)
    if isinstance(family, Gaussian):
        return mu + np.sqrt(phi / wt) * rng.standard_normal(len(mu))
    if callable(getattr(family, "sample", None)):  # families that draw their own (nbinom, beta)
        return family.sample(mu, rng)
    raise MixedModelsError(f"simulation from the {type(family).__name__} family is not available")


@dataclass
class SimulationPlan:
    """Everything one simulated response needs, fixed at the parameters to simulate from.

    Attributes
    ----------
    fixed : ndarray, shape (n,)
        o + Xβ on the rows simulated.
    rows : list of (z, refs)
        Per ReMat, its model matrix and level codes on those rows.
    keep : set of int
        Terms (formula order) whose conditional modes ``b_hat`` are used.
    lambdas : list of ndarray
        λ per ReMat for the fresh random effects.
    scale : float
        σ: the residual standard deviation of a linear model, the square root
        of the dispersion φ of a generalised one (1 for families without a
        dispersion).  Random effects are σλu, as the variance components
        report them.
    wt : ndarray
        Prior weights (binomial: trials).
    family : Family or None
        None for linear models.
    """

    reterms: list
    nterms: int
    fixed: np.ndarray
    rows: list
    keep: set
    b_hat: list
    lambdas: list
    scale: float
    wt: np.ndarray
    family: Any

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One simulated response vector."""
        fresh = []
        for r, (_, refs), lam in zip(self.reterms, self.rows, self.lambdas):
            nlev = max(r.nlevels, int(refs.max()) + 1 if len(refs) else 0)
            fresh.append(self.scale * rng.standard_normal((nlev, r.k)) @ lam.T)
        others = set(range(self.nterms)) - self.keep
        eta = self.fixed + random_part(self.reterms, self.rows, self.keep, self.b_hat)
        eta = eta + random_part(self.reterms, self.rows, others, fresh)
        if self.family is None:
            return eta + self.scale / np.sqrt(self.wt) * rng.standard_normal(len(eta))
        return _family_draw(self.family, self.scale**2, self.family.link.linkinv(eta), self.wt, rng)


def simulation_plan(
    model,
    newdata: pd.DataFrame | None = None,
    *,
    re_form: Any = "~0",
    beta=None,
    sigma: float | None = None,
    theta=None,
    weights=None,
) -> SimulationPlan:
    """The :class:`SimulationPlan` of a fitted model (arguments as :func:`simulate`)."""
    nd = None if newdata is None else new_data(model, newdata)
    return _plan(model, nd, re_form, beta, sigma, theta, weights)


def _plan(model, nd, re_form, beta, sigma, theta, weights) -> SimulationPlan:
    keep = selected_terms(model, re_form)
    beta = model.beta if beta is None else np.asarray(beta, dtype=float)
    if beta.shape != model.beta.shape:
        raise MixedModelsError(
            f"beta must have {len(model.beta)} elements ({model.coefnames}), got shape {beta.shape}"
        )
    X = model.structure.fe.X if nd is None else model.structure.fe.X_on(nd.frame)
    scale = float(sigma) if sigma is not None else (model.sigma if model.sigma is not None else 1.0)
    return SimulationPlan(
        reterms=model.reterms,
        nterms=len(model.structure.formula.random),
        fixed=X @ beta + _offset(model, nd, None),
        rows=term_rows(model, nd, number_unseen=True),
        keep=keep,
        b_hat=model.b() if keep else [],
        lambdas=lambdas_for(model, theta),
        scale=scale,
        wt=_prior_weights(model, nd, weights),
        family=model.family,
    )


def seed_sequence(seed: Any) -> np.random.SeedSequence:
    """``seed`` (None, a non-negative integer or a SeedSequence) as a SeedSequence, or a clear error."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    try:
        return np.random.SeedSequence(seed)
    except (TypeError, ValueError) as exc:
        raise MixedModelsError(
            f"seed must be None, a non-negative integer, a SeedSequence or a Generator, got {seed!r}"
        ) from exc


def random_generator(seed: Any) -> np.random.Generator:
    """numpy's Generator from ``seed``: a Generator (or bit generator) as it is, else :func:`seed_sequence`'s."""
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    return np.random.default_rng(seed_sequence(seed))


def simulate(
    model: MixedModel,
    n: int = 1,
    seed: Any = None,
    newdata: pd.DataFrame | None = None,
    *,
    re_form: Any = "~0",
    beta=None,
    sigma: float | None = None,
    theta=None,
    weights=None,
) -> pd.DataFrame:
    """Simulate ``n`` responses from a fitted model.

    Parameters
    ----------
    n : int
        Number of simulated responses (columns ``sim_1`` ... ``sim_n``).
    seed : int, SeedSequence or Generator, optional
        Makes the result reproducible.
    newdata : DataFrame, optional
        Rows to simulate for (the training rows by default).  Levels of a
        grouping factor the model has not seen get fresh random effects.
    re_form : "~0", None or str
        Terms to condition on (use b̂): none by default, all with None.
    beta, sigma, theta : optional
        Parameters to simulate from instead of the estimates (σ: the residual
        standard deviation, or the square root of a GLMM's dispersion).
    weights : array, optional
        Prior weights (binomial: trials) of the new rows; 1 by default.

    Returns
    -------
    DataFrame
        One row per data row, one column per simulation.  Binomial
        responses are proportions of the trials.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise MixedModelsError(f"n must be a positive integer, got {n!r}")
    rng = random_generator(seed)
    nd = None if newdata is None else new_data(model, newdata)
    plan = _plan(model, nd, re_form, beta, sigma, theta, weights)
    sims = np.column_stack([plan.draw(rng) for _ in range(n)])
    return _frame(sims, model, nd)


def _prior_weights(model, nd, weights) -> np.ndarray:
    if nd is None:
        return model.prior_weights
    if weights is None:
        return np.ones(len(nd.frame))
    return np.asarray(weights, dtype=float)[nd.complete]


def _frame(sims: np.ndarray, model, nd) -> pd.DataFrame:
    columns = [f"sim_{i + 1}" for i in range(sims.shape[1])]
    if nd is None:
        return pd.DataFrame(sims, index=model.obs_index.copy(), columns=columns)
    full = np.full((len(nd.complete), sims.shape[1]), np.nan)
    full[nd.complete] = sims
    return pd.DataFrame(full, index=nd.index, columns=columns)
