"""BGEN files written from the bundled PLINK panel and read back; the errors of bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets
from mixedmodels.errors import DataError
from mixedmodels.genetics import read_bgen, read_plink, scan

from .bgen_writer import write_bgen, write_sample_file

pytest.importorskip("cbgen")


@pytest.fixture(scope="module")
def plink():
    return read_plink(datasets.genetics_path() / "geno")


def _write(path, G, table, samples=None, **kwargs):
    write_bgen(
        path, G, snp=list(table["snp"]), chrom=list(table["chrom"]), pos=list(table["pos"]),
        alleles=list(zip(table["allele_1"], table["allele_2"])), samples=samples, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bgen_files(tmp_path_factory, plink):
    """The panel as one BGEN file per chromosome (IDs in a .sample file) and as one file."""
    folder = tmp_path_factory.mktemp("bgen")
    G, table = plink.read(), plink.snp_table()
    for c in ("1", "2", "3"):
        rows = (table["chrom"] == c).to_numpy()
        _write(folder / f"chr{c}.bgen", G[:, rows], table[rows])
    write_sample_file(folder / "panel.sample", list(plink.iid))
    _write(folder / "all.bgen", G, table, samples=list(plink.iid), bits=8)
    return folder


def test_dosages_equal_the_plink_panel(bgen_files, plink):
    for source in (
        read_bgen(bgen_files / "chr*.bgen", samples=bgen_files / "panel.sample"),
        read_bgen(bgen_files / "all.bgen"),
    ):
        assert source.n_samples == plink.n_samples and source.n_snps == plink.n_snps
        assert list(source.iid) == list(plink.iid)
        G = source.read(0, source.n_snps)
        ref = plink.read()
        np.testing.assert_array_equal(np.isnan(G), np.isnan(ref))
        assert np.nanmax(np.abs(G - ref)) < 1e-6
        pd.testing.assert_frame_equal(source.snp_table(), plink.snp_table())


def test_fractional_dosages_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    G = rng.uniform(0, 2, size=(7, 5))
    G[2, 3] = np.nan
    table = pd.DataFrame({"snp": list("abcde"), "chrom": "1", "pos": np.arange(1, 6),
                          "allele_1": "A", "allele_2": "C"})  # fmt: skip
    _write(tmp_path / "f.bgen", G, table, bits=32)
    back = read_bgen(tmp_path / "f.bgen").read()
    assert np.isnan(back[2, 3])
    assert np.nanmax(np.abs(back - G)) < 1e-6


def test_scan_on_bgen_equals_scan_on_plink(bgen_files, plink):
    y = pd.read_csv(datasets.genetics_path() / "geno_pheno.csv", dtype={"iid": str})
    y = y.set_index("iid")["pheno1"].reindex(plink.iid).dropna()
    bgen = read_bgen(bgen_files / "chr*.bgen", samples=bgen_files / "panel.sample")
    a = scan(plink[:200], y, progress=False)
    b = scan(bgen[:200], y, progress=False)
    np.testing.assert_allclose(b["lrt"], a["lrt"], rtol=1e-9, atol=1e-9)
    loco_a = scan(plink[::10], y, loco=True, min_loco_snps=50, progress=False)
    loco_b = scan(bgen[::10], y, loco=True, min_loco_snps=50, progress=False)
    np.testing.assert_allclose(loco_b["p_lrt"], loco_a["p_lrt"], rtol=1e-8)


def _tiny(path, **kwargs):
    table = pd.DataFrame({"snp": ["a"], "chrom": ["1"], "pos": [5], "allele_1": ["A"],
                          "allele_2": ["G"]})  # fmt: skip
    _write(path, np.array([[0.0], [1.0], [2.0]]), table, **kwargs)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (3 << 2 | 1, "layout 3 with compression zlib"),
        (2 << 2 | 3, "layout 2 with compression unknown \\(3\\)"),
        (1 << 2 | 2, "layout 1 with compression zstd"),
        (2 << 2, "layout 2 with compression none"),
    ],  # fmt: skip
)
def test_unsupported_layout_or_compression_is_named(tmp_path, flags, message):
    _tiny(tmp_path / "bad.bgen", flags_override=flags)
    with pytest.raises(DataError, match=f"bad.bgen: BGEN {message} is not supported"):
        read_bgen(tmp_path / "bad.bgen")


def test_sample_file_that_does_not_match(tmp_path):
    _tiny(tmp_path / "t.bgen", samples=["x", "y", "z"])
    write_sample_file(tmp_path / "two.sample", ["x", "y"])
    with pytest.raises(DataError, match="two.sample lists 2 samples but .*t.bgen holds 3"):
        read_bgen(tmp_path / "t.bgen", samples=tmp_path / "two.sample")
    write_sample_file(tmp_path / "other.sample", ["x", "q", "z"])
    with pytest.raises(DataError, match="row 1 is 'q' there and 'y'"):
        read_bgen(tmp_path / "t.bgen", samples=tmp_path / "other.sample")


def test_not_a_bgen_file_and_no_match(tmp_path):
    (tmp_path / "junk.bgen").write_bytes(b"hello world, not bgen at all" * 3)
    with pytest.raises(DataError, match="not a BGEN file"):
        read_bgen(tmp_path / "junk.bgen")
    with pytest.raises(DataError, match="no BGEN file matches"):
        read_bgen(tmp_path / "none*.bgen")
