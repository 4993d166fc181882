"""`python -m helpers.explain_dataset --dataset NAME --method NAME --out PATH`:
explain a test set on Dask into a resumable Zarr store (`helpers.explain_dataset`).

The model is the book's (`helpers.train_or_load(dataset)`) unless `--model`
names a `.keras` file; `--scheduler tcp://host:8786` uses an existing cluster
instead of one worker per core here. Rerun the same command to resume.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .. import load_dataset, train_or_load
from ..data import DATASETS, preprocess, sample
from ..methods import METHODS, OPTIONS
from . import explain_dataset

BACKGROUND = 50  # training images for the methods that need a background


def option(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with a JSON value (`steps=16`), or a plain string (`baseline=blur`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def positive(text: str) -> int:
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parse = argparse.ArgumentParser(prog="python -m helpers.explain_dataset",
                                    description=__doc__.split("\n\n")[0])
    parse.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
    parse.add_argument("--method", choices=METHODS, required=True)
    parse.add_argument("--out", type=Path, required=True, metavar="PATH",
                       help="the Zarr store (a folder)")
    parse.add_argument("--model", type=Path, metavar="PATH",
                       help="a .keras file (default: the book's model of the dataset)")
    parse.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask scheduler, e.g. tcp://host:8786")
    parse.add_argument("--workers", type=positive, metavar="N",
                       help="processes of the embedded cluster (default: one per core)")
    parse.add_argument("--limit", type=positive, metavar="N",
                       help="explain the first N test images only")
    parse.add_argument("--chunk", type=positive, metavar="N", help="images per task")
    parse.add_argument("--targets", choices=["predicted", "labels"], default="predicted",
                       help="explain the predicted classes or the true labels")
    parse.add_argument("--option", type=option, action="append", default=[],
                       metavar="KEY=VALUE", help="a method option (JSON value), repeatable")
    parse.add_argument("--background", type=positive, default=BACKGROUND, metavar="N",
                       help="training images as background, for the methods that need one")
    parse.add_argument("--quiet", action="store_true", help="no progress bar")
    return parse


def main(argv: list[str] | None = None) -> int:
    """Explain the test set and print a one-line summary."""
    args = parser().parse_args(argv)
    options = dict(args.option)
    (x_train, y_train), (x_test, y_test) = load_dataset(args.dataset)
    if "background" in OPTIONS[args.method] and "background" not in options:
        options["background"] = preprocess(x_train[sample(y_train, args.background, seed=0)])
    take = slice(args.limit)
    inputs = preprocess(x_test[take])
    targets = y_test[take].astype(np.int64) if args.targets == "labels" else None
    model = args.model if args.model else train_or_load(args.dataset, verbose=2).model
    try:
        run = explain_dataset(model, inputs, args.method, targets, out=args.out,
                              client=args.scheduler, workers=args.workers, chunk=args.chunk,
                              progress=not args.quiet, **options)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"explained {run.n} {args.dataset} images by {args.method}: {run.computed} chunks "
          f"computed ({run.images} images), {run.resumed} resumed, in {run.seconds:.1f} s "
          f"({run.images_per_second:.1f} images/s) -> {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
