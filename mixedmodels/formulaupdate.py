"""R's ``update()`` of a model formula: ``"~ . - x"``, ``". ~ . + (1|g)"``, ``"log(y) ~ ."``.

A dot stands for the corresponding side of the old formula; terms of the
right-hand side are added with ``+`` and removed with ``-`` (compared with
spaces ignored), as R's ``update.formula`` does for additive terms.
Removing ``1`` drops the intercept (adds ``0``).
"""

from __future__ import annotations

from .errors import FormulaError

__all__ = ["update_formula", "split_terms"]


def _top_level_split(text: str, seps: str) -> list[tuple[str, str]]:
    """``text`` cut at the characters ``seps`` outside parentheses: (separator before, piece)."""
    out, depth, start, sep = [], 0, 0, "+"
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in seps:
            out.append((sep, text[start:i]))
            sep, start = ch, i + 1
    out.append((sep, text[start:]))
    return [(s, p.strip()) for s, p in out if p.strip()]


def split_terms(rhs: str) -> list[tuple[str, str]]:
    """Signed additive terms of a right-hand side: [("+", "1"), ("+", "Days"), ("-", "x"), ...]."""
    return _top_level_split(rhs, "+-")


def _sides(formula: str) -> tuple[str, str]:
    parts = _top_level_split(formula, "~")
    if formula.count("~") != 1:
        raise FormulaError(f"a formula needs exactly one '~', got {formula!r}")
    if len(parts) == 1:
        return ("", parts[0][1]) if formula.strip().startswith("~") else (parts[0][1], "")
    return parts[0][1], parts[1][1]


def _norm(term: str) -> str:
    return "".join(term.split())


def update_formula(old: str, new: str) -> str:
    """The formula ``new`` with its dots replaced by the parts of ``old`` (R's ``update.formula``)."""
    old_lhs, old_rhs = _sides(old)
    new_lhs, new_rhs = _sides(new if "~" in new else f"~ {new}")
    lhs = old_lhs if new_lhs in ("", ".") else new_lhs
    terms: list[str] = []
    for sign, term in split_terms(new_rhs or "."):
        pieces = [t for s, t in split_terms(old_rhs) if s == "+"] if term == "." else [term]
        for piece in pieces:
            if sign == "+":
                if _norm(piece) not in map(_norm, terms):
                    terms.append(piece)
            elif _norm(piece) == "1":
                terms = [t for t in terms if _norm(t) != "1"] + ["0"]
            else:
                kept = [t for t in terms if _norm(t) != _norm(piece)]
                if len(kept) == len(terms):
                    raise FormulaError(
                        f"update: the formula {old!r} has no term {piece!r} to remove"
                    )
                terms = kept
    if not terms:
        raise FormulaError(f"update({new!r}) leaves no term on the right-hand side")
    return f"{lhs} ~ {' + '.join(terms)}"
