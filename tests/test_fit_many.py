"""fit_many: many responses on one shared design, against single fits of the model classes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError, MixedModelsError

FORMULA = "~ 1 + condition + (1|donor) + (1|batch)"


def simulate(n_donors=10, per=8, features=8, seed=1, counts=False):
    """Samples (donors nested in nothing, batches crossed) and responses with donor and batch effects."""
    rng = np.random.default_rng(seed)
    n = n_donors * per
    samples = pd.DataFrame(
        {
            "donor": [f"d{i}" for i in np.repeat(np.arange(n_donors), per)],
            "batch": [f"b{i}" for i in rng.integers(0, 3, n)],
            "condition": np.tile(["a", "b"], n // 2),
        },
        index=[f"s{i}" for i in range(n)],
    )
    donor = rng.normal(size=(n_donors, features))[np.repeat(np.arange(n_donors), per)]
    batch = rng.normal(size=(3, features))[pd.factorize(samples["batch"], sort=True)[0]]
    cond = (samples["condition"] == "b").to_numpy()[:, None] * rng.normal(0, 0.5, features)
    eta = 0.7 * donor + 0.4 * batch + cond + rng.normal(size=(n, features)) * (0.3 if counts else 1)
    values = rng.poisson(np.exp(1 + 0.5 * eta)) if counts else 5 + eta
    cols = [f"g{j}" for j in range(features)]
    return samples, pd.DataFrame(values.astype(float), index=samples.index, columns=cols)


@pytest.fixture(scope="module")
def study():
    return simulate()


def single_fit(samples, y, family=None, reml=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = samples.assign(y=y)
        if family is None:
            return mm.LinearMixedModel("y " + FORMULA, data, reml=reml).fit()
        return mm.GeneralizedLinearMixedModel("y " + FORMULA, data, family=family).fit()


def assert_matches(row, model, theta_tol=1e-5, beta_tol=1e-6):
    assert row["objective"] == pytest.approx(model.objective, rel=1e-8)
    theta = [row[f"theta.{n}"] for n in model.theta_names]
    np.testing.assert_allclose(theta, model.theta, atol=theta_tol)
    beta = [row[f"beta.{c}"] for c in model.coefnames]
    np.testing.assert_allclose(beta, model.beta, rtol=beta_tol, atol=beta_tol)
    se = [row[f"se.{c}"] for c in model.coefnames]
    np.testing.assert_allclose(se, model.stderror, rtol=10 * beta_tol)


@pytest.mark.parametrize("reml", [False, True])
def test_gaussian_matches_single_fits(study, reml):
    # one response at a time (the lockstep path is compared in test_fit_many_lockstep.py)
    samples, expr = study
    exact = mm.fit_many(FORMULA, samples, expr, reml=reml, start="moment", method="each",
                        progress=False)  # fmt: skip
    warm = mm.fit_many(FORMULA, samples, expr, reml=reml, start="warm", progress=False)
    assert exact.info["engine"] == "dense"
    for name in expr.columns[:4]:
        model = single_fit(samples, expr[name], reml=reml)
        assert_matches(exact.table.loc[name], model)
        assert_matches(warm.table.loc[name], model, theta_tol=1e-4, beta_tol=1e-5)
        assert exact.table.loc[name, "sigma"] == pytest.approx(model.sigma, rel=1e-7)
    assert exact.table["converged"].all()


def test_poisson_matches_single_fits():
    samples, counts = simulate(n_donors=8, per=6, features=2, seed=3, counts=True)
    res = mm.fit_many(FORMULA, samples, counts, family="poisson", progress=False, chunk=2)
    assert res.info["criterion"] == "Laplace"
    for name in counts.columns:
        model = single_fit(samples, counts[name], family="poisson")
        assert_matches(res.table.loc[name], model, theta_tol=1e-4, beta_tol=1e-4)
        assert np.isnan(res.table.loc[name, "sigma"])


def test_the_user_data_are_not_modified(study):
    samples, expr = study
    before_s, before_e = samples.copy(), expr.copy()
    mm.fit_many(FORMULA, samples, expr.iloc[:, :2], progress=False)
    pd.testing.assert_frame_equal(samples, before_s)
    pd.testing.assert_frame_equal(expr, before_e)


def test_independent_of_chunk_size_and_workers(study):
    distributed = pytest.importorskip("distributed")
    samples, expr = study
    one = mm.fit_many(FORMULA, samples, expr, start="moment", chunk=1, progress=False)
    three = mm.fit_many(FORMULA, samples, expr, start="moment", chunk=3, progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        dask = mm.fit_many(FORMULA, samples, expr, start="moment", chunk=3, scheduler=client,
                           progress=False)  # fmt: skip
        warm = mm.fit_many(FORMULA, samples, expr, chunk=3, scheduler=client, start="warm",
                           progress=False)  # fmt: skip
    pd.testing.assert_frame_equal(one.table, three.table)
    pd.testing.assert_frame_equal(one.table, dask.table)
    np.testing.assert_allclose(warm.table["objective"], one.table["objective"], rtol=1e-8)


def test_threads_scheduler_gives_the_same_table(study):
    samples, expr = study
    serial = mm.fit_many(FORMULA, samples, expr, start="moment", chunk=2, progress=False)
    threads = mm.fit_many(FORMULA, samples, expr, start="moment", chunk=2, scheduler="threads",
                          n_workers=2, progress=False)  # fmt: skip
    pd.testing.assert_frame_equal(serial.table, threads.table)


def test_failures_are_rows(study):
    samples, expr = study
    bad = expr.iloc[:, :2].copy()
    bad["all_nan"] = np.nan
    bad["constant"] = 4.0
    few = np.full(len(bad), np.nan)
    few[:3] = [1.0, 2.0, 4.0]
    bad["too_few"] = few
    bad["text"] = "high"
    bad["infinite"] = expr.iloc[:, 0].where(expr.index != "s3", np.inf)
    res = mm.fit_many(FORMULA, samples, bad, progress=False)
    msg = res.table["message"]
    assert msg["all_nan"] == "DataError: all values are missing"
    assert "constant" in msg["constant"]
    assert "too few complete observations (3" in msg["too_few"]
    assert "not numeric" in msg["text"]
    assert "infinite" in msg["infinite"]
    failed = ["all_nan", "constant", "too_few", "text", "infinite"]
    assert not res.table.loc[failed, "converged"].any()
    assert res.table.loc[failed, "objective"].isna().all()
    assert res.table.loc[["g0", "g1"], "converged"].all()
    assert list(res.failures.index) == failed


def test_missing_values_match_a_fit_of_the_complete_rows(study):
    samples, expr = study
    y = expr["g2"].copy()
    y.iloc[[0, 5, 17, 30]] = np.nan
    holes = expr.iloc[:, :3].assign(g2=y)
    res = mm.fit_many(FORMULA, samples, holes, start="moment", method="each", progress=False)
    row = res.table.loc["g2"]
    assert row["nobs"] == len(y) - 4
    assert_matches(row, single_fit(samples, y))


def test_index_must_match_the_samples(study):
    samples, expr = study
    shuffled = expr.sample(frac=1.0, random_state=2)
    a = mm.fit_many(FORMULA, samples, expr.iloc[:, :2], start="moment", progress=False)
    b = mm.fit_many(FORMULA, samples, shuffled.iloc[:, :2], start="moment", progress=False)
    pd.testing.assert_frame_equal(a.table, b.table)  # matched by label
    with pytest.raises(DataError, match="1 sample\\(s\\) have no row in responses"):
        mm.fit_many(FORMULA, samples, expr.iloc[1:], progress=False)
    with pytest.raises(DataError, match="pass responses.T"):
        mm.fit_many(FORMULA, samples, expr.T, progress=False)
    with pytest.raises(DataError, match="transpose"):
        mm.fit_many(FORMULA, samples, expr.to_numpy().T, progress=False)


def test_arrays_and_dask_arrays(study):
    da = pytest.importorskip("dask.array")
    samples, expr = study
    frame = mm.fit_many(FORMULA, samples, expr, start="moment", progress=False)
    array = mm.fit_many(FORMULA, samples, expr.to_numpy(), start="moment", progress=False)
    lazy = mm.fit_many(FORMULA, samples, da.from_array(expr.to_numpy(), chunks=(40, 3)),
                       start="moment", chunk=3, progress=False)  # fmt: skip
    np.testing.assert_array_equal(frame.table["objective"], array.table["objective"])
    np.testing.assert_array_equal(array.table["objective"], lazy.table["objective"])
    assert list(array.table.index[:2]) == ["response1", "response2"]


def test_bad_options_are_clear(study):
    samples, expr = study
    with pytest.raises(FormulaError, match="has a response"):
        mm.fit_many("y " + FORMULA, samples, expr, progress=False)
    with pytest.raises(MixedModelsError, match="chunk"):
        mm.fit_many(FORMULA, samples, expr, chunk=0)
    with pytest.raises(MixedModelsError, match="scheduler"):
        mm.fit_many(FORMULA, samples, expr, scheduler=3)
    with pytest.raises(MixedModelsError, match="reml"):
        mm.fit_many(FORMULA, samples, expr, family="poisson", reml=True)
    with pytest.raises(MixedModelsError, match="method must be 'lockstep' or 'each'"):
        mm.fit_many(FORMULA, samples, expr, method="batched")


def test_unreachable_scheduler_names_the_address(study):
    pytest.importorskip("distributed")
    samples, expr = study
    with pytest.raises(MixedModelsError, match="tcp://127.0.0.1:9"):
        mm.fit_many(FORMULA, samples, expr, scheduler="tcp://127.0.0.1:9", progress=False)


def test_coef_adjusts_p_values_by_benjamini_hochberg(study):
    from statsmodels.stats.multitest import multipletests

    samples, expr = study
    bad = expr.assign(empty=np.nan)
    res = mm.fit_many(FORMULA, samples, bad, progress=False)
    coef = res.coef("condition[T.b]")
    assert list(coef.columns) == ["estimate", "se", "z", "p", "p_adj", "converged", "message"]
    p = coef["p"].drop("empty").to_numpy()
    np.testing.assert_allclose(coef["p_adj"].drop("empty"), multipletests(p, method="fdr_bh")[1])
    assert np.isnan(coef.loc["empty", "p_adj"])
    with pytest.raises(MixedModelsError, match="conditionb"):
        res.coef("treatment")


def test_varpart_fractions_sum_to_one(study):
    samples, expr = study
    res = mm.fit_many(FORMULA, samples, expr, progress=False)
    vp = res.varpart()
    assert list(vp.columns) == ["donor", "batch", "condition", "Residuals"]
    np.testing.assert_allclose(vp.sum(axis=1), 1.0)
    row = res.table.loc["g0"]
    total_random = row["sd_(Intercept)|donor"] ** 2
    x = (samples["condition"] == "b").to_numpy() * row["beta.conditionb"]
    total = total_random + row["sd_(Intercept)|batch"] ** 2 + np.var(x, ddof=1) + row["sigma"] ** 2
    assert vp.loc["g0", "donor"] == pytest.approx(total_random / total)


def test_consensus_theta_is_fixed_for_every_response(study):
    samples, expr = study
    full = mm.fit_many(FORMULA, samples, expr, start="moment", progress=False)
    screen = mm.fit_many(FORMULA, samples, expr, theta="consensus", pilot=8, progress=False)
    names = [c for c in full.table if c.startswith("theta.")]
    np.testing.assert_allclose(screen.table[names].iloc[0], full.table[names].median())
    assert (screen.table[names].nunique() == 1).all()
    assert (screen.table["convergence"] == "fixed θ").all()
    # at the consensus θ the objective is no better than at each response's own optimum
    assert (screen.table["objective"] >= full.table["objective"] - 1e-8).all()


def test_satterthwaite_df_when_asked(study):
    from mixedmodels.inference.ddf import ddf_coeftable

    samples, expr = study
    res = mm.fit_many(FORMULA, samples, expr.iloc[:, :2], reml=True, ddf="satterthwaite",
                      start="moment", progress=False)  # fmt: skip
    model = single_fit(samples, expr["g0"], reml=True)
    table = ddf_coeftable(model, "satterthwaite")
    assert res.table.loc["g0", "df.conditionb"] == pytest.approx(
        table.loc["conditionb", "df"], rel=1e-4
    )
    assert res.table.loc["g0", "p.conditionb"] == pytest.approx(
        table.loc["conditionb", "p"], rel=1e-4
    )


def test_parquet_round_trip(study, tmp_path):
    pytest.importorskip("pyarrow")
    samples, expr = study
    streamed = tmp_path / "streamed.parquet"
    res = mm.fit_many(FORMULA, samples, expr.assign(bad="x"), chunk=3, out=streamed, progress=False)
    written = res.to_parquet(tmp_path / "table.parquet", chunk=2)
    for path in (streamed, written):
        back = pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, res.table, check_dtype=False)


def test_bootstrap_on_the_engine_is_the_same_whatever_the_scheduler(study):
    distributed = pytest.importorskip("distributed")
    samples, expr = study
    model = single_fit(samples, expr["g0"])
    serial = mm.parametric_bootstrap(model, n=5, seed=7, progress=False)
    threads = mm.parametric_bootstrap(model, n=5, seed=7, progress=False, scheduler="threads")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        dask = mm.parametric_bootstrap(model, n=5, seed=7, progress=False, scheduler=client)
    pd.testing.assert_frame_equal(serial, threads)
    pd.testing.assert_frame_equal(serial, dask)


def test_cli_fit_many_writes_parquet(study, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    from mixedmodels.cli import main

    samples, expr = study
    samples.rename_axis("sample").to_csv(tmp_path / "samples.csv")
    expr.iloc[:, :3].rename_axis("sample").to_parquet(tmp_path / "expr.parquet")
    out = tmp_path / "res.parquet"
    code = main(["fit-many", FORMULA, "--data", str(tmp_path / "samples.csv"), "--responses",
                 str(tmp_path / "expr.parquet"), "--out", str(out), "--reml", "--chunk", "2",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    assert "3 responses, 3 converged" in capsys.readouterr().out
    back = pd.read_parquet(out)
    res = mm.fit_many(FORMULA, samples, expr.iloc[:, :3], reml=True, chunk=2, progress=False)
    np.testing.assert_allclose(back["objective"], res.table["objective"], rtol=1e-12)
    code = main(["fit-many", FORMULA, "--data", str(tmp_path / "samples.csv"), "--responses",
                 str(tmp_path / "expr.parquet"), "--out", str(out), "--reml", "--method", "each",
                 "--no-progress"])  # fmt: skip
    each = pd.read_parquet(out)
    assert code == 0 and (each["optimizer"] == "LN_BOBYQA").all()
    np.testing.assert_allclose(each["objective"], back["objective"], rtol=1e-8)
    code = main(["fit-many", FORMULA, "--data", str(tmp_path / "samples.csv"), "--responses",
                 str(tmp_path / "expr.parquet"), "--out", str(out),
                 "--dask-scheduler", "tcp://127.0.0.1:9"])  # fmt: skip
    assert code == 2
    assert "tcp://127.0.0.1:9" in capsys.readouterr().err


def test_random_slopes_use_the_dense_kernel_with_a_full_lambda(study):
    samples, expr = study
    with_x = samples.assign(x=np.linspace(-1, 1, len(samples)))
    formula = "~ 1 + x + (1 + x|donor)"
    res = mm.fit_many(formula, with_x, expr.iloc[:, :2], method="each", progress=False)
    assert res.info["engine"] == "dense"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mm.LinearMixedModel("y " + formula, with_x.assign(y=expr["g0"])).fit()
    assert_matches(res.table.loc["g0"], model, theta_tol=1e-4, beta_tol=1e-5)
    assert "cor_x.(Intercept)|donor" in res.table


def test_covariance_structures_go_to_the_model_classes():
    rng = np.random.default_rng(0)
    subjects = 20
    samples = pd.DataFrame({"subject": np.repeat([f"s{i}" for i in range(subjects)], 4),
                            "time": np.tile([1, 2, 3, 4], subjects)})  # fmt: skip
    samples["timef"] = pd.Categorical(samples["time"], categories=[1, 2, 3, 4], ordered=True)
    Y = rng.normal(size=(len(samples), 2)) + rng.normal(size=(subjects, 2)).repeat(4, axis=0)
    formula = "~ 1 + time + ar1(0 + timef | subject)"
    res = mm.fit_many(formula, samples, Y, progress=False)
    assert res.info["engine"] == "model refit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mm.LinearMixedModel("y " + formula, samples.assign(y=Y[:, 1])).fit()
    assert res.table["objective"].iloc[1] == pytest.approx(model.objective, rel=1e-8)
