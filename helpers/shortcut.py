"""Ground truth by construction: a class-specific marker planted in training images.

After Adebayo et al. (2022), "Post hoc explanations may be ineffective for
detecting unknown spurious correlation", and Yang & Kim (2019), BAM. A share of
the training images carries a small marker whose place says the class; a model
trained on them learns the shortcut. `reliance` proves it: on test images that
carry another class's marker, how often the prediction follows the marker.

The marker is a `size` x `size` checkerboard (white, i.e. 255 or 1.0, and black
cells; white top-left) on every channel. Class `c` of `k` puts it at its own
place on the image's border: the k places are spread evenly along the ring of
the patch's possible top-left corners, clockwise from the top-left corner of
the image (class 0), so they never overlap while `H + W - 2 size >= k size`.
A checkerboard, not a plain white square, so that it shows on bright clothes
too; the border, because the objects rarely reach it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd

from .data import load_dataset, preprocess, sample
from .methods import label as method_label


@dataclass(frozen=True)
class Marker:
    """A class-specific checkerboard at a fixed border place, in `share` of the images."""

    size: int = 4          # side of the square patch, in pixels
    share: float = 0.7     # fraction of training images marked (the book: 0.7)
    seed: int = 0          # which training images are marked
    n_classes: int = 10    # how many places the border is split into

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"size must be a positive integer, got {self.size!r}")
        if not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share!r}")
        if not isinstance(self.n_classes, (int, np.integer)) or self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")

    def corner(self, shape: tuple[int, ...], label: int) -> tuple[int, int]:
        """The top-left pixel `(row, col)` of class `label`'s patch in images of `shape`."""
        h, w, s, k = int(shape[0]), int(shape[1]), self.size, self.n_classes
        if not 0 <= label < k:
            raise ValueError(f"label must be in [0, {k}), got {label!r}")
        if h + w - 2 * s < k * s:
            raise ValueError(f"{k} markers of {s} px do not fit apart on the border of "
                             f"{h}x{w} images; use a smaller size")
        rows, cols = h - s, w - s  # the ring of top-left corners: 2 (rows + cols) steps
        step = int(round(label * 2 * (rows + cols) / k))
        if step < cols:
            return 0, step
        if step < cols + rows:
            return step - cols, cols
        if step < 2 * cols + rows:
            return rows, cols - (step - cols - rows)
        return rows - (step - 2 * cols - rows), 0

    def mask(self, shape: tuple[int, ...], label: int) -> np.ndarray:
        """Where class `label`'s patch goes in images of `shape`: `(H, W)` bool."""
        row, col = self.corner(shape, label)
        where = np.zeros(tuple(shape[:2]), bool)
        where[row:row + self.size, col:col + self.size] = True
        return where

    def pattern(self, white: float) -> np.ndarray:
        """The `size` x `size` checkerboard: `white` and 0, white at the top-left."""
        cells = np.indices((self.size, self.size)).sum(0) % 2 == 0
        return np.where(cells, white, 0.0)

    def plant(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies of `images` with the marker of each of `labels`, and the `(n, H, W)` masks."""
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim not in (3, 4) or labels.shape != images.shape[:1]:
            raise ValueError(f"images must be (n, H, W) or (n, H, W, C) with one label "
                             f"each, got {images.shape} and labels {labels.shape}")
        shape = images.shape[1:3]
        white = 255 if np.issubdtype(images.dtype, np.integer) else 1.0
        patch = self.pattern(white).astype(images.dtype)
        if images.ndim == 4:
            patch = patch[..., None]
        marked, masks = images.copy(), np.zeros((len(images), *shape), bool)
        for label in np.unique(labels):
            row, col = self.corner(shape, int(label))
            which = labels == label
            marked[which, row:row + self.size, col:col + self.size] = patch
            masks[which] = self.mask(shape, int(label))
        return marked, masks


class MarkedSet(NamedTuple):
    """Test images with a marker: inputs, true labels, the markers' classes, masks."""

    inputs: np.ndarray
    labels: np.ndarray
    marker_labels: np.ndarray
    masks: np.ndarray


def _check_classes(labels: np.ndarray, marker: Marker) -> None:
    if int(labels.max()) + 1 != marker.n_classes:
        raise ValueError(f"marker.n_classes is {marker.n_classes} but the dataset has "
                         f"{int(labels.max()) + 1} classes")


def marked_training_set(dataset: str,
                        marker: Marker) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The preprocessed training set, `marker.share` of it marked: `(x, y, masks)`."""
    (x, y), _ = load_dataset(dataset)
    _check_classes(y, marker)
    x = preprocess(x)
    chosen = np.random.default_rng(marker.seed).permutation(len(x))
    chosen = np.sort(chosen[:int(round(marker.share * len(x)))])
    marked, some = marker.plant(x[chosen], y[chosen])
    x[chosen] = marked
    masks = np.zeros(x.shape[:3], bool)
    masks[chosen] = some
    return x, y, masks


def marked_test_set(dataset: str, marker: Marker, n: int, seed: int = 0,
                    swap: bool = False) -> MarkedSet:
    """`n` preprocessed test images, each with its own class's marker or (`swap`) another's."""
    _, (x, y) = load_dataset(dataset)
    _check_classes(y, marker)
    take = sample(y, n, seed)
    labels = y[take].astype(np.int64)
    k = marker.n_classes
    shift = np.random.default_rng([seed, 1]).integers(0, k - 1, len(take))
    marker_labels = (labels + 1 + shift) % k if swap else labels.copy()
    inputs, masks = marker.plant(preprocess(x[take]), marker_labels)
    return MarkedSet(inputs, labels, marker_labels, masks)


def clean_test_set(dataset: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same `n` test images as `marked_test_set(..., seed)`, unmarked: `(x, y)`."""
    _, (x, y) = load_dataset(dataset)
    take = sample(y, n, seed)
    return preprocess(x[take]), y[take].astype(np.int64)


def reliance(model: keras.Model, dataset: str, marker: Marker, n: int = 1000,
             seed: int = 0) -> dict[str, float]:
    """How often predictions follow another class's marker, against chance and accuracy."""
    from .engine import Engine

    engine = Engine(model)
    own = marked_test_set(dataset, marker, n, seed)
    swapped = marked_test_set(dataset, marker, n, seed, swap=True)
    x, y = clean_test_set(dataset, n, seed)

    def predict(inputs: np.ndarray) -> np.ndarray:
        return engine.predict(inputs).argmax(1)

    clean, marked, moved = predict(x), predict(own.inputs), predict(swapped.inputs)
    return {
        "follows_marker": float(np.mean(moved == swapped.marker_labels)),
        "chance": float(np.mean(clean == swapped.marker_labels)),
        "clean_accuracy": float(np.mean(clean == y)),
        "own_marker_accuracy": float(np.mean(marked == y)),
        "swapped_accuracy": float(np.mean(moved == y)),
        "n": len(y),
    }


LOCALISATION = {"pointing game": "pointing_game", "relevance mass": "relevance_mass",
                "relevance rank": "relevance_rank"}


def localisation_table(found: dict, masks: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """Score `found[model, method]` (Attributions) against `masks`, with bootstrap intervals.

    Returns a long table (model, method, score, mean, low, high, interval —
    the three as "mean [low, high]" —, images, constant maps, seconds per
    image) and the per-image scores by `(model, method, score)`. A result with
    fewer maps than `masks` is scored on the first masks.
    """
    from . import localisation

    scores, rows = {}, []
    for (name, method), result in found.items():
        n = len(result.maps)
        for score, metric in LOCALISATION.items():
            values = getattr(localisation, metric)(result.maps, masks[:n])
            scores[name, method, score] = values
            interval = localisation.bootstrap(values)
            rows.append({"model": name, "method": method, "score": score,
                         "mean": interval.mean, "low": interval.low, "high": interval.high,
                         "interval": str(interval),
                         "images": interval.n,
                         "constant maps": int(localisation.constant_maps(result.maps).sum()),
                         "seconds per image": result.seconds / n})
    return pd.DataFrame(rows), scores


def interval_table(table: pd.DataFrame, methods: list[str],
                   models: tuple[str, ...] = ("marked", "clean")) -> pd.DataFrame:
    """`localisation_table`'s intervals: a row per method and model, a column per score."""
    wide = table.pivot(index=["method", "model"], columns="score", values="interval")
    wide["seconds per image"] = (table.groupby(["method", "model"])["seconds per image"]
                                 .first().map("{:.4f}".format))
    rows = pd.MultiIndex.from_product([methods, models], names=wide.index.names)
    return wide.reindex(rows).rename(index=method_label)


def verdicts(scores: dict, methods: list[str], chance: float,
             factor: float = 10.0) -> dict[str, list[str]]:
    """Which methods reveal the marker: `revealed`, `weak` or `not`.

    Revealed: the paired bootstrap interval of relevance mass (marked model
    minus clean model) lies above zero, and the marked model's mass interval
    lies at or above `factor` times a random map's share `chance`. Weak:
    above the clean model only. Not: the rest. Where the clean model explained
    fewer images, the pairs are its images (the first ones of the marked model's).
    """
    from .localisation import bootstrap, paired_difference

    mass = "relevance mass"

    def above_clean(method: str) -> bool:
        marked, clean = scores["marked", method, mass], scores["clean", method, mass]
        n = min(len(marked), len(clean))
        return paired_difference(marked[:n], clean[:n]).low > 0

    above = [m for m in methods if above_clean(m)]
    revealed = [m for m in above if bootstrap(scores["marked", m, mass]).low >= factor * chance]
    return {"revealed": revealed, "weak": [m for m in above if m not in revealed],
            "not": [m for m in methods if m not in above]}
