"""Profile likelihood intervals against lme4's confint(method = "profile"), and profile properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import MixedModelsError

RTOL = (
    1e-3  # the tolerance; measured agreement is 2e-4 or better (lme4 interpolates a spline)
)


def _assert_intervals(ci: pd.DataFrame, reference: list[dict]) -> None:
    for row in reference:
        got = ci.loc[row["parameter"]]
        for side in ("lower", "upper"):
            want = row[side]
            if want == 0:  # the profile reached the bound 0 of a standard deviation
                assert got[side] == 0
            else:
                assert got[side] == pytest.approx(want, rel=RTOL), (row["parameter"], side)


@pytest.fixture(scope="module")
def sleep_profile(sleep_ml):
    return sleep_ml.profile(progress=False)


def test_sleepstudy_profile_intervals_match_lme4(sleep_profile, shared_ref):
    ref = shared_ref("inference/sleepstudy_profile")
    _assert_intervals(sleep_profile.confint(ref["level"]), ref["interval"])


def test_confint_profile_is_the_profile_interval(sleep_ml, sleep_profile):
    ci = sleep_ml.confint(parm=["sigma", "Days"], progress=False)
    np.testing.assert_allclose(
        ci.to_numpy(), sleep_profile.confint().loc[["sigma", "Days"]].to_numpy(), rtol=1e-9
    )


# all parameters of the smallest model; a selection of the others to keep the run short
OTHER = {
    "dyestuff_ml": None,
    "penicillin_ml": ["sd_(Intercept)|plate", "(Intercept)"],  # crossed terms
    "pastes_ml": ["sd_(Intercept)|batch", "sigma"],  # nested; the sd of batch reaches its bound 0
    "sleepstudy_uncorrelated_ml": ["sd_(Intercept)|Subject", "sd_Days|Subject", "Days"],
    "machines_nested_reml": [
        "sd_(Intercept)|Worker",
        "sigma",
        "MachineB",
    ],  # REML fit: profiled by ML
    "cbpp_laplace": ["sd_(Intercept)|herd", "period2"],  # generalised model
}


@pytest.mark.parametrize("name", list(OTHER))
def test_profile_intervals_match_lme4_on_other_data(name, extra_ref, fitted):
    spec = extra_ref("profile")[name]
    model = fitted(spec["formula"], spec["data"], reml=spec["reml"], family=spec["family"])
    ci = model.confint(level=spec["level"], parm=OTHER[name], progress=False)
    _assert_intervals(ci, [row for row in spec["interval"] if row["parameter"] in ci.index])


def test_zeta_is_zero_at_the_estimate_and_increasing(sleep_profile):
    estimates = sleep_profile.attrs["estimates"]
    for name in sleep_profile.parameters:
        part = sleep_profile[sleep_profile["parameter"] == name].sort_values(name)
        at_estimate = part[np.isclose(part[name], estimates[name], rtol=0, atol=0)]
        assert len(at_estimate) == 1 and at_estimate["zeta"].iloc[0] == 0.0
        assert np.all(np.diff(part["zeta"].to_numpy()) > 0), name


def test_profile_reaches_the_cutoff_or_a_bound(sleep_profile):
    for name in sleep_profile.parameters:
        part = sleep_profile[sleep_profile["parameter"] == name]
        lo, hi = sleep_profile.attrs["bounds"][name]
        assert part["zeta"].max() > 3.9 or part[name].max() == hi
        assert part["zeta"].min() < -3.9 or part[name].min() == lo


def test_profile_points_are_conditional_optima(sleep_ml, sleep_profile):
    """At each point the other parameters minimise the deviance: none is lower than the fit's."""
    assert (sleep_profile["zeta"].abs() >= 0).all()
    row = sleep_profile[sleep_profile["parameter"] == "Days"].iloc[0]
    assert row["Days"] < sleep_ml.beta[1]
    # the sd/cor/sigma values of a row rebuild a valid θ
    from mixedmodels.inference.params import variance_layout

    layout = variance_layout(sleep_ml)
    sdcor = row[layout.names()].to_numpy(dtype=float)
    theta = layout.to_theta(sdcor, row["sigma"])
    np.testing.assert_allclose(layout.to_sdcor(theta, row["sigma"]), sdcor, rtol=1e-10)


def test_profile_is_tidy_and_selectable(sleep_ml):
    prof = sleep_ml.profile(["sigma"], progress=False, levels=())
    assert isinstance(prof, pd.DataFrame)
    assert list(prof.columns[:2]) == ["parameter", "zeta"]
    assert set(prof["parameter"]) == {"sigma"}
    assert prof.confint().index.tolist() == ["sigma"]


def test_profile_of_a_reml_fit_uses_maximum_likelihood(sleep_reml, sleep_profile):
    prof = sleep_reml.profile(["sigma"], progress=False)
    np.testing.assert_allclose(
        prof.confint().loc["sigma"], sleep_profile.confint().loc["sigma"], rtol=1e-6
    )
    assert sleep_reml.reml  # the user's model is untouched


def test_profile_leaves_the_model_unchanged(fitted):
    model = fitted("Yield ~ 1 + (1|Batch)", "dyestuff")
    theta, beta, objective = model.theta.copy(), model.beta.copy(), model.objective
    model.profile(progress=False)
    assert np.array_equal(model.theta, theta) and np.array_equal(model.beta, beta)
    assert model.objective == objective


def test_unknown_parameter_is_an_error(sleep_ml):
    with pytest.raises(MixedModelsError, match="unknown parameter"):
        sleep_ml.profile(["sd_Days"], progress=False)


def test_fast_glmm_fit_cannot_be_profiled():
    import mixedmodels as mm

    g = mm.GeneralizedLinearMixedModel(
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
        mm.datasets.load("cbpp"),
        family="binomial",
    ).fit(fast=True)
    with pytest.raises(MixedModelsError, match="fast=False"):
        g.profile(progress=False)


def test_interval_from_a_profile_that_stops_at_a_bound():
    from mixedmodels.inference.profiling import profile_interval

    values = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    zeta = np.array([-1.0, -0.5, 0.0, 1.5, 2.5])
    lo, hi = profile_interval(values, zeta, 1.96, 0.0, np.inf)
    assert lo == 0.0 and 2.0 < hi < 3.0
