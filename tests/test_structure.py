"""From formula and data to model structure: lme4's θ order, invariances, and the checks on arguments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError, FormulaError
from mixedmodels.structure import build_structure, evaluate_expression, lme4_term_order


def crossed_data() -> pd.DataFrame:
    """Two grouping factors with 12 levels each and one with 6 (the lme4 comparison below used this)."""
    rng = np.random.default_rng(42)
    n = 240
    a, b, c = np.repeat(np.arange(12), 20), np.tile(np.arange(12), 20), np.tile(np.arange(6), 40)
    x = rng.normal(size=n)
    rng.choice([4, 6, 8], n)  # a column of the comparison data set, kept so that y is the same
    y = (
        1
        + 0.5 * x
        + rng.normal(size=12)[a] * 0.8
        + rng.normal(size=12)[b] * 0.5
        + rng.normal(size=6)[c] * 0.7
    )
    y = y + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b, "c": c})


@pytest.mark.parametrize(
    "nlevels, order",
    [
        ([12, 12], [0, 1]),
        ([12, 6], [0, 1]),
        ([6, 12], [1, 0]),
        ([6, 12, 12], [2, 1, 0]),
        ([12, 6, 12], [2, 0, 1]),
        ([12, 12, 6], [0, 1, 2]),
        ([3, 3, 3], [0, 1, 2]),
    ],
)
def test_lme4_term_order(nlevels, order):
    """mkReTrms: formula order when non-increasing, else rev(order(nl)), which reverses ties."""
    assert lme4_term_order(nlevels) == order


@pytest.mark.parametrize(
    "formula, theta",
    [
        ("y ~ x + (1|a) + (1|b)", {"a.(Intercept)": 0.5273133923, "b.(Intercept)": 1.1641066801}),
        ("y ~ x + (1|b) + (1|a)", {"b.(Intercept)": 1.1641066801, "a.(Intercept)": 0.5273133923}),
        (
            "y ~ x + (1|c) + (1|a) + (1|b)",
            {
                "b.(Intercept)": 0.5683235183,
                "a.(Intercept)": 0.5327021190,
                "c.(Intercept)": 1.0175031118,
            },
        ),
        (
            "y ~ x + (1|a) + (1|c) + (1+x|b)",
            {
                "b.(Intercept)": 0.5916137020,
                "b.x.(Intercept)": 0.1493928575,
                "b.x": 0.0,
                "a.(Intercept)": 0.5473304076,
                "c.(Intercept)": 0.9706558592,
            },
        ),
        (
            "y ~ x + (1|c) + (1|a) + (0 + x|a)",
            {"a.x": 0.0, "a.(Intercept)": 0.5066362, "c.(Intercept)": 1.0134584},
        ),
    ],
)
def test_theta_in_lme4_order_with_equal_numbers_of_levels(formula, theta):
    """getME(m, "theta") of lme4 1.1.31, lmer(REML = FALSE), on crossed_data()."""
    m = mm.LinearMixedModel(formula, crossed_data()).fit()
    assert m.theta_names == list(theta)
    np.testing.assert_allclose(m.theta, list(theta.values()), rtol=1e-4, atol=1e-4)


def test_row_order_invariance(sleepstudy):
    order = np.random.default_rng(5).permutation(len(sleepstudy))
    f = "Reaction ~ 1 + Days + (1 + Days|Subject)"
    a = mm.LinearMixedModel(f, sleepstudy).fit()
    b = mm.LinearMixedModel(f, sleepstudy.iloc[order]).fit()
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5)


def test_level_relabelling_invariance(sleepstudy):
    """Renaming (and so reordering) the levels of the grouping factor changes nothing."""
    labels = {s: f"s{(int(s) * 7919) % 1000:03d}" for s in sleepstudy["Subject"].cat.categories}
    renamed = sleepstudy.assign(Subject=sleepstudy["Subject"].astype(str).map(labels))
    f = "Reaction ~ 1 + Days + (1 + Days|Subject)"
    a, b = mm.LinearMixedModel(f, sleepstudy).fit(), mm.LinearMixedModel(f, renamed).fit()
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5)


def test_factor_in_fixed_and_random_parts(sleepstudy):
    """lme4 names the columns factor(x)<level>; (1|factor(g)) groups by g, labelled factor(g)."""
    data = sleepstudy.assign(
        Subject=sleepstudy["Subject"].astype(int), week=(sleepstudy["Days"] // 4).astype(int)
    )
    m = mm.LinearMixedModel("Reaction ~ factor(week) + (1|factor(Subject))", data).fit()
    ref = mm.LinearMixedModel(
        "Reaction ~ week + (1|Subject)", data.assign(week=data["week"].astype(str))
    ).fit()
    assert m.coefnames == ["(Intercept)", "factor(week)1", "factor(week)2"]
    assert m.theta_names == ["factor(Subject).(Intercept)"]
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)
    s = mm.LinearMixedModel("Reaction ~ 1 + (1 + as.factor(week)|Subject)", data)
    assert s.reterms[0].cnames == ["(Intercept)", "as.factor(week)1", "as.factor(week)2"]


def test_backticked_names_with_spaces(sleepstudy):
    """lme4 1.1.31 on the same renaming: coefficient `x y` back-quoted, group 'sub ject' not."""
    data = sleepstudy.rename(
        columns={"Reaction": "reaction time", "Subject": "sub ject", "Days": "x y"}
    )
    m = mm.LinearMixedModel("`reaction time` ~ 1 + `x y` + (1|`sub ject`)", data).fit()
    ref = mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", sleepstudy).fit()
    assert m.coefnames == ["(Intercept)", "`x y`"] and m.theta_names == ["sub ject.(Intercept)"]
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)


def test_non_ascii_and_function_named_columns(sleepstudy):
    data = sleepstudy.rename(columns={"Days": "Tage_ü", "Subject": "Sujet_é"}).assign(
        exp=sleepstudy["Days"]
    )
    ref = mm.LinearMixedModel("Reaction ~ 1 + Days + (1|Subject)", sleepstudy).fit()
    for f in ("Reaction ~ 1 + Tage_ü + (1|Sujet_é)", "Reaction ~ 1 + exp + (1|Sujet_é)"):
        assert mm.LinearMixedModel(f, data).fit().objective == pytest.approx(
            ref.objective, rel=1e-10
        )
    m = mm.LinearMixedModel("log(Reaction) ~ 1 + exp(exp / 10) + (1|Sujet_é)", data)
    np.testing.assert_allclose(m.structure.fe.X[:, 1], np.exp(sleepstudy["Days"] / 10))


def test_evaluate_expression_placeholders():
    frame = pd.DataFrame({"my.y": [1.0, 2.0, 4.0], "a b": [1.0, 1.0, 2.0], "exp": [0.0, 1.0, 2.0]})
    np.testing.assert_allclose(evaluate_expression("log(my.y)", frame), np.log([1, 2, 4]))
    np.testing.assert_allclose(evaluate_expression("`a b` * 2", frame), [2, 2, 4])
    np.testing.assert_allclose(evaluate_expression("exp(exp)", frame), np.exp([0, 1, 2]))
    with pytest.raises(DataError, match="complex-valued"):
        evaluate_expression("my.y * 1j", frame)
    with pytest.raises(DataError, match="magnitude"):
        evaluate_expression("my.y * 1e200", frame)


def test_covariance_must_be_a_mapping(sleepstudy):
    with pytest.raises(
        FormulaError, match="covariance= must map grouping-factor names to matrices.*ndarray"
    ):
        build_structure("Reaction ~ 1 + (1|Subject)", sleepstudy, covariance=np.eye(18))


@pytest.mark.parametrize(
    "weights, match",
    [
        (lambda d: pd.Categorical(d["Days"] % 3 + 1), "category"),
        (lambda d: (d["Days"] % 3 + 1).astype(str), "must be numbers"),
        (lambda d: d["Days"] + 1 + 0.5j, "complex-valued"),
        (lambda d: (d["Days"].to_numpy() + 1) * (1 + 0j), "complex-valued"),
    ],
)
def test_weights_must_be_real_numbers(sleepstudy, weights, match):
    w = weights(sleepstudy)
    with pytest.raises(DataError, match=match):
        build_structure("Reaction ~ 1 + (1|Subject)", sleepstudy, weights=w)
    with pytest.raises(DataError, match=f"weights column 'w'.*{match}|{match}"):
        build_structure("Reaction ~ 1 + (1|Subject)", sleepstudy.assign(w=w), weights="w")


def test_numbers_written_as_objects_are_weights(sleepstudy):
    w = (sleepstudy["Days"] % 3 + 1).astype(object)
    s = build_structure("Reaction ~ 1 + (1|Subject)", sleepstudy, weights=w)
    np.testing.assert_array_equal(s.weights, (sleepstudy["Days"] % 3 + 1).to_numpy(dtype=float))


@pytest.mark.parametrize(
    "formula, column, family",
    [
        ("y ~ 1 + Days + (1|Subject)", {"y": 1.0}, "bernoulli"),
        ("y ~ 1 + Days + (1|Subject)", {"y": 0}, "poisson"),
        ("cbind(s, f) ~ 1 + Days + (1|Subject)", {"s": 3, "f": 0}, "binomial"),
    ],
)
def test_constant_response_is_lme4s_error(sleepstudy, formula, column, family):
    """glmer: "Response is constant" (check.response.not.const = "stop")."""
    with pytest.raises(DataError, match="is constant"):
        mm.GeneralizedLinearMixedModel(formula, sleepstudy.assign(**column), family=family)


def test_contrasts_for_unused_columns_warn_as_r_does(sleepstudy):
    with pytest.warns(UserWarning, match="contrasts given for 'nope'.*ignored"):
        build_structure("Reaction ~ 1 + Days + (1|Subject)", sleepstudy, contrasts={"nope": "sum"})
    with pytest.raises(FormulaError, match="contrasts= must map column names"):
        build_structure("Reaction ~ 1 + Days + (1|Subject)", sleepstudy, contrasts=["sum"])


def test_complex_covariance_is_refused(sleepstudy):
    with pytest.raises(DataError, match="covariance for 'Subject' is complex-valued"):
        build_structure(
            "Reaction ~ 1 + (1|Subject)", sleepstudy, covariance={"Subject": np.eye(18) * (1 + 1j)}
        )


def test_terms_listed_in_lme4_order():
    """lme4 1.1.31's VarCorr for y ~ x + (1|c) + (1|a) + (1|b) lists b, a, c; (1|a) and (0+x|a) stay apart."""
    from mixedmodels.structure import lme4_blocks

    s = build_structure("y ~ x + (1|c) + (1|a) + (1|b)", crossed_data())
    assert [s.reterms[ri].name for ri, _ in lme4_blocks(s.reterms)] == ["b", "a", "c"]
    s = build_structure("y ~ x + (1|c) + (1|a) + (0 + x|a)", crossed_data())
    assert [(s.reterms[ri].name, bi) for ri, bi in lme4_blocks(s.reterms)] == [
        ("a", 1),
        ("a", 0),
        ("c", 0),
    ]
