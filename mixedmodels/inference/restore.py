"""Restore a saved optimisation into a model, so that a long fit is not repeated.

``m.optsum.save(path)`` writes the optimiser's record (settings, final
parameters, objective) as JSON.  :func:`restore_optsum` puts such a record
into a freshly constructed model of the same formula and data: it sets the
parameters from ``final`` (θ, and β for a generalised model), refactors,
recomputes the conditional modes and marks the model fitted, without
optimising.  The objective at the restored parameters must equal the saved
``fmin``; otherwise the record belongs to another model or other data and
an error says so (MixedModels.jl's ``restoreoptsum!`` does the same check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MixedModelsError
from ..model import MixedModel
from ..optsummary import OptSummary

__all__ = ["restore_optsum"]

RTOL = 1e-6
"""Relative agreement required between the recomputed objective and the saved ``fmin``."""


def _load(source) -> OptSummary:
    if isinstance(source, OptSummary):
        return source
    path = Path(source)
    if not path.is_file():
        raise MixedModelsError(f"no saved optimisation at {str(path)!r}")
    try:
        return OptSummary.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise MixedModelsError(
            f"{str(path)!r} is not a saved optimisation summary ({exc})"
        ) from None


def restore_optsum(model: MixedModel, source, *, rtol: float = RTOL):
    """Put a saved optimisation (a path written by ``optsum.save`` or an OptSummary) into ``model``.

    Returns the model, now fitted at the saved optimum.  ``rtol`` is the
    relative agreement required between the objective recomputed at the
    saved parameters and the saved ``fmin``.

    Raises
    ------
    MixedModelsError
        If the record does not fit the model (number of parameters, REML
        flag, or an objective that differs from the saved one).
    """
    saved = _load(source)
    if not np.isfinite(saved.fmin) or not saved.fitted:
        raise MixedModelsError("the saved optimisation summary is not of a finished fit")
    model.apply_optsum(saved)
    value = model.objective
    if abs(value - saved.fmin) > rtol * max(1.0, abs(saved.fmin)):
        raise MixedModelsError(
            f"the saved optimisation does not belong to this model and data: the objective at the saved "
            f"parameters is {value:.10g}, the saved minimum {saved.fmin:.10g}"
        )
    saved.fitted = True
    return model
