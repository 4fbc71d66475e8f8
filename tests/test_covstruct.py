"""Structured covariance terms (diag, cs, ar1, toep) against glmmTMB 1.1.5 and lme4's deviance.

Reference numbers: tests/data/covstruct_reference.json, written by
tools/make_covstruct_reference.R (glmmTMB fits; for the heterogeneous and the
sleepstudy AR(1), lme4 1.1-31's profiled deviance at chol(D R D)).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from reference_data import TESTS, load_json

import mixedmodels as mm
from mixedmodels.covstruct import (
    CovStructure,
    partial_autocorrelations,
    phi_of,
    psd_cholesky_lower,
    rho_of,
    structure_for,
    toeplitz_correlations,
)
from mixedmodels.errors import FormulaError, MixedModelsError
from mixedmodels.formula import parse_formula

REF = load_json("data/covstruct_reference.json")


@cache
def dataset(name: str) -> pd.DataFrame:
    """The reference fits' data with R's factor codings (times as ordered categoricals)."""
    if name == "sleepstudy":
        df = mm.datasets.load("sleepstudy")
        df["Daysf"] = pd.Categorical(df["Days"], categories=range(10), ordered=True)
    elif name == "oats":
        df = mm.datasets.load("oats")
        df["nitrof"] = pd.Categorical(df["nitro"])
    elif name == "btheb":
        df = mm.datasets.load("btheb")
        df["timef"] = pd.Categorical(df["time"], categories=[2, 3, 5, 8], ordered=True)
    elif name == "simrm":
        df = pd.read_csv(TESTS / "data" / "covstruct" / "simrm.csv")
        df["id"] = pd.Categorical(df["id"].astype(str))
        df["timef"] = pd.Categorical(df["time"], categories=[1, 2, 3, 4], ordered=True)
    else:
        df = pd.read_csv(TESTS / "data" / "covstruct" / "contraception.csv")
        df["district"] = pd.Categorical(df["district"].astype(str))
    return df


@cache
def fitted(key: str):
    ref = REF[key]
    df = dataset(ref["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ref["data"] == "contraception":
            return mm.GeneralizedLinearMixedModel(ref["formula"], df, family="bernoulli").fit()
        return mm.LinearMixedModel(ref["formula"], df).fit()


# -2 log L, β, σ and Σ (glmmTMB's non-positive-definite Hessian at btheb_cs is ρ -> 1; Σ
# still agrees).  Not here: glmmTMB's oats_cs and oats_homcs (via map) stop above the
# optimum, see test_oats_split_plot_beats_glmmtmb; sleepstudy ar1 / toep, where
# glmmTMB 1.1.5 reports false convergence with σ -> 0.
MODELS = [
    "sleep_ar1_lme4",
    "sleep_cs",
    "sleep_cs2",
    "sleep_diag",
    "sleep_us",
    "oats_homdiag",
    "btheb_cs",
    "btheb_ar1",
    "btheb_hetar1",
    "sim_toep",
    "sim_us",
    "sim_ar1",
    "contra_us",
    "contra_diag",
    "contra_cs",
]
SLOW = {"sleep_cs", "btheb_cs", "contra_us", "contra_diag", "contra_cs"}


def _param(key):
    return pytest.param(key, marks=pytest.mark.slow) if key in SLOW else key


@pytest.mark.parametrize("key", [_param(k) for k in MODELS])
def test_agrees_with_reference(key):
    ref, m = REF[key], fitted(key)
    assert m.objective == pytest.approx(ref["m2loglik"], rel=1e-6)
    np.testing.assert_array_less(np.abs(m.beta - ref["beta"]), 0.02 * np.asarray(ref["se"]))
    if ref["sigma"] is not None:
        assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)
        sigma2 = m.sigma**2
    else:
        sigma2 = 1.0
    r = m.reterms[0]
    Sigma = sigma2 * r.lambda_ @ r.lambda_.T
    np.testing.assert_allclose(
        Sigma, np.asarray(ref["Sigma"]), rtol=0, atol=1e-3 * np.abs(Sigma).max()
    )


def test_sleepstudy_ar1_is_lme4_2_published_value():
    # lme4 2.0's documented ML logLik of Reaction ~ Daysf + ar1(0 + Daysf | Subject): homogeneous AR(1)
    assert fitted("sleep_ar1_lme4").loglikelihood == pytest.approx(-868.288080325, abs=1e-6)
    assert fitted("sleep_diag").loglikelihood == pytest.approx(-876.00162757, abs=1e-6)
    assert fitted("sleep_cs2").loglikelihood == pytest.approx(-875.969672253, abs=1e-6)


def test_diag_is_double_bar_and_homcs_is_nested_intercepts():
    sleep, oats = dataset("sleepstudy"), dataset("oats")
    diag = mm.LinearMixedModel("Reaction ~ Days + diag(1 + Days | Subject)", sleep).fit()
    bars = mm.LinearMixedModel("Reaction ~ Days + (1 + Days || Subject)", sleep).fit()
    assert diag.objective == pytest.approx(bars.objective, rel=1e-10)
    np.testing.assert_allclose(diag.theta, bars.theta, rtol=1e-5)
    # compound symmetry with ρ >= 0 over the varieties is the split plot's Block + Block:Variety
    nested = mm.LinearMixedModel("yield ~ nitrof + Variety + (1 | Block/Variety)", oats).fit()
    assert fitted("oats_homcs").objective == pytest.approx(nested.objective, rel=1e-8)


def test_oats_split_plot_beats_glmmtmb():
    # homcs = (1 | Block/Variety) exactly (above); the heterogeneous cs must do at least as
    # well, and glmmTMB's fit (non-positive-definite Hessian) does not even reach homcs
    het = mm.LinearMixedModel("yield ~ nitrof + Variety + cs(0 + Variety | Block)", dataset("oats"))
    het.fit()
    assert het.objective <= fitted("oats_homcs").objective + 1e-8
    assert het.objective < REF["oats_cs"]["m2loglik"] - 1


def test_diag_of_factor_slopes_has_one_variance_per_level():
    oats = dataset("oats")
    m = mm.LinearMixedModel("yield ~ nitrof + diag(0 + Variety | Block)", oats)
    assert m.theta_names == [
        "Block.VarietyGolden Rain",
        "Block.VarietyMarvellous",
        "Block.VarietyVictory",
    ]
    hom = mm.LinearMixedModel("yield ~ nitrof + diag(0 + Variety | Block, hom = TRUE)", oats)
    assert hom.theta_names == ["Block.sd"] and list(hom.lowerbd) == [0.0]


def test_theta_names_and_bounds_per_structure():
    sleep = dataset("sleepstudy")
    m = mm.LinearMixedModel("Reaction ~ Days + cs(1 + Days | Subject)", sleep)
    assert m.theta_names == ["Subject.(Intercept)", "Subject.Days", "Subject.phi_rho"]
    assert list(m.lowerbd) == [0.0, 0.0, -np.inf]
    toep = mm.LinearMixedModel("Reaction ~ Days + homtoep(0 + Daysf | Subject)", sleep)
    assert toep.theta_names[:2] == ["Subject.sd", "Subject.phi_pacf1"] and len(toep.theta) == 10


def test_unstructured_terms_keep_the_linear_scatter():
    m = mm.LinearMixedModel("Reaction ~ Days + us(1 + Days | Subject)", dataset("sleepstudy"))
    assert not m.reterms[0].is_structured
    assert m.reterms[0].structures == [None]


@pytest.mark.parametrize("kind", ["diag", "cs", "ar1", "toep"])
@pytest.mark.parametrize("hom", [False, True])
def test_lambda_is_the_cholesky_factor_of_DRD(kind, hom):
    rng = np.random.default_rng(3)
    s = CovStructure(kind, 5, hom)
    for _ in range(5):
        phi = np.concatenate([rng.uniform(0.1, 2, s.nsd), rng.normal(0, 1, s.ncor)])
        d = s.sds(phi)
        S = np.outer(d, d) * s.correlation_matrix(phi)
        np.testing.assert_allclose(s.lambda_(phi), np.linalg.cholesky(S), atol=1e-12)
        np.testing.assert_allclose(s.from_natural(s.to_natural(phi, 2.0), 2.0), phi, atol=1e-8)


def test_correlation_matrices_have_their_form():
    rho = 0.6
    phi = np.array([1.0, np.arctanh(rho)])
    R = CovStructure("ar1", 4, True).correlation_matrix(phi)
    assert R[0, 3] == pytest.approx(rho**3) and R[1, 2] == pytest.approx(rho)
    cs = CovStructure("cs", 4, True)
    assert cs.correlations(np.array([1.0, -50.0]))[0] == pytest.approx(-1 / 3)
    # ρ at 1 is a singular but valid factor (zero columns after the first)
    L = CovStructure("ar1", 3, True).lambda_(np.array([1.0, np.inf]))
    np.testing.assert_allclose(L @ L.T, np.ones((3, 3)))


def test_toeplitz_from_partial_autocorrelations_is_positive_definite():
    rng = np.random.default_rng(7)
    for _ in range(20):
        pacf = rng.uniform(-0.99, 0.99, 5)
        rho = toeplitz_correlations(pacf)
        R = rho[np.abs(np.subtract.outer(np.arange(6), np.arange(6)))]
        assert np.linalg.eigvalsh(R).min() > 0
        np.testing.assert_allclose(partial_autocorrelations(rho), pacf, atol=1e-10)
    with pytest.raises(ValueError, match="positive-definite"):
        partial_autocorrelations(np.array([1.0, 0.9, -0.9]))
    np.testing.assert_allclose(psd_cholesky_lower(np.ones((3, 3)))[:, 0], 1.0)


def test_parsing_spellings():
    p = parse_formula("y ~ x + ar1(0 + f | g) + diag(1 + x | h, hom = TRUE) + homcs(0 + f | g)")
    assert [(t.structure, t.hom, t.group_name) for t in p.random] == [
        ("ar1", None, "g"),
        ("diag", True, "h"),
        ("homcs", None, "g"),
    ]
    assert p.fixed == "x"
    assert parse_formula("y ~ log(x) + (1 | g)").fixed == "log(x)"
    assert structure_for("hetar1", None, 3, "") == CovStructure("ar1", 3, False)
    assert structure_for("ar1", None, 3, "") == CovStructure("ar1", 3, True)
    assert structure_for("cs", None, 3, "") == CovStructure("cs", 3, False)


@pytest.mark.parametrize(
    "formula, message",
    [
        ("Reaction ~ Days + foo(1 | Subject)", "unknown covariance structure 'foo'.*ar1.*homdiag"),
        ("Reaction ~ Days + us(1 + Days | Subject, hom = TRUE)", "us\\(\\) has no homogeneous"),
        ("Reaction ~ Days + homcs(0 + Daysf | Subject, hom = FALSE)", "contradicts homcs"),
        ("Reaction ~ Days + cs(1 | Subject)", "cs\\(\\) in 'cs\\(1 \\| Subject\\)' has one column"),
        ("Reaction ~ Days + ar1(0 + Days | Subject)", "ordered categorical.*'Days' has int64"),
        ("Reaction ~ Days + ar1(0 + Subject | Daysf)", "'Subject' has an unordered categorical"),
        ("Reaction ~ Days + ar1(Daysf | Subject)", "ar1\\(0 \\+ f \\| g\\)"),
        ("Reaction ~ Days + toep(0 + Daysf + Days | Subject)", "toep\\(\\) in .* needs one column"),
        ("Reaction ~ Days + cs(1 + Days || Subject)", "'\\|\\|' inside cs"),
        ("Reaction ~ Days + cs(1 + Days | Subject, rho = 0)", "takes only hom"),
    ],
)
def test_bad_structures_are_formula_errors_naming_the_term(formula, message):
    df = dataset("sleepstudy")
    before = df.copy()
    with pytest.raises(FormulaError, match=message):
        mm.LinearMixedModel(formula, df)
    pd.testing.assert_frame_equal(df, before)


def test_singular_at_correlation_one():
    m = fitted("btheb_cs")  # ρ -> 1 (glmmTMB's Hessian is not positive definite there too)
    assert m.issingular
    assert m.boundary_parameters() == ["subject.phi_rho"]
    assert not fitted("btheb_ar1").issingular


def test_varcorr_shows_structure_and_rho():
    m = fitted("btheb_ar1")
    vc = m.varcorr()
    assert list(vc["structure"]) == ["ar1"] * 4 + [""]
    rho = vc.attrs["structures"]["subject"]["rho"]
    assert rho == pytest.approx(np.tanh(m.theta[1]))
    assert vc["corr_1"].iloc[1] == pytest.approx(rho) and vc["corr_2"].iloc[2] == pytest.approx(rho)
    assert f"ar1 rho={rho:.3g}" in str(m)
    plain = mm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", dataset("sleepstudy"))
    assert "structure" not in plain.fit().varcorr().columns


def test_lrt_between_structures_and_profile_of_rho():
    ar1, het = fitted("btheb_ar1"), fitted("btheb_hetar1")
    table = mm.lrt(ar1, het)
    assert table["chisq"].iloc[-1] == pytest.approx(ar1.objective - het.objective, rel=1e-9)
    assert table["df"].iloc[-1] == 3
    prof = ar1.profile(which=["rho|subject"], progress=False)
    lo, hi = prof.confint().loc["rho|subject"]
    rho = np.tanh(ar1.theta[1])
    assert -1 < lo < rho < hi <= 1


def test_lrt_from_compound_symmetry_to_unstructured():
    oats = dataset("oats")
    fixed = "yield ~ nitrof + Variety + "
    fits = [
        mm.LinearMixedModel(fixed + s, oats).fit()
        for s in [
            "homcs(0 + Variety | Block)",
            "cs(0 + Variety | Block)",
            "us(0 + Variety | Block)",
        ]
    ]
    table = mm.lrt(*fits, names=["homcs", "cs", "us"])
    assert list(table["dof"]) == [9, 11, 13]
    assert list(table["df"].iloc[1:]) == [2, 2]
    assert fits[0].objective >= fits[1].objective >= fits[2].objective


def test_heteroskedastic_model_refuses_structured_terms():
    with pytest.raises(MixedModelsError, match="covariance structure"):
        mm.HeteroskedasticMixedModel(
            "bdi ~ timef + ar1(0 + timef | subject)",
            dataset("btheb"),
            dispformula="~ 1 + treatment",
        ).fit()


def test_structured_models_simulate_and_predict():
    m = fitted("btheb_ar1")
    df = dataset("btheb")
    np.testing.assert_allclose(m.predict(df), m.fitted(), rtol=1e-10)
    y = m.simulate(seed=1)
    assert len(y) == m.nobs and np.isfinite(np.asarray(y)).all()
    theta = m.theta.copy()
    m2 = m.copy().refit(np.asarray(y).ravel())
    assert m2.objective < np.inf and len(m2.theta) == len(theta)


def test_a_term_pickled_before_structures_loads_unstructured():
    import pickle

    r = mm.LinearMixedModel("Reaction ~ Days + (Days | Subject)", dataset("sleepstudy")).reterms[0]
    state = {
        k: v for k, v in r.__dict__.items() if k not in ("structures", "is_structured", "_phi")
    }
    old = object.__new__(type(r))
    old.__setstate__(state)
    back = pickle.loads(pickle.dumps(old))
    assert back.structures == [None] and not back.is_structured
    back.set_theta(np.array([1.0, 0.5, 2.0]))
    np.testing.assert_array_equal(back.lambda_, [[1.0, 0.0], [0.5, 2.0]])


def test_kenward_roger_refuses_structured_terms():
    with pytest.raises(MixedModelsError, match="satterthwaite"):
        fitted("btheb_ar1").coeftable(ddf="kenward-roger")


def test_phi_of_a_boundary_correlation_is_finite_and_maps_back():
    phi = phi_of(np.array([-1.0, 1.0, 0.3]))
    assert np.all(np.isfinite(phi))
    np.testing.assert_allclose(rho_of(phi[:2]), [-1.0, 1.0], rtol=2e-16)
    assert rho_of(phi[2]) == pytest.approx(0.3, rel=1e-15)


def test_profile_of_a_fixed_effect_at_a_boundary_correlation():
    # ρ -> 1: the profile's warm starts for the reduced models used to carry φ = atanh(1) = ∞
    m = fitted("btheb_cs")
    name = m.coefnames[-1]
    table = m.confint(parm=[name], progress=False)
    lo, hi = table.loc[name]
    beta = m.beta[-1]
    assert lo < beta < hi
    wald = m.confint(method="wald").loc[name]
    assert (hi - lo) == pytest.approx(wald["upper"] - wald["lower"], rel=0.2)
