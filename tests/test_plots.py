"""Diagnostic plots (mixedmodels/plots.py): what is drawn, read back from the figures."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels import plots
from mixedmodels.printing import observation_values


@cache
def sleep():
    return mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1 + Days|Subject)", mm.datasets.load("sleepstudy")
    ).fit()


@cache
def many_levels(n_levels: int = 400):
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(n_levels), 3)
    y = rng.normal(size=n_levels)[g] * 2 + rng.normal(size=g.size)
    df = pd.DataFrame({"y": y, "g": pd.Categorical([f"L{i:03d}" for i in g])})
    return mm.LinearMixedModel("y ~ 1 + (1|g)", df).fit()


def errorbar_points(ax) -> np.ndarray:
    """(x, y) of the markers an errorbar call drew."""
    line = next(ln for ln in ax.get_lines() if ln.get_marker() == "o")
    return np.column_stack(line.get_data())


def test_caterpillar_shows_every_level_of_a_small_factor_sorted():
    m = sleep()
    fig = plots.caterpillar_plot(m)
    re = m.ranef(condvar=True)["Subject"]
    ax_int, ax_days = fig.axes
    order = np.argsort(re["(Intercept)"].to_numpy(), kind="stable")
    assert [t.get_text() for t in ax_int.get_yticklabels()] == [str(v) for v in re.index[order]]
    np.testing.assert_allclose(errorbar_points(ax_int)[:, 0], re["(Intercept)"].to_numpy()[order])
    np.testing.assert_allclose(errorbar_points(ax_days)[:, 0], re["Days"].to_numpy()[order])
    assert fig.get_suptitle() == ""


def test_caterpillar_of_hundreds_of_levels_shows_the_extremes():
    m = many_levels()
    fig = plots.caterpillar_plot(m, max_levels=40)
    (ax,) = fig.axes
    modes = m.ranef()["g"]["(Intercept)"]
    ranked = modes.sort_values(kind="stable")
    expected = [*ranked.index[:20], *ranked.index[-20:]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(v) for v in expected]
    np.testing.assert_allclose(
        errorbar_points(ax)[:, 0], ranked.iloc[np.r_[0:20, -20:0]].to_numpy()
    )
    assert "20 lowest and 20 highest of 400 levels" in fig.get_suptitle()
    assert fig.get_figheight() <= plots.MAX_HEIGHT


def test_caterpillar_with_every_level_caps_the_height():
    m = many_levels()
    fig = plots.caterpillar_plot(m, max_levels=None)
    (ax,) = fig.axes
    assert len(errorbar_points(ax)) == 400
    assert fig.get_figheight() <= plots.MAX_HEIGHT
    assert len(ax.get_yticklabels()) == 0
    assert (
        plots.caterpillar_plot(m).get_figheight() <= plots.MAX_HEIGHT
    )  # the default keeps 60 levels


def test_qq_plot_draws_sorted_modes_against_normal_quantiles():
    m = sleep()
    fig = plots.qq_plot(m)
    pts = errorbar_points(fig.axes[0])
    assert np.all(np.diff(pts[:, 0]) > 0) and np.all(np.diff(pts[:, 1]) >= 0)
    np.testing.assert_allclose(np.sort(m.ranef()["Subject"]["(Intercept)"].to_numpy()), pts[:, 1])


@pytest.mark.parametrize("generalised", [False, True])
def test_residual_plot_draws_residuals_against_fitted(generalised):
    if generalised:
        m = mm.GeneralizedLinearMixedModel(
            "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
            mm.datasets.load("cbpp"),
            family="binomial",
        ).fit()
    else:
        m = sleep()
    fig = plots.residual_plot(m)
    offsets = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], observation_values(m, "fitted"))
    kind = {"kind": "deviance"} if generalised else {}
    np.testing.assert_allclose(offsets[:, 1], observation_values(m, "residuals", **kind))
    assert fig.axes[0].get_ylabel() == ("deviance residual" if generalised else "residual")


def test_zeta_plot_one_panel_per_parameter():
    m = mm.LinearMixedModel("Yield ~ 1 + (1|Batch)", mm.datasets.load("dyestuff")).fit()
    prof = m.profile(progress=False)
    fig = plots.zeta_plot(prof)
    names = list(dict.fromkeys(prof["parameter"]))
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_visible()] == names


def test_unknown_group_is_named():
    with pytest.raises(mm.MixedModelsError, match="unknown grouping factor 'Day'"):
        plots.caterpillar_plot(sleep(), "Day")
