"""Figures of photos: heatmaps over photos, rows of them, LIME's masks, anchors,
and the comparison's score bars."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .plot import MAX_INCHES, _check_batch, _column_inches, _layout, _title_size  # noqa: F401

def upsample(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to an image's `(height, width)`."""
    from skimage.transform import resize

    heatmap = _check_batch("heatmap", heatmap, (2,))
    return resize(heatmap, shape, order=1, mode="edge")


def display_map(m: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    """`(map, cmap, vmin, vmax)` for imshow: signed maps on a symmetric red-blue scale,
    never-negative ones in reds from their minimum; clipped at the 99th percentile of |map|."""
    top = np.percentile(np.abs(m), 99) or np.abs(m).max() or 1.0
    if m.min() < 0:
        return np.clip(m, -top, top), "bwr", -top, top
    low = m.min()
    top = max(top, low + 1e-12)
    return np.minimum(m, top), "Reds", low, top


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
