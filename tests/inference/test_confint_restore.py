"""confint dispatch (Wald, bootstrap) and restoring a saved optimisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError


def test_wald_intervals(sleep_ml):
    ci = sleep_ml.confint("wald", level=0.9)
    z = norm.ppf(0.95)
    np.testing.assert_allclose(
        ci.loc[["(Intercept)", "Days"], "lower"], sleep_ml.beta - z * sleep_ml.stderror
    )
    np.testing.assert_allclose(
        ci.loc[["(Intercept)", "Days"], "upper"], sleep_ml.beta + z * sleep_ml.stderror
    )
    assert ci.loc["sigma"].isna().all()  # as lme4: no Wald intervals for variance parameters
    assert ci.index.tolist() == [
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject",
        "sigma",
        "(Intercept)",
        "Days",
    ]


def test_bootstrap_intervals_through_confint(sleep_ml):
    from mixedmodels.inference import parametric_bootstrap

    ci = sleep_ml.confint("bootstrap", n=12, seed=5, progress=False, parm=["Days", "sigma"])
    expected = (
        parametric_bootstrap(sleep_ml, 12, seed=5, progress=False).confint().loc[["Days", "sigma"]]
    )
    np.testing.assert_array_equal(ci.to_numpy(), expected.to_numpy())


def test_confint_errors(sleep_ml):
    with pytest.raises(MixedModelsError, match="unknown method"):
        sleep_ml.confint("jackknife")
    with pytest.raises(MixedModelsError, match="level"):
        sleep_ml.confint("wald", level=95)
    with pytest.raises(MixedModelsError, match="unknown parameter"):
        sleep_ml.confint("wald", parm=["slope"])


@pytest.mark.parametrize("reml", [False, True])
def test_restored_lmm_equals_the_fitted_one(tmp_path, sleepstudy, reml):
    formula = "Reaction ~ 1 + Days + (1 + Days|Subject)"
    fitted = mm.LinearMixedModel(formula, sleepstudy, reml=reml).fit()
    path = tmp_path / "fit.json"
    fitted.optsum.save(path)
    restored = mm.LinearMixedModel(formula, sleepstudy, reml=reml).restore_optsum(path)
    assert restored.optsum.fitted and restored.optsum.feval == fitted.optsum.feval
    for attr in ("theta", "beta", "stderror", "u"):
        np.testing.assert_array_equal(getattr(restored, attr), getattr(fitted, attr))
    np.testing.assert_array_equal(restored.fitted(), fitted.fitted())
    assert restored.objective == fitted.objective and restored.sigma == fitted.sigma


@pytest.mark.parametrize("kwargs", [{}, {"fast": True}, {"nagq": 3}])
def test_restored_glmm_equals_the_fitted_one(tmp_path, kwargs):
    formula = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"
    data = mm.datasets.load("cbpp")
    fitted = mm.GeneralizedLinearMixedModel(formula, data, family="binomial").fit(**kwargs)
    path = tmp_path / "fit.json"
    fitted.optsum.save(path)
    restored = mm.GeneralizedLinearMixedModel(formula, data, family="binomial").restore_optsum(path)
    assert (restored.fast, restored.nagq) == (fitted.fast, fitted.nagq)
    np.testing.assert_array_equal(restored.theta, fitted.theta)
    np.testing.assert_allclose(restored.beta, fitted.beta, rtol=1e-9)
    np.testing.assert_allclose(restored.u, fitted.u, atol=1e-9)
    assert restored.objective == pytest.approx(fitted.objective, rel=1e-10)


def test_restore_refuses_another_model(tmp_path, sleepstudy, sleep_ml):
    path = tmp_path / "fit.json"
    sleep_ml.optsum.save(path)
    with pytest.raises(MixedModelsError, match="reml=False"):
        mm.LinearMixedModel(sleep_ml.formula, sleepstudy, reml=True).restore_optsum(path)
    with pytest.raises(MixedModelsError, match="does not belong"):
        mm.LinearMixedModel("Reaction ~ 1 + (1 + Days|Subject)", sleepstudy).restore_optsum(path)
    with pytest.raises(MixedModelsError, match="parameters"):
        mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", sleepstudy).restore_optsum(path)
    with pytest.raises(MixedModelsError, match="no saved optimisation"):
        mm.LinearMixedModel(sleep_ml.formula, sleepstudy).restore_optsum(tmp_path / "missing.json")
