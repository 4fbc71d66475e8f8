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
    assert main(["fit", "Reaction ~ 1 + Days + (1 + Days|Subject)", "--data", "sleepstudy", "--reml",
                 "--optimizer", "LN_NELDERMEAD", "--optsum"]) == 0
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
    assert main(["fit", "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", "--data", "cbpp",
                 "--family", "binomial", "--nagq", "25"]) == 0
    assert "100.01" in capsys.readouterr().out


def test_user_errors_are_reported_not_raised(capsys):
    assert main(["fit", "Reaction ~ 1 + Dayz + (1|Subject)", "--data", "sleepstudy"]) == 2
    assert "Dayz" in capsys.readouterr().err
    assert main(["fit", "y ~ 1 + (1|g)", "--data", "no_such_thing"]) == 2
    assert "neither a bundled data set" in capsys.readouterr().err


def test_unknown_optimizer(capsys):
    assert main(["fit", "Yield ~ 1 + (1|Batch)", "--data", "dyestuff", "--optimizer", "LN_FOO"]) == 2
    assert "LN_FOO" in capsys.readouterr().err
