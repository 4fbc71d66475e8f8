"""Results that depend only on a model's fit, cached with the fit they belong to.

Degrees-of-freedom machinery (Satterthwaite's derivatives, Kenward–Roger's
adjusted covariance) costs far more than one contrast, and every table,
test and marginal mean of the same fit needs the same pieces.  They are kept
here, off the model (which stays copyable and picklable), keyed by the model
object and by what the fit is: θ, β, σ, the criterion and the response.  A
``refit``, ``set_theta`` or ``apply_optsum`` changes the key, so a stale value
is never returned and nothing is invalidated by hand.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model import MixedModel

__all__ = ["fit_key", "cached_at_fit"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""model -> {name: (key, value)}."""


def fit_key(model: MixedModel) -> str:
    """A digest of θ, β, σ, the criterion and the response of ``model``."""
    h = hashlib.sha1()
    for part in (model.theta, model.beta, model.response):
        h.update(np.ascontiguousarray(part, dtype=float).tobytes())
    h.update(repr((model.sigma, model.criterion)).encode())
    return h.hexdigest()


def cached_at_fit(model: MixedModel, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per fit of ``model`` (recomputed when the fit changes)."""
    key = fit_key(model)
    slot = _CACHE.setdefault(model, {})
    if name not in slot or slot[name][0] != key:
        slot[name] = (key, compute())
    return slot[name][1]
