"""Figures for genetic analyses: Manhattan plot, QQ plot with λ, kinship heatmap.

Each function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``, so nothing depends on (or changes) the interactive backend: it
renders headless (``fig.savefig("scan.png")``) and displays in a notebook.
matplotlib is imported only when a function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mixedmodels.errors import DataError
from mixedmodels.genetics.kinship import check_kinship
from mixedmodels.genetics.multitest import genomic_inflation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["kinship_heatmap", "manhattan_plot", "qq_plot"]


def _figure(size: tuple[float, float]) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the installation
        raise DataError("plots need matplotlib: pip install mixedmodels[plot]") from None
    return Figure(figsize=size, layout="constrained")


def manhattan_plot(
    results: pd.DataFrame,
    *,
    phenotype: str | None = None,
    p_column: str = "p_lrt",
    threshold: float | None = 5e-8,
    title: str | None = None,
) -> Figure:
    """``-log10 p`` of each SNP along the genome, chromosomes in alternating colours.

    Parameters
    ----------
    results : DataFrame
        A :func:`scan` result, with columns ``chrom``, ``pos`` and ``p_column``.
    phenotype : str, optional
        Which phenotype to draw when ``results`` holds several.
    p_column : str
    threshold : float or None
        Draw a horizontal line at this p-value (genome-wide 5e-8 by default).
    title : str, optional
    """
    _require_columns(results, ["chrom", "pos", p_column])
    results = _one_phenotype(results, phenotype)
    table = results[["chrom", "pos", p_column]].dropna()
    table = table.assign(order=_chromosome_order(table["chrom"])).sort_values(["order", "pos"])
    x = np.arange(len(table))
    y = -np.log10(table[p_column].to_numpy())
    fig = _figure((10, 4))
    ax = fig.add_subplot()
    colours = np.where(pd.factorize(table["order"])[0] % 2 == 0, "#1f4e79", "#7fa7d1")
    ax.scatter(x, y, c=colours, s=6, linewidths=0)
    _label_chromosomes(ax, table["chrom"].to_numpy(), x)
    if threshold is not None:
        ax.axhline(-np.log10(threshold), color="#b22222", linewidth=0.8, linestyle="--")
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10} p$")
    ax.set_title(title or "")
    return fig


def _chromosome_order(chrom: pd.Series) -> np.ndarray:
    """Numeric chromosomes in numeric order, then the others (X, Y, MT) alphabetically."""
    as_number = pd.to_numeric(chrom, errors="coerce")
    others = {c: i for i, c in enumerate(sorted(set(chrom[as_number.isna()].astype(str))))}
    offset = (as_number.max() if as_number.notna().any() else 0) + 1
    return np.where(as_number.notna(), as_number, [offset + others.get(str(c), 0) for c in chrom])


def _label_chromosomes(ax, chrom: np.ndarray, x: np.ndarray) -> None:
    starts = np.flatnonzero(np.r_[True, chrom[1:] != chrom[:-1]])
    ends = np.r_[starts[1:], len(chrom)]
    ax.set_xticks((x[starts] + x[ends - 1]) / 2 if len(x) else [])
    ax.set_xticklabels([str(chrom[s]) for s in starts])


def qq_plot(p_values: object, *, title: str | None = None) -> Figure:
    """Observed against expected ``-log10 p`` under the uniform null, with λ in the legend.

    The grey band is the pointwise 95% interval of uniform order statistics
    (Beta(i, m - i + 1) quantiles).
    """
    from scipy.stats import beta

    p = np.sort(np.asarray(p_values, dtype=np.float64)[np.isfinite(p_values)])
    if p.size == 0:
        raise DataError("no finite p-value to plot")
    m = p.size
    rank = np.arange(1, m + 1)
    expected = -np.log10(rank / (m + 1))
    fig = _figure((5, 5))
    ax = fig.add_subplot()
    ax.fill_between(
        expected,
        -np.log10(beta.ppf(0.025, rank, m - rank + 1)),
        -np.log10(beta.ppf(0.975, rank, m - rank + 1)),
        color="0.85",
    )
    lam = genomic_inflation(p)
    ax.scatter(expected, -np.log10(p), s=6, color="#1f4e79", label=f"λ = {lam:.3f}")
    top = max(expected.max(), -np.log10(p[0]))
    ax.plot([0, top], [0, top], color="#b22222", linewidth=0.8)
    ax.set_xlabel(r"expected $-\log_{10} p$")
    ax.set_ylabel(r"observed $-\log_{10} p$")
    ax.legend(loc="upper left")
    ax.set_title(title or "")
    return fig


def kinship_heatmap(
    K: object,
    *,
    labels: list[str] | None = None,
    title: str | None = None,
    cluster: bool = True,
) -> Figure:
    """The kinship matrix as an image, individuals clustered, diverging colours centred at 0.

    The colour scale spans ±max |off-diagonal entry|: the diagonal (self-kinship,
    ~1) is far larger than relatedness between individuals and would otherwise
    wash out every family; diagonal cells show the end colour.

    Parameters
    ----------
    K : array (n, n) or DataFrame
        Checked with :func:`check_kinship`; a DataFrame's index labels the axes.
    labels : list of str, optional
        Axis labels (only drawn for at most 50 individuals).
    cluster : bool
        Order individuals by average-linkage clustering of their kinship
        profiles (rows of ``K``), so that relatives sit together; False keeps
        the given order.  The order used is ``fig.kinship_order``.
    """
    values = check_kinship(K)
    if labels is None and isinstance(K, pd.DataFrame):
        labels = [str(v) for v in K.index]
    order = _cluster_order(values) if cluster else np.arange(len(values))
    values = values[np.ix_(order, order)]
    fig = _figure((6, 5))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu_r", norm=_centred_norm(values), interpolation="nearest")
    fig.colorbar(image, ax=ax, label="kinship", extend="max")
    if labels is not None and len(labels) <= 50:
        shown = [labels[i] for i in order]
        ax.set_xticks(range(len(shown)), shown, rotation=90, fontsize=6)
        ax.set_yticks(range(len(shown)), shown, fontsize=6)
    ax.set_title(title or "")
    fig.kinship_order = order
    return fig


def _cluster_order(K: np.ndarray) -> np.ndarray:
    """Leaf order of an average-linkage tree on the rows of ``K`` (Euclidean distance)."""
    if len(K) < 3:
        return np.arange(len(K))
    from scipy.cluster.hierarchy import leaves_list, linkage

    return leaves_list(linkage(K, method="average", metric="euclidean"))


def _centred_norm(K: np.ndarray):
    """Colours centred at 0 spanning ±max |off-diagonal| (the diagonal does not set the scale)."""
    from matplotlib.colors import Normalize

    off_diagonal = K[~np.eye(len(K), dtype=bool)]
    limit = float(np.abs(off_diagonal).max(initial=0.0)) or float(np.abs(K).max(initial=0.0)) or 1.0
    return Normalize(vmin=-limit, vmax=limit)


def _one_phenotype(results: pd.DataFrame, phenotype: str | None) -> pd.DataFrame:
    if "phenotype" not in results.columns:
        return results
    present = list(pd.unique(results["phenotype"]))
    if phenotype is None and len(present) > 1:
        raise DataError(
            f"the results hold several phenotypes {present}: choose one with phenotype="
        )
    if phenotype is not None and phenotype not in present:
        raise DataError(f"no phenotype {phenotype!r} in the results; they hold {present}")
    return results if phenotype is None else results[results["phenotype"] == phenotype]


def _require_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(f"the results table has no column(s) {absent}; is it a scan result?")
