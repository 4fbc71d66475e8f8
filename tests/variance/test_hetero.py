"""HeteroskedasticMixedModel: glmmTMB references and properties."""

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import FormulaError, MixedModelsError
from mixedmodels.variance import HeteroskedasticMixedModel

REFERENCES = ["sleepstudy_disp_ml", "geno_hlm"]


@pytest.mark.parametrize("name", REFERENCES)
def test_matches_glmmtmb(name, reference, fitted_reference):
    # glmmTMB's optimum is reached to about 1e-8 in the objective; ours has a vanishing gradient,
    # so coefficients agree to about 1e-6 relative and the tolerances below are the project's.
    ref, m = reference(name), fitted_reference(name)
    np.testing.assert_allclose(m.objective, ref["objective"], rtol=1e-6)
    np.testing.assert_allclose(m.loglikelihood, ref["loglik"], rtol=1e-6)
    assert m.coefnames == ref["beta_names"] and m.disp_names == ref["disp_names"]
    np.testing.assert_allclose(m.beta, ref["beta"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.disp_coef, ref["disp_coef"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.stderror, ref["stderror"], rtol=1e-4)
    if ref["re_sd"]:
        np.testing.assert_allclose(m.varcorr()["std. dev."], [ref["re_sd"]], rtol=1e-4)
    assert m.converged


@pytest.mark.parametrize("name", REFERENCES)
def test_reference_disp_scale(name, reference, fitted_reference):
    # The reference files label disp_coef "log sd", but their objective is reached only when
    # Var(ε_i) = exp(d_i'·disp_coef), the log-variance reading that disp_coef reports.
    ref, m = reference(name), fitted_reference(name)
    beta = np.asarray(ref["beta"])
    theta = [ref["re_sd"]] if ref["re_sd"] else []
    as_logvar = m.lik.evaluate(np.concatenate([ref["disp_coef"], theta]), beta).objective
    as_logsd = m.lik.evaluate(
        np.concatenate([2 * np.asarray(ref["disp_coef"]), theta]), beta
    ).objective
    np.testing.assert_allclose(as_logvar, ref["objective"], rtol=1e-8)
    assert (
        as_logsd > ref["objective"] + 0.5
    )  # far beyond the 1e-8 agreement of the log-variance reading
    np.testing.assert_allclose(
        m.disp_coef_logsd, np.asarray(ref["disp_coef"]) / 2, rtol=1e-4, atol=1e-4
    )


def test_constant_dispersion_is_the_ordinary_ml_lmm(sleepstudy):
    formula = "Reaction ~ 1 + Days + (1 + Days | Subject)"
    het = HeteroskedasticMixedModel(formula, sleepstudy, dispformula="~ 1").fit()
    lmm = mm.LinearMixedModel(formula, sleepstudy).fit()
    # BOBYQA stops within about 1e-9 of the optimum in the objective, 1e-4 in θ.
    np.testing.assert_allclose(het.objective, lmm.objective, rtol=1e-9)
    assert het.objective <= lmm.objective + 1e-8
    np.testing.assert_allclose(het.beta, lmm.beta, rtol=1e-6)
    np.testing.assert_allclose(np.exp(het.disp_coef_logsd[0]), lmm.sigma, rtol=1e-5)
    np.testing.assert_allclose(het.theta, lmm.sigma * lmm.theta, rtol=1e-3, atol=1e-3)
    vc = lmm.varcorr()
    np.testing.assert_allclose(het.varcorr()["variance"], vc["variance"][:2], rtol=1e-4)
    np.testing.assert_allclose(het.stderror, lmm.stderror, rtol=1e-3)
    np.testing.assert_allclose(het.fitted(), lmm.fitted(), rtol=1e-5)


def test_scaling_y_shifts_the_log_variance_intercept(sleepstudy, fitted_reference):
    c = 7.5
    scaled = sleepstudy.assign(Reaction=c * sleepstudy["Reaction"])
    base = fitted_reference("sleepstudy_disp_ml")
    m = HeteroskedasticMixedModel(base.formula, scaled, dispformula="~ 1 + Days").fit()
    shift = np.array([2 * np.log(c), 0.0])
    np.testing.assert_allclose(m.disp_coef, base.disp_coef + shift, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(
        m.disp_coef_logsd, base.disp_coef_logsd + shift / 2, rtol=1e-7, atol=1e-7
    )
    np.testing.assert_allclose(m.beta, c * base.beta, rtol=1e-7)
    np.testing.assert_allclose(m.theta, c * base.theta, rtol=1e-6)
    np.testing.assert_allclose(m.objective, base.objective + 2 * m.nobs * np.log(c), rtol=1e-10)
    np.testing.assert_allclose(m.disp_stderror, base.disp_stderror, rtol=1e-5)


def test_constant_weights_shift_the_log_variance_intercept(sleepstudy, fitted_reference):
    # Var(ε_i) = exp(d_i'γ) / w_i: weights w = 4 raise the intercept by log 4; the variances,
    # and so the likelihood, stay the same.
    base = fitted_reference("sleepstudy_disp_ml")
    m = HeteroskedasticMixedModel(
        base.formula, sleepstudy, dispformula="~ 1 + Days", weights=np.full(180, 4.0)
    ).fit()
    np.testing.assert_allclose(
        m.disp_coef, base.disp_coef + [np.log(4.0), 0.0], rtol=1e-7, atol=1e-7
    )
    np.testing.assert_allclose(m.beta, base.beta, rtol=1e-8)
    np.testing.assert_allclose(m.objective, base.objective, rtol=1e-12)
    np.testing.assert_allclose(m.residual_sd(), base.residual_sd(), rtol=1e-7)


def test_conditional_modes_and_variances_equal_dense_formulas(fitted_reference):
    m = fitted_reference("sleepstudy_disp_ml")
    lik = m.lik
    Z = lik.Z.toarray()
    G = m.theta[0] ** 2 * np.eye(Z.shape[1])
    V = np.diag(m.residual_sd() ** 2) + Z @ G @ Z.T
    Vinv = np.linalg.inv(V)
    b = G @ Z.T @ Vinv @ (lik.y - lik.X @ m.beta)
    cond_var = G - G @ Z.T @ Vinv @ Z @ G
    re = m.ranef(condvar=True)["Subject"]
    np.testing.assert_allclose(re["(Intercept)"], b, rtol=1e-8)
    np.testing.assert_allclose(re["condvar((Intercept))"], np.diag(cond_var), rtol=1e-8)
    np.testing.assert_allclose(m.fitted(), lik.X @ m.beta + Z @ b, rtol=1e-10)
    np.testing.assert_allclose(m.residuals(), lik.y - m.fitted(), rtol=1e-10)


def test_summary_and_tables(fitted_reference):
    m = fitted_reference("sleepstudy_disp_ml")
    text = str(m)
    for piece in (
        "Heteroskedastic linear mixed model",
        "~ 1 + Days",
        "Dispersion parameters",
        "Subject",
    ):
        assert piece in text
    logsd = m.disp_coeftable("logsd")
    np.testing.assert_allclose(logsd["Estimate"], m.disp_coef / 2)
    np.testing.assert_allclose(logsd["Std. Error"], m.disp_stderror / 2)
    np.testing.assert_allclose(m.disp_coeftable()["z"], logsd["z"])
    assert m.dof == 5 and np.isclose(m.aic, m.objective + 10)
    assert "Heteroskedastic linear model" in str(fitted_reference("geno_hlm"))


def test_missing_dispersion_values_drop_rows(sleepstudy):
    data = sleepstudy.assign(z=np.where(np.arange(180) % 9 == 0, np.nan, sleepstudy["Days"]))
    with pytest.warns(UserWarning, match="dispersion formula"):
        m = HeteroskedasticMixedModel(
            "Reaction ~ 1 + Days + (1|Subject)", data, dispformula="~ 1 + z"
        ).fit()
    complete = data.dropna().reset_index(drop=True)
    ref = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", complete, dispformula="~ 1 + z"
    ).fit()
    assert m.nobs == 160
    np.testing.assert_allclose(m.objective, ref.objective, rtol=1e-12)


def test_bad_input_messages(sleepstudy, fitted_reference):
    f = "Reaction ~ 1 + Days + (1|Subject)"
    with pytest.raises(FormulaError, match="one-sided"):
        HeteroskedasticMixedModel(f, sleepstudy, dispformula="1 + Days")
    with pytest.raises(FormulaError, match="only fixed terms"):
        HeteroskedasticMixedModel(f, sleepstudy, dispformula="~ 1 + (1|Subject)")
    with pytest.raises(FormulaError, match="nothing"):
        HeteroskedasticMixedModel(f, sleepstudy, dispformula="~ 1 + nothing")
    m = HeteroskedasticMixedModel(f, sleepstudy, dispformula="~ 1")
    with pytest.raises(MixedModelsError, match="fit"):
        _ = m.beta
    with pytest.raises(MixedModelsError, match="logvar"):
        fitted_reference("geno_hlm").disp_coeftable("sd")
    with pytest.raises(MixedModelsError, match="no random-effects"):
        fitted_reference("geno_hlm").ranef()


def test_verbose_prints_evaluations(sleepstudy, capsys):
    HeteroskedasticMixedModel("Reaction ~ 1 + Days", sleepstudy, dispformula="~ 1 + Days").fit(
        verbose=True
    )
    assert capsys.readouterr().out.count("f: ") >= 3


def test_crossed_terms_with_constant_dispersion_equal_the_lmm():
    data = mm.datasets.load("penicillin")
    formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    het = HeteroskedasticMixedModel(formula, data, dispformula="~ 1").fit()
    lmm = mm.LinearMixedModel(formula, data).fit()
    np.testing.assert_allclose(het.objective, lmm.objective, rtol=1e-9)
    np.testing.assert_allclose(
        het.varcorr()["std. dev."], lmm.varcorr()["std. dev."][:2], rtol=1e-4
    )
    assert list(het.ranef()) == ["plate", "sample"]


def test_vector_term_with_dispersion_has_a_vanishing_gradient(sleepstudy):
    m = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1 + Days | Subject)", sleepstudy, dispformula="~ 1 + Days"
    ).fit()
    assert m.theta_names == ["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days"]
    grad = m.lik.evaluate(m.fitted_model.phi).gradient
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    homo = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1 + Days | Subject)", sleepstudy, dispformula="~ 1"
    ).fit()
    assert m.objective < homo.objective  # one more parameter cannot fit worse
    assert np.all(np.isfinite(m.stderror)) and np.all(np.isfinite(m.disp_stderror))


def test_singular_fit_ends_on_the_boundary():
    # dyestuff2 has no batch effect: lme4's ML fit is singular (θ = 0).
    data = mm.datasets.load("dyestuff2")
    het = HeteroskedasticMixedModel("Yield ~ 1 + (1 | Batch)", data, dispformula="~ 1").fit()
    lmm = mm.LinearMixedModel("Yield ~ 1 + (1 | Batch)", data).fit()
    assert het.theta[0] == 0.0 and lmm.theta[0] == 0.0
    np.testing.assert_allclose(het.objective, lmm.objective, rtol=1e-10)
    assert np.isnan(het.fitted_model.stderror[-1])  # no standard error on the bound
    assert np.all(np.isfinite(het.stderror)) and het.converged


def test_offset_in_the_mean_formula(sleepstudy):
    with_offset = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + offset(2 * Days) + (1 | Subject)",
        sleepstudy,
        dispformula="~ 1 + Days",
    ).fit()
    shifted = sleepstudy.assign(Reaction=sleepstudy["Reaction"] - 2 * sleepstudy["Days"])
    plain = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1 | Subject)", shifted, dispformula="~ 1 + Days"
    ).fit()
    np.testing.assert_allclose(with_offset.objective, plain.objective, rtol=1e-12)
    np.testing.assert_allclose(with_offset.beta, plain.beta, rtol=1e-9)
    np.testing.assert_allclose(
        with_offset.fitted(), plain.fitted() + 2 * sleepstudy["Days"], rtol=1e-9
    )


def test_a_dispformula_is_the_heteroskedastic_class():
    import mixedmodels as mm

    sleep = mm.datasets.load("sleepstudy")
    m = mm.HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", sleep, dispformula="~ 1 + Days"
    ).fit()
    assert isinstance(m, mm.MixedModel)
    assert m.objective == pytest.approx(1783.82375860569, rel=1e-6)  # glmmTMB, tests/variance/data
    hlm = mm.HeteroskedasticMixedModel("Reaction ~ 1 + Days", sleep, dispformula="~ 1 + Days").fit()
    assert np.isfinite(hlm.objective)
    with pytest.raises(mm.MixedModelsError, match="HeteroskedasticMixedModel"):
        mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", sleep, dispformula="~ 1")


def test_profile_intervals_re_optimise_the_dispersion_coefficients(fitted_reference):
    m = fitted_reference("sleepstudy_disp_ml")
    names, gamma, se = m.extra_parameters()
    assert names == [f"disp~{n}" for n in m.disp_names]
    np.testing.assert_array_equal(gamma, m.disp_coef)
    # nothing is profiled in objective_at_extra: at the estimates it is the fit's objective
    assert m.objective_at_extra(m.theta, m.beta, m.disp_coef) == pytest.approx(
        m.objective, rel=1e-12
    )
    assert m.objective_at_extra(m.theta, m.beta, m.disp_coef + 0.1) > m.objective
    table = m.confint(progress=False)
    wald = m.confint(method="wald")
    assert list(table.index) == list(wald.index)
    for name, est in zip([*m.coefnames, *names], [*m.beta, *gamma]):
        lo, hi = table.loc[name]
        assert lo < est < hi
        # for these well-determined parameters the likelihood is nearly quadratic
        assert hi - lo == pytest.approx(wald.loc[name, "upper"] - wald.loc[name, "lower"], rel=0.15)
    sd = table.iloc[0]
    assert 0 <= sd["lower"] < m.varcorr()["std. dev."].iloc[0] < sd["upper"]
    with pytest.raises(MixedModelsError, match="γ values"):
        m.objective_at_extra(m.theta, m.beta, m.disp_coef[:1])
