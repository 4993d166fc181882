"""Deep SHAP (Lundberg & Lee 2017; DeepLIFT's rules, Shrikumar et al. 2017):
`shap.DeepExplainer`, on the logit by default."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import keras
import numpy as np

from ..engine import Engine, check_score, logit_model, scored_model
from .base import Context, Method, check_images, register


class DeepShap(NamedTuple):
    """Deep SHAP values `(n, H, W, C, k)`, the expected outputs, the k classes.

    k is every class, or with `ranked_outputs` each image's top classes,
    listed in `ranked` `(n, k)`. `score` is the output explained: "logit"
    (the pre-softmax class score) or "probability".
    """

    values: np.ndarray
    expected: np.ndarray
    ranked: np.ndarray
    score: str = "logit"


def deep_shap(model: keras.Model, background: np.ndarray, images: np.ndarray,
              ranked_outputs: int | None = None, chunk: int | None = None,
              score: str = "logit", engine: Engine | None = None) -> DeepShap:
    """`shap.DeepExplainer(model, background).shap_values(images)` for every class
    or (`ranked_outputs=k`) each image's k top classes, in chunks of background.

    `score="logit"` (default) explains the pre-softmax class scores: shap's rule
    for the softmax under TF2 multiplies by ratios of logit differences that
    explode when a logit barely moves between an image and a background image,
    so maps on the probability change with the background drawn.

    Deep SHAP averages over the background, so a large background is explained
    in chunks of about `chunk` images (default: ~800k pixels, 250 CIFAR-10
    images) and the results averaged, weighted by chunk size: the same values,
    a fraction of the memory. `engine`, if given, counts the model calls.
    """
    import shap

    explained = scored_model(model, score)
    background = check_images("background", background, model)
    images = check_images("images", images, model)
    chunk = chunk or max(1, 800_000 // images[0].size)
    n_classes = model.output_shape[-1]
    ranked = np.tile(np.arange(n_classes), (len(images), 1))
    values, expected = 0.0, 0.0
    for part in np.array_split(background, -(-len(background) // chunk)):
        with warnings.catch_warnings():
            # shap calls the model with a list; Keras warns about the structure.
            warnings.filterwarnings("ignore", "The structure of `inputs`")
            # Eager mode is the only mode under TF2: shap's notice says nothing.
            warnings.filterwarnings("ignore", "Your TensorFlow version is newer")
            explainer = shap.DeepExplainer(explained, part)
            if engine is not None:
                engine.count(len(part))  # the expected value
                engine.count_shap(explainer)
            if ranked_outputs is None:
                found = explainer.shap_values(images)
            else:  # shap's additivity check assumes every class: ours is below
                found, ranked = explainer.shap_values(
                    images, ranked_outputs=ranked_outputs, check_additivity=False)
        weight = len(part) / len(background)
        values = values + weight * np.asarray(found)
        expected = expected + weight * np.asarray(explainer.expected_value)
    return DeepShap(np.asarray(values), np.asarray(expected), np.asarray(ranked), score)


class ExpSoftmax(keras.layers.Layer):
    """softmax(z) written as exp(z) / sum(exp(z)): the same probabilities, which
    shap's Deep SHAP explains with its generic rules, not its softmax rule."""

    def call(self, logits):
        e = keras.ops.exp(logits)
        return e / keras.ops.sum(e, axis=-1, keepdims=True)


def exp_softmax_model(model: keras.Model) -> keras.Model:
    """The model with its final softmax as `ExpSoftmax` (same outputs, same weights)."""
    logits = logit_model(model)
    return keras.Model(logits.inputs, ExpSoftmax()(logits.outputs[0]),
                       name=f"{model.name}_exp_softmax")


def additivity_error(model: keras.Model, images: np.ndarray, result: DeepShap) -> float:
    """Largest |sum of attributions + expected value - explained output|."""
    outputs = Engine(model).predict(images, result.score)
    rows = np.arange(len(images))[:, None]
    sums = result.values.sum(axis=tuple(range(1, result.values.ndim - 1)))
    gaps = sums + result.expected[result.ranked] - outputs[rows, result.ranked]
    return float(np.abs(gaps).max())


def _relu6_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers
            if getattr(layer, "max_value", None) is not None
            or getattr(getattr(layer, "activation", None), "__name__", "") == "relu6"]


@register
@dataclass
class DeepShapMethod(Method):
    """Deep SHAP of each image's target; the map sums the values over channels.
    The predicted class is explained alone (shap's `ranked_outputs=1`); any
    other target through the model followed by a layer that picks that class
    (one explainer per distinct target class).

    Options:
        background: images like the inputs (required).
        score: "logit" (default) or "probability".
        chunk: background images per explainer (default: ~800k pixels).
    """

    name: ClassVar[str] = "deep_shap"
    background: np.ndarray | None = None
    score: str = "logit"
    chunk: int | None = None

    def check(self, model, inputs) -> None:
        if self.background is None:
            raise ValueError("method 'deep_shap' needs background=<images like inputs>")
        self.background = check_images("background", self.background, model)
        check_score(self.score)
        unsupported = _relu6_layers(model)
        if unsupported:
            raise ValueError(f"method 'deep_shap': shap.DeepExplainer has no rule for "
                             f"ReLU6 (layers {unsupported[:3]}...); use 'gradient_shap'")

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        engine = context.engine
        top = targets == engine.predict(inputs).argmax(-1)
        maps = np.zeros(inputs.shape[:3], np.float32)
        run = dict(background=self.background, chunk=self.chunk, engine=engine)
        if top.any():
            maps[top] = deep_shap(context.model, images=inputs[top], ranked_outputs=1,
                                  score=self.score, **run).values[..., 0].sum(-1)
        # Any other target: the explained output followed by a linear layer that
        # picks the class. Deep SHAP's rules are linear there, so the values are
        # that class's, at the cost of one class instead of all of them.
        for target in np.unique(targets[~top]):
            rows = ~top & (targets == target)
            picked = class_model(scored_model(context.model, self.score), int(target))
            maps[rows] = deep_shap(picked, images=inputs[rows], score="probability",
                                   **run).values[..., 0].sum(-1)
        return maps


def class_model(model: keras.Model, target: int) -> keras.Model:
    """`model` with one output: its output for class `target` (a fixed linear layer)."""
    n_classes = model.output_shape[-1]
    pick = keras.layers.Dense(1, use_bias=False, trainable=False, name=f"class_{target}")
    picked = keras.Model(model.inputs, pick(model.outputs[0]), name=f"{model.name}_{target}")
    pick.set_weights([np.eye(n_classes, dtype=np.float32)[:, target:target + 1]])
    return picked
