"""The model contract (mixedmodels/model.py): refit equals a fresh fit, copies and pickles
predict identically, per-observation outputs carry the data's index, misuse gets the
package's error."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError, NotFittedError
from mixedmodels.model import MixedModel


@pytest.fixture(scope="module")
def grouse():
    return mm.datasets.load("grouseticks")


def simulated_response(m, seed):
    return m.simulate(1, seed=seed).iloc[:, 0].to_numpy()


# ---- refit(y) equals a fresh fit ---------------------------------------------------------------
GLMMS = [
    ("cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", "cbpp", "binomial", None),
    ("TICKS ~ 1 + YEAR + (1|BROOD)", "grouseticks", "poisson", None),
    ("r2 ~ 1 + Anger + Gender + (1|id)", "verbagg", "bernoulli", None),
    ("TICKS + 1 ~ 1 + YEAR + (1|BROOD)", "grouseticks", "gamma", "log"),
]


def _data_with_response(name, formula, y):
    """The data set with its response column replaced by y (for a fresh fit of the same data)."""
    df = mm.datasets.load(name).copy()
    lhs = formula.split("~")[0].strip()
    if lhs.startswith("cbind("):
        df["incidence"] = np.round(y * df["size"]).astype(int)
    elif lhs == "TICKS + 1":
        df["TICKS"] = y - 1
    elif name == "verbagg":
        df["r2"] = pd.Categorical(np.where(y > 0.5, "Y", "N"), categories=["N", "Y"])
    else:
        df[lhs] = y
    return df


@pytest.mark.parametrize("formula,data,family,link", GLMMS, ids=[g[2] for g in GLMMS])
def test_glmm_refit_equals_fresh_fit(formula, data, family, link):
    m = mm.GeneralizedLinearMixedModel(
        formula, mm.datasets.load(data), family=family, link=link
    ).fit()
    y = simulated_response(m, 11)
    if family == "gamma":  # on a grid of 1/1024, so that the fresh fit's TICKS + 1 is y exactly
        y = np.round(np.maximum(y, 1e-3) * 1024) / 1024
    refitted = m.copy().refit(y)
    fresh = mm.GeneralizedLinearMixedModel(
        formula, _data_with_response(data, formula, y), family=family, link=link
    ).fit()
    assert refitted.objective == pytest.approx(fresh.objective, rel=1e-9)
    np.testing.assert_allclose(refitted.theta, fresh.theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(refitted.beta, fresh.beta, rtol=1e-6, atol=1e-8)


def test_lmm_refit_equals_fresh_fit_with_offset(sleepstudy):
    df = sleepstudy.assign(off=0.5 * sleepstudy["Days"])
    f = "Reaction ~ 1 + Days + offset(off) + (1 + Days|Subject)"
    m = mm.LinearMixedModel(f, df).fit()
    y = simulated_response(m, 3)
    refitted = m.copy().refit(y)
    fresh = mm.LinearMixedModel(f, df.assign(Reaction=y)).fit()
    assert refitted.objective == pytest.approx(fresh.objective, rel=1e-10)
    np.testing.assert_allclose(refitted.fitted(), fresh.fitted(), rtol=1e-7)
    np.testing.assert_allclose(refitted.response, y)


# ---- pickle and deepcopy ---------------------------------------------------------------------
def _models(sleepstudy):
    cbpp = mm.datasets.load("cbpp")
    K = np.corrcoef(np.random.default_rng(0).normal(size=(18, 40)))
    K = pd.DataFrame(
        K,
        index=sorted(sleepstudy["Subject"].unique()),
        columns=sorted(sleepstudy["Subject"].unique()),
    )
    return {
        "lmm": mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy),
        "glmm": mm.GeneralizedLinearMixedModel(
            "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", cbpp, family="binomial"
        ),
        "agq": mm.GeneralizedLinearMixedModel(
            "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", cbpp, family="binomial"
        ),
        "kinship": mm.LinearMixedModel(
            "Reaction ~ 1 + Days + (1|Subject)", sleepstudy, covariance={"Subject": K}
        ),
    }


@pytest.mark.parametrize("kind", ["lmm", "glmm", "agq", "kinship"])
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_round_trips_predict_identically(sleepstudy, kind, how):
    model = _models(sleepstudy)[kind]
    unfitted = pickle.loads(pickle.dumps(model)) if how == "pickle" else copy.deepcopy(model)
    assert not unfitted.is_fitted
    model.fit(nagq=9) if kind == "agq" else model.fit()
    clone = {
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
        "deepcopy": copy.deepcopy,
        "copy": lambda m: m.copy(),
    }[how](model)
    newdata = model.structure.frame.frame.iloc[::7]
    pd.testing.assert_series_equal(clone.predict(newdata), model.predict(newdata))
    pd.testing.assert_series_equal(clone.fitted(), model.fitted())
    assert clone.objective == model.objective
    # the copy is independent: refitting it leaves the original alone
    before = model.objective
    clone.refit(simulated_response(model, 5))
    assert model.objective == before


def test_unfitted_round_trip_then_fit_matches(sleepstudy):
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy)
    clone = pickle.loads(pickle.dumps(m)).fit()
    assert clone.objective == pytest.approx(m.fit().objective, rel=1e-12)


@pytest.mark.cholmod
def test_cholmod_backed_model_pickles():
    df = mm.datasets.load("insteval").iloc[:20000]
    m = mm.LinearMixedModel("y ~ 1 + service + (1|s) + (1|d)", df, sparse=True)
    m.optsum.maxfeval = 15
    m.fit()
    clone = pickle.loads(pickle.dumps(m))
    assert clone.objective == pytest.approx(m.objective, rel=1e-12)
    np.testing.assert_allclose(clone.ranef()["d"].to_numpy(), m.ranef()["d"].to_numpy(), rtol=1e-10)


def test_save_and_load(tmp_path, sleepstudy):
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy).fit()
    path = m.save(tmp_path / "m.mixedmodel")
    back = mm.load(path)
    pd.testing.assert_series_equal(back.predict(sleepstudy), m.predict(sleepstudy))
    assert back.data_hash() == m.data_hash()


def test_load_refuses_other_files_with_the_package_error(tmp_path):
    with pytest.raises(MixedModelsError, match="no saved model"):
        mm.load(tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.write_text("not a pickle")
    with pytest.raises(MixedModelsError, match="not a saved mixedmodels model"):
        mm.load(junk)
    other = tmp_path / "other"
    other.write_bytes(
        pickle.dumps({"format": "mixedmodels-model", "save_format": 999, "formula": "y ~ x"})
    )
    with pytest.raises(MixedModelsError, match="save format 999"):
        mm.load(other)


# ---- per-observation outputs carry the data's index ------------------------------------------------
def test_outputs_align_with_a_shuffled_frame(sleepstudy):
    shuffled = sleepstudy.sample(frac=1.0, random_state=3)
    shuffled.index = shuffled.index + 1000
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", shuffled).fit()
    base = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy).fit()
    out = shuffled.copy()
    out["fit"] = m.predict()
    out["fitted"] = m.fitted()
    out["resid"] = m.residuals()
    out["sim"] = m.simulate(1, seed=1)["sim_1"]
    expected = base.fitted().to_numpy()[shuffled.index - 1000]
    np.testing.assert_allclose(out["fit"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["fitted"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["fit"] + out["resid"], out["Reaction"], rtol=1e-12)
    assert out["sim"].notna().all()


def test_dropped_rows_are_absent_from_per_observation_outputs(sleepstudy):
    df = sleepstudy.copy()
    df.loc[[3, 50], "Reaction"] = np.nan
    with pytest.warns(UserWarning, match="missing"):
        m = mm.GeneralizedLinearMixedModel(
            "Reaction ~ 1 + Days + (1|Subject)",
            df.assign(Reaction=df["Reaction"]),
            family="gamma",
            link="log",
        ).fit()
    fitted = m.fitted()
    assert 3 not in fitted.index and 50 not in fitted.index and len(fitted) == len(df) - 2
    out = df.copy()
    out["fit"] = fitted
    assert out["fit"].isna().sum() == 2


# ---- contract and misuse --------------------------------------------------------------------------
def test_every_model_kind_implements_the_contract(sleepstudy):
    from mixedmodels.variance.hetero import HeteroskedasticMixedModel

    models = list(_models(sleepstudy).values())
    models.append(
        HeteroskedasticMixedModel(
            "Reaction ~ 1 + Days + (1|Subject)", sleepstudy, dispformula="~ 1 + Days"
        )
    )
    for m in models:
        assert isinstance(m, MixedModel)
        with pytest.raises(NotFittedError, match="fit\\(\\) first"):
            m.coeftable()
        m.fit()
        assert m.fitted().index.equals(m.residuals().index)
        assert len(m.predict()) == m.nobs


def test_dispformula_on_the_linear_model_names_the_right_class(sleepstudy):
    with pytest.raises(MixedModelsError, match="HeteroskedasticMixedModel"):
        mm.LinearMixedModel("Reaction ~ Days + (1|Subject)", sleepstudy, dispformula="~ Days")
    het = mm.HeteroskedasticMixedModel(
        "Reaction ~ Days + (1|Subject)", sleepstudy, dispformula="~ Days"
    ).fit()
    p = het.predict(sleepstudy.iloc[:5])
    np.testing.assert_allclose(p, het.fitted().iloc[:5], rtol=1e-10)


def test_r_spellings(sleepstudy):
    a = mm.LinearMixedModel("Reaction ~ Days + (Days|Subject)", sleepstudy, REML=True).fit()
    b = mm.LinearMixedModel("Reaction ~ Days + (Days|Subject)", sleepstudy).fit(reml=True)
    assert a.reml and b.reml and a.objective == pytest.approx(b.objective, rel=1e-10)
    with pytest.raises(MixedModelsError, match="unexpected keyword"):
        mm.LinearMixedModel("Reaction ~ Days + (Days|Subject)", sleepstudy, reml_=True)
    cbpp = mm.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"
    g = mm.GeneralizedLinearMixedModel(f, cbpp, family="binomial").fit(nAGQ=0)
    assert g.criterion == "Laplace (fast fit)"


def test_gaussian_identity_glmm_points_to_the_lmm(sleepstudy):
    with pytest.raises(MixedModelsError, match="LinearMixedModel"):
        mm.GeneralizedLinearMixedModel(
            "Reaction ~ Days + (1|Subject)", sleepstudy, family="gaussian"
        )


def test_objective_at_fixed_sigma_matches_the_profiled_value(sleepstudy):
    for reml in (False, True):
        m = mm.LinearMixedModel(
            "Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy, reml=reml
        ).fit()
        theta, sigma = m.theta.copy(), m.sigma
        # at σ̂ the σ-fixed criterion equals the profiled one
        assert m.objective_at(theta, sigma=sigma) == pytest.approx(m.objective_at(theta), rel=1e-12)
        assert m.objective_at(theta, sigma=1.1 * sigma) > m.objective_at(theta)


def test_update_changes_formula_options_and_data(sleepstudy):
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy).fit()
    smaller = m.update("~ . - Days")
    direct = mm.LinearMixedModel("Reaction ~ 1 + (1 + Days|Subject)", sleepstudy).fit()
    assert smaller.formula == "Reaction ~ 1 + (1 + Days|Subject)"
    assert smaller.objective == pytest.approx(direct.objective, rel=1e-10)
    reml = m.update(reml=True)
    assert reml.reml and not m.reml
    half = m.update(data=sleepstudy.iloc[::2])
    assert half.nobs == 90 and m.nobs == 180
    g = mm.GeneralizedLinearMixedModel(
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
        mm.datasets.load("cbpp"),
        family="binomial",
    ).fit(nagq=5)
    assert g.update("~ . - period").nagq == 5
    with pytest.raises(MixedModelsError, match="no term"):
        m.update("~ . - nothere")
    loaded = pickle.loads(pickle.dumps(m))
    with pytest.raises(MixedModelsError, match="pass data="):
        loaded.update("~ . - Days")


def test_summary_and_notebook_reprs(sleepstudy):
    m = mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", sleepstudy, reml=True).fit()
    text = str(m.summary())
    # lme4's summary(): scaled residuals and Satterthwaite df (lmerTest)
    assert "-3.9536 -0.4634 0.0231 0.4634 5.1793" in " ".join(text.split())
    assert "Satterthwaite" in text
    assert "<table" in m._repr_html_() and "Random effects" in m._repr_markdown_()


def test_residual_type_is_lme4s_name_for_kind(sleepstudy):
    from mixedmodels.variance.hetero import HeteroskedasticMixedModel

    w = np.linspace(0.5, 2.0, len(sleepstudy))
    lmm = mm.LinearMixedModel("Reaction ~ Days + (1|Subject)", sleepstudy, weights=w).fit()
    raw = lmm.residuals()
    # lme4: deviance and pearson residuals of a weighted linear fit are √w (y - ŷ)
    for kind in ("pearson", "deviance"):
        np.testing.assert_allclose(lmm.residuals(type=kind), np.sqrt(w) * raw, rtol=1e-12)
        pd.testing.assert_series_equal(lmm.residuals(type=kind), lmm.residuals(kind))
    np.testing.assert_allclose(lmm.residuals(type="working"), raw, rtol=1e-12)
    het = HeteroskedasticMixedModel(
        "Reaction ~ Days + (1|Subject)", sleepstudy, dispformula="~ Days"
    ).fit()
    np.testing.assert_allclose(het.residuals(type="pearson"), het.residuals() / het.residual_sd())
    cb = mm.datasets.load("cbpp")
    glmm = mm.GeneralizedLinearMixedModel(
        "incidence / size ~ period + (1|herd)", cb, family="binomial", weights=cb["size"]
    ).fit()
    pd.testing.assert_series_equal(glmm.residuals(), glmm.residuals(type="deviance"))
    for m in (lmm, het, glmm):
        with pytest.raises(MixedModelsError, match="disagree"):
            m.residuals("pearson", type="response")
        with pytest.raises(MixedModelsError, match="unknown residual type 'zzz'"):
            m.residuals(type="zzz")


def test_zero_inflated_residuals_default_to_response():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(20), 15)
    x = rng.normal(size=g.size)
    mu = np.exp(0.3 + 0.4 * x + rng.normal(scale=0.4, size=20)[g])
    y = np.where(rng.random(g.size) < 0.3, 0, rng.poisson(mu))
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    m = mm.GeneralizedLinearMixedModel("y ~ x + (1|g)", df, family="poisson", ziformula="~1").fit()
    pd.testing.assert_series_equal(m.residuals(), m.residuals(type="response"))
    np.testing.assert_allclose(m.residuals() + m.fitted(), y, rtol=1e-12)
    with pytest.raises(MixedModelsError, match="not defined for a zero-inflated"):
        m.residuals(type="deviance")
