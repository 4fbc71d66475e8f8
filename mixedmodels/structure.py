"""From formula and data to model structure (lme4's ``lFormula``).

:func:`build_structure` parses the formula, selects complete cases, builds
the response, the fixed-effects term and the random-effects terms, and
runs the named checks that turn bad input into a clear message.  Linear and
generalised models share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .covstruct import STRUCTURE_ALIASES, CovStructure, structure_for
from .design import check_contrasts, formula_context, model_matrix
from .errors import DataError, FormulaError
from .feterm import FeTerm
from .formula import ParsedFormula, RandomTerm, parse_formula, split_top_level
from .modelframe import (
    NAME_PATTERN,
    ModelFrame,
    check_dataframe,
    check_magnitude,
    check_unique_columns,
    grouping_factor,
    identifiers,
    model_frame,
    used_columns,
)
from .remat import ReMat
from .separation import check_constant_response

__all__ = [
    "ModelStructure",
    "build_structure",
    "evaluate_expression",
    "lme4_term_order",
    "lme4_blocks",
]

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


def evaluate_expression(
    expr: str, frame: pd.DataFrame, what: str = "response"
) -> np.ndarray | pd.Series:
    """Evaluate an expression of columns (``log(y)``, ``cbind(a, n - a)``) on the frame.

    Column names that are not Python names (back-quoted names with spaces,
    R's dotted ``my.var``) are replaced by placeholders first; a column
    named like a function (``exp``) is the column.
    """
    if expr in frame.columns:
        return frame[expr]
    bare = expr.strip().strip("`") if _is_one_name(expr) else None
    if bare is not None and bare in frame.columns:
        return frame[bare]
    text, columns = _placeholders(expr, frame)
    names: dict[str, Any] = dict(formula_context())
    names["cbind"] = lambda *cols: np.column_stack([np.asarray(c, dtype=float) for c in cols])
    names["I"] = lambda x: x
    names.update(columns)
    try:
        value = eval(text, {"__builtins__": {}}, names)  # noqa: S307 - formulas are user code, as in formulaic
    except NameError as exc:
        raise FormulaError(
            f"{what} {expr!r}: {str(exc).replace('name', 'column', 1)} in the data"
        ) from exc
    except Exception as exc:
        raise FormulaError(f"cannot evaluate the {what} {expr!r}: {exc}") from exc
    _check_evaluated(value, expr, what)
    return value


def _is_one_name(expr: str) -> bool:
    names = identifiers(expr)
    return len(names) == 1 and expr.strip().strip("`") == names[0]


def _placeholders(expr: str, frame: pd.DataFrame) -> tuple[str, dict[str, np.ndarray]]:
    """``expr`` with each column name replaced by a Python name, and those names' values."""
    columns: dict[str, np.ndarray] = {}
    by_name = {str(c): c for c in frame.columns}

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        called = re.match(r"\s*\(", expr[match.end() :]) is not None and match.group(2) is not None
        if (
            name not in by_name or called
        ):  # exp(x) is the function even when a column is named exp, as in R
            return match.group(0)
        key = f"_column_{list(by_name).index(name)}"
        columns[key] = frame[by_name[name]].to_numpy()
        return key

    return NAME_PATTERN.sub(substitute, expr), columns


def _is_numeric(values: Any) -> bool:
    if isinstance(values, pd.Series):
        return pd.api.types.is_numeric_dtype(values) and not isinstance(
            values.dtype, pd.CategoricalDtype
        )
    return np.asarray(values).dtype.kind in "fiub"


def _check_evaluated(value: Any, expr: str, what: str) -> None:
    """A complex or overflowing result of an expression is a DataError naming it."""
    arr = np.asarray(value) if not isinstance(value, pd.Series) else value
    if np.iscomplexobj(arr):
        raise DataError(f"the {what} {expr!r} is complex-valued; a mixed model needs real numbers")
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "fiu":
        if not np.isfinite(arr).all():
            raise DataError(
                f"the {what} {expr!r} has non-finite values (NaN or infinite) after evaluation"
            )
        check_magnitude(arr, f"the {what} {expr!r}")
    elif isinstance(arr, pd.Series):
        check_magnitude(arr, f"the {what} {expr!r}")


def _per_row(values: Any, data: pd.DataFrame, what: str) -> np.ndarray:
    """A column name or array of one value per row of ``data``, as real floats.

    Categorical, text, complex or date values are refused: their codes or
    real parts would be used silently otherwise.
    """
    name = f"{what} column {values!r}" if isinstance(values, str) else what
    if isinstance(values, str):
        if values not in data.columns:
            raise DataError(f"{what} column {values!r} is not in the data")
        check_unique_columns(data, [values])
        values = data[values]
    if isinstance(values, pd.api.extensions.ExtensionArray):  # a Categorical keeps its dtype
        values = pd.Series(values)
    series = values if isinstance(values, pd.Series) else None
    arr = np.asarray(values) if series is None else None
    if arr is not None and (arr.ndim != 1 or len(arr) != len(data)):
        raise DataError(
            f"{what} must have one value per row of the data ({len(data)}), got shape {arr.shape}"
        )
    series = pd.Series(arr) if series is None else series
    _check_numeric(series, name)
    out = series.to_numpy(dtype=float, na_value=np.nan)
    if out.ndim != 1 or len(out) != len(data):
        raise DataError(
            f"{what} must have one value per row of the data ({len(data)}), got shape {out.shape}"
        )
    check_magnitude(out[np.isfinite(out)], name)
    return out


def _check_numeric(series: pd.Series, name: str) -> None:
    dtype = series.dtype
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{name} is complex-valued; it must be real numbers")
    numeric = pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    numbers = ("integer", "floating", "mixed-integer-float", "empty")
    if not numeric and pd.api.types.infer_dtype(series, skipna=True) not in numbers:
        raise DataError(
            f"{name} must be numbers, got {dtype} values (a categorical's codes are not weights); "
            "convert it with pandas.to_numeric if the values are numbers written as text"
        )


def _term_texts(parsed: ParsedFormula) -> list[str]:
    texts = [parsed.response, parsed.fixed, *parsed.offsets]
    for term in parsed.random:
        texts.extend([term.expr, *(f"`{col}`" for col in term.factors)])
    return texts


def _check_columns_exist(parsed: ParsedFormula, data: pd.DataFrame) -> None:
    for term in parsed.random:
        for col in term.factors:
            if col not in data.columns:
                raise FormulaError(
                    f"grouping factor {col!r} of random-effects term {term.source!r} is not a column of the data"
                )


def _random_matrix(
    term: RandomTerm, frame: pd.DataFrame, contrasts
) -> tuple[np.ndarray, list[str]]:
    if term.expr.strip() == "1":  # the commonest term needs no formula machinery
        return np.ones((len(frame), 1)), ["(Intercept)"]
    design = model_matrix(term.expr, frame, contrasts, what=f"random-effects term {term.source!r}")
    if design.matrix.shape[1] == 0:
        raise FormulaError(f"random-effects term {term.source!r} has no columns")
    return design.matrix, design.names


def _check_levels(term_name: str, nlevels: int, nobs: int, q: int, strict: bool) -> None:
    """lme4's checkNlevels / checkZdims, one message each."""
    if nlevels < 2:
        raise DataError(
            f"grouping factor {term_name!r} has only {nlevels} level; it needs at least 2"
        )
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
    parsed: ParsedFormula,
    frame: pd.DataFrame,
    contrasts,
    strict: bool,
    covariance: Mapping[str, Any] | None = None,
) -> tuple[list[ReMat], np.ndarray]:
    """ReMats (amalgamated by grouping factor, most levels first) and the θ permutation.

    ``covariance`` maps grouping-factor names to known covariance matrices
    (see :mod:`mixedmodels.covariance`); those terms must be scalar.
    """
    covariance = _covariance_mapping(covariance)
    groups: dict[str, dict[str, Any]] = {}
    for tid, term in enumerate(parsed.random):
        z, names = _random_matrix(term, frame, contrasts)
        g = groups.setdefault(term.group_name, {"factors": term.factors, "parts": []})
        g["parts"].append((tid, z, names, _term_structure(term, frame, z.shape[1])))
    remats = []
    for name, g in groups.items():
        refs, levels = grouping_factor(frame, g["factors"])
        remats.append(_amalgamate(name, refs, levels, g["parts"]))
        if name in covariance:
            _attach_covariance(remats[-1], covariance.pop(name))
        for _tid, z, _, cov in g["parts"]:
            # a known covariance identifies the term even with one level per observation, and a
            # structured one has few parameters however many random effects it has
            _check_levels(
                name,
                len(levels),
                len(frame),
                0 if cov is not None else z.shape[1] * len(levels),
                strict and not remats[-1].has_factor,
            )
    if covariance:
        raise FormulaError(
            f"covariance given for {', '.join(map(repr, covariance))}, but the formula has no random-effects "
            f"term grouped by it; grouping factors: {', '.join(map(repr, groups))}"
        )
    rank = _lme4_rank(remats)
    remats.sort(
        key=lambda r: min(rank[tid] for tid in r.term_ids)
    )  # most levels first, ties as lme4
    return remats, _theta_permutation(remats)


def _covariance_mapping(covariance: Any) -> dict[str, Any]:
    """``covariance=`` as a dict from grouping-factor name to matrix; anything else is refused."""
    if covariance is None:
        return {}
    if not isinstance(covariance, Mapping):
        raise FormulaError(
            f"covariance= must map grouping-factor names to matrices, e.g. {{'line': K}}; "
            f"got a {type(covariance).__name__}"
        )
    return dict(covariance)


def _attach_covariance(remat: ReMat, K: Any) -> None:
    from .covariance import check_covariance, covariance_factor

    frame_complex = isinstance(K, pd.DataFrame) and any(
        pd.api.types.is_complex_dtype(t) for t in K.dtypes
    )
    if frame_complex or np.iscomplexobj(K):
        raise DataError(
            f"the covariance for {remat.name!r} is complex-valued; it must be a real symmetric matrix"
        )

    if remat.k != 1 or len(remat.blocks) != 1:
        raise FormulaError(
            f"a known covariance can only be given for a single scalar term such as (1|{remat.name}); "
            f"{remat.name!r} has columns {', '.join(remat.cnames)}"
        )
    remat.factor = covariance_factor(
        check_covariance(K, remat.levels, what=f"the covariance for {remat.name!r}")
    )


def _amalgamate(name: str, refs: np.ndarray, levels: list[str], parts: list) -> ReMat:
    blocks, start = [], 0
    for _, z, *_ in parts:
        blocks.append(slice(start, start + z.shape[1]))
        start += z.shape[1]
    z = np.column_stack([p[1] for p in parts])
    cnames = [n for p in parts for n in p[2]]
    structures = [p[3] for p in parts]
    return ReMat(
        name, refs, levels, z, cnames, blocks, [p[0] for p in parts], structures=structures
    )


def _term_structure(term: RandomTerm, frame: pd.DataFrame, k: int) -> CovStructure | None:
    """The term's CovStructure (None when unstructured), with the checks its columns need."""
    kind = STRUCTURE_ALIASES.get(term.structure, (term.structure,))[0]
    if kind in ("ar1", "toep"):
        _check_time_factor(term, frame, kind)
    return structure_for(term.structure, term.hom, k, term.source)


def _check_time_factor(term: RandomTerm, frame: pd.DataFrame, kind: str) -> None:
    """ar1 and toep need one column per time point: ``0 + f`` with f an ordered categorical."""
    pieces = split_top_level(term.expr)
    names = [p for op, p in pieces if op == "+" and p != "0"]
    no_intercept = ("+", "0") in pieces or ("-", "1") in pieces
    column = names[0].strip("`") if len(names) == 1 else None
    hint = (
        f"{kind}() in {term.source!r} needs one column per time point: write it as "
        f"{kind}(0 + f | g) with f an ordered categorical whose levels are the times in order "
        "(pandas.Categorical(values, categories=times, ordered=True))"
    )
    if not no_intercept or column is None or column not in frame.columns:
        raise FormulaError(hint)
    values = frame[column]
    if not (isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered):
        what = (
            "an unordered categorical"
            if isinstance(values.dtype, pd.CategoricalDtype)
            else f"{values.dtype} values"
        )
        raise FormulaError(f"{hint}; {column!r} has {what}")


def lme4_term_order(nlevels: list[int]) -> list[int]:
    """Formula-order indices of the random-effects terms in lme4's order.

    As ``mkReTrms``: terms already in non-increasing order of their number
    of levels keep formula order; otherwise they are put in ``rev(order(nl))``
    order, decreasing number of levels with ties in *reversed* formula order.
    """
    nl = np.asarray(nlevels)
    if np.any(np.diff(nl) > 0):
        return [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    return list(range(len(nl)))


def _lme4_rank(remats: list[ReMat]) -> dict[int, int]:
    """Position of each term (by formula index) in :func:`lme4_term_order`."""
    nlevels = {tid: r.nlevels for r in remats for tid in r.term_ids}
    order = lme4_term_order([nlevels[tid] for tid in sorted(nlevels)])
    return {tid: pos for pos, tid in enumerate(order)}


def lme4_blocks(remats: list[ReMat]) -> list[tuple[int, int]]:
    """(ReMat index, block index) of each original term, in lme4's term order.

    What VarCorr, ranef and printing should iterate over to list terms as lme4 does.
    """
    rank = _lme4_rank(remats)
    pairs = [
        (rank[tid], ri, bi) for ri, r in enumerate(remats) for bi, tid in enumerate(r.term_ids)
    ]
    return [(ri, bi) for _, ri, bi in sorted(pairs)]


def _theta_permutation(remats: list[ReMat]) -> np.ndarray:
    """``theta_lme4 = theta_internal[perm]``: θ by lme4's term order, then within term.

    Internally θ follows the ReMats and their blocks; lme4 has one block per
    term (terms on one grouping factor are not amalgamated), in
    :func:`lme4_term_order`, each term's lower triangle column by column.
    """
    rank = _lme4_rank(remats)
    keys = []
    for remat in remats:
        for bi, tid in enumerate(remat.term_ids):
            keys.extend((rank[tid], pos) for pos in range(remat.block_ntheta(bi)))
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
    data = check_dataframe(data)
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
    used = used_columns(_term_texts(parsed), data)
    _warn_unused_contrasts(contrasts, used)
    mf = model_frame(data, used, extra)
    frame = mf.frame
    response = evaluate_expression(parsed.response, frame)
    if _is_numeric(response):  # text and categories get the model's own type check first
        check_constant_response(response, None, parsed.response)
    fe = FeTerm(model_matrix(parsed.fixed, frame, contrasts))
    reterms, perm = (
        build_reterms(parsed, frame, contrasts, strict_levels, covariance)
        if parsed.random
        else ([], np.arange(0))
    )
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


def _warn_unused_contrasts(contrasts: Any, used: list[str]) -> None:
    """As R's model.matrix: contrasts for a column the model does not use are ignored, with a warning."""
    import warnings

    absent = [str(c) for c in check_contrasts(contrasts) if c not in used]
    if absent:
        warnings.warn(
            f"contrasts given for {', '.join(map(repr, absent))}, which the formula does not use; ignored",
            stacklevel=4,
        )


def _offsets(parsed: ParsedFormula, frame: pd.DataFrame, has_argument: bool) -> np.ndarray | None:
    parts = [
        np.asarray(evaluate_expression(e, frame, "offset"), dtype=float) for e in parsed.offsets
    ]
    if has_argument:
        parts.append(frame[_OFFSET].to_numpy(dtype=float))
    if not parts:
        return None
    total = np.sum(parts, axis=0)
    if total.shape != (len(frame),) or not np.isfinite(total).all():
        raise DataError("the offset must be finite with one value per observation")
    return total
