"""Formula parsing, random-term expansion and column naming."""

from __future__ import annotations

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.design import lme4_name
from mixedmodels.errors import FormulaError
from mixedmodels.formula import parse_formula


def terms(formula):
    return [(t.expr, t.factors, t.group_name) for t in parse_formula(formula).random]


def test_split_fixed_and_random():
    p = parse_formula("y ~ 1 + x + (1 + x | g) + (1 | h)")
    assert p.response == "y" and p.fixed == "1 + x"
    assert terms("y ~ 1 + x + (1 + x | g) + (1 | h)") == [
        ("1 + x", ("g",), "g"),
        ("1", ("h",), "h"),
    ]


def test_double_bar_splits_terms():
    assert terms("y ~ (1 + x || g)") == [("1", ("g",), "g"), ("0 + x", ("g",), "g")]
    assert terms("y ~ (x || g)") == [("1", ("g",), "g"), ("0 + x", ("g",), "g")]
    assert terms("y ~ (0 + x + z || g)") == [("0 + x", ("g",), "g"), ("0 + z", ("g",), "g")]


def test_nesting_and_interaction():
    assert terms("y ~ (1 | g/h)") == [("1", ("g",), "g"), ("1", ("h", "g"), "h:g")]
    assert terms("y ~ (1 | g:h)") == [("1", ("g", "h"), "g:h")]


def test_offsets_and_r_powers():
    p = parse_formula("y ~ x + I(x^2) + offset(log(n)) + (1|g)")
    assert p.fixed == "x + I(x**2)" and p.offsets == ("log(n)",)


def test_intercept_only_fixed_part():
    assert parse_formula("y ~ (1|g)").fixed == "1"
    assert parse_formula("y ~ 0 + (1|g)").fixed == "0"


@pytest.mark.parametrize(
    "formulaic, lme4",
    [
        ("Intercept", "(Intercept)"),
        ("period[T.2]", "period2"),
        ("x[a]", "xa"),
        ("btype[T.scold]:situ[T.self]", "btypescold:situself"),
        ("I(x ** 2)", "I(x^2)"),
        ("log(x ** 2 / 3)", "log(x^2/3)"),
    ],
)
def test_lme4_names(formulaic, lme4):
    assert lme4_name(formulaic) == lme4


def test_factor_inside_bar_and_functions(sleepstudy):
    machines = mm.datasets.load("machines")
    m = mm.LinearMixedModel("score ~ Machine + (0 + Machine|Worker)", machines).fit()
    assert m.reterms[0].cnames == ["MachineA", "MachineB", "MachineC"] and len(m.theta) == 6
    m = mm.LinearMixedModel("log(Reaction) ~ 1 + Days + I(Days**2) + (1|Subject)", sleepstudy).fit()
    assert m.coefnames == ["(Intercept)", "Days", "I(Days^2)"]  # as lme4
    np.testing.assert_allclose(m.y, np.log(sleepstudy["Reaction"]))


def test_several_terms_on_one_factor_are_amalgamated(sleepstudy):
    m = mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)", sleepstudy
    ).fit()
    assert len(m.reterms) == 1 and m.reterms[0].k == 2
    assert m.theta_names == ["Subject.(Intercept)", "Subject.Days"]
    assert list(m.varcorr(form="long")["grp"]) == ["Subject", "Subject.1", "Residual"]


def test_contrasts_override():
    machines = mm.datasets.load("machines")
    m = mm.LinearMixedModel(
        "score ~ Machine + (1|Worker)", machines, contrasts={"Machine": "sum"}
    ).fit()
    X = m.structure.fe.X
    assert X[:, 1:].sum() == pytest.approx(0.0)  # balanced design: sum contrasts add to zero
    with pytest.raises(mm.FormulaError, match="unknown contrasts 'nope'"):
        mm.LinearMixedModel("score ~ Machine + (1|Worker)", machines, contrasts={"Machine": "nope"})


def test_rank_deficient_columns_dropped_with_warning(sleepstudy):
    df = sleepstudy.assign(Days2=2 * sleepstudy["Days"])
    with pytest.warns(UserWarning, match="dropping aliased column.*Days2"):
        m = mm.LinearMixedModel("Reaction ~ 1 + Days + Days2 + (1|Subject)", df).fit()
    assert m.rank == 2 and m.coefnames == ["(Intercept)", "Days"]
    assert m.structure.fe.dropped == ["Days2"]


def test_factor_and_backquoted_grouping_factors():
    """(1|factor(g)) groups by column g (lme4 1.1.31 itself cannot evaluate it); the label keeps factor()."""
    assert terms("y ~ (1|factor(g))") == [("1", ("g",), "factor(g)")]
    assert terms("y ~ (1|as.factor(g))") == [("1", ("g",), "as.factor(g)")]
    assert terms("y ~ (1|`sub ject`)") == [("1", ("sub ject",), "sub ject")]
    assert terms("y ~ (1 + factor(x)|g)") == [("1 + factor(x)", ("g",), "g")]


def test_non_ascii_names():
    assert terms("Reaktion ~ Tage_ü + (1|Sujet_é/Größe)") == [
        ("1", ("Sujet_é",), "Sujet_é"),
        ("1", ("Größe", "Sujet_é"), "Größe:Sujet_é"),
    ]


@pytest.mark.parametrize("formula", ["y ~ (1|g + h)", "y ~ (1|log(g))", "y ~ (1|2g)"])
def test_grouping_must_be_columns(formula):
    with pytest.raises(mm.FormulaError, match="must be a column"):
        parse_formula(formula)


def test_dot_is_refused_with_what_to_do():
    with pytest.raises(mm.FormulaError, match=r"'\.' \(all other columns\) is not supported"):
        parse_formula("y ~ . + (1|g)")


@pytest.mark.parametrize(
    "formula", ["y ~ x * + (1|g)", "y ~ (1|g) + x*", "y ~ x:", "y ~ / x + (1|g)"]
)
def test_dangling_operators(formula):
    with pytest.raises(mm.FormulaError, match="operator"):
        parse_formula(formula)


def test_r_powers_inside_calls_only():
    """^ is arithmetic inside any call (log(x^2)), the crossing operator outside ((a + b)^2)."""
    p = parse_formula("log(y^2) ~ log(x^2) + I(x^2/3) + (a + b)^2 + (1 + z^2|g)")
    assert p.response == "log(y**2)" and p.fixed == "log(x**2) + I(x**2/3) + (a + b)^2"
    assert p.random[0].expr == "1 + z^2"


def test_expression_names_as_r_deparses_them(sleepstudy):
    """fixef names of lme4 1.1.31 for the same terms."""
    m = mm.LinearMixedModel(
        "Reaction ~ I(Days*2) + log(Days^2 + 1) + I(Days > 2) + exp(Days/10) + (1|Subject)",
        sleepstudy,
    )
    assert m.structure.fe.design.names == [
        "(Intercept)",
        "I(Days * 2)",
        "log(Days^2 + 1)",
        "I(Days > 2)TRUE",
        "exp(Days/10)",
    ]


def test_redundant_parentheses_around_a_random_term_are_lme4s():
    # lme4's findbars looks through extra parentheses: ((1|Subject)) is (1|Subject)
    plain = parse_formula("Reaction ~ Days + (1|Subject)").random
    for extra in ("((1|Subject))", "( ( 1 | Subject ) )", "(((1|Subject)))"):
        got = parse_formula(f"Reaction ~ Days + {extra}").random
        assert [(t.expr, t.factors) for t in got] == [(t.expr, t.factors) for t in plain]
    with pytest.raises(FormulaError, match="must be in parentheses"):
        parse_formula("Reaction ~ Days + 1|Subject")


@pytest.mark.parametrize("spelling", ['"sum"', "'contr.sum'", 'contrasts="sum"', "contr.sum"])
def test_contrasts_named_by_a_string_inside_C(spelling):
    data = mm.datasets.load("machines")
    base = mm.LinearMixedModel(
        "score ~ Machine + (1|Worker)", data, contrasts={"Machine": "sum"}
    ).fit()
    m = mm.LinearMixedModel(f"score ~ C(Machine, {spelling}) + (1|Worker)", data).fit()
    np.testing.assert_allclose(m.beta, base.beta, rtol=1e-8)
    assert m.objective == pytest.approx(base.objective, rel=1e-12)


def test_unknown_contrasts_inside_C_are_named():
    with pytest.raises(FormulaError, match="unknown contrasts 'zzz'"):
        mm.LinearMixedModel('score ~ C(Machine, "zzz") + (1|Worker)', mm.datasets.load("machines"))
