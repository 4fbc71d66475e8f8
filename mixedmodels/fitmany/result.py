"""The result of a many-response fit: one tidy row per response, and views of it.

:attr:`ManyFits.table` has one row per response with ``converged``,
``singular``, ``convergence`` (the post-fit check's verdict), ``optimizer``
(``lockstep Newton``, ``LN_BOBYQA``, or ``LN_BOBYQA after lockstep (why)``
for a response the lockstep method left), ``feval`` (stacked evaluations
for a lockstep fit), ``objective``, ``sigma``, ``theta.<name>``, the
standard deviations and correlations (``sd_(Intercept)|donor``), and per
coefficient ``beta.<c>``, ``se.<c>``, ``z.<c>`` (``t.<c>`` and ``df.<c>``
with ``ddf=``) and ``p.<c>``; ``message`` says why a row failed (its
numbers are then NaN; ``convergence`` and ``optimizer`` are "").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError

__all__ = ["ManyFits", "variance_fractions", "write_parquet"]


class ManyFits:
    """Fits of many responses to one design (see :func:`~mixedmodels.fitmany.fit_many`).

    Attributes
    ----------
    table : DataFrame
        One row per response, indexed by response name.
    coefnames : list of str
        The fixed effects (lme4's names, e.g. ``conditionb``).
    info : dict
        The run: formula, family, criterion, chunk size, scheduler, start mode, θ if fixed.
    """

    def __init__(self, table: pd.DataFrame, coefnames: list[str], info: dict[str, Any], design):
        self.table, self.coefnames, self.info = table, list(coefnames), info
        self._design = design

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        ok = int(self.table["converged"].sum())
        failed = int((self.table["message"] != "").sum())
        return (
            f"<ManyFits: {len(self)} responses to {self.info['formula']!r} ({self.info['criterion']}); "
            f"{ok} converged, {failed} with a message>"
        )

    @property
    def failures(self) -> pd.DataFrame:
        """Responses whose row carries a message (failed, or not converged)."""
        return self.table.loc[self.table["message"] != "", ["message"]]

    def coefficient_name(self, name: str) -> str:
        """``name`` as a column of the table; formulaic's ``condition[T.b]`` is lme4's ``conditionb``."""
        if name in self.coefnames:
            return name
        alias = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
        if alias in self.coefnames:
            return alias
        raise MixedModelsError(
            f"no fixed effect {name!r}; the coefficients are {', '.join(self.coefnames)}"
        )

    def coef(self, name: str, method: str = "fdr_bh") -> pd.DataFrame:
        """One coefficient across responses, with p-values adjusted over the responses.

        Columns ``estimate``, ``se``, ``z`` (or ``t`` and ``df``), ``p``,
        ``p_adj`` (Benjamini–Hochberg by default; any ``method`` of
        ``statsmodels.stats.multitest.multipletests``), ``converged`` and
        ``message``.  Failed responses have NaN p and are left out of the
        adjustment (which counts only the tests done).
        """
        c = self.coefficient_name(name)
        stat = "t" if f"t.{c}" in self.table else "z"
        cols = {f"beta.{c}": "estimate", f"se.{c}": "se", f"{stat}.{c}": stat}
        if f"df.{c}" in self.table:
            cols[f"df.{c}"] = "df"
        cols[f"p.{c}"] = "p"
        out = self.table[list(cols)].rename(columns=cols)
        out["p_adj"] = adjust(out["p"].to_numpy(dtype=float), method)
        out["converged"] = self.table["converged"]
        out["message"] = self.table["message"]
        return out

    def varpart(self) -> pd.DataFrame:
        """Fractions of variance per component and response (variancePartition's fitExtractVarPartModel).

        See :func:`variance_fractions`.  Each row sums to 1 (NaN for failed responses).
        """
        return variance_fractions(self.table, self._design)

    def to_parquet(self, path: str | Path, chunk: int | None = None) -> Path:
        """Write the table to a Parquet file, one row group per ``chunk`` rows (default the run's chunk)."""
        size = chunk or self.info.get("chunk", 256)
        return write_parquet(
            (self.table.iloc[i : i + size] for i in range(0, len(self.table), size)), path
        )


def adjust(p: np.ndarray, method: str = "fdr_bh") -> np.ndarray:
    """Multiple-testing adjustment of the finite p-values (statsmodels' multipletests); NaN stays NaN."""
    try:
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        raise MixedModelsError(
            "adjusted p-values need statsmodels: pip install statsmodels (or mixedmodels[all])"
        ) from None
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        try:
            out[ok] = multipletests(p[ok], method=method)[1]
        except ValueError as exc:
            raise MixedModelsError(f"p-value adjustment {method!r}: {exc}") from None
    return out


def write_parquet(frames, path: str | Path) -> Path:
    """Write DataFrames with the same columns to one Parquet file, a row group each, as they come."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MixedModelsError(
            "writing Parquet needs pyarrow: pip install mixedmodels[parquet]"
        ) from None
    path = Path(path)
    writer = None
    try:
        for frame in frames:
            batch = pa.Table.from_pandas(frame, preserve_index=True)
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_table(batch.cast(writer.schema))
    except OSError as exc:
        raise MixedModelsError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if writer is not None:
            writer.close()
    return path


# ---- variance partition ------------------------------------------------------------------------
def variance_fractions(table: pd.DataFrame, design) -> pd.DataFrame:
    """Variance of each component over the total, per response.

    As variancePartition's ``calcVarPart``:

    * a random-effects term contributes the variance it adds at an
      observation, averaged over observations, mean_t z_t'Σ_g z_t with
      Σ_g = σ²λ_gλ_g' (σ²_g for a random intercept);
    * a fixed-effects term (all columns of ``condition``, say) contributes
      the variance over samples of its part of the linear predictor,
      var(X_term β_term);
    * the residual contributes σ² (linear models); for a Poisson or
      binomial model on the link scale, the distribution-specific variance
      of Nakagawa & Schielzeth: log(1 + 1/exp(β₀)) (log link) or π²/3
      (logit link).

    The fractions of a response sum to 1.  With θ fixed (screening), every
    response has the same θ, so the random-effects fractions differ between
    responses only through the fixed effects' variance.
    """
    structure = design.structure
    parts = {}
    theta = table[[c for c in table.columns if c.startswith("theta.")]].to_numpy(dtype=float)
    sigma = table["sigma"].to_numpy(dtype=float)
    scale = np.where(np.isfinite(sigma), sigma, 1.0) ** 2
    for name, weight in _random_parts(structure, theta).items():
        parts[name] = weight * scale
    for name, cols in _fixed_terms(structure).items():
        beta = table[[f"beta.{structure.fe.coefnames[j]}" for j in cols]].to_numpy(dtype=float)
        fitted = structure.fe.X[:, cols] @ beta.T
        parts[name] = np.var(fitted, axis=0, ddof=1)
    parts["Residuals"] = _residual_variance(design, table, sigma)
    frame = pd.DataFrame(parts, index=table.index)
    return frame.div(frame.sum(axis=1), axis=0)


def _random_parts(structure, theta: np.ndarray) -> dict[str, np.ndarray]:
    """mean_t z_t'λλ'z_t per original term (in units of σ²), one value per response."""
    from ..structure import lme4_blocks
    from ..thetalayout import lambdas

    out: dict[str, np.ndarray] = {}
    rows = [lambdas(structure.reterms, structure.theta_perm, th) for th in theta]
    for ri, bi in lme4_blocks(structure.reterms):
        r = structure.reterms[ri]
        block = r.blocks[bi]
        z = r.z[:, block]
        label = (
            r.name
            if r.cnames[block] == ["(Intercept)"]
            else f"{r.name}: {', '.join(r.cnames[block])}"
        )
        values = []
        for lams in rows:
            lam = lams[ri][block, block]
            values.append(np.mean(np.sum((z @ lam) ** 2, axis=1)))
        out[label] = np.nan_to_num(np.array(values), nan=np.nan)
    return out


def _fixed_terms(structure) -> dict[str, list[int]]:
    """Kept columns of X per fixed-effects term of the formula (the intercept left out)."""
    names = structure.fe.coefnames
    spec = structure.fe.design.spec
    keep = list(structure.fe.keep)
    out: dict[str, list[int]] = {}
    for term, cols in getattr(spec, "term_slices", {}).items():
        label = str(term)
        if label in ("1", "Intercept"):
            continue
        kept = [keep.index(j) for j in range(cols.start, cols.stop) if j in keep]
        if kept and names[kept[0]] != "(Intercept)":
            out[label] = kept
    return out


def _residual_variance(design, table: pd.DataFrame, sigma: np.ndarray) -> np.ndarray:
    family = design.family
    if family is None:
        return sigma**2
    link = type(getattr(family, "link", None)).__name__.lower()
    if "log" in link and "logit" not in link:
        b0 = table.get("beta.(Intercept)")
        if b0 is None:
            raise MixedModelsError("the variance partition of a log-link model needs an intercept")
        return np.log1p(np.exp(-b0.to_numpy(dtype=float)))
    if "logit" in link:
        return np.full(len(table), np.pi**2 / 3)
    raise MixedModelsError(
        f"no distribution-specific residual variance for the {type(family).__name__} family with "
        f"{type(family.link).__name__}; varpart() covers Gaussian, Poisson (log) and binomial (logit)"
    )
