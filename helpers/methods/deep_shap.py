"""Deep SHAP (Lundberg & Lee 2017; DeepLIFT's rules, Shrikumar et al. 2017):
`shap.DeepExplainer`'s rules, on the logit by default, traced once per model."""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import keras
import numpy as np

from ..engine import Engine, check_score, logit_model, scored_model
from .base import Context, Method, check_images, register

# Rows (images and their background partners) per call of the rules' graph:
# shap's rules cost several times a plain gradient and, unlike a plain forward
# pass, grow slower per row past a few dozen rows (cache): per row, 0.69 ms at
# 32 or 64 FashionMNIST rows against 0.90 at 128 and 1.40 at 256; on the
# CIFAR-10 CNN 1.96 ms at 32 rows, 2.26 at 16, 2.06 at 64. At most RULE_VALUES
# input values per call for large images (photos of 224 px: 2 rows, one pair).
RULE_ROWS = 32
RULE_VALUES = 2**17


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


class Rules(NamedTuple):
    """shap's TF explainer for a model (its DeepLIFT rules, which replace the
    gradients while a graph is traced) and the one graph traced with them."""

    explainer: object
    gradients: object


@functools.lru_cache(maxsize=16)
def deep_rules(model: keras.Model) -> Rules:
    """The rules' graph `(rows, classes) -> multipliers` of `model`, traced once
    (on its first call, under shap's rules) for any batch and any classes.

    shap's own `shap_values` traces a new graph per explainer and per class
    explained (`TFDeep.phi_symbolic`): ten traces per call of ten classes.
    """
    import shap
    import tensorflow as tf

    shape, n_classes = tuple(model.input_shape[1:]), model.output_shape[-1]
    with warnings.catch_warnings():
        # Eager mode is the only mode under TF2: shap's notice says nothing.
        warnings.filterwarnings("ignore", "Your TensorFlow version is newer")
        # shap's expected value over this one image is not used.
        explainer = shap.DeepExplainer(model, np.zeros((1, *shape), np.float32)).explainer
    spec = (tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None,), tf.int32))

    @tf.function(input_signature=spec)
    def gradients(rows, classes):
        # shap's grad_graph, with each row's class as an input instead of a
        # constant: the one-hot product passes the same gradient as out[:, i].
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(rows)
            outputs = model(rows, training=False)
            scores = tf.reduce_sum(outputs * tf.one_hot(classes, n_classes), axis=1)
        explainer._init_between_tensors(scores.op, [rows])
        return tape.gradient(scores, rows)

    return Rules(explainer, gradients)


def _multipliers(rules: Rules, rows: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The rules' graph on `rows` (images, then as many background images)."""
    import tensorflow as tf
    from tensorflow.python.eager import execute

    explainer, classes = rules.explainer, tf.constant(classes, tf.int32)
    record = execute.record_gradient
    try:  # shap's run: its rules in place while the graph is (first) traced
        return explainer.run(lambda inputs: [rules.gradients(inputs[0], classes)],
                             explainer.model_inputs, [rows])[0]
    finally:
        # On an error shap leaves its recorder in place, breaking every later
        # gradient in the process ("no entry for: shap_BiasAdd").
        execute.record_gradient = record


def _values(rules: Rules, images: np.ndarray, background: np.ndarray, classes: np.ndarray,
            pairs: int, engine: Engine) -> np.ndarray:
    """Each image's Deep SHAP values for its class, float64 like shap's: the
    mean over the background of multiplier x (image - background image), the
    multipliers computed on `pairs` (image, background image) pairs per call."""
    b = len(background)
    values = np.zeros(images.shape)
    group = max(1, pairs // b)  # images whose pairs fill about one call
    for first in range(0, len(images), group):
        x, k = images[first:first + group], classes[first:first + group]
        found = []
        for start in range(0, len(x) * b, pairs):
            pair = np.arange(start, min(start + pairs, len(x) * b))
            rows = np.concatenate([x[pair // b], background[pair % b]])
            engine.count(len(rows), backward=True)
            # shap reads the background half's multipliers (the halves' are equal)
            found.append(_multipliers(rules, rows, np.tile(k[pair // b], 2))[len(pair):])
        found = np.concatenate(found).reshape(len(x), b, *images.shape[1:])
        for j in range(len(x)):  # shap's expression, image by image
            values[first + j] = (found[j] * (x[j] - background)).mean(0)
    return values


def _deep_shap(model: keras.Model, background: np.ndarray, images: np.ndarray,
               ranked: np.ndarray, chunk: int | None, score: str, engine: Engine) -> DeepShap:
    """Deep SHAP values of each image for the classes in its row of `ranked`,
    averaged over background chunks of about `chunk`, weighted by their size."""
    chunk = chunk or max(1, 800_000 // images[0].size)
    rules = deep_rules(scored_model(model, score))
    rows = max(2, min(engine.batch_size, RULE_ROWS, RULE_VALUES // images[0].size))
    values, expected = 0.0, 0.0
    for part in np.array_split(background, -(-len(background) // chunk)):
        weight = len(part) / len(background)
        found = [_values(rules, images, part, column, rows // 2, engine) for column in ranked.T]
        values = values + weight * np.stack(found, axis=-1)
        expected = expected + weight * engine.predict(part, score).mean(0)
    return DeepShap(np.asarray(values), np.asarray(expected), ranked, score)


def deep_shap(model: keras.Model, background: np.ndarray, images: np.ndarray,
              ranked_outputs: int | None = None, chunk: int | None = None,
              score: str = "logit", engine: Engine | None = None) -> DeepShap:
    """`shap.DeepExplainer(model, background).shap_values(images)` for every class
    or (`ranked_outputs=k`) each image's k top classes, in chunks of background:
    the same values, with shap's rules traced once per model (`deep_rules`).

    `score="logit"` (default) explains the pre-softmax class scores: shap's rule
    for the softmax under TF2 multiplies by ratios of logit differences that
    explode when a logit barely moves between an image and a background image,
    so maps on the probability change with the background drawn.

    Deep SHAP averages over the background, so a large background is explained
    in chunks of about `chunk` images (default: ~800k pixels, 250 CIFAR-10
    images) and the results averaged, weighted by chunk size: the same values,
    a fraction of the memory. `engine`, if given, counts the model calls.
    """
    check_score(score)
    background = check_images("background", background, model)
    images = check_images("images", images, model)
    engine = engine or Engine(model)
    n_classes = model.output_shape[-1]
    if ranked_outputs is None:
        ranked = np.tile(np.arange(n_classes), (len(images), 1))
    else:  # shap's order: the largest explained outputs first
        ranked = np.argsort(-engine.predict(images, score))[:, :ranked_outputs]
    return _deep_shap(model, background, images, ranked, chunk, score, engine)


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


def relu6_layers(model: keras.Model) -> list[str]:
    """The names of the model's ReLU6 layers (MobileNet's), which shap's
    DeepExplainer has no rule for."""
    return [layer.name for layer in model.layers
            if getattr(layer, "max_value", None) is not None
            or getattr(getattr(layer, "activation", None), "__name__", "") == "relu6"]


@register
@dataclass
class DeepShapMethod(Method):
    """Deep SHAP of each image's target; the map sums the values over channels.
    Each image's target alone is explained (as shap's `ranked_outputs=1` does
    the predicted class), whatever the class.

    Options:
        background: images like the inputs (required).
        score: "logit" (default) or "probability".
        chunk: background images per average (default: ~800k pixels).
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
        unsupported = relu6_layers(model)
        if unsupported:
            raise ValueError(f"method 'deep_shap': shap.DeepExplainer has no rule for "
                             f"ReLU6 (layers {unsupported[:3]}...); use 'gradient_shap'")

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        found = _deep_shap(context.model, self.background, inputs, targets[:, None],
                           self.chunk, self.score, context.engine)
        return found.values[..., 0].sum(-1)
