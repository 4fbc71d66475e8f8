"""Command-line subcommand ``fit-many``: one design, many responses, a Parquet table.

    mixedmodels fit-many "~ 1 + condition + (1|donor)" --data samples.csv \\
        --responses expr.parquet --out results.parquet [--family poisson] [--reml] \\
        [--dask-scheduler tcp://host:8786] [--chunk 256]

The samples file's first column is its index when ``--index-col`` names it
(default: the first column if it is unnamed or called ``sample``), and the
responses file's first column likewise: rows are matched by those labels.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _read(path: str, index_col: str | None):
    from ..cli import read_data
    from ..errors import DataError

    frame = read_data(path)
    column = index_col if index_col is not None else frame.columns[0]
    if index_col is None and not (str(column).startswith("Unnamed") or column == "sample"):
        return frame
    if column not in frame.columns:
        raise DataError(f"--index-col {column!r} is not a column of {path!r}")
    return frame.set_index(column)


def _fit_many(args: argparse.Namespace) -> int:
    from ..cli import check_writable
    from .api import fit_many

    check_writable(args.out)
    samples = _read(args.data, args.index_col)
    responses = _read(args.responses, args.index_col)
    res = fit_many(
        args.formula, samples, responses, family=args.family, reml=args.reml,
        scheduler=args.dask_scheduler, chunk=args.chunk, out=args.out, method=args.method,
        progress=False if args.no_progress else "auto",
    )  # fmt: skip
    ok = int(res.table["converged"].sum())
    print(f"{len(res)} responses, {ok} converged; results written to {args.out}")
    return 0


def register(subparsers) -> None:
    """Add the ``fit-many`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "fit-many",
        help="fit one mixed model to many responses (features) and write a Parquet table",
    )
    p.add_argument("formula", help='one-sided formula, e.g. "~ 1 + condition + (1|donor)"')
    p.add_argument("--data", required=True, help="the samples: CSV or Parquet, one row per sample")
    p.add_argument(
        "--responses", required=True, help="samples × features: CSV or Parquet (rows = samples)"
    )
    p.add_argument(
        "--out", required=True, help="Parquet file for the results (one row per feature)"
    )
    p.add_argument(
        "--family", default="gaussian", help="gaussian (default), poisson, binomial, ..."
    )
    p.add_argument("--reml", action="store_true", help="REML for linear models (default ML)")
    p.add_argument("--dask-scheduler", default=None, help="address of a Dask scheduler")
    p.add_argument("--chunk", type=int, default=256, help="responses per task (default 256)")
    p.add_argument(
        "--method",
        choices=("lockstep", "each"),
        default="lockstep",
        help="lockstep (default: a chunk's Gaussian fits together) or each (one BOBYQA fit a response)",
    )
    p.add_argument(
        "--index-col", default=None, help="column holding the sample labels in both files"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_fit_many)
