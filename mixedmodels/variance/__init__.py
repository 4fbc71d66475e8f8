"""Variance models: heteroskedastic (mixed) models, variance decomposition, multi-trait models.

Submodules are imported on first use of their names, except :mod:`.vardec`
(see below).  ``import mixedmodels`` imports none of this package.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY = {
    "HeteroskedasticMixedModel": "mixedmodels.variance.hetero",
    "HLMMResult": "mixedmodels.variance.hlmm",
    "fit_hlmm": "mixedmodels.variance.hlmm",
    "hlmm_scan": "mixedmodels.variance.chrscan",
    "scan_genotypes": "mixedmodels.variance.chrscan",
    "write_tsv": "mixedmodels.variance.chrscan",
    "VarianceDecomposition": "mixedmodels.variance.vardec",
    "KroneckerFit": "mixedmodels.variance.multitrait",
    "fit_kronecker": "mixedmodels.variance.multitrait",
    "mt_scan": "mixedmodels.variance.mtscan",
    "trait_design": "mixedmodels.variance.mtscan",
}

# The function vardec lives in the submodule of the same name.  Imported lazily, the
# submodule's import would bind the package attribute ``vardec`` to the module, so
# the function is bound here, once and for good.
from .vardec import vardec  # noqa: E402 - bound after the lazy table above (see the comment)

__all__ = [
    "HLMMResult",
    "HeteroskedasticMixedModel",
    "KroneckerFit",
    "VarianceDecomposition",
    "fit_hlmm",
    "fit_kronecker",
    "hlmm_scan",
    "mt_scan",
    "scan_genotypes",
    "trait_design",
    "vardec",
    "write_tsv",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixedmodels.variance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
