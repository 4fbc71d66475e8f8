"""The scan and heritability subcommands, through an argparse parser as the main CLI builds it."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets
from mixedmodels.genetics.cli import register


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mixedmodels")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def files():
    folder = datasets.genetics_path()
    return str(folder / "geno"), str(folder / "geno_pheno.csv")


def test_scan_writes_the_reference_statistics(files, tmp_path, reference, capsys):
    bed, pheno = files
    out = tmp_path / "results.tsv"
    status = _run(
        "scan",
        "--bed",
        bed,
        "--pheno",
        pheno,
        "--covar",
        "age,sex",
        "--pheno-col",
        "pheno1",
        "--out",
        str(out),
        "--no-progress",
        "--chunk",
        "700",
    )
    assert status == 0
    table = pd.read_csv(out, sep="\t")
    ref = reference["scan_pheno1"]
    assert list(table["snp"]) == ref["snp"]
    assert np.abs(table["lrt"] - ref["lrt"]).max() < 1e-6
    printed = capsys.readouterr()
    assert "pheno1: 2000 SNPs, h2 (null) = 0.6778" in printed.out
    assert "400 individuals kept" in printed.err


def test_interaction_scan_adds_the_environment(files, tmp_path):
    bed, pheno = files
    out = tmp_path / "gxe.tsv"
    _run(
        "scan",
        "--bed",
        bed,
        "--pheno",
        pheno,
        "--pheno-col",
        "pheno2",
        "--interaction",
        "sex",
        "--out",
        str(out),
        "--no-progress",
    )
    table = pd.read_csv(out, sep="\t")
    assert {"beta_snp", "beta_snp:sex", "df"} <= set(table.columns) and len(table) == 2000


def test_heritability_prints_and_writes(files, tmp_path, reference, capsys):
    bed, pheno = files
    out = tmp_path / "h2.tsv"
    _run(
        "heritability",
        "--bed",
        bed,
        "--pheno",
        pheno,
        "--covar",
        "age,sex",
        "--pheno-col",
        "pheno1,pheno2",
        "--out",
        str(out),
    )
    table = pd.read_csv(out, sep="\t", index_col="phenotype")
    for name in ("pheno1", "pheno2"):
        assert abs(table.loc[name, "h2"] - reference[name]["reml"]["h2"]) < 1e-4
    assert "REML" in capsys.readouterr().out


def test_bad_covariate_is_reported(files, tmp_path):
    from mixedmodels.errors import DataError

    bed, pheno = files
    with pytest.raises(DataError, match="'height' not in the phenotype table"):
        _run("heritability", "--bed", bed, "--pheno", pheno, "--covar", "height")


def test_ml_option(files, tmp_path):
    bed, pheno = files
    out = tmp_path / "h2_ml.tsv"
    with pytest.warns(UserWarning, match="increases towards h² = 1"):
        _run(
            "heritability",
            "--bed",
            bed,
            "--pheno",
            pheno,
            "--covar",
            "age,sex",
            "--pheno-col",
            "pheno1",
            "--ml",
            "--out",
            str(out),
        )
    table = pd.read_csv(out, sep="\t")
    assert table.loc[0, "method"] == "ML" and 0.6 < table.loc[0, "h2"] < 0.8
