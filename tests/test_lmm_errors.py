"""Bad input gives a clear MixedModelsError that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError, MixedModelsError

F = "Reaction ~ 1 + Days + (1 + Days | Subject)"


def raises(match, formula=F, data=None, exc=MixedModelsError, **kw):
    data = mm.datasets.load("sleepstudy") if data is None else data
    with pytest.raises(exc, match=match):
        mm.LinearMixedModel(formula, data, **kw).fit()


def test_unknown_fixed_column():
    raises("'Dayz'", "Reaction ~ 1 + Dayz + (1|Subject)", exc=FormulaError)


def test_unknown_grouping_column():
    raises("'Subj'", "Reaction ~ 1 + Days + (1|Subj)", exc=FormulaError)


def test_unknown_response_column():
    raises("Reactio", "Reactio ~ 1 + Days + (1|Subject)", exc=FormulaError)


def test_unknown_column_in_random_term():
    raises("'Dayz'", "Reaction ~ 1 + (1 + Dayz|Subject)", exc=FormulaError)


@pytest.mark.parametrize(
    "formula, match",
    [
        ("Reaction 1 + Days + (1|Subject)", "exactly one '~'"),
        ("~ 1 + Days + (1|Subject)", "no response"),
        ("Reaction ~ 1 + Days + (1|Subject", "unbalanced"),
        ("Reaction ~ 1 + Days + 1|Subject", "parentheses"),
        ("Reaction ~ 1 + Days + (|Subject)", "nothing before"),
        ("Reaction ~ 1 + Days + (1|)", "no grouping factor"),
        ("Reaction ~ 1 + Days +", "ends with an operator"),
    ],
)
def test_malformed_formula(formula, match):
    raises(match, formula, exc=FormulaError)


def test_formula_not_a_string():
    raises("must be a string", formula=42, exc=FormulaError)


def test_no_random_effects_term():
    raises("no random-effects term", "Reaction ~ 1 + Days", exc=FormulaError)


def test_non_numeric_response():
    raises("must be numeric", "Subject ~ 1 + Days + (1|Subject)", exc=DataError)


def test_text_response(sleepstudy):
    raises(
        "must be numeric",
        "txt ~ 1 + Days + (1|Subject)",
        data=sleepstudy.assign(txt="a"),
        exc=DataError,
    )


def test_constant_response(sleepstudy):
    raises(
        "is constant", "c ~ 1 + Days + (1|Subject)", data=sleepstudy.assign(c=3.0), exc=DataError
    )


def test_infinite_values(sleepstudy):
    df = sleepstudy.copy()
    df.loc[5, "Reaction"] = np.inf
    raises("'Reaction' has infinite", data=df, exc=DataError)


def test_one_level_grouping_factor(sleepstudy):
    raises("only 1 level", "Reaction ~ Days + (1|g)", data=sleepstudy.assign(g="a"), exc=DataError)


def test_as_many_levels_as_observations(sleepstudy):
    raises(
        "levels for 180 observations",
        "Reaction ~ Days + (1|obs)",
        data=sleepstudy.assign(obs=np.arange(180)),
        exc=DataError,
    )


def test_too_many_random_effects(sleepstudy):
    g = np.repeat(np.arange(60), 3)
    raises(
        "random effects for 180",
        "Reaction ~ Days + (1 + Days + I(Days**2)|g)",
        data=sleepstudy.assign(g=g),
        exc=DataError,
    )


def test_empty_data(sleepstudy):
    raises("no rows", data=sleepstudy.iloc[:0], exc=DataError)


def test_all_rows_missing(sleepstudy):
    raises("no complete rows", data=sleepstudy.assign(Reaction=np.nan), exc=DataError)


@pytest.mark.parametrize("data", [None, [1, 2, 3], {"Reaction": [1.0]}, np.zeros((3, 3))])
def test_data_not_a_dataframe(data):
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        mm.LinearMixedModel(F, data)


def test_negative_weights(sleepstudy):
    raises("must not be negative", weights=np.r_[-1.0, np.ones(179)], exc=DataError)


def test_weights_wrong_length():
    raises("one value per row", weights=np.ones(10), exc=DataError)


def test_weights_unknown_column():
    raises("weights column 'w'", weights="w", exc=DataError)


def test_unknown_optimizer(sleepstudy):
    m = mm.LinearMixedModel(F, sleepstudy)
    m.optsum.optimizer = "LN_NOSUCH"
    with pytest.raises(MixedModelsError, match="LN_NOSUCH"):
        m.fit()


def test_gradient_optimizer_is_named(sleepstudy):
    m = mm.LinearMixedModel(F, sleepstudy)
    m.optsum.optimizer = "LD_LBFGS"
    with pytest.raises(MixedModelsError, match="LD_LBFGS.*gradients"):
        m.fit()


def test_errors_are_value_errors():
    assert issubclass(MixedModelsError, ValueError)


def test_refit_with_text_is_a_data_error():
    ss = mm.datasets.load("sleepstudy")
    m = mm.LinearMixedModel(F, ss).fit()
    with pytest.raises(DataError, match="must be numbers"):
        m.refit(["a"] * m.nobs)
    g = mm.GeneralizedLinearMixedModel(
        "r ~ Days + (1|Subject)", ss.assign(r=(ss.Reaction > 300).astype(int)), family="bernoulli"
    ).fit()
    with pytest.raises(DataError, match="must be numbers"):
        g.refit([object()] * g.nobs)


def test_coeftable_component_is_part_of_the_contract():
    ss = mm.datasets.load("sleepstudy")
    m = mm.LinearMixedModel(F, ss).fit()
    assert m.coeftable(component="cond").equals(m.coeftable())
    with pytest.raises(MixedModelsError, match="component must be 'cond'.*'zi'"):
        m.coeftable(component="zi")


def test_lrt_names_an_argument_that_is_not_a_model():
    ss = mm.datasets.load("sleepstudy")
    m = mm.LinearMixedModel(F, ss, reml=False).fit()
    with pytest.raises(MixedModelsError, match="argument 2 .* is a str"):
        mm.lrt(m, "Reaction ~ 1 + (1|Subject)")
    with pytest.raises(MixedModelsError, match="argument 1 .* is a DataFrame"):
        mm.anova(ss, m)
