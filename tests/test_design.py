"""Model matrices through formulaic: R's factor(), R's column names, and rebuilding on new data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.design import lme4_name, model_matrix, r_name, r_to_formulaic
from mixedmodels.errors import DataError, FormulaError


@pytest.fixture
def frame():
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "cyl": rng.choice([4, 6, 8], n),
            "x y": rng.normal(size=n),
            "Tage_ü": rng.normal(size=n),
            "exp": rng.uniform(1, 2, n),
            "g": pd.Categorical(rng.choice(["p", "q", "r"], n), categories=["r", "q", "p"]),
        }
    )


@pytest.mark.parametrize(
    "rhs, names",
    [
        ("1 + factor(cyl)", ["(Intercept)", "factor(cyl)6", "factor(cyl)8"]),
        ("1 + as.factor(cyl)", ["(Intercept)", "as.factor(cyl)6", "as.factor(cyl)8"]),
        ("0 + factor(cyl)", ["factor(cyl)4", "factor(cyl)6", "factor(cyl)8"]),
        ("1 + `x y`", ["(Intercept)", "`x y`"]),
        ("1 + Tage_ü", ["(Intercept)", "Tage_ü"]),
        ("1 + exp + log(exp)", ["(Intercept)", "exp", "log(exp)"]),
        ("1 + g", ["(Intercept)", "gq", "gp"]),
    ],
)
def test_columns_named_as_lme4_names_them(frame, rhs, names):
    """Names checked against lme4 1.1.31 (model.matrix) on the same kinds of formula."""
    assert model_matrix(rhs, frame).names == names


def test_factor_is_categorical_with_treatment_contrasts(frame):
    X = model_matrix("1 + factor(cyl)", frame).matrix
    np.testing.assert_array_equal(X[:, 1], (frame["cyl"] == 6).astype(float))
    np.testing.assert_array_equal(X[:, 2], (frame["cyl"] == 8).astype(float))


def test_design_on_new_data_uses_the_learnt_levels(frame):
    design = model_matrix("1 + factor(cyl) + g + x", frame)
    np.testing.assert_allclose(design.on(frame), design.matrix)
    subset = frame[frame["cyl"] == 6].iloc[:3]  # one level of cyl only: the columns must stay
    np.testing.assert_allclose(design.on(subset), design.matrix[(frame["cyl"] == 6).to_numpy()][:3])


def test_row_order_invariance(frame):
    order = np.random.default_rng(0).permutation(len(frame))
    a = model_matrix("1 + factor(cyl) * x + g", frame)
    b = model_matrix("1 + factor(cyl) * x + g", frame.iloc[order].reset_index(drop=True))
    assert a.names == b.names
    np.testing.assert_allclose(a.matrix[order], b.matrix)


def test_r_names():
    assert r_name("x") == "x" and r_name("my.var") == "my.var" and r_name("Größe") == "Größe"
    assert r_name("x y") == "`x y`" and r_name("_x") == "`_x`" and r_name(".2x") == "`.2x`"
    assert r_name("log(x y)") == "log(x y)"
    assert lme4_name("x y[T.b]:z") == "`x y`b:z"
    assert r_to_formulaic("as.factor(a) + has.factor(b)") == "as_factor(a) + has.factor(b)"


def test_overflowing_column_of_the_matrix_is_named(frame):
    with pytest.raises(DataError, match=r"column 'I\(x \* 1e\+200\)'.*magnitude"):
        model_matrix("1 + I(x * 1e200)", frame)
    with pytest.raises(DataError, match="non-finite"):
        model_matrix("1 + exp(x * 1000)", frame)


def test_missing_column_is_a_formula_error(frame):
    with pytest.raises(FormulaError, match="column 'nope' is not in the data"):
        model_matrix("1 + nope", frame)


def test_design_pickles_and_rebuilds_on_new_data(frame):
    import pickle

    design = model_matrix("1 + factor(cyl) + np.log(exp) + exp(x) + g", frame)
    loaded = pickle.loads(pickle.dumps(design))
    assert loaded.context["np"] is np and loaded.names == design.names
    np.testing.assert_allclose(loaded.on(frame.iloc[:7]), design.matrix[:7])


def test_fitted_model_pickles(sleepstudy):
    import pickle

    import mixedmodels as mm

    m = mm.LinearMixedModel("Reaction ~ 1 + factor(Days > 4) + (1|Subject)", sleepstudy).fit()
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(
        np.asarray(again.predict(sleepstudy)), np.asarray(m.predict(sleepstudy))
    )


def test_logical_columns_named_as_r(frame):
    """lme4 1.1.31: fixef names lateTRUE and factor(Days > 4)TRUE; a text column keeps 'True'."""
    data = frame.assign(late=frame["x"] > 0, word=np.where(frame["x"] > 0.5, "True", "False"))
    assert model_matrix("1 + late + late:x", data).names == [
        "(Intercept)",
        "lateTRUE",
        "lateTRUE:x",
    ]
    assert model_matrix("1 + factor(x > 0)", data).names == ["(Intercept)", "factor(x > 0)TRUE"]
    assert model_matrix("1 + word", data).names == ["(Intercept)", "wordTrue"]


@pytest.mark.parametrize(
    "rhs", ["1 + x", "1 + g", "0 + g + x", "1 + g * x", "1 + g:h + np.log(w)", "1 + h + x:h"]
)
def test_model_matrix_matches_formulaic_data_frame(rhs):
    """The numpy output used for X has formulaic's pandas columns and values; new data use the spec."""
    import formulaic

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=30),
            "w": rng.uniform(1, 2, 30),
            "g": pd.Categorical(rng.choice(["a", "b", "c"], 30)),
            "h": rng.choice(["u", "v"], 30),
        }
    )
    design = model_matrix(rhs, frame)
    reference = formulaic.Formula(rhs).get_model_matrix(frame, context={"np": np})
    np.testing.assert_array_equal(design.matrix, np.asarray(reference, dtype=float))
    assert list(design.spec.column_names) == list(reference.columns)
    new = frame.iloc[[4, 0, 7]].reset_index(drop=True)
    np.testing.assert_array_equal(design.on(new), design.matrix[[4, 0, 7]])
