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


def test_labelled_covariates_are_aligned_to_the_phenotype_by_id():
    from mixedmodels.genetics.phenotypes import as_covariates

    ids = pd.Index(["a", "b", "c", "d"])
    X = pd.DataFrame({"age": [1.0, 2.0, 3.0, 5.0], "sex": [0.0, 1.0, 1.0, 0.0]}, index=ids)
    order = pd.Index(["c", "a", "d"])  # another order, and one individual not phenotyped
    values, names = as_covariates(X.loc[["d", "b", "a", "c"]], 3, order)
    np.testing.assert_array_equal(values, X.loc[order].to_numpy())
    assert names == ["age", "sex"]
    with pytest.raises(
        DataError, match="1 phenotyped individual\\(s\\) missing from the covariates X: 'e'"
    ):
        as_covariates(X, 3, pd.Index(["a", "b", "e"]))
    with pytest.raises(DataError, match="repeated sample IDs: 'a'"):
        as_covariates(X.set_axis(["a", "a", "b", "c"]), 3, pd.Index(["a", "b", "c"]))


def test_a_scan_with_shuffled_labelled_inputs_equals_the_aligned_one():
    from mixedmodels.genetics import kinship, scan

    rng = np.random.default_rng(2)
    n, m = 80, 30
    ids = [f"s{i}" for i in range(n)]
    G = pd.DataFrame(rng.binomial(2, 0.3, size=(n, m)).astype(float), index=ids)
    K = kinship(G)
    y = pd.Series(rng.normal(size=n), index=ids, name="y")
    X = pd.DataFrame({"age": rng.normal(size=n)}, index=ids)
    base = scan(G, y, X, K, progress=False)
    moved = scan(
        G, y.sample(frac=1, random_state=1), X.sample(frac=1, random_state=2), K, progress=False
    )
    a, b = pd.DataFrame(base), pd.DataFrame(moved)
    np.testing.assert_allclose(
        b.select_dtypes("number"), a.select_dtypes("number"), rtol=1e-8, atol=1e-12
    )
    with pytest.raises(DataError, match="chunk size must be a positive number of SNPs, not 'a'"):
        scan(G, y, X, K, chunk_size="a", progress=False)
