"""The command-line vocabulary of genotype and phenotype inputs, one for every subcommand.

``scan``, ``heritability`` and ``hlmm-scan`` name the same things the same way:

``--bed PREFIX``        the PLINK file set (PREFIX.bed/.bim/.fam)
``--bgen PATTERN``      BGEN file(s) instead (``scan``, ``heritability``, ``qc``, ``kinship``),
``--sample FILE``       with their Oxford sample file
``--bimbam FILE``       or a BIMBAM mean-genotype file (the same subcommands),
``--bimbam-samples F``  with its sample IDs, one per line in the dosage columns' order
                        (required when a phenotype table is paired with it),
``--bimbam-annotation F`` and GEMMA's ``snp, pos, chrom`` annotation (optional)
``--pheno FILE``        the phenotype and covariate table
``--pheno-col A[,B]``   the phenotype column(s) to analyse (required)
``--covar A,B``         covariates of the mean (an intercept is added)
``--iid-col NAME``      the table's column of individual IDs (default ``iid``)
``--out FILE``          where results are written
``--no-progress``       no progress bar

Older spellings (``hlmm-scan``'s positional bed file, ``--phenotype``,
``--iid-column``, ``--mean-covar A B``) still work and print a deprecation
note naming the new flag.
"""

from __future__ import annotations

import argparse
import sys

from mixedmodels.errors import DataError
from mixedmodels.genio.bgen import read_bgen
from mixedmodels.genio.bimbam import read_bimbam
from mixedmodels.genio.plink import read_plink

__all__ = [
    "DeprecatedAlias",
    "add_genotype_formats",
    "add_inputs",
    "open_genotypes",
    "split_columns",
]

#: The flags naming a genotype source; exactly one is given.
GENOTYPE_FLAGS = ("--bed PREFIX", "--bgen PATTERN", "--bimbam FILE")


class DeprecatedAlias(argparse.Action):
    """An old flag: stores into the new flag's destination and says which flag to use."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"mixedmodels: note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        if isinstance(values, list):
            values = ",".join(values)
        setattr(namespace, self.dest, values)


def add_inputs(parser: argparse.ArgumentParser, *, several_phenotypes: bool = True) -> None:
    """Add ``--bed``, ``--pheno``, ``--pheno-col``, ``--covar``, ``--iid-col`` and the old aliases."""
    parser.add_argument("--bed", metavar="PREFIX", help="PLINK prefix (PREFIX.bed/.bim/.fam)")
    parser.add_argument(
        "--pheno", required=True, metavar="FILE", help="phenotype table (.csv or whitespace)"
    )
    which = "comma-separated phenotype columns" if several_phenotypes else "the phenotype column"
    parser.add_argument(
        "--pheno-col", default="", metavar="COLUMN", help=f"{which} to analyse (required)"
    )
    parser.add_argument(
        "--covar",
        default="",
        metavar="A,B",
        help="comma-separated covariate columns (intercept added)",
    )
    parser.add_argument("--iid-col", default="iid", help="column of individual ids (default iid)")
    for old, dest, new, nargs in (
        ("--phenotype", "pheno_col", "--pheno-col", None),
        ("--iid-column", "iid_col", "--iid-col", None),
        ("--mean-covar", "covar", "--covar", "*"),
    ):
        parser.add_argument(
            old, dest=dest, action=DeprecatedAlias, new=new, nargs=nargs, help=argparse.SUPPRESS
        )


def add_genotype_formats(parser: argparse.ArgumentParser) -> None:
    """Add the alternatives to ``--bed``: BGEN (``--bgen``, ``--sample``) and BIMBAM.

    ``--bgen PATTERN`` is one file or a glob (e.g. ``chr*.bgen``); ``--bimbam FILE``
    is a mean-genotype file, with ``--bimbam-samples`` and ``--bimbam-annotation``
    passed to :func:`~mixedmodels.genio.read_bimbam` as ``samples`` and ``annotation``.
    """
    parser.add_argument("--bgen", metavar="PATTERN", help="BGEN file(s) instead of --bed")
    parser.add_argument("--sample", metavar="FILE", help="Oxford .sample file of the BGEN file(s)")
    parser.add_argument("--bimbam", metavar="FILE", help="BIMBAM mean-genotype file instead")
    parser.add_argument(
        "--bimbam-samples", metavar="FILE", help="sample IDs of the BIMBAM file, one per line"
    )
    parser.add_argument(
        "--bimbam-annotation", metavar="FILE", help="BIMBAM SNP annotation (snp, pos, chrom)"
    )


def open_genotypes(args: argparse.Namespace, *, need_ids: bool = False):
    """The genotype source named by ``--bed``, ``--bgen`` or ``--bimbam`` (exactly one).

    ``need_ids``: the caller pairs the genotypes with a phenotype table by sample
    ID, so a BIMBAM file (which has none) needs ``--bimbam-samples``.
    """
    given = [getattr(args, flag.split()[0][2:], None) for flag in GENOTYPE_FLAGS]
    if sum(bool(v) for v in given) != 1:
        raise DataError(f"give the genotypes with exactly one of {', '.join(GENOTYPE_FLAGS)}")
    bed, bgen, bimbam = given
    if bgen:
        return read_bgen(bgen, samples=getattr(args, "sample", None))
    if bimbam:
        samples = getattr(args, "bimbam_samples", None)
        if need_ids and not samples:
            raise DataError(
                "--bimbam needs --bimbam-samples FILE (one sample ID per line, in the order of "
                "the dosage columns) to pair the dosages with the phenotype table"
            )
        return read_bimbam(bimbam, samples, getattr(args, "bimbam_annotation", None))
    return read_plink(bed)


def split_columns(names: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``."""
    return [name.strip() for name in names.split(",") if name.strip()]
