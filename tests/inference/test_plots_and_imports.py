"""Plots return matplotlib Figures without pyplot; the package import stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

matplotlib = pytest.importorskip("matplotlib")  # the optional "plot" extra
from matplotlib.figure import Figure  # noqa: E402

from mixedmodels import plots  # noqa: E402
from mixedmodels.errors import MixedModelsError  # noqa: E402


def _panels(fig) -> int:
    return sum(ax.get_visible() for ax in fig.axes)


def test_caterpillar_and_qq(sleep_ml, cbpp):
    fig = plots.caterpillar_plot(sleep_ml)
    assert isinstance(fig, Figure) and _panels(fig) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][
        -1
    ] == "337"  # largest intercept mode on top
    assert _panels(plots.qq_plot(sleep_ml)) == 2
    assert _panels(plots.caterpillar_plot(cbpp, "herd")) == 1
    with pytest.raises(MixedModelsError, match="grouping factor"):
        plots.caterpillar_plot(sleep_ml, "Days")


def test_residual_plot(sleep_ml, cbpp, tmp_path):
    fig = plots.residual_plot(sleep_ml)
    assert len(fig.axes[0].collections[0].get_offsets()) == sleep_ml.nobs
    plots.residual_plot(cbpp).savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_zeta_plot(fitted):
    prof = fitted("Yield ~ 1 + (1|Batch)", "dyestuff").profile(progress=False)
    fig = prof.plot()
    assert isinstance(fig, Figure) and _panels(fig) == 3
    assert _panels(plots.zeta_plot(prof, absolute=True)) == 3


def _run(code: str) -> str:
    """stdout of ``code`` run by a fresh interpreter (module state of this one does not leak in)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_plots_do_not_touch_pyplot():
    assert (
        _run(
            "import mixedmodels as mm, sys; from mixedmodels import plots; "
            "m = mm.LinearMixedModel('Yield ~ 1 + (1|Batch)', mm.datasets.load('dyestuff')).fit(); "
            "plots.caterpillar_plot(m); print('matplotlib.pyplot' in sys.modules)"
        )
        == "False"
    )


def test_import_stays_light():
    assert (
        _run(
            "import sys, mixedmodels; import mixedmodels.inference; "
            "print([m for m in ('scipy.stats', 'matplotlib', 'mixedmodels.inference.profiling', "
            "'mixedmodels.inference.bootstrap', 'mixedmodels.plots') if m in sys.modules])"
        )
        == "[]"
    )
