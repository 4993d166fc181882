"""RISE (Petsiuk et al. 2018): the class probability under random smooth masks,
averaged with the masks as weights. A black box: forward passes only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Context, Method, progress, register


def rise_masks(n: int, size: tuple[int, int], cells: int = 7, p_keep: float = 0.5,
               seed: int = 0, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Masks `start:stop` of `n` RISE masks `(k, H, W)` in [0, 1]: a `cells` x
    `cells` grid of cells kept with probability `p_keep`, upsampled bilinearly
    to (cells + 1) cell sizes and cropped at a random shift (the paper's
    recipe). The same `seed` gives the same masks, however they are sliced."""
    import tensorflow as tf

    h, w = size
    cell_h, cell_w = -(-h // cells), -(-w // cells)
    rng = np.random.default_rng(seed)
    grids = (rng.random((n, cells, cells, 1)) < p_keep).astype(np.float32)
    shifts = np.stack([rng.integers(0, cell_h, n), rng.integers(0, cell_w, n)], 1)
    stop = n if stop is None else stop
    up = tf.image.resize(grids[start:stop], ((cells + 1) * cell_h, (cells + 1) * cell_w),
                         "bilinear").numpy()[..., 0]
    return np.stack([mask[dy:dy + h, dx:dx + w]
                     for mask, (dy, dx) in zip(up, shifts[start:stop])])


@register
@dataclass
class Rise(Method):
    """RISE: sum_i P(target | x * M_i + black * (1 - M_i)) M_i / (n_masks * p_keep),
    the same masks for every image, every masked image one row of a batched
    forward call.

    Options:
        n_masks: random masks (default 2000; the paper used 4000-8000 on ImageNet).
        cells: the mask grid's side (default 7).
        p_keep: probability that a cell is kept (default 0.5).
        seed: the masks' seed.
    """

    name: ClassVar[str] = "rise"
    n_masks: int = 2000
    cells: int = 7
    p_keep: float = 0.5
    seed: int = 0

    def check(self, model, inputs) -> None:
        if not isinstance(self.n_masks, (int, np.integer)) or self.n_masks < 1:
            raise ValueError(f"n_masks must be a positive integer, got {self.n_masks!r}")
        if not 0 < self.p_keep <= 1:
            raise ValueError(f"p_keep must be in (0, 1], got {self.p_keep!r}")
        if not isinstance(self.cells, (int, np.integer)) or self.cells < 1:
            raise ValueError(f"cells must be a positive integer, got {self.cells!r}")

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        engine = context.engine
        maps = np.zeros(inputs.shape[:3], np.float32)
        low = np.asarray(context.low, np.float32)
        parts = list(engine.slices(self.n_masks))
        for part in progress(parts, len(parts), "rise", context.progress):
            masks = rise_masks(self.n_masks, inputs.shape[1:3], self.cells, self.p_keep,
                               self.seed, part.start, min(part.stop, self.n_masks))
            kept = masks[..., None]
            for i, image in enumerate(inputs):
                scores = engine.target_scores(image * kept + low * (1 - kept),
                                              np.full(len(masks), targets[i]))
                maps[i] += np.tensordot(scores, masks, axes=1)
        return maps / (self.n_masks * self.p_keep)
