"""The scan and heritability subcommands, through an argparse parser as the main CLI builds it."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from mixedmodels import datasets
from mixedmodels.errors import DataError
from mixedmodels.genetics.cli import register


def _run(command_line: str, *more: str) -> int:
    """Run ``command_line`` (space-separated words) ``more`` on the bundled panel."""
    folder = datasets.genetics_path()
    panel = ["--bed", str(folder / "geno"), "--pheno", str(folder / "geno_pheno.csv")]
    parser = argparse.ArgumentParser(prog="mixedmodels")
    register(parser.add_subparsers(dest="command", required=True))
    command, *options = command_line.split()
    args = parser.parse_args([command, *panel, *options, *more])
    return args.func(args)


@pytest.mark.parametrize(
    "extra,tol",
    [("--chunk 700", 1e-6), ("--precision mixed", 1e-5)],  # mixed: float32 whitening (about 1e-7)
)
def test_scan_writes_the_reference_statistics(tmp_path, reference, capsys, extra, tol):
    out = tmp_path / "results.tsv"
    options = f"scan --covar age,sex --pheno-col pheno1 --no-progress {extra}"
    assert _run(options, "--out", str(out)) == 0
    table = pd.read_csv(out, sep="\t")
    ref = reference["scan_pheno1"]
    assert list(table["snp"]) == ref["snp"]
    assert np.abs(table["lrt"] - ref["lrt"]).max() < tol
    printed = capsys.readouterr()
    assert "pheno1: 2000 SNPs, h2 (null) = 0.6778" in printed.out
    assert "400 individuals kept" in printed.err


def test_interaction_scan_adds_the_environment(tmp_path):
    out = tmp_path / "gxe.tsv"
    _run("scan --pheno-col pheno2 --interaction sex --no-progress", "--out", str(out))
    table = pd.read_csv(out, sep="\t")
    assert {"beta_snp", "beta_snp:sex", "df"} <= set(table.columns) and len(table) == 2000


def test_heritability_prints_and_writes(tmp_path, reference, capsys):
    out = tmp_path / "h2.tsv"
    _run("heritability --covar age,sex --pheno-col pheno1,pheno2", "--out", str(out))
    table = pd.read_csv(out, sep="\t", index_col="phenotype")
    for name in ("pheno1", "pheno2"):
        assert abs(table.loc[name, "h2"] - reference[name]["reml"]["h2"]) < 1e-4
    assert "REML" in capsys.readouterr().out


def test_ml_option(tmp_path):
    out = tmp_path / "h2_ml.tsv"
    with pytest.warns(UserWarning, match="increases towards h² = 1"):
        _run("heritability --covar age,sex --pheno-col pheno1 --ml", "--out", str(out))
    table = pd.read_csv(out, sep="\t")
    assert table.loc[0, "method"] == "ML" and 0.6 < table.loc[0, "h2"] < 0.8


def test_bad_covariate_is_reported():
    with pytest.raises(DataError, match="'height' not in the phenotype table"):
        _run("heritability --covar height --pheno-col pheno1")


def test_heritability_needs_the_phenotype_column(capsys):
    """Without --pheno-col every numeric column (sex among them) used to get an h²."""
    with pytest.raises(DataError, match="--pheno-col.*pheno1"):
        _run("heritability --covar age")


@pytest.fixture
def cli(capsys):
    """Run the real main program: ``cli(*words)`` gives its status and stderr."""
    from mixedmodels.cli import main

    def run(*words: str) -> tuple[int, str]:
        status = main(list(words))
        return status, capsys.readouterr().err

    return run


BED = str(datasets.genetics_path() / "geno")
PHENO = str(datasets.genetics_path() / "geno_pheno.csv")


def _one_line_error(status: int, err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("mixedmodels: error")]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_junk_phenotype_file_exits_2(cli, tmp_path):
    junk = tmp_path / "pheno.csv"
    junk.write_bytes(bytes(range(256)) * 8)
    status, err = cli("heritability", "--bed", BED, "--pheno", str(junk), "--pheno-col", "p")
    _one_line_error(status, err, "pheno.csv")
    (tmp_path / "empty.csv").write_text("")
    status, err = cli("heritability", "--bed", BED, "--pheno", str(tmp_path / "empty.csv"))
    _one_line_error(status, err, "empty")


def test_singular_covariates_in_scan_exit_2(cli, tmp_path):
    table = pd.read_csv(PHENO).assign(age2=lambda t: 2 * t["age"])
    table.to_csv(tmp_path / "p.csv", index=False)
    status, err = cli(
        "scan", "--bed", BED, "--pheno", str(tmp_path / "p.csv"), "--pheno-col", "pheno1",
        "--covar", "age,age2", "--out", str(tmp_path / "o.tsv"), "--no-progress",
    )  # fmt: skip
    _one_line_error(status, err, "linearly dependent", "age2")


def test_unreachable_dask_scheduler_fails_fast_with_its_address(cli, tmp_path):
    status, err = cli(
        "scan", "--bed", BED, "--pheno", PHENO, "--pheno-col", "pheno1", "--no-progress",
        "--dask-scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "o.tsv"),
    )  # fmt: skip
    _one_line_error(status, err, "tcp://127.0.0.1:1")
    assert not (tmp_path / "o.tsv").exists()


def _run_genotypes(command_line: str, *more: str) -> int:
    """Run a genotype-only subcommand (qc, kinship) on the bundled panel."""
    folder = datasets.genetics_path()
    parser = argparse.ArgumentParser(prog="mixedmodels")
    register(parser.add_subparsers(dest="command", required=True))
    command, *options = command_line.split()
    args = parser.parse_args([command, "--bed", str(folder / "geno"), *options, *more])
    return args.func(args)


def test_loco_scan_with_pcs_and_adjustment(tmp_path, capsys):
    out = tmp_path / "loco.tsv"
    options = "scan --loco --pcs 2 --adjust fdr_bh --covar age,sex --pheno-col pheno1 --no-progress"
    assert _run(options, "--out", str(out)) == 0
    table = pd.read_csv(out, sep="\t")
    assert {"p_fdr_bh", "p_wald_f"} <= set(table.columns)
    assert (table["p_fdr_bh"] >= table["p_lrt"] - 1e-15).all()
    assert "h2 (null, per chromosome) = 1:" in capsys.readouterr().out


def test_qc_and_kinship_subcommands(tmp_path, capsys):
    from mixedmodels.genetics import kinship, read_plink

    out = tmp_path / "qc.tsv"
    assert (
        _run_genotypes("qc --min-maf 0.1 --prune-window 20 --prune-r2 0.01", "--out", str(out)) == 0
    )
    table = pd.read_csv(out, sep="\t", keep_default_na=False)
    assert (table.loc[table["maf"] < 0.1, "reason"] == "MAF < 0.1").all()
    assert table["reason"].str.startswith("LD r2").any()
    assert table["kept"].sum() == (table["reason"] == "").sum()
    assert "variants kept" in capsys.readouterr().out
    out = tmp_path / "K.tsv"
    assert _run_genotypes("kinship", "--out", str(out)) == 0
    K = pd.read_csv(out, sep="\t", index_col=0, dtype={0: str})
    ref = kinship(read_plink(datasets.genetics_path() / "geno"))
    np.testing.assert_allclose(K.to_numpy(), ref.to_numpy(), rtol=1e-10)


def test_bed_and_bgen_together_are_refused():
    with pytest.raises(DataError, match="exactly one of --bed"):
        _run_genotypes("kinship --bgen x.bgen --out k.tsv")


@pytest.fixture(scope="module")
def bimbam_panel(tmp_path_factory):
    # tests/ is on sys.path: pytest inserts the directory above the test packages
    from genio.bimbam_writer import write_bimbam_panel

    from mixedmodels.genetics import read_plink

    plink = read_plink(datasets.genetics_path() / "geno")
    return write_bimbam_panel(plink, tmp_path_factory.mktemp("bimbam"))


def _run_bimbam(folder, command_line: str, *more: str) -> int:
    """Run ``command_line`` with the bundled panel given as BIMBAM instead of ``--bed``."""
    parser = argparse.ArgumentParser(prog="mixedmodels")
    register(parser.add_subparsers(dest="command", required=True))
    command, *options = command_line.split()
    bimbam = ["--bimbam", str(folder / "geno.txt"), "--bimbam-annotation", str(folder / "anno.txt")]
    args = parser.parse_args([command, *bimbam, *options, *more])
    return args.func(args)


def test_bimbam_scan_equals_the_plink_scan(tmp_path, bimbam_panel, capsys):
    options = "scan --covar age,sex --pheno-col pheno1 --no-progress"
    pheno = ["--pheno", str(datasets.genetics_path() / "geno_pheno.csv")]
    ids = ["--bimbam-samples", str(bimbam_panel / "ids.txt")]
    assert _run(options, "--out", str(tmp_path / "plink.tsv")) == 0
    assert _run_bimbam(bimbam_panel, options, *pheno, *ids, "--out", str(tmp_path / "bb.tsv")) == 0
    a = pd.read_csv(tmp_path / "plink.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "bb.tsv", sep="\t")
    assert list(b["snp"]) == list(a["snp"]) and list(b["chrom"]) == list(a["chrom"])
    np.testing.assert_allclose(b["lrt"], a["lrt"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b["beta"], a["beta"], rtol=1e-9, atol=1e-12)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("pheno1: 2000 SNPs, h2 (null) = 0.6778")
    with pytest.raises(DataError, match="--bimbam needs --bimbam-samples"):
        _run_bimbam(bimbam_panel, options, *pheno, "--out", str(tmp_path / "x.tsv"))


def test_bimbam_kinship_and_qc_equal_plink(tmp_path, bimbam_panel):
    ids = ["--bimbam-samples", str(bimbam_panel / "ids.txt")]
    assert _run_bimbam(bimbam_panel, "kinship", *ids, "--out", str(tmp_path / "Kb.tsv")) == 0
    assert _run_genotypes("kinship", "--out", str(tmp_path / "Kp.tsv")) == 0
    read = {"sep": "\t", "index_col": 0, "dtype": {0: str}}
    Kb, Kp = (pd.read_csv(tmp_path / f, **read) for f in ("Kb.tsv", "Kp.tsv"))
    assert list(Kb.index) == list(Kp.index)
    # the in-memory source is standardised in other blocks than the .bed reader: rounding only
    np.testing.assert_allclose(Kb.to_numpy(), Kp.to_numpy(), rtol=1e-8, atol=1e-12)
    assert _run_bimbam(bimbam_panel, "qc --min-maf 0.1", "--out", str(tmp_path / "qb.tsv")) == 0
    assert _run_genotypes("qc --min-maf 0.1", "--out", str(tmp_path / "qp.tsv")) == 0
    qb, qp = (pd.read_csv(tmp_path / f, sep="\t") for f in ("qb.tsv", "qp.tsv"))
    assert list(qb["kept"]) == list(qp["kept"])
    with pytest.raises(DataError, match="exactly one of --bed PREFIX, --bgen PATTERN, --bimbam"):
        _run_genotypes("kinship --bimbam x.txt --out k.tsv")
