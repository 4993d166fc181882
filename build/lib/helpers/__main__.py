"""Command line: `python -m helpers {model,shap,all,tb} --dataset NAME`."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import class_names, load_dataset, train_or_load
from .data import DATASETS, cache_dir
from .explain import deep_shap_run
from .plot import (figure_to_array, header_over_grid, plot_categories,
                   prediction_titles,
                   save_image, shap_grid)


def shap_figures(dataset: str, out: Path) -> None:
    """Write shap.png, categories.png and final.png for `dataset` to `out`."""
    run = deep_shap_run(dataset)
    print(f"additivity error: {run.error:.2e}")
    names = class_names(dataset)
    grid = shap_grid(run.shap.values, run.images, names,
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
