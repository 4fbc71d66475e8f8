"""Model matrices from formula right-hand sides, through formulaic.

Both the fixed-effects matrix X and each random-effects term's small dense
matrix are built here, so that contrasts, the functions available in
formulas (``log``, ``exp``, ``sqrt``, ...) and column naming are the same for
both.  Columns are named as lme4 names them (``(Intercept)``, ``period2``,
``btypescold:situself``) rather than formulaic's ``period[T.2]``.
"""

from __future__ import annotations

import functools
import importlib
import keyword
import re
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError
from .modelframe import check_magnitude

__all__ = [
    "Design",
    "model_matrix",
    "formula_context",
    "lme4_name",
    "r_to_formulaic",
    "check_contrasts",
]

_CONTRAST_NAMES = {
    "treatment": "TreatmentContrasts",
    "sum": "SumContrasts",
    "helmert": "HelmertContrasts",
    "poly": "PolyContrasts",
    "diff": "DiffContrasts",
    "sas": "SASContrasts",
}


class Design:
    """A realised model matrix with the formulaic spec that rebuilds it on new data.

    ``spec`` may be given as a pending source instead, ``(formula text, the
    columns it uses)``: the spec is then made by formulaic on first use (new
    data, pickling, the marginaleffects adapter).  A fit never needs it, and
    for a sum of plain columns :func:`model_matrix` builds the matrix itself.
    """

    def __init__(
        self,
        matrix: np.ndarray,
        names: list[str],
        spec: Any,
        context: dict[str, Any],
        pending: tuple[str, dict[str, Any]] | None = None,
    ):
        self.matrix, self.names, self.context = matrix, names, context
        self._spec, self._pending = spec, pending

    @property
    def spec(self) -> Any:
        """formulaic's ModelSpec of the matrix (made now if it was left pending)."""
        if self._pending is not None:
            text, columns = self._pending
            mm = _parsed(text).get_model_matrix(
                pd.DataFrame(columns, copy=False),
                context=self.context,
                na_action="raise",
                output="numpy",
            )
            self._spec, self._pending = mm.model_spec, None
        return self._spec

    def on(self, data: pd.DataFrame) -> np.ndarray:
        """The same columns evaluated on ``data`` (levels and transforms as learnt)."""
        mm = self.spec.get_model_matrix(data, context=self.context, na_action="raise")
        return np.asarray(mm, dtype=float)

    def __getstate__(self) -> dict[str, Any]:
        """Modules in the formula context (``np``) are pickled by name and imported again on load."""
        state = dict(self.__dict__, _spec=self.spec)  # the spec itself, never pending columns
        state["_pending"] = None
        context = state.get("context") or {}
        state["context"] = {k: v for k, v in context.items() if not isinstance(v, types.ModuleType)}
        state["_modules"] = {
            k: v.__name__ for k, v in context.items() if isinstance(v, types.ModuleType)
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        modules = state.pop("_modules", {})
        state["context"] = {
            **state["context"],
            **{k: importlib.import_module(m) for k, m in modules.items()},
        }
        if "spec" in state:  # pickled before the spec could be pending
            state["_spec"], state["_pending"] = state.pop("spec"), None
        self.__dict__.update(state)


def formula_context(contrasts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Names available inside formulas: numpy's elementwise functions, R's ``factor`` and contrasts.

    ``factor(x)`` (and ``as.factor(x)``, spelt ``as_factor`` for Python) is
    formulaic's ``C``: the column is treated as categorical, with its levels
    remembered for new data, and named as R names it (``factor(cyl)6``).
    """
    ctx = dict(_functions())
    for col, spec in check_contrasts(contrasts).items():
        ctx[_contrast_var(col)] = obj = _contrast_object(col, spec)
        if callable(obj):
            ctx[_FUNCTION_ALIAS + _contrast_var(col)] = obj
    return ctx


@functools.lru_cache(maxsize=1)
def _functions() -> dict[str, Any]:
    """The formula functions and their aliases (made once; callers get copies)."""
    from formulaic.transforms import C

    ctx: dict[str, Any] = {
        "factor": C,
        "as_factor": C,
        "np": np,
        "log": np.log,
        "exp": np.exp,
        "sqrt": np.sqrt,
        "abs": np.abs,
        "log2": np.log2,
        "log10": np.log10,
        "log1p": np.log1p,
        "expm1": np.expm1,
        "sin": np.sin,
        "cos": np.cos,
    }
    ctx.update({_FUNCTION_ALIAS + name: f for name, f in list(ctx.items()) if callable(f)})
    return ctx


_FUNCTION_ALIAS = "_fn_"
"""Prefix of a second name for each formula function: formulaic looks names up in the
data first, so ``exp(x)`` fails when the data have a column ``exp`` (R looks
functions up separately); such calls are rewritten to ``_fn_exp(x)``."""


def unshadow_calls(rhs: str, columns) -> str:
    """Calls to formula functions that share their name with a data column, spelt with the alias."""
    for name in set(map(str, columns)) & _functions().keys():
        rhs = re.sub(rf"(?<![\w.`]){re.escape(name)}(?=\s*\()", _FUNCTION_ALIAS + name, rhs)
    return rhs


def check_contrasts(contrasts: Any) -> Mapping[str, Any]:
    """``contrasts=`` as a mapping from column name to contrasts; anything else is a FormulaError."""
    if contrasts is None:
        return {}
    if not isinstance(contrasts, Mapping):
        raise FormulaError(
            "contrasts= must map column names to contrasts, e.g. {'Machine': 'sum'}; "
            f"got a {type(contrasts).__name__}"
        )
    return contrasts


def _contrast_var(col: str) -> str:
    return "__contrasts_" + re.sub(r"\W", "_", str(col))


def _contrast_object(col: str, spec: Any) -> Any:
    from formulaic.transforms import contrasts as fc

    if isinstance(spec, str):
        key = spec.lower().removeprefix("contr.")
        if key not in _CONTRAST_NAMES:
            raise FormulaError(
                f"unknown contrasts {spec!r} for column {col!r}; use one of "
                f"{', '.join(_CONTRAST_NAMES)} or a formulaic Contrasts object"
            )
        return getattr(fc, _CONTRAST_NAMES[key])()
    return spec


def apply_contrasts(rhs: str, contrasts: Mapping[str, Any] | None) -> str:
    """Wrap each bare use of a column with user contrasts in ``C(col, contrasts=...)``."""
    for col in check_contrasts(contrasts):
        pattern = rf"(?<![\w.`])({re.escape(str(col))}|`{re.escape(str(col))}`)(?![\w.`(])"
        rhs = re.sub(pattern, rf"C(\1, contrasts={_contrast_var(col)})", rhs)
    return rhs


_LEVEL = re.compile(
    r"^(?:C\((?P<cvar>[^,()]+)(?:,.*)?\)|(?P<var>.+?))\[(?:[A-Z]+\.)?(?P<level>.*)\]$"
)


def lme4_name(
    name: str, logical: frozenset[str] = frozenset(), columns: frozenset[str] = frozenset()
) -> str:
    """Translate a formulaic column name into lme4's spelling.

    ``logical`` names the boolean columns of the data: R codes a logical
    ``x`` as the column ``xTRUE`` (formulaic keeps it as 0/1 named ``x``),
    and spells a factor's levels ``TRUE``/``FALSE``.  ``columns`` are the
    data's other columns, whose levels ``True``/``False`` are text and kept.
    """
    if name == "Intercept":
        return "(Intercept)"
    name = _AS_FACTOR_PY.sub("as.factor(", name.replace(_FUNCTION_ALIAS, ""))
    return ":".join(_factor_part(part, logical, columns) for part in _split_colon(name))


_AS_FACTOR_R = re.compile(r"(?<![\w.`])as\.factor\(")
_AS_FACTOR_PY = re.compile(r"(?<![\w.`])as_factor\(")


_C_NAMED = re.compile(
    r"""\bC\(\s*([^,()]+?)\s*,\s*(?:contrasts\s*=\s*)?(?:"|')(?:contr\.)?(\w+)(?:"|')\s*\)"""
)
"""``C(x, "sum")`` / ``C(x, contrasts='contr.sum')``: contrasts named by a string."""


def _named_contrasts(match: re.Match) -> str:
    key = match.group(2).lower()
    if key not in _CONTRAST_NAMES:
        raise FormulaError(
            f"unknown contrasts {match.group(2)!r} in {match.group(0)!r}; use one of "
            f"{', '.join(_CONTRAST_NAMES)}"
        )
    name = "SAS" if key == "sas" else key  # formulaic's registry spells it so
    return f"C({match.group(1)}, contr.{name})"


def r_to_formulaic(rhs: str) -> str:
    """R spellings formulaic cannot read: ``as.factor(`` (``as`` is a Python keyword) -> ``as_factor(``;
    contrasts named by a string inside ``C()`` -> formulaic's ``contr.<name>``."""
    return _C_NAMED.sub(_named_contrasts, _AS_FACTOR_R.sub("as_factor(", rhs))


def _split_colon(name: str) -> list[str]:
    depth, start, parts = 0, 0, []
    for pos, ch in enumerate(name):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == ":" and depth == 0:
            parts.append(name[start:pos])
            start = pos + 1
    return [*parts, name[start:]]


def _factor_part(
    part: str, logical: frozenset[str] = frozenset(), columns: frozenset[str] = frozenset()
) -> str:
    m = _LEVEL.match(part)
    if m is None:
        logical_value = part.strip("`") in logical or _is_comparison(part)
        return r_deparse(r_name(part)) + ("TRUE" if logical_value else "")
    var = (m.group("cvar") or m.group("var")).strip().strip("`")
    level = m.group("level")
    if level in ("True", "False") and (var in logical or var not in columns):
        level = level.upper()
    return f"{r_deparse(r_name(var))}{level}"


def r_deparse(expr: str) -> str:
    """formulaic's spelling of an expression in R's: ``x ** 2 / 3`` -> ``x^2/3`` (R spaces neither)."""
    return expr.replace(" ** ", "^").replace(" / ", "/") if "(" in expr else expr


_COMPARISON = re.compile(r"==|!=|<=|>=|<|>")


def _is_comparison(part: str) -> bool:
    """Is ``part`` ``I(a <op> b)`` with a comparison at the top level (a logical column in R)?"""
    if not (part.startswith("I(") and part.endswith(")")):
        return False
    inner, depth = part[2:-1], 0
    for pos, ch in enumerate(inner):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and _COMPARISON.match(inner, pos):
            return True
    return False


_SYNTACTIC = re.compile(r"^(?:[^\W\d_]|\.(?!\d))[\w.]*$|^\.$")


def r_name(var: str) -> str:
    """A variable's name as R deparses it in column names: back-quoted unless syntactic.

    Calls (``log(x)``, ``I(x ** 2)``) are left as they are.
    """
    if _SYNTACTIC.match(var) or "(" in var:
        return var
    return f"`{var}`"


def model_matrix(
    rhs: str,
    frame: pd.DataFrame,
    contrasts: Mapping[str, Any] | None = None,
    what: str = "fixed effects",
) -> Design:
    """Evaluate a formula right-hand side on ``frame`` into a float matrix.

    Parameters
    ----------
    rhs : str
        Right-hand side, e.g. ``"1 + Days"`` (intercept implied unless ``0``).
    frame : DataFrame
        Complete cases of the used columns.
    contrasts : mapping, optional
        Column name -> contrasts name (``"sum"``, ``"helmert"``, ...) or formulaic object.
    what : str
        Description used in error messages.
    """
    context = formula_context(contrasts)
    text = apply_contrasts(unshadow_calls(r_to_formulaic(rhs), frame.columns), contrasts)
    simple = _plain_columns(text, frame)
    if simple is not None:
        matrix, column_names, used = simple
        spec, pending = None, (text, used)
    else:
        try:
            with np.errstate(all="ignore"):  # non-finite results are reported below, by column
                mm = _parsed(text).get_model_matrix(
                    frame, context=context, na_action="raise", output="numpy"
                )
        except Exception as exc:  # formulaic raises many types; report them in the user's terms
            raise _formula_error(exc, rhs, what) from exc
        matrix = np.asarray(mm, dtype=float)
        column_names = list(mm.model_spec.column_names)
        spec, pending = mm.model_spec, None
    if matrix.ndim != 2 or matrix.shape[0] != len(frame):
        raise FormulaError(f"{what} {rhs!r} did not give one row per observation")
    if not np.isfinite(matrix).all():
        bad = [
            lme4_name(c) for c, ok in zip(column_names, np.isfinite(matrix).all(axis=0)) if not ok
        ]
        raise DataError(f"{what} {rhs!r}: non-finite values in column(s) {', '.join(bad)}")
    logical = frozenset(
        str(c) for c, dtype in frame.dtypes.items() if pd.api.types.is_bool_dtype(dtype)
    )
    columns = frozenset(map(str, frame.columns)) - logical
    names = [lme4_name(str(c), logical, columns) for c in column_names]
    for name, column in zip(names, matrix.T):
        check_magnitude(column, f"column {name!r} of the {what}")
    return Design(matrix, names, spec, context, pending)


_PLAIN_TERM = re.compile(r"^[A-Za-z_]\w*$")


def _plain_columns(
    text: str, frame: pd.DataFrame
) -> tuple[np.ndarray, list[str], dict[str, Any]] | None:
    """The matrix formulaic makes of ``text``, when ``text`` is a sum of plain columns; else None.

    Covered: an intercept (``1``, or implied) plus distinct bare names of
    columns that are real numbers (integer or float, not boolean) or
    categoricals with two or more text categories (treatment contrasts,
    formulaic's default).  formulaic orders such terms as written, after
    the intercept, names a level's column ``x[T.level]`` and takes a
    categorical's levels in category order; ``tests/test_design_fastpath.py``
    checks the matrices and names against formulaic's.  Returns the matrix,
    formulaic's column names, and the columns the spec will be learnt from
    (the categoricals copied, so later changes to the data cannot reach it).
    Everything else (calls, interactions, ``0``/``-1``, text or boolean
    columns, contrasts) goes through formulaic.
    """
    terms = [t.strip() for t in text.split("+")]
    names = [t for t in terms if t != "1"]
    if len(terms) - len(names) > 1 or len(set(names)) != len(names) or "" in terms:
        return None
    if not all(_PLAIN_TERM.match(t) and not keyword.iskeyword(t) for t in names):
        return None
    if not all(isinstance(c, str) for c in frame.columns) or not set(names) <= set(frame.columns):
        return None
    n = len(frame)
    blocks, column_names, used = [np.ones((n, 1))], ["Intercept"], {}
    for name in names:
        values = frame[name].array
        if isinstance(values, pd.arrays.NumpyExtensionArray) and values.dtype.kind in "iuf":
            blocks.append(values.to_numpy().astype(float)[:, None])
            if np.isnan(blocks[-1]).any():  # formulaic's na_action reports it
                return None
            column_names.append(name)
            used[name] = blocks[-1][:, 0]
            continue
        if isinstance(values, pd.Categorical):
            levels = values
        elif _is_text(values):
            levels = pd.Categorical(values)
        else:
            return None
        categories = levels.categories
        if len(categories) < 2 or (levels.codes < 0).any():
            return None
        if categories.inferred_type != "string":  # formulaic would name other levels its way
            return None
        block = np.zeros((n, len(categories) - 1))
        rows = np.flatnonzero(levels.codes > 0)
        block[rows, levels.codes[rows] - 1] = 1.0
        blocks.append(block)
        column_names.extend(f"{name}[T.{c}]" for c in categories[1:])
        used[name] = values.copy()
    return np.hstack(blocks), column_names, used


def _is_text(values: Any) -> bool:
    """A column of text only (pandas' string dtype, or objects that are all ``str``)."""
    if isinstance(values.dtype, pd.StringDtype):  # the nullable kind reads as numbers to formulaic
        return values.dtype.na_value is not pd.NA
    return (
        pd.api.types.is_object_dtype(values.dtype)
        and pd.api.types.infer_dtype(np.asarray(values), skipna=False) == "string"
    )


@functools.lru_cache(maxsize=256)
def _parsed(text: str):
    """formulaic's parse of a right-hand side; formulas are immutable, so a parse is reused.

    The numpy output (rather than a DataFrame) skips building a frame that is
    converted to an array at once; the spec keeps the names, terms and
    encoders that prediction on new data needs.
    """
    import formulaic

    return formulaic.Formula(text)


def _formula_error(exc: Exception, rhs: str, what: str) -> FormulaError:
    msg = str(exc)
    missing = re.search(r"`([^`]+)` is not present in the dataset", msg)
    if missing:
        return FormulaError(f"{what} {rhs!r}: column {missing.group(1)!r} is not in the data")
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    return FormulaError(f"cannot build the {what} from {rhs!r}: {first}")
