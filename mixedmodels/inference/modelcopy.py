"""Private copies of fitted models, and maximum-likelihood versions of REML fits.

Profiles, tests and the bootstrap move a model's parameters around; they work
on copies so that the user's model is never changed.  Models pickle and
deep-copy (see :class:`~mixedmodels.model.MixedModel`), so a copy is simply
a deep copy; worker processes get the model itself.

Likelihood ratio tests and profile intervals compare likelihoods, which the
REML criterion is not (it changes with the fixed effects), so a REML fit is
refitted by maximum likelihood on a copy, as lme4 does.
"""

from __future__ import annotations

import warnings

from ..model import MixedModel

__all__ = ["copy_model", "as_ml"]


def copy_model(model: MixedModel) -> MixedModel:
    """An independent deep copy of ``model``."""
    return model.copy()


def as_ml(model: MixedModel, warn: str | None = None) -> MixedModel:
    """``model`` itself unless it is a REML fit, else a copy refitted by maximum likelihood.

    Parameters
    ----------
    warn : str, optional
        If given, a warning with this text is issued when a refit happens.
    """
    if not model.reml:
        return model
    if warn:
        warnings.warn(warn, stacklevel=3)
    ml = copy_model(model)
    ml.optsum.initial = model.theta.copy()  # the REML estimate is a good start
    return ml.fit(reml=False)
