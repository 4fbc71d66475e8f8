"""Results every model kind reports the same way: coefficient tables, random effects.

Functions of the random-effects terms (``ReMat``) and of a blocked or
dense system, shared by the linear, generalised and heteroskedastic models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "group_means",
    "coef_table",
    "split_b",
    "conditional_variances",
    "ranef_frames",
]


def group_means(y: np.ndarray, refs: np.ndarray, nlevels: int) -> np.ndarray:
    """Mean of y in each level."""
    return np.bincount(refs, y, minlength=nlevels) / np.bincount(refs, minlength=nlevels)


def coef_table(beta: np.ndarray, se: np.ndarray, names: list[str]) -> pd.DataFrame:
    from scipy.stats import norm

    z = beta / se
    return pd.DataFrame(
        {"Estimate": beta, "Std. Error": se, "z": z, "p": 2 * norm.sf(np.abs(z))}, index=names
    )


def split_b(reterms, u: np.ndarray) -> list[np.ndarray]:
    """b = Λu per term, reshaped to (nlevels, k)."""
    out, start = [], 0
    for r in reterms:
        out.append(r.b_from_u(u[start : start + r.q]))
        start += r.q
    return out


def conditional_variances(
    system, reterms, sigma: float, max_entries: int = 2**24
) -> list[np.ndarray]:
    """Diagonal blocks of Var(b | y) = σ² Λ (L_Z L_Z')⁻¹ Λ' per term, shape (nlevels, k, k).

    Conditional on β̂, as lme4 and MixedModels.jl report them.  The first
    term of a blocked system uses the structure of its block
    (``first_block_inverse_crossprod``: linear in the number of levels);
    for the others, columns of L_Z⁻¹ are formed a chunk of levels at a time,
    so memory stays below ``max_entries`` doubles.
    """
    q = sum(r.q for r in reterms)
    out, start = [], 0
    for i, r in enumerate(reterms):
        if i == 0 and not r.has_factor and hasattr(system, "first_block_inverse_crossprod"):
            inner = system.first_block_inverse_crossprod(max_entries)
            out.append(sigma**2 * (r.lambda_ @ inner @ r.lambda_.T))
            start += r.q
            continue
        if r.has_factor:  # Var(b|y) = σ²λ² F M F' with M the term's block of (L_Z L_Z')⁻¹
            M = system.LZ_inverse_columns(start, start + r.q)
            FM = r.factor @ (M.T @ M)
            out.append(
                (sigma * r.lambda_[0, 0]) ** 2 * np.einsum("ij,ij->i", FM, r.factor)[:, None, None]
            )
            start += r.q
            continue
        blocks = np.empty((r.nlevels, r.k, r.k))
        step = max(1, max_entries // (q * r.k))
        for lo in range(0, r.nlevels, step):
            hi = min(r.nlevels, lo + step)
            M = system.LZ_inverse_columns(start + lo * r.k, start + hi * r.k)
            cols = M.reshape(q, hi - lo, r.k)
            inner = np.einsum("ila,ilb->lab", cols, cols)
            blocks[lo:hi] = sigma**2 * (r.lambda_ @ inner @ r.lambda_.T)
        out.append(blocks)
        start += r.q
    return out


def ranef_frames(reterms, b: list[np.ndarray], condvar: list[np.ndarray] | None, form: str):
    if form == "long":
        rows = []
        for r, bb, cv in zip(reterms, b, condvar):
            for j, name in enumerate(r.cnames):
                sd = np.sqrt(cv[:, j, j])
                rows.append(
                    pd.DataFrame(
                        {
                            "grpvar": r.name,
                            "term": name,
                            "grp": r.levels,
                            "condval": bb[:, j],
                            "condsd": sd,
                        }
                    )
                )
        return pd.concat(rows, ignore_index=True)
    out = {}
    for i, (r, bb) in enumerate(zip(reterms, b)):
        df = pd.DataFrame(bb, index=pd.Index(r.levels, name=r.name), columns=r.cnames)
        if condvar is not None:
            for j, name in enumerate(r.cnames):
                df[f"condvar({name})"] = condvar[i][:, j, j]
        out[r.name] = df
    return out
