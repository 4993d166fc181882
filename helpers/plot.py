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


def shap_grid(values: np.ndarray, images: np.ndarray,
              labels: list[str] | np.ndarray, true_labels: list[str] | None = None) -> Figure:
    """`shap.image_plot`: a row per image, a column per class, red + / blue -."""
    import shap

    values, images, labels = _check_grid(values, images, labels, true_labels)
    n, k = values.shape[0], values.shape[-1]
    column = _column_inches(k + 1)
    narrow = column < 1.2
    if narrow and true_labels is not None:
        # "(99%)" on a line of its own: the longer line above it then sits
        # higher than the neighbouring class name instead of running into it.
        true_labels = [str(t).replace(" (", "\n(") for t in true_labels]
    # Narrow columns: thin margins and gaps, so the images keep their size.
    margins = ({"figure.subplot.left": 0.02, "figure.subplot.right": 0.98,
                "figure.subplot.wspace": 0.1} if narrow else {})
    with plt.rc_context(margins):
        # A list of per-class maps: the 5-D array would silently draw one column.
        shap.image_plot([values[..., c] for c in range(k)], images,
                        labels=np.broadcast_to(labels, (n, k)), true_labels=true_labels,
                        width=_grid_width(k + 1), hspace=0.5, show=False)
    fig = plt.gcf()
    # Room for two- or three-line row titles: shap sizes rows for one short title.
    fig.set_figheight(n * (column + 0.75) + (0.8 if narrow else 1.0))
    for ax in fig.axes[:-1]:
        ax.title.set_fontsize(_title_size(column))
    return fig


def shap_rows(values: np.ndarray, images: np.ndarray, labels: np.ndarray,
              true_labels: list[str] | None = None) -> Figure:
    """`shap_grid`'s maps with a colour scale (and colour bar) per row: one
    bright row cannot grey out the others. shap's colours and limits (the
    99.9th percentile of |value|), applied row by row."""
    from shap.plots.colors import red_transparent_blue

    values, images, labels = _check_grid(values, images, labels, true_labels)
    n, k = values.shape[0], values.shape[-1]
    labels = np.broadcast_to(labels, (n, k))
    maps = values.sum(axis=3)  # over colour channels, as shap.image_plot does
    column = _column_inches(k + 1.6)
    size = _title_size(column)
    fig, axes = plt.subplots(n, k + 1, squeeze=False,
                             figsize=(column * (k + 1.6), n * (column + 0.75)))
    for r in range(n):
        image = images[r]
        grey = image.mean(-1)
        axes[r, 0].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        if true_labels is not None:
            axes[r, 0].set_title(true_labels[r], fontsize=size)
        limit = float(np.nanpercentile(np.abs(maps[r]), 99.9)) or 1.0
        for c in range(k):
            ax = axes[r, c + 1]
            ax.imshow(grey, cmap="gray", alpha=0.15)
            drawn = ax.imshow(maps[r, ..., c], cmap=red_transparent_blue,
                              vmin=-limit, vmax=limit)
            ax.set_title(str(labels[r, c]), fontsize=size)
        bar = fig.colorbar(drawn, ax=axes[r, 1:].tolist(), fraction=0.03, pad=0.02)
        bar.ax.tick_params(labelsize=7)
        bar.set_label("SHAP value", fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    return fig


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
    grid.canvas.draw()  # applies the image aspect, which moves the axes
    top = max(ax.get_position().y1 for ax in grid.axes)
    row = [ax for ax in grid.axes if np.isclose(ax.get_position().y1, top)]
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


# --- Photos and heatmaps ------------------------------------------------------

def upsample(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to an image's `(height, width)`."""
    from skimage.transform import resize

    heatmap = _check_batch("heatmap", heatmap, (2,))
    return resize(heatmap, shape, order=1, mode="edge")


def overlay(ax, image: np.ndarray, heatmap: np.ndarray, title: str = "",
            cmap: str = "jet", alpha: float = 0.45, signed: bool = False) -> None:
    """Draw `image` with `heatmap` (upsampled to it) on top, on `ax`."""
    image = _check_batch("image", image, (3,))
    ax.imshow(image)
    heat = upsample(heatmap, image.shape[:2])
    if signed:
        limit = np.abs(heat).max() or 1.0
        ax.imshow(heat, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.6)
    else:
        ax.imshow(heat, cmap=cmap, alpha=alpha)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def image_row(images: list[np.ndarray], titles: list[str],
              heatmaps: list[np.ndarray | None] | None = None,
              signed: bool = False) -> Figure:
    """A row of images, each with an optional heatmap overlay and a title.

    More than four images wrap onto balanced rows (five: three and two), so
    the figure fits the text column."""
    if len(images) != len(titles):
        raise ValueError(f"images and titles must have the same length, "
                         f"got {len(images)} and {len(titles)}")
    heatmaps = heatmaps or [None] * len(images)
    rows, columns = _layout(len(images), 4)
    panel = _column_inches(columns, 2.6)
    fig, axes = plt.subplots(rows, columns, figsize=(panel * columns, (panel + 0.3) * rows),
                             squeeze=False)
    for ax in axes.flat[len(images):]:
        fig.delaxes(ax)
    for ax, image, title, heat in zip(axes.flat, images, titles, heatmaps):
        if heat is None:
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        else:
            overlay(ax, image, heat, title, signed=signed)
    fig.tight_layout()
    return fig


def lime_masks(explanation, image: np.ndarray, labels: list[int],
               names: list[str], num_features: int = 5) -> Figure:
    """For each label: the superpixels for it (green) and against it (red)."""
    from skimage.segmentation import mark_boundaries

    fig, axes = plt.subplots(len(labels), 3, figsize=(8, 2.8 * len(labels)),
                             squeeze=False)
    for row, label in zip(axes, labels):
        row[0].imshow(mark_boundaries(image, explanation.segments))
        row[0].set_title(f"superpixels ({explanation.segments.max() + 1})", fontsize=9)
        _, pos = explanation.get_image_and_mask(
            label, positive_only=True, num_features=num_features, hide_rest=False)
        row[1].imshow(mark_boundaries(image * pos[..., None].astype(bool), pos))
        row[1].set_title(f"top {num_features} for '{names[label]}'", fontsize=9)
        # The strongest superpixels by |weight|, coloured by their sign.
        weights = dict(explanation.local_exp[label])
        tint = np.zeros(image.shape[:2] + (4,))
        for segment, weight in sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:num_features]:
            colour = (0, 0.8, 0, 0.45) if weight > 0 else (0.9, 0, 0, 0.45)
            tint[explanation.segments == segment] = colour
        row[2].imshow(image)
        row[2].imshow(tint)
        row[2].set_title(f"for (green) / against (red) '{names[label]}'", fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


def _rgb(image: np.ndarray) -> np.ndarray:
    """A grey `(H, W)` / `(H, W, 1)` or RGB image in [0, 1], as RGB."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def anchor_grid(images: np.ndarray, explanations: dict[str, list],
                titles: list[str]) -> Figure:
    """Per image: the image, then per segmentation its superpixels and anchor."""
    n = len(images)
    for name, found in explanations.items():
        if len(found) != n:
            raise ValueError(f"explanations[{name!r}] must have {n} entries, got {len(found)}")
    if len(titles) != n:
        raise ValueError(f"titles must have {n} entries, got {len(titles)}")
    columns = 1 + 2 * len(explanations)
    panel = _column_inches(columns, 1.9)
    fig, axes = plt.subplots(n, columns, figsize=(panel * columns, (panel + 0.3) * n),
                             squeeze=False)
    for i, (row, image, title) in enumerate(zip(axes, images, titles)):
        row[0].imshow(_rgb(image))
        row[0].set_title(title, fontsize=9)
        for k, (name, found) in enumerate(explanations.items()):
            e = found[i]
            row[1 + 2 * k].imshow(_rgb(image))
            row[1 + 2 * k].imshow(e.segments % 20, cmap="tab20", alpha=0.45)
            row[1 + 2 * k].set_title(f"{name}:\n{e.segments.max() + 1} superpixels", fontsize=8)
            kept = np.isin(e.segments, e.data["raw"]["feature"])[..., None]
            row[2 + 2 * k].imshow(_rgb(image) * kept)  # black: free to change
            row[2 + 2 * k].set_title(
                f"anchor: precision {float(np.mean(e.precision)):.2f},\n"
                f"coverage {float(np.mean(e.coverage)):.2f}", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


SCORES = {  # score_methods' columns, and which way is better
    "seconds per image": "lower", "deletion AUC": "lower", "insertion AUC": "higher",
    "max-sensitivity": "lower", "randomisation rank corr.": "lower",
}


def score_bars(table) -> Figure:
    """A bar panel per score of `evaluate.score_methods` (a DataFrame by method),
    three panels a row.

    The dashed line is the row "random": the score of a random map.
    """
    columns = [c for c in SCORES if c in table.columns]
    if not columns:
        raise ValueError(f"table must have one of the columns {list(SCORES)}, "
                         f"got {list(table.columns)}")
    methods = [m for m in table.index if m != "random"]
    rows, per_row = _layout(len(columns), 3)
    fig, axes = plt.subplots(rows, per_row, sharey=True, squeeze=False,
                             figsize=(_column_inches(per_row, 2.6) * per_row,
                                      rows * (0.32 * len(methods) + 1.3)))
    for ax in axes.flat[len(columns):]:
        fig.delaxes(ax)
    axes = axes.flat[:len(columns)]
    for ax, column in zip(axes, columns):
        ax.barh(methods, table.loc[methods, column].fillna(0.0), color="tab:blue")
        chance = table[column].get("random", np.nan)
        if np.isfinite(chance):
            ax.axvline(chance, color="black", linestyle="--", label="random map")
        if column == "seconds per image":
            ax.set_xscale("log")
        ax.set_title(f"{column}\n({SCORES[column]} is better)", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return fig
