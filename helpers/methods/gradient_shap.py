"""Gradient SHAP (Lundberg & Lee 2017): expected gradients, `shap.GradientExplainer`,
at the pixels or at an intermediate layer."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import keras
import numpy as np

from ..engine import check_layer, check_score, scored_model
from .base import Context, Method, check_images, progress, register, upsample


def split_at(model: keras.Model, layer: str) -> tuple[keras.Model, keras.Model]:
    """The model as two: inputs -> `layer`'s output, and that output -> outputs."""
    check_layer(model, layer)
    if isinstance(model, keras.Sequential):  # its layer outputs are not tied to inputs
        names = [each.name for each in model.layers]
        cut = names.index(layer) + 1
        lower = keras.Sequential([keras.Input(model.input_shape[1:]), *model.layers[:cut]])
        upper = keras.Sequential([keras.Input(lower.output_shape[1:]), *model.layers[cut:]])
        return lower, upper
    inner = model.get_layer(layer).output
    return keras.Model(model.inputs[0], inner), keras.Model(inner, model.outputs[0])


@register
@dataclass
class GradientShap(Method):
    """`shap.GradientExplainer(model, background).shap_values(image, nsamples=...,
    rseed=seed)` for each image and its target; the map sums the values over
    channels (at a `layer`: over its feature maps, resized to the input).

    One call per image: shap draws the samples of all the images it is given
    from one stream, so in one call an image's samples would depend on the
    images before it. Per image, every image gets the same draws.

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
        import shap

        engine = context.engine
        model = scored_model(context.model, self.score)
        background, size = self.background, inputs.shape[1:3]
        if self.layer is not None:
            lower, model = split_at(model, self.layer)
            inputs, background = (engine.counting(lambda x: lower(x).numpy())(part)
                                  for part in (inputs, background))
        explainer = shap.GradientExplainer(model, background, batch_size=engine.batch_size,
                                           local_smoothing=self.local_smoothing)
        engine.count_shap(explainer)
        values = np.zeros(inputs.shape[:3])  # float64, as shap returns them
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The structure of `inputs`")
            for i in progress(range(len(inputs)), len(inputs), "gradient_shap",
                              context.progress):
                found, _ = explainer.shap_values(inputs[i:i + 1], nsamples=self.nsamples,
                                                 rseed=self.seed,
                                                 ranked_outputs=targets[i:i + 1, None],
                                                 output_rank_order="custom")
                values[i] = np.asarray(found).reshape(inputs.shape[1:]).sum(-1)
        return upsample(values, size) if self.layer else values
