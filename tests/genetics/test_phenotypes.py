"""Reading phenotype tables and building covariate designs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.genetics import covariate_matrix, read_phenotypes
from mixedmodels.genetics.phenotypes import as_phenotypes


def test_read_csv_and_whitespace(tmp_path):
    (tmp_path / "p.csv").write_text("iid,y\n001,1.5\n002,2.5\n")
    (tmp_path / "p.txt").write_text("iid y\n001 1.5\n002 2.5\n")
    for name in ("p.csv", "p.txt"):
        table = read_phenotypes(tmp_path / name)
        assert table["iid"].tolist() == ["001", "002"]  # ids stay text, zeros kept
    with pytest.raises(DataError, match="no column 'IID'"):
        read_phenotypes(tmp_path / "p.csv", iid_column="IID")
    with pytest.raises(DataError, match="not found"):
        read_phenotypes(tmp_path / "none.csv")


def test_covariate_matrix_codes_text_columns():
    frame = pd.DataFrame({"age": [30, 40, 50], "site": ["b", "a", "c"]})
    X = covariate_matrix(frame, ["age", "site"])
    assert list(X.columns) == ["(Intercept)", "age", "siteb", "sitec"]
    np.testing.assert_array_equal(X["sitec"], [0, 0, 1])
    with pytest.raises(DataError, match="'height' not found"):
        covariate_matrix(frame, ["height"])
    with pytest.raises(DataError, match="'age' has 1 missing"):
        covariate_matrix(frame.assign(age=[1.0, np.nan, 2.0]), ["age"])


def test_phenotype_shapes_and_names():
    one = as_phenotypes(pd.Series([1.0, 2.0, 4.0], name="bmi", index=["a", "b", "c"]))
    assert one.one_d and one.names == ["bmi"] and list(one.index) == ["a", "b", "c"]
    two = as_phenotypes(np.array([[1.0, 2.0], [3.0, 1.0]]))
    assert not two.one_d and two.names == ["y0", "y1"] and two.index is None
    with pytest.raises(DataError, match="must be numeric"):
        as_phenotypes(["a", "b"])
