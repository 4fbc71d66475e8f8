"""Inference methods shared by the linear and generalised model classes.

:class:`InferenceMixin` is a base class of both model classes.  Its methods
only forward to the modules of :mod:`mixedmodels.inference`, which are
imported when a method is first called, so that importing a model class
stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    import pandas as pd

    from .profiling import ProfileResult

__all__ = ["InferenceMixin"]


class InferenceMixin:
    """Profiles, confidence intervals, predictions, simulation, summaries and restoring a saved fit."""

    def summary(self, style: str = "lme4", **kwargs: Any):
        """lme4's ``summary()`` layout (see :func:`mixedmodels.printing.summary_text`).

        For linear models the t tests use Satterthwaite's degrees of freedom,
        as lmerTest's (``ddf=None`` gives Wald z tests, as for GLMMs).
        """
        from ..printing import summary_text

        return summary_text(self, style, **kwargs)

    def _repr_html_(self) -> str:
        from ..printing import model_html

        return model_html(self)

    def _repr_markdown_(self) -> str:
        from ..printing import model_markdown

        return model_markdown(self)

    def profile(
        self,
        which: list[str] | None = None,
        *,
        levels=(0.95,),
        progress: bool | str = "auto",
        **kwargs: Any,
    ) -> ProfileResult:
        """Likelihood profiles of the parameters (see :func:`mixedmodels.inference.profiling.profile`).

        Returns a tidy DataFrame (``parameter``, ``zeta`` and every parameter's
        value); ``.confint(level)`` reads intervals off it and ``.plot()``
        draws the zeta plot.
        """
        from .profiling import profile

        return profile(self, which, levels=levels, progress=progress, **kwargs)

    def confint(self, method: str = "profile", level: float = 0.95, **kwargs: Any) -> pd.DataFrame:
        """Confidence intervals by ``"profile"`` (default), ``"wald"`` or ``"bootstrap"``.

        See :func:`mixedmodels.inference.intervals.confint` for the options
        (``parm``, ``n``, ``seed``, ``n_jobs``, ``boot_method``, ``progress``).
        """
        from .intervals import confint

        return confint(self, method, level, **kwargs)

    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        *,
        re_form: Any = None,
        new_levels: str = "population",
        type: str = "link",
        offset=None,
        allow_new_levels: bool | None = None,
        se_fit: bool = False,
        interval: str | None = None,
        level: float = 0.95,
    ) -> pd.Series | pd.DataFrame:
        """Predictions on the training data or ``newdata`` (see :func:`mixedmodels.inference.prediction.predict`).

        ``re_form="~0"`` gives population predictions (new data then need no
        grouping columns); unseen levels of a grouping factor get a zero
        random effect unless ``new_levels="error"`` (lme4's
        ``allow_new_levels=False``); ``type="response"`` gives means of a
        generalised model.  ``se_fit=True`` / ``interval="confidence"`` add
        standard errors and intervals from the fixed effects' covariance only
        (a DataFrame ``fit``, ``se_fit``, ``lwr``, ``upr``).
        """
        from .prediction import predict

        if allow_new_levels is not None:
            new_levels = "population" if allow_new_levels else "error"

        return predict(
            self,
            newdata,
            re_form=re_form,
            new_levels=new_levels,
            type=type,
            offset=offset,
            se_fit=se_fit,
            interval=interval,
            level=level,
        )

    def simulate(
        self, n: int = 1, seed: Any = None, newdata: pd.DataFrame | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        """``n`` simulated responses, one column each (see :func:`mixedmodels.inference.simulation.simulate`)."""
        from .simulation import simulate

        return simulate(self, n, seed, newdata, **kwargs)

    def restore_optsum(self, source, **kwargs: Any) -> Any:
        """Take the optimum saved by ``optsum.save(path)`` without refitting; returns the model.

        See :func:`mixedmodels.inference.restore.restore_optsum`.
        """
        from .restore import restore_optsum

        return restore_optsum(self, source, **kwargs)

    # --- anova / contrasts ---
    def anova(self, *models: Any, type=None, ddf: str | None = None, **kwargs: Any):
        """F tests of the fixed-effects terms (lmerTest's table), or Wald χ² for a GLMM (car's).

        ``type`` is 1, 2 or 3; ``ddf`` ``"satterthwaite"`` or ``"kenward-roger"``
        (see :mod:`mixedmodels.inference.anova`).  With other models given,
        ``m.anova(m2, ...)`` is the likelihood ratio test of nested models
        (:func:`mixedmodels.anova`).
        """
        from .likelihood_ratio import anova

        return anova(self, *models, type=type, ddf=ddf, **kwargs)

    def contrast(self, L, ddf: str | None = "satterthwaite", **kwargs: Any):
        """t tests of the rows of ``L`` (see :func:`mixedmodels.inference.contrasts.contrast`)."""
        from .contrasts import contrast

        return contrast(self, L, ddf=ddf, **kwargs)

    # --- end anova / contrasts ---

    def _ddf_coeftable(self, ddf: str) -> pd.DataFrame:
        """lmerTest's coefficient table; the hook behind ``coeftable(ddf=...)`` of linear models."""
        from .ddf import ddf_coeftable

        return ddf_coeftable(self, ddf)

    # --- diagnostics ---
    def r2(self, data=None):
        """Nakagawa's marginal and conditional R² (see :func:`mixedmodels.inference.r2.r2`)."""
        from .r2 import r2

        return r2(self, data)

    def icc(self, data=None):
        """Adjusted and unadjusted intraclass correlation (see :func:`mixedmodels.inference.r2.icc`)."""
        from .r2 import icc

        return icc(self, data)

    def influence(self, level: str | None = None):
        """Leverage and Cook's distance per observation or per group (see :mod:`mixedmodels.inference.influence`)."""
        from .influence import influence

        return influence(self, level)

    def drop1(self, test: str = "Chisq", data=None):
        """Single-term deletions with LRTs, all by ML (see :func:`mixedmodels.inference.drop1.drop1`)."""
        from .drop1 import drop1

        return drop1(self, test, data)
