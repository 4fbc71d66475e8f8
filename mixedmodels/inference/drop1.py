"""Single-term deletions of the fixed effects with likelihood ratio tests (lme4's ``drop1``).

Each fixed-effects term that no other term contains (R's ``drop.scope``:
``a`` is not dropped while ``a:b`` is in the model) is removed in turn and
the model refitted, keeping the random effects.  As lme4's ``drop1`` does
(its ``extractAIC`` calls ``refitML``), every model is compared by maximum
likelihood: a REML fit and its reduced models are refitted by ML, because
REML criteria of models with different fixed effects are not comparable.
With ``test="Chisq"``

    LRT = d_reduced − d_full,   df = number of coefficients of the term,

compared with χ²_df (a Wald-free test; like every LRT of fixed effects in
a mixed model it is somewhat anti-conservative in small samples).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .modelcopy import as_ml

__all__ = ["drop1", "droppable_terms"]


def _terms(model: MixedModel) -> list:
    return list(model.structure.fe.design.spec.formula)


def droppable_terms(model: MixedModel) -> list[str]:
    """Fixed-effects terms (not the intercept) whose factors no other term includes."""
    terms = [t for t in _terms(model) if str(t) != "1"]
    factors = {str(t): {str(f) for f in t.factors} for t in terms}
    return [
        name for name, fs in factors.items()
        if not any(other != name and fs < ofs for other, ofs in factors.items())
    ]  # fmt: skip


def _reduced_formula(model: MixedModel, drop: str) -> str:
    parsed = model.structure.formula
    kept = [str(t) for t in _terms(model) if str(t) != drop]
    fixed = kept if "1" in kept else ["0", *kept]
    random = list(dict.fromkeys(f"({t.source.strip('()')})" for t in parsed.random))
    offsets = [f"offset({o})" for o in parsed.offsets]
    return f"{parsed.response} ~ " + " + ".join([*fixed, *random, *offsets])


def _refit(model: MixedModel, formula: str, data) -> MixedModel:
    changes = {"reml": False} if model.reml else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model.update(formula, data=data, **changes)
        except MixedModelsError as exc:
            raise MixedModelsError(f"drop1: refitting {formula!r} failed ({exc})") from None


def drop1(model: MixedModel, test: str = "Chisq", data=None) -> pd.DataFrame:
    """Refit without each droppable fixed-effects term; AIC and (``test="Chisq"``) LRTs.

    Parameters
    ----------
    model : MixedModel
        A fitted model (not changed).
    test : {"Chisq", "none"}
        Likelihood ratio tests or AIC alone.
    data : DataFrame, optional
        The data, for a model that does not keep them (a copy or a loaded model).

    Returns
    -------
    DataFrame
        Rows ``<none>`` (the full model) and one per term: ``df`` (the term's
        coefficients), ``aic`` (of the ML fit), and ``lrt`` and ``p`` with
        ``test="Chisq"``; ``attrs["models"]`` holds the reduced fits.
    """
    from scipy.stats import chi2

    if test not in ("Chisq", "none"):
        raise MixedModelsError(f"test must be 'Chisq' or 'none', got {test!r}")
    model.require_fit("drop1")
    terms = droppable_terms(model)
    if not terms:
        raise MixedModelsError(f"the model {model.formula!r} has no fixed-effects term to drop")
    full = as_ml(model)
    reduced = {t: _refit(model, _reduced_formula(model, t), data) for t in terms}
    dev = np.array([full.objective, *(m.objective for m in reduced.values())])
    df = np.array([np.nan, *(full.dof - m.dof for m in reduced.values())], dtype=float)
    aic = np.array([full.aic, *(m.aic for m in reduced.values())])
    out = pd.DataFrame({"df": df, "aic": aic}, index=pd.Index(["<none>", *terms], name="term"))
    if test == "Chisq":
        lrt = np.concatenate([[np.nan], np.maximum(dev[1:] - dev[0], 0.0)])
        out["lrt"], out["p"] = lrt, np.concatenate([[np.nan], chi2.sf(lrt[1:], df[1:])])
    out.attrs.update(
        models=reduced, note="all models fitted by maximum likelihood (as lme4's drop1)"
    )
    return out
