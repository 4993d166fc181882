"""SmoothGrad (Smilkov et al. 2017): a gradient method's maps averaged over
copies of the image with Gaussian noise added."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import REGISTRY, Context, Method, register


@register
@dataclass
class SmoothGrad(Method):
    """The mean of `base`'s maps over `samples` noisy copies of each image,
    noise ~ N(0, (noise * (white - black))^2) per pixel (PAIR's `saliency`
    library: stdev_spread=0.15, nsamples=25).

    Options:
        base: a gradient method's name (default "saliency"; any method that
            takes `score`: "integrated_gradients", "gradcam", ...).
        base_options: that method's options (default: its defaults).
        noise: noise std as a fraction of the pixel range (default 0.15).
        samples: noisy copies per image (default 25).
        seed: the noise's seed. Every image gets the same `samples` draws (as
            RISE's masks), so its map does not depend on the images beside it.
    """

    name: ClassVar[str] = "smoothgrad"
    base: str = "saliency"
    base_options: dict | None = None
    noise: float = 0.15
    samples: int = 25
    seed: int = 0

    def check(self, model, inputs) -> None:
        gradient_methods = sorted(name for name, cls in REGISTRY.items()
                                  if "score" in cls.options())
        if self.base not in gradient_methods:
            raise ValueError(f"base must be a gradient method, one of {gradient_methods}, "
                             f"got {self.base!r}")
        if not isinstance(self.samples, (int, np.integer)) or self.samples < 1:
            raise ValueError(f"samples must be a positive integer, got {self.samples!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        self.method = REGISTRY[self.base](**(self.base_options or {}))
        self.method.check(model, inputs)

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        sigma = np.float32(self.noise) * (np.asarray(context.high, np.float32)
                                          - np.asarray(context.low, np.float32))
        noise = sigma * np.random.default_rng(self.seed).standard_normal(
            (self.samples, *inputs.shape[1:]), np.float32)
        # Images per round: their noisy copies fill about one model call.
        step = max(1, context.engine.batch_size // self.samples)
        maps = []
        for start in range(0, len(inputs), step):
            part = inputs[start:start + step]
            noisy = (part[:, None] + noise).reshape(-1, *inputs.shape[1:])
            found = self.method.attribute(context, noisy,
                                          np.repeat(targets[start:start + step], self.samples))
            maps.append(found.reshape(len(part), self.samples, *found.shape[1:]).mean(1))
        return np.concatenate(maps)
