"""Command-line subcommand ``hlmm-scan``: the chromosome scan of :mod:`.chrscan`.

    mixedmodels hlmm-scan geno.bed --pheno pheno.csv --phenotype y \\
        --mean-covar age sex --var-covar sex --start 0 --end 500 --window-bp 50000 --out scan.tsv

The main CLI calls :func:`register` with its subparsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataError

__all__ = ["register"]


def _read_table(path: str):
    """A CSV or whitespace/tab-separated phenotype file (the separator is detected)."""
    import pandas as pd

    if not Path(path).exists():
        raise DataError(f"phenotype file {path!r} not found")
    return pd.read_csv(path, sep=None, engine="python")


def _hlmm_scan(args: argparse.Namespace) -> int:
    from .chrscan import hlmm_scan, write_tsv

    results = hlmm_scan(
        args.bed, _read_table(args.pheno), args.phenotype, mean_covariates=args.mean_covar,
        var_covariates=args.var_covar, iid_column=args.iid_column, start=args.start, end=args.end,
        window_bp=args.window_bp, min_maf=args.min_maf, max_missing=args.max_missing,
        progress=False if args.no_progress else "auto",
    )  # fmt: skip
    path = write_tsv(results, args.out)
    tested = int(results["mean_p"].notna().sum())
    print(f"{len(results)} SNPs, {tested} tested (others filtered); results written to {path}")
    return 0


def register(subparsers) -> None:
    """Add the ``hlmm-scan`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "hlmm-scan",
        help="scan SNPs of a PLINK bed file for effects on the mean and the variance of a phenotype (hlmm)",
    )
    p.add_argument("bed", help="PLINK .bed file or prefix (with .bim and .fam beside it)")
    p.add_argument(
        "--pheno", required=True, help="phenotype and covariate file (CSV or tab/space separated)"
    )
    p.add_argument("--phenotype", required=True, help="column of the phenotype to analyse")
    p.add_argument(
        "--iid-column",
        default="iid",
        help="column matching the fam file's individual ids (default iid)",
    )
    p.add_argument(
        "--mean-covar",
        nargs="*",
        default=[],
        metavar="COL",
        help="covariates of the mean (an intercept is added)",
    )
    p.add_argument(
        "--var-covar",
        nargs="*",
        default=[],
        metavar="COL",
        help="covariates of the log variance (an intercept is added)",
    )
    p.add_argument(
        "--start", type=int, default=0, help="index of the first SNP (0-based, default 0)"
    )
    p.add_argument(
        "--end", type=int, default=None, help="index after the last SNP (default: end of file)"
    )
    p.add_argument(
        "--window-bp",
        type=float,
        default=0.0,
        help="random effects of other SNPs within this many bp (default 0: none)",
    )
    p.add_argument(
        "--min-maf",
        type=float,
        default=0.05,
        help="skip SNPs with a lower minor allele frequency (default 0.05)",
    )
    p.add_argument(
        "--max-missing",
        type=float,
        default=0.05,
        help="skip SNPs with a larger missing fraction (default 0.05)",
    )
    p.add_argument("--out", required=True, help="output TSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_hlmm_scan)
