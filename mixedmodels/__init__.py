"""mixedmodels: formula-driven linear and generalized linear mixed-effects models.

Heavy modules (formulaic, scipy, nlopt, the genetics tools) are imported on
first use, so that ``import mixedmodels`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "LinearMixedModel": "mixedmodels.lmm",
    "GeneralizedLinearMixedModel": "mixedmodels.glmm",
    "OptSummary": "mixedmodels.optsummary",
    "MixedModel": "mixedmodels.model",
    "load": "mixedmodels.model",
    **dict.fromkeys(["emmeans", "emtrends"], "mixedmodels.inference.emmeans"),
    "contrast": "mixedmodels.inference.contrasts",
    "lrt": "mixedmodels.inference.likelihood_ratio",
    "anova": "mixedmodels.inference.likelihood_ratio",
    "parametric_bootstrap": "mixedmodels.inference.bootstrap",
    "fit_many": "mixedmodels.fitmany",
    "restore_optsum": "mixedmodels.inference.restore",
    **{
        "allfit": "mixedmodels.inference.allfit",
        "simulate_residuals": "mixedmodels.inference.residuals_sim",
    },
    "HeteroskedasticMixedModel": "mixedmodels.variance.hetero",
    "MixedModelsError": "mixedmodels.errors",
    "FormulaError": "mixedmodels.errors",
    "DataError": "mixedmodels.errors",
    "ConvergenceError": "mixedmodels.errors",
    "NotFittedError": "mixedmodels.errors",
    "SingularFitWarning": "mixedmodels.errors",
    "ConvergenceWarning": "mixedmodels.errors",
    "set_threads": "mixedmodels.threads",
}
_SUBMODULES = {"datasets", "families", "genetics", "variance", "inference", "plots"}

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"mixedmodels.{name}")
    raise AttributeError(f"module 'mixedmodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
