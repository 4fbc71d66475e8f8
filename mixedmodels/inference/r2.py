"""Nakagawa's R² and the intraclass correlation of a mixed model (``performance::r2_nakagawa``, ``icc``).

With the variance of the fixed-effects predictions, of the random effects
and of the residual on the latent (link) scale (Nakagawa, Johnson &
Schielzeth 2017),

    σ²_f = var(Xβ̂)                                  (sample variance, n - 1)
    σ²_r = Σ_terms mean_i( z_i' Σ_term z_i )          (Johnson 2014, random slopes included)
    σ²_ε = σ² for a linear model, else the distribution-specific variance

the marginal and conditional R² and the adjusted and unadjusted ICC are

    R²_m = σ²_f / (σ²_f + σ²_r + σ²_ε),   R²_c = (σ²_f + σ²_r) / (σ²_f + σ²_r + σ²_ε),
    ICC_adj = σ²_r / (σ²_r + σ²_ε),        ICC_unadj = σ²_r / (σ²_f + σ²_r + σ²_ε).

The distribution-specific variance is that of performance 0.10.2 /
insight 0.19.0:

* binomial and Bernoulli: π²/3 (logit), 1 (probit), π²/6 (cloglog);
* Poisson: log(1 + 1/μ₀) (log link, the lognormal approximation) with
  μ₀ = exp(β₀) the intercept of the null model ``y ~ 1 + (random terms)``
  refitted to the same data, and 0.25 for the square-root link.
  (Nakagawa et al. use μ₀ = exp(β₀ + σ²_r/2); insight 0.19 does not.)

A random-effects term with one level per observation (an observation-level
random effect for overdispersion) counts as residual variance of a GLMM, as
insight does, and is left out of a linear model's σ²_r.  Each term's
``z_i`` are its own model-matrix rows (insight takes the same columns from
the fixed-effects matrix, which is the same when the random slopes are also
fixed effects, as they should be).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel

__all__ = ["r2", "icc", "nakagawa_variances", "VarianceRatios"]


class VarianceRatios(pd.Series):
    """A Series of R² or ICC values that prints with its variance components (``attrs``)."""

    @property
    def _constructor(self):
        return pd.Series

    def __repr__(self) -> str:
        lines = [f"# {self.attrs.get('title', '')}", ""]
        width = max(len(str(k)) for k in self.index)
        lines += [f"  {str(k):>{width}}: {v:.3f}" for k, v in self.items()]
        var = self.attrs.get("variances", {})
        if var:
            lines += [
                "",
                "  variances (latent scale): " + ", ".join(f"{k} {v:.4g}" for k, v in var.items()),
            ]
        if self.attrs.get("note"):
            lines += [f"  {self.attrs['note']}"]
        return "\n".join(lines)

    __str__ = __repr__


def _fixed_variance(model: MixedModel) -> float:
    pred = model.structure.fe.X @ model.beta
    return float(np.var(pred, ddof=1)) if len(pred) > 1 else 0.0


def _term_variance(r, scale: float) -> float:
    """mean over observations of z_i' Σ z_i for one random-effects term, Σ = scale² λλ'."""
    if r.has_factor:
        raise MixedModelsError(
            f"R² and ICC are not defined here for the term on {r.name!r} with a known covariance matrix"
        )
    sigma = scale**2 * (r.lambda_ @ r.lambda_.T)
    return float(np.mean(np.einsum("ij,jk,ik->i", r.z, sigma, r.z)))


def _random_variances(model: MixedModel) -> tuple[float, float]:
    """(σ²_r of the grouping terms, variance of observation-level terms)."""
    scale = model.sigma if model.family is None else 1.0
    grouped = observation = 0.0
    for r in model.reterms:
        v = _term_variance(r, scale)
        if r.nlevels == model.nobs:
            observation += v
        else:
            grouped += v
    return grouped, observation


def _null_model_formula(model: MixedModel) -> str:
    parsed = model.structure.formula
    sources = list(dict.fromkeys(t.source for t in parsed.random))
    offsets = [f"offset({o})" for o in parsed.offsets]
    return f"{parsed.response} ~ " + " + ".join(["1", *sources, *offsets])


def _poisson_lognormal(model: MixedModel, data) -> float:
    """log(1 + 1/μ₀), μ₀ = exp(intercept of the null model with the same random effects)."""
    import warnings

    formula = _null_model_formula(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            null = model.update(formula, data=data)
    except MixedModelsError as exc:
        raise MixedModelsError(
            f"the Poisson distribution-specific variance refits the null model {formula!r}, which "
            f"failed ({exc}); pass the data with data=..."
        ) from None
    return math.log1p(1.0 / math.exp(float(null.beta[0])))


_BINARY_LINKS = {"logit": math.pi**2 / 3, "probit": 1.0, "cloglog": math.pi**2 / 6}


def _distribution_variance(model: MixedModel, data) -> float:
    family = model.family
    if family is None:
        return float(model.sigma) ** 2
    link = family.link.name
    if family.name in ("binomial", "bernoulli"):
        if link in _BINARY_LINKS:
            return _BINARY_LINKS[link]
    elif family.name == "poisson":
        if link == "log":
            return _poisson_lognormal(model, data)
        if link == "sqrt":
            return 0.25
    else:
        raise MixedModelsError(
            f"Nakagawa's R² and the ICC are available for linear models and binomial, Bernoulli and "
            f"Poisson GLMMs, not for the {family.name} family"
        )
    raise MixedModelsError(
        f"no distribution-specific variance for the {family.name} family with the {link} link "
        "(binomial: logit, probit, cloglog; Poisson: log, sqrt)"
    )


def nakagawa_variances(model: MixedModel, data=None) -> dict[str, float]:
    """σ²_f, σ²_r and σ²_ε (``fixed``, ``random``, ``residual``) on the latent scale.

    ``data`` is needed only by a Poisson model that no longer holds its data
    (a copy or a loaded model), for the refit of the null model.
    """
    model.require_fit("R² and the ICC")
    grouped, observation = _random_variances(model)
    residual = _distribution_variance(model, data)
    if model.family is not None:
        residual += observation
    return {"fixed": _fixed_variance(model), "random": grouped, "residual": residual}


def _note(model: MixedModel) -> str:
    if model.family is None:
        return "residual variance: sigma^2"
    link = model.family.link.name
    if model.family.name == "poisson":
        return "residual variance: log(1 + 1/mu0), mu0 = exp(intercept of the null model)"
    return {
        "logit": "residual variance: pi^2/3 (logit)",
        "probit": "residual variance: 1 (probit)",
    }.get(link, "residual variance: pi^2/6 (cloglog)")


def _result(values: dict[str, float], title: str, model: MixedModel, var: dict) -> VarianceRatios:
    out = VarianceRatios(values, name=title, dtype=float)
    out.attrs.update(title=title, variances=var, note=_note(model))
    return out


def r2(model: MixedModel, data=None) -> VarianceRatios:
    """Nakagawa's marginal and conditional R² (``performance::r2_nakagawa``).

    ``data``: see :func:`nakagawa_variances` (Poisson models only).

    Returns
    -------
    VarianceRatios
        A Series with ``marginal`` and ``conditional``; ``attrs["variances"]``
        holds σ²_f, σ²_r and σ²_ε (see the module docstring).
    """
    v = nakagawa_variances(model, data)
    total = v["fixed"] + v["random"] + v["residual"]
    values = {"marginal": v["fixed"] / total, "conditional": (v["fixed"] + v["random"]) / total}
    return _result(values, "R2 for Mixed Models (Nakagawa)", model, v)


def icc(model: MixedModel, data=None) -> VarianceRatios:
    """Adjusted and unadjusted intraclass correlation (``performance::icc``).

    ``adjusted`` = σ²_r / (σ²_r + σ²_ε); ``unadjusted`` also counts σ²_f in
    the denominator.
    """
    v = nakagawa_variances(model, data)
    total = v["fixed"] + v["random"] + v["residual"]
    values = {
        "adjusted": v["random"] / (v["random"] + v["residual"]),
        "unadjusted": v["random"] / total,
    }
    return _result(values, "Intraclass Correlation Coefficient", model, v)
