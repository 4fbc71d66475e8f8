"""The contract every fitted mixed model keeps.

:class:`MixedModel` declares what inference, printing, plots, the bootstrap
and extensions may rely on, and implements what follows from it alone (fit
statistics, per-observation outputs indexed like the user's data, copies,
pickling, saving).  :class:`~mixedmodels.lmm.LinearMixedModel`,
:class:`~mixedmodels.glmm.GeneralizedLinearMixedModel` and
:class:`~mixedmodels.variance.hetero.HeteroskedasticMixedModel` implement it.

The parameters of every model are

* θ, the relative covariance parameters in lme4's order (``theta``,
  ``lowerbd``, ``theta_names``, ``set_theta``): the one place that knows the
  layout is the model's structure (:mod:`mixedmodels.structure`);
* β, the fixed effects (``beta``, ``coefnames``, ``vcov``);
* σ, the residual scale (``sigma``; ``None`` where the family has none).

``objective_at(theta, beta=None, sigma=None)`` evaluates the model's
objective there (-2 log-likelihood, or the REML criterion), profiling out
what is not given, as MixedModels.jl's ``objective`` does; ``refit(y)``
fits again to a new response on the scale of ``response``.

This module imports no concrete model and no inference module.
"""

from __future__ import annotations

import copy as _copy
import hashlib
import pickle
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import MixedModelsError, NotFittedError
from .fitstats import FitStatistics

if TYPE_CHECKING:  # pragma: no cover
    from .families import Family
    from .optsummary import OptSummary
    from .structure import ModelStructure

__all__ = ["MixedModel", "load", "SAVE_FORMAT"]

SAVE_FORMAT = 1
"""Version of the layout written by :meth:`MixedModel.save`."""


class MixedModel(FitStatistics, ABC):
    """A mixed-effects model: what every model kind offers.

    Attributes every implementation sets
    ------------------------------------
    structure : ModelStructure
        Formula, model frame, fixed-effects term, random-effects terms, θ order.
    optsum : OptSummary
        The optimisation record (settings before a fit, results after).
    formula : str
        The formula as given.
    """

    structure: ModelStructure
    optsum: OptSummary
    formula: str
    obs_index: pd.Index
    """Index labels of the user's rows that the model uses (incomplete rows absent)."""
    beta: np.ndarray
    """Fixed-effects estimates (aliased columns dropped): an attribute or a property."""

    # ---- what the model is ----------------------------------------------------------------
    @property
    def family(self) -> Family | None:
        """The conditional distribution; ``None`` for a linear mixed model (Gaussian, profiled σ)."""
        return None

    @property
    def reml(self) -> bool:
        """True for a REML fit (linear models only)."""
        return False

    @property
    def criterion(self) -> str:
        """What ``objective`` is: ``"ML"``, ``"REML"``, ``"Laplace"``, ``"AGQ(nAGQ=k)"``, ...

        Objectives of models with the same first word are comparable.
        """
        return "REML" if self.reml else "ML"

    @property
    def has_sigma(self) -> bool:
        """True where the model has a residual scale σ (LMMs, families with a dispersion)."""
        return self.family is None or bool(self.family.has_dispersion)

    @property
    @abstractmethod
    def response(self) -> np.ndarray:
        """The response the model was fitted to, on the scale ``refit`` takes (offset included)."""

    @cached_property
    def prior_weights(self) -> np.ndarray:
        """Prior weights, one per observation (ones when none were given); built once."""
        w = self.structure.weights
        return np.ones(self.nobs) if w is None else w

    @cached_property
    def offset(self) -> np.ndarray:
        """Offset of the linear predictor, one per observation (zeros when none); built once.

        Built once rather than per access: PIRLS reads it in every iteration.
        """
        off = self.structure.offset
        return np.zeros(self.nobs) if off is None else off

    @property
    def nobs(self) -> int:
        return self.structure.nobs

    @property
    def reterms(self) -> list:
        return self.structure.reterms

    @property
    def coefnames(self) -> list[str]:
        return self.structure.fe.coefnames

    @property
    def rank(self) -> int:
        """Rank of the fixed-effects model matrix (number of estimated coefficients)."""
        return self.structure.fe.rank

    @property
    def is_fitted(self) -> bool:
        return bool(getattr(self.optsum, "fitted", False))

    @property
    def is_evaluated(self) -> bool:
        """True when the model's state is at some parameters (``objective_at`` was called), fitted or not."""
        return False

    def require_fit(self, what: str = "this result") -> None:
        """Raise :class:`NotFittedError` unless the model has been fitted."""
        if not (self.is_fitted or self.is_evaluated):
            raise NotFittedError(f"{what} needs a fitted model: call fit() first")

    # ---- parameters -------------------------------------------------------------------------
    @property
    @abstractmethod
    def theta(self) -> np.ndarray:
        """Relative covariance parameters in lme4's order."""

    @property
    @abstractmethod
    def lowerbd(self) -> np.ndarray:
        """Lower bounds of θ."""

    @property
    @abstractmethod
    def theta_names(self) -> list[str]:
        """Names of θ's elements, as lme4 names them."""

    @abstractmethod
    def set_theta(self, theta: np.ndarray) -> MixedModel:
        """Write θ into the terms (in place)."""

    @property
    @abstractmethod
    def sigma(self) -> float | None:
        """Residual scale σ, or ``None`` where the model has none."""

    @property
    @abstractmethod
    def vcov(self) -> np.ndarray:
        """Covariance matrix of β̂."""

    @property
    def stderror(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    @abstractmethod
    def objective(self) -> float:
        """The objective at the current parameters (-2 log L, or the REML criterion)."""

    @abstractmethod
    def objective_at(
        self, theta: np.ndarray, *, beta: np.ndarray | None = None, sigma: float | None = None
    ) -> float:
        """The objective at θ (β and σ profiled out unless given); the model moves there."""

    @abstractmethod
    def fit(self, *args: Any, **kwargs: Any) -> MixedModel:
        """Minimise the objective."""

    @abstractmethod
    def refit(self, y: np.ndarray | None = None, **kwargs: Any) -> MixedModel:
        """Fit again, optionally to a new response (same design, same scale as ``response``)."""

    @abstractmethod
    def apply_optsum(self, saved: OptSummary) -> None:
        """Move the model to a saved optimisation's optimum without fitting (checks the layout)."""

    @abstractmethod
    def b(self) -> list[np.ndarray]:
        """Conditional modes of the random effects per term (block order), shape (nlevels, k)."""

    @property
    def dof(self) -> int:
        """Number of estimated parameters: β, θ and σ where there is one."""
        return self.rank + len(self.theta) + int(self.has_sigma)

    # ---- per-observation outputs ------------------------------------------------------------
    def per_observation(self, values: np.ndarray, name: str) -> pd.Series:
        """``values`` (one per observation used) as a Series indexed like the user's rows."""
        return pd.Series(np.asarray(values), index=self.obs_index.copy(), name=name)

    @abstractmethod
    def fitted(self) -> pd.Series:
        """Fitted values on the response scale, indexed like the data."""

    @abstractmethod
    def residuals(self, kind: str | None = None, *, type: str | None = None) -> pd.Series:
        """Residuals, indexed like the data; ``type=`` is lme4's and glmmTMB's name for ``kind``."""

    @staticmethod
    def residual_kind(
        kind: str | None, type: str | None, default: str, allowed: tuple[str, ...]
    ) -> str:
        """The residual type asked for by ``kind`` or ``type`` (the same thing), checked."""
        if kind is not None and type is not None and kind != type:
            raise MixedModelsError(f"kind={kind!r} and type={type!r} disagree; give one of them")
        chosen = next((k for k in (kind, type) if k is not None), default)
        if not isinstance(chosen, str) or chosen not in allowed:
            raise MixedModelsError(
                f"unknown residual type {chosen!r}; use one of {', '.join(allowed)}"
            )
        return chosen

    def coeftable(self, ddf: str | None = None, component: str = "cond") -> pd.DataFrame:
        """Estimates, standard errors, z statistics and two-sided normal p-values.

        ``component`` is ``"cond"``, the conditional model's β (the only one
        unless a model says otherwise, as a zero-inflated GLMM does).
        """
        from .results import coef_table

        self.check_component(component)
        self.require_fit("the coefficient table")
        if ddf is not None:
            raise MixedModelsError(
                f"denominator degrees of freedom (ddf={ddf!r}) are for linear mixed models only"
            )
        return coef_table(self.beta, self.stderror, self.coefnames)

    def check_component(self, component: str, others: tuple[str, ...] = ()) -> None:
        """Refuse a ``component`` the model does not have, naming the ones it has."""
        known = ("cond", *others)
        if component not in known:
            raise MixedModelsError(
                f"component must be {' or '.join(repr(c) for c in known)} for this "
                f"{type(self).__name__}, got {component!r}"
            )

    def other_components(self) -> list[tuple[str, pd.DataFrame | None, list[str]]]:
        """Parts of the model beyond β and the random effects, for summaries.

        Each is (title, coefficient table or None, note lines): a zero-inflation
        model's coefficients, a dispersion parameter.  None by default.
        """
        return []

    def extra_parameters(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, estimates, standard errors) of the objective's parameters beyond θ, β and σ.

        A standard error is NaN where it cannot be computed (a singular Hessian).

        A zero-inflation model's coefficients and a log dispersion, which
        profiles re-optimise with the others (:meth:`objective_at_extra`).
        None by default.
        """
        return [], np.zeros(0), np.zeros(0)

    def objective_at_extra(self, theta: np.ndarray, beta: np.ndarray, extra: np.ndarray) -> float:
        """The objective at θ, β and the :meth:`extra_parameters`; the model moves there."""
        if len(extra):
            raise NotImplementedError(f"{type(self).__name__} has no extra parameters")
        return self.objective_at(theta, beta=beta)

    # ---- update ------------------------------------------------------------------------------
    _FIT_OPTIONS: tuple[str, ...] = ()

    def record_call(self, formula: str, data: Any, **options: Any) -> None:
        """Keep the constructor's arguments, for :meth:`update`."""
        self._call = {"formula": formula, "data": data, "options": options}

    def fit_options(self) -> dict[str, Any]:
        """The options of the last fit that a refit of an updated model should repeat."""
        return {}

    def update(self, formula: str | None = None, data: Any = None, **changes: Any) -> MixedModel:
        """A new model with a changed formula, data or options, fitted as this one was (R's ``update``).

        ``formula`` may use dots for the old sides, as in R: ``m.update("~ . - Days")``,
        ``m.update(". ~ . + (1|item)")``; ``changes`` are constructor or fit
        options (``reml=True``, ``weights="w"``, ``nagq=5``).  The model itself
        is not changed.
        """
        from .formulaupdate import update_formula

        call = getattr(self, "_call", None)
        if call is None:
            raise MixedModelsError(
                "this model was not built from a formula and data: build the new model directly"
            )
        data = call["data"] if data is None else data
        if data is None:
            raise MixedModelsError("a loaded model does not keep its data: pass data= to update()")
        new = self.formula if formula is None else update_formula(self.formula, formula)
        fit_changes = {k: changes.pop(k) for k in list(changes) if k in self._FIT_OPTIONS}
        model = type(self)(new, data, **{**call["options"], **changes})
        return model.fit(**{**self.fit_options(), **fit_changes})

    # ---- copies, pickling and files --------------------------------------------------------
    def copy(self) -> MixedModel:
        """An independent deep copy (fitted or not)."""
        return _copy.deepcopy(self)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("_call"):  # the user's data are not part of the model's state
            state["_call"] = {**state["_call"], "data": None}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._after_load()

    def _after_load(self) -> None:
        """Rebuild what is not pickled (factorisations) after loading; the default refactors L."""

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (see :func:`load`).

        The file holds a pickle of the model together with the package
        version, the formula, the optimisation summary as JSON and a hash of
        the data the model uses.  A pickle is exact and fast but tied to the
        package's internals, so :func:`load` refuses a file written by
        another version of the save format and says how to recover the fit
        from that record: build the model again from its formula and
        data and call ``restore_optsum``, which checks the objective.
        """
        from . import __version__

        path = Path(path)
        record = {
            "format": "mixedmodels-model",
            "save_format": SAVE_FORMAT,
            "package_version": __version__,
            "class": type(self).__name__,
            "formula": self.formula,
            "data_hash": self.data_hash(),
            "optsum": self.optsum.to_dict(),
            "model": pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL),
        }
        try:
            with open(path, "wb") as fh:
                pickle.dump(record, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise MixedModelsError(
                f"cannot write the model to {str(path)!r}: {exc.strerror}"
            ) from None
        return path

    def data_hash(self) -> str:
        """SHA-256 of the response, fixed-effects matrix and grouping codes the model uses."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.response, dtype=float).tobytes())
        h.update(np.ascontiguousarray(self.structure.fe.X, dtype=float).tobytes())
        for r in self.reterms:
            h.update(np.ascontiguousarray(r.refs).tobytes())
            h.update(np.ascontiguousarray(r.z, dtype=float).tobytes())
        return h.hexdigest()

    # ---- presentation --------------------------------------------------------------------------
    def __repr__(self) -> str:
        return str(self)


def load(path: str | Path) -> MixedModel:
    """Read a model written by :meth:`MixedModel.save`.

    Raises
    ------
    MixedModelsError
        If the file is missing, is not a saved model, or was written with
        another save format (the message says how to restore the fit).
    """
    path = Path(path)
    if not path.is_file():
        raise MixedModelsError(f"no saved model at {str(path)!r}")
    try:
        with open(path, "rb") as fh:
            record = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise MixedModelsError(
            f"{str(path)!r} is not a saved mixedmodels model ({type(exc).__name__})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != "mixedmodels-model":
        raise MixedModelsError(f"{str(path)!r} is not a saved mixedmodels model")
    if record.get("save_format") != SAVE_FORMAT:
        raise MixedModelsError(
            f"{str(path)!r} was written by mixedmodels {record.get('package_version')} in save format "
            f"{record.get('save_format')}; this version reads format {SAVE_FORMAT}. Rebuild the model from "
            f"its formula ({record.get('formula')!r}) and data and restore the fit with "
            "model.restore_optsum(mm.OptSummary.from_dict(record['optsum'])), where record is the file's "
            "pickled dict"
        )
    try:
        model = pickle.loads(record["model"])
    except Exception as exc:  # noqa: BLE001
        raise MixedModelsError(
            f"the model in {str(path)!r} cannot be rebuilt by this version of the package ({exc}); rebuild it "
            "from its formula and data and restore the fit from the saved optimisation summary"
        ) from None
    return model
