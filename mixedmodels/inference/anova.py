"""F tests of the fixed-effects terms of one model (lmerTest's ``anova``), Wald χ² for GLMMs.

Each term gets a hypothesis Lβ = 0 (rows of L over the coefficients):

* type I (sequential): with X'X = R'R (Cholesky), the rows of the unit upper
  triangular factor diag(R)⁻¹R that belong to the term (lmerTest's Doolittle
  factor; entries below 10⁻⁶ in absolute value are set to 0 as there);
* type II: for a term contained in no other, its own coefficients; for a
  contained term, the type I rows of the term after reordering the columns
  as [unrelated, term, terms containing it];
* type III: the term's own coefficients (car's definition).  This tests a
  sensible hypothesis only when the factors of a term that is contained in
  another are coded with contrasts that sum to zero (``contrasts={"f":
  "sum"}``), as car warns; it then equals lmerTest's SAS-style type III on
  designs without empty cells.  Otherwise a warning is issued.

A linear mixed model's F test uses Satterthwaite's or Kenward–Roger's
denominator df (:mod:`.satterthwaite`, :mod:`.kenward_roger`); the tables
hold Sum Sq = F σ̂² NumDF and Mean Sq = F σ̂², as lmerTest's.  A generalised
model's test is Wald's χ² = (Lβ)'(LVL')⁻¹(Lβ) on rank(L) df, with
type II for a contained term the difference of the Wald statistics with and
without the term among the terms containing it (car's conjugate complement);
its type III table includes the intercept, as car's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .ddf import normalize_ddf
from .fixedterms import (
    FixedTerm,
    coding_sums_to_zero,
    contained_in,
    fixed_terms,
    intercept_column,
)

__all__ = ["anova_table", "AnovaTable", "term_hypotheses", "ftest"]

_TYPES = {1: 1, 2: 2, 3: 3, "1": 1, "2": 2, "3": 3, "I": 1, "II": 2, "III": 3}


class AnovaTable(pd.DataFrame):
    """A DataFrame with R's heading: printed as R prints an anova table."""

    _metadata = ["heading"]

    @property
    def _constructor(self):
        return AnovaTable

    def __str__(self) -> str:
        from .tableformat import format_table

        return f"{getattr(self, 'heading', '')}\n{format_table(self)}"

    def __repr__(self) -> str:
        return str(self)


def _check_type(type) -> int:
    if type not in _TYPES:
        raise MixedModelsError(f"anova type must be 1, 2 or 3 (or 'I', 'II', 'III'), got {type!r}")
    return _TYPES[type]


def _doolittle_rows(X: np.ndarray) -> np.ndarray:
    """The unit upper triangular factor U of X'X = U'DU (rows are the sequential hypotheses)."""
    R = np.linalg.cholesky(X.T @ X).T
    U = R / np.diag(R)[:, None]
    U[np.abs(U) < 1e-6] = 0.0
    return U


def _type1(model: MixedModel, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    U = _doolittle_rows(model.structure.fe.X)
    return {t.label: U[list(t.columns)] for t in terms}


def _type2(model: MixedModel, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    X = model.structure.fe.X
    p = X.shape[1]
    out = {}
    for t in terms:
        containing = [c for s in contained_in(t, terms) for c in s.columns]
        if not containing:
            out[t.label] = np.eye(p)[list(t.columns)]
            continue
        late = list(t.columns) + containing
        order = [j for j in range(p) if j not in late] + late
        U = _doolittle_rows(X[:, order])
        rows = U[[order.index(j) for j in t.columns]]
        L = np.zeros_like(rows)
        L[:, order] = rows
        out[t.label] = L
    return out


def _type3(model: MixedModel, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    _warn_coding(model, terms)
    p = len(model.coefnames)
    return {t.label: np.eye(p)[list(t.columns)] for t in terms}


def _warn_coding(model: MixedModel, terms: list[FixedTerm]) -> None:
    """car's warning: a term's type III test depends on the coding of the factors it interacts with.

    For a term t inside a higher-order term s (t's variables a subset of
    s's), the test of t is at the zero of s's other factors' codings; that
    is an average over their levels only for contrasts that sum to zero.
    """
    bad = set()
    for t in terms:
        for s in terms:
            if set(t.variables) < set(s.variables):
                bad |= {
                    v
                    for v in set(s.variables) - set(t.variables)
                    if not coding_sums_to_zero(model, v)
                }
    if bad:
        names = sorted(bad)
        wanted = ", ".join(f"{v!r}: 'sum'" for v in names)
        warnings.warn(
            "type III tests of terms contained in interactions depend on the coding of "
            f"{', '.join(map(repr, names))}, whose contrasts do not sum to zero: fit with "
            f"contrasts={{{wanted}}} for tests averaged over its levels",
            stacklevel=6,
        )


def term_hypotheses(model: MixedModel, type=3) -> dict[str, np.ndarray]:
    """Term label -> L (rows over ``model.coefnames``) for the ANOVA of ``type``."""
    kind = _check_type(type)
    terms = [t for t in fixed_terms(model) if t.columns]
    return {1: _type1, 2: _type2, 3: _type3}[kind](model, terms)


def ftest(model: MixedModel, L: np.ndarray, ddf: str = "satterthwaite") -> tuple[float, int, float]:
    """F, NumDF and DenDF of Lβ = 0 for a linear mixed model."""
    method = normalize_ddf(ddf)
    if method == "satterthwaite":
        from .satterthwaite import satterthwaite_ftest, satterthwaite_state

        return satterthwaite_ftest(satterthwaite_state(model), L, model.beta)
    from .kenward_roger import kenward_roger_ftest, kenward_roger_state

    return kenward_roger_ftest(kenward_roger_state(model), L, model.beta)


def _lmm_table(model: MixedModel, hyps: dict, ddf: str) -> pd.DataFrame:
    from scipy.stats import f as fdist

    rows = [ftest(model, L, ddf) for L in hyps.values()]
    F = np.array([r[0] for r in rows])
    num = np.array([r[1] for r in rows], dtype=float)
    den = np.array([r[2] for r in rows])
    ms = F * model.sigma**2
    return pd.DataFrame(
        {
            "Sum Sq": ms * num,
            "Mean Sq": ms,
            "NumDF": num,
            "DenDF": den,
            "F value": F,
            "Pr(>F)": fdist.sf(F, num, den),
        },
        index=list(hyps),
    )


def _wald(model: MixedModel, L: np.ndarray) -> tuple[float, int]:
    Lb = L @ model.beta
    V = L @ model.vcov @ L.T
    q = int(np.linalg.matrix_rank(V))
    return float(Lb @ np.linalg.pinv(V) @ Lb), q


def _glmm_hypotheses(model: MixedModel, kind: int) -> dict[str, tuple]:
    """Term -> (L of the term with its containing terms, L of the containing terms or None)."""
    terms = [t for t in fixed_terms(model) if t.columns]
    eye = np.eye(len(model.coefnames))
    if kind == 1:
        raise MixedModelsError(
            "sequential (type I) tests are for linear mixed models; use type=2 or 3"
        )
    out = {}
    if kind == 3:
        _warn_coding(model, terms)
        icol = intercept_column(model)
        if icol is not None:
            out["(Intercept)"] = (eye[[icol]], None)
        return {**out, **{t.label: (eye[list(t.columns)], None) for t in terms}}
    for t in terms:
        higher = [c for s in contained_in(t, terms) for c in s.columns]
        out[t.label] = (eye[list(t.columns) + higher], eye[higher] if higher else None)
    return out


def _glmm_table(model: MixedModel, kind: int) -> pd.DataFrame:
    from scipy.stats import chi2

    stats = []
    for full, reduced in _glmm_hypotheses(model, kind).values():
        w, q = _wald(model, full)
        if reduced is not None:
            w0, q0 = _wald(model, reduced)
            w, q = w - w0, q - q0
        stats.append((w, q))
    chisq = np.array([s[0] for s in stats])
    df = np.array([s[1] for s in stats], dtype=float)
    index = list(_glmm_hypotheses(model, kind)) if stats else []
    return pd.DataFrame({"Chisq": chisq, "Df": df, "Pr(>Chisq)": chi2.sf(chisq, df)}, index=index)


_ROMAN = {1: "I", 2: "II", 3: "III"}


def anova_table(model: MixedModel, type=3, ddf: str = "satterthwaite") -> AnovaTable:
    """The ANOVA table of one fitted model: lmerTest's for LMMs, car's Wald χ² for GLMMs.

    Parameters
    ----------
    type : {1, 2, 3} or {"I", "II", "III"}
        The hypotheses (see the module docstring).
    ddf : {"satterthwaite", "kenward-roger"}
        Denominator df of a linear model's F tests.  Kenward–Roger needs a
        REML fit (an ML fit is an error that says so).  Ignored for GLMMs.
    """
    model.require_fit("the ANOVA table")
    kind = _check_type(type)
    if model.family is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            table = AnovaTable(_glmm_table(model, kind))
        table.heading = f"Analysis of Deviance Table (Type {_ROMAN[kind]} Wald chisquare tests)\n"
        return table
    method = normalize_ddf(ddf)
    table = AnovaTable(_lmm_table(model, term_hypotheses(model, kind), method))
    name = "Satterthwaite's" if method == "satterthwaite" else "Kenward-Roger's"
    table.heading = f"Type {_ROMAN[kind]} Analysis of Variance Table with {name} method"
    return table
