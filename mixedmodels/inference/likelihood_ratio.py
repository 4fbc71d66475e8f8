"""Likelihood ratio tests of nested mixed models (lme4's ``anova``).

For models M₀ ⊂ M₁ fitted by maximum likelihood to the same data,

    χ² = d₀ - d₁ = -2 (log L₀ - log L₁),   df = dof₁ - dof₀,

compared with a χ²_df distribution (conservative when a variance is tested
on its boundary of 0).  Models are ordered by their number of parameters
and each is tested against the one before it.  REML fits are refitted by
maximum likelihood (with a warning), as lme4 does, because REML criteria
of models with different fixed effects are not comparable.

Nesting is checked as far as it can be from the model matrices: the
fixed-effects columns of the smaller model must lie in the span of the
larger model's, and each random-effects term of the smaller model must have
its grouping factor, with columns in the span of that factor's columns, in
the larger one.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .modelcopy import as_ml

__all__ = ["lrt", "anova"]


def _in_span(A: np.ndarray, B: np.ndarray, tol: float = 1e-8) -> bool:
    """Do the columns of A lie in the column space of B (relative residual below tol)?"""
    if A.shape[1] == 0:
        return True
    if B.shape[1] == 0:
        return False
    coef, *_ = np.linalg.lstsq(B, A, rcond=None)
    resid = A - B @ coef
    return bool(np.linalg.norm(resid) <= tol * max(np.linalg.norm(A), 1.0))


def _random_in_span(small, big) -> str | None:
    """A description of a random-effects term of ``small`` not nested in ``big`` (None if all are)."""
    bigger = {r.name: r for r in big.reterms}
    for r in small.reterms:
        other = bigger.get(r.name)
        if other is None:
            return f"grouping factor {r.name!r} is not in the larger model"
        if not np.array_equal(r.refs, other.refs):
            return f"grouping factor {r.name!r} has different levels in the two models"
        if not _in_span(r.z, other.z):
            return f"the random effects on {r.name!r} ({', '.join(r.cnames)}) are not among the larger model's"
    return None


def _response(model: MixedModel) -> np.ndarray:
    """The response as the user gave it (offsets put back), with the prior weights."""
    return np.concatenate([model.response, model.prior_weights])


def _check_models(models) -> None:
    """Every argument a mixed model (a formula or a table passed by mistake is named)."""
    for i, m in enumerate(models, start=1):
        if not isinstance(m, MixedModel):
            raise MixedModelsError(
                f"argument {i} of the likelihood ratio test is a {type(m).__name__}, not a fitted "
                "mixed model"
            )


def _check_comparable(models) -> None:
    kinds = {m.family is None for m in models}
    if len(kinds) > 1:
        raise MixedModelsError("cannot compare linear and generalised mixed models in one test")
    for m in models:
        m.require_fit(f"a likelihood ratio test of {m.formula!r}")
    first = models[0]
    for m in models[1:]:
        if m.nobs != first.nobs or not np.allclose(_response(m), _response(first)):
            raise MixedModelsError(
                f"models {first.formula!r} and {m.formula!r} were not fitted to the same observations "
                "(different responses or rows dropped for missing values)"
            )
    if not kinds.pop():
        criteria = {m.criterion.split()[0] for m in models}
        # families of one support (Poisson and negative binomial counts) have comparable likelihoods
        families = {
            (m.family.support or type(m.family).__name__, type(m.family.link).__name__)
            for m in models
        }
        if len(criteria) > 1 or len(families) > 1:
            raise MixedModelsError(
                "generalised models must share family, link and nagq to be compared"
            )


def _check_nested(small, big) -> None:
    if not _in_span(small.structure.fe.X, big.structure.fe.X):
        raise MixedModelsError(
            f"model {small.formula!r} is not nested in {big.formula!r}: its fixed effects are not among the "
            "larger model's; pass check_nested=False to compare anyway"
        )
    problem = _random_in_span(small, big)
    if problem:
        raise MixedModelsError(
            f"model {small.formula!r} is not nested in {big.formula!r}: {problem}; "
            "pass check_nested=False to compare anyway"
        )


def lrt(*models, names: list[str] | None = None, check_nested: bool = True) -> pd.DataFrame:
    """Likelihood ratio tests of two or more nested models.

    Parameters
    ----------
    *models : LinearMixedModel or GeneralizedLinearMixedModel
        Fitted to the same data; any order (they are sorted by number of parameters).
    names : list of str, optional
        Row labels (default: the formulas).
    check_nested : bool
        Refuse models that are not nested (see the module docstring).

    Returns
    -------
    DataFrame
        One row per model: ``dof``, ``objective`` (-2 log L), ``aic``, ``bic``,
        ``loglik``, and for all but the first ``chisq``, ``df`` and ``p``.
        χ² is floored at 0 (as lme4); p is NaN when df is 0.
    """
    if len(models) < 2:
        raise MixedModelsError("a likelihood ratio test needs at least two models")
    _check_models(models)
    labels = list(names) if names is not None else [m.formula for m in models]
    if len(labels) != len(models):
        raise MixedModelsError(f"got {len(labels)} names for {len(models)} models")
    _check_comparable(models)
    if any(m.reml for m in models):
        warnings.warn(
            "refitting REML model(s) by maximum likelihood for the likelihood ratio test",
            stacklevel=2,
        )
        models = tuple(as_ml(m) for m in models)
    order = sorted(range(len(models)), key=lambda i: models[i].dof)
    ordered = [models[i] for i in order]
    if check_nested:
        for small, big in zip(ordered, ordered[1:]):
            _check_nested(small, big)
    return _table(ordered, [labels[i] for i in order])


def _table(ordered: list, labels: list[str]) -> pd.DataFrame:
    """Fit statistics of models sorted by dof, with each one's test against the one before."""
    from scipy.stats import chi2

    table = pd.DataFrame(
        {
            "dof": [m.dof for m in ordered],
            "objective": [m.objective for m in ordered],
            "aic": [m.aic for m in ordered],
            "bic": [m.bic for m in ordered],
            "loglik": [m.loglikelihood for m in ordered],
        },
        index=pd.Index(labels, name="model"),
    )
    dev, dof = table["objective"].to_numpy(), table["dof"].to_numpy()
    chisq = np.concatenate([[np.nan], np.maximum(0.0, dev[:-1] - dev[1:])])
    df = np.concatenate([[np.nan], np.diff(dof)]).astype(float)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    return table.assign(chisq=chisq, df=df, p=p)


def anova(*models, type=None, ddf: str | None = None, **kwargs) -> pd.DataFrame:
    """R's ``anova``: for one model the tests of its fixed-effects terms, for several the LRT.

    One model: lmerTest's F tests of a linear model (``type`` 1, 2 or 3, by
    default 3; ``ddf`` ``"satterthwaite"`` or ``"kenward-roger"``), car's Wald
    χ² tests of a generalised one (:mod:`mixedmodels.inference.anova`).
    Several: :func:`lrt` (``names=``, ``check_nested=``), which has no
    ``type`` or ``ddf``.
    """
    _check_models(models)
    if len(models) == 1:
        if kwargs:
            raise MixedModelsError(
                f"anova of one model takes type= and ddf=, not {', '.join(kwargs)}"
            )
        from .anova import anova_table

        return anova_table(models[0], type=3 if type is None else type, ddf=ddf or "satterthwaite")
    if type is not None or ddf is not None:
        raise MixedModelsError(
            "type= and ddf= are for the F tests of one model; a comparison of several models is a "
            "likelihood ratio test"
        )
    return lrt(*models, **kwargs)
