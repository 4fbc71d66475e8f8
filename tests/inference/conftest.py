"""Fixtures for the inference tests: reference results and models fitted once per session.

References:
* ``tests/data/reference/inference/*.json`` - lme4/lmerTest on sleepstudy (shared set);
* ``tests/data/reference/*.json`` - lme4 fits (θ, β, objective) of the same models;
* ``tests/inference/data/extra_inference_reference.json`` - lme4/lmerTest/pbkrtest on other
  data sets, written by ``tools/make_inference_reference.R``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest
from reference_data import TESTS, load_json

HERE = Path(__file__).parent
SHARED = HERE.parent / "data" / "reference"


def _load(path: str) -> dict:
    return load_json(str(Path(path).relative_to(TESTS)))


@pytest.fixture(scope="session")
def shared_ref():
    """Reference by stem: ``shared_ref("inference/sleepstudy_lrt")`` or ``shared_ref("sleepstudy_ml")``."""
    return lambda stem: _load(str(SHARED / f"{stem}.json"))


@pytest.fixture(scope="session")
def extra_ref():
    """The extra references of ``tools/make_inference_reference.R``, by section."""
    return lambda section: _load(str(HERE / "data" / "extra_inference_reference.json"))[section]


@cache
def _fit(formula: str, data: str, reml: bool, family: str | None):
    import mixedmodels as mm

    frame = mm.datasets.load(data)
    if family:
        return mm.GeneralizedLinearMixedModel(formula, frame, family=family).fit()
    return mm.LinearMixedModel(formula, frame, reml=reml).fit()


@pytest.fixture(scope="session")
def fitted():
    """A model fitted once per session (do not modify it): ``fitted(formula, data, reml=False, family=None)``."""
    return lambda formula, data, reml=False, family=None: _fit(formula, data, reml, family)


@pytest.fixture(scope="session")
def sleep_ml(fitted):
    return fitted("Reaction ~ 1 + Days + (1 + Days|Subject)", "sleepstudy")


@pytest.fixture(scope="session")
def sleep_reml(fitted):
    return fitted("Reaction ~ 1 + Days + (1 + Days|Subject)", "sleepstudy", reml=True)


@pytest.fixture(scope="session")
def cbpp(fitted):
    return fitted(
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", "cbpp", family="binomial"
    )


@pytest.fixture(scope="session")
def at_lme4_optimum():
    """A new model placed at lme4's estimates (θ, and β for a GLMM) with restore_optsum.

    The conditional modes, degrees of freedom and predictions depend on θ̂,
    which lme4 determines only to its optimiser's tolerance (nloptr's
    xtol_rel = 1e-4); evaluating at lme4's θ compares the methods, not the
    optimisers.  restore_optsum also checks that our objective at lme4's
    estimates equals lme4's -2 log-likelihood (to 1e-6 relative).
    """

    def make(formula: str, data: str, fit: dict, reml: bool = False, family: str | None = None):
        import mixedmodels as mm
        from mixedmodels.optsummary import OptSummary

        frame = mm.datasets.load(data)
        theta = np.atleast_1d(np.asarray(fit["theta"], dtype=float))
        if family:
            model = mm.GeneralizedLinearMixedModel(formula, frame, family=family)
            final = np.concatenate([theta, np.atleast_1d(np.asarray(fit["beta"], dtype=float))])
        else:
            model = mm.LinearMixedModel(formula, frame, reml=reml)
            final = theta
        saved = OptSummary(final, np.full(len(final), -np.inf), reml=reml, nagq=1, fitted=True)
        saved.fmin = float(fit["objective"])
        return model.restore_optsum(saved, rtol=1e-5 if family else 1e-6)

    return make
