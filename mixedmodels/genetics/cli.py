"""Command-line subcommands ``mixedmodels scan``, ``heritability``, ``qc`` and ``kinship``.

The main program (``mixedmodels/cli.py``) calls :func:`register` with its
subparsers; each subcommand stores its handler as ``func``, to be called as
``args.func(args)`` and returning the exit status.

Example::

    mixedmodels scan --bed data/geno --pheno pheno.csv --covar age,sex \\
        --pheno-col pheno1 --out results.tsv
    mixedmodels heritability --bed data/geno --pheno pheno.csv --covar age,sex --pheno-col pheno1
    mixedmodels scan --loco --bgen "chr*.bgen" --sample x.sample --pheno pheno.csv \
        --pheno-col pheno1 --out results.tsv
    mixedmodels scan --bimbam geno.txt --bimbam-samples ids.txt --bimbam-annotation anno.txt \
        --pheno pheno.csv --pheno-col pheno1 --out results.tsv
    mixedmodels qc --bed data/geno --min-maf 0.01 --max-missing 0.05 --out qc.tsv
    mixedmodels kinship --bed data/geno --out K.tsv

The input flags are shared with ``hlmm-scan`` (:mod:`mixedmodels.genio.options`).
"""

from __future__ import annotations

import argparse
import sys

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genio.options import (
    add_genotype_formats,
    add_inputs,
    open_genotypes,
    split_columns,
)

__all__ = ["register", "run_heritability", "run_kinship", "run_qc", "run_scan"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scan``, ``heritability``, ``qc`` and ``kinship`` subcommands to ``subparsers``."""
    scan = subparsers.add_parser(
        "scan",
        help="association scan of every SNP under the kinship model",
        description="Test each SNP of a PLINK file for association with the phenotype(s), "
        "h² fixed at the null REML estimate; K is built from the same SNPs.",
    )
    _add_inputs(scan)
    scan.add_argument("--out", required=True, help="tab-separated results file to write")
    scan.add_argument("--chunk", type=int, default=1000, help="SNPs per block (default 1000)")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar")
    scan.add_argument("--interaction", metavar="COLUMN", help="SNP × COLUMN interaction scan")
    scan.add_argument("--reestimate", action="store_true", help="re-fit h² for every SNP (slow)")
    scan.add_argument("--dask-scheduler", metavar="ADDRESS", help="run blocks on a Dask cluster")
    scan.add_argument(
        "--precision",
        choices=["auto", "double", "mixed"],
        default="auto",
        help="arithmetic of the per-SNP quadratic forms (default auto: mixed for large plain scans)",
    )
    scan.add_argument(
        "--loco", action="store_true", help="leave one chromosome out: one kinship per chromosome"
    )
    scan.add_argument("--pcs", type=int, default=0, metavar="K", help="add K genotype PCs")
    scan.add_argument(
        "--adjust", metavar="METHOD", help="add corrected p-values (fdr_bh, bonferroni, ...)"
    )
    scan.set_defaults(func=run_scan)

    qc = subparsers.add_parser(
        "qc",
        help="variant QC (MAF, missing rate, duplicates) and optional LD pruning",
        description="Write one row per variant: its MAF, missing rate, whether it is kept "
        "and, if not, why (PLINK 2's definitions; see mixedmodels.genetics.qc).",
    )
    _genotype_inputs(qc)
    qc.add_argument("--min-maf", type=float, default=0.0, help="keep MAF ≥ this")
    qc.add_argument("--max-missing", type=float, default=1.0, help="keep missing rate ≤ this")
    qc.add_argument("--keep-duplicates", action="store_true", help="do not remove duplicates")
    qc.add_argument("--prune-window", type=int, metavar="W", help="LD-prune in windows of W")
    qc.add_argument("--prune-r2", type=float, default=0.2, help="r² threshold of the pruning")
    qc.add_argument("--out", required=True, help="tab-separated table to write")
    qc.set_defaults(func=run_qc)

    kinship = subparsers.add_parser(
        "kinship",
        help="the standardised kinship (GRM) of the genotypes",
        description="Write K = Zs Zs'/m as a tab-separated matrix labelled by sample ID.",
    )
    _genotype_inputs(kinship)
    kinship.add_argument("--gower", action="store_true", help="Gower-rescale the kinship")
    kinship.add_argument("--out", required=True, help="tab-separated matrix to write")
    kinship.set_defaults(func=run_kinship)

    heritability = subparsers.add_parser(
        "heritability",
        help="SNP heritability by REML with a kinship from the genotypes",
        description="Estimate h² = σg²/(σg² + σe²) for each phenotype; K from the PLINK file.",
    )
    _add_inputs(heritability)
    heritability.add_argument("--ml", action="store_true", help="maximum likelihood, not REML")
    heritability.add_argument("--out", help="also write the estimates to this tab-separated file")
    heritability.set_defaults(func=run_heritability)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    add_inputs(parser)
    add_genotype_formats(parser)


def _genotype_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bed", metavar="PREFIX", help="PLINK prefix (PREFIX.bed/.bim/.fam)")
    add_genotype_formats(parser)


def _load(args: argparse.Namespace, extra_covariates: list[str] = ()):
    """Read the files, keep the shared complete individuals; return (match, phenotypes, X)."""
    from mixedmodels.genetics.phenotypes import covariate_matrix
    from mixedmodels.genio import match_samples, read_phenotypes

    table = read_phenotypes(args.pheno, args.iid_col)
    covariates = split_columns(args.covar)
    covariates += [c for c in extra_covariates if c not in covariates]
    phenotypes = _phenotype_columns(args, table, covariates)
    match = match_samples(
        open_genotypes(args, need_ids=True), table, iid_column=args.iid_col, columns=phenotypes + covariates,
    )  # fmt: skip
    print(match, file=sys.stderr)
    return match, match.phenotypes[phenotypes], covariate_matrix(match.phenotypes, covariates)


def _phenotype_columns(args: argparse.Namespace, table, covariates: list[str]) -> list[str]:
    """The ``--pheno-col`` columns; required, since guessing picks covariates such as sex."""
    missing = [c for c in covariates if c not in table.columns]
    if missing:
        raise DataError(f"covariate column(s) {few(missing)} not in the phenotype table")
    wanted = split_columns(args.pheno_col)
    if not wanted:
        candidates = [
            c for c in table.select_dtypes("number").columns
            if c not in covariates and c != args.iid_col
        ]  # fmt: skip
        raise DataError(
            "say which column(s) to analyse with --pheno-col (numeric columns of "
            f"{args.pheno}: {few(candidates, 10)})"
        )
    return wanted


def run_scan(args: argparse.Namespace) -> int:
    """Handler of ``mixedmodels scan``: write the results table, print a short summary."""
    from mixedmodels.genetics.pca import pca
    from mixedmodels.genetics.scan import genomic_inflation, scan

    extra = [args.interaction] if args.interaction else []
    match, Y, X = _load(args, extra)
    pcs = pca(match.genotypes, args.pcs) if args.pcs else None
    results = scan(
        match.genotypes,
        Y,
        X,
        covariates=pcs,
        loco=args.loco,
        interaction=args.interaction,
        reestimate=args.reestimate,
        chunk_size=args.chunk,
        progress=False if args.no_progress else "auto",
        scheduler=args.dask_scheduler or "threads",
        precision=args.precision,
    )
    if args.adjust:
        results.adjust(args.adjust)
    results.to_csv(args.out, sep="\t", index=False)
    for name, part in results.groupby("phenotype", sort=False):
        best = part.loc[part["p_lrt"].idxmin()]
        null = results.attrs["null"][name]
        h2 = (
            f"h2 (null) = {null['h2']:.4f}"
            if "h2" in null
            else "h2 (null, per chromosome) = "
            + ", ".join(f"{c}: {v['h2']:.3f}" for c, v in null.items())
        )
        print(
            f"{name}: {len(part)} SNPs, {h2}, "
            f"lambda = {genomic_inflation(part['p_lrt']):.3f}, "
            f"top {best['snp']} p = {best['p_lrt']:.3g}"
        )
    print(f"results written to {args.out}")
    return 0


def run_qc(args: argparse.Namespace) -> int:
    """Handler of ``mixedmodels qc``: per-variant statistics, kept or why removed."""
    from mixedmodels.genetics.qc import ld_prune, qc, variant_stats

    source = open_genotypes(args)
    kept = qc(
        source, min_maf=args.min_maf, max_missing=args.max_missing,
        remove_duplicates=not args.keep_duplicates,
    )  # fmt: skip
    table = variant_stats(source)
    reason = dict(zip(kept.notes["snp"], kept.notes["reason"]))
    table["reason"] = table["snp"].map(reason).fillna("")
    if args.prune_window:
        pruned = ld_prune(kept, window=args.prune_window, r2=args.prune_r2)
        dropped = set(kept.snp_table()["snp"][~pruned])
        table.loc[table["snp"].isin(dropped), "reason"] = f"LD r2 > {args.prune_r2:g}"
    table["kept"] = table["reason"] == ""
    table.to_csv(args.out, sep="\t", index=False)
    print(f"{int(table['kept'].sum())} of {len(table)} variants kept; table written to {args.out}")
    for why, count in table.loc[~table["kept"], "reason"].value_counts().items():
        print(f"  removed {count}: {why}")
    return 0


def run_kinship(args: argparse.Namespace) -> int:
    """Handler of ``mixedmodels kinship``: the standardised kinship as a labelled matrix."""
    from mixedmodels.genetics.kinship import kinship
    from mixedmodels.genetics.normalise import gower_rescale

    source = open_genotypes(args)
    K = kinship(source)
    if args.gower:
        K = gower_rescale(K)
    K.to_csv(args.out, sep="\t")
    print(
        f"{K.shape[0]} × {K.shape[0]} kinship from {source.n_snps} variants written to {args.out}"
    )
    return 0


def run_heritability(args: argparse.Namespace) -> int:
    """Handler of ``mixedmodels heritability``: print the estimates (and write them)."""
    from mixedmodels.genetics.heritability import heritability

    match, Y, X = _load(args)
    y = Y.iloc[:, 0] if Y.shape[1] == 1 else Y
    result = heritability(y, X, G=match.genotypes, reml=not args.ml)
    print(result)
    if args.out:
        result.to_frame().to_csv(args.out, sep="\t")
    return 0
