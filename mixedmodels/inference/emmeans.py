"""Estimated marginal means, their pairwise comparisons and trends (R's emmeans).

The reference grid holds every combination of the levels of the model's
factors, with each numeric covariate at its mean over the rows used.  Its
model matrix G (one row per cell, built with the training encodings) gives
the cell predictions Gβ̂.  The marginal mean of a level combination of
``specs`` (within each level combination of ``by``) is the equally weighted
average of the cells that share it, l'β̂ with l the average of their rows
of G (emmeans' default ``weights = "equal"``).  Standard errors are
√(l'Vl); df are Satterthwaite's or Kenward–Roger's (then with Φ_A as V) for
linear models and infinite (z) for generalised ones.  A mean whose l is not
estimable (an empty cell of a rank-deficient design) is NaN, as emmeans'
``nonEst``.

``emtrends`` replaces G by its derivative with respect to a covariate,
(G(x + h) - G(x - h)) / 2h with h = 10⁻³ times the covariate's range
(exact for models linear in it), and averages in the same way.

``pairs`` tests all differences of the means within each ``by`` group,
with p-values adjusted over that family: Tukey's studentized range
(``ptukey(√2 |t|, k, df)``, k the number of means), Holm, Bonferroni,
Šidák or none.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .contrasts import add_tests, check_level, estimate_rows
from .ddf import normalize_ddf
from .fixedterms import variable_kinds

__all__ = ["emmeans", "emtrends", "EmmGrid", "reference_grid", "adjust_pvalues"]

ADJUST = ("tukey", "holm", "bonferroni", "sidak", "none")


def _factors(model: MixedModel) -> dict[str, list]:
    """Factor -> its levels, for the categorical variables of the fixed effects."""
    return {
        v: list(state["categories"])
        for v, (kind, state) in variable_kinds(model).items()
        if kind == "categorical"
    }


def _covariates(model: MixedModel) -> list[str]:
    frame = model.structure.frame.frame
    spec = model.structure.fe.design.spec
    factors = _factors(model)
    return [v for v in sorted(spec.required_variables) if v in frame.columns and v not in factors]


def reference_grid(model: MixedModel, at: dict | None = None) -> pd.DataFrame:
    """Every combination of factor levels (first factor fastest), covariates at their means."""
    frame = model.structure.frame.frame
    factors = _factors(model)
    at = _check_at(model, at)
    names = list(factors)
    combos = list(itertools.product(*[factors[f] for f in reversed(names)]))
    grid = pd.DataFrame({f: [c[len(names) - 1 - i] for c in combos] for i, f in enumerate(names)})
    for f in names:
        grid[f] = pd.Categorical(grid[f], categories=factors[f])
    for v in _covariates(model):
        grid[v] = float(at.get(v, frame[v].astype(float).mean()))
    return grid if len(grid) else pd.DataFrame(index=[0])


def _check_at(model: MixedModel, at: dict | None) -> dict[str, float]:
    """``at`` as {covariate: number}; an unknown name or a value that is not a number is named."""
    if at is None:
        return {}
    if not isinstance(at, dict):
        raise MixedModelsError(f"at must be a dict of covariate values, got {type(at).__name__}")
    covariates = _covariates(model)
    out = {}
    for name, value in at.items():
        if name not in covariates:
            listed = ", ".join(map(repr, covariates)) or "none"
            raise MixedModelsError(
                f"at names {name!r}, which is not a numeric covariate of the fixed effects "
                f"(those are {listed})"
            )
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            raise MixedModelsError(f"at[{name!r}] must be one number, got {value!r}") from None
    return out


def _names(spec, what: str, model: MixedModel) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        items = [
            s.strip() for s in spec.replace("|", ":").replace("*", ":").split(":") if s.strip()
        ]
    elif isinstance(spec, (list, tuple)) and all(isinstance(s, str) for s in spec):
        items = list(spec)
    else:
        raise MixedModelsError(f"{what} must be a factor name or a list of names, got {spec!r}")
    factors = _factors(model)
    unknown = [s for s in items if s not in factors]
    if unknown:
        listed = ", ".join(map(repr, factors)) or "none"
        raise MixedModelsError(
            f"{what} {', '.join(map(repr, unknown))} is not a factor of the model's fixed effects; "
            f"its factors are {listed}"
        )
    return items


def _non_estimable(model: MixedModel, rows_full: np.ndarray) -> np.ndarray:
    """True for rows (over all columns of the design, aliased ones included) not in X's row space."""
    full = model.structure.fe.design.matrix
    if full.shape[1] == model.structure.fe.rank:
        return np.zeros(len(rows_full), dtype=bool)
    _, s, vt = np.linalg.svd(full, full_matrices=True)
    null = vt[np.sum(s > s[0] * 1e-9) :].T
    scale = np.maximum(np.abs(rows_full).max(axis=1), 1.0)
    return np.abs(rows_full @ null).max(axis=1) > 1e-6 * scale


@dataclass
class EmmGrid:
    """Marginal means (or trends): their rows l over the coefficients and their labels."""

    model: MixedModel
    L: np.ndarray
    labels: pd.DataFrame
    specs: list[str]
    by: list[str]
    ddf: str | None
    level: float
    estimate_name: str = "emmean"
    nonest: np.ndarray | None = None

    type: str = "link"

    @property
    def table(self) -> pd.DataFrame:
        """specs, by, the estimate, SE, df and the confidence interval, one row per mean.

        With df infinite (z) the interval columns are ``asymp.LCL``,
        ``asymp.UCL`` as in emmeans.  For ``type="response"`` of a GLMM the
        means are g⁻¹(l'β̂), their SE the delta method's, and the interval
        the transformed link-scale one (emmeans' ``regrid``).
        """
        rows = estimate_rows(self.model, self.L, self.ddf)
        if self.nonest is not None:
            rows.loc[self.nonest, :] = np.nan
        rows = add_tests(rows, self.level)
        name, lower, upper = self.estimate_name, "lower.CL", "upper.CL"
        if self.type == "response":
            name = _response_name(self.model)
            link = self.model.family.link
            rows["SE"] = np.abs(link.mu_eta(rows["estimate"])) * rows["SE"]
            a, b = link.linkinv(rows["lower.CL"]), link.linkinv(rows["upper.CL"])
            rows["lower.CL"], rows["upper.CL"] = np.minimum(a, b), np.maximum(a, b)
            rows["estimate"] = link.linkinv(rows["estimate"])
        if not np.isfinite(rows["df"]).all():
            lower, upper = "asymp.LCL", "asymp.UCL"
        out = self.labels.reset_index(drop=True).copy()
        out[name] = rows["estimate"].to_numpy()
        out["SE"], out["df"] = rows["SE"].to_numpy(), rows["df"].to_numpy()
        out[lower], out[upper] = rows["lower.CL"].to_numpy(), rows["upper.CL"].to_numpy()
        return out

    def _method(self) -> str:
        if self.model.family is not None or self.ddf is None:
            return "asymptotic"
        return normalize_ddf(self.ddf)

    def __str__(self) -> str:
        from .tableformat import format_table

        table = self.table
        footer = (
            f"\nDegrees-of-freedom method: {self._method()}\nConfidence level used: {self.level}"
        )
        return _by_blocks(table, self.by, format_table) + footer

    def __repr__(self) -> str:
        return str(self)

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> PairsTable:
        """All pairwise differences within each ``by`` group, with adjusted p-values."""
        if adjust not in ADJUST:
            raise MixedModelsError(f"adjust must be one of {', '.join(ADJUST)}; got {adjust!r}")
        groups = self._groups()
        rows, labels, family = [], [], []
        for key, idx in groups.items():
            for i, j in itertools.combinations(idx, 2):
                a, b = (j, i) if reverse else (i, j)
                rows.append(self.L[a] - self.L[b])
                labels.append(_pair_label(self.labels, self.specs, a, b, self.by, key))
                family.append(len(idx))
        if not rows:
            raise MixedModelsError("pairs need at least two means in a group")
        return _pairs_table(self, np.array(rows), pd.DataFrame(labels), np.array(family), adjust)

    def contrast(self, method="pairwise", adjust: str | None = None) -> PairsTable:
        """emmeans' ``contrast``: ``"pairwise"`` / ``"revpairwise"`` (Tukey-adjusted by default)
        or a mapping of names to coefficient vectors over the means of each ``by`` group
        (unadjusted by default, as in emmeans)."""
        if isinstance(method, str) and method in ("pairwise", "revpairwise"):
            return self.pairs(adjust=adjust or "tukey", reverse=method == "revpairwise")
        if isinstance(method, dict):
            return self._custom_contrasts(method, adjust or "none")
        raise MixedModelsError(
            f"contrast method {method!r} is not available; use 'pairwise', 'revpairwise' or a dict "
            "of named coefficient vectors, e.g. {'A - B': [1, -1, 0]}"
        )

    def _custom_contrasts(self, coefs: dict, adjust: str) -> PairsTable:
        if adjust not in ADJUST:
            raise MixedModelsError(f"adjust must be one of {', '.join(ADJUST)}; got {adjust!r}")
        groups = self._groups()
        size = len(next(iter(groups.values())))
        rows, labels = [], []
        for key, idx in groups.items():
            for name, c in coefs.items():
                c = _coefficients(name, c, size)
                rows.append(c @ self.L[idx])
                keys = key if isinstance(key, tuple) else (key,)
                labels.append({"contrast": str(name), **dict(zip(self.by, keys))})
        family = np.full(len(rows), size)
        return _pairs_table(self, np.array(rows), pd.DataFrame(labels), family, adjust)

    def _groups(self) -> dict:
        """Row indices of the means of each ``by`` group (one group without ``by``)."""
        if not self.by:
            return {(): np.arange(len(self.labels))}
        return self.labels.groupby(self.by, sort=False, observed=True).indices


def _coefficients(name, c, size: int) -> np.ndarray:
    """One custom contrast's coefficients: ``size`` finite numbers."""
    try:
        arr = np.asarray(c, dtype=float)
    except (TypeError, ValueError):
        raise MixedModelsError(
            f"contrast {name!r}: coefficients must be numbers, got {c!r}"
        ) from None
    if arr.shape != (size,) or not np.isfinite(arr).all():
        raise MixedModelsError(
            f"contrast {name!r} needs {size} finite coefficients, one per mean, got {c!r}"
        )
    return arr


def _response_name(model: MixedModel) -> str:
    """emmeans' name of a mean on the response scale: prob, rate or response."""
    link = model.family.link.name
    return {"logit": "prob", "probit": "prob", "cloglog": "prob", "log": "rate"}.get(
        link, "response"
    )


def _level_label(factor: str, level) -> str:
    """A level as emmeans labels it in contrasts: numbers get the factor's name (``nf0.2``)."""
    text = str(level)
    try:
        float(text)
    except ValueError:
        return text
    return f"{factor}{text}"


def _pair_label(labels: pd.DataFrame, specs: list[str], a: int, b: int, by: list[str], key) -> dict:
    name = lambda i: " ".join(_level_label(s, labels.iloc[i][s]) for s in specs)  # noqa: E731
    out = {"contrast": f"{name(a)} - {name(b)}"}
    keys = key if isinstance(key, tuple) else (key,)
    out.update(dict(zip(by, keys)))
    return out


class PairsTable(pd.DataFrame):
    """Pairwise comparisons, printed as emmeans prints them."""

    _metadata = ["footer", "by"]

    @property
    def _constructor(self):
        return PairsTable

    def __str__(self) -> str:
        from .tableformat import format_table

        return (
            _by_blocks(self, getattr(self, "by", []), format_table)
            + "\n"
            + getattr(self, "footer", "")
        )

    def __repr__(self) -> str:
        return str(self)


def _pairs_table(grid: EmmGrid, L, labels, family, adjust) -> PairsTable:
    rows = estimate_rows(grid.model, L, grid.ddf)
    ratio = rows["estimate"] / rows["SE"]
    from scipy.stats import t as student

    raw = 2 * student.sf(np.abs(ratio), rows["df"])
    name = "t.ratio" if np.isfinite(rows["df"]).all() else "z.ratio"
    table = labels.copy()
    for col in ("estimate", "SE", "df"):
        table[col] = rows[col].to_numpy()
    table[name] = ratio.to_numpy()
    groups = table.groupby(grid.by, sort=False).indices if grid.by else {(): np.arange(len(table))}
    p = np.empty(len(table))
    for idx in groups.values():
        p[idx] = adjust_pvalues(
            raw[idx], adjust, ratio.to_numpy()[idx], rows["df"].to_numpy()[idx], family[idx[0]]
        )
    table["p.value"] = p
    out = PairsTable(table)
    out.by = grid.by
    k = int(family.max())
    note = {
        "tukey": f"P value adjustment: tukey method for comparing a family of {k} estimates",
        "none": "",
    }.get(adjust, f"P value adjustment: {adjust} method for {int(len(L) / len(groups))} tests")
    out.footer = f"Degrees-of-freedom method: {grid._method()}\n{note}".rstrip()
    return out


def adjust_pvalues(p, method: str, ratio=None, df=None, nmeans: int | None = None) -> np.ndarray:
    """Adjusted p-values of one family of m tests (Tukey needs t ratios, df and the number of means)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if method == "none":
        return p
    if method == "bonferroni":
        return np.minimum(1.0, m * p)
    if method == "sidak":
        return 1.0 - (1.0 - p) ** m
    if method == "holm":
        order = np.argsort(p)
        adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, adjusted)
        return out
    if method == "tukey":
        from scipy.stats import studentized_range

        q = np.sqrt(2) * np.abs(np.asarray(ratio, dtype=float))
        dfs = np.where(np.isfinite(df), df, 1e6)
        return np.array([float(studentized_range.sf(qi, nmeans, d)) for qi, d in zip(q, dfs)])
    raise MixedModelsError(f"adjust must be one of {', '.join(ADJUST)}; got {method!r}")


def _by_blocks(table: pd.DataFrame, by: list[str], fmt) -> str:
    if not by:
        return fmt(pd.DataFrame(table).set_index(table.columns[0]) if len(table.columns) else table)
    parts = []
    for key, sub in pd.DataFrame(table).groupby(by, sort=False, observed=True):
        keys = key if isinstance(key, tuple) else (key,)
        head = ", ".join(f"{b} = {k}" for b, k in zip(by, keys))
        body = sub.drop(columns=by)
        parts.append(f"{head}:\n{fmt(body.set_index(body.columns[0]))}\n")
    return "\n".join(parts)


def _averaged_rows(
    grid: pd.DataFrame, G: np.ndarray, keys: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Equal-weight averages of the rows of G over each combination of ``keys`` (first key fastest)."""
    if not keys:
        return G.mean(axis=0, keepdims=True), pd.DataFrame(index=[0])
    codes = grid[keys].apply(lambda c: c.cat.codes)
    levels = [list(grid[k].cat.categories) for k in keys]
    combos = list(itertools.product(*[range(len(lv)) for lv in reversed(levels)]))
    rows, labels = [], []
    for combo in combos:
        combo = combo[::-1]
        mask = np.all(codes.to_numpy() == np.array(combo), axis=1)
        rows.append(G[mask].mean(axis=0))
        labels.append({k: levels[i][c] for i, (k, c) in enumerate(zip(keys, combo))})
    labels = pd.DataFrame(labels)
    for i, k in enumerate(keys):
        labels[k] = pd.Categorical(labels[k], categories=levels[i])
    return np.array(rows), labels


def _grid_rows(model: MixedModel, grid: pd.DataFrame, full: bool = False) -> np.ndarray:
    design = model.structure.fe.design
    G = design.on(grid)
    return G if full else G[:, model.structure.fe.keep]


def _build(model, specs, by, ddf, level, at, rows_of) -> EmmGrid:
    model.require_fit("marginal means")
    check_level(level)
    specs_, by_ = _names(specs, "specs", model), _names(by, "by", model)
    if not specs_:
        raise MixedModelsError("specs must name at least one factor of the model")
    grid = reference_grid(model, at)
    G_full = rows_of(grid)
    L_full, labels = _averaged_rows(grid, G_full, specs_ + by_)
    if by_:  # by groups slowest, as emmeans lists them
        order = labels.sort_values(by_, kind="stable").index.to_numpy()
        L_full, labels = L_full[order], labels.iloc[order].reset_index(drop=True)
    keep = model.structure.fe.keep
    nonest = _non_estimable(model, L_full)
    if model.family is None and ddf is not None:
        normalize_ddf(ddf)
    return EmmGrid(model, L_full[:, keep], labels, specs_, by_, ddf, level, nonest=nonest)


def emmeans(
    model: MixedModel,
    specs,
    by=None,
    *,
    ddf: str | None = "satterthwaite",
    level: float = 0.95,
    at: dict | None = None,
    weights: str = "equal",
    type: str = "link",
) -> EmmGrid:
    """Estimated marginal means of ``specs`` (within ``by``), as R's ``emmeans(model, specs, by)``.

    Parameters
    ----------
    specs, by : str or list of str
        Factors of the fixed effects (``"cond"``, ``["a", "b"]`` or ``"a:b"``).
    ddf : {"satterthwaite", "kenward-roger"} or None
        df of a linear model's intervals and tests (None: asymptotic z).
    at : dict, optional
        Values of numeric covariates in the reference grid (default: their means).
    weights : "equal"
        Cells are averaged with equal weights (emmeans' default).
    type : {"link", "response"}
        Generalised models: means of the linear predictor (default) or of
        the response, g⁻¹ of them (pairs stay on the link scale).

    Returns
    -------
    EmmGrid
        ``.table`` is the DataFrame (specs, by, emmean, SE, df, lower.CL,
        upper.CL); ``.pairs(adjust=...)`` the pairwise comparisons.
    """
    if weights != "equal":
        raise MixedModelsError(f"weights must be 'equal' (emmeans' default), got {weights!r}")
    if type not in ("link", "response"):
        raise MixedModelsError(f"type must be 'link' or 'response', got {type!r}")
    out = _build(model, specs, by, ddf, level, at, lambda g: _grid_rows(model, g, full=True))
    out.type = type if model.family is not None else "link"
    return out


def emtrends(
    model: MixedModel,
    specs,
    var: str,
    by=None,
    *,
    ddf: str | None = "satterthwaite",
    level: float = 0.95,
    at: dict | None = None,
) -> EmmGrid:
    """Slopes of the linear predictor with respect to the covariate ``var`` for each level of ``specs``."""
    if var not in _covariates(model):
        raise MixedModelsError(
            f"var {var!r} is not a numeric covariate of the fixed effects; they are "
            f"{', '.join(map(repr, _covariates(model))) or 'none'}"
        )
    values = model.structure.frame.frame[var].astype(float)
    h = 1e-3 * float(values.max() - values.min() or 1.0)

    def slopes(grid: pd.DataFrame) -> np.ndarray:
        up, down = grid.copy(), grid.copy()
        up[var] += h
        down[var] -= h
        return (_grid_rows(model, up, True) - _grid_rows(model, down, True)) / (2 * h)

    out = _build(model, specs, by, ddf, level, at, slopes)
    out.estimate_name = f"{var}.trend"
    return out
