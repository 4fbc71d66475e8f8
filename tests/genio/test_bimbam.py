"""BIMBAM mean-genotype files written from the bundled PLINK panel and read back; bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets
from mixedmodels.errors import DataError
from mixedmodels.genetics import read_bimbam, read_plink, scan

from .bimbam_writer import write_bimbam_panel


@pytest.fixture(scope="module")
def plink():
    return read_plink(datasets.genetics_path() / "geno")


@pytest.fixture(scope="module")
def bimbam_files(tmp_path_factory, plink):
    return write_bimbam_panel(plink, tmp_path_factory.mktemp("bimbam"))


def test_dosages_and_annotation_equal_the_plink_panel(bimbam_files, plink):
    g = read_bimbam(bimbam_files / "geno.txt", samples=bimbam_files / "ids.txt",
                    annotation=bimbam_files / "anno.txt")  # fmt: skip
    ref = plink.read()
    G = g.read(0, g.n_snps)
    assert G.shape == ref.shape and list(g.iid) == list(plink.iid)
    np.testing.assert_array_equal(np.isnan(G), np.isnan(ref))
    np.testing.assert_array_equal(G[~np.isnan(G)], ref[~np.isnan(ref)])
    table = g.snp_table()
    pd.testing.assert_frame_equal(
        table, plink.snp_table()[["snp", "chrom", "pos"]].astype(table.dtypes.to_dict())
    )


def test_scan_on_bimbam_equals_scan_on_plink(bimbam_files, plink):
    y = pd.read_csv(datasets.genetics_path() / "geno_pheno.csv", dtype={"iid": str})
    y = y.set_index("iid")["pheno1"].reindex(plink.iid).dropna()
    g = read_bimbam(bimbam_files / "geno.txt", samples=list(plink.iid),
                    annotation=bimbam_files / "anno.txt")  # fmt: skip
    a = scan(plink[:150], y, progress=False)
    b = scan(g[:150], y, progress=False)
    np.testing.assert_allclose(b["lrt"], a["lrt"], rtol=1e-9, atol=1e-9)


def test_whitespace_separated_and_unannotated(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("rs1 A T 0 1 2\nrs2\tC\tG\t0.5\tNA\t1.5\n")
    g = read_bimbam(path)
    np.testing.assert_array_equal(g.read(0, 2), [[0, 0.5], [1, np.nan], [2, 1.5]])
    assert list(g.snp_table()["chrom"]) == ["0", "0"] and list(g.snp_table()["pos"]) == [1, 2]
    assert g.iid is None


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("rs1, A, T, 0, 1, 2\nrs2, A, T, 0, 1\n", {}, "'rs2' have fewer dosages"),
        ("rs1, A, T, 0, x, 2\n", {}, "non-numeric dosage.*'rs1'"),
        ("rs1, A, T, 0, 3, 2\n", {}, r"outside \[0, 2\].*'rs1'"),
        ("rs1, A, T\n", {}, "needs 'snp, allele, allele, dosages"),
        ("rs1, A, T, 0, 1, 2\nrs1, A, T, 0, 1, 2\n", {}, "repeated SNP names 'rs1'"),
        ("rs1, A, T, 0, 1, 2\n", {"samples": ["a", "b"]}, "3 dosage columns but 2 sample IDs"),
        ("rs1, A, T, 0, 1, 2\n", {"samples": ["a", "a", "b"]}, "repeated sample IDs"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, kwargs, message):
    path = tmp_path / "g.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_bimbam(path, **kwargs)


def test_missing_files_and_annotation_gaps(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_bimbam(tmp_path / "absent.txt")
    path = tmp_path / "g.txt"
    path.write_text("rs1, A, T, 0, 1\nrs2, A, T, 1, 1\n")
    (tmp_path / "a.txt").write_text("rs1, 100, 1\n")
    with pytest.raises(DataError, match="does not annotate SNP.*'rs2'"):
        read_bimbam(path, annotation=tmp_path / "a.txt")
