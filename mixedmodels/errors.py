"""Exceptions raised for problems in a user's formula, data or options."""

from __future__ import annotations

__all__ = ["ConvergenceError", "ConvergenceWarning", "DataError", "FormulaError", "MixedModelsError"]


class MixedModelsError(ValueError):
    """Base class: a problem the user can fix (formula, data, options)."""


class FormulaError(MixedModelsError):
    """The model formula is malformed or refers to something that cannot be used."""


class DataError(MixedModelsError):
    """The data cannot support the model (missing columns, bad values, too few levels)."""


class ConvergenceError(MixedModelsError, RuntimeError):
    """An iterative algorithm (PIRLS, an optimizer) failed to converge."""


class ConvergenceWarning(UserWarning):
    """After the post-fit check and its restarts, the optimum looks unreached or not identified."""

