"""Occlusion (Zeiler & Fergus 2014): how much the class probability drops when
a window of the image is set to black."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Context, Method, progress, register


@register
@dataclass
class Occlusion(Method):
    """Every (image, window position) pair in one stream of batches; a pixel's
    value is the mean probability drop over the windows covering it.

    Options:
        window: side of the square window in pixels (default: height // 7, >= 2).
        stride: step between windows (default: the window, no overlap).
    """

    name: ClassVar[str] = "occlusion"
    window: int | None = None
    stride: int | None = None

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        engine = context.engine
        n, h, w = inputs.shape[:3]
        window = self.window or max(2, h // 7)
        stride = self.stride or window
        corners = [(r, c) for r in range(0, h - window + 1, stride)
                   for c in range(0, w - window + 1, stride)]
        masks = np.zeros((len(corners), h, w, 1), bool)
        for k, (r, c) in enumerate(corners):
            masks[k, r:r + window, c:c + window] = True
        base = engine.target_scores(inputs, targets)
        image_of = np.repeat(np.arange(n), len(corners))
        window_of = np.tile(np.arange(len(corners)), n)
        drops = np.zeros(len(image_of), np.float32)
        parts = list(engine.slices(len(image_of)))
        for part in progress(parts, len(parts), "occlusion", context.progress):
            i, k = image_of[part], window_of[part]
            occluded = np.where(masks[k], context.low, inputs[i])
            drops[part] = base[i] - engine.target_scores(occluded, targets[i])
        covered = masks[..., 0].sum(0)
        maps = np.einsum("ik,khw->ihw", drops.reshape(n, -1),
                         masks[..., 0].astype(np.float32))
        return maps / np.maximum(covered, 1)
