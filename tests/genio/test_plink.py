"""Reading PLINK files and matching their individuals to a phenotype table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets
from mixedmodels.errors import DataError
from mixedmodels.genio import match_samples, read_dosages, read_plink


def _write_tiny(folder, bim_line="1 rs1 0 100 C T"):
    """One SNP, four individuals, .bed bytes written by hand from the PLINK 1 spec.

    Two bits per individual, lowest first: 00 homozygous for the .bim's first
    allele, 10 heterozygous, 11 homozygous for the second, 01 missing.
    """
    calls = [0b00, 0b10, 0b11, 0b01]
    byte = sum(code << (2 * i) for i, code in enumerate(calls))
    (folder / "tiny.bed").write_bytes(bytes([0x6C, 0x1B, 0x01, byte]))
    (folder / "tiny.bim").write_text(bim_line + "\n")
    fam = "".join(f"f{i} i{i} 0 0 1 -9\n" for i in range(4))
    (folder / "tiny.fam").write_text(fam)
    return folder / "tiny"


def test_counts_first_allele_of_bim(tmp_path):
    data = read_plink(_write_tiny(tmp_path))
    np.testing.assert_array_equal(data.read(), [[2.0], [1.0], [0.0], [np.nan]])
    table = data.snp_table()
    assert table.loc[0, "allele_1"] == "C" and table.loc[0, "pos"] == 100


def test_tab_separated_bim_reads_the_same(tmp_path):
    data = read_plink(_write_tiny(tmp_path, "1\trs1\t0\t100\tC\tT"))
    np.testing.assert_array_equal(data.read()[:3, 0], [2.0, 1.0, 0.0])


def test_panel_annotations_and_lazy_blocks():
    data = read_plink(datasets.genetics_path() / "geno")
    assert (data.n_samples, data.n_snps) == (400, 2000)
    assert data.iid[0] == "ind0001" and data.fid[0] == "fam001"
    assert data.snp[0] == "snp00001" and data.chrom[0] == "1" and data.pos[0] == 1000
    whole = data.read()
    np.testing.assert_array_equal(data.read(1990, 2000), whole[:, 1990:])
    assert whole.dtype == np.float64 and set(np.unique(whole)) <= {0.0, 1.0, 2.0}


def test_select_samples_reorders():
    data = read_plink(datasets.genetics_path() / "geno")
    picked = data.select_samples(["ind0003", "ind0001"])
    np.testing.assert_array_equal(picked.read(0, 5), data.read(0, 5)[[2, 0]])
    with pytest.raises(DataError, match="1 id\\(s\\) not in .*geno.fam: 'nobody'"):
        data.select_samples(["ind0001", "nobody"])


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found: .*missing.bed"):
        read_plink(tmp_path / "missing")
    prefix = _write_tiny(tmp_path)
    (tmp_path / "tiny.bim").write_text("1 rs1 100 C T\n")
    with pytest.raises(DataError, match="tiny.bim has 5 columns"):
        read_plink(prefix)
    prefix = _write_tiny(tmp_path)
    (tmp_path / "tiny.fam").write_text("f i 0 0 1 -9\n" * 5)
    with pytest.raises(DataError, match="repeats individual id"):
        read_plink(prefix)
    (tmp_path / "tiny.fam").write_text("".join(f"f i{i} 0 0 1 -9\n" for i in range(9)))
    with pytest.raises(DataError, match="cannot read .*tiny.bed as 9 individuals × 1 SNPs"):
        read_plink(prefix).read()


def test_match_samples_counts_what_it_drops():
    data = read_plink(datasets.genetics_path() / "geno")
    table = pd.DataFrame(
        {"iid": ["ind0002", "ind0001", "stranger", "ind0005"], "y": [1.0, 2.0, 3.0, np.nan]}
    )
    match = match_samples(data, table, columns=["y"])
    assert list(match.phenotypes.index) == ["ind0001", "ind0002"]  # .fam order
    np.testing.assert_array_equal(match.phenotypes["y"], [2.0, 1.0])
    assert (match.n_genotyped_only, match.n_phenotyped_only, match.n_incomplete) == (397, 1, 1)
    assert str(match).startswith("2 individuals kept; dropped 397 genotyped without phenotype")
    np.testing.assert_array_equal(match.genotypes.read(0, 3), data.read(0, 3)[:2])


def test_match_samples_errors():
    data = read_plink(datasets.genetics_path() / "geno")
    with pytest.raises(DataError, match="no individual id is shared"):
        match_samples(data, pd.DataFrame({"iid": ["x", "y"], "p": [1, 2]}))
    with pytest.raises(DataError, match="repeats id"):
        match_samples(data, pd.DataFrame({"iid": ["ind0001"] * 2, "p": [1, 2]}))
    with pytest.raises(DataError, match="no id column 'IID'"):
        match_samples(data, pd.DataFrame({"iid": ["ind0001"]}), iid_column="IID")
    with pytest.raises(DataError, match="'age' not in the phenotype table"):
        match_samples(data, pd.DataFrame({"iid": ["ind0001"]}), columns=["age"])


def _decode_bed(path, n: int, snps: int) -> np.ndarray:
    """Counts of the first bim allele read straight from the bed bytes (PLINK's SNP-major format).

    Each individual has two bits, lowest first: 00 = homozygous for the first
    allele (2 copies), 10 = heterozygous (1), 11 = homozygous for the second (0), 01 = missing.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    per_snp = (n + 3) // 4
    codes = raw[3 : 3 + per_snp * snps].reshape(snps, per_snp)
    bits = (codes[:, :, None] >> np.array([0, 2, 4, 6])) & 3
    counts = np.array([2.0, np.nan, 1.0, 0.0])[bits.reshape(snps, -1)[:, :n]]
    return counts.T


def test_read_dosages_by_slice_indices_and_rows():
    path = datasets.genetics_path() / "geno.bed"
    panel = read_plink(path)
    expected = _decode_bed(path, panel.n_samples, 10)
    np.testing.assert_array_equal(read_dosages(panel, np.s_[:10]), expected)
    np.testing.assert_array_equal(read_dosages(panel, np.s_[0:10:3]), expected[:, ::3])
    np.testing.assert_array_equal(read_dosages(panel, np.array([7, 2])), expected[:, [7, 2]])
    np.testing.assert_array_equal(
        read_dosages(panel, np.s_[:10], np.array([5, 1])), expected[[5, 1]]
    )
    assert read_dosages(panel, np.array([], dtype=int)).shape == (panel.n_samples, 0)


@pytest.mark.parametrize("which", ["bim", "fam"])
def test_empty_or_binary_text_files_are_named(tmp_path, which):
    prefix = _write_tiny(tmp_path)
    (tmp_path / f"tiny.{which}").write_text("")
    with pytest.raises(
        DataError, match=rf"tiny.{which} is empty; a PLINK .{which} file has 6 fields"
    ):
        read_plink(prefix)
    (tmp_path / f"tiny.{which}").write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(
        DataError, match=rf"tiny.{which} (is not a readable text table|has \d+ columns)"
    ):
        read_plink(prefix)


def test_missing_bed_reader_names_the_extra(tmp_path, monkeypatch):
    import builtins

    from mixedmodels.errors import MixedModelsError

    real_import = builtins.__import__

    def without_bed_reader(name, *args, **kwargs):
        if name.startswith("bed_reader"):
            raise ModuleNotFoundError("No module named 'bed_reader'")
        return real_import(name, *args, **kwargs)

    data = read_plink(_write_tiny(tmp_path))  # the text files need no extra
    monkeypatch.setattr(builtins, "__import__", without_bed_reader)
    with pytest.raises(MixedModelsError, match=r"pip install mixedmodels\[genetics\]"):
        data.read()
