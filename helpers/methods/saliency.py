"""Vanilla gradients (Simonyan et al. 2014): how much each pixel moves the score."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..engine import check_score
from .base import Context, Method, register


@register
@dataclass
class Saliency(Method):
    """|gradient| of the target score, the largest over colour channels.

    Options:
        score: "logit" (pre-softmax class score, default) or "probability".
    """

    name: ClassVar[str] = "saliency"
    score: str = "logit"

    def check(self, model, inputs) -> None:
        check_score(self.score)

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        grads = context.engine.gradients(inputs, targets, self.score).gradients
        return np.abs(grads).max(-1)
