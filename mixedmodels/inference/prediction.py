"""Predictions of a fitted model, on its own data or on new data.

    η = o + Xβ̂ + Σ_{terms kept} Z_t b̂_t,      prediction = η  or  g⁻¹(η)

``re_form`` chooses the random-effects terms kept, as lme4's ``re.form``:
``None`` all of them (conditional predictions), ``"~0"`` none (population
predictions), or a formula of random terms such as ``"~ (1 | Subject)"``.
A level of a grouping factor that the model has not seen has no conditional
mode: with ``new_levels="population"`` its random effect is 0 (the
population prediction for that term), with ``"error"`` it is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, MixedModelsError
from ..model import MixedModel
from .newdata import level_codes, new_data, term_design

__all__ = ["predict", "selected_terms", "term_rows"]

_NONE = {"~0", "0", "~-1", "-1", "NA", "~NA", "NONE"}


def selected_terms(model, re_form: Any) -> set[int]:
    """Indices (formula order) of the random-effects terms that ``re_form`` keeps."""
    terms = model.structure.formula.random
    if re_form is None:
        return set(range(len(terms)))
    if isinstance(re_form, float) and np.isnan(re_form):
        return set()
    if not isinstance(re_form, str):
        raise MixedModelsError(f"re_form must be None, '~0' or a formula string, got {re_form!r}")
    text = re_form.replace(" ", "")
    if text.upper() in _NONE:
        return set()
    from ..formula import parse_formula

    rhs = text[1:] if text.startswith("~") else text
    wanted = parse_formula(f"y ~ 0 + {rhs}").random
    if not wanted:
        raise MixedModelsError(f"re_form {re_form!r} names no random-effects term such as (1 | g)")
    return {_match_term(model, t, re_form) for t in wanted}


def _match_term(model, term, re_form: str) -> int:
    """The model's term with the same grouping factor and the same columns as ``term``."""
    from ..design import model_matrix

    frame = model.structure.frame.frame
    names = model_matrix(term.expr, frame, model.structure.contrasts).names
    for tid, own in enumerate(model.structure.formula.random):
        if own.group_name == term.group_name and term_design(model, tid).names == names:
            return tid
    raise MixedModelsError(
        f"re_form {re_form!r}: the model has no random-effects term {term.source!r}; its terms are "
        + ", ".join(t.source for t in model.structure.formula.random)
    )


def term_rows(
    model, nd, number_unseen: bool = False, keep: set[int] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per ReMat: its model matrix (rows, k) and level codes on ``nd`` (training data if None).

    Unseen levels are coded -1, or with ``number_unseen`` nlevels, nlevels + 1, ...
    (one code per distinct unseen level).  ReMats with no term in ``keep``
    (when given) get zero rows coded -1: their columns need not be in ``nd``.
    """
    if nd is None:
        return [(r.z, r.refs) for r in model.reterms]
    out = []
    terms = model.structure.formula.random
    n = len(nd.frame)
    for r in model.reterms:
        if keep is not None and not keep.intersection(r.term_ids):
            out.append((np.zeros((n, r.k)), np.full(n, -1, dtype=np.intp)))
            continue
        z = np.column_stack([term_design(model, tid).on(nd.frame) for tid in r.term_ids])
        out.append((z, level_codes(r, nd.groups, terms[r.term_ids[0]].factors, number_unseen)))
    return out


def _check_new_levels(model, rows, keep: set[int], new_levels: str, nd) -> None:
    if new_levels not in ("population", "error"):
        raise MixedModelsError(f"new_levels must be 'population' or 'error', got {new_levels!r}")
    if new_levels == "population" or nd is None:
        return
    terms = model.structure.formula.random
    for r, (_, refs) in zip(model.reterms, rows):
        if not keep.intersection(r.term_ids) or (refs >= 0).all():
            continue
        factors = terms[r.term_ids[0]].factors
        labels = nd.groups[list(factors)].astype(str).agg(":".join, axis=1)[refs < 0]
        raise DataError(
            f"grouping factor {r.name!r} has level(s) {', '.join(map(repr, sorted(set(labels))))} that the "
            "model was not fitted with; use new_levels='population' to predict them with a zero random effect"
        )


def random_part(reterms, rows, keep: set[int], b: list[np.ndarray]) -> np.ndarray:
    """Σ over kept terms of z_t · b[level] (0 for levels without a row in b), one value per row."""
    n = len(rows[0][1]) if rows else 0
    total = np.zeros(n)
    for r, (z, refs), bb in zip(reterms, rows, b):
        known = (refs >= 0) & (refs < len(bb))
        for tid, block in zip(r.term_ids, r.blocks):
            if tid in keep:
                contrib = np.einsum("tk,tk->t", z[known][:, block], bb[refs[known]][:, block])
                total[known] += contrib
    return total


def _offset(model, nd, offset) -> np.ndarray | float:
    """The offset on the training data, or the formula's offsets on the new data plus ``offset``."""
    if nd is None:
        return model.offset
    from ..structure import evaluate_expression

    total = sum(
        (
            np.asarray(evaluate_expression(e, nd.frame, "offset"), float)
            for e in model.structure.formula.offsets
        ),
        0.0,
    )
    if offset is not None:
        arr = np.asarray(offset, dtype=float)
        if arr.shape != nd.complete.shape:
            raise DataError(
                f"offset must have one value per row of the new data ({len(nd.complete)}), got shape {arr.shape}"
            )
        return total + arr[nd.complete]
    if "(offset)" in model.structure.frame.frame.columns:
        raise MixedModelsError(
            "the model was fitted with an offset argument: pass offset= (one value per new row)"
        )
    return total


def linear_predictor(
    model: MixedModel,
    newdata: pd.DataFrame | None,
    re_form: Any = None,
    new_levels: str = "population",
    offset=None,
):
    """η on the training data or the complete rows of ``newdata``; also the NewData (or None)."""
    keep = selected_terms(model, re_form)
    nd = None if newdata is None else new_data(model, newdata, keep)
    if nd is not None and len(nd.frame) == 0:
        return np.zeros(0), nd
    X = model.structure.fe.X if nd is None else model.structure.fe.X_on(nd.frame)
    rows = term_rows(model, nd, keep=keep)
    _check_new_levels(model, rows, keep, new_levels, nd)
    eta = (
        X @ model.beta
        + _offset(model, nd, offset)
        + random_part(model.reterms, rows, keep, model.b())
    )
    return eta, nd


def predict(
    model: MixedModel,
    newdata: pd.DataFrame | None = None,
    *,
    re_form: Any = None,
    new_levels: str = "population",
    type: str = "link",
    offset=None,
    se_fit: bool = False,
    interval: str | None = None,
    level: float = 0.95,
) -> pd.Series | pd.DataFrame:
    """Predictions of a fitted linear or generalised mixed model.

    Parameters
    ----------
    newdata : DataFrame, optional
        Rows to predict (the response is not needed); the training data by default.
    re_form : None, "~0" or str
        Random-effects terms to include (see the module docstring).
    new_levels : {"population", "error"}
        What to do with levels of a grouping factor the model has not seen.
    type : {"link", "response"}
        Generalised models: the linear predictor η (default, as lme4) or the
        mean g⁻¹(η).  Ignored for linear models.
    offset : array, optional
        Offset values for the new rows, for a model fitted with an ``offset=`` argument.
    se_fit : bool
        Also return standard errors.  They hold the fixed effects' uncertainty
        only, √(x'Vx) with V = vcov(β̂), as lme4's ``predict(se.fit = TRUE)``:
        neither the conditional modes' uncertainty nor the random effects'
        variance is included, whatever ``re_form``.  On the response scale of
        a GLMM they are the delta method's |dμ/dη| √(x'Vx).
    interval : {None, "confidence"}
        Also return the normal-quantile interval ``lwr``, ``upr`` of that
        uncertainty (on the link scale, transformed by g⁻¹ for
        ``type="response"``, so it stays within the mean's range).
    level : float
        Confidence level of the interval.

    Returns
    -------
    Series, or DataFrame (``fit``, ``se_fit``, ``lwr``, ``upr``) with ``se_fit`` or ``interval``
        One prediction per row of ``newdata`` (NaN for rows with missing
        values), indexed as ``newdata``; on the training data, indexed by
        the rows of the user's data that the model used.
    """
    if type not in ("link", "response"):
        raise MixedModelsError(f"type must be 'link' or 'response', got {type!r}")
    if interval not in (None, "none", "confidence"):
        raise MixedModelsError(
            f"interval must be None or 'confidence' (prediction intervals are not offered), got {interval!r}"
        )
    eta, nd = linear_predictor(model, newdata, re_form, new_levels, offset)
    response = model.family is not None and type == "response"
    values = model.family.link.linkinv(eta) if response else eta
    columns = {"prediction": values}
    if se_fit or interval == "confidence":
        columns = _with_uncertainty(model, nd, eta, response, interval == "confidence", level)
    index = model.obs_index.copy() if nd is None else nd.index
    out = pd.DataFrame({k: _expand(v, nd) for k, v in columns.items()}, index=index)
    if list(columns) == ["prediction"]:
        return out["prediction"]
    return out


def _expand(values: np.ndarray, nd) -> np.ndarray:
    if nd is None:
        return np.asarray(values)
    out = np.full(len(nd.complete), np.nan)
    out[nd.complete] = values
    return out


def _with_uncertainty(model, nd, eta, response: bool, interval: bool, level: float) -> dict:
    """fit, se_fit (and lwr, upr) from the fixed effects' covariance."""
    from scipy.stats import norm

    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise MixedModelsError(f"level must be a number between 0 and 1, got {level!r}")
    X = model.structure.fe.X if nd is None else model.structure.fe.X_on(nd.frame)
    se = np.sqrt(np.einsum("ia,ab,ib->i", X, model.vcov, X)) if len(eta) else np.zeros(0)
    linkinv = model.family.link.linkinv if response else (lambda x: x)
    out = {
        "fit": linkinv(eta),
        "se_fit": np.abs(model.family.link.mu_eta(eta)) * se if response else se,
    }
    if interval:
        z = norm.ppf(0.5 + level / 2)
        a, b = linkinv(eta - z * se), linkinv(eta + z * se)
        out["lwr"], out["upr"] = np.minimum(a, b), np.maximum(a, b)
    return out
