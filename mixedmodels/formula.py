"""Parse lme4-style model formulas.

formulaic handles the fixed-effects part but not the bar terms of lme4, so a
formula such as ``y ~ 1 + x + (1 + x | g) + (1 | h)`` is first split here
into

* the response expression (``y``),
* the fixed-effects right-hand side (``1 + x``), later given to formulaic,
* a list of :class:`RandomTerm` (``(1 + x | g)`` and ``(1 | h)``), and
* any ``offset(...)`` terms.

Random-effects shorthands are expanded as lme4 does:

* ``(1 + x || g)``  ->  ``(1 | g) + (0 + x | g)``  (uncorrelated terms),
* ``(1 | g/h)``     ->  ``(1 | g) + (1 | h:g)``    (nesting),
* ``(1 | g:h)``     ->  one term grouped by the interaction of g and h.

A term may name a covariance structure as lme4 2.0 and glmmTMB write it:
``us(1 + x | g)`` (the same as ``(1 + x | g)``), ``diag(...)``, ``cs(...)``,
``ar1(0 + f | g)``, ``toep(0 + f | g)``, with ``hom = TRUE`` / ``FALSE`` for
one shared variance or one per column, and glmmTMB's ``homdiag``, ``homcs``,
``hetar1``, ``homtoep`` (see :mod:`mixedmodels.covstruct`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .covstruct import KNOWN_STRUCTURES, STRUCTURE_ALIASES
from .errors import FormulaError

__all__ = ["RandomTerm", "ParsedFormula", "parse_formula", "split_top_level"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        Right-hand side of the term's model matrix, e.g. ``"1 + Days"``; an
        intercept is implied unless ``0`` or ``-1`` appears, as in R.
    factors : tuple of str
        Columns whose interaction defines the grouping factor.
    group_name : str
        The grouping factor's label as lme4 prints it (``"Subject"``,
        ``"dept:service"``, ``"cask:batch"`` for a nested ``batch/cask``).
    source : str
        The term as the user wrote it, for messages.
    structure : str
        The covariance structure as written (``"us"`` for a plain bar term,
        ``"ar1"``, ``"homcs"``, ...).
    hom : bool or None
        ``hom=`` as written (None: the structure's default).
    """

    expr: str
    factors: tuple[str, ...]
    group_name: str
    source: str
    structure: str = "us"
    hom: bool | None = None


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part, random terms and offsets."""

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...] = ()


_IDENT = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$|^`[^`]+`$")
"""A column name: letters of any script, digits, ``_`` and ``.``, or anything back-quoted."""

_AS_FACTOR = re.compile(r"^(?:as\.)?factor\((?P<name>[^()]+)\)$")
"""``factor(g)`` / ``as.factor(g)`` around a grouping column (every grouping variable is a factor anyway)."""


def split_top_level(text: str, ops: str = "+-") -> list[tuple[str, str]]:
    """Split ``text`` at operators in ``ops`` that lie outside any brackets.

    Returns a list of ``(operator, piece)`` pairs, the first operator being
    ``"+"`` unless the text starts with one of ``ops``.  Pieces are stripped.
    """
    pieces: list[tuple[str, str]] = []
    depth, start, op = 0, 0, "+"
    for pos, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' in {text!r}")
        elif depth == 0 and ch in ops and not _is_exponent_sign(text, pos):
            piece = text[start:pos].strip()
            if piece:
                pieces.append((op, piece))
            elif pos > start and text[start:pos].strip() == "" and pieces:
                raise FormulaError(f"two operators in a row in {text!r}")
            op, start = ch, pos + 1
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in {text!r}")
    last = text[start:].strip()
    if last:
        pieces.append((op, last))
    elif text.strip():
        raise FormulaError(f"formula part {text!r} ends with an operator")
    return pieces


def _is_exponent_sign(text: str, pos: int) -> bool:
    """True if the +/- at ``pos`` is the sign of a number's exponent (``1e-3``)."""
    if text[pos] not in "+-" or pos < 2 or text[pos - 1] not in "eE":
        return False
    return bool(re.search(r"(?<![A-Za-z_.])\d+\.?\d*[eE]$", text[:pos]))


def _split_bar(inner: str) -> tuple[str, str, bool] | None:
    """Split the inside of ``( ... | ... )`` at its top-level bar.

    Returns ``(expr, group, double)`` or None if there is no top-level bar.
    """
    depth = 0
    for pos, ch in enumerate(inner):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            double = inner[pos + 1 : pos + 2] == "|"
            rest = inner[pos + 2 :] if double else inner[pos + 1 :]
            return inner[:pos].strip(), rest.strip(), double
    return None


def _strip_outer_parens(piece: str) -> str | None:
    """The text inside ``piece`` if it is wholly enclosed in one pair of parentheses."""
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    depth = 0
    for pos, ch in enumerate(piece):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and pos < len(piece) - 1:
            return None
    return piece[1:-1]


def _check_factor_name(name: str, source: str) -> str:
    """The data column of one grouping variable: ``g``, a back-quoted name, ``factor(g)``."""
    name = name.strip()
    wrapped = _AS_FACTOR.match(name)
    if wrapped:
        name = wrapped.group("name").strip()
    if not _IDENT.match(name):
        raise FormulaError(
            f"grouping factor {name!r} in random-effects term {source!r} must be a column "
            "name (or names joined by ':' or '/')"
        )
    return name.strip("`")


def _grouping_factors(group: str, source: str) -> list[tuple[tuple[str, ...], str]]:
    """Expand ``g``, ``g:h`` or ``g/h`` into (factor columns, lme4 label) pairs."""
    if not group:
        raise FormulaError(f"random-effects term {source!r} has no grouping factor after '|'")
    nested = [part.strip() for part in group.split("/")]
    out = []
    for depth in range(1, len(nested) + 1):
        # lme4 writes a nested term innermost first (batch/cask -> cask:batch),
        # and its levels follow that order ("a:A", with cask varying slowest)
        parts = list(reversed(nested[:depth]))
        cols = [_check_factor_name(p.strip(), source) for part in parts for p in part.split(":")]
        out.append((tuple(cols), ":".join(parts).replace("`", "")))
    return out


def _uncorrelated_exprs(expr: str, source: str) -> list[str]:
    """Split the left side of ``||`` into one expression per term (lme4's expandDoubleVerts)."""
    pieces = split_top_level(expr)
    no_intercept = ("+", "0") in pieces or ("-", "1") in pieces
    terms = [p for op, p in pieces if op == "+" and p not in ("0", "1")]
    out = [] if no_intercept else ["1"]
    out.extend(f"0 + {t}" for t in terms)
    if not out:
        raise FormulaError(f"random-effects term {source!r} has no columns")
    return out


def _random_terms(
    inner: str, source: str, structure: str = "us", hom: bool | None = None
) -> list[RandomTerm] | None:
    bar = _split_bar(inner)
    if bar is None:
        return None
    expr, group, double = bar
    if not expr:
        raise FormulaError(f"random-effects term {source!r} has nothing before '|'")
    if double and structure != "us":
        raise FormulaError(
            f"'||' inside {structure}() in {source!r}: write a single '|' (diag() is the uncorrelated structure)"
        )
    exprs = _uncorrelated_exprs(expr, source) if double else [expr]
    return [
        RandomTerm(e, cols, label, source, structure, hom)
        for cols, label in _grouping_factors(group, source)
        for e in exprs
    ]


_CALL = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)\s*(?P<args>\(.*\))$", re.DOTALL)
_TRUE, _FALSE = ("TRUE", "True", "true", "T", "1"), ("FALSE", "False", "false", "F", "0")


def _structured_terms(piece: str) -> list[RandomTerm] | None:
    """``ar1(0 + f | g)``, ``diag(x | g, hom = TRUE)``: a bar term inside a call; None if it is not one."""
    call = _CALL.match(piece)
    inner = _strip_outer_parens(call.group("args")) if call else None
    if inner is None:
        return None
    args = [p for _, p in split_top_level(inner, ",")]
    if not args or _split_bar(args[0]) is None:
        return None  # a function of the fixed part, such as log(x)
    name = call.group("name")
    if name not in KNOWN_STRUCTURES and name not in STRUCTURE_ALIASES:
        raise FormulaError(
            f"unknown covariance structure {name!r} in {piece!r}; known: "
            + ", ".join([*KNOWN_STRUCTURES, *STRUCTURE_ALIASES])
        )
    return _random_terms(args[0], piece, name, _hom_argument(args[1:], piece))


def _hom_argument(args: list[str], source: str) -> bool | None:
    """The value of ``hom = TRUE/FALSE``, the only argument a structure takes."""
    hom = None
    for arg in args:
        key, eq, value = (part.strip() for part in arg.partition("="))
        if key != "hom" or not eq or value not in _TRUE + _FALSE or hom is not None:
            raise FormulaError(
                f"argument {arg!r} in {source!r}: a covariance structure takes only hom = TRUE or hom = FALSE"
            )
        hom = value in _TRUE
    return hom


def r_powers(text: str) -> str:
    """R's arithmetic ``^`` (inside any function call: ``I(x^2)``, ``log(x^2)``) as Python's ``**``.

    A ``^`` outside calls (``(a + b)^2``) is the formula's crossing operator and is kept.
    """
    out, calls = [], []
    for pos, ch in enumerate(text):
        if ch == "(":
            before = text[:pos].rstrip()
            calls.append(bool(before) and (before[-1].isalnum() or before[-1] in "._`"))
        elif ch == ")" and calls:
            calls.pop()
        out.append("**" if ch == "^" and any(calls) else ch)
    return "".join(out)


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4-style formula into response, fixed part, random terms and offsets.

    Raises
    ------
    FormulaError
        If the formula is not a string, has no ``~`` or no response, or a
        random-effects term is malformed.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string, got {type(formula).__name__}")
    if formula.count("~") != 1:
        raise FormulaError(f"formula {formula!r} must contain exactly one '~' (response ~ terms)")
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not lhs:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has no terms on the right of '~'")
    fixed, random, offsets = [], [], []
    for op, piece in split_top_level(r_powers(rhs)):
        _check_operands(piece, formula)
        inner = _strip_outer_parens(piece)
        while inner is not None and _strip_outer_parens(inner.strip()) is not None:
            inner = _strip_outer_parens(inner.strip())  # ((1 | g)), as lme4's findbars allows
        terms = _random_terms(inner, piece) if inner is not None else _structured_terms(piece)
        if terms is not None:
            if op == "-":
                raise FormulaError(f"a random-effects term cannot be removed with '-': {piece!r}")
            random.extend(terms)
        elif "|" in piece:
            raise FormulaError(f"a random-effects term must be in parentheses: {piece!r}")
        elif piece == ".":
            raise FormulaError(
                f"'.' (all other columns) is not supported in {formula!r}; name the columns of the fixed part"
            )
        elif piece.startswith("offset(") and piece.endswith(")"):
            offsets.append(piece[len("offset(") : -1])
        else:
            fixed.append((op, piece))
    return ParsedFormula(
        text=formula,
        response=r_powers(lhs),
        fixed=_join_terms(fixed),
        random=tuple(random),
        offsets=tuple(offsets),
    )


def _check_operands(piece: str, formula: str) -> None:
    """FormulaError for a term that starts or ends with an operator (``x *``, ``: g``)."""
    if piece[0] in "*:/^|%" or piece[-1] in "*:/^|%":
        raise FormulaError(
            f"formula {formula!r}: the operator in {piece!r} has nothing on one side"
        )


def _join_terms(terms: list[tuple[str, str]]) -> str:
    """Re-assemble fixed-effects terms; an empty part means intercept only (as in R)."""
    if not terms:
        return "1"
    text = " ".join(f"{op} {piece}" for op, piece in terms)
    return text[2:] if text.startswith("+ ") else text
