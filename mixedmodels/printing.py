"""Text summaries of fitted models, laid out as lme4 and MixedModels.jl users expect."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import errors
from .errors import MixedModelsError

# the lead's NotFittedError where it exists (a MixedModelsError either way)
NotFittedError = getattr(errors, "NotFittedError", MixedModelsError)

__all__ = [
    "lmm_summary",
    "glmm_summary",
    "format_coeftable",
    "format_varcorr",
    "format_pvalue",
    "summary_text",
    "compact_summary",
    "model_html",
    "model_markdown",
    "SummaryText",
    "observation_values",
    "scaled_residuals",
]


def format_pvalue(p: float) -> str:
    """p-values as R prints them: small ones as ``<1e-NN``."""
    if not np.isfinite(p):
        return "NaN"
    if p < 1e-99:
        return "<1e-99"
    if p < 1e-4:
        return f"<1e-{int(np.floor(-np.log10(p)))}"
    return f"{p:.4f}"


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)
        ).rstrip()

    rule = "─" * sum(w + 2 for w in widths)
    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def format_coeftable(ct: pd.DataFrame, stat: str = "z") -> str:
    rows = [
        [
            str(name),
            f"{r['Estimate']:.6g}",
            f"{r['Std. Error']:.6g}",
            f"{r[stat]:.2f}",
            format_pvalue(r[ct.columns[-1]]),
        ]
        for name, r in ct.iterrows()
    ]
    return _table(["", "Coef.", "Std. Error", stat, f"Pr(>|{stat}|)"], rows, "lrrrr")


def _corr_columns(vc: pd.DataFrame) -> list[str]:
    return [c for c in vc.columns if str(c).startswith("corr_")]


def format_varcorr(vc: pd.DataFrame) -> str:
    """The wide ``varcorr()`` frame as a table, with each term's full lower triangle of correlations."""
    corr_cols = [c for c in _corr_columns(vc) if vc[c].notna().any()]
    structured = "structure" in vc.columns
    rows, last, last_term, terms_seen = [], None, None, {}
    for _, r in vc.iterrows():
        group = r["group"] if r["group"] != last else ""
        last = r["group"]
        corr = [f"{r[c]:+.2f}" if np.isfinite(r[c]) else "" for c in corr_cols]
        rows.append([group, str(r["name"]), f"{r['variance']:.6g}", f"{r['std. dev.']:.6g}", *corr])
        if structured:
            term = (r["group"], r["structure"])
            new_term = term != last_term and r["group"] != "Residual"
            if new_term:
                count = terms_seen[r["group"]] = terms_seen.get(r["group"], -1) + 1
                label = r["group"] if count == 0 else f"{r['group']}.{count}"
            rows[-1].append(_structure_cell(vc, r, label) if new_term else "")
            last_term = term
    header = [
        "",
        "Column",
        "Variance",
        "Std.Dev.",
        *(["Corr."] + [""] * (len(corr_cols) - 1) if corr_cols else []),
        *(["Structure"] if structured else []),
    ]
    return _table(header, rows, "llrr" + "r" * len(corr_cols) + ("l" if structured else ""))


def _structure_cell(vc: pd.DataFrame, row, label: str) -> str:
    """``ar1 rho=0.871`` for a structured term's first row, ``us`` for an unstructured one."""
    params = vc.attrs.get("structures", {}).get(label, {})
    extra = " ".join(f"{k}={v:.3g}" for k, v in params.items() if k != "structure")
    return f"{row['structure']} {extra}".strip()


def _fit_statistics(m) -> str:
    stats = {
        "logLik": m.loglikelihood,
        "-2 logLik": m.objective,
        "AIC": m.aic,
        "BIC": m.bic,
    }
    labels = "  ".join(f"{k:>12}" for k in stats)
    values = "  ".join(f"{v:>12.4f}" for v in stats.values())
    return f"{labels}\n{values}"


def _groups_line(m) -> str:
    levels = "; ".join(f"{r.name} {r.nlevels}" for r in m.reterms)
    dropped = m.structure.frame.n_dropped
    extra = f" ({dropped} with missing values dropped)" if dropped else ""
    return f" Number of obs: {m.nobs}{extra}; levels of grouping factors: {levels}"


def _body(m) -> list[str]:
    """Variance components, group sizes and the coefficient table, shared by every model."""
    parts = [
        "",
        "Variance components:",
        format_varcorr(m.varcorr()),
        _groups_line(m),
        "",
        "Fixed-effects parameters:",
        format_coeftable(m.coeftable()),
    ]
    if m.structure.fe.dropped:
        parts.append(f" Aliased columns dropped: {', '.join(m.structure.fe.dropped)}")
    if m.issingular:
        parts.append(" boundary (singular) fit: some variance components are zero")
    return parts


def lmm_summary(m) -> str:
    if not m.optsum.fitted:
        return f"LinearMixedModel (not fitted): {m.formula}"
    how = "REML" if m.reml else "maximum likelihood"
    stats = _fit_statistics(m).replace("-2 logLik", "REML crit" if m.reml else "-2 logLik")
    return "\n".join([f"Linear mixed model fit by {how}", f" {m.formula}", stats, *_body(m)])


def glmm_summary(m) -> str:
    if not m.optsum.fitted:
        return f"GeneralizedLinearMixedModel (not fitted): {m.formula}"
    method = (
        "fast (β in PIRLS)"
        if m.fast
        else (
            "Laplace approximation"
            if m.nagq == 1
            else f"adaptive Gauss-Hermite quadrature, nAGQ = {m.nagq}"
        )
    )
    head = [
        f"Generalized linear mixed model fit by maximum likelihood ({method})",
        f" {m.formula}",
        f" Family: {m.family.name}  Link: {m.family.link.name}",
        _fit_statistics(m),
        f"{'deviance':>12}\n{m.deviance:>12.4f}",
    ]
    return "\n".join([*head, *_body(m)])


# ---------------------------------------------------------------------------------------------
# lme4's summary layout, and the same content as HTML and Markdown for notebooks
# ---------------------------------------------------------------------------------------------
# Every function below uses only the model's public interface (objective, aic, bic,
# loglikelihood, dof, nobs, reml, family, sigma, formula, residuals, varcorr, ranef,
# coeftable, vcov, coefnames, issingular), so that any model kind can be summarised.


class SummaryText(str):
    """The text of a summary: a ``str`` that shows as itself (not quoted) at the prompt."""

    def __repr__(self) -> str:
        return str(self)


@dataclass
class Section:
    """One block of a summary: a title, a table of formatted cells and notes below it.

    ``align`` has one letter per column: ``l`` (labels) or ``r`` (numbers).
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    align: str
    notes: list[str] = field(default_factory=list)


def observation_values(model, name: str, **kwargs) -> np.ndarray:
    """A per-observation output of the model contract (``fitted``, ``residuals``) as an array."""
    return np.asarray(getattr(model, name)(**kwargs), dtype=float)


def scaled_residuals(model) -> np.ndarray:
    """Pearson residuals √w (y - μ̂)/√V(μ̂) over σ (σ = 1 without one), as lme4's summary shows them."""
    return observation_values(model, "residuals", kind="pearson") / (model.sigma or 1.0)


def is_fitted(model) -> bool:
    """True once the model has been fitted (``is_fitted``, or its optimisation record says so)."""
    flag = getattr(model, "is_fitted", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(getattr(model, "optsum", None), "fitted", True))


def _generalised(model) -> bool:
    """True for a model with a non-Gaussian family or a non-identity link (a GLMM proper)."""
    family = getattr(model, "family", None)
    return family is not None and not (family.name == "gaussian" and family.link.name == "identity")


# ---- number formats ---------------------------------------------------------------------------
def decimals_for(values, digits: int = 4) -> int:
    """Decimals that show the smallest nonzero |value| with ``digits`` significant digits (0 to 6)."""
    a = np.abs(np.asarray(values, dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return 0
    return int(np.clip(digits - 1 - np.floor(np.log10(a.min())), 0, 6))


def _fixed(values, decimals: int) -> list[str]:
    return [f"{v:.{decimals}f}" if np.isfinite(v) else "NA" for v in values]


def r_pvalue(p: float, digits: int = 3) -> str:
    """A p-value as R's ``format.pval`` shows it: ``digits`` significant digits, ``< 2e-16`` below ε."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    sci = f"{p:.{digits - 1}e}"
    fixed = np.format_float_positional(
        p, precision=digits, unique=False, fractional=False, trim="-"
    )
    return fixed if len(fixed) <= len(sci) else sci


def significance_stars(p: float) -> str:
    """R's significance codes: *** < 0.001 < ** < 0.01 < * < 0.05 < . < 0.1."""
    if not np.isfinite(p):
        return ""
    return next(
        (mark for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")) if p < cut),
        "",
    )


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def abbreviate(name: str, width: int = 6) -> str:
    """Shorten a coefficient name for a column header: ``(Intercept)`` -> ``(Intr)``.

    Lower-case vowels are dropped from the end first, then other lower-case
    letters, keeping the first character; what is still too long is cut.
    """
    chars = list(name)
    for drop in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > width and i > 0:
            if chars[i] in drop:
                del chars[i]
            i -= 1
    return "".join(chars[:width])


# ---- the sections -------------------------------------------------------------------------------
def _dispersion_model(model) -> bool:
    """True for a model of the residual variance (it has a ``disp_coeftable``)."""
    return callable(getattr(model, "disp_coeftable", None))


def _title(model, tests: str) -> list[str]:
    """Title, family and formula lines."""
    if not _generalised(model):
        how = "REML" if getattr(model, "reml", False) else "maximum likelihood"
        extra = ". t-tests use Satterthwaite's method" if tests == "satterthwaite" else ""
        kind = (
            "Heteroskedastic linear mixed model"
            if _dispersion_model(model)
            else "Linear mixed model"
        )
        return [f"{kind} fit by {how}{extra}", f"Formula: {model.formula}"]
    nagq = getattr(model, "nagq", 1)
    if getattr(model, "fast", False):
        method = "fast fit: θ only, β from PIRLS (lme4's nAGQ = 0)"
    elif nagq > 1:
        method = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {nagq}"
    else:
        method = "Laplace Approximation"
    family = model.family
    return [
        f"Generalized linear mixed model fit by maximum likelihood ({method})",
        f" Family: {family.name}  ( {family.link.name} )",
        f"Formula: {model.formula}",
    ]


def fit_statistics_section(model) -> Section:
    """REML criterion, or AIC, BIC, logLik, deviance (-2 logLik) and df.resid for ML fits."""
    if getattr(model, "reml", False):
        return Section("", ["REML criterion at convergence"], [[f"{model.objective:.1f}"]], "r")
    values = [model.aic, model.bic, model.loglikelihood, -2 * model.loglikelihood]
    cells = [*(f"{v:.1f}" for v in values), str(model.nobs - model.dof)]
    return Section("", ["AIC", "BIC", "logLik", "deviance", "df.resid"], [cells], "rrrrr")


def residuals_section(model) -> Section | None:
    """Quantiles of the scaled (Pearson) residuals; None for a linear model without one σ."""
    if not _generalised(model) and getattr(model, "sigma", None) is None:
        return None  # e.g. a residual variance model: no single scale to divide by
    q = np.quantile(scaled_residuals(model), [0, 0.25, 0.5, 0.75, 1])
    return Section(
        "Scaled residuals:", ["Min", "1Q", "Median", "3Q", "Max"], [_fixed(q, 4)], "rrrrr"
    )


def _term_blocks(vc_long: pd.DataFrame):
    """Per group label of ``varcorr(form="long")``: (label, names, variances, sds, correlation matrix)."""
    for label, part in vc_long.groupby("grp", sort=False):
        single = part[part["var2"].isna()]
        names = ["" if pd.isna(n) else str(n) for n in single["var1"]]
        corr = np.full((len(names), len(names)), np.nan)
        for _, r in part[part["var2"].notna()].iterrows():
            corr[names.index(str(r["var2"])), names.index(str(r["var1"]))] = r["sdcor"]
        yield label, names, single["vcov"].to_numpy(float), single["sdcor"].to_numpy(float), corr


def random_effects_section(model) -> Section:
    """Groups, names, variances, standard deviations and the full lower triangle of correlations."""
    blocks = list(_term_blocks(model.varcorr(form="long")))
    ncorr = max((len(b[1]) for b in blocks), default=1) - 1
    var_dec = decimals_for(np.concatenate([b[2] for b in blocks]))
    sd_dec = decimals_for(np.concatenate([b[3] for b in blocks]))
    rows = []
    for label, names, var, sd, corr in blocks:
        for i, name in enumerate(names):
            lower = [
                f"{corr[i, j]:.2f}" if j < i and np.isfinite(corr[i, j]) else ""
                for j in range(ncorr)
            ]
            rows.append(
                [
                    str(label) if i == 0 else "",
                    name,
                    *_fixed([var[i]], var_dec),
                    *_fixed([sd[i]], sd_dec),
                    *lower,
                ]
            )
    header = [
        "Groups",
        "Name",
        "Variance",
        "Std.Dev.",
        *(["Corr"] + [""] * (ncorr - 1) if ncorr else []),
    ]
    return Section("Random effects:", header, rows, "llrr" + "r" * ncorr, [_groups_note(model)])


def _groups_note(model) -> str:
    levels = "; ".join(f"{name}, {len(frame)}" for name, frame in model.ranef().items())
    return f"Number of obs: {model.nobs}, groups:  {levels}"


def coefficient_frame(model, ddf: str | None) -> tuple[pd.DataFrame, str]:
    """The coefficient table and its test: ``ddf`` (``"satterthwaite"``...) where the model has it, else ``"wald"``."""
    if ddf is not None:
        try:
            return model.coeftable(ddf=ddf), ddf
        except (TypeError, MixedModelsError):  # no ddf for this model kind: Wald z below
            pass
    return model.coeftable(), "wald"


def coefficient_rows(ct: pd.DataFrame, stars: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a coefficient table: Estimate, Std. Error, (df), t or z value, p, stars."""
    est, se = ct["Estimate"].to_numpy(float), ct["Std. Error"].to_numpy(float)
    p = ct.iloc[:, -1].to_numpy(float)
    letter = "t" if "t" in ct.columns else "z"
    stat, has_df = ct[letter].to_numpy(float), "df" in ct.columns
    dec = max(1, decimals_for(se))
    header = ["", "Estimate", "Std. Error", *(["df"] if has_df else []), f"{letter} value",
              f"Pr(>|{letter}|)", *([""] if stars else [])]  # fmt: skip
    rows = []
    for k, name in enumerate(ct.index):
        dfs = [f"{ct['df'].iloc[k]:.3f}"] if has_df else []
        stars_k = [significance_stars(p[k])] if stars else []
        rows.append([str(name), *_fixed([est[k], se[k]], dec), *dfs, *_fixed([stat[k]], 3),
                     r_pvalue(p[k]), *stars_k])  # fmt: skip
    return header, rows


def fixed_effects_section(
    model, ddf: str | None = "satterthwaite", stars: bool = True
) -> tuple[Section, str]:
    """Estimate, Std. Error, (df), t or z value and p, with R's significance stars; and the test used."""
    ct, tests = coefficient_frame(model, ddf)
    header, rows = coefficient_rows(ct, stars)
    notes = ["---", SIGNIF_LEGEND] if stars else []
    if tests == "wald" and not _generalised(model):
        notes.append(
            'p-values: Wald z tests (normal reference); ddf="satterthwaite" gives t tests'
            if ddf is None
            else "p-values: Wald z tests (normal reference): this model has no t tests"
        )
    return Section("Fixed effects:", header, rows, "l" + "r" * (len(header) - 1), notes), tests


def dispersion_section(model, stars: bool = True) -> Section | None:
    """The residual variance model's coefficients, for models that have one (``disp_coeftable``)."""
    if not _dispersion_model(model):
        return None
    header, rows = coefficient_rows(model.disp_coeftable(), stars)
    title = (
        f"Dispersion model (log residual variance): {getattr(model, 'dispformula', '')}".rstrip()
    )
    return Section(title, header, rows, "l" + "r" * (len(header) - 1))


def other_component_sections(model, stars: bool = True) -> list[Section]:
    """Sections for the model's other components (zero inflation, a dispersion parameter)."""
    sections = []
    for title, table, notes in model.other_components():
        header, rows = coefficient_rows(table, stars) if table is not None else ([], [])
        sections.append(Section(title, header, rows, "l" + "r" * max(len(header) - 1, 0), notes))
    return sections


def fixef_correlation_section(model, max_coef: int = 12) -> Section | None:
    """Lower triangle of the correlation matrix of β̂ (None for a single coefficient)."""
    names = [str(n) for n in model.coefnames]
    p = len(names)
    if p < 2:
        return None
    if p > max_coef:
        return Section(
            "Correlation of Fixed Effects:",
            [],
            [],
            "",
            [f"not shown for {p} > {max_coef} coefficients: use the model's vcov"],
        )
    V = np.asarray(model.vcov, dtype=float)
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    rows = [
        [names[i], *(f"{C[i, j]:.3f}" if j < i else "" for j in range(p - 1))] for i in range(1, p)
    ]
    return Section(
        "Correlation of Fixed Effects:",
        ["", *(abbreviate(n) for n in names[:-1])],
        rows,
        "l" + "r" * (p - 1),
    )


def summary_sections(
    model, ddf: str | None = "satterthwaite", correlation: bool = True, stars: bool = True
) -> tuple[list[str], list[Section]]:
    """The title lines and the sections of lme4's summary, formatted once for every renderer."""
    if not is_fitted(model):
        raise NotFittedError(
            f"the summary needs a fitted model: call fit() first ({model.formula})"
        )
    fixed, tests = fixed_effects_section(model, ddf, stars)
    sections = [
        fit_statistics_section(model),
        residuals_section(model),
        random_effects_section(model),
        fixed,
        dispersion_section(model, stars),
        *other_component_sections(model, stars),
    ]
    if correlation:
        sections.append(fixef_correlation_section(model))
    if model.issingular:
        sections.append(
            Section(
                "",
                [],
                [],
                "",
                [
                    "boundary (singular) fit: some variance components "
                    "are estimated as zero (see issingular)"
                ],
            )
        )
    return _title(model, tests), [s for s in sections if s is not None]


# ---- renderers --------------------------------------------------------------------------------
def _text_table(s: Section) -> list[str]:
    if not s.header:
        return []
    widths = [
        max(len(s.header[i]), *(len(r[i]) for r in s.rows)) if s.rows else len(s.header[i])
        for i in range(len(s.header))
    ]

    def line(cells):
        return (
            " "
            + " ".join(
                c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, s.align)
            ).rstrip()
        )

    return [line(s.header), *(line(r) for r in s.rows)]


def _text_section(s: Section) -> list[str]:
    if (
        s.title == "" and len(s.header) == 1
    ):  # a single figure: "REML criterion at convergence: 1743.6"
        return [f"{s.header[0]}: {s.rows[0][0]}"]
    return [*([s.title] if s.title else []), *_text_table(s), *s.notes]


def summary_text(
    model,
    style: str = "lme4",
    *,
    ddf: str | None = "satterthwaite",
    correlation: bool = True,
    stars: bool = True,
) -> SummaryText:
    """A fitted model's summary as text.

    Parameters
    ----------
    model : MixedModel
        A fitted linear or generalised mixed model.
    style : {"lme4", "compact"}
        ``"lme4"``: the layout of lme4's ``summary()`` (with lmerTest's
        Satterthwaite t tests for linear models): REML criterion or AIC, BIC,
        logLik, deviance and df.resid; quantiles of the scaled residuals; the
        random effects with every correlation; the fixed effects; the
        correlation of the fixed effects.  ``"compact"``: the layout of
        ``print(model)``.
    ddf : str or None
        Denominator degrees of freedom of the t tests (``"satterthwaite"`` or
        ``"kenward-roger"``) where the model has them; ``None``, or a model
        without them (GLMMs), gives Wald z tests, and the table says so.
    correlation : bool
        Show the correlation of the fixed effects (up to 12 coefficients).
    stars : bool
        Mark p-values with R's significance codes.
    """
    if style == "compact":
        return SummaryText(compact_summary(model))
    if style != "lme4":
        raise MixedModelsError(f"unknown summary style {style!r}; use 'lme4' or 'compact'")
    title, sections = summary_sections(model, ddf, correlation, stars)
    lines = list(title)
    for s in sections:
        lines += ["", *_text_section(s)]
    return SummaryText("\n".join(lines))


def compact_summary(model) -> str:
    """The layout of ``print(model)`` (fit statistics, variance components, coefficient table)."""
    return glmm_summary(model) if getattr(model, "family", None) is not None else lmm_summary(model)


def _markdown_table(s: Section) -> list[str]:
    def cell(c):
        return c.replace("|", "\\|") or " "

    rule = ["---:" if a == "r" else ":---" for a in s.align]
    return ["| " + " | ".join(cell(c) for c in row) + " |" for row in [s.header, rule, *s.rows]]


def model_markdown(model, *, ddf: str | None = None) -> str:
    """The summary as Markdown (for ``_repr_markdown_``): headings, pipe tables, notes.

    ``ddf=None`` (the default here, so that displaying a model stays quick)
    shows Wald z tests; ``ddf="satterthwaite"`` the t tests of the text summary.
    An unfitted model shows its class and formula.
    """
    if not is_fitted(model):
        return f"**{type(model).__name__}** (not fitted): `{model.formula}`"
    title, sections = summary_sections(model, ddf, correlation=False, stars=False)
    out = [f"**{title[0]}**", "", *(f"{t.strip()}  " for t in title[1:])]
    for s in sections:
        out.append("")
        if s.title:
            out += [f"*{s.title.rstrip(':')}*", ""]
        if s.header:
            out += _markdown_table(s)
        notes = [n for n in s.notes if n != "---"]
        out += ["", *(f"{n}  " for n in notes)] if notes and s.header else [f"{n}  " for n in notes]
    return "\n".join(out)


def _html_table(s: Section) -> str:
    def cells(row, tag):
        return "".join(
            f'<{tag} style="text-align:{"right" if a == "r" else "left"}">{html.escape(c)}</{tag}>'
            for c, a in zip(row, s.align)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in s.rows)
    caption = f"<caption>{html.escape(s.title.rstrip(':'))}</caption>" if s.title else ""
    return f"<table>{caption}<thead><tr>{cells(s.header, 'th')}</tr></thead><tbody>{body}</tbody></table>"


def model_html(model, *, ddf: str | None = None) -> str:
    """The summary as an HTML fragment (for ``_repr_html_``): title, then one table per section.

    ``ddf`` as in :func:`model_markdown`.  An unfitted model shows its class and formula.
    """
    if not is_fitted(model):
        return (
            f'<div class="mixedmodels-model"><strong>{html.escape(type(model).__name__)}</strong> '
            f"(not fitted): <code>{html.escape(model.formula)}</code></div>"
        )
    title, sections = summary_sections(model, ddf, correlation=False, stars=False)
    parts = [
        f"<p><strong>{html.escape(title[0])}</strong><br>"
        + "<br>".join(html.escape(t.strip()) for t in title[1:])
        + "</p>"
    ]
    for s in sections:
        if s.header:
            parts.append(_html_table(s))
        parts += [f"<p>{html.escape(n)}</p>" for n in s.notes if n != "---"]
    return f'<div class="mixedmodels-model">{"".join(parts)}</div>'
