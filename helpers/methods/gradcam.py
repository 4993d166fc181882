"""Grad-CAM (Selvaraju et al. 2017): a convolutional layer's maps weighted by
the mean gradient of the class score over each map."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import keras
import numpy as np

from ..engine import check_layer, check_score
from .base import Context, Method, register, upsample

CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
              "Conv2DTranspose")


def gradcam_layer(model: keras.Model) -> str:
    """The last spatial convolutional layer (with its BN/activation), by name.

    Layers whose maps are 1x1 (MobileNet's `conv_preds`) are skipped: a
    Grad-CAM heatmap of one pixel says nothing about where.
    """
    layers = model.layers
    spatial = [i for i, layer in enumerate(layers)
               if type(layer).__name__ in CONV_TYPES
               and len(layer.output.shape) == 4
               and layer.output.shape[1] * layer.output.shape[2] > 1]
    if not spatial:
        kinds = sorted({type(layer).__name__ for layer in layers})
        raise ValueError("model must have a convolutional layer with a spatial "
                         f"output for Grad-CAM; it has only {kinds}")
    i = spatial[-1]
    # Follow BatchNormalization / activation layers of the same shape.
    while (i + 1 < len(layers)
           and type(layers[i + 1]).__name__ in ("BatchNormalization", "ReLU", "Activation")
           and layers[i + 1].output.shape == layers[i].output.shape):
        i += 1
    return layers[i].name


def normalise(cams: np.ndarray) -> np.ndarray:
    """Each map divided by its own maximum (an all-zero map stays zero)."""
    top = cams.max(axis=(1, 2), keepdims=True)
    return np.divide(cams, top, out=np.zeros_like(cams), where=top > 0)


@register
@dataclass
class GradCam(Method):
    """Grad-CAM: ReLU(sum_k w_k A_k), w_k the mean gradient over map A_k,
    divided by its maximum and resized to the input.

    Options:
        layer: the convolutional layer (default: `gradcam_layer(model)`, the
            last one with a spatial output).
        score: "logit" (default; the paper's pre-softmax score) or "probability".
    """

    name: ClassVar[str] = "gradcam"
    layer: str | None = None
    score: str = "logit"

    def check(self, model, inputs) -> None:
        check_score(self.score)
        self.layer = self.layer or gradcam_layer(model)
        check_layer(model, self.layer)

    def weights(self, maps: np.ndarray, grads: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """One weight per feature map `(n, 1, 1, k)`: the mean gradient."""
        return grads.mean(axis=(1, 2), keepdims=True)

    def cams(self, context: Context, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The maps at the layer's resolution `(n, h, w)`, in [0, 1]."""
        scores, maps, grads = context.engine.gradients(inputs, targets, self.score,
                                                       self.layer)
        weights = self.weights(maps, grads, scores)
        return normalise(np.maximum((weights * maps).sum(-1), 0))

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        return upsample(self.cams(context, inputs, targets), inputs.shape[1:3])
