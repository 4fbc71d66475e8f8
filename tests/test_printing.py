"""Summaries (mixedmodels/printing.py): lme4's layout as text, HTML and Markdown.

The figures printed are read back and compared with the model's own numbers,
so the tests check the layout's content rather than a frozen copy of it, and
with lme4/lmerTest's summary (tests/data/varcorr_reference.json, written by
tools/make_varcorr_reference.R).
"""

from __future__ import annotations

import json
import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import mixedmodels as mm
from mixedmodels.errors import MixedModelsError
from mixedmodels.printing import (
    SummaryText,
    abbreviate,
    decimals_for,
    model_html,
    model_markdown,
    r_pvalue,
    scaled_residuals,
    significance_stars,
    summary_text,
)


@cache
def sleep(reml: bool):
    data = mm.datasets.load("sleepstudy")
    return mm.LinearMixedModel("Reaction ~ 1 + Days + (1 + Days|Subject)", data, reml=reml).fit()


@cache
def machines():
    return mm.LinearMixedModel(
        "score ~ 1 + Machine + (0 + Machine|Worker)", mm.datasets.load("machines"), reml=True
    ).fit()


@cache
def cbpp():
    return mm.GeneralizedLinearMixedModel(
        "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
        mm.datasets.load("cbpp"),
        family="binomial",
    ).fit()


def section(text: str, title: str) -> list[str]:
    """The lines after ``title`` up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def numbers(line: str) -> list[float]:
    return [float(t) for t in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|-?\d+(?![\w.])", line)]


def test_ml_fit_statistics_line():
    m = sleep(False)
    text = summary_text(m, ddf=None)
    header, values = text.splitlines()[3:5]  # after the title, the formula and a blank line
    assert header.split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    aic, bic, loglik, dev, dfres = numbers(values)
    np.testing.assert_allclose(
        [aic, bic, loglik, dev], [m.aic, m.bic, m.loglikelihood, m.objective], atol=0.051
    )
    assert dfres == m.nobs - m.dof


def test_reml_criterion_line():
    m = sleep(True)
    line = next(
        x for x in summary_text(m).splitlines() if x.startswith("REML criterion at convergence")
    )
    assert numbers(line)[0] == pytest.approx(m.objective, abs=0.051)


@pytest.mark.parametrize("model", [lambda: sleep(True), cbpp])
def test_scaled_residual_quantiles(model):
    m = model()
    row = section(summary_text(m), "Scaled residuals:")[1]
    sigma = m.sigma or 1.0
    resid = m.residuals("pearson") if callable(m.residuals) else m.residuals
    np.testing.assert_allclose(
        numbers(row), np.quantile(np.asarray(resid) / sigma, [0, 0.25, 0.5, 0.75, 1]), atol=5e-5
    )
    np.testing.assert_allclose(scaled_residuals(m), np.asarray(resid) / sigma)


def test_random_effects_show_every_correlation():
    m = machines()
    rows = section(summary_text(m), "Random effects:")
    long = m.varcorr(form="long")
    pairs = long[long["var2"].notna()]
    c_row = next(line for line in rows if "MachineC" in line)
    b_row = next(line for line in rows if "MachineB" in line)
    corr = lambda a, b: float(pairs[(pairs["var1"] == a) & (pairs["var2"] == b)]["sdcor"].iloc[0])  # noqa: E731
    np.testing.assert_allclose(
        numbers(c_row)[-2:],
        [corr("MachineA", "MachineC"), corr("MachineB", "MachineC")],
        atol=0.005,
    )
    assert numbers(b_row)[-1] == pytest.approx(corr("MachineA", "MachineB"), abs=0.005)
    assert rows[-1].startswith("Number of obs: 54, groups:  Worker, 6")
    resid = next(line for line in rows if line.split()[0] == "Residual")
    np.testing.assert_allclose(numbers(resid), [m.sigma**2, m.sigma], rtol=1e-3)


def test_lmm_fixed_effects_use_satterthwaite():
    m = sleep(True)
    text = summary_text(m)
    assert "Satterthwaite" in text.splitlines()[0]
    rows = section(text, "Fixed effects:")
    assert rows[0].split()[:4] == ["Estimate", "Std.", "Error", "df"]
    ct = m.coeftable(ddf="satterthwaite")
    est, se, df, t = numbers(rows[2])[:4]
    np.testing.assert_allclose(
        [est, se, df, t],
        ct.loc["Days", ["Estimate", "Std. Error", "df", "t"]].to_numpy(float),
        rtol=1e-3,
    )
    assert rows[2].rstrip().endswith(significance_stars(ct.loc["Days", "p"]))


def test_wald_tables_say_so():
    lmm_text, glmm_text = summary_text(sleep(False), ddf=None), summary_text(cbpp())
    assert (
        "Wald z" in lmm_text
        and "z value" in lmm_text
        and "df" not in section(lmm_text, "Fixed effects:")[0]
    )
    glmm_rows = section(glmm_text, "Fixed effects:")
    assert glmm_rows[0].split()[-2:] == ["value", "Pr(>|z|)"]
    assert " Family: binomial  ( logit )" in glmm_text.splitlines()
    ct = cbpp().coeftable()
    np.testing.assert_allclose(numbers(glmm_rows[1])[:3], ct.iloc[0, :3].to_numpy(float), rtol=2e-3)


def test_correlation_of_fixed_effects():
    m = cbpp()
    rows = section(summary_text(m), "Correlation of Fixed Effects:")
    V = np.asarray(m.vcov)
    C = V / np.sqrt(np.outer(np.diag(V), np.diag(V)))
    assert rows[0].split() == [abbreviate(n) for n in m.coefnames[:-1]]
    for i, line in enumerate(rows[1:], start=1):
        assert line.split()[0] == m.coefnames[i]
        np.testing.assert_allclose(numbers(line[len(m.coefnames[i]) + 1 :]), C[i, :i], atol=5e-4)


def test_singular_fit_is_reported():
    m = mm.LinearMixedModel("Yield ~ 1 + (1|Batch)", mm.datasets.load("dyestuff2")).fit()
    assert m.issingular
    assert "boundary (singular) fit" in summary_text(m)
    assert "boundary (singular) fit" not in summary_text(sleep(False))


def test_abbreviate_and_number_formats():
    for name in ["(Intercept)", "MachineB", "period2", "Days", "x"]:
        short = abbreviate(name)
        assert len(short) <= 6 and short[0] == name[0]
        assert short == name or len(name) > 6
    assert abbreviate("(Intercept)") == "(Intr)"  # the label lme4 prints
    for p in [0.3, 0.0217, 0.00116, 3.26e-6, 1e-12]:
        assert float(r_pvalue(p)) == pytest.approx(p, rel=5e-3)
    assert r_pvalue(1e-20) == "< 2e-16" and r_pvalue(np.nan) == "NA"
    assert [significance_stars(p) for p in (0.0005, 0.005, 0.03, 0.07, 0.5)] == [
        "***",
        "**",
        "*",
        ".",
        "",
    ]
    assert decimals_for([612.1, 35.07]) == 2 and decimals_for([0.0]) == 0


def test_styles_and_errors():
    m = sleep(False)
    text = summary_text(m)
    assert isinstance(text, SummaryText) and repr(text) == str(text)
    assert summary_text(m, style="compact") == str(m)
    with pytest.raises(MixedModelsError, match="unknown summary style 'R'"):
        summary_text(m, style="R")
    unfitted = mm.LinearMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", mm.datasets.load("sleepstudy")
    )
    with pytest.raises(MixedModelsError, match="fit"):
        summary_text(unfitted)
    assert "not fitted" in model_html(unfitted) and "not fitted" in model_markdown(unfitted)


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tables = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "br":  # a void element: no end tag
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag, f"unbalanced </{tag}>"

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("td", "th"):
            self.tables[-1][-1][-1] += data


@pytest.mark.parametrize("model", [machines, cbpp])
def test_html_is_well_formed_and_holds_the_tables(model):
    m = model()
    parser = _Tables()
    parser.feed(model_html(m))
    assert parser.stack == []
    fixed = next(t for t in parser.tables if t[0][1:2] == ["Estimate"])
    assert [r[0] for r in fixed[1:]] == list(m.coefnames)
    np.testing.assert_allclose([float(r[1]) for r in fixed[1:]], m.beta, rtol=1e-3, atol=1e-4)
    assert any("Pr(>|z|)" in cell for cell in fixed[0])  # unescaped by the parser: it was escaped
    assert all(len(row) == len(t[0]) for t in parser.tables for row in t)


@pytest.mark.parametrize("model", [machines, cbpp])
def test_markdown_tables_are_rectangular(model):
    text = model_markdown(model())
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) >= 4
    for t in tables:
        counts = {len(re.findall(r"(?<!\\)\|", row)) for row in t}
        assert len(counts) == 1 and set(t[1].replace("|", "").split()) <= {"---:", ":---"}


REFS = json.loads((Path(__file__).parent / "data" / "varcorr_reference.json").read_text())


@pytest.mark.parametrize(
    "name, model", [("machines_vector_reml", machines), ("sleepstudy_reml", lambda: sleep(True))]
)
def test_summary_numbers_equal_lme4s(name, model):
    """Against lme4/lmerTest's summary (tools/make_varcorr_reference.R, lme4 1.1-31, lmerTest 3.1-3)."""
    ref, text = REFS[name], summary_text(model())
    np.testing.assert_allclose(
        numbers(section(text, "Scaled residuals:")[1]), ref["scaled_residuals"], atol=2e-3
    )
    fixed = section(text, "Fixed effects:")[1:-2]
    np.testing.assert_allclose([numbers(line)[2] for line in fixed], ref["coef_df"], rtol=1e-3)
    corr = section(text, "Correlation of Fixed Effects:")[1:]
    C = np.asarray(ref["fixef_correlation"])
    for i, line in enumerate(corr, start=1):
        np.testing.assert_allclose(numbers(line.split(None, 1)[1]), C[i, :i], atol=2e-3)


def test_scaled_residuals_of_a_weighted_fit_equal_lme4s():
    ref = REFS["sleepstudy_weighted_reml"]  # weights Days + 1
    data = mm.datasets.load(ref["data"])
    m = mm.LinearMixedModel(
        ref["formula"], data, reml=True, weights=(data["Days"] + 1.0).to_numpy()
    ).fit()
    np.testing.assert_allclose(
        np.quantile(scaled_residuals(m), [0, 0.25, 0.5, 0.75, 1]),
        ref["scaled_residuals"],
        atol=2e-3,
    )


def test_residual_variance_model_summary_shows_its_dispersion_model():
    from mixedmodels.variance import HeteroskedasticMixedModel

    data = mm.datasets.load("sleepstudy")
    m = HeteroskedasticMixedModel(
        "Reaction ~ 1 + Days + (1|Subject)", data, dispformula="~ 1 + Days"
    ).fit()
    text = summary_text(m)
    assert text.startswith("Heteroskedastic linear mixed model fit by maximum likelihood")
    assert "Scaled residuals:" not in text  # no single σ to scale by
    rows = section(text, "Dispersion model (log residual variance): ~ 1 + Days")
    disp = m.disp_coeftable()
    for line, (name, r) in zip(rows[1:], disp.iterrows()):
        assert line.split()[0] == name
        np.testing.assert_allclose(numbers(line)[:3], r.iloc[:3].to_numpy(float), rtol=2e-3)
    assert "this model has no t tests" in text
