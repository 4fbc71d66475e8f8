"""Command-line subcommand ``hlmm-scan``: the chromosome scan of :mod:`.chrscan`.

    mixedmodels hlmm-scan --bed geno --pheno pheno.csv --pheno-col y \\
        --covar age,sex --var-covar sex --start 0 --end 500 --window-bp 50000 --out scan.tsv

The input flags are those of ``scan`` and ``heritability``
(:mod:`mixedmodels.genio.options`); the old spellings (a positional bed file,
``--phenotype``, ``--iid-column``, ``--mean-covar A B``) still work, with a
deprecation note.  The main CLI calls :func:`register` with its subparsers.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DataError
from ..genio.options import add_inputs, split_columns

__all__ = ["register"]


def _bed(args: argparse.Namespace) -> str:
    if args.bed_file:
        print("mixedmodels: note: a positional bed file is deprecated; use --bed", file=sys.stderr)
    bed = args.bed or args.bed_file
    if not bed:
        raise DataError("give the PLINK file set with --bed PREFIX")
    return bed


def _phenotype(args: argparse.Namespace) -> str:
    names = split_columns(args.pheno_col)
    if len(names) != 1:
        raise DataError(
            f"hlmm-scan analyses one phenotype: give one column with --pheno-col, not {args.pheno_col!r}"
        )
    return names[0]


def _hlmm_scan(args: argparse.Namespace) -> int:
    from ..genio import read_phenotypes
    from .chrscan import hlmm_scan, write_tsv

    bed, phenotype = _bed(args), _phenotype(args)
    results = hlmm_scan(
        bed, read_phenotypes(args.pheno, args.iid_col), phenotype,
        mean_covariates=split_columns(args.covar), var_covariates=split_columns(",".join(args.var_covar)),
        iid_column=args.iid_col, start=args.start, end=args.end, window_bp=args.window_bp,
        min_maf=args.min_maf, max_missing=args.max_missing,
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
    p.add_argument("bed_file", nargs="?", help=argparse.SUPPRESS)  # deprecated: use --bed
    add_inputs(p, several_phenotypes=False)
    p.add_argument(
        "--var-covar", nargs="*", default=[], metavar="A,B",
        help="covariates of the log variance, comma-separated (an intercept is added)",
    )  # fmt: skip
    p.add_argument(
        "--start", type=int, default=0, help="index of the first SNP (0-based, default 0)"
    )
    p.add_argument(
        "--end", type=int, default=None, help="index after the last SNP (default: end of file)"
    )
    p.add_argument(
        "--window-bp", type=float, default=0.0,
        help="random effects of other SNPs within this many bp (default 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--min-maf", type=float, default=0.05,
        help="skip SNPs with a lower minor allele frequency (default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "--max-missing", type=float, default=0.05,
        help="skip SNPs with a larger missing fraction (default 0.05)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="output TSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_hlmm_scan)
