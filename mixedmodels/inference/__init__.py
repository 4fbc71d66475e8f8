"""Inference for fitted mixed models: tests, intervals, profiles, bootstrap, prediction, simulation.

Submodules are imported on first use (``import mixedmodels`` stays fast).

* :func:`lrt` / :func:`anova` - likelihood ratio tests of nested models;
* :func:`profile`, :func:`confint` - likelihood profiles, profile / Wald /
  bootstrap intervals;
* :func:`parametric_bootstrap` - reproducible parametric bootstrap;
* :func:`ddf_coeftable`, :func:`contrast_test` - t tests with Satterthwaite or
  Kenward–Roger degrees of freedom;
* :func:`predict`, :func:`simulate` - predictions and simulated responses;
* :func:`restore_optsum` - take a saved optimum instead of refitting.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "lrt": "likelihood_ratio",
    "anova": "likelihood_ratio",
    "profile": "profiling",
    "ProfileResult": "profiling",
    "confint": "intervals",
    "parametric_bootstrap": "bootstrap",
    "BootstrapResult": "bootstrap",
    "shortest_interval": "bootstrap",
    "ddf_coeftable": "ddf",
    "contrast_test": "ddf",
    "predict": "prediction",
    "simulate": "simulation",
    "restore_optsum": "restore",
    "InferenceMixin": "mixin",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
