"""Command line: `python -m helpers {model,shap,all,tb} --dataset NAME`."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from typing import NamedTuple

import keras
import numpy as np

from . import class_names, load_dataset, train_or_load
from .data import DATASETS, cache_dir, preprocess, sample
from .methods.deep_shap import DeepShap, additivity_error, deep_shap
from .plot import (figure_to_array, header_over_grid, plot_categories,
                   prediction_titles,
                   save_image, shap_grid)


class ShapRun(NamedTuple):
    """Everything a Deep SHAP figure of one dataset needs."""

    model: keras.Model
    accuracy: float
    inputs: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    shap: DeepShap
    error: float


def deep_shap_run(dataset: str, n_background: int = 100, n_images: int = 5,
                  seed: int = 0) -> ShapRun:
    """Train or load the dataset's CNN and explain test images of distinct classes."""
    trained = train_or_load(dataset)
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset)
    background = preprocess(x_train[sample(y_train, n_background, seed)])
    pick = sample(y_test, n_images, seed, distinct=True)
    inputs = preprocess(x_test[pick])
    result = deep_shap(trained.model, background, inputs)
    error = additivity_error(trained.model, inputs, result)
    probs = np.asarray(trained.model(inputs))
    return ShapRun(trained.model, trained.accuracy, inputs, y_test[pick],
                   probs, result, error)


def shap_figures(dataset: str, out: Path) -> None:
    """Write shap.png, categories.png and final.png for `dataset` to `out`."""
    run = deep_shap_run(dataset)
    print(f"additivity error: {run.error:.2e}")
    names = class_names(dataset)
    grid = shap_grid(run.shap.values, run.inputs, names,
                     prediction_titles(run.probs, run.labels, names))
    _, (x_test, y_test) = load_dataset(dataset)
    header = plot_categories(x_test, y_test, names, grid=grid)
    grid, header = figure_to_array(grid), figure_to_array(header)
    save_image(grid, out / "shap.png")
    save_image(header, out / "categories.png")
    save_image(header_over_grid(header, grid), out / "final.png")
    print(f"wrote {out}/shap.png, categories.png, final.png")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one step."""
    parser = argparse.ArgumentParser(prog="python -m helpers")
    parser.add_argument("step", choices=["model", "shap", "all", "tb"])
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--out", type=Path, default=Path("img"))
    args = parser.parse_args(argv)
    if args.step == "tb":
        return subprocess.call([sys.executable, "-m", "tensorboard.main",
                                "--logdir", str(cache_dir("logs"))])
    if args.step == "model":
        train_or_load(args.dataset)
    else:  # "shap" and "all" both train or load first
        shap_figures(args.dataset, args.out / args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
