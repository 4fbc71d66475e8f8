"""The model frame: which data are accepted, in what form, and the message for those that are not."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import mixedmodels as mm
from mixedmodels.errors import DataError
from mixedmodels.modelframe import (
    check_dataframe,
    check_magnitude,
    grouping_factor,
    identifiers,
    model_frame,
    usable_column,
)

F = "Reaction ~ 1 + Days + (1|Subject)"


def fit(data, formula=F, **kw):
    return mm.LinearMixedModel(formula, data, **kw).fit()


# ---- foreign data frames ---------------------------------------------------------------
def test_pyarrow_table_is_converted(sleepstudy):
    table = pa.Table.from_pandas(sleepstudy)
    converted = check_dataframe(table)
    assert isinstance(converted, pd.DataFrame) and list(converted.columns) == list(
        sleepstudy.columns
    )
    assert fit(table).objective == pytest.approx(fit(sleepstudy).objective, rel=1e-10)


class InterchangeOnly:
    """A frame known only through the dataframe interchange protocol (as polars, vaex, ... offer it)."""

    def __init__(self, table):
        self._table = table

    def __dataframe__(self, nan_as_null=False, allow_copy=True):
        return self._table.__dataframe__(nan_as_null=nan_as_null, allow_copy=allow_copy)


class ArrowStreamOnly:
    """A frame known only through the Arrow PyCapsule stream interface."""

    def __init__(self, table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


@pytest.mark.parametrize("wrapper", [InterchangeOnly, ArrowStreamOnly])
def test_protocol_only_frames_are_converted(sleepstudy, wrapper):
    frame = check_dataframe(wrapper(pa.Table.from_pandas(sleepstudy)))
    assert list(frame.columns) == list(sleepstudy.columns)
    np.testing.assert_allclose(frame["Reaction"], sleepstudy["Reaction"])


def test_pyarrow_backed_pandas_fits_as_numpy_backed(sleepstudy):
    arrow = sleepstudy.astype({"Subject": str}).convert_dtypes(dtype_backend="pyarrow")
    assert all(isinstance(t, pd.ArrowDtype) for t in arrow.dtypes)
    m, ref = fit(arrow), fit(sleepstudy)
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)
    assert sorted(m.reterms[0].levels) == sorted(ref.reterms[0].levels)


def test_pyarrow_dictionary_column_keeps_its_level_order():
    codes = pd.Series(pd.Categorical(["b", "c", "b", "c"], categories=["c", "b", "a"]))
    arrow = codes.astype(pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string())))
    out = usable_column(arrow, "f")
    assert list(out.cat.categories) == ["c", "b"]  # category order kept, unused 'a' dropped


def test_arrow_and_nullable_missing_values_drop_rows(sleepstudy):
    arrow = sleepstudy.convert_dtypes(dtype_backend="pyarrow")
    arrow.loc[[3, 7], "Reaction"] = None
    nullable = sleepstudy.astype({"Days": "Int64"})
    nullable.loc[0, "Days"] = pd.NA
    with pytest.warns(UserWarning, match="2 row"):
        assert fit(arrow).nobs == 178
    with pytest.warns(UserWarning, match="1 row"):
        assert fit(nullable).nobs == 179


@pytest.mark.parametrize("data", [None, [1, 2], np.zeros((3, 3)), {"a": [1.0]}, "sleepstudy"])
def test_non_frames_are_refused_naming_the_type(data):
    with pytest.raises(DataError, match=f"got {type(data).__name__}"):
        check_dataframe(data)


# ---- columns the model cannot use -------------------------------------------------------
def test_duplicated_column_used_is_an_error(sleepstudy):
    dup = pd.concat([sleepstudy, sleepstudy[["Days"]]], axis=1)
    with pytest.raises(DataError, match="2 columns named 'Days'"):
        fit(dup)
    x = sleepstudy[["Days"]].rename(columns={"Days": "x"})
    assert (
        fit(pd.concat([sleepstudy, x, x], axis=1)).nobs == 180
    )  # duplicates the model does not use are fine


@pytest.mark.parametrize(
    "column, values, match",
    [
        ("Reaction", lambda d: d["Reaction"] + 2j, "complex-valued"),
        ("Days", lambda d: d["Days"] * (1 + 0j), "complex-valued"),
        ("Days", lambda d: pd.to_timedelta(d["Days"], unit="D"), "time differences.*Timedelta"),
        (
            "Days",
            lambda d: pd.Timestamp("2024-03-01") + pd.to_timedelta(d["Days"], unit="D"),
            "dates or times",
        ),
        (
            "Days",
            lambda d: pd.Series([1, "two"] * (len(d) // 2), dtype=object),
            r"several kinds \(int, str\)",
        ),
    ],
)
def test_unusable_dtypes_are_named(sleepstudy, column, values, match):
    bad = sleepstudy.assign(**{column: values(sleepstudy)})
    with pytest.raises(DataError, match=f"column '{column}'.*{match}|{match}.*'{column}'"):
        fit(bad)


def test_object_numbers_are_numbers(sleepstudy):
    as_objects = sleepstudy.assign(Days=sleepstudy["Days"].astype(object))
    assert fit(as_objects).coefnames == ["(Intercept)", "Days"]
    np.testing.assert_allclose(fit(as_objects).beta, fit(sleepstudy).beta, rtol=1e-10)


def test_user_frame_is_not_modified(sleepstudy):
    data = sleepstudy.astype({"Subject": str}).convert_dtypes(dtype_backend="pyarrow")
    data["f"] = pd.Categorical(
        np.where(sleepstudy["Days"] < 5, "b", "c"), categories=["a", "b", "c"]
    )
    before = data.copy()
    fit(data, "Reaction ~ f + (1|Subject)")
    pd.testing.assert_frame_equal(data, before)


# ---- values too large or small for double precision ------------------------------------------
@pytest.mark.parametrize("scale, advice", [(1e300, "divide by 1e"), (1e-300, "multiply by 1e")])
def test_extreme_magnitudes_are_errors_with_the_rescaling(sleepstudy, scale, advice):
    with pytest.raises(DataError, match=f"column 'Reaction' has values of magnitude.*{advice}"):
        fit(sleepstudy.assign(Reaction=sleepstudy["Reaction"] * scale))
    with pytest.raises(DataError, match="column 'Days'"):
        fit(sleepstudy.assign(Days=sleepstudy["Days"] * scale))


def test_offset_of_extreme_magnitude(sleepstudy):
    data = sleepstudy.assign(o=1e300 + sleepstudy["Days"])
    with pytest.raises(DataError, match="'o'"):
        fit(data, "Reaction ~ 1 + Days + offset(o) + (1|Subject)")


def test_check_magnitude_limits():
    check_magnitude(np.array([0.0, 1e149, -3.0]), "x")
    check_magnitude(np.zeros(3), "x")  # all zero is a value problem elsewhere, not a scale one
    for bad in ([1e151], [-1e-151, 0.0]):
        with pytest.raises(DataError, match="x has values of magnitude"):
            check_magnitude(np.array(bad), "x")


# ---- unused levels (lme4's drop.unused.levels) -------------------------------------------------
def test_unused_levels_dropped_after_incomplete_rows(sleepstudy):
    """The baseline is the first level that has complete rows; the parameterisation is lme4's."""
    f = np.where(sleepstudy["Days"] < 5, "b", "c").astype(object)
    f[sleepstudy["Days"] == 9] = "a"  # 'a' only where the response is missing
    data = sleepstudy.assign(f=pd.Categorical(f, categories=["a", "b", "c"]))
    data.loc[data["Days"] == 9, "Reaction"] = np.nan
    with pytest.warns(UserWarning, match="18 row"):
        m = fit(data, "Reaction ~ f + (1|Subject)")
    assert m.coefnames == ["(Intercept)", "fc"] and m.structure.fe.dropped == []
    complete = data.dropna().assign(
        f=lambda d: d["f"].astype(str)
    )  # the same model without the empty level
    assert m.objective == pytest.approx(
        fit(complete, "Reaction ~ f + (1|Subject)").objective, rel=1e-10
    )


def test_unused_grouping_levels_dropped(sleepstudy):
    subjects = list(sleepstudy["Subject"].cat.categories) + ["nobody"]
    data = sleepstudy.assign(
        Subject=pd.Categorical(sleepstudy["Subject"].astype(str), categories=subjects[::-1])
    )
    m = fit(data)
    assert m.reterms[0].nlevels == 18 and "nobody" not in m.reterms[0].levels


def test_prediction_on_new_data_after_dropping_levels(sleepstudy):
    data = sleepstudy.assign(
        f=pd.Categorical(np.where(sleepstudy["Days"] < 5, "b", "c"), categories=["a", "b", "c"])
    )
    m = fit(data, "Reaction ~ f + (1|Subject)")
    np.testing.assert_allclose(
        np.asarray(m.predict(data.iloc[::-1])), np.asarray(m.predict())[::-1], rtol=1e-10
    )


# ---- grouping factors and names ----------------------------------------------------------------
def test_interaction_levels_present_only():
    frame = pd.DataFrame({"g": ["a", "a", "b", "b"], "h": ["x", "y", "x", "x"]})
    codes, labels = grouping_factor(frame, ("g", "h"))
    assert labels == ["a:x", "a:y", "b:x"] and codes.tolist() == [0, 1, 2, 2]


def test_identifiers_any_script_and_backticks():
    assert identifiers("log(Tage_ü) + `reaction time` + my.var:x2") == [
        "log",
        "Tage_ü",
        "reaction time",
        "my.var",
        "x2",
    ]
    assert identifiers("Größe + ñ") == ["Größe", "ñ"]


def test_model_frame_keeps_row_positions(sleepstudy):
    data = sleepstudy.assign(Reaction=sleepstudy["Reaction"].where(sleepstudy.index % 10 != 0))
    with pytest.warns(UserWarning, match="18 row"):
        mf = model_frame(data, ["Reaction", "Days", "Subject"])
    assert mf.nobs == 162 and (mf.rows % 10 != 0).all() and mf.n_dropped == 18


def test_object_booleans_are_logical(sleepstudy):
    late = pd.Series(list(sleepstudy["Days"] > 4), dtype=object)
    late[0] = None
    with pytest.warns(UserWarning, match="1 row"):
        m = fit(sleepstudy.assign(late=late), "Reaction ~ 1 + late + (1|Subject)")
    assert m.coefnames == ["(Intercept)", "lateTRUE"]


def test_single_unusable_kind_is_named(sleepstudy):
    with pytest.raises(DataError, match="column 'b' holds dict values"):
        fit(sleepstudy.assign(b=[{"a": 1}] * len(sleepstudy)), "Reaction ~ 1 + b + (1|Subject)")


# ---- the one-pass frame against pandas' own operations ------------------------------------
def _reference_frame(data: pd.DataFrame, columns: list[str]):
    """The model frame by whole-frame pandas operations (the definition the fast path must match)."""
    frame = data.loc[:, columns].copy().reset_index(drop=True)
    complete = ~frame.isna().any(axis=1).to_numpy()
    frame = frame.loc[complete].reset_index(drop=True)
    return pd.DataFrame({c: usable_column(frame[c], c) for c in frame.columns}), complete


@pytest.mark.parametrize("seed", range(6))
def test_model_frame_matches_whole_frame_pandas(seed):
    """Missing values of every kind, unused categories, nullable and text columns, a shuffled index."""
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    cats = pd.Categorical(rng.choice(["a", "b", "c"], n), categories=["z", "a", "b", "c"])
    cats[rng.random(n) < 0.1] = np.nan
    text = rng.choice(["p", "q"], n).astype(object)
    text[rng.random(n) < 0.1] = None
    counts = pd.array(rng.integers(0, 5, n), dtype="Int64")
    counts[rng.random(n) < 0.1] = pd.NA
    data = pd.DataFrame(
        {"x": x, "g": cats, "t": text, "k": counts, "b": rng.random(n) < 0.5, "i": np.arange(n)},
        index=rng.permutation(n) + 100,
    )
    columns = ["g", "x", "t", "k", "b", "i"][: 3 + seed % 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = model_frame(data, columns)
    expected, complete = _reference_frame(data, columns)
    pd.testing.assert_frame_equal(mf.frame, expected, check_dtype=False)
    for c in columns:
        assert str(mf.frame[c].dtype) == str(expected[c].dtype) or c == "t"
    np.testing.assert_array_equal(mf.rows, np.flatnonzero(complete))
    assert mf.n_dropped == int((~complete).sum())
    if "g" in columns:
        assert list(mf.frame["g"].cat.categories) == sorted(set(mf.frame["g"]))
