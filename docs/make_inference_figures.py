"""Draw the figures of docs/inference.md into docs/img/ (needs the ``plot`` extra).

Run from the repository root:  python docs/make_inference_figures.py
"""

from __future__ import annotations

from pathlib import Path

import mixedmodels as mm
from mixedmodels import plots

OUT = Path(__file__).parent / "img"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    data = mm.datasets.load("sleepstudy")
    model = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", data).fit()
    figures = {
        "sleepstudy_caterpillar.png": plots.caterpillar_plot(model),
        "sleepstudy_qq.png": plots.qq_plot(model),
        "sleepstudy_residuals.png": plots.residual_plot(model),
        "sleepstudy_zeta.png": model.profile(progress=False).plot(),
    }
    for name, fig in figures.items():
        fig.savefig(OUT / name, dpi=90)
        print(OUT / name)


if __name__ == "__main__":
    main()
