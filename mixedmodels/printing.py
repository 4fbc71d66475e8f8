"""Text summaries of fitted models, laid out as lme4 and MixedModels.jl users expect."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["lmm_summary", "glmm_summary", "format_coeftable", "format_varcorr", "format_pvalue"]


def format_pvalue(p: float) -> str:
    """p-values as R prints them: small ones as ``<1e-NN``."""
    if not np.isfinite(p):
        return "NaN"
    if p < 1e-99:
        return "<1e-99"
    if p < 1e-4:
        return f"<1e-{int(np.floor(-np.log10(p)))}"
    return f"{p:.4f}"


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    def line(cells):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()
    rule = "─" * sum(w + 2 for w in widths)
    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def format_coeftable(ct: pd.DataFrame, stat: str = "z") -> str:
    rows = [
        [str(name), f"{r['Estimate']:.6g}", f"{r['Std. Error']:.6g}", f"{r[stat]:.2f}", format_pvalue(r[ct.columns[-1]])]
        for name, r in ct.iterrows()
    ]
    return _table(["", "Coef.", "Std. Error", stat, f"Pr(>|{stat}|)"], rows, "lrrrr")


def _corr_columns(vc: pd.DataFrame) -> list[str]:
    return [c for c in vc.columns if str(c).startswith("corr_")]


def format_varcorr(vc: pd.DataFrame) -> str:
    """The wide ``varcorr()`` frame as a table, with each term's full lower triangle of correlations."""
    corr_cols = [c for c in _corr_columns(vc) if vc[c].notna().any()]
    rows, last = [], None
    for _, r in vc.iterrows():
        group = r["group"] if r["group"] != last else ""
        last = r["group"]
        corr = [f"{r[c]:+.2f}" if np.isfinite(r[c]) else "" for c in corr_cols]
        rows.append([group, str(r["name"]), f"{r['variance']:.6g}", f"{r['std. dev.']:.6g}", *corr])
    header = ["", "Column", "Variance", "Std.Dev.", *(["Corr."] + [""] * (len(corr_cols) - 1) if corr_cols else [])]
    return _table(header, rows, "llrr" + "r" * len(corr_cols))


def _fit_statistics(m) -> str:
    stats = {
        "logLik": m.loglikelihood,
        "-2 logLik": m.objective,
        "AIC": m.aic,
        "BIC": m.bic,
    }
    labels = "  ".join(f"{k:>12}" for k in stats)
    values = "  ".join(f"{v:>12.4f}" for v in stats.values())
    return f"{labels}\n{values}"


def _groups_line(m) -> str:
    levels = "; ".join(f"{r.name} {r.nlevels}" for r in m.reterms)
    dropped = m.structure.frame.n_dropped
    extra = f" ({dropped} with missing values dropped)" if dropped else ""
    return f" Number of obs: {m.nobs}{extra}; levels of grouping factors: {levels}"


def _body(m) -> list[str]:
    """Variance components, group sizes and the coefficient table, shared by every model."""
    parts = [
        "",
        "Variance components:",
        format_varcorr(m.varcorr()),
        _groups_line(m),
        "",
        "Fixed-effects parameters:",
        format_coeftable(m.coeftable()),
    ]
    if m.structure.fe.dropped:
        parts.append(f" Aliased columns dropped: {', '.join(m.structure.fe.dropped)}")
    if m.issingular:
        parts.append(" boundary (singular) fit: some variance components are zero")
    return parts


def lmm_summary(m) -> str:
    if not m.optsum.fitted:
        return f"LinearMixedModel (not fitted): {m.formula}"
    how = "REML" if m.reml else "maximum likelihood"
    stats = _fit_statistics(m).replace("-2 logLik", "REML crit" if m.reml else "-2 logLik")
    return "\n".join([f"Linear mixed model fit by {how}", f" {m.formula}", stats, *_body(m)])


def glmm_summary(m) -> str:
    if not m.optsum.fitted:
        return f"GeneralizedLinearMixedModel (not fitted): {m.formula}"
    method = "fast (β in PIRLS)" if m.fast else ("Laplace approximation" if m.nagq == 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {m.nagq}")
    head = [
        f"Generalized linear mixed model fit by maximum likelihood ({method})",
        f" {m.formula}",
        f" Family: {m.family.name}  Link: {m.family.link.name}",
        _fit_statistics(m),
        f"{'deviance':>12}\n{m.deviance:>12.4f}",
    ]
    return "\n".join([*head, *_body(m)])
