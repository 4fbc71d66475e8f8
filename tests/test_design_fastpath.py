"""The model matrix of a sum of plain columns, built without formulaic, is formulaic's.

:func:`mixedmodels.design.model_matrix` builds ``1 + x + f`` itself (numeric
columns, categoricals and text with treatment contrasts) and leaves the
formulaic spec for new data to be made on first use.  These tests compare
the matrix, the column names, the spec and predictions on new data with
formulaic's own, and check that everything else still goes through
formulaic.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import mixedmodels as mm
from mixedmodels import design

RNG = np.random.default_rng(11)
N = 40


def _frame() -> pd.DataFrame:
    levels = ["b", "a", "c", "Z", "é"]
    text = RNG.choice(levels, size=N)
    return pd.DataFrame(
        {
            "x": RNG.normal(size=N),
            "k": RNG.integers(-3, 9, size=N),
            "u8": RNG.integers(0, 5, size=N).astype(np.uint8),
            "f32": RNG.normal(size=N).astype(np.float32),
            "cat": pd.Categorical(text, categories=["c", "a", "b", "Z", "é"]),
            "ordered": pd.Categorical(RNG.choice(["lo", "mid", "hi"], size=N), ordered=True),
            "text": pd.Series(text, dtype="str"),
            "obj": pd.Series(list(text), dtype=object),
            "flag": RNG.random(N) > 0.5,
            "icat": pd.Categorical(RNG.integers(1, 4, size=N)),
        }
    )


def _formulaic(text: str, frame: pd.DataFrame):
    return design._parsed(text).get_model_matrix(frame, na_action="raise", output="numpy")


PLAIN = [
    "1",
    "x",
    "1 + x",
    "x + k + u8 + f32",
    "cat",
    "1 + cat + x",
    "x + cat + ordered",
    "text + k",
    "obj",
    "ordered + text + obj + x",
]


@pytest.mark.parametrize("rhs", PLAIN)
def test_plain_sums_match_formulaic(rhs):
    frame = _frame()
    built = design._plain_columns(rhs, frame)
    assert built is not None, rhs
    matrix, names, _ = built
    reference = _formulaic(rhs, frame)
    assert names == list(reference.model_spec.column_names)
    np.testing.assert_array_equal(matrix, np.asarray(reference, dtype=float))
    got = design.model_matrix(rhs, frame)
    assert list(got.spec.column_names) == names  # the pending spec, made on demand


@pytest.mark.parametrize(
    "rhs",
    [
        "0 + x",
        "x - 1",
        "x + x",
        "x:k",
        "x * cat",
        "log(x + 10)",
        "flag",  # booleans: formulaic's own coding
        "icat",  # non-text levels: formulaic names them
        "C(cat)",
        "1 + 1",
    ],
)
def test_other_right_sides_go_through_formulaic(rhs):
    assert design._plain_columns(rhs, _frame()) is None


def test_nullable_text_goes_through_formulaic():
    frame = pd.DataFrame({"t": pd.array(["a", "b", "a"], dtype="string[pyarrow]")})
    assert design._plain_columns("t", frame) is None


@pytest.mark.parametrize("dtype", ["str", "string[python]", "string[pyarrow]", object, "category"])
def test_text_columns_of_every_kind_fit_predict_and_pickle_alike(dtype):
    """Text of each pandas kind is a factor in the fit, in new data and after a pickle."""
    df = mm.datasets.load("sleepstudy")
    data = df.assign(
        phase=pd.Series(np.where(df["Days"] > 4, "late", "early")).astype(dtype),
        subject=df["Subject"].astype(str).astype(dtype),
    )
    m = mm.LinearMixedModel("Reaction ~ 1 + phase + (1|subject)", data).fit()
    reference = mm.LinearMixedModel(
        "Reaction ~ 1 + phase + (1|Subject)",
        df.assign(phase=np.where(df["Days"] > 4, "late", "early")),
    ).fit()
    assert m.coefnames == ["(Intercept)", "phaselate"]
    np.testing.assert_allclose(m.beta, reference.beta, rtol=1e-10)
    new = data.iloc[[0, 9, 10]].copy()
    new.loc[new.index[1], "phase"] = None
    expected = reference.predict(df.iloc[[0, 9, 10]].assign(phase=["early", "late", "early"]))
    got = m.predict(new)
    assert np.isnan(got.iloc[1])
    np.testing.assert_allclose(got.iloc[[0, 2]], expected.iloc[[0, 2]], rtol=1e-10)
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(again.predict(data.iloc[:5]), m.predict(data.iloc[:5]), rtol=1e-12)


def test_missing_values_and_single_levels_go_through_formulaic():
    frame = _frame()
    frame.loc[3, "x"] = np.nan
    frame.loc[5, "cat"] = np.nan
    assert design._plain_columns("x", frame) is None
    assert design._plain_columns("cat", frame) is None
    one = pd.DataFrame({"g": pd.Categorical(["a"] * 5), "t": ["q"] * 5})
    assert design._plain_columns("g", one) is None
    assert design._plain_columns("t", one) is None


def test_new_data_and_pickle_use_the_same_spec_as_formulaic():
    frame = _frame()
    rhs = "x + cat + text + k"
    fast = design.model_matrix(rhs, frame)
    new = _frame().iloc[:7]
    reference = _formulaic(rhs, frame).model_spec.get_model_matrix(new, na_action="raise")
    np.testing.assert_array_equal(fast.on(new), np.asarray(reference, dtype=float))
    again = pickle.loads(pickle.dumps(design.model_matrix(rhs, frame)))
    np.testing.assert_array_equal(again.on(new), fast.on(new))
    assert again.names == fast.names


def test_later_changes_to_the_data_do_not_reach_the_pending_spec():
    frame = _frame()
    fast = design.model_matrix("cat + text", frame)
    frame["cat"] = frame["cat"].cat.rename_categories(list("vwxyz"))
    frame["text"] = "other"
    assert list(fast.spec.column_names) == list(
        _formulaic("cat + text", _frame()).model_spec.column_names
    )


def test_a_fit_is_the_same_through_either_path():
    """Forcing formulaic for every matrix gives the same model, bit for bit."""
    df = mm.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"
    fast = mm.GeneralizedLinearMixedModel(formula, df, family="binomial").fit(fast=True)
    original = design._plain_columns
    design._plain_columns = lambda text, frame: None
    try:
        slow = mm.GeneralizedLinearMixedModel(formula, df, family="binomial").fit(fast=True)
    finally:
        design._plain_columns = original
    np.testing.assert_array_equal(fast.X, slow.X)
    assert fast.coefnames == slow.coefnames
    assert fast.objective == slow.objective
    np.testing.assert_array_equal(fast.predict(df.iloc[:9]), slow.predict(df.iloc[:9]))
