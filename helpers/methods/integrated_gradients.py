"""Integrated Gradients (Sundararajan et al. 2017): the gradient averaged along
the straight path from a baseline to the image, times the difference."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine import check_score
from .base import Context, Method, register

RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
         "riemann_trapezoid")
BASELINES = ("black", "blur", "noise")


def ig_alphas(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Points `alpha` in [0, 1] and weights of the quadrature `rule` for the path integral."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return (x + 1) / 2, w / 2
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "riemann_trapezoid":  # weights sum to 1 (Alibi's: (n - 1) / n)
        if steps < 2:
            raise ValueError("steps must be >= 2 for riemann_trapezoid")
        alphas = np.linspace(0, 1, steps)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (np.arange(steps) + offset) / steps, np.full(steps, 1 / steps)


def make_baseline(kind, inputs: np.ndarray, pixel_range=(0.0, 1.0), n_noise: int = 4,
                  seed: int = 0, sigma: float = 5.0) -> np.ndarray:
    """Baselines `(draws, n, H, W, C)`: black, blurred, uniform noise (the same
    `n_noise` draws for every image), or given."""
    low, high = pixel_range
    if isinstance(kind, str):
        if kind == "black":
            return np.broadcast_to(np.asarray(low, np.float32), (1, *inputs.shape)).copy()
        if kind == "blur":
            from skimage.filters import gaussian

            return gaussian(inputs, sigma=(0, sigma, sigma, 0),
                            preserve_range=True)[None].astype(np.float32)
        if kind == "noise":
            # Drawn once for all images: an image's baselines do not depend on
            # its place in the batch.
            draws = np.random.default_rng(seed).uniform(low, high, (n_noise, 1, *inputs.shape[1:]))
            return np.broadcast_to(draws.astype(np.float32), (n_noise, *inputs.shape)).copy()
        raise ValueError(f"baseline must be one of {BASELINES} or an array, got {kind!r}")
    baseline = np.asarray(kind, np.float32)
    if baseline.shape not in (inputs.shape[1:], inputs.shape):
        raise ValueError(f"baseline must have shape {inputs.shape[1:]} or "
                         f"{inputs.shape} to match inputs, got {baseline.shape}")
    return np.broadcast_to(baseline, inputs.shape)[None].astype(np.float32)


@register
@dataclass
class IntegratedGradients(Method):
    """Integrated Gradients, every (image, path point) pair in one stream of
    batched gradient calls. The map sums the attributions over channels;
    `details` holds them per channel ("attributions") and each image's
    "completeness_error" |sum(attributions) - (f(x) - f(baseline))|.

    Options:
        steps: points on the path (default 50).
        baseline: "black", "blur" (Gaussian, `sigma` pixels), "noise" (`n_noise`
            uniform draws with `seed`, the same for every image, averaged) or an
            array like the inputs.
        rule: the quadrature, one of RULES (default "gausslegendre").
        n_noise, seed, sigma: for the "noise" and "blur" baselines.
        score: "logit" (default) or "probability".
    """

    name: ClassVar[str] = "integrated_gradients"
    steps: int = 50
    baseline: object = "black"
    rule: str = "gausslegendre"
    n_noise: int = 4
    seed: int = 0
    sigma: float = 5.0
    score: str = "logit"

    def check(self, model, inputs) -> None:
        check_score(self.score)
        ig_alphas(self.steps, self.rule)
        if isinstance(self.baseline, str) and self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES} or an array, "
                             f"got {self.baseline!r}")

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        engine = context.engine
        alphas, weights = ig_alphas(self.steps, self.rule)
        baselines = make_baseline(self.baseline, inputs, (context.low, context.high),
                                  self.n_noise, self.seed, self.sigma)
        n = len(inputs)
        attributions, gap = np.zeros_like(inputs), np.zeros(n)
        image_of = np.repeat(np.arange(n), len(alphas))
        alpha = np.tile(alphas, n).astype(np.float32)[:, None, None, None]
        weight = np.tile(weights, n).astype(np.float32)[:, None, None, None]
        for base in baselines:  # one pass per noise draw
            delta = inputs - base
            grads = np.zeros_like(inputs)
            for part in engine.slices(len(image_of)):
                i = image_of[part]
                g = engine.gradients(base[i] + alpha[part] * delta[i], targets[i],
                                     self.score).gradients
                firsts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])  # i is sorted
                grads[i[firsts]] += np.add.reduceat(weight[part] * g, firsts)
            attributions += delta * grads / len(baselines)
            ends = engine.target_scores(np.concatenate([inputs, base]), np.tile(targets, 2),
                                        self.score)
            gap += (ends[:n] - ends[n:]) / len(baselines)
        context.details["attributions"] = attributions
        context.details["completeness_error"] = np.abs(attributions.sum(axis=(1, 2, 3)) - gap)
        return attributions.sum(-1)
