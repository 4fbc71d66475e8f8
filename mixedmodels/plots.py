"""Diagnostic plots of fitted mixed models (the optional ``plot`` extra: matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg
canvas, without pyplot, so the caller's backend and pyplot state are left
alone: save it with ``fig.savefig(path)`` or display it in a notebook.

* :func:`caterpillar_plot` - conditional modes of the random effects with
  intervals from their conditional variances, levels sorted (for factors with
  many levels, the extremes);
* :func:`qq_plot` - normal quantile plot of the conditional modes;
* :func:`residual_plot` - residuals against fitted values;
* :func:`zeta_plot` - likelihood profiles on the ζ scale.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import MixedModelsError

__all__ = ["caterpillar_plot", "qq_plot", "residual_plot", "zeta_plot", "MAX_HEIGHT"]


def _figure(nplots: int, ncols: int | None = None, size: tuple[float, float] = (3.6, 3.2)):
    """A Figure on the Agg canvas with ``nplots`` axes on a grid; (figure, list of axes)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MixedModelsError("plots need matplotlib: pip install 'mixedmodels[plot]'") from None
    ncols = ncols or min(nplots, 3)
    nrows = math.ceil(nplots / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[nplots:]:
        ax.set_visible(False)
    return fig, list(axes[:nplots])


def _normal_quantile(p):
    from scipy.stats import norm

    return norm.ppf(p)


def _group_frame(model, group: str | None):
    """The ranef frame (with conditional variances) of ``group`` (default: the first grouping factor)."""
    frames = model.ranef(condvar=True)
    name = next(iter(frames)) if group is None else group
    if name not in frames:
        raise MixedModelsError(
            f"unknown grouping factor {group!r}; the model has {', '.join(frames)}"
        )
    df = frames[name]
    columns = [c for c in df.columns if not str(c).startswith("condvar(")]
    return name, df, columns


MAX_HEIGHT = 12.0
"""Tallest figure (inches) a caterpillar plot is given, however many levels it shows."""


def _shown_levels(modes: np.ndarray, sort: bool, max_levels: int | None) -> tuple[np.ndarray, int]:
    """Row positions to draw (bottom to top) and where the omitted levels are (-1: none omitted).

    With more than ``max_levels`` levels only the ``max_levels // 2`` lowest and
    the as many highest modes of the first column are kept, in sorted order.
    """
    order = np.argsort(modes, kind="stable") if sort else np.arange(len(modes))
    if max_levels is None or len(modes) <= max_levels:
        return order, -1
    half = max(1, max_levels // 2)
    ranked = np.argsort(modes, kind="stable")
    return np.concatenate([ranked[:half], ranked[-half:]]), half


def caterpillar_plot(
    model,
    group: str | None = None,
    *,
    level: float = 0.95,
    sort: bool = True,
    max_levels: int | None = 60,
) -> Any:
    """Conditional modes b̂ of one grouping factor's random effects with ``level`` intervals.

    Intervals are b̂ ± z sqrt(Var(b | y)) (conditional on β̂, as lme4's
    ``dotplot(ranef(m, condVar = TRUE))``).  With ``sort`` the levels are
    ordered by the mode of the first column.  One panel per column.

    A factor with more than ``max_levels`` levels shows the ``max_levels / 2``
    levels with the lowest and the as many with the highest modes of the first
    column (sorted, whatever ``sort`` says), with a dashed line where the
    others are left out and a title that says how many are shown.  With
    ``max_levels=None`` every level is drawn; beyond 100 levels without their
    labels.  The figure is at most ``MAX_HEIGHT`` inches tall.
    """
    name, df, columns = _group_frame(model, group)
    z = _normal_quantile(0.5 + level / 2)
    rows, gap = _shown_levels(df[columns[0]].to_numpy(), sort, max_levels)
    height = min(MAX_HEIGHT, max(3.0, 0.16 * len(rows) + 1))
    fig, axes = _figure(len(columns), ncols=len(columns), size=(3.2, height))
    pos = np.arange(len(rows))
    labels = [str(v) for v in df.index.to_numpy()[rows]]
    for ax, col in zip(axes, columns):
        mode = df[col].to_numpy()[rows]
        half = z * np.sqrt(df[f"condvar({col})"].to_numpy()[rows])
        ax.errorbar(
            mode,
            pos,
            xerr=half,
            fmt="o",
            ms=3 if len(rows) <= 100 else 1.5,
            color="C0",
            ecolor="0.5",
            elinewidth=1 if len(rows) <= 100 else 0.5,
        )
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        if gap >= 0:
            ax.axhline(gap - 0.5, color="0.6", lw=0.8, ls=":")
        if len(rows) <= 100:
            ax.set_yticks(pos, labels, fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_ylim(-1, len(rows))
        ax.set_title(str(col))
        ax.set_xlabel("conditional mode")
    axes[0].set_ylabel(name)
    if gap >= 0:
        fig.suptitle(
            f"{name}: the {gap} lowest and {gap} highest of {len(df)} levels "
            f"(by {columns[0]}; max_levels=None shows all)",
            fontsize=8,
        )
    return fig


def qq_plot(model, group: str | None = None, *, level: float = 0.95) -> Any:
    """Normal quantile plot of one grouping factor's conditional modes, one panel per column.

    The sorted modes (with ``level`` conditional intervals) are drawn against
    standard normal quantiles Φ⁻¹((i - ½)/m); a straight line through 0
    suggests normally distributed random effects.
    """
    name, df, columns = _group_frame(model, group)
    z = _normal_quantile(0.5 + level / 2)
    m = len(df)
    theoretical = _normal_quantile((np.arange(1, m + 1) - 0.5) / m)
    fig, axes = _figure(len(columns))
    for ax, col in zip(axes, columns):
        order = np.argsort(df[col].to_numpy())
        mode = df[col].to_numpy()[order]
        half = z * np.sqrt(df[f"condvar({col})"].to_numpy()[order])
        ax.errorbar(
            theoretical, mode, yerr=half, fmt="o", ms=3, color="C0", ecolor="0.6", elinewidth=1
        )
        ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
        ax.set_title(f"{name}: {col}")
        ax.set_xlabel("standard normal quantile")
        ax.set_ylabel("conditional mode")
    return fig


def residual_plot(model) -> Any:
    """Residuals against fitted values (deviance residuals for generalised models)."""
    generalised = model.family is not None
    resid = model.residuals()
    fig, (ax,) = _figure(1, size=(5.0, 3.8))
    ax.scatter(model.fitted(), resid, s=10, alpha=0.7, color="C0", edgecolors="none")
    ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("fitted value")
    ax.set_ylabel("deviance residual" if generalised else "residual")
    ax.set_title(model.formula, fontsize=9)
    return fig


def zeta_plot(prof, *, levels=(0.5, 0.8, 0.9, 0.95, 0.99), absolute: bool = False) -> Any:
    """Profile zeta plots: ζ against each parameter, one panel per parameter.

    ``prof`` is the result of ``model.profile()``.  Horizontal lines mark
    ±z for the confidence ``levels`` and the vertical line the estimate;
    a straight line means the parameter's estimate is close to normally
    distributed, curvature that the profile interval is asymmetric.  With
    ``absolute`` |ζ| is drawn (the profile then looks like a V).
    """
    names = list(dict.fromkeys(prof["parameter"]))
    estimates = prof.attrs.get("estimates", {})
    zs = _normal_quantile(0.5 + np.asarray(levels) / 2)
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names):
        part = prof[prof["parameter"] == name].sort_values(name)
        zeta = part["zeta"].to_numpy()
        ax.plot(part[name].to_numpy(), np.abs(zeta) if absolute else zeta, "-o", ms=2.5, color="C0")
        for zc in zs:
            ax.axhline(zc, color="0.75", lw=0.7)
            if not absolute:
                ax.axhline(-zc, color="0.75", lw=0.7)
        if name in estimates:
            ax.axvline(estimates[name], color="0.4", lw=0.8, ls="--")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("|ζ|" if absolute else "ζ")
    return fig
