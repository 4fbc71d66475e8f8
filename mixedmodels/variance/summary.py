"""Text summaries of the variance models, in the layout of the LMM's summary."""

from __future__ import annotations

from ..printing import _fit_statistics, _groups_line, format_coeftable, format_varcorr

__all__ = ["hetero_summary"]


def hetero_summary(m) -> str:
    """Summary of a :class:`~mixedmodels.variance.HeteroskedasticMixedModel`."""
    kind = "Heteroskedastic linear mixed model" if m.reterms else "Heteroskedastic linear model"
    if not m.is_fitted:
        return f"{kind} (not fitted): {m.formula}, dispformula {m.dispformula}"
    parts = [
        f"{kind} fit by maximum likelihood",
        f" {m.formula}",
        f" dispformula: {m.dispformula}  (log residual variance)",
        _fit_statistics(m),
        "",
    ]
    if m.reterms:
        parts += ["Variance components:", format_varcorr(m.varcorr()), _groups_line(m), ""]
    else:
        parts += [f" Number of obs: {m.nobs}", ""]
    parts += [
        "Mean parameters:",
        format_coeftable(m.coeftable()),
        "",
        "Dispersion parameters (log residual variance; halve for log sd):",
        format_coeftable(m.disp_coeftable()),
    ]
    if not m.converged:
        parts.append(" warning: the optimiser did not reach a vanishing gradient")
    return "\n".join(parts)
