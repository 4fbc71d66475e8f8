"""Tests and intervals of linear combinations Lβ of the fixed effects (``mm.contrast``).

Each row l of L gives the estimate l'β̂, its standard error √(l'Vl), a t
test on Satterthwaite's or Kenward–Roger's df (linear models; V is then
Kenward–Roger's adjusted Φ_A) or a z test (generalised models, or
``ddf=None``), and a confidence interval.  The df machinery is computed
once per fit (:mod:`.fitcache`), so many contrasts cost little more than one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .ddf import normalize_ddf

__all__ = ["contrast", "contrast_matrix", "estimate_rows", "ContrastTable"]


class ContrastTable(pd.DataFrame):
    """A DataFrame of estimates with a footer saying how df and intervals were computed."""

    _metadata = ["footer"]

    @property
    def _constructor(self):
        return ContrastTable

    def __str__(self) -> str:
        from .tableformat import format_table

        return format_table(self) + "\n\n" + getattr(self, "footer", "")

    def __repr__(self) -> str:
        return str(self)


def contrast_matrix(model: MixedModel, L) -> tuple[np.ndarray, pd.Index]:
    """L as a float array (k x p) with row labels, checked against ``model.coefnames``.

    ``L`` is an array of shape (k, p) or (p,), or a DataFrame whose columns
    are coefficient names (any order; a coefficient left out gets 0).
    """
    names = list(model.coefnames)
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        unknown = [c for c in L.columns if c not in names]
        if unknown:
            raise MixedModelsError(
                f"contrast columns {unknown} are not coefficients of the model; its coefficients are {names}"
            )
        return L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float), L.index
    try:
        arr = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError):
        raise MixedModelsError(
            "a contrast must be numbers: an array of shape (k, p) or a DataFrame with coefficient names"
        ) from None
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise MixedModelsError(
            f"each contrast needs {len(names)} values, one per coefficient ({', '.join(names)}); "
            f"got an array of shape {np.shape(L)}"
        )
    if not np.isfinite(arr).all():
        raise MixedModelsError("the contrast matrix has missing or infinite values")
    return arr, pd.RangeIndex(len(arr), name="contrast")


def estimate_rows(model: MixedModel, L: np.ndarray, ddf: str | None) -> pd.DataFrame:
    """estimate, SE and df of each row of L (df = inf for z tests)."""
    if model.family is not None or ddf is None:
        se = np.sqrt(np.einsum("ka,ab,kb->k", L, model.vcov, L))
        df = np.full(len(L), np.inf)
    else:
        from .ddf import df_and_se

        df, se = df_and_se(model, normalize_ddf(ddf), L)
    return pd.DataFrame({"estimate": L @ model.beta, "SE": se, "df": df})


def add_tests(table: pd.DataFrame, level: float, value: str = "estimate") -> pd.DataFrame:
    """t (or z) ratio, two-sided p and the confidence interval from estimate, SE and df."""
    from scipy.stats import t as student

    check_level(level)
    ratio = table[value] / table["SE"]
    finite = np.isfinite(table["df"]).all()
    quantile = student.ppf(0.5 + level / 2, table["df"])
    table["lower.CL"] = table[value] - quantile * table["SE"]
    table["upper.CL"] = table[value] + quantile * table["SE"]
    table["t.ratio" if finite else "z.ratio"] = ratio
    table["p.value"] = 2 * student.sf(np.abs(ratio), table["df"])
    return table


def check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise MixedModelsError(f"level must be a number between 0 and 1, got {level!r}")


def contrast(
    model: MixedModel,
    L=None,
    ddf: str | None = "satterthwaite",
    level: float = 0.95,
    *,
    adjust: str | None = None,
) -> ContrastTable:
    """Estimates, t tests and confidence intervals of the rows of L.

    Given marginal means (:func:`~mixedmodels.emmeans`) instead of a model,
    this is emmeans' ``contrast(grid, method, adjust=)``: ``L`` is then the
    method (``"pairwise"`` by default, ``"revpairwise"``, or a dict of named
    coefficient vectors over the means; see ``EmmGrid.contrast``).

    Parameters
    ----------
    model : MixedModel
        A fitted model.
    L : array (k, p) or (p,), or DataFrame
        Rows are contrasts, columns coefficients (``model.coefnames``); a
        DataFrame is matched by column name and keeps its index as labels.
    ddf : {"satterthwaite", "kenward-roger"} or None
        Degrees of freedom of a linear model's t tests; None (and every
        generalised model) gives z tests.
    level : float
        Confidence level of the intervals.

    Returns
    -------
    ContrastTable
        Columns estimate, SE, df, lower.CL, upper.CL, t.ratio (z.ratio), p.value.
    """
    if not isinstance(model, MixedModel) and callable(getattr(model, "contrast", None)):
        return model.contrast("pairwise" if L is None else L, adjust=adjust)  # an EmmGrid
    if not isinstance(model, MixedModel):
        raise MixedModelsError(
            f"contrast needs a fitted model or marginal means (emmeans), not a {type(model).__name__}"
        )
    if adjust is not None:
        raise MixedModelsError(
            "adjust= is for contrasts of marginal means: contrast(emmeans(...), ...)"
        )
    if L is None:
        raise MixedModelsError("contrast(model, L) needs L, the contrasts' coefficients")
    model.require_fit("contrasts")
    arr, index = contrast_matrix(model, L)
    table = add_tests(estimate_rows(model, arr, ddf), level)
    table.index = index
    out = ContrastTable(table)
    method = "asymptotic (z)" if not np.isfinite(table["df"]).all() else normalize_ddf(ddf)
    out.footer = f"Degrees-of-freedom method: {method}\nConfidence level used: {level}"
    return out
