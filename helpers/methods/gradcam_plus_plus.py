"""Grad-CAM++ (Chattopadhay et al. 2018): Grad-CAM whose map weights count
each location's positive gradient by a closed-form alpha, so several
instances of a class all light up."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import register
from .gradcam import GradCam


@register
@dataclass
class GradCamPlusPlus(GradCam):
    """Grad-CAM++: w_k = sum_ij alpha_ij^k ReLU(g_ij^k), with
    alpha = g^2 / (2 g^2 + sum_ab A_ab^k g^3) (the paper's Eq. 19 for an
    exponentiated score, whose factor cancels), g the score's gradient.

    Options:
        layer: the convolutional layer (default: the last one with a spatial output).
        score: "logit" (default) or "probability".
    """

    name: ClassVar[str] = "gradcam_plus_plus"

    def weights(self, maps: np.ndarray, grads: np.ndarray, scores: np.ndarray) -> np.ndarray:
        g2 = grads ** 2
        denominator = 2 * g2 + maps.sum(axis=(1, 2), keepdims=True) * g2 * grads
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
        return (alpha * np.maximum(grads, 0)).sum(axis=(1, 2), keepdims=True)
