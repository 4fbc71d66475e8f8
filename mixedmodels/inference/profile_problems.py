"""The deviance with one parameter held fixed and the others re-optimised.

A profile of parameter j at value v is

    d_j(v) = min over all other parameters of the deviance (-2 log L),

in lme4's parametrisation: standard deviations and correlations of the
random effects (:mod:`.params`), the residual σ (linear models) and the
fixed effects β.  Each class below answers ``fix(j, v, start)`` with the
minimum and the full parameter vector at it.

Linear models
    For the variance parameters the deviance is profiled over β only,

        d(sd, cor, σ) = log|L_Z|² + r²(θ)/σ² + n log(2πσ²) - Σ log wᵢ,
        θ = θ(sd, cor, σ),

    and the other variance parameters are re-optimised numerically.  For a
    fixed effect βⱼ = v the column xⱼ moves into the offset, y - v xⱼ is the
    response of a model without that column, and that model is refitted
    (profiled over θ, σ and the other β, as lme4 does).
Generalised models
    The Laplace (or quadrature) deviance of (θ, β) is re-optimised over all
    parameters but the fixed one; there is no σ.  A model's extra parameters
    (``extra_parameters``: zero-inflation coefficients, a log dispersion)
    join β.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np

from ..errors import MixedModelsError
from ..model import MixedModel
from .bounded import minimize_bounded
from .modelcopy import as_ml, copy_model
from .params import NotPositiveDefinite, variance_layout

__all__ = ["profile_problem", "LmmProfile", "GlmmProfile"]


class _Problem:
    """Names, estimate, bounds and scales shared by both model kinds."""

    names: list[str]
    kinds: list[str]  # "sd", "cor", "sigma" or "beta" per parameter
    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    scale: np.ndarray
    base: float

    def _setup(
        self, sdcor: np.ndarray, sigma: float | None, beta: np.ndarray, se: np.ndarray, coefnames
    ) -> None:
        lo, hi = self.layout.bounds()
        sd = self.layout.is_sd()
        extra = [] if sigma is None else [sigma]
        self.names = (
            self.layout.names() + (["sigma"] if sigma is not None else []) + list(coefnames)
        )
        self.kinds = (
            [("sd" if s else "cor") for s in sd] + ["sigma"] * len(extra) + ["beta"] * len(beta)
        )
        self.estimate = np.concatenate([sdcor, extra, beta])
        self.lower = np.concatenate([lo, [0.0] * len(extra), np.full(len(beta), -np.inf)])
        self.upper = np.concatenate([hi, [np.inf] * len(extra), np.full(len(beta), np.inf)])
        var_scale = np.where(sd, np.maximum(np.abs(sdcor), 1e-2 * max(sigma or 1.0, 1e-8)), 0.5)
        self.scale = np.concatenate([var_scale, extra, se])

    def _optimize_others(
        self, fun, j: int, value: float, start: np.ndarray, idx: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Minimise ``fun`` over the parameters ``idx`` (not containing j) with parameter j at ``value``."""
        others = idx[idx != j]
        full = start.copy()
        full[j] = value

        def inner(x: np.ndarray) -> float:
            full[others] = x
            return fun(full)

        dev, xmin = minimize_bounded(
            inner, start[others], self.lower[others], self.upper[others], self.scale[others]
        )
        full[others] = xmin
        return dev, full


class LmmProfile(_Problem):
    """Profiles of a linear mixed model (fitted by ML; a REML fit is refitted by ML first)."""

    def __init__(self, model):
        self.m = copy_model(as_ml(model))
        m = self.m
        self.layout = variance_layout(m)
        self.ntheta = len(m.theta)
        self.base = m.objective
        self._setup(
            self.layout.to_sdcor(m.theta, m.sigma), m.sigma, m.beta.copy(), m.stderror, m.coefnames
        )
        self._theta_hat = m.theta.copy()
        self._reduced: dict[int, object] = {}

    @property
    def nvar(self) -> int:
        """Number of variance parameters (sd/cor and σ)."""
        return self.ntheta + 1

    def variance_deviance(self, pars: np.ndarray) -> float:
        """d(sd, cor, σ) profiled over β only; ∞ for values that give no covariance matrix."""
        sigma = pars[self.ntheta]
        try:
            theta = self.layout.to_theta(pars[: self.ntheta], sigma)
        except NotPositiveDefinite:
            return math.inf
        return self.m.objective_at(theta, sigma=sigma)

    def fix(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and parameters at their conditional optimum with parameter j = ``value``."""
        if self.kinds[j] == "beta":
            return self._fix_beta(j - self.nvar, value, start)
        fun = lambda full: self.variance_deviance(full[: self.nvar])  # noqa: E731
        dev, full = self._optimize_others(fun, j, value, start, np.arange(self.nvar))
        self.variance_deviance(full[: self.nvar])  # leave the model at the optimum for β
        full[self.nvar :] = self.m.beta
        return dev, full

    def _fix_beta(self, k: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        red = self._reduced_model(k)
        try:
            initial = self.layout.to_theta(start[: self.ntheta], start[self.ntheta])
        except NotPositiveDefinite:
            initial = self._theta_hat.copy()
        red.optsum.initial = initial
        # a warm start is close to the optimum: steps of lme4's size (0.75) can jump to a bound
        red.optsum.initial_step = np.maximum(0.1 * np.abs(initial), 0.02)
        red.refit(self.m.response - self.m.structure.fe.X[:, k] * value)
        beta = np.insert(red.beta, k, value)
        full = np.concatenate([self.layout.to_sdcor(red.theta, red.sigma), [red.sigma], beta])
        return red.objective, full

    def _reduced_model(self, k: int):
        """The model without fixed-effect column k (its term moves to the offset), built once."""
        if k not in self._reduced:
            from ..design import Design
            from ..feterm import FeTerm

            m = self.m
            keep = [i for i in range(len(m.beta)) if i != k]
            fe = FeTerm(Design(m.structure.fe.X[:, keep], [m.coefnames[i] for i in keep], None, {}))
            structure = replace(m.structure, fe=fe, reterms=copy.deepcopy(m.reterms))
            self._reduced[k] = type(m).from_structure(
                structure, m.response.copy(), index=m.obs_index
            )
        return self._reduced[k]


class GlmmProfile(_Problem):
    """Profiles over (sd, cor, β, extra parameters) with nothing profiled out, as lme4 does for GLMMs.

    For generalised models and for a heteroskedastic linear model, whose θ is
    on the response's scale (σ = 1 in the sd/cor mapping).
    """

    def __init__(self, model):
        if "fast" in model.criterion:
            raise MixedModelsError(
                "profiling needs a full fit of the generalised model: fit it with fast=False "
                "(the fast fit does not optimise the deviance over the fixed effects)"
            )
        if model.family is not None and model.family.has_dispersion:
            raise MixedModelsError(
                f"profiles of generalised models with a dispersion parameter ({type(model.family).__name__}) "
                "are not available; use confint(method='wald') or method='bootstrap'"
            )
        self.m = copy_model(model)
        self.layout = variance_layout(self.m)
        self.ntheta, self.p = len(self.m.theta), len(self.m.beta)
        self.base = self.m.objective
        extra_names, extra, extra_se = self.m.extra_parameters()
        # steps scale with the standard errors; one unit where a Hessian gives none
        extra_se = np.where(np.isfinite(extra_se) & (extra_se > 0), extra_se, 1.0)
        self._setup(  # extra parameters (zero inflation, log dispersion) are profiled as β is
            self.layout.to_sdcor(self.m.theta, 1.0),
            None,
            np.concatenate([self.m.beta, extra]),
            np.concatenate([self.m.stderror, extra_se]),
            list(self.m.coefnames) + extra_names,
        )

    @property
    def nvar(self) -> int:
        """Number of variance parameters (sd/cor; there is no σ)."""
        return self.ntheta

    def deviance(self, pars: np.ndarray) -> float:
        """The model's Laplace/quadrature deviance at (sd, cor, β)."""
        try:
            theta = self.layout.to_theta(pars[: self.ntheta], 1.0)
        except NotPositiveDefinite:
            return math.inf
        try:
            beta, extra = pars[self.ntheta : self.ntheta + self.p], pars[self.ntheta + self.p :]
            if len(extra):
                return self.m.objective_at_extra(theta, beta, extra)
            return self.m.objective_at(theta, beta=beta)
        except (ArithmeticError, MixedModelsError):
            return math.inf

    def fix(self, j: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and parameters at their conditional optimum with parameter j = ``value``."""
        return self._optimize_others(self.deviance, j, value, start, np.arange(len(self.names)))


def profile_problem(model: MixedModel) -> LmmProfile | GlmmProfile:
    """The profile problem of a fitted mixed model.

    A linear model with one residual σ profiles β out of its variance
    parameters; every other model (generalised, or a residual variance that
    varies by observation) re-optimises all of its parameters, its
    :meth:`~mixedmodels.MixedModel.extra_parameters` included, on θ's own scale.
    """
    model.require_fit("a profile")
    if model.family is None and model.sigma is not None:
        return LmmProfile(model)
    return GlmmProfile(model)
