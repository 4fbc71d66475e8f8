"""Command-line interface: ``mixedmodels fit FORMULA --data NAME_OR_PATH``.

Other subcommands (genetics scans, heritability, variance scans) register
themselves through a ``register(subparsers)`` function in their package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "read_data"]

_PLUGINS = ("mixedmodels.genetics.cli", "mixedmodels.variance.cli")


def read_data(source: str):
    """A bundled data set by name, or a CSV / Parquet file by path."""
    import pandas as pd

    from . import datasets
    from .errors import DataError

    if source in datasets.names():
        return datasets.load(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source!r} is neither a bundled data set ({', '.join(datasets.names())}) nor a file")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _fit(args: argparse.Namespace) -> int:
    data = read_data(args.data)
    if args.family:
        from .glmm import GeneralizedLinearMixedModel

        model = GeneralizedLinearMixedModel(args.formula, data, family=args.family, link=args.link, weights=args.weights)
    else:
        from .lmm import LinearMixedModel

        model = LinearMixedModel(args.formula, data, reml=args.reml, weights=args.weights)
    if args.optimizer:
        model.optsum.optimizer = args.optimizer
    fit_kwargs = {"verbose": args.verbose, "progress": args.progress}
    if args.family:
        fit_kwargs.update(fast=args.fast, nagq=args.nagq)
    model.fit(**fit_kwargs)
    print(model)
    if args.optsum:
        print()
        print(model.optsum)
    return 0


def _add_fit(subparsers) -> None:
    p = subparsers.add_parser("fit", help="fit a linear or generalized linear mixed model and print its summary")
    p.add_argument("formula", help='model formula, e.g. "Reaction ~ 1 + Days + (1 + Days|Subject)"')
    p.add_argument("--data", required=True, help="a bundled data set name or a CSV/Parquet file")
    p.add_argument("--reml", action="store_true", help="fit a linear model by REML (default: ML)")
    p.add_argument("--optimizer", help="an NLopt derivative-free algorithm, e.g. LN_NELDERMEAD (default LN_BOBYQA)")
    p.add_argument("--weights", help="column of prior weights")
    p.add_argument("--family", help="GLMM family: bernoulli, binomial, poisson, gamma, inversegaussian, gaussian")
    p.add_argument("--link", help="link function (default: the family's canonical link)")
    p.add_argument("--fast", action="store_true", help="GLMM: optimise θ only, β from PIRLS (lme4's nAGQ=0)")
    p.add_argument("--nagq", type=int, default=1, help="GLMM: adaptive Gauss-Hermite points (1 = Laplace)")
    p.add_argument("--verbose", action="store_true", help="print each objective evaluation")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--optsum", action="store_true", help="also print the optimisation summary")
    p.set_defaults(handler=_fit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixedmodels", description="Mixed-effects models from formulas.")
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
        print(f"mixedmodels: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
