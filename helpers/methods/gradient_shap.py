"""Gradient SHAP (Lundberg & Lee 2017): expected gradients, `shap.GradientExplainer`,
at the pixels or at an intermediate layer."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import keras
import numpy as np

from ..engine import check_layer, check_score, scored_model
from .base import Context, Method, check_images, progress, register, upsample


def split_at(model: keras.Model, layer: str) -> tuple[keras.Model, keras.Model]:
    """The model as two: inputs -> `layer`'s output, and that output -> outputs."""
    check_layer(model, layer)
    return _split(model, layer)


@functools.lru_cache(maxsize=16)
def _split(model: keras.Model, layer: str) -> tuple[keras.Model, keras.Model]:
    if isinstance(model, keras.Sequential):  # its layer outputs are not tied to inputs
        names = [each.name for each in model.layers]
        cut = names.index(layer) + 1
        lower = keras.Sequential([keras.Input(model.input_shape[1:]), *model.layers[:cut]])
        upper = keras.Sequential([keras.Input(lower.output_shape[1:]), *model.layers[cut:]])
        return lower, upper
    inner = model.get_layer(layer).output
    return keras.Model(model.inputs[0], inner), keras.Model(inner, model.outputs[0])


def shap_draws(n_background: int, nsamples: int, seed: int, shape: tuple[int, ...],
               local_smoothing: float = 0.0):
    """The background rows, interpolation points (float64) and input noise (float64,
    None without smoothing) that `GradientExplainer.shap_values(X, nsamples,
    rseed=seed)` draws for one image: its legacy NumPy stream, in its order."""
    rng = np.random.RandomState(seed)
    rows, points = [], []
    noise = np.zeros((nsamples, *shape)) if local_smoothing > 0 else None
    for k in range(nsamples):
        rows.append(rng.choice(n_background))
        points.append(rng.uniform())
        if noise is not None:
            noise[k] = rng.randn(*shape) * local_smoothing
    return np.array(rows), np.array(points), noise


def shap_samples(x: np.ndarray, background: np.ndarray, points: np.ndarray,
                 noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """shap's samples `t * x + (1 - t) * background` and `x - background` (float32),
    with its rounding: a one-ulp difference can flip a ReLU and its gradient."""
    if noise is not None:
        x = x + noise  # float64, as shap adds it
        first = points * x
    else:
        first = points.astype(np.float32) * x  # a Python float times float32
    rest = (1 - points).astype(np.float32) * background
    return (first + rest).astype(np.float32), (x - background).astype(np.float32)


@register
@dataclass
class GradientShap(Method):
    """The values of `shap.GradientExplainer(model, background).shap_values(image,
    nsamples=..., rseed=seed)` for each image and its target (tested equal); the
    map sums them over channels (at a `layer`: over its feature maps, resized to
    the input).

    As if shap were called once per image: shap draws the samples of all the
    images it is given from one stream, so in one call an image's samples would
    depend on the images before it; here every image gets the same draws. The
    gradients run through one compiled function per model, many images per call,
    where shap traces a new graph per class and explainer.

    Options:
        background: images like the inputs (required): the reference distribution.
        nsamples: background/path samples per image (default 200).
        local_smoothing: std of noise added to the inputs (shap's option, default 0).
        seed: shap's `rseed`, the same for every image.
        layer: explain at this layer's output instead of the pixels (default None).
        score: "logit" (default) or "probability".
    """

    name: ClassVar[str] = "gradient_shap"
    background: np.ndarray | None = None
    nsamples: int = 200
    local_smoothing: float = 0.0
    seed: int = 0
    layer: str | None = None
    score: str = "logit"

    def check(self, model, inputs) -> None:
        if self.background is None:
            raise ValueError("method 'gradient_shap' needs background=<images like inputs>")
        self.background = check_images("background", self.background, model)
        check_score(self.score)
        if not isinstance(self.nsamples, (int, np.integer)) or self.nsamples < 1:
            raise ValueError(f"nsamples must be a positive integer, got {self.nsamples!r}")
        if self.layer is not None:
            check_layer(model, self.layer)

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        # shap.GradientExplainer's own computation (explainers/_gradient.py,
        # TF branch), with its draws, but through one compiled gradient per model:
        # shap traces a graph per class and explainer, i.e. on every call here.
        engine = context.engine
        model = scored_model(context.model, self.score)
        background, size = self.background, inputs.shape[1:3]
        if self.layer is not None:
            lower, model = split_at(model, self.layer)
            inputs, background = (engine.predict(part, model=lower)
                                  for part in (inputs, background))
        rows, points, noise = shap_draws(len(background), self.nsamples, self.seed,
                                         inputs.shape[1:], self.local_smoothing)
        points = points.reshape(-1, *[1] * (inputs.ndim - 1))
        per_call = max(1, engine.batch_size // self.nsamples)  # images per model call
        values = np.zeros(inputs.shape[:3])  # float64, as shap returns them
        for start in progress(range(0, len(inputs), per_call), -(-len(inputs) // per_call),
                              "gradient_shap", context.progress):
            part = slice(start, start + per_call)
            samples, delta = shap_samples(inputs[part, None], background[rows], points,
                                          noise)  # (images, nsamples, ...)
            flat = samples.reshape(-1, *inputs.shape[1:])
            chosen = np.repeat(targets[part], self.nsamples)
            grads = engine.gradients(flat, chosen, model=model).gradients.reshape(delta.shape)
            values[part] = (grads * delta).mean(1).astype(np.float64).sum(-1)
        return upsample(values, size) if self.layer else values
