"""Figures: SHAP grids, class headers, and stacking them into one image."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

COLUMN_INCHES = 1.6  # width of one image column in grids and headers (at most)
# The widest figure, in inches at the book's 100 dpi: the text column shows
# about 6.6 inches unscaled; wider figures shrink, and past ~8 inches their
# 8-9 pt labels become unreadable. Wider content gets more rows instead.
MAX_INCHES = 8.0


def _column_inches(n_columns: float, most: float = COLUMN_INCHES) -> float:
    """The width of one of `n_columns` equal panels, `most` or less to fit."""
    return min(most, MAX_INCHES / n_columns)


def _grid_width(n_columns: int) -> float:
    return _column_inches(n_columns) * n_columns


def _title_size(column: float) -> float:
    """A title's font size for a panel `column` inches wide."""
    return 9 if column >= 1.2 else 7.5


def _layout(n: int, most_columns: int) -> tuple[int, int]:
    """(rows, columns) for `n` panels: at most `most_columns` a row, rows balanced."""
    rows = -(-n // most_columns)
    return rows, -(-n // rows)


def _check_batch(name: str, array: np.ndarray, ranks: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim not in ranks:
        raise ValueError(f"{name} must have rank {' or '.join(map(str, ranks))}, "
                         f"got shape {array.shape}")
    return array


def _check_grid(values, images, labels, true_labels):
    """SHAP values `(n, H, W, C, k)`, images `(n, H, W, C)`, k labels (or n x k)."""
    values = _check_batch("values", values, (5,))
    images = _check_batch("images", images, (4,))
    n, k = values.shape[0], values.shape[-1]
    if images.shape != values.shape[:-1]:
        raise ValueError(f"images must have shape {values.shape[:-1]} to match "
                         f"values {values.shape}, got {images.shape}")
    labels = np.asarray(labels)
    if labels.shape[-1] != k:
        raise ValueError(f"labels must have {k} entries (one per class column), "
                         f"got {labels.shape[-1]}")
    if true_labels is not None and len(true_labels) != n:
        raise ValueError(f"true_labels must have {n} entries, got {len(true_labels)}")
    return values, images, labels


def _shap_panels(values: np.ndarray, images: np.ndarray, labels, true_labels,
                 per_row: bool) -> Figure:
    """A row per image, a column per class: shap's colours (red +, blue -) over
    the image in grey; one colour scale (99.9th percentile of |value|, as
    `shap.image_plot`), or one per row. Constrained layout keeps multi-line
    row titles clear of the row above."""
    from shap.plots.colors import red_transparent_blue

    values, images, labels = _check_grid(values, images, labels, true_labels)
    n, k = values.shape[0], values.shape[-1]
    labels = np.broadcast_to(labels, (n, k))
    maps = values.sum(axis=3)  # over colour channels, as shap.image_plot does
    # The first column (the image, titled with its labels) is 1.5 columns wide.
    columns = k + 1.5 + (0.6 if per_row else 0)
    column = _column_inches(columns)
    size = _title_size(column)
    if true_labels is not None and column < 1.2:  # "(99%)" on a line of its own
        true_labels = [str(t).replace(" (", "\n(") for t in true_labels]
    lines = max(str(t).count("\n") + 1 for t in true_labels) if true_labels else 1
    fig, axes = plt.subplots(
        n, k + 1, squeeze=False, layout="constrained",
        gridspec_kw={"width_ratios": [1.5] + [1] * k},
        figsize=(column * columns,
                 n * (column + 0.18 * (lines + 1)) + (0 if per_row else 0.7)))
    limit = float(np.nanpercentile(np.abs(maps), 99.9)) or 1.0
    for r in range(n):
        image = images[r]
        axes[r, 0].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        if true_labels is not None:
            axes[r, 0].set_title(true_labels[r], fontsize=size)
        if per_row:
            limit = float(np.nanpercentile(np.abs(maps[r]), 99.9)) or 1.0
        for c in range(k):
            ax = axes[r, c + 1]
            ax.imshow(image.mean(-1), cmap="gray", alpha=0.15)
            drawn = ax.imshow(maps[r, ..., c], cmap=red_transparent_blue,
                              vmin=-limit, vmax=limit)
            ax.set_title(str(labels[r, c]), fontsize=size)
        for ax in axes[r]:
            ax.axis("off")
        if per_row:
            bar = fig.colorbar(drawn, ax=axes[r, 1:].tolist(), fraction=0.03, pad=0.02)
            bar.ax.tick_params(labelsize=7)
            bar.set_label("SHAP value", fontsize=7)
    if not per_row:
        bar = fig.colorbar(drawn, ax=axes.ravel().tolist(), location="bottom",
                           fraction=0.04, shrink=0.6, aspect=40)
        bar.ax.tick_params(labelsize=8)
        bar.set_label("SHAP value", fontsize=9)
    return fig


def shap_grid(values: np.ndarray, images: np.ndarray,
              labels: list[str] | np.ndarray, true_labels: list[str] | None = None) -> Figure:
    """`shap.image_plot`'s figure: a row per image, a column per class, red +
    / blue -, one colour scale for all, at most `MAX_INCHES` wide."""
    return _shap_panels(values, images, labels, true_labels, per_row=False)


def shap_rows(values: np.ndarray, images: np.ndarray, labels: np.ndarray,
              true_labels: list[str] | None = None) -> Figure:
    """`shap_grid` with a colour scale (and colour bar) per row: one bright row
    cannot grey out the others."""
    return _shap_panels(values, images, labels, true_labels, per_row=True)


def prediction_titles(probs: np.ndarray, labels: np.ndarray,
                      class_names: list[str]) -> list[str]:
    """Row titles "true / predicted (probability)" for a grid."""
    probs = _check_batch("probs", probs, (2,))
    if len(probs) != len(labels):
        raise ValueError(f"probs and labels must have the same length, "
                         f"got {len(probs)} and {len(labels)}")
    return [f"{class_names[t]}\npred {class_names[p.argmax()]} ({p.max():.0%})"
            for t, p in zip(labels, probs)]


def grid_columns(grid: Figure) -> list[tuple[float, float]]:
    """`(left, width)` of each column of a grid, as fractions of its width."""
    grid.canvas.draw()  # applies the layout and the image aspect, which move the axes
    row = [ax for ax in grid.axes if ax.images and ax.get_subplotspec() is not None
           and ax.get_subplotspec().rowspan.start == 0]
    return [(ax.get_position().x0, ax.get_position().width)
            for ax in sorted(row, key=lambda ax: ax.get_position().x0)]


def plot_categories(images: np.ndarray, labels: np.ndarray,
                    class_names: list[str], grid: Figure | None = None) -> Figure:
    """A header strip: one example image per class, named, in the grid's columns.

    The first column is left blank for the explained image; with `grid`
    the header copies that figure's column positions exactly.
    """
    images = _check_batch("images", images, (3, 4))
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, "
                         f"got {len(images)} and {len(labels)}")
    k = len(class_names)
    width = _grid_width(k + 1)
    columns = [(0.125 + 0.775 * i / (k + 1), 0.7 / (k + 1)) for i in range(k + 1)]
    if grid is not None:
        columns = grid_columns(grid)
        width = grid.get_figwidth()
        if len(columns) != k + 1:
            raise ValueError(f"grid has {len(columns)} columns; class_names "
                             f"needs {k + 1} (the image, then one per class)")
    cell = columns[0][1] * width  # inches
    fig = plt.figure(figsize=(width, cell * 1.45))
    for c, (left, w) in enumerate(columns[1:]):
        found = np.flatnonzero(labels == c)
        if not len(found):
            raise ValueError(f"labels has no example of class {c} ({class_names[c]!r})")
        ax = fig.add_axes((left, 0.02, w, 1 / 1.45))
        ax.imshow(images[found[0]].squeeze(), cmap="gray")
        ax.set_title(class_names[c], fontsize=_title_size(cell) + 1)
        ax.axis("off")
    return fig


def figure_to_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """Render a figure to an RGB uint8 array and close it."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def resize_width(image: np.ndarray, width: int) -> np.ndarray:
    """Scale an RGB uint8 image to `width` pixels, keeping its aspect ratio."""
    from skimage.transform import resize

    image = _check_batch("image", image, (3,))
    if width < 1:
        raise ValueError(f"width must be a positive number of pixels, got {width}")
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    out = resize(image, (height, width), preserve_range=True, anti_aliasing=True)
    return out.round().astype(np.uint8)


def stack_vertical(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Put `top` above `bottom`; both RGB images of the same width."""
    top = _check_batch("top", top, (3,))
    bottom = _check_batch("bottom", bottom, (3,))
    if top.shape[1] != bottom.shape[1]:
        raise ValueError(f"top and bottom must have the same width, got "
                         f"{top.shape[1]} and {bottom.shape[1]} (use resize_width)")
    return np.concatenate([top, bottom], axis=0)


def header_over_grid(header: Figure | np.ndarray,
                     grid: Figure | np.ndarray) -> np.ndarray:
    """The final figure: the class header stacked above the SHAP grid."""
    if isinstance(grid, Figure):
        grid = figure_to_array(grid)
    if isinstance(header, Figure):
        header = figure_to_array(header)
    return stack_vertical(resize_width(header, grid.shape[1]), grid)


def save_image(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB array as PNG, atomically."""
    from PIL import Image

    from .data import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


# Photo figures live in helpers/heatmaps.py; chapters import them from here too.
from .heatmaps import (SCORES, anchor_grid, display_map, image_row, lime_masks,  # noqa: E402,F401
                       overlay, score_bars, upsample)
