"""Command-line subcommands ``mixedmodels scan`` and ``mixedmodels heritability``.

The main program (``mixedmodels/cli.py``) calls :func:`register` with its
subparsers; each subcommand stores its handler as ``func``, to be called as
``args.func(args)`` and returning the exit status.

Example::

    mixedmodels scan --bed data/geno --pheno pheno.csv --covar age,sex \\
        --pheno-col pheno1 --out results.tsv
    mixedmodels heritability --bed data/geno --pheno pheno.csv --covar age,sex --pheno-col pheno1

The input flags are shared with ``hlmm-scan`` (:mod:`mixedmodels.genio.options`).
"""

from __future__ import annotations

import argparse
import sys

from mixedmodels._text import few
from mixedmodels.errors import DataError
from mixedmodels.genio.options import add_inputs, split_columns

__all__ = ["register", "run_heritability", "run_scan"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scan`` and ``heritability`` subcommands to ``subparsers``."""
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
    scan.set_defaults(func=run_scan)

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


def _load(args: argparse.Namespace, extra_covariates: list[str] = ()):
    """Read the files, keep the shared complete individuals; return (match, phenotypes, X)."""
    from mixedmodels.genetics.phenotypes import covariate_matrix
    from mixedmodels.genio import match_samples, read_phenotypes, read_plink

    table = read_phenotypes(args.pheno, args.iid_col)
    covariates = split_columns(args.covar)
    covariates += [c for c in extra_covariates if c not in covariates]
    phenotypes = _phenotype_columns(args, table, covariates)
    match = match_samples(
        read_plink(require_bed(args)), table, iid_column=args.iid_col,
        columns=phenotypes + covariates,
    )  # fmt: skip
    print(match, file=sys.stderr)
    return match, match.phenotypes[phenotypes], covariate_matrix(match.phenotypes, covariates)


def require_bed(args: argparse.Namespace) -> str:
    if not args.bed:
        raise DataError("give the PLINK file set with --bed PREFIX")
    return args.bed


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
    from mixedmodels.genetics.scan import genomic_inflation, scan

    extra = [args.interaction] if args.interaction else []
    match, Y, X = _load(args, extra)
    results = scan(
        match.genotypes,
        Y,
        X,
        interaction=args.interaction,
        reestimate=args.reestimate,
        chunk_size=args.chunk,
        progress=False if args.no_progress else "auto",
        scheduler=args.dask_scheduler or "threads",
    )
    results.to_csv(args.out, sep="\t", index=False)
    for name, part in results.groupby("phenotype", sort=False):
        best = part.loc[part["p_lrt"].idxmin()]
        print(
            f"{name}: {len(part)} SNPs, h2 (null) = {results.attrs['null'][name]['h2']:.4f}, "
            f"lambda = {genomic_inflation(part['p_lrt']):.3f}, "
            f"top {best['snp']} p = {best['p_lrt']:.3g}"
        )
    print(f"results written to {args.out}")
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
