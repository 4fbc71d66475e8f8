"""The ``hlmm-scan`` subcommand, through a parser built as the main CLI builds it."""

import argparse

import numpy as np
import pandas as pd
import pytest

from mixedmodels.errors import DataError
from mixedmodels.variance.chrscan import SCAN_COLUMNS, hlmm_scan
from mixedmodels.variance.cli import register


def _parser():
    parser = argparse.ArgumentParser(prog="mixedmodels")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_hlmm_scan_command_writes_the_scan(genetics, tmp_path, capsys):
    pheno = tmp_path / "pheno.tsv"
    genetics.pheno.to_csv(pheno, sep="\t", index=False)
    out = tmp_path / "scan.tsv"
    args = _parser().parse_args([
        "hlmm-scan", str(genetics.path / "geno"), "--pheno", str(pheno), "--phenotype", "pheno1",
        "--mean-covar", "age", "sex", "--var-covar", "sex", "--start", "5", "--end", "9",
        "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert args.handler(args) == 0
    printed = capsys.readouterr()
    assert "4 SNPs, 4 tested" in printed.out
    for old, new in [
        ("--phenotype", "--pheno-col"),
        ("--mean-covar", "--covar"),
        ("positional", "--bed"),
    ]:
        assert f"{old}" in printed.err and f"use {new}" in printed.err  # the old names still work
    written = pd.read_csv(out, sep="\t", dtype={"chrom": str})
    assert list(written.columns) == SCAN_COLUMNS
    direct = hlmm_scan(genetics.path / "geno.bed", genetics.pheno, "pheno1", mean_covariates=["age", "sex"],
                       var_covariates=["sex"], start=5, end=9, progress=False)  # fmt: skip
    np.testing.assert_allclose(written["var_p"], direct["var_p"], rtol=1e-7)


def test_missing_phenotype_file(tmp_path):
    args = _parser().parse_args(
        [
            "hlmm-scan",
            "geno",
            "--pheno",
            str(tmp_path / "none.csv"),
            "--phenotype",
            "y",
            "--out",
            "x",
        ]
    )
    with pytest.raises(DataError, match="not found"):
        args.handler(args)


def test_shared_vocabulary_gives_the_same_scan(genetics, tmp_path):
    """The flags of scan/heritability (--bed, --pheno-col, --covar A,B, --iid-col) work here too."""
    pheno = tmp_path / "pheno.csv"
    genetics.pheno.to_csv(pheno, index=False)
    runs = {}
    for name, words in {
        "new": ["--bed", str(genetics.path / "geno"), "--pheno-col", "pheno1", "--covar", "age,sex",
                "--iid-col", "iid"],
        "old": [str(genetics.path / "geno.bed"), "--phenotype", "pheno1", "--mean-covar", "age", "sex",
                "--iid-column", "iid"],
    }.items():  # fmt: skip
        out = tmp_path / f"{name}.tsv"
        args = _parser().parse_args(
            ["hlmm-scan", "--pheno", str(pheno), *words, "--var-covar", "sex", "--start", "3",
             "--end", "5", "--out", str(out), "--no-progress"]
        )  # fmt: skip
        assert args.handler(args) == 0
        runs[name] = pd.read_csv(out, sep="\t")
    pd.testing.assert_frame_equal(runs["new"], runs["old"])


def test_junk_phenotype_file_exits_with_status_2(tmp_path, capsys):
    from mixedmodels.cli import main

    junk = tmp_path / "pheno.txt"
    junk.write_bytes(bytes(range(256)) * 8)
    status = main(
        ["hlmm-scan", "--bed", "geno", "--pheno", str(junk), "--pheno-col", "y", "--out", "x"]
    )
    err = capsys.readouterr().err
    assert status == 2 and "pheno.txt" in err and len(err.strip().splitlines()) == 1
