"""Genome-wide association scan under the kinship model (FaST-LMM's ``single_snp``, limix's scan/iscan).

For each SNP ``g`` and phenotype ``y`` the scan compares

* null:        ``y = Xβ + e'``,
* alternative: ``y = Xβ + g γ + e'``,  ``Cov(e') = s² (h² K + (1 - h²) I)``,

with ``h²`` fixed at the null model's estimate (REML by default), ``β`` and
``s²`` profiled by maximum likelihood.  Genotypes are allele counts of the
``.bim`` file's first allele, missing calls mean-imputed per SNP, so ``γ`` is
the effect of one more copy of that allele.

In the interaction mode (limix's ``iscan``) the null model holds ``g`` and
the environments ``E`` (in ``X``); the alternative adds ``g ∘ E``; the test has
``ncol(E)`` degrees of freedom.

``K`` is decomposed once; SNPs are read, rotated by ``U'`` and tested in
blocks of ``chunk_size`` (:mod:`mixedmodels.genetics.association`), in this
process or as Dask tasks (:mod:`mixedmodels.genetics.parallel`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import chi2
from scipy.stats import f as f_dist

from mixedmodels.errors import DataError
from mixedmodels.genetics.association import (
    NullFit,
    TestResult,
    nested_tests,
    wald_statistic,
    weighted_cross_products,
)
from mixedmodels.genetics.basis import (
    CentredBlock,
    MixedWhitening,
    Rotation,
    Whitening,
    whitening_pays,
)
from mixedmodels.genetics.decomposition import Decomposition, decompose
from mixedmodels.genetics.heritability import estimate_h2
from mixedmodels.genetics.likelihood import RotatedData, profiled_loglik
from mixedmodels.genetics.loco import loco_parts
from mixedmodels.genetics.multitest import genomic_inflation
from mixedmodels.genetics.parallel import open_scheduler, run_blocks
from mixedmodels.genetics.phenotypes import INTERCEPT, Phenotypes, as_covariates, as_phenotypes
from mixedmodels.genetics.results import ScanResult
from mixedmodels.genio.genotypes import (
    GenotypeSource,
    align_samples,
    as_genotype_source,
    chunk_bounds,
    mean_impute,
    select_snps,
)
from mixedmodels.genio.plink import BedBlocks, PlinkData
from mixedmodels.genio.samples import labels_of, positions

__all__ = ["genomic_inflation", "scan"]

PRECISIONS = ("auto", "double", "mixed")

MIXED_MIN_N = 2000
"""``precision="auto"`` whitens in mixed precision from this many individuals on,
where the ``n²``-per-SNP product is most of the scan."""

REFINE_STATISTIC = 24.0
"""Mixed precision: SNPs whose LRT or Wald statistic exceeds this (p < 1e-6) are
recomputed in double precision: a relative error ``ε`` of the statistic moves
the p-value by about ``ε · statistic / 2`` relative, most for the hits.  (Each
recomputation streams ``U``, 8 n² bytes, so it is kept to the few SNPs that
matter; below the threshold the p-values stay within ~2e-7 relative.)"""


@dataclass(frozen=True)
class ScanState:
    """Everything a block of SNPs needs; sent once to each Dask worker.

    ``basis`` where blocks are brought (:mod:`mixedmodels.genetics.basis`);
    ``X`` (n, p), ``Y`` (n, t), their images in that basis (``V⁻¹X``, ``V⁻¹Y``
    for a :class:`MixedWhitening`, whose blocks are not rotated) and
    ``gram_XY = [X Y]'[X Y]``; ``nulls`` one :class:`NullFit` per phenotype, with
    weights for that basis; ``E`` (n, e) the environments of an interaction
    scan or ``None``; ``reestimate`` whether ``h²`` is re-fitted for every SNP
    (by ML, searching ``grid_size`` points; the basis is then a rotation).
    """

    basis: Rotation | Whitening | MixedWhitening
    X: np.ndarray
    X_rot: np.ndarray
    Y: np.ndarray
    Y_rot: np.ndarray
    gram_XY: np.ndarray
    nulls: tuple[NullFit, ...]
    E: np.ndarray | None
    reestimate: bool
    grid_size: int

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def plain_mixed(self) -> bool:
        """A plain scan in mixed precision: blocks go through :class:`CentredBlock`."""
        return self.E is None and isinstance(self.basis, MixedWhitening)

    @property
    def q0(self) -> int:
        """SNP columns in the null model: the SNP itself in an interaction scan."""
        return 0 if self.E is None else 1

    @property
    def low_rank(self) -> bool:
        return self.basis.low_rank


class BlockRef(NamedTuple):
    """A block a Dask worker reads itself from a PLINK file (rather than being sent)."""

    source: BedBlocks
    start: int
    stop: int


class BlockResult(NamedTuple):
    """Per block: ``af`` (c,) frequency of the counted allele; per phenotype a
    :class:`TestResult` and the ``h²`` used (c,); ``notes`` how many per-SNP ``h²``
    fits stopped short of a singular ``V``."""

    af: np.ndarray
    tests: list[TestResult]
    h2: list[np.ndarray]
    notes: int


def snp_columns(G: np.ndarray, E: np.ndarray | None) -> np.ndarray:
    """Per-SNP design columns ``C`` (n, c, q): ``g`` alone, or ``[g, g∘E_1, ..., g∘E_e]``."""
    if E is None:
        return G[:, :, None]
    return np.concatenate([G[:, :, None], G[:, :, None] * E[:, None, :]], axis=2)


def scan_block(block: np.ndarray | BlockRef, state: ScanState) -> BlockResult:
    """Test every SNP of one block against every phenotype.

    Parameters
    ----------
    block : ndarray (n, c) of allele counts, or a :class:`BlockRef` to read
    state : ScanState
    """
    plain_mixed = state.plain_mixed
    if isinstance(block, BlockRef):
        G = block.source.read(block.start, block.stop, counts=plain_mixed)
    else:
        G = block
    if plain_mixed:
        centred = CentredBlock.of(G)
        result = _plain_mixed_tests(centred, state)
        return BlockResult(centred.mean / 2, [result], [np.full(G.shape[1], state.nulls[0].h2)], 0)
    filled, mean = mean_impute(G)
    C = snp_columns(filled, state.E)
    if isinstance(state.basis, MixedWhitening):
        result = _mixed_precision_tests(C, state)
        return BlockResult(mean / 2, [result], [np.full(C.shape[1], state.nulls[0].h2)], 0)
    n, c, q = C.shape
    C_rot = state.basis.apply(C.reshape(n, c * q)).reshape(-1, c, q)
    raw = _raw_products(C, state) if state.low_rank or state.reestimate else None
    tests, h2s, notes = [], [], 0
    for i, null in enumerate(state.nulls):
        if state.reestimate:
            result, h2, n_notes = _reestimated_tests(C_rot, raw, state, i)
            notes += n_notes
        else:
            raw_i = (raw[0], raw[1], raw[2][..., i]) if raw is not None else None
            products = weighted_cross_products(C_rot, state.X_rot, state.Y_rot[:, i], null, raw_i)
            result, h2 = nested_tests(*products, null, n, state.q0), np.full(c, null.h2)
        tests.append(result)
        h2s.append(h2)
    return BlockResult(mean / 2, tests, h2s, notes)


def _plain_mixed_tests(block: CentredBlock, state: ScanState) -> TestResult:
    """:func:`_mixed_precision_tests` for a plain scan, from a :class:`CentredBlock`."""
    null, basis = state.nulls[0], state.basis
    p = state.X.shape[1]
    partners = np.column_stack([basis.ones_image, state.X_rot, state.Y_rot[:, 0]])
    linear = basis.linear(block, partners)[:, None, :]  # (c, 1, p + 2)
    CVC = basis.plain_gram(block, linear[:, 0, 0])[:, None, None]
    CVX, CVy = linear[:, :, 1 : p + 1], linear[:, :, p + 1]
    result = nested_tests(CVC, CVX, CVy, null, state.n, state.q0)
    return _refine(result, block.spread > 0, block.filled[:, :, None], CVX, CVy, state)


def _refine(
    result: TestResult,
    varies: np.ndarray,
    C: np.ndarray,
    CVX: np.ndarray,
    CVy: np.ndarray,
    state: ScanState,
) -> TestResult:
    """``result`` with the SNPs of large statistics (and untestable ones that vary) redone exactly."""
    largest = np.fmax(result.lrt, result.wald)
    # NaN marks an untestable SNP; one that varies is redone in case rounding decided it.
    redo = np.flatnonzero(~(largest <= REFINE_STATISTIC) & varies)
    if redo.size:
        exact = nested_tests(
            state.basis.exact_gram(C[:, redo, :]), CVX[redo], CVy[redo], state.nulls[0],
            state.n, state.q0,
        )  # fmt: skip
        for mixed, double in zip(result, exact):
            mixed[redo] = double
    return result


def _mixed_precision_tests(C: np.ndarray, state: ScanState) -> TestResult:
    """The tests of one phenotype with ``C'V⁻¹C`` in mixed precision, large statistics redone.

    ``C'V⁻¹X`` and ``C'V⁻¹y`` are exact products with ``V⁻¹X``, ``V⁻¹y``.
    """
    null, basis = state.nulls[0], state.basis
    n, c, q = C.shape
    p = state.X.shape[1]
    # One product for every linear term: C'[v, V⁻¹X, V⁻¹y] with v = V⁻¹1.
    partners = np.column_stack([basis.ones_image, state.X_rot, state.Y_rot[:, 0]])
    linear = (C.reshape(n, c * q).T @ partners).reshape(c, q, p + 2)
    CVC, spread = basis.gram(C, linear[:, :, 0])
    CVX, CVy = linear[:, :, 1 : p + 1], linear[:, :, p + 1]
    result = nested_tests(CVC, CVX, CVy, null, state.n, state.q0)
    varies = np.diagonal(spread, axis1=1, axis2=2).max(axis=1) > 0
    return _refine(result, varies, C, CVX, CVy, state)


def _raw_products(C: np.ndarray, state: ScanState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unrotated ``C_j'C_j`` (c, q, q), ``C_j'X`` (c, q, p), ``C_j'Y`` (c, q, t)."""
    CC = np.einsum("ncq,ncr->cqr", C, C)
    CX = np.tensordot(C, state.X, axes=([0], [0]))
    CY = np.tensordot(C, state.Y, axes=([0], [0]))
    return CC, CX, CY


def _reestimated_tests(
    C_rot: np.ndarray, raw: tuple[np.ndarray, np.ndarray, np.ndarray], state: ScanState, i: int
) -> tuple[TestResult, np.ndarray, int]:
    """Per-SNP ML fits of ``h²`` under both models; the LRT compares the two maxima."""
    fits = [
        _reestimated_snp(_snp_design(C_rot[:, j, :], [r[j] for r in raw], state, i), state, i)
        for j in range(C_rot.shape[1])
    ]
    gamma, se, wald, lrt, h2, notes = (np.array(column) for column in zip(*fits))
    return TestResult(gamma, se, wald, lrt), h2, int(notes.sum())


def _reestimated_snp(data: RotatedData, state: ScanState, i: int) -> tuple:
    """``(γ, se, wald, lrt, h²_alt, notes)`` of one SNP, NaN if its design is rank deficient."""
    p, q0 = state.X.shape[1], state.q0
    q = data.p - p
    design = data.gram[:-1, :-1]
    if np.linalg.matrix_rank(design) < design.shape[0]:
        return np.full(q, np.nan), np.full(q, np.nan), np.nan, np.nan, np.nan, 0
    alt = estimate_h2(data, reml=False, grid_size=state.grid_size)
    notes = alt.note is not None
    loglik_null = state.nulls[i].loglik
    if q0:
        null = estimate_h2(
            data.subset([*range(p + q0), p + q]), reml=False, grid_size=state.grid_size
        )
        loglik_null, notes = float(null.fit.loglik[0]), notes + (null.note is not None)
    fit = alt.fit
    cov = fit.s2[0] * fit.A_inv[0][p:, p:]
    wald = wald_statistic(fit.beta[0, p + q0 :], cov[q0:, q0:])
    lrt = max(2.0 * (float(fit.loglik[0]) - loglik_null), 0.0)
    return fit.beta[0, p:], np.sqrt(np.diag(cov)), wald, lrt, alt.h2, notes


def _snp_design(
    C_rot_j: np.ndarray, raw_j: list[np.ndarray], state: ScanState, i: int
) -> RotatedData:
    """Statistics of the design ``[X C_j y_i]`` from the block's products (no new rotation)."""
    CC, CX, CY = raw_j
    p = state.X.shape[1]
    keep = [*range(p), p + i]
    gram_Xy = state.gram_XY[np.ix_(keep, keep)]
    cross = np.column_stack([CX, CY[:, i]])  # C_j'[X y_i], (q, p + 1)
    gram = np.block(
        [
            [gram_Xy[:p, :p], cross[:, :p].T, gram_Xy[:p, p:]],
            [cross[:, :p], CC, cross[:, p:]],
            [gram_Xy[p:, :p], cross[:, p:].T, gram_Xy[p:, p:]],
        ]
    )
    rot = np.column_stack([state.X_rot, C_rot_j, state.Y_rot[:, i]])
    return RotatedData(rot, gram, state.basis.S, state.n)


def scan(
    G: object,
    y: object,
    X: object = None,
    K: np.ndarray | pd.DataFrame | Decomposition | None = None,
    *,
    h2: float | Sequence[float] | None = None,
    reml: bool = True,
    reestimate: bool = False,
    interaction: object = None,
    chunk_size: int = 1000,
    progress: bool | str = "auto",
    scheduler: object = "threads",
    grid_size: int = 101,
    assume_same_order: bool = False,
    covariates: object = None,
    loco: bool = False,
    min_loco_snps: int = 100,
    precision: str = "auto",
) -> ScanResult:
    """Test every SNP for association with one or several phenotypes.

    Parameters
    ----------
    G : PlinkData, array (n, m) or DataFrame
        Allele counts, ``NaN`` for missing calls (mean-imputed per SNP).  A
        :class:`PlinkData` is read ``chunk_size`` SNPs at a time.
    y : array (n,) or (n, t), Series or DataFrame
        Phenotype(s), complete.  A labelled ``y`` is paired with labelled
        genotypes (a PLINK file, a DataFrame with an index) and kinship by sample
        ID (see ``assume_same_order``).
    X : array (n, p) or DataFrame, optional
        Covariates including the intercept column; default intercept only.
    K : array (n, n), DataFrame or Decomposition, optional
        Kinship or its decomposition; default ``kinship(G)``, computed block-wise.
    h2 : float or one per phenotype, optional
        Fix ``h²`` instead of estimating it on the null model.
    reml : bool
        Estimate the null ``h²`` by REML (default) or ML.
    reestimate : bool
        Re-fit ``h²`` for every SNP, by ML under both models (slow: two
        one-dimensional searches per SNP and phenotype).
    interaction : str, list of str, array (n,) / (n, e), Series or DataFrame, optional
        Environments ``E`` for a SNP × environment scan: names of columns of a
        DataFrame ``X``, or values added to ``X``.  The null model holds the SNP;
        the alternative adds ``g ∘ E``.
    chunk_size : int
        SNPs per block; memory grows as ``8 n chunk_size (1 + e)`` bytes a few times.
    progress : bool or "auto"
        Progress bar over SNPs; "auto" (default) shows one on a terminal or in a
        notebook when the scan lasts (:mod:`mixedmodels.progress`).
    scheduler : "threads", dask.distributed.Client or scheduler address
        Where blocks run; see :mod:`mixedmodels.genetics.parallel`.
    grid_size : int
        Grid points of each ``h²`` search.
    assume_same_order : bool
        Pair a labelled ``y`` with unlabelled (array) genotypes or kinship by
        position; without it that combination is an error.
    covariates : array (n, c) or DataFrame, optional
        More covariates appended to ``X`` (an intercept when ``X`` is None), such
        as principal components from :func:`pca`; a labelled DataFrame is
        aligned to a labelled ``y`` by sample ID.
    loco : bool
        Leave one chromosome out: the SNPs of each chromosome are tested with
        the kinship of the other chromosomes (:mod:`mixedmodels.genetics.loco`;
        one ``O(n³)`` decomposition per chromosome), the null ``h²`` estimated
        per chromosome; ``K`` must not be given.
    min_loco_snps : int
        With ``loco``: a chromosome whose complement has fewer polymorphic SNPs
        is tested with the kinship of all SNPs (a :class:`LocoFallbackWarning`).
    precision : "auto", "double" or "mixed"
        Arithmetic of the per-SNP quadratic forms ``g'V⁻¹g``, the ``n²``-per-SNP
        product (:mod:`mixedmodels.genetics.basis`).  "double" throughout; "mixed"
        (one phenotype, full-rank ``K``, no ``reestimate``) computes about a fifth
        of each form with a float32 triangular product, about twice as fast, and
        redoes in double precision the SNPs with a statistic above
        ``REFINE_STATISTIC`` (24, p < 1e-6); other p-values agree with "double" to about
        1e-7 relative (1e-6 for an interaction scan, whose tests subtract two
        such forms).  "auto" (default) is "mixed" for a plain (not interaction)
        scan where a whitened scan pays (more than ``2n`` SNPs) and
        ``n >= MIXED_MIN_N`` (2,000), else "double".
        ``results.attrs["basis"]`` says which was used.

    Returns
    -------
    ScanResult (a DataFrame)
        One row per SNP and phenotype: ``phenotype``, the SNP annotations
        (``snp``, ``chrom``, ``pos``, ...), ``af`` (frequency of the counted
        allele), ``h2``, ``beta``, ``se``, ``wald``, ``p_wald``, ``lrt``, ``p_lrt``
        (χ² with 1 df), and ``p_wald_f``: the Wald test as FaST-LMM's
        ``single_snp`` reports it, ``F = wald (n - p - 1)/n`` on ``F(1, n - p - 1)``
        (``s²`` with ``n - p - 1`` degrees of freedom; ``p`` columns in ``X``).  An interaction scan reports ``beta_snp``, ``se_snp`` and
        ``beta_snp:E``, ``se_snp:E`` per environment, and ``df``.  Untestable SNPs
        (monomorphic, or collinear with ``X``) have ``NaN`` statistics.
        ``attrs["null"]`` holds each phenotype's null ``h²`` and ML log-likelihood
        (with ``loco``: per chromosome, and ``attrs["loco"]`` says which
        chromosomes were left out).  :meth:`ScanResult.adjust`, ``manhattan`` and
        ``qq`` add multiple-testing corrections and draw the usual figures.
    """
    runner = open_scheduler(scheduler)  # before any work: a bad address fails fast
    pheno = as_phenotypes(y)
    n = pheno.values.shape[0]
    source = align_samples(
        as_genotype_source(G), n, pheno.index, assume_same_order=assume_same_order
    )
    if source.n_snps == 0:
        raise DataError("the genotypes have no SNP to test (0 columns)")
    X = _with_covariates(X, covariates, n, pheno.index)
    Xv, _, E, e_names = _fixed_design(X, interaction, n, pheno.index)
    if precision not in PRECISIONS:
        raise DataError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    options = {
        "h2": h2, "reml": reml, "reestimate": reestimate, "grid_size": grid_size,
        "precision": precision,
    }  # fmt: skip
    if loco:
        if K is not None:
            raise DataError(
                "loco=True builds one kinship per left-out chromosome from G; do not also give K"
            )
        parts = [
            (part.decomposition, select_snps(source, part.columns), part)
            for part in loco_parts(source, chunk_size=max(chunk_size, 1), min_snps=min_loco_snps)
        ]
    else:
        decomposition = decompose(
            K, source if K is None else None, n=n, levels=pheno.index,
            assume_same_order=assume_same_order,
        )  # fmt: skip
        parts = [(decomposition, source, None)]
    tables = []
    with runner:
        for decomposition, snps, part in parts:
            decomposition = decompose(
                decomposition, None, n=n, levels=pheno.index, assume_same_order=True
            )
            state = _scan_state(decomposition, Xv, pheno, E, n_snps=snps.n_snps, **options)
            results = run_blocks(
                scan_block, chunk_bounds(snps.n_snps, chunk_size),
                _task_input(snps, runner.scheduler, counts=state.plain_mixed), state,
                scheduler=runner.scheduler, progress=progress,
            )  # fmt: skip
            _warn_singular_fits(sum(r.notes for r in results))
            table = _assemble(results, snps.snp_table(), pheno.names, e_names, state)
            tables.append((table, part))
    return _combine(tables, pheno.names)


def _warn_singular_fits(notes: int) -> None:
    if notes:
        warnings.warn(
            f"{notes} per-SNP ML fits of h² climbed towards h² = 1 where V is singular; "
            "their interior local maximum is used (see heritability's notes)",
            stacklevel=3,
        )


def _with_covariates(X: object, covariates: object, n: int, index: pd.Index | None) -> object:
    """``X`` (default an intercept) with the columns of ``covariates`` (e.g. PCs) appended."""
    if covariates is None:
        return X
    extra = covariates
    if isinstance(extra, pd.Series):
        extra = extra.to_frame()
    if not isinstance(extra, pd.DataFrame):
        values = np.asarray(extra, dtype=np.float64).reshape(n, -1)
        extra = pd.DataFrame(values, columns=[f"covariate{j}" for j in range(values.shape[1])])
    if index is not None and labels_of(extra) is not None:
        rows = positions(index, labels_of(extra), len(extra), "the covariates")
        extra = extra if rows is None else extra.iloc[rows]
    if X is None:
        base = pd.DataFrame({INTERCEPT: np.ones(n)})
    elif isinstance(X, pd.DataFrame):
        base = X
    else:
        values = np.asarray(X, dtype=np.float64).reshape(n, -1)
        base = pd.DataFrame(values, columns=[f"x{j}" for j in range(values.shape[1])])
    ids = index if index is not None else None
    base = base.set_axis(ids if ids is not None else pd.RangeIndex(n), axis=0)
    extra = extra.set_axis(base.index, axis=0)
    return pd.concat([base, extra], axis=1)


def _combine(tables: list[tuple[pd.DataFrame, object]], names: list[str]) -> ScanResult:
    """One table in the source's SNP order (per phenotype) from the parts' tables."""
    if len(tables) == 1 and tables[0][1] is None:
        return ScanResult.of(tables[0][0])
    frames = []
    for table, part in tables:
        t = len(names)
        order = np.tile(part.columns, t)
        frames.append(
            table.assign(_snp=order, _phenotype=np.repeat(np.arange(t), part.columns.size))
        )
    table = pd.concat(frames, ignore_index=True).sort_values(["_phenotype", "_snp"], kind="stable")
    table = table.drop(columns=["_snp", "_phenotype"]).reset_index(drop=True)
    table.attrs["basis"] = tables[0][0].attrs["basis"]
    table.attrs["null"] = {
        name: {chrom: t.attrs["null"][name] for t, part in tables for chrom in part.chromosomes}
        for name in names
    }
    table.attrs["loco"] = {chrom: part.loco for _, part in tables for chrom in part.chromosomes}
    return ScanResult.of(table)


def _fixed_design(
    X: object, interaction: object, n: int, index: pd.Index | None
) -> tuple[np.ndarray, list[str], np.ndarray | None, list[str]]:
    """The null design, and for an interaction scan the environments ``E`` and their names."""
    Xv, names = as_covariates(X, n, index)
    if interaction is None:
        return Xv, names, None, []
    if isinstance(interaction, str) or (
        isinstance(interaction, (list, tuple)) and all(isinstance(v, str) for v in interaction)
    ):
        wanted = [interaction] if isinstance(interaction, str) else list(interaction)
        absent = [e for e in wanted if e not in names]
        if absent:
            raise DataError(
                f"interaction column(s) {absent} are not covariates ({names}); pass X as a "
                "DataFrame holding them, or give the environment's values instead"
            )
        return Xv, names, Xv[:, [names.index(e) for e in wanted]], wanted
    E, e_names = as_covariates(interaction, n, index)
    if not isinstance(interaction, (pd.Series, pd.DataFrame)):
        e_names = [f"E{j}" for j in range(E.shape[1])]
    combined = pd.DataFrame(np.column_stack([Xv, E]), columns=names + e_names, index=index)
    Xv, names = as_covariates(combined, n, index)
    return Xv, names, E, e_names


def _scan_state(
    decomposition: Decomposition,
    X: np.ndarray,
    pheno: Phenotypes,
    E: np.ndarray | None,
    *,
    h2: float | Sequence[float] | None,
    reml: bool,
    reestimate: bool,
    grid_size: int,
    n_snps: int,
    precision: str = "double",
) -> ScanState:
    """Fit each phenotype's null model, choose the basis, bring ``X`` and ``Y`` there.

    The keywords are :func:`scan`'s, and ``n_snps`` the number of SNPs to test.
    """
    p, t = X.shape[1], pheno.values.shape[1]
    rotated = RotatedData.per_phenotype(decomposition, X, pheno.values)
    fixed = _fixed_h2(h2, t, reestimate)
    reml = reml and not reestimate
    h2s = [
        _null_h2(data, fixed[j], reml, grid_size, pheno.names[j]) for j, data in enumerate(rotated)
    ]
    rotation = Rotation(decomposition.U, decomposition.S)
    mixed = precision == "mixed" or (
        precision == "auto" and E is None and rotation.U.shape[0] >= MIXED_MIN_N
    )
    basis = _basis(rotation, h2s[0], n_snps, t, reestimate, mixed, explicit=precision == "mixed")
    XY = np.column_stack([X, pheno.values])
    image = basis.apply(XY)
    return ScanState(
        basis=basis,
        X=X,
        X_rot=image[:, :p],
        Y=pheno.values,
        Y_rot=image[:, p:],
        gram_XY=XY.T @ XY,
        nulls=tuple(_null_fit(data, h2, basis) for data, h2 in zip(rotated, h2s)),
        E=E,
        reestimate=reestimate,
        grid_size=grid_size,
    )


def _basis(
    rotation: Rotation,
    h2: float,
    n_snps: int,
    t: int,
    reestimate: bool,
    mixed: bool,
    explicit: bool,
) -> Rotation | Whitening | MixedWhitening:
    """The rotation, or a whitening at the first phenotype's ``h²`` where it pays
    (``explicit``: mixed precision was asked for, so it is used wherever it can be)."""
    if explicit:
        if t > 1 or reestimate or rotation.low_rank:
            raise DataError(
                "precision='mixed' needs one phenotype, a full-rank K and reestimate=False; "
                "use precision='double'"
            )
        return MixedWhitening.at(rotation, h2)
    if not whitening_pays(rotation, n_snps, t, reestimate):
        return rotation
    return MixedWhitening.at(rotation, h2) if mixed else Whitening.at(rotation, h2)


def _fixed_h2(h2: float | Sequence[float] | None, t: int, reestimate: bool) -> list[float | None]:
    if h2 is None:
        return [None] * t
    if reestimate:
        raise DataError("give either a fixed h2 or reestimate=True, not both")
    try:
        values = np.broadcast_to(np.asarray(h2, dtype=np.float64), (t,))
    except (TypeError, ValueError):
        raise DataError(
            f"h2 must be a number in [0, 1] or one per phenotype ({t}), not {h2!r}"
        ) from None
    if not ((values >= 0) & (values <= 1)).all():  # NaN fails both comparisons
        raise DataError(f"h2 must lie in [0, 1], not {h2}")
    return [float(v) for v in values]


def _null_h2(data: RotatedData, h2: float | None, reml: bool, grid_size: int, name: str) -> float:
    """The null model's ``h²``: estimated when not given."""
    if h2 is None:
        estimate = estimate_h2(data, reml=reml, grid_size=grid_size)
        if estimate.note:
            warnings.warn(f"phenotype {name!r}, null model: {estimate.note}", stacklevel=4)
        return estimate.h2
    if h2 == 1.0 and data.singular:
        raise DataError("K has a zero eigenvalue, so V is singular at h2 = 1; give h2 < 1")
    return h2


def _null_fit(
    data: RotatedData, h2: float, basis: Rotation | Whitening | MixedWhitening
) -> NullFit:
    """The null model of one phenotype at ``h²``, with its weights in ``basis``."""
    fit = profiled_loglik(data, np.array([h2]), reml=False)
    delta, w0 = basis.weights(h2)
    return NullFit(
        h2, delta, w0, fit.beta[0], fit.A_inv[0], float(fit.rss[0]), float(fit.loglik[0])
    )


def _task_input(source: GenotypeSource, scheduler: object, counts: bool = False):
    """Dask workers read PLINK blocks themselves; anything else is read here and sent.

    With ``counts`` a PLINK file is read as int8 counts (see :class:`CentredBlock`).
    """
    if scheduler != "threads" and isinstance(source, PlinkData):
        blocks = source.blocks
        return lambda start, stop: BlockRef(blocks, start, stop)
    if counts and isinstance(source, PlinkData):
        return source.read_counts
    return source.read


def _assemble(
    results: list[BlockResult],
    snps: pd.DataFrame,
    names: list[str],
    e_names: list[str],
    state: ScanState,
) -> pd.DataFrame:
    """One row per SNP and phenotype, phenotypes one after the other."""
    af = np.concatenate([r.af for r in results])
    frames = [
        _phenotype_frame(results, i, name, snps, af, e_names, state.n, state.X.shape[1])
        for i, name in enumerate(names)
    ]
    table = pd.concat(frames, ignore_index=True)
    table.attrs["basis"] = type(state.basis).__name__.lower()
    table.attrs["null"] = {
        name: {"h2": null.h2, "loglik_ml": null.loglik} for name, null in zip(names, state.nulls)
    }
    return table


def _phenotype_frame(
    results: list[BlockResult],
    i: int,
    name: str,
    snps: pd.DataFrame,
    af: np.ndarray,
    e_names: list[str],
    n: int,
    p: int,
) -> pd.DataFrame:
    """The rows of phenotype ``i``; ``n`` individuals and ``p`` covariates for the F test."""
    gamma, se, wald, lrt = (
        np.concatenate([getattr(r.tests[i], f) for r in results]) for f in TestResult._fields
    )
    frame = snps.reset_index(drop=True).copy()
    frame.insert(0, "phenotype", name)
    frame["af"] = af
    frame["h2"] = np.concatenate([r.h2[i] for r in results])
    labels = ["beta_snp", *(f"beta_snp:{e}" for e in e_names)] if e_names else ["beta"]
    for j, label in enumerate(labels):
        frame[label] = gamma[:, j]
        frame[label.replace("beta", "se", 1)] = se[:, j]
    df = max(len(e_names), 1)
    frame["wald"], frame["p_wald"] = wald, chi2.sf(wald, df)
    frame["lrt"], frame["p_lrt"] = lrt, chi2.sf(lrt, df)
    # FaST-LMM's single_snp: the Wald statistic with s² = RSS/(n - p - df) on F(df, n - p - df).
    dof = n - p - df
    frame["p_wald_f"] = f_dist.sf(wald / df * dof / n, df, dof)
    if e_names:
        frame["df"] = df
    return frame
