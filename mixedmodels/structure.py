"""From formula and data to model structure (lme4's ``lFormula``).

:func:`build_structure` parses the formula, selects complete cases, builds
the response, the fixed-effects term and the random-effects terms, and
runs the named checks that turn bad input into a clear message.  Linear and
generalised models share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .design import formula_context, model_matrix
from .errors import DataError, FormulaError
from .feterm import FeTerm
from .formula import ParsedFormula, RandomTerm, parse_formula
from .modelframe import ModelFrame, check_dataframe, grouping_factor, model_frame, used_columns
from .remat import ReMat

__all__ = ["ModelStructure", "build_structure", "evaluate_expression"]

_WEIGHTS = "(weights)"
_OFFSET = "(offset)"


@dataclass
class ModelStructure:
    """Everything a model needs from formula and data, before any fitting.

    Attributes
    ----------
    formula : ParsedFormula
    frame : ModelFrame
        Complete cases of the used columns.
    response : Series or ndarray
        Evaluated response: a column (possibly categorical), an array, or an
        (n, 2) array for ``cbind(successes, failures)``.
    fe : FeTerm
    reterms : list of ReMat
        In block order: decreasing number of levels.
    theta_perm : ndarray of int
        ``theta_lme4 = theta_internal[theta_perm]``.
    weights, offset : ndarray or None
    """

    formula: ParsedFormula
    frame: ModelFrame
    response: Any
    fe: FeTerm
    reterms: list[ReMat]
    theta_perm: np.ndarray
    weights: np.ndarray | None
    offset: np.ndarray | None
    contrasts: Mapping[str, Any] | None

    @property
    def nobs(self) -> int:
        return self.frame.nobs


def evaluate_expression(expr: str, frame: pd.DataFrame, what: str = "response") -> np.ndarray | pd.Series:
    """Evaluate an expression of columns (``log(y)``, ``cbind(a, n - a)``) on the frame."""
    if expr in frame.columns:
        return frame[expr]
    names: dict[str, Any] = dict(formula_context())
    names["cbind"] = lambda *cols: np.column_stack([np.asarray(c, dtype=float) for c in cols])
    names["I"] = lambda x: x
    names.update({str(c): frame[c].to_numpy() for c in frame.columns})
    try:
        return eval(expr, {"__builtins__": {}}, names)  # noqa: S307 - formulas are user code, as in formulaic
    except NameError as exc:
        raise FormulaError(f"{what} {expr!r}: {str(exc).replace('name', 'column', 1)} in the data") from exc
    except Exception as exc:
        raise FormulaError(f"cannot evaluate the {what} {expr!r}: {exc}") from exc


def _per_row(values: Any, data: pd.DataFrame, what: str) -> np.ndarray:
    """A column name or array of one value per row of ``data``, as floats."""
    if isinstance(values, str):
        if values not in data.columns:
            raise DataError(f"{what} column {values!r} is not in the data")
        values = data[values]
    arr = np.asarray(values, dtype=float) if not isinstance(values, pd.Series) else values.to_numpy(dtype=float, na_value=np.nan)
    if arr.ndim != 1 or len(arr) != len(data):
        raise DataError(f"{what} must have one value per row of the data ({len(data)}), got shape {arr.shape}")
    return arr


def _term_texts(parsed: ParsedFormula) -> list[str]:
    texts = [parsed.response, parsed.fixed, *parsed.offsets]
    for term in parsed.random:
        texts.extend([term.expr, *term.factors])
    return texts


def _check_columns_exist(parsed: ParsedFormula, data: pd.DataFrame) -> None:
    for term in parsed.random:
        for col in term.factors:
            if col not in data.columns:
                raise FormulaError(
                    f"grouping factor {col!r} of random-effects term {term.source!r} is not a column of the data"
                )


def _random_matrix(term: RandomTerm, frame: pd.DataFrame, contrasts) -> tuple[np.ndarray, list[str]]:
    if term.expr.strip() == "1":  # the commonest term needs no formula machinery
        return np.ones((len(frame), 1)), ["(Intercept)"]
    design = model_matrix(term.expr, frame, contrasts, what=f"random-effects term {term.source!r}")
    if design.matrix.shape[1] == 0:
        raise FormulaError(f"random-effects term {term.source!r} has no columns")
    return design.matrix, design.names


def _check_levels(term_name: str, nlevels: int, nobs: int, q: int, strict: bool) -> None:
    """lme4's checkNlevels / checkZdims, one message each."""
    if nlevels < 2:
        raise DataError(f"grouping factor {term_name!r} has only {nlevels} level; it needs at least 2")
    if strict and nlevels >= nobs:
        raise DataError(
            f"grouping factor {term_name!r} has {nlevels} levels for {nobs} observations; "
            "a linear mixed model needs fewer levels than observations (the random effects "
            "and the residual variance would not be identifiable)"
        )
    if strict and q >= nobs:
        raise DataError(
            f"the random-effects term on {term_name!r} has {q} random effects for {nobs} observations; "
            "the variance components would not be identifiable"
        )


def build_reterms(
    parsed: ParsedFormula, frame: pd.DataFrame, contrasts, strict: bool, covariance: Mapping[str, Any] | None = None
) -> tuple[list[ReMat], np.ndarray]:
    """ReMats (amalgamated by grouping factor, most levels first) and the θ permutation.

    ``covariance`` maps grouping-factor names to known covariance matrices
    (see :mod:`mixedmodels.covariance`); those terms must be scalar.
    """
    covariance = dict(covariance or {})
    groups: dict[str, dict[str, Any]] = {}
    for tid, term in enumerate(parsed.random):
        z, names = _random_matrix(term, frame, contrasts)
        g = groups.setdefault(term.group_name, {"factors": term.factors, "parts": []})
        g["parts"].append((tid, z, names))
    remats = []
    for name, g in groups.items():
        refs, levels = grouping_factor(frame, g["factors"])
        remats.append(_amalgamate(name, refs, levels, g["parts"]))
        if name in covariance:
            _attach_covariance(remats[-1], covariance.pop(name))
        for tid, z, _ in g["parts"]:
            # a known covariance identifies the term even with one level per observation
            _check_levels(name, len(levels), len(frame), z.shape[1] * len(levels), strict and not remats[-1].has_factor)
    if covariance:
        raise FormulaError(
            f"covariance given for {', '.join(map(repr, covariance))}, but the formula has no random-effects "
            f"term grouped by it; grouping factors: {', '.join(map(repr, groups))}"
        )
    remats.sort(key=lambda r: -r.nlevels)  # stable: ties keep formula order
    return remats, _theta_permutation(remats)


def _attach_covariance(remat: ReMat, K: Any) -> None:
    from .covariance import check_covariance, covariance_factor

    if remat.k != 1 or len(remat.blocks) != 1:
        raise FormulaError(
            f"a known covariance can only be given for a single scalar term such as (1|{remat.name}); "
            f"{remat.name!r} has columns {', '.join(remat.cnames)}"
        )
    remat.factor = covariance_factor(check_covariance(K, remat.levels, what=f"the covariance for {remat.name!r}"))


def _amalgamate(name: str, refs: np.ndarray, levels: list[str], parts: list) -> ReMat:
    blocks, start = [], 0
    for _, z, _ in parts:
        blocks.append(slice(start, start + z.shape[1]))
        start += z.shape[1]
    z = np.column_stack([z for _, z, _ in parts])
    cnames = [n for _, _, names in parts for n in names]
    return ReMat(name, refs, levels, z, cnames, blocks, [tid for tid, _, _ in parts])


def _theta_permutation(remats: list[ReMat]) -> np.ndarray:
    """Order θ as lme4 does: terms by decreasing number of levels (stable), then within term."""
    keys = []
    for remat in remats:
        for tid, block in zip(remat.term_ids, remat.blocks):
            size = block.stop - block.start
            for pos in range(size * (size + 1) // 2):
                keys.append((-remat.nlevels, tid, pos))
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.intp)


def build_structure(
    formula: str,
    data: pd.DataFrame,
    *,
    weights: Any = None,
    offset: Any = None,
    contrasts: Mapping[str, Any] | None = None,
    strict_levels: bool = True,
    require_random: bool = True,
    covariance: Mapping[str, Any] | None = None,
) -> ModelStructure:
    """Parse, select complete cases, and build response, X and the random-effects terms.

    Parameters
    ----------
    strict_levels : bool
        Apply lme4's checks for linear mixed models (fewer levels and random
        effects than observations).  Generalised models allow one level per
        observation (an observation-level random effect).
    """
    parsed = parse_formula(formula)
    check_dataframe(data)
    if require_random and not parsed.random:
        raise FormulaError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use an ordinary regression"
        )
    _check_columns_exist(parsed, data)
    extra = {}
    if weights is not None:
        extra[_WEIGHTS] = _per_row(weights, data, "weights")
    if offset is not None:
        extra[_OFFSET] = _per_row(offset, data, "offset")
    mf = model_frame(data, used_columns(_term_texts(parsed), data), extra)
    frame = mf.frame
    response = evaluate_expression(parsed.response, frame)
    fe = FeTerm(model_matrix(parsed.fixed, frame, contrasts))
    reterms, perm = build_reterms(parsed, frame, contrasts, strict_levels, covariance) if parsed.random else ([], np.arange(0))
    return ModelStructure(
        formula=parsed,
        frame=mf,
        response=response,
        fe=fe,
        reterms=reterms,
        theta_perm=perm,
        weights=frame[_WEIGHTS].to_numpy(dtype=float) if weights is not None else None,
        offset=_offsets(parsed, frame, offset is not None),
        contrasts=contrasts,
    )


def _offsets(parsed: ParsedFormula, frame: pd.DataFrame, has_argument: bool) -> np.ndarray | None:
    parts = [np.asarray(evaluate_expression(e, frame, "offset"), dtype=float) for e in parsed.offsets]
    if has_argument:
        parts.append(frame[_OFFSET].to_numpy(dtype=float))
    if not parts:
        return None
    total = np.sum(parts, axis=0)
    if total.shape != (len(frame),) or not np.isfinite(total).all():
        raise DataError("the offset must be finite with one value per observation")
    return total
