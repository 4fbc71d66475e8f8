"""Confidence intervals for all parameters of a fitted model, by one of three methods.

* ``"profile"``: likelihood profile intervals (:mod:`.profiling`), lme4's default;
* ``"wald"``: β̂ ± z_{(1+level)/2} se(β̂) for the fixed effects (the variance
  parameters get NaN, as in lme4: their sampling distributions are far from
  normal);
* ``"bootstrap"``: shortest-coverage (or percentile) intervals of a
  parametric bootstrap (:mod:`.bootstrap`).

Rows are in lme4's order: standard deviations and correlations, σ, fixed effects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .params import variance_layout

__all__ = ["confint", "parameter_names"]


def parameter_names(model: MixedModel) -> list[str]:
    """sd/cor names, ``sigma`` (when the model has one), the coefficient names, then the extra parameters.

    The extra parameters are the model's :meth:`~mixedmodels.model.MixedModel.extra_parameters`
    (a zero-inflation model's coefficients, a log dispersion).
    """
    has_sigma = model.sigma is not None
    extra = model.extra_parameters()[0]
    return (
        variance_layout(model).names()
        + (["sigma"] if has_sigma else [])
        + list(model.coefnames)
        + list(extra)
    )


def _wald(model, level: float) -> pd.DataFrame:
    """β ± z·SE, and the same for the extra parameters; NaN for the variance parameters (as lme4)."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + level / 2)
    names = parameter_names(model)
    out = pd.DataFrame(np.nan, index=names, columns=["lower", "upper"])
    extra_names, extra, extra_se = model.extra_parameters()
    rows = list(model.coefnames) + list(extra_names)
    est = np.concatenate([model.beta, extra])
    se = np.concatenate([model.stderror, extra_se])
    out.loc[rows, "lower"] = est - z * se
    out.loc[rows, "upper"] = est + z * se
    return out


def confint(
    model,
    method: str = "profile",
    level: float = 0.95,
    *,
    parm: list[str] | None = None,
    n: int = 1000,
    seed: Any = None,
    n_jobs: int = 1,
    boot_method: str = "shortest",
    progress: bool | str = "auto",
) -> pd.DataFrame:
    """Confidence intervals of a fitted model's parameters.

    Parameters
    ----------
    method : {"profile", "wald", "bootstrap"}
    level : float
        Coverage, strictly between 0 and 1.
    parm : list of str, optional
        Parameters to report (names as in :func:`parameter_names`); all by default.
    n, seed, n_jobs, boot_method
        Bootstrap size, seed, workers and interval type (``"shortest"`` or ``"percentile"``).
    progress : bool
        Progress bar for the profile or bootstrap.

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``, one row per parameter.
    """
    if not 0 < level < 1:
        raise MixedModelsError(f"level must be strictly between 0 and 1, got {level!r}")
    names = parameter_names(model)
    wanted = names if parm is None else ([parm] if isinstance(parm, str) else list(parm))
    unknown = [p for p in wanted if p not in names]
    if unknown:
        raise MixedModelsError(
            f"unknown parameter(s) {unknown}; the model's parameters are {names}"
        )
    if method == "wald":
        table = _wald(model, level)
    elif method == "profile":
        from .profiling import profile

        table = profile(model, which=wanted, levels=(level,), progress=progress).confint(level)
    elif method == "bootstrap":
        from .bootstrap import parametric_bootstrap

        boot = parametric_bootstrap(model, n, seed, n_jobs=n_jobs, progress=progress)
        table = boot.confint(level, method=boot_method)
        wanted = _bootstrapped(wanted, table, explicit=parm is not None)
    else:
        raise MixedModelsError(f"unknown method {method!r}; use 'profile', 'wald' or 'bootstrap'")
    return table.loc[wanted]


def _bootstrapped(wanted: list[str], table: pd.DataFrame, explicit: bool) -> list[str]:
    """The wanted parameters the bootstrap table has; an error if one asked for by name is missing."""
    missing = [p for p in wanted if p not in table.index]
    if missing and explicit:
        raise MixedModelsError(
            f"the parametric bootstrap does not re-estimate {missing}; use method='profile' "
            "or 'wald' for them"
        )
    return [p for p in wanted if p in table.index]
