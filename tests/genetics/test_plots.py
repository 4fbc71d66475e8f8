"""Manhattan, QQ and kinship figures (rendered headless)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import genomic_inflation, kinship_heatmap, manhattan_plot, qq_plot


@pytest.fixture
def results():
    rng = np.random.default_rng(0)
    chrom = np.repeat(["1", "2", "10", "X"], 50)
    return pd.DataFrame(
        {
            "phenotype": "y",
            "snp": [f"s{j}" for j in range(200)],
            "chrom": chrom,
            "pos": np.tile(np.arange(50) * 1000, 4),
            "p_lrt": np.r_[rng.uniform(size=199), 1e-9],
        }
    )


def test_manhattan_orders_chromosomes_and_draws_threshold(results, tmp_path):
    fig = manhattan_plot(results.sample(frac=1, random_state=1), title="scan")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "10", "X"]
    heights = ax.collections[0].get_offsets()[:, 1]
    assert heights.max() == pytest.approx(9.0)
    assert ax.lines[0].get_ydata()[0] == pytest.approx(-np.log10(5e-8))
    fig.savefig(tmp_path / "manhattan.png")
    assert (tmp_path / "manhattan.png").stat().st_size > 1000


def test_manhattan_needs_one_phenotype(results):
    both = pd.concat([results, results.assign(phenotype="z")])
    with pytest.raises(DataError, match="several phenotypes"):
        manhattan_plot(both)
    assert len(manhattan_plot(both, phenotype="z").axes[0].collections[0].get_offsets()) == 200
    with pytest.raises(DataError, match="no column"):
        manhattan_plot(results.drop(columns="pos"))


def test_qq_reports_lambda(results, tmp_path):
    fig = qq_plot(results["p_lrt"])
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert label == f"λ = {genomic_inflation(results['p_lrt']):.3f}"
    fig.savefig(tmp_path / "qq.png")
    with pytest.raises(DataError, match="no finite p-value"):
        qq_plot([np.nan])


def test_kinship_heatmap_labels_small_panels():
    K = pd.DataFrame(np.eye(3) + 0.1, index=list("abc"), columns=list("abc"))
    fig = kinship_heatmap(K, cluster=False)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    np.testing.assert_allclose(ax.images[0].get_array(), K.to_numpy())
    with pytest.raises(DataError, match="not symmetric"):
        kinship_heatmap(np.array([[1.0, 0.2], [0.0, 1.0]]))


def test_kinship_heatmap_clusters_families_and_scales_by_relatives():
    # Three families of four with kinship 0.25 within, 0 between, shuffled.
    families = np.repeat(np.arange(3), 4)
    K = np.where(families[:, None] == families[None, :], 0.25, 0.0) + 0.75 * np.eye(12)
    rng = np.random.default_rng(2)
    shuffle = rng.permutation(12)
    names = [f"f{f}_{i}" for i, f in enumerate(families)]
    shuffled = pd.DataFrame(K[np.ix_(shuffle, shuffle)], index=[names[i] for i in shuffle],
                            columns=[names[i] for i in shuffle])  # fmt: skip
    fig = kinship_heatmap(shuffled)
    order = fig.kinship_order
    drawn = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    runs = [label.split("_")[0] for label in drawn]
    assert sum(a != b for a, b in itertools.pairwise(runs)) == 2  # each family contiguous
    assert drawn == [shuffled.index[i] for i in order]
    np.testing.assert_allclose(
        fig.axes[0].images[0].get_array(), shuffled.to_numpy()[np.ix_(order, order)]
    )
    norm = fig.axes[0].images[0].norm
    assert (norm.vmin, norm.vmax) == (
        -0.25,
        0.25,
    )  # relatives, not the diagonal (1.0), set the scale
