"""Parametric bootstrap: exact reproducibility, independence of n_jobs, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import MixedModelsError
from mixedmodels.inference import parametric_bootstrap, shortest_interval


@pytest.fixture(scope="module")
def boot(sleep_ml):
    return parametric_bootstrap(sleep_ml, 24, seed=2024, progress=False)


def test_a_seed_repeats_exactly(sleep_ml, boot):
    again = parametric_bootstrap(sleep_ml, 24, seed=2024, progress=False)
    pd.testing.assert_frame_equal(boot, again, check_exact=True)
    other = parametric_bootstrap(sleep_ml, 24, seed=2025, progress=False)
    assert not np.allclose(boot["objective"], other["objective"])


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_results_do_not_depend_on_n_jobs(sleep_ml, boot, backend):
    parallel = parametric_bootstrap(
        sleep_ml, 24, seed=2024, n_jobs=2, backend=backend, progress=False
    )
    pd.testing.assert_frame_equal(boot, parallel, check_exact=True)


def test_replicate_i_depends_only_on_the_seed_and_i(sleep_ml, boot):
    shorter = parametric_bootstrap(sleep_ml, 10, seed=2024, progress=False)
    pd.testing.assert_frame_equal(shorter, boot.iloc[:10], check_exact=True)


def test_tidy_columns(sleep_ml, boot):
    assert list(boot.columns[:4]) == ["objective", "(Intercept)", "Days", "sigma"]
    assert "sd_(Intercept)|Subject" in boot.columns and "theta.Subject.Days" in boot.columns
    assert boot.index.name == "replicate" and len(boot) == 24
    assert boot.attrs["seed"] == 2024 and boot.attrs["failed"] == 0
    # each row is a fitted model: σ and the sd/cor columns agree with its θ
    from mixedmodels.inference.params import variance_layout

    layout = variance_layout(sleep_ml)
    row = boot.iloc[3]
    theta = row[[f"theta.{n}" for n in sleep_ml.theta_names]].to_numpy(dtype=float)
    np.testing.assert_allclose(
        layout.to_sdcor(theta, row["sigma"]), row[layout.names()].to_numpy(dtype=float)
    )


def test_the_user_model_is_unchanged(sleep_ml, boot, shared_ref):
    assert sleep_ml.objective == pytest.approx(shared_ref("sleepstudy_ml")["objective"], rel=1e-9)


def test_intervals(boot):
    shortest = boot.confint(0.8)
    percentile = boot.confint(0.8, method="percentile")
    assert (
        list(shortest.columns) == ["lower", "upper"] and shortest.index.tolist() == boot.parameters
    )
    m = int(np.ceil(0.8 * len(boot)))
    for name in boot.parameters:
        v = np.sort(boot[name].to_numpy())
        lo, hi = shortest.loc[name]
        assert boot[name].between(lo, hi).sum() == m  # m of the values, the narrowest such window
        assert hi - lo == pytest.approx(np.min(v[m - 1 :] - v[: len(v) - m + 1]), rel=1e-12)
        np.testing.assert_allclose(percentile.loc[name], np.quantile(v, [0.1, 0.9]))


def test_shortest_interval_on_known_values():
    values = np.array([0.0, 1.0, 1.1, 1.2, 1.3, 5.0, np.nan])
    assert shortest_interval(values, 0.6) == (1.0, 1.3)
    assert shortest_interval(np.arange(10.0), 1.0) == (0.0, 9.0)


def test_glmm_bootstrap(cbpp):
    a = parametric_bootstrap(cbpp, 4, seed=7, progress=False)
    b = parametric_bootstrap(cbpp, 4, seed=7, progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert "sigma" not in a.columns and "sd_(Intercept)|herd" in a.columns
    assert np.isfinite(a.to_numpy()).all()


def test_bad_arguments(sleep_ml, boot):
    with pytest.raises(MixedModelsError, match="positive integer"):
        parametric_bootstrap(sleep_ml, 0)
    with pytest.raises(MixedModelsError, match="backend"):
        parametric_bootstrap(sleep_ml, 2, backend="mpi")
    with pytest.raises(MixedModelsError, match="method"):
        boot.confint(method="bca")


def test_interrupted_bootstrap_keeps_the_replicates_done(sleep_ml, monkeypatch):
    from mixedmodels.inference import bootstrap as boot

    calls = {"n": 0}
    original = boot._Replicator._one

    def interrupt_on_fourth(self, seed):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, seed)

    monkeypatch.setattr(boot._Replicator, "_one", interrupt_on_fourth)
    with pytest.warns(UserWarning, match="interrupted: 3 of 10"):
        res = parametric_bootstrap(sleep_ml, 10, seed=1, progress=False)
    assert not res.attrs["complete"]
    assert res["objective"].notna().sum() == 3
    assert (res.failures["message"] == boot.NOT_RUN).sum() == 7


def test_a_failed_replicate_is_a_row_with_its_reason(sleep_ml, monkeypatch):
    from mixedmodels.errors import CholeskyFailed

    calls = {"n": 0}
    original = type(sleep_ml).refit

    def fail_second(self, y=None, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise CholeskyFailed("block 2 is not positive definite")
        return original(self, y, **kwargs)

    monkeypatch.setattr(type(sleep_ml), "refit", fail_second)
    with pytest.warns(UserWarning, match="1 of 4 bootstrap refits failed"):
        res = parametric_bootstrap(sleep_ml, 4, seed=1, progress=False)
    assert res.attrs["complete"] and res.attrs["failed"] == 1
    assert list(res.failures.index) == [1]
    assert "CholeskyFailed" in res.failures["message"].iloc[0]
    assert res["objective"].notna().sum() == 3
