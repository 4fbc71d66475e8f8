"""t tests of fixed effects with approximate denominator degrees of freedom.

``coeftable(ddf="satterthwaite")`` and ``coeftable(ddf="kenward-roger")``
of a linear mixed model give lmerTest's table: Estimate, Std. Error, df,
t and p, with p = 2 P(T_df > |t|).  Kenward–Roger also replaces the
standard errors by those of its adjusted covariance Φ_A.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MixedModelsError

__all__ = ["ddf_coeftable", "contrast_test", "normalize_ddf", "df_and_se"]

_ALIASES = {
    "satterthwaite": "satterthwaite",
    "kenward-roger": "kenward-roger",
    "kenward_roger": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "kr": "kenward-roger",
}


def normalize_ddf(ddf: str) -> str:
    """``"satterthwaite"`` or ``"kenward-roger"`` from any accepted spelling."""
    key = str(ddf).lower().replace(" ", "")
    if key not in _ALIASES:
        raise MixedModelsError(
            f"unknown ddf method {ddf!r}; use 'satterthwaite' or 'kenward-roger'"
        )
    return _ALIASES[key]


def df_and_se(model, method: str, contrasts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Degrees of freedom and standard errors of the rows of ``contrasts`` (k x p)."""
    if method == "satterthwaite":
        from .satterthwaite import satterthwaite_df, satterthwaite_state

        state = satterthwaite_state(model)
        df = np.array([satterthwaite_df(state, c) for c in contrasts])
        V = state.vcov
    else:
        from .kenward_roger import kenward_roger_df, kenward_roger_state

        state = kenward_roger_state(model)
        df = np.array([kenward_roger_df(state, c) for c in contrasts])
        V = state.vcov_adjusted
    return df, np.sqrt(np.einsum("ka,ab,kb->k", contrasts, V, contrasts))


def _t_table(estimate: np.ndarray, se: np.ndarray, df: np.ndarray, index) -> pd.DataFrame:
    from scipy.stats import t as student

    tval = estimate / se
    p = 2 * student.sf(np.abs(tval), df)
    return pd.DataFrame(
        {"Estimate": estimate, "Std. Error": se, "df": df, "t": tval, "p": p}, index=index
    )


def ddf_coeftable(model, ddf: str) -> pd.DataFrame:
    """Coefficient table with t tests on ``ddf`` denominator degrees of freedom.

    Parameters
    ----------
    model : LinearMixedModel
        Fitted (REML or ML; Kenward–Roger needs REML).
    ddf : str
        ``"satterthwaite"`` or ``"kenward-roger"``.

    Returns
    -------
    DataFrame
        Index: coefficient names; columns Estimate, Std. Error, df, t, p.
    """
    method = normalize_ddf(ddf)
    eye = np.eye(len(model.beta))
    df, se = df_and_se(model, method, eye)
    return _t_table(model.beta, se, df, model.coefnames)


def contrast_test(model, L, ddf: str = "satterthwaite") -> pd.DataFrame:
    """t tests of linear combinations Lβ = 0, one per row of L.

    Parameters
    ----------
    L : array, shape (k, p) or (p,)
        Contrast vectors over the model's coefficients (``model.coefnames``).
    """
    method = normalize_ddf(ddf)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != len(model.beta):
        raise MixedModelsError(
            f"each contrast needs {len(model.beta)} values (one per coefficient: {model.coefnames}), got {L.shape[1]}"
        )
    df, se = df_and_se(model, method, L)
    return _t_table(L @ model.beta, se, df, pd.RangeIndex(len(L), name="contrast"))
