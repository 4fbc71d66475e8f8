"""Use the Python ``marginaleffects`` package (predictions, comparisons, slopes) on our models.

``marginaleffects`` (0.6) accepts any subclass of its ``ModelAbstract`` in
place of a statsmodels or pyfixest fit: it asks the model for β
(``get_coef``), their covariance (``get_vcov``), the data (``get_modeldata``)
and predictions at any β on new data (``get_predict``), and differentiates
the predictions numerically for delta-method standard errors.  That class is
not a documented plugin interface in the Python package (R's has one), so
this adapter is tied to the 0.6 layout and checks for it.

Predictions at β are

    η(β) = η̂ + X_new (β − β̂),   on the link scale, or g⁻¹(η(β)) with ``type="response"``,

where η̂ are the model's own predictions on the new rows (``re_form="~0"``,
the default: population-level, so comparisons and slopes are of the fixed
effects; ``re_form=None`` adds the conditional modes of the groups).  Only
β varies: the standard errors treat θ as known, as lme4-based
``marginaleffects`` in R does.

Example::

    from marginaleffects import avg_slopes
    from mixedmodels.marginaleffects_adapter import wrap

    avg_slopes(wrap(model, data), variables="Days")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import MixedModelsError
from .model import MixedModel

__all__ = ["wrap"]


def _base():
    try:
        from marginaleffects.classes import ModelAbstract, ModelVault
    except ImportError:
        raise MixedModelsError(
            "the marginaleffects adapter needs the marginaleffects package (0.6 or later): "
            "pip install marginaleffects"
        ) from None
    return ModelAbstract, ModelVault


def _variables(model: MixedModel) -> list[str]:
    """Response, fixed-effects variables and grouping factors (columns of the data)."""
    spec = model.structure.fe.design.spec
    fixed = sorted(getattr(spec, "required_variables", set()))
    groups = [f for t in model.structure.formula.random for f in t.factors]
    return list(dict.fromkeys([model.structure.formula.response, *fixed, *groups]))


def wrap(model: MixedModel, data: pd.DataFrame, *, type: str = "response", re_form: Any = "~0"):
    """A ``marginaleffects`` model for ``model`` fitted to ``data``.

    Parameters
    ----------
    model : MixedModel
        A fitted model.
    data : DataFrame
        The data the model was fitted to (models do not keep it).
    type : {"response", "link"}
        The scale of the predictions (a linear model's are the same on both).
    re_form : "~0" or None
        Population-level predictions (default) or conditional on the groups' modes.
    """
    import polars as pl

    model.require_fit("marginaleffects")
    if type not in ("response", "link"):
        raise MixedModelsError(f"type must be 'response' or 'link', got {type!r}")
    if not isinstance(data, pd.DataFrame):
        raise MixedModelsError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    variables = _variables(model)
    missing = [v for v in variables[1:] if v not in data.columns]
    if missing:
        raise MixedModelsError(f"data has no column(s) {', '.join(missing)} that the model uses")
    ModelAbstract, ModelVault = _base()
    adapter = _adapter_class(ModelAbstract)
    frame = data[[v for v in variables if v in data.columns]]
    vault = ModelVault(
        coef=np.asarray(model.beta, dtype=float).copy(),
        coefnames=np.array(model.coefnames),
        formula=_Design(model),
        modeldata=pl.from_pandas(frame.reset_index(drop=True)),
        package="mixedmodels",
        vcov=np.asarray(model.vcov, dtype=float),
        variable_names=variables,
    )
    return adapter(model, vault, type, re_form, list(frame.columns))


class _Design:
    """``newdata -> (None, X)``: the "formula" marginaleffects takes from a model it cannot parse.

    A callable rather than the formula string, whose random-effects terms
    marginaleffects' formula parser does not know.
    """

    def __init__(self, model: MixedModel):
        self.model = model

    def __call__(self, newdata):
        nd = newdata.to_pandas() if hasattr(newdata, "to_pandas") else newdata
        return None, self.model.structure.fe.X_on(nd)


def _adapter_class(ModelAbstract):
    class MixedModelsAdapter(ModelAbstract):
        """marginaleffects' view of a mixed model (see :mod:`mixedmodels.marginaleffects_adapter`)."""

        def __init__(self, model, vault, scale, re_form, columns):
            self.scale, self.re_form, self.columns = scale, re_form, columns
            super().__init__(model, vault)

        def get_exog(self, newdata):
            return newdata

        def get_predict(self, params, newdata):
            import polars as pl

            nd = newdata.to_pandas() if hasattr(newdata, "to_pandas") else pd.DataFrame(newdata)
            m = self.model
            eta = np.asarray(m.predict(nd, re_form=self.re_form), dtype=float)
            X = m.structure.fe.X_on(nd)
            eta = eta + X @ (np.asarray(params, dtype=float) - m.beta)
            if self.scale == "response" and m.family is not None:
                eta = m.family.link.linkinv(eta)
            return pl.DataFrame({"rowid": np.arange(len(eta), dtype=np.int32), "estimate": eta})

    return MixedModelsAdapter
