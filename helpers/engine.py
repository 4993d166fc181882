"""The one way the book calls a model: compiled, in bounded batches, counted.

Every method, every score in `helpers.evaluate` and `ImageNetClassifier.predict`
push images through an `Engine`. It also knows which output is explained:
`score="logit"` (the pre-softmax class score) or `"probability"`.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import keras
import numpy as np

SCORES = ("logit", "probability")


# Images per call at most: on two CPU cores a call of 64-128 small images costs
# 1.4-1.7 times less per image than one of 500-2,674 (forward and gradients of
# the FashionMNIST CNN on an AMD EPYC, measured for issue 15).
MAX_BATCH = 128


def batch_limit(image_shape: tuple[int, ...]) -> int:
    """Images in about 8 MB of input (2,674 FashionMNIST images, 13 photos of
    224 px, at least 8), which bounds the activations' memory."""
    return max(8, 2**21 // int(np.prod(image_shape)))


def default_batch(image_shape: tuple[int, ...]) -> int:
    """An Engine's images per model call: `batch_limit`, at most MAX_BATCH."""
    return min(MAX_BATCH, batch_limit(image_shape))


def softmax_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The model's last layer if it applies a softmax (a `Softmax` layer, or a
    layer such as `Dense` or `Activation` with activation softmax), else None."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return last
    activation = getattr(last, "activation", None)
    return last if getattr(activation, "__name__", None) == "softmax" else None


@functools.lru_cache(maxsize=16)
def _logits_and_head(model: keras.Model):
    last = softmax_layer(model)
    if last is None:
        return model, None, None
    head = None
    if not isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        config = {**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"}
        head = type(last).from_config(config)
    if isinstance(model, keras.Sequential):
        # A loaded Sequential's layer outputs are not tied to model.inputs.
        stack = model.layers[:-1] + ([head] if head else [])
        logits = keras.Sequential([keras.Input(model.input_shape[1:]), *stack],
                                  name=f"{model.name}_logits")
    else:
        inner = last.input
        logits = keras.Model(model.inputs, head(inner) if head else inner,
                             name=f"{model.name}_logits")
    return logits, head, last


def logit_model(model: keras.Model) -> keras.Model:
    """The model up to its pre-softmax class scores (logits), with its weights.

    The model itself when its last layer applies no softmax. Built once per
    model; the last layer's weights are copied again on every call, so a
    change to them is seen.
    """
    logits, head, last = _logits_and_head(model)
    if head is not None:
        head.set_weights(last.get_weights())
    return logits


def check_score(score: str) -> None:
    """Raise a clear error unless `score` is one of SCORES."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def scored_model(model: keras.Model, score: str) -> keras.Model:
    """The model whose output is `score`: "logit" or "probability" (as it is)."""
    check_score(score)
    return logit_model(model) if score == "logit" else model


def _sequential_split(model: keras.Model, layer: str):
    def run(x):
        for each in model.layers:
            x = each(x, training=False)
            if each.name == layer:
                maps = x
        return maps, x
    return run


def check_layer(model: keras.Model, layer: str) -> None:
    """Raise a clear error unless `layer` names a layer of `model`."""
    names = [each.name for each in model.layers]
    if layer not in names:
        raise ValueError(f"layer must name a layer of the model ({', '.join(names[:6])}"
                         f"{', ...' if len(names) > 6 else ''}), got {layer!r}")


@functools.lru_cache(maxsize=16)
def _compiled_forward(model: keras.Model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


@functools.lru_cache(maxsize=16)
def _compiled_gradients(model: keras.Model, layer: str | None):
    import tensorflow as tf

    if layer is None:
        split = None
    elif isinstance(model, keras.Sequential):  # its layer outputs are not tied to inputs
        split = _sequential_split(model, layer)
    else:
        split = keras.Model(model.inputs[0], [model.get_layer(layer).output,
                                              model.outputs[0]])
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int64))

    @tf.function(input_signature=spec)
    def run(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            maps, outputs = (x, model(x, training=False)) if split is None else split(x)
            scores = tf.gather(outputs, targets, axis=1, batch_dims=1)
        return scores, maps, tape.gradient(scores, maps)

    return run


def forward(model: keras.Model):
    """`model(x)` compiled once for any batch size (a tf.function): on small
    batches several times faster than an eager call. Uncounted: use an Engine."""
    return _compiled_forward(model)


def score_gradients(model: keras.Model, layer: str | None = None):
    """A compiled `(inputs, targets) -> (scores, maps, gradients)` of the model's
    output as it is; `maps` are the inputs or `layer`'s output. Uncounted."""
    return _compiled_gradients(model, layer)


class Gradients(NamedTuple):
    """Each image's target score, the maps differentiated against, their gradients."""

    scores: np.ndarray
    maps: np.ndarray
    gradients: np.ndarray


class Engine:
    """A model's calls as every method makes them: compiled once, in batches of
    at most `batch_size` images (default `default_batch`: ~8 MB of input per
    call, at most MAX_BATCH images), and counted in `calls` (images forward, images backward)."""

    def __init__(self, model: keras.Model, batch_size: int | None = None):
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.batch_size = int(batch_size or default_batch(model.input_shape[1:]))
        self.calls = {"forward": 0, "backward": 0}

    def slices(self, n: int):
        """Slices of `range(n)` of at most `batch_size`: one model call each."""
        return (slice(i, i + self.batch_size) for i in range(0, n, self.batch_size))

    def predict(self, inputs: np.ndarray, score: str = "probability",
                model: keras.Model | None = None) -> np.ndarray:
        """The model's `score` for every class of `inputs`, `(n, classes)`; or the
        output of `model` (e.g. a part of the engine's model) as it is."""
        inputs = np.asarray(inputs, np.float32)
        run = _compiled_forward(scored_model(self.model, score) if model is None else model)
        self.calls["forward"] += len(inputs)
        return np.concatenate([run(inputs[part]).numpy() for part in self.slices(len(inputs))])

    def target_scores(self, inputs: np.ndarray, targets: np.ndarray,
                      score: str = "probability") -> np.ndarray:
        """Each image's `score` of its target class, `(n,)`."""
        return self.predict(inputs, score)[np.arange(len(inputs)), targets]

    def gradients(self, inputs: np.ndarray, targets: np.ndarray, score: str = "logit",
                  layer: str | None = None, model: keras.Model | None = None) -> Gradients:
        """Gradients of each image's target `score` with respect to the inputs,
        or to `layer`'s output, with that output and the scores; of the output of
        `model` (e.g. a part of the engine's model) as it is, if given."""
        inputs = np.asarray(inputs, np.float32)
        targets = np.asarray(targets, np.int64)
        run = _compiled_gradients(scored_model(self.model, score) if model is None
                                  else model, layer)
        parts = [run(inputs[part], targets[part]) for part in self.slices(len(inputs))]
        self.calls["forward"] += len(inputs)
        self.calls["backward"] += len(inputs)
        return Gradients(*(np.concatenate([p[k].numpy() for p in parts]) for k in range(3)))

    def count(self, images: int, backward: bool = False) -> None:
        """Record calls a library made through the model on its own."""
        self.calls["forward"] += images
        if backward:
            self.calls["backward"] += images

    def counting(self, predict):
        """`predict` (a function of a batch) wrapped so its images are counted
        and pushed through in batches of at most `batch_size`."""
        def run(batch):
            batch = np.asarray(batch, np.float32)
            self.count(len(batch))
            return np.concatenate([predict(batch[part]) for part in self.slices(len(batch))])
        return run
