"""Scan a chromosome segment for SNP effects on the mean and on the variance (hlmm's ``hlmm_chr.py``).

For each SNP j in ``[start, end)`` of a PLINK bed file the model

    y = Xβ + g_j β_j + G_j b + ε,   log Var(ε_i) = v_i'γ + g_ij γ_j,   b ~ N(0, σ_g² I)

is fitted by maximum likelihood (:mod:`.hlmm`), where g_j is the SNP's
centred allele count (of the bim file's first allele) and G_j, optional,
holds the other SNPs within ``window_bp`` base pairs on the same
chromosome, standardised and divided by √q so that σ_g² is the variance
they explain.  Three nested fits give likelihood-ratio tests with
χ² reference distributions:

* mean effect (1 df): the full model against the one without g_j in the mean,
* variance effect (1 df): against the one without g_j in the variance,
* joint (2 df): against the model without g_j at all.

Estimates and standard errors (observed information) come from the full
model.  Individuals with a missing genotype at SNP j are left out of that
SNP's fits, as hlmm does; SNPs with a minor allele frequency below
``min_maf`` or a missing fraction above ``max_missing`` get a row of NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import DataError, MixedModelsError
from ..genio import read_dosages, read_plink, standardise
from ..progress import ProgressOption, progress_bar
from .hlmm import HLMMResult, fit_hlmm

__all__ = ["SCAN_COLUMNS", "hlmm_scan", "scan_genotypes", "write_tsv"]

SCAN_COLUMNS = [
    "snp", "chrom", "pos", "a1", "a2", "n", "freq", "q_random", "loglik",
    "mean_effect", "mean_se", "mean_lrt", "mean_p",
    "var_effect", "var_se", "var_lrt", "var_p",
    "joint_lrt", "joint_p", "converged",
]  # fmt: skip
"""Columns of the scan's results; ``freq`` is the frequency of ``a1`` (the counted allele),
``var_effect`` is on the log-variance scale."""


@dataclass
class _Covariates:
    """Response and covariate matrices of the analysed individuals."""

    y: np.ndarray
    X: np.ndarray
    V: np.ndarray
    last_null: tuple[bytes, HLMMResult] | None = None

    def subset(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y[keep], self.X[keep], self.V[keep]


def _lrt(full: HLMMResult, reduced: HLMMResult, df: int) -> tuple[float, float]:
    """2(ℓ_full - ℓ_reduced) (at least 0) and its χ²_df upper tail."""
    stat = max(2.0 * (full.loglik - reduced.loglik), 0.0)
    return stat, float(chi2.sf(stat, df))


def _null_fit(cov: _Covariates, keep: np.ndarray, G: np.ndarray | None, key: bytes) -> HLMMResult:
    """The model without the test SNP, reused while the individuals and random-effect SNPs stay the same."""
    if cov.last_null is None or cov.last_null[0] != key:
        y, X, V = cov.subset(keep)
        cov.last_null = (key, fit_hlmm(y, X, V, G))
    return cov.last_null[1]


def _test_snp(cov: _Covariates, g: np.ndarray, G: np.ndarray | None, key: bytes) -> dict:
    """Full and reduced fits for one SNP; a SNP whose models cannot be fitted gets NaN."""
    try:
        return _fit_snp(cov, g, G, key)
    except (MixedModelsError, np.linalg.LinAlgError, FloatingPointError):
        # e.g. the SNP is collinear with the covariates among the individuals it was observed in
        return {"n": int((~np.isnan(g)).sum()), "converged": False}


def _fit_snp(cov: _Covariates, g: np.ndarray, G: np.ndarray | None, key: bytes) -> dict:
    """Full and reduced fits for one SNP (g has NaN where missing)."""
    keep = ~np.isnan(g)
    Gk = None if G is None else G[keep]
    null = _null_fit(cov, keep, Gk, keep.tobytes() + key)
    y, X, V = cov.subset(keep)
    x = (g[keep] - g[keep].mean())[:, None]
    # Warm starts: the null model's variance parameters, no SNP effect on the variance.
    grow = np.concatenate([null.gamma, [0.0], null.fit.theta])
    full = fit_hlmm(y, np.hstack([X, x]), np.hstack([V, x]), Gk, start=grow)
    no_mean = fit_hlmm(y, X, np.hstack([V, x]), Gk, start=full.fit.phi)
    no_var = fit_hlmm(y, np.hstack([X, x]), V, Gk, start=null.fit.phi)
    mean_lrt, mean_p = _lrt(full, no_mean, 1)
    var_lrt, var_p = _lrt(full, no_var, 1)
    joint_lrt, joint_p = _lrt(full, null, 2)
    return {
        "n": int(keep.sum()), "loglik": full.loglik,
        "mean_effect": full.beta[-1], "mean_se": full.beta_se[-1], "mean_lrt": mean_lrt, "mean_p": mean_p,
        "var_effect": full.gamma[-1], "var_se": full.gamma_se[-1], "var_lrt": var_lrt, "var_p": var_p,
        "joint_lrt": joint_lrt, "joint_p": joint_p,
        "converged": full.converged and no_mean.converged and no_var.converged and null.converged,
    }  # fmt: skip


def _allele_summary(g: np.ndarray) -> tuple[float, float, float]:
    """(frequency of the counted allele, minor allele frequency, missing fraction)."""
    observed = g[~np.isnan(g)]
    freq = observed.mean() / 2.0 if observed.size else np.nan
    return freq, min(freq, 1.0 - freq), 1.0 - observed.size / g.size


def _window_members(
    chrom: np.ndarray, pos: np.ndarray, usable: np.ndarray, j: int, window_bp: float
) -> np.ndarray:
    """Indices of usable SNPs other than j on j's chromosome within window_bp of it."""
    near = (chrom == chrom[j]) & (np.abs(pos - pos[j]) <= window_bp) & usable
    near[j] = False
    return np.flatnonzero(near)


def scan_genotypes(
    y,
    X,
    V,
    dosages: np.ndarray,
    *,
    chrom: Sequence | None = None,
    pos: Sequence | None = None,
    tests: Sequence[int] | None = None,
    window_bp: float = 0.0,
    min_maf: float = 0.05,
    max_missing: float = 0.05,
    progress: ProgressOption = "auto",
) -> pd.DataFrame:
    """Test each column of ``dosages`` for effects on the mean and the variance of y.

    Parameters
    ----------
    y : array (n,)
    X, V : array (n, p), (n, d)
        Mean and variance covariates with an intercept column.
    dosages : array (n, m)
        Allele counts (NaN where missing) of the tested SNPs and of their
        neighbours used as random effects.
    chrom, pos : array (m,), optional
        Chromosome and base-pair position of each column (for the window).
    tests : sequence of int, optional
        Columns to test (all by default); the others serve as neighbours only.
    window_bp : float
        Random effects for usable SNPs within this distance (0: none).
    min_maf, max_missing : float
        Filters for tested SNPs and neighbours.
    progress : bool or "auto"
        Progress bar (see :mod:`mixedmodels.progress`; "auto": on a terminal, for long scans).

    Returns
    -------
    DataFrame
        One row per tested column, the columns of :data:`SCAN_COLUMNS` from ``n`` on.
    """
    m = dosages.shape[1]
    chrom = np.zeros(m) if chrom is None else np.asarray(chrom)
    pos = np.arange(m, dtype=float) if pos is None else np.asarray(pos, dtype=float)
    summary = np.array([_allele_summary(dosages[:, j]) for j in range(m)])
    usable = (summary[:, 1] >= min_maf) & (summary[:, 2] <= max_missing)
    cov = _Covariates(
        np.asarray(y, dtype=float), np.asarray(X, dtype=float), np.asarray(V, dtype=float)
    )
    rows = []
    items = range(m) if tests is None else tests
    for j in progress_bar(items, progress=progress, desc="hlmm scan", unit=" SNP"):
        row = {"freq": summary[j, 0], "q_random": 0}
        if usable[j]:
            near = (
                _window_members(chrom, pos, usable, j, window_bp)
                if window_bp > 0
                else np.zeros(0, dtype=int)
            )
            G = standardise(dosages[:, near])[0] / np.sqrt(len(near)) if len(near) else None
            row.update(q_random=len(near), **_test_snp(cov, dosages[:, j], G, near.tobytes()))
        rows.append(row)
    return pd.DataFrame(rows, columns=SCAN_COLUMNS[SCAN_COLUMNS.index("n") :])


def _align(
    panel, pheno: pd.DataFrame, phenotype: str, covariates: list[str], iid_column: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows of the bed file and of ``pheno`` for individuals with complete data, in bed order."""
    needed = list(dict.fromkeys([iid_column, phenotype, *covariates]))
    missing = [c for c in needed if c not in pheno.columns]
    if missing:
        raise DataError(f"column(s) {', '.join(map(repr, missing))} not in the phenotype file")
    table = pheno[needed].dropna()
    table = (
        table.assign(**{iid_column: table[iid_column].astype(str)})
        .drop_duplicates(iid_column)
        .set_index(iid_column)
    )
    iids = panel.fam["iid"].to_numpy()
    rows = np.flatnonzero(np.isin(iids, table.index))
    if rows.size == 0:
        raise DataError(f"no individual of the phenotype file ({iid_column!r}) is in the fam file")
    return rows, table.loc[iids[rows]]


def _design(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.column_stack(
        [np.ones(len(table)), *(table[c].to_numpy(dtype=float) for c in columns)]
    )


def _segment(panel, start: int, end: int | None, window_bp: float) -> tuple[int, int, int]:
    """Bounds (lo, hi) of the SNPs to read, neighbours included, and the number of SNPs in the file."""
    m = len(panel.bim)
    end = m if end is None else min(end, m)
    if not 0 <= start < end:
        raise DataError(f"the SNP range [{start}, {end}) is empty or outside the file's {m} SNPs")
    if window_bp <= 0:
        return start, end, end
    chrom, pos = panel.bim["chrom"].to_numpy(), panel.bim["pos"].to_numpy(dtype=float)
    span = np.arange(m)
    inside = span[
        (pos >= pos[start:end].min() - window_bp) & (pos <= pos[start:end].max() + window_bp)
    ]
    inside = inside[np.isin(chrom[inside], chrom[start:end])]
    return int(min(inside.min(), start)), int(max(inside.max() + 1, end)), end


def hlmm_scan(
    bed: str | Path,
    pheno: pd.DataFrame,
    phenotype: str,
    *,
    mean_covariates: Sequence[str] = (),
    var_covariates: Sequence[str] = (),
    iid_column: str = "iid",
    start: int = 0,
    end: int | None = None,
    window_bp: float = 0.0,
    min_maf: float = 0.05,
    max_missing: float = 0.05,
    progress: ProgressOption = "auto",
) -> pd.DataFrame:
    """Mean and variance effects of SNPs ``start .. end-1`` of a bed file on a phenotype.

    Parameters
    ----------
    bed : path
        PLINK .bed file (or its prefix) with .bim and .fam beside it.
    pheno : DataFrame
        One row per individual: ``iid_column`` matching the fam file's
        individual ids, the phenotype and the covariates.
    phenotype : str
        Column of ``pheno`` to analyse.
    mean_covariates, var_covariates : sequence of str
        Columns for the mean and for the log variance (an intercept is added to both).
    start, end : int
        0-based SNP range, end excluded (default: to the end of the file).
    window_bp : float
        Random effects for the other SNPs within this many base pairs (0: an HLM, no random effects).
    min_maf, max_missing : float
        SNP filters (tested SNPs and neighbours).
    progress : bool or "auto"
        Progress bar (see :mod:`mixedmodels.progress`; "auto": on a terminal, for long scans).

    Returns
    -------
    DataFrame
        Columns :data:`SCAN_COLUMNS`, one row per SNP.
    """
    panel = read_plink(bed)
    rows, table = _align(panel, pheno, phenotype, [*mean_covariates, *var_covariates], iid_column)
    lo, hi, end = _segment(panel, start, end, window_bp)
    dosages = read_dosages(panel, np.s_[lo:hi], rows)
    result = scan_genotypes(
        table[phenotype].to_numpy(dtype=float),
        _design(table, mean_covariates), _design(table, var_covariates),
        dosages, chrom=panel.bim["chrom"].to_numpy()[lo:hi], pos=panel.bim["pos"].to_numpy()[lo:hi],
        tests=range(start - lo, end - lo), window_bp=window_bp, min_maf=min_maf, max_missing=max_missing,
        progress=progress,
    )  # fmt: skip
    snps = (
        panel.bim.iloc[start:end][["snp", "chrom", "pos", "allele_1", "allele_2"]]
        .rename(columns={"allele_1": "a1", "allele_2": "a2"})
        .reset_index(drop=True)
    )
    return pd.concat([snps, result], axis=1)[SCAN_COLUMNS]


def write_tsv(results: pd.DataFrame, path: str | Path) -> Path:
    """Write scan results as a tab-separated file (NaN as ``NA``); returns the path."""
    path = Path(path)
    results.to_csv(path, sep="\t", index=False, na_rep="NA", float_format="%.8g")
    return path
