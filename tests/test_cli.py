"""The command line: mixedmodels fit ..."""

from __future__ import annotations

import pytest

import mixedmodels as mm
from mixedmodels.cli import main


def test_fit_bundled_lmm(capsys):
    assert main(["fit", "Reaction ~ 1 + Days + (1 + Days|Subject)", "--data", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "maximum likelihood" in out and "1751.9393" in out


def test_fit_reml_optimizer_and_optsum(capsys):
    assert (
        main(
            [
                "fit",
                "Reaction ~ 1 + Days + (1 + Days|Subject)",
                "--data",
                "sleepstudy",
                "--reml",
                "--optimizer",
                "LN_NELDERMEAD",
                "--optsum",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "REML" in out and "LN_NELDERMEAD" in out and "1743.628" in out


def test_fit_csv_and_parquet(tmp_path, capsys):
    df = mm.datasets.load("dyestuff")
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", str(tmp_path / name)]) == 0
        assert "327.327" in capsys.readouterr().out


def test_fit_glmm(capsys):
    assert (
        main(
            [
                "fit",
                "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
                "--data",
                "cbpp",
                "--family",
                "binomial",
                "--nagq",
                "25",
            ]
        )
        == 0
    )
    assert "100.01" in capsys.readouterr().out


def test_user_errors_are_reported_not_raised(capsys):
    assert main(["fit", "Reaction ~ 1 + Dayz + (1|Subject)", "--data", "sleepstudy"]) == 2
    assert "Dayz" in capsys.readouterr().err
    assert main(["fit", "y ~ 1 + (1|g)", "--data", "no_such_thing"]) == 2
    assert "neither a bundled data set" in capsys.readouterr().err


def test_unknown_optimizer(capsys):
    assert (
        main(["fit", "Yield ~ 1 + (1|Batch)", "--data", "dyestuff", "--optimizer", "LN_FOO"]) == 2
    )
    assert "LN_FOO" in capsys.readouterr().err


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert (
        exit_info.value.code == 0
        and capsys.readouterr().out.strip() == f"mixedmodels {mm.__version__}"
    )


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b"Yield,Batch\n", "no rows"),
        (bytes(range(256)) * 8, "not a CSV file"),
        (b"PAR1 not really parquet", "as a Parquet file"),
    ],
)
def test_unreadable_data_files(tmp_path, capsys, content, match):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", str(path)]) == 2
    err = error_line(capsys)
    assert match in err and "d.csv" in err


def test_corrupt_parquet_and_directory(tmp_path, capsys):
    (tmp_path / "bad.parquet").write_bytes(b"definitely not parquet")
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", str(tmp_path / "bad.parquet")]) == 2
    assert "cannot read --data" in error_line(capsys)
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", str(tmp_path)]) == 2
    assert "is a directory" in error_line(capsys)


@pytest.mark.parametrize(
    "optimizer, match", [("GN_DIRECT", "finite bounds"), ("LD_LBFGS", "needs gradients")]
)
def test_optimizers_nlopt_has_but_cannot_use(capsys, optimizer, match):
    assert (
        main(["fit", "Yield ~ 1 + (1|Batch)", "--data", "dyestuff", "--optimizer", optimizer]) == 2
    )
    assert match in error_line(capsys)


def test_out_writes_the_coefficient_table(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "coef.tsv"
    assert (
        main(
            ["fit", "Reaction ~ 1 + Days + (1|Subject)", "--data", "sleepstudy", "--out", str(out)]
        )
        == 0
    )
    table = pd.read_csv(out, sep="\t", index_col=0)
    assert list(table.index) == ["(Intercept)", "Days"]
    assert table.loc["Days", "Estimate"] == pytest.approx(10.4673, abs=1e-4)  # lme4 fixef, ML


def test_unwritable_out_fails_before_fitting(tmp_path, capsys):
    for bad in (tmp_path / "missing" / "x.tsv", tmp_path):
        assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", "dyestuff", "--out", str(bad)]) == 2
        assert "--out" in error_line(capsys)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--nagq", "5"], "--nagq applies to generalized models"),
        (["--fast"], "--fast applies to generalized"),
        (["--reml", "--family", "poisson"], "--reml applies to linear"),
        (["--link", "log"], "--link needs --family"),
        (["--family", "gaussian", "--nagq", "3"], "--nagq applies"),
    ],
)
def test_contradictory_flags(capsys, flags, match):
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", "dyestuff", *flags]) == 2
    assert match in error_line(capsys)


def test_gaussian_family_fits_the_linear_model(capsys):
    """glmer(family = gaussian) is lmer: the same deviance as the LMM (lme4: 1751.939 on sleepstudy, ML)."""
    assert (
        main(
            [
                "fit",
                "Reaction ~ 1 + Days + (1 + Days|Subject)",
                "--data",
                "sleepstudy",
                "--family",
                "gaussian",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Linear mixed model" in out and "1751.9393" in out
    assert (
        main(
            [
                "fit",
                "Reaction ~ 1 + Days + (1 + Days|Subject)",
                "--data",
                "sleepstudy",
                "--family",
                "gaussian",
                "--link",
                "identity",
                "--reml",
            ]
        )
        == 0
    )
    assert "1743.628" in capsys.readouterr().out


def test_other_formats_are_named(tmp_path, capsys):
    path = tmp_path / "d.xlsx"
    path.write_bytes(b"PK\x03\x04 pretend workbook")
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", str(path)]) == 2
    assert "is an Excel workbook" in error_line(capsys)
