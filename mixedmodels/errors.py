"""Exceptions raised for problems in a user's formula, data or options."""

from __future__ import annotations

import numpy as np

__all__ = [
    "MixedModelsError",
    "FormulaError",
    "DataError",
    "ConvergenceError",
    "ConvergenceWarning",
    "CholeskyFailed",
    "NotFittedError",
    "SingularFitWarning",
    "EVALUATION_FAILURES",
]


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


class CholeskyFailed(MixedModelsError, ArithmeticError):
    """A matrix that should be positive definite is not, numerically.

    Every factorisation in the package raises this (never LAPACK's or numpy's
    own exception), so that one guard can catch a failed evaluation.
    """


class NotFittedError(MixedModelsError, AttributeError):
    """A result was asked of a model that has not been fitted yet."""


class SingularFitWarning(UserWarning):
    """The fit is on the boundary: a variance component is (numerically) zero."""


EVALUATION_FAILURES = (CholeskyFailed, ConvergenceError, FloatingPointError, np.linalg.LinAlgError)
"""What a failed evaluation of an objective (or a PIRLS run) may raise; anything else is a bug."""
