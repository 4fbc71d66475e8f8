"""Private copies of fitted models, and maximum-likelihood versions of REML fits.

Profiles, tests and the bootstrap move a model's parameters around; they work
on copies so that the user's model is never changed.  A copy shares what
never changes (the fixed-effects design with its formulaic spec, which holds
modules and cannot be deep-copied or pickled) and duplicates the rest.

Likelihood ratio tests and profile intervals compare likelihoods, which the
REML criterion is not (it changes with the fixed effects), so a REML fit is
refitted by maximum likelihood on a copy, as lme4 does.
"""

from __future__ import annotations

import copy
import warnings

__all__ = ["is_lmm", "copy_model", "portable_copy", "as_ml"]


def is_lmm(model) -> bool:
    """True for a :class:`~mixedmodels.lmm.LinearMixedModel` (imported lazily)."""
    from ..lmm import LinearMixedModel

    return isinstance(model, LinearMixedModel)


def copy_model(model):
    """A deep copy of ``model`` that shares its fixed-effects design."""
    design = model.structure.fe.design
    return copy.deepcopy(model, memo={id(design): design})


def portable_copy(model):
    """A deep copy that can be pickled (for worker processes): the design keeps only its matrix.

    The copy can be refitted and report its estimates; it cannot build model
    matrices for new data.
    """
    from ..design import Design

    design = model.structure.fe.design
    bare = Design(design.matrix, list(design.names), None, {})
    return copy.deepcopy(model, memo={id(design): bare})


def as_ml(model, warn: str | None = None):
    """``model`` itself unless it is a REML fit, else a copy refitted by maximum likelihood.

    Parameters
    ----------
    warn : str, optional
        If given, a warning with this text is issued when a refit happens.
    """
    if not is_lmm(model) or not model.reml:
        return model
    if warn:
        warnings.warn(warn, stacklevel=3)
    ml = copy_model(model)
    ml.reml = False
    ml.optsum.initial = model.theta.copy()  # the REML estimate is a good start
    return ml.fit()
