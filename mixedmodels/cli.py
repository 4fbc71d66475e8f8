"""Command-line interface: ``mixedmodels fit FORMULA --data NAME_OR_PATH``.

Other subcommands (genetics scans, heritability, variance scans) register
themselves through a ``register(subparsers)`` function in their package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "read_data", "check_fit_flags", "check_writable"]

_PLUGINS = ("mixedmodels.genetics.cli", "mixedmodels.variance.cli", "mixedmodels.fitmany.cli")


def read_data(source: str):
    """A bundled data set by name, or a CSV / Parquet file by path.

    Raises
    ------
    DataError
        Naming the file when it is missing, a directory, empty, header-only,
        binary but not Parquet, or unreadable as its format.
    """
    from . import datasets
    from .errors import DataError

    if source in datasets.names():
        return datasets.load(source)
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"{source!r} is neither a bundled data set ({', '.join(datasets.names())}) nor a file"
        )
    if path.is_dir():
        raise DataError(f"--data {source!r} is a directory; give a CSV or Parquet file")
    frame = _read_file(path)
    if frame.shape[0] == 0:
        raise DataError(f"--data {source!r} has column names but no rows of data")
    return frame


def _read_file(path: Path):
    """Read ``path`` as Parquet (by suffix or its PAR1 magic bytes) or as CSV text."""
    import pandas as pd

    from .errors import DataError

    head = _head(path)
    parquet = path.suffix.lower() in (".parquet", ".pq") or head.startswith(b"PAR1")
    other = _OTHER_FORMATS.get(path.suffix.lower())
    if other and not parquet:
        raise DataError(
            f"--data {str(path)!r} is {other}; the command line reads CSV and Parquet files, so save it as CSV first"
        )
    if not parquet and b"\x00" in head:
        raise DataError(
            f"--data {str(path)!r} is not a CSV file (it holds binary data); give a CSV or Parquet file"
        )
    try:
        return pd.read_parquet(path) if parquet else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"--data {str(path)!r} is empty") from None
    except (
        Exception
    ) as exc:  # readers raise many types (ArrowInvalid, ParserError, UnicodeDecodeError, OSError)
        kind = "a Parquet file" if parquet else "a CSV file"
        raise DataError(f"cannot read --data {str(path)!r} as {kind}: {_first_line(exc)}") from exc


_OTHER_FORMATS = {
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".json": "a JSON file",
    ".feather": "a Feather file",
    ".rds": "an R data file",
    ".rda": "an R data file",
    ".rdata": "an R data file",
    ".sav": "an SPSS file",
    ".dta": "a Stata file",
    ".sas7bdat": "a SAS file",
    ".h5": "an HDF5 file",
}
"""Formats users try that are not CSV: named, rather than parsed as CSV into nonsense."""


def _head(path: Path, size: int = 4096) -> bytes:
    from .errors import DataError

    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise DataError(f"cannot open --data {str(path)!r}: {exc.strerror or exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_writable(path: str, flag: str = "--out") -> None:
    """MixedModelsError unless a file can be written at ``path``, checked before any fitting.

    The file is opened for appending (and removed again if it did not exist),
    which is the only test that also holds for read-only file systems.
    """
    from .errors import MixedModelsError

    target = Path(path)
    if target.is_dir():
        raise MixedModelsError(f"{flag} {path!r} is a directory; give a file name")
    if not target.parent.is_dir():
        raise MixedModelsError(f"{flag} {path!r}: the folder {str(target.parent)!r} does not exist")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as exc:
        raise MixedModelsError(f"{flag} {path!r} cannot be written: {exc.strerror or exc}") from exc
    if not existed:
        target.unlink()


def _is_linear(args: argparse.Namespace) -> bool:
    """No family, or the Gaussian family with the identity link: a linear mixed model.

    glmer delegates that case to lmer the same way.
    """
    if not args.family:
        return True
    from .families import Gaussian, IdentityLink, get_family

    family = get_family(args.family, args.link)
    return isinstance(family, Gaussian) and isinstance(family.link, IdentityLink)


def check_fit_flags(args: argparse.Namespace) -> bool:
    """MixedModelsError for contradictory flags; True if the model is linear."""
    from .errors import MixedModelsError
    from .optsummary import check_optimizer

    if args.link and not args.family:
        raise MixedModelsError("--link needs --family (a linear mixed model has the identity link)")
    if args.ziformula and not args.family:
        raise MixedModelsError("--ziformula needs a count --family (poisson, nbinom2 or nbinom1)")
    linear = _is_linear(args)
    what = "a linear mixed model" + (" (family gaussian, identity link)" if args.family else "")
    if linear and args.nagq is not None:
        raise MixedModelsError(
            f"--nagq applies to generalized models; {what} has an exact likelihood"
        )
    if linear and args.fast:
        raise MixedModelsError(f"--fast applies to generalized models, not to {what}")
    if not linear and args.reml:
        raise MixedModelsError(
            f"--reml applies to linear mixed models; family {args.family!r} is fitted by maximum likelihood"
        )
    if args.optimizer:
        _check_cli_optimizer(args.optimizer)
        check_optimizer(args.optimizer)
    if args.out:
        check_writable(args.out)
    return linear


def _check_cli_optimizer(name: str) -> None:
    from .errors import MixedModelsError

    if isinstance(name, str) and name.upper()[:3] in ("GN_", "GD_"):
        raise MixedModelsError(
            f"--optimizer {name}: NLopt's global algorithms need finite bounds on every parameter, "
            "and the covariance parameters have none; use a local derivative-free algorithm "
            "such as LN_BOBYQA or LN_NELDERMEAD"
        )


def _fit(args: argparse.Namespace) -> int:
    linear = check_fit_flags(args)
    data = read_data(args.data)
    if linear:
        from .lmm import LinearMixedModel

        model = LinearMixedModel(args.formula, data, reml=args.reml, weights=args.weights)
    else:
        from .glmm import GeneralizedLinearMixedModel

        model = GeneralizedLinearMixedModel(
            args.formula,
            data,
            family=args.family,
            link=args.link,
            weights=args.weights,
            ziformula=args.ziformula,
        )
    if args.optimizer:
        model.optsum.optimizer = args.optimizer
    fit_kwargs = {"verbose": args.verbose, "progress": args.progress}
    if not linear:
        fit_kwargs.update(fast=args.fast, nagq=1 if args.nagq is None else args.nagq)
    model.fit(**fit_kwargs)
    print(model)
    if args.optsum:
        print()
        print(model.optsum)
    if args.out:
        _write_table(model.coeftable(), args.out)
    return 0


def _write_table(table, path: str) -> None:
    from .errors import MixedModelsError

    try:
        table.rename_axis("term").to_csv(path, sep="\t")
    except OSError as exc:
        raise MixedModelsError(f"cannot write --out {path!r}: {exc.strerror or exc}") from exc


def _add_fit(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit a linear or generalized linear mixed model and print its summary"
    )
    p.add_argument("formula", help='model formula, e.g. "Reaction ~ 1 + Days + (1 + Days|Subject)"')
    p.add_argument("--data", required=True, help="a bundled data set name or a CSV/Parquet file")
    p.add_argument("--reml", action="store_true", help="fit a linear model by REML (default: ML)")
    p.add_argument(
        "--optimizer",
        help="an NLopt local derivative-free algorithm, e.g. LN_NELDERMEAD (default LN_BOBYQA)",
    )
    p.add_argument("--weights", help="column of prior weights")
    p.add_argument(
        "--family",
        help="GLMM family: bernoulli, binomial, poisson, gamma, inversegaussian, "
        "gaussian (with the identity link: fitted as a linear mixed model), "
        "nbinom2 (negative.binomial), nbinom1, beta",
    )
    p.add_argument(
        "--ziformula",
        help='zero-inflation formula for count families, e.g. "~1" or "~ spp" (as glmmTMB)',
    )
    p.add_argument("--link", help="link function (default: the family's canonical link)")
    p.add_argument(
        "--fast", action="store_true", help="GLMM: optimise θ only, β from PIRLS (lme4's nAGQ=0)"
    )
    p.add_argument(
        "--nagq",
        type=int,
        default=None,
        help="GLMM: adaptive Gauss-Hermite points (default 1 = Laplace)",
    )
    p.add_argument("--verbose", action="store_true", help="print each objective evaluation")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--optsum", action="store_true", help="also print the optimisation summary")
    p.add_argument("--out", help="also write the coefficient table to this tab-separated file")
    p.set_defaults(handler=_fit)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mixedmodels", description="Mixed-effects models from formulas."
    )
    parser.add_argument("--version", action="version", version=f"mixedmodels {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_fit(subparsers)
    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import MixedModelsError

    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or args.func  # plugins name it func
        return int(handler(args) or 0)
    except MixedModelsError as exc:
        print(f"mixedmodels: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the user named could not be opened or written
        print(f"mixedmodels: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mixedmodels: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    raise SystemExit(main())
