"""The terms of the fixed-effects formula: their variables, their columns and containment.

F tests (:mod:`.anova`) and marginal means (:mod:`.emmeans`) need what R's
``terms`` object offers: each term's label (``"task:stimulus"``), its
variables and which of them are numeric, and the coefficients it owns.  They
are read from formulaic's ``ModelSpec`` of the fixed effects, which keeps the
encodings learnt from the data; columns dropped as aliased own no coefficient.

Containment follows SAS (and lmerTest): F1 is contained in F2 when every
variable of F1 is in F2, F2 has more variables, and both have the same
numeric variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..model import MixedModel

__all__ = ["FixedTerm", "fixed_terms", "variable_kinds", "contained_in"]

_C_CALL = re.compile(r"^C\((?P<var>[^,()]+)(?:,.*)?\)$")


@dataclass(frozen=True)
class FixedTerm:
    """One term: R's label, its variables (numeric ones apart) and its coefficient positions."""

    label: str
    variables: tuple[str, ...]
    numeric: frozenset[str]
    columns: tuple[int, ...]


def variable_name(expr: str) -> str:
    """The data column of a factor expression: ``C(Variety, contrasts=...)`` -> ``Variety``."""
    m = _C_CALL.match(expr)
    return m.group("var").strip().strip("`") if m else expr


def variable_kinds(model: MixedModel) -> dict[str, tuple[str, dict]]:
    """Variable -> ("categorical" or "numerical", formulaic's encoder state), as the fit saw them."""
    spec = model.structure.fe.design.spec
    return {
        variable_name(expr): (kind.value, state)
        for expr, (kind, state) in spec.encoder_state.items()
    }


def fixed_terms(model: MixedModel) -> list[FixedTerm]:
    """The model's fixed-effects terms, intercept excluded, in formula order."""
    spec = model.structure.fe.design.spec
    kinds = variable_kinds(model)
    position = {int(j): i for i, j in enumerate(model.structure.fe.keep)}
    out = []
    for term in spec.terms:
        variables = tuple(variable_name(f.expr) for f in term.factors if f.expr != "1")
        if not variables:
            continue
        cols = range(*spec.term_slices[term].indices(len(spec.column_names)))
        numeric = frozenset(v for v in variables if kinds.get(v, ("numerical",))[0] == "numerical")
        kept = tuple(position[j] for j in cols if j in position)
        out.append(FixedTerm(":".join(variables), variables, numeric, kept))
    return out


def contained_in(term: FixedTerm, terms: list[FixedTerm]) -> list[FixedTerm]:
    """The terms that contain ``term`` (SAS's definition, see the module docstring)."""
    own = set(term.variables)
    return [
        t
        for t in terms
        if own <= set(t.variables) and len(set(t.variables) - own) > 0 and t.numeric == term.numeric
    ]


def intercept_column(model: MixedModel) -> int | None:
    """Position of ``(Intercept)`` among the coefficients, or None."""
    names = model.coefnames
    return names.index("(Intercept)") if "(Intercept)" in names else None


def coding_sums_to_zero(model: MixedModel, variable: str) -> bool:
    """True when the variable is numeric or its contrasts' columns each sum to zero over the levels."""
    kind, state = variable_kinds(model).get(variable, ("numerical", {}))
    if kind != "categorical":
        return True
    contrasts = state["contrasts"]
    coding = np.asarray(contrasts.contrasts.get_coding_matrix(contrasts.levels), dtype=float)
    return bool(np.allclose(coding.sum(axis=0), 0.0))
