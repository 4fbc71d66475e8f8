"""Variance components: the covariance of the random effects and the residual.

For a term with relative covariance factor λ, the covariance of its random
effects is σ² λλ' (σ = 1 for families without a dispersion parameter).  A
term with a covariance structure (``ar1(0 + f | g)``) is shown the same way,
its Σ implied by the structure's parameters; when a model has one, the wide
frame gets a ``structure`` column (``us`` for the unstructured terms) and the
structures' correlation parameters (ρ of ``cs``/``ar1``, the lag correlations
of ``toep``) are in ``frame.attrs["structures"]`` by group label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .remat import ReMat

__all__ = ["term_covariances", "varcorr_frame", "varcorr_long"]


def term_covariances(reterms: list[ReMat], theta_order: list[tuple[int, int]], sigma: float):
    """Per original term, in lme4's order: (group, label, column names, covariance, structure, parameters).

    ``theta_order`` lists (ReMat index, block index) pairs in lme4's term order.
    Repeated groups (from ``||`` or several terms on one factor) are labelled
    ``g``, ``g.1``, ``g.2`` as lme4 does.
    """
    seen: dict[str, int] = {}
    out = []
    for ri, bi in theta_order:
        remat = reterms[ri]
        block = remat.blocks[bi]
        lam = remat.lambda_[block, block]
        count = seen.get(remat.name, 0)
        seen[remat.name] = count + 1
        label = remat.name if count == 0 else f"{remat.name}.{count}"
        cov = remat.structures[bi]
        params = cov.describe(remat.block_theta(remat.get_theta(), bi)) if cov is not None else {}
        out.append((remat.name, label, remat.cnames[block], sigma**2 * (lam @ lam.T), cov, params))
    return out


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    return np.where(np.outer(sd, sd) > 0, corr, 0.0)


def varcorr_frame(terms, sigma: float | None) -> pd.DataFrame:
    """One row per random-effect column (and the residual): variance, std. dev., correlations.

    The correlations are the lower triangle of each term's correlation matrix,
    laid out as lme4 prints them: column ``corr_j`` holds, on a term's i-th row
    (i > j), the correlation of column i with the term's j-th column (both
    counted from 1).  Entries outside a term's lower triangle are NaN, and
    there are as many ``corr_j`` columns as the largest term has columns,
    less one (none when every term is scalar).
    """
    width = max((len(t[2]) for t in terms), default=1) - 1
    corr_cols = [f"corr_{j + 1}" for j in range(width)]
    rows = []
    for group, _, names, cov, *_ in terms:
        corr = _correlation(cov)
        for i, name in enumerate(names):
            lower = [corr[i, j] if j < i else np.nan for j in range(width)]
            rows.append((group, name, cov[i, i], np.sqrt(cov[i, i]), *lower))
    if sigma is not None:
        rows.append(("Residual", "", sigma**2, sigma, *([np.nan] * width)))
    frame = pd.DataFrame(rows, columns=["group", "name", "variance", "std. dev.", *corr_cols])
    if any(t[4] is not None for t in terms):
        _add_structures(frame, terms)
    return frame


def _add_structures(frame: pd.DataFrame, terms) -> None:
    """The ``structure`` column (one label per row of a term) and the parameters in ``attrs``."""
    labels = [("us" if s is None else s.label) for *_, names, _, s, _ in terms for _ in names]
    frame["structure"] = labels + [""] * (len(frame) - len(labels))
    frame.attrs["structures"] = {
        label: {"structure": s.label, **params}
        for _, label, _, _, s, params in terms
        if s is not None
    }


def varcorr_long(terms, sigma: float | None) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor.

    Per term the variances first, then the covariances (lower triangle,
    column by column) with their correlations in ``sdcor``.
    """
    rows = []
    for _, label, names, cov, *_ in terms:
        corr = _correlation(cov)
        rows.extend((label, n, None, cov[j, j], np.sqrt(cov[j, j])) for j, n in enumerate(names))
        k = len(names)
        rows.extend(
            (label, names[c], names[r], cov[r, c], corr[r, c])
            for c in range(k)
            for r in range(c + 1, k)
        )
    if sigma is not None:
        rows.append(("Residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
