"""Explanation methods, each a thin layer over the library the book teaches."""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import keras
import numpy as np


@contextmanager
def _patched(module, name: str, value):
    """Temporarily replace `module.name` (for libraries with no option)."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


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


SCORES = ("logit", "probability")


def _check_images(name: str, images: np.ndarray, model: keras.Model) -> np.ndarray:
    images = np.asarray(images, np.float32)
    want = tuple(model.input_shape[1:])
    if images.ndim != len(want) + 1 or images.shape[1:] != want or not len(images):
        raise ValueError(
            f"{name} must be a non-empty batch of shape (n, {', '.join(map(str, want))}),"
            f" got {images.shape}")
    return images


def softmax_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The model's last layer if it applies a softmax (a `Softmax` layer, or a
    layer such as `Dense` or `Activation` with activation softmax), else None."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return last
    activation = getattr(last, "activation", None)
    return last if getattr(activation, "__name__", None) == "softmax" else None


def logit_model(model: keras.Model) -> keras.Model:
    """The model up to its pre-softmax class scores (logits), with its weights.

    The model itself when its last layer applies no softmax. The last layer's
    weights are copied at call time, so call it again after changing them.
    """
    last = softmax_layer(model)
    if last is None:
        return model
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
    if head is not None:
        head.set_weights(last.get_weights())
    return logits


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


def scored_model(model: keras.Model, score: str) -> keras.Model:
    """The model whose output is `score`: "logit" or "probability" (as it is)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return logit_model(model) if score == "logit" else model


def deep_shap(model: keras.Model, background: np.ndarray, images: np.ndarray,
              ranked_outputs: int | None = None, chunk: int | None = None,
              score: str = "logit") -> DeepShap:
    """Deep SHAP (`shap.DeepExplainer`) values of `images`, for every class or
    (`ranked_outputs=k`, shap's own option) each image's k top classes only.

    `score="logit"` (default) explains the pre-softmax class scores of a model
    whose last layer applies a softmax: shap's rule for the softmax under
    TF2 multiplies by ratios of logit differences that explode when a logit
    barely moves between an image and a background image, so maps on the
    probability change with the background drawn (see the Deep SHAP
    chapters). `score="probability"` explains the model's output as it is.

    Deep SHAP averages over the background, so a large background is
    explained in chunks of about `chunk` images (default: ~800k pixels, 250
    CIFAR-10 images) and the results averaged, weighted by chunk size: the
    same values, a fraction of the memory.
    """
    import shap

    explained = scored_model(model, score)
    background = _check_images("background", background, model)
    images = _check_images("images", images, model)
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
            if ranked_outputs is None:
                found = explainer.shap_values(images)
            else:  # shap's additivity check assumes every class: ours is below
                found, ranked = explainer.shap_values(
                    images, ranked_outputs=ranked_outputs, check_additivity=False)
        weight = len(part) / len(background)
        values = values + weight * np.asarray(found)
        expected = expected + weight * np.asarray(explainer.expected_value)
    return DeepShap(np.asarray(values), np.asarray(expected), np.asarray(ranked), score)


def additivity_error(model: keras.Model, images: np.ndarray,
                     result: DeepShap) -> float:
    """Largest |sum of attributions + expected value - explained output|."""
    explained = scored_model(model, result.score)
    outputs = np.asarray(explained(np.asarray(images, np.float32)))
    rows = np.arange(len(images))[:, None]
    sums = result.values.sum(axis=tuple(range(1, result.values.ndim - 1)))
    gaps = sums + result.expected[result.ranked] - outputs[rows, result.ranked]
    return float(np.abs(gaps).max())


class ShapRun(NamedTuple):
    """Everything a Deep SHAP figure of one dataset needs."""

    model: keras.Model
    accuracy: float
    images: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    shap: DeepShap
    error: float


def deep_shap_run(dataset: str, n_background: int = 100, n_images: int = 5,
                  seed: int = 0) -> ShapRun:
    """Train or load the dataset's CNN and explain test images of distinct classes."""
    from .data import load_dataset, preprocess, sample
    from .models import train_or_load

    trained = train_or_load(dataset)
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset)
    background = preprocess(x_train[sample(y_train, n_background, seed)])
    pick = sample(y_test, n_images, seed, distinct=True)
    images = preprocess(x_test[pick])
    result = deep_shap(trained.model, background, images)
    error = additivity_error(trained.model, images, result)
    probs = np.asarray(trained.model(images))
    return ShapRun(trained.model, trained.accuracy, images, y_test[pick],
                   probs, result, error)


# --- Grad-CAM -----------------------------------------------------------------

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


def _split(model: keras.Model, layer: str):
    """A function: inputs -> (`layer`'s output, the model's output)."""
    if isinstance(model, keras.Sequential):
        # A loaded Sequential's layer outputs are not tied to model.inputs.
        def run(x):
            for each in model.layers:
                x = each(x, training=False)
                if each.name == layer:
                    maps = x
            return maps, x
        return run
    return keras.Model(model.inputs[0], [model.get_layer(layer).output,
                                         model.outputs[0]])


@functools.lru_cache(maxsize=8)
def forward(model: keras.Model):
    """`model(x)` compiled once for any batch size: on small batches several
    times faster than an eager call."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


@functools.lru_cache(maxsize=8)
def score_gradients(model: keras.Model, layer: str | None = None):
    """A compiled function `(inputs, targets) -> (scores, maps, gradients)`.

    `scores` are each image's target-class output; `gradients` are theirs
    with respect to `maps`: the inputs, or `layer`'s output. Traced once per
    model for any batch size, since eager calls cost several times the
    arithmetic of a small batch.
    """
    import tensorflow as tf

    split = None if layer is None else _split(model, layer)
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


def _targets(model: keras.Model, inputs: np.ndarray, targets) -> np.ndarray:
    n_classes = model.output_shape[-1]
    if targets is None:
        return forward(model)(inputs).numpy().argmax(-1)
    targets = np.atleast_1d(np.asarray(targets))
    if targets.shape != (len(inputs),) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be {len(inputs)} class indices, got {targets!r}")
    if targets.min() < 0 or targets.max() >= n_classes:
        raise ValueError(f"targets must be in [0, {n_classes}), got {targets.tolist()}")
    return targets.astype(np.int64)  # uint8 labels cannot index in TensorFlow


def grad_cam(model: keras.Model, inputs: np.ndarray, targets=None,
             layer: str | None = None) -> np.ndarray:
    """Grad-CAM maps `(n, h, w)` in [0, 1] at `layer`'s resolution (ELI5's formula)."""
    import tensorflow as tf

    inputs = _check_images("inputs", inputs, model)
    layer = layer or gradcam_layer(model)
    names = [each.name for each in model.layers]
    if layer not in names:
        raise ValueError(f"layer must name a layer of the model ({', '.join(names[:6])}"
                         f"{', ...' if len(names) > 6 else ''}), got {layer!r}")
    targets = _targets(model, inputs, targets)
    _, maps, grads = score_gradients(model, layer)(inputs, targets)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1)).numpy()
    return cam / (cam.max(axis=(1, 2), keepdims=True) + keras.config.epsilon())


# --- LIME -------------------------------------------------------------------

def lime_explain(predict, image: np.ndarray, top_labels: int = 3,
                 num_samples: int = 1000, batch_size: int = 250,
                 segmentation: str = "quickshift", seed: int = 0,
                 progress_bar: bool = False, **segment_options):
    """`LimeImageExplainer.explain_instance` with a named scikit-image segmentation.

    `predict` maps a batch of images like `image` to class probabilities.
    """
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an RGB image (H, W, 3), got {image.shape}")
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    # scikit-image's quickshift and slic are deterministic (fixed rng).
    segmenter = SegmentationAlgorithm(segmentation, **segment_options)
    # lime 0.2.0.1 always draws a tqdm bar and takes no option to stop it.
    quiet = functools.partial(lime_image.tqdm, disable=not progress_bar)
    with _patched(lime_image, "tqdm", quiet):
        return explainer.explain_instance(
            image, predict, top_labels=top_labels, hide_color=0,
            num_samples=num_samples, batch_size=batch_size,
            segmentation_fn=segmenter, random_seed=seed)


# --- Gradient SHAP ----------------------------------------------------------

class GradientShap(NamedTuple):
    """Gradient SHAP values at a layer, for each image's top-ranked classes."""

    values: list[np.ndarray]   # one (n, h, w, channels) array per rank
    ranked: np.ndarray         # (n, ranked_outputs) class indices


def gradient_shap(model: keras.Model, layer: str, inputs: np.ndarray,
                  background: np.ndarray, ranked_outputs: int = 4,
                  nsamples: int = 200, local_smoothing: float = 0.0,
                  batch_size: int = 50, seed: int = 0) -> GradientShap:
    """`shap.GradientExplainer` on the sub-model from `layer` to the output (eager TF2)."""
    import shap

    inputs = _check_images("inputs", inputs, model)
    background = _check_images("background", background, model)
    if ranked_outputs < 1 or nsamples < 1:
        raise ValueError("ranked_outputs and nsamples must be positive")
    features = keras.Model(model.inputs[0], model.get_layer(layer).output)
    head = keras.Model(model.get_layer(layer).output, model.outputs[0])
    explainer = shap.GradientExplainer(
        head, np.asarray(features(background)), batch_size=batch_size,
        local_smoothing=local_smoothing)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The structure of `inputs`")
        values, ranked = explainer.shap_values(
            np.asarray(features(inputs)), ranked_outputs=ranked_outputs,
            nsamples=nsamples, rseed=seed)
    values = np.asarray(values)
    return GradientShap([values[..., r] for r in range(values.shape[-1])],
                        np.asarray(ranked))


def lime_map(explanation, label: int) -> np.ndarray:
    """LIME's superpixel weights for `label`, painted back onto the pixels."""
    weights = np.zeros(explanation.segments.max() + 1, np.float32)
    for segment, weight in explanation.local_exp[label]:
        weights[segment] = weight
    return weights[explanation.segments]


# --- Integrated Gradients -------------------------------------------------------

IG_RULES = ("gausslegendre", "riemann_left", "riemann_right",
              "riemann_middle", "riemann_trapezoid")


class IntegratedGradients(NamedTuple):
    """IG attributions `(n, H, W, C)` and each image's completeness error."""

    attributions: np.ndarray
    targets: np.ndarray
    completeness_error: np.ndarray  # |sum(attr) - (f(x) - f(baseline))|


def ig_alphas(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Points `alpha` in [0, 1] and weights of the quadrature `rule` for the path integral."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return (x + 1) / 2, w / 2
    if rule not in IG_RULES:
        raise ValueError(f"rule must be one of {IG_RULES}, got {rule!r}")
    if rule == "riemann_trapezoid":  # weights sum to 1 (Alibi's: (n - 1) / n)
        if steps < 2:
            raise ValueError("steps must be >= 2 for riemann_trapezoid")
        alphas = np.linspace(0, 1, steps)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (np.arange(steps) + offset) / steps, np.full(steps, 1 / steps)


def make_baseline(kind: str | np.ndarray, inputs: np.ndarray,
                  pixel_range: tuple[float, float] = (0.0, 1.0),
                  n_noise: int = 4, seed: int = 0, sigma: float = 5.0) -> np.ndarray:
    """Baselines `(draws, n, H, W, C)`: black, blurred, uniform noise, or given."""
    low, high = pixel_range
    if isinstance(kind, str):
        if kind == "black":
            return np.full((1, *inputs.shape), low, np.float32)
        if kind == "blur":
            from skimage.filters import gaussian

            return gaussian(inputs, sigma=(0, sigma, sigma, 0),
                            preserve_range=True)[None].astype(np.float32)
        if kind == "noise":
            rng = np.random.default_rng(seed)
            return rng.uniform(low, high, (n_noise, *inputs.shape)).astype(np.float32)
        raise ValueError(f"baseline must be 'black', 'blur', 'noise' or an array, "
                         f"got {kind!r}")
    baseline = np.asarray(kind, np.float32)
    if baseline.shape not in (inputs.shape[1:], inputs.shape):
        raise ValueError(f"baseline must have shape {inputs.shape[1:]} or "
                         f"{inputs.shape} to match inputs, got {baseline.shape}")
    return np.broadcast_to(baseline, inputs.shape)[None].astype(np.float32)


def integrated_gradients(model: keras.Model, inputs: np.ndarray, targets=None,
                         baseline: str | np.ndarray = "black", steps: int = 50,
                         rule: str = "gausslegendre", batch_size: int = 256,
                         pixel_range: tuple[float, float] = (0.0, 1.0),
                         n_noise: int = 4, seed: int = 0,
                         sigma: float = 5.0) -> IntegratedGradients:
    """Integrated Gradients with `tf.GradientTape`, batched over the path points.

    `baseline`: "black", "blur" (Gaussian, `sigma` pixels), "noise" (`n_noise`
    uniform draws with `seed`, averaged) or an array; `rule`: one of IG_RULES.
    """
    inputs = _check_images("inputs", inputs, model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    alphas, weights = ig_alphas(steps, rule)
    targets = _targets(model, inputs, targets)
    baselines = make_baseline(baseline, inputs, pixel_range, n_noise, seed, sigma)

    gradients = score_gradients(model)
    step = min(batch_size, batch_limit(inputs.shape[1:]))
    attributions = np.zeros_like(inputs)
    gap = np.zeros(len(inputs))
    # Every (image, alpha) pair, image by image, in batches of `batch_size`.
    image_of = np.repeat(np.arange(len(inputs)), len(alphas))
    alpha = np.tile(alphas, len(inputs)).astype(np.float32)
    weight = np.tile(weights, len(inputs)).astype(np.float32)[:, None, None, None]
    for base in baselines:  # one pass per noise draw
        delta = inputs - base
        grads = np.zeros_like(inputs)
        for start in range(0, len(alpha), step):
            i, a = image_of[start:start + step], alpha[start:start + step]
            points = base[i] + a[:, None, None, None] * delta[i]
            g = gradients(points, targets[i])[2].numpy()
            firsts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
            grads[i[firsts]] += np.add.reduceat(weight[start:start + len(i)] * g, firsts)
        attributions += delta * grads / len(baselines)
        ends = forward(model)(np.concatenate([inputs, base])).numpy()
        ends = ends[np.arange(2 * len(inputs)), np.tile(targets, 2)]
        gap += (ends[:len(inputs)] - ends[len(inputs):]) / len(baselines)
    error = np.abs(attributions.sum(axis=(1, 2, 3)) - gap)
    return IntegratedGradients(attributions, targets, error)


# --- Anchors ------------------------------------------------------------------

def rectangles(image: np.ndarray, size: tuple[int, int] = (4, 7)) -> np.ndarray:
    """Rectangular superpixels of `size` (rows, columns): the Alibi example's, vectorised."""
    rows = np.arange(image.shape[0])[:, None] // size[0]
    cols = np.arange(image.shape[1])[None, :] // size[1]
    return rows * -(-image.shape[1] // size[1]) + cols


def slic_grey(image: np.ndarray, n_segments: int = 20, compactness: float = 0.1,
              sigma: float = 0.5) -> np.ndarray:
    """SLIC superpixels of a grey `(H, W, 1)` / `(H, W)` or an RGB image."""
    from skimage.segmentation import slic

    image = np.asarray(image)
    rgb = image.ndim == 3 and image.shape[-1] == 3
    return slic(image if rgb else np.squeeze(image), n_segments=n_segments,
                compactness=compactness, sigma=sigma,
                channel_axis=-1 if rgb else None, start_label=0)


SEGMENTERS = {"rectangles": rectangles, "slic": slic_grey}


def anchor_explain(predict, image: np.ndarray, segmentation: str = "rectangles",
                   threshold: float = 0.95, seed: int = 0,
                   background: np.ndarray | None = None, **segment_options):
    """Alibi's `AnchorImage` for one image `(H, W, C)`; returns Alibi's explanation.

    Absent superpixels take their mean grey, or with `background` the pixels
    of a random background image.
    """
    from alibi.explainers import AnchorImage

    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be one image of shape (H, W, C), got {image.shape}")
    if segmentation not in SEGMENTERS:
        raise ValueError(f"segmentation must be one of {list(SEGMENTERS)}, "
                         f"got {segmentation!r}")
    # Alibi ignores segmentation_kwargs for a custom function: bind them here.
    segmenter = functools.partial(SEGMENTERS[segmentation], **segment_options)
    explainer = AnchorImage(predict, image.shape, segmentation_fn=segmenter,
                            images_background=background, seed=seed)
    # Alibi perturbs `coverage_samples` whole images at once (10,000 by
    # default): bound them to about 0.8 GB of float32 for large images.
    coverage = int(min(10_000, 2e8 / image.size))
    return explainer.explain(image, threshold=threshold, p_sample=0.5, tau=0.25,
                             coverage_samples=coverage)


# --- One door for every method ----------------------------------------------

METHODS = ("saliency", "gradcam", "integrated_gradients", "gradient_shap",
           "deep_shap", "lime", "occlusion", "anchors")

# The options each method takes, with their defaults (None: chosen per input).
OPTIONS: dict[str, dict] = {
    "saliency": {},
    "gradcam": {"layer": None},
    "integrated_gradients": {"steps": 50, "baseline": "black", "batch_size": 256,
                             "rule": "gausslegendre", "n_noise": 4, "seed": 0,
                             "sigma": 5.0},
    "gradient_shap": {"background": None, "nsamples": 200, "local_smoothing": 0.0,
                      "batch_size": 50, "seed": 0},
    "deep_shap": {"background": None, "score": "logit", "chunk": None},
    "lime": {"num_samples": 1000, "batch_size": None, "segmentation": None,
             "segment_options": None, "seed": 0},
    "occlusion": {"window": None, "stride": None, "batch_size": 512},
    "anchors": {"segmentation": "rectangles", "segment_options": None,
                "threshold": 0.95, "seed": 0, "background": None},
}
RANDOM = ("integrated_gradients", "gradient_shap", "lime", "anchors")


@dataclass
class Attribution:
    """One map per image `(n, H, W)` for its target class, and what it cost."""

    maps: np.ndarray
    targets: np.ndarray
    method: str
    options: dict
    seconds: float
    model_calls: dict = field(default_factory=dict)  # images forward / backward


def batch_limit(image_shape: tuple[int, ...]) -> int:
    """Images per model call: about 32 MB of input, which bounds the activations."""
    return max(8, 2**23 // int(np.prod(image_shape)))


def _validate_inputs(model: keras.Model, inputs) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.ndim == 3:
        inputs = inputs[None]
    want = tuple(model.input_shape[1:])
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be (n, H, W, C) or one image (H, W, C), "
                         f"got shape {inputs.shape}")
    if not np.issubdtype(inputs.dtype, np.floating):
        raise ValueError(f"inputs must be floating point, already preprocessed for "
                         f"the model, got dtype {inputs.dtype}")
    if len(inputs) == 0:
        raise ValueError("inputs must hold at least one image, got an empty batch")
    if inputs.shape[1:] != want:
        raise ValueError(f"inputs must have images of shape {want} for this model, "
                         f"got {inputs.shape[1:]}")
    if not np.isfinite(inputs).all():
        raise ValueError("inputs must be finite: they contain NaN or infinite pixels")
    return inputs.astype(np.float32)


def _pixel_range(value, channels: int) -> tuple:
    """`(black, white)`: two numbers, or two arrays of one value per channel."""
    try:
        low, high = (np.asarray(v, np.float32) for v in value)
    except (TypeError, ValueError):
        low = high = None
    if (low is None or low.shape not in ((), (channels,)) or high.shape != low.shape
            or not np.all(high > low)):
        raise ValueError(f"pixel_range must be (black, white): two numbers, or two "
                         f"arrays of {channels} values (one per channel), black below "
                         f"white, got {value!r}")
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


def _progress(iterable, total: int, desc: str, show: bool | None):
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if show is None else show
    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False)


class _Counter:
    """A predict function that counts the images it is asked about."""

    def __init__(self, model: keras.Model, channels: int | None = None):
        self.model, self.channels, self.images = model, channels, 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if self.channels == 1 and batch.shape[-1] == 3:  # LIME's RGB copies
            batch = batch[..., :1]
        self.images += len(batch)
        step = batch_limit(batch.shape[1:])
        return np.concatenate([forward(self.model)(batch[i:i + step]).numpy()
                               for i in range(0, len(batch), step)])


def _saliency(model, inputs, targets):
    grads = score_gradients(model)(inputs, targets)[2].numpy()
    return np.abs(grads).max(-1), {"forward": len(inputs), "backward": len(inputs)}


def _gradcam(model, inputs, targets, layer):
    import tensorflow as tf

    cams = grad_cam(model, inputs, targets, layer=layer)[..., None]
    maps = tf.image.resize(cams, inputs.shape[1:3], "bilinear").numpy()[..., 0]
    return maps, {"forward": len(inputs), "backward": len(inputs)}


def _ig(model, inputs, targets, low, high, **options):
    result = integrated_gradients(model, inputs, targets, pixel_range=(low, high),
                                  **options)
    draws = options["n_noise"] if options["baseline"] == "noise" else 1
    n = len(inputs)
    calls = {"forward": n * options["steps"] * draws + 2 * n * draws,
             "backward": n * options["steps"] * draws}
    return result.attributions.sum(-1), calls


def _gradient_shap_pixels(model, inputs, targets, background, nsamples,
                          local_smoothing, batch_size, seed):
    import shap

    explainer = shap.GradientExplainer(model, background, batch_size=batch_size,
                                       local_smoothing=local_smoothing)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The structure of `inputs`")
        values, _ = explainer.shap_values(inputs, nsamples=nsamples, rseed=seed,
                                          ranked_outputs=targets[:, None],
                                          output_rank_order="custom")
    values = np.asarray(values).reshape(inputs.shape)
    n = len(inputs)
    return values.sum(-1), {"forward": n * nsamples + n, "backward": n * nsamples}


def _deep_shap(model, inputs, targets, background, score, chunk):
    unsupported = [layer.name for layer in model.layers
                   if getattr(layer, "max_value", None) is not None
                   or getattr(getattr(layer, "activation", None), "__name__", "") == "relu6"]
    if unsupported:
        raise ValueError(f"method 'deep_shap': shap.DeepExplainer has no rule for "
                         f"ReLU6 (layers {unsupported[:3]}...); use 'gradient_shap'")
    n_classes = model.output_shape[-1]
    top = targets == forward(model)(inputs).numpy().argmax(-1)
    maps = np.zeros(inputs.shape[:3], np.float32)
    # The predicted class: shap's ranked_outputs explains that class only.
    # Any other target: every class, then the target's values (n_classes x).
    if top.any():
        maps[top] = deep_shap(model, background, inputs[top], 1, chunk,
                              score).values[..., 0].sum(-1)
    if not top.all():
        if n_classes > 20:
            raise ValueError(f"targets: method 'deep_shap' explains a class other than "
                             f"the predicted one by explaining all {n_classes} classes; "
                             "use 'gradient_shap' or 'integrated_gradients'")
        rest = deep_shap(model, background, inputs[~top], None, chunk, score).values
        maps[~top] = rest[np.arange(len(rest)), ..., targets[~top]].sum(-1)
    explained = top.sum() + n_classes * (~top).sum()
    calls = {"forward": len(inputs) + len(background) * (1 + 2 * explained),
             "backward": 2 * len(background) * explained}
    return maps, calls


def _lime(model, inputs, targets, low, high, num_samples, batch_size,
          segmentation, segment_options, seed, show):
    from lime import lime_image

    channels = inputs.shape[-1]
    counter = _Counter(model, channels)
    batch_size = batch_size or min(num_samples, batch_limit(inputs.shape[1:]))
    small = inputs.shape[1] < 64
    maps = []
    for image, target in _progress(zip(inputs, targets), len(inputs), "lime", show):
        picture = image[..., 0] if channels == 1 else image
        if segmentation is None and small:
            segmenter = functools.partial(rectangles, size=(4, 4))
        else:
            from lime.wrappers.scikit_image import SegmentationAlgorithm

            options = segment_options or dict(kernel_size=4, max_dist=200, ratio=0.2)
            # quickshift wants colours in [0, 1]
            algorithm = SegmentationAlgorithm(segmentation or "quickshift", **options)
            segmenter = lambda im, a=algorithm: a((im - low) / (high - low))  # noqa: E731
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        quiet = functools.partial(lime_image.tqdm, disable=True)
        with _patched(lime_image, "tqdm", quiet):
            found = explainer.explain_instance(
                picture, counter, labels=(int(target),), top_labels=None,
                hide_color=low, num_samples=num_samples, batch_size=batch_size,
                segmentation_fn=segmenter, random_seed=seed)
        maps.append(lime_map(found, int(target)))
    return np.stack(maps), {"forward": counter.images, "backward": 0}


def _occlusion(model, inputs, targets, low, window, stride, batch_size, show):
    n, h, w = inputs.shape[:3]
    window = window or max(2, h // 7)
    stride = stride or window
    corners = [(r, c) for r in range(0, h - window + 1, stride)
               for c in range(0, w - window + 1, stride)]
    masks = np.zeros((len(corners), h, w, 1), bool)
    for k, (r, c) in enumerate(corners):
        masks[k, r:r + window, c:c + window] = True
    predict = forward(model)
    base = predict(inputs).numpy()[np.arange(n), targets]
    # Every (image, window) pair, in batches of `batch_size`.
    image_of = np.repeat(np.arange(n), len(corners))
    window_of = np.tile(np.arange(len(corners)), n)
    drops = np.zeros(len(image_of), np.float32)
    step = min(batch_size, batch_limit(inputs.shape[1:]))
    starts = range(0, len(image_of), step)
    for start in _progress(starts, len(starts), "occlusion", show):
        i, k = image_of[start:start + step], window_of[start:start + step]
        scores = predict(np.where(masks[k], low, inputs[i])).numpy()
        drops[start:start + step] = base[i] - scores[np.arange(len(i)), targets[i]]
    covered = masks[..., 0].sum(0)
    maps = np.einsum("ik,khw->ihw", drops.reshape(n, -1), masks[..., 0].astype(np.float32))
    return maps / np.maximum(covered, 1), {"forward": n + len(image_of), "backward": 0}


def _anchors(model, inputs, targets, segmentation, segment_options, threshold,
             seed, background, show):
    counter = _Counter(model)
    maps = []
    for image in _progress(inputs, len(inputs), "anchors", show):
        found = anchor_explain(counter, image, segmentation, threshold=threshold,
                               seed=seed, background=background,
                               **(segment_options or {}))
        maps.append(np.isin(found.segments, found.data["raw"]["feature"]))
    return np.stack(maps).astype(np.float32), {"forward": counter.images, "backward": 0}


def explain(model: keras.Model, inputs: np.ndarray, method: str, targets=None,
            progress: bool | None = None, **options) -> Attribution:
    """Explain `inputs` (preprocessed, `(n, H, W, C)` or one image) with `method`.

    Options not given take the defaults in `OPTIONS[method]`. `pixel_range`,
    `(black, white)` in the model's input space (numbers, or one value per
    channel as `ImageNetClassifier.pixel_range` gives), sets what "black" means
    for the baselines of IG, occlusion and LIME; default: the range of `inputs`.
    Deep SHAP explains the logit (`score="logit"`) unless told otherwise.
    """
    import time

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    low_high = options.pop("pixel_range", None)
    unknown = set(options) - set(OPTIONS[method])
    if unknown:
        raise ValueError(f"options {sorted(unknown)} are not taken by method "
                         f"{method!r}; it takes {sorted(OPTIONS[method]) or 'none'}")
    inputs = _validate_inputs(model, inputs)
    settings = {**OPTIONS[method], **options}
    if low_high is None:
        low, high = float(min(0.0, inputs.min())), float(max(1.0, inputs.max()))
    else:
        low, high = _pixel_range(low_high, inputs.shape[-1])
    start = time.perf_counter()
    predicted = targets is None
    targets = _targets(model, inputs, targets)
    if method in ("gradient_shap", "deep_shap") and settings["background"] is None:
        raise ValueError(f"method {method!r} needs background=<images like inputs>")
    if settings.get("background") is not None:
        settings["background"] = _check_images("background", settings["background"], model)
    if method == "saliency":
        maps, calls = _saliency(model, inputs, targets)
    elif method == "gradcam":
        maps, calls = _gradcam(model, inputs, targets, settings["layer"])
    elif method == "integrated_gradients":
        maps, calls = _ig(model, inputs, targets, low, high, **settings)
    elif method == "gradient_shap":
        maps, calls = _gradient_shap_pixels(model, inputs, targets, **settings)
    elif method == "deep_shap":
        maps, calls = _deep_shap(model, inputs, targets, **settings)
    elif method == "lime":
        maps, calls = _lime(model, inputs, targets, low, high, show=progress, **settings)
    elif method == "occlusion":
        maps, calls = _occlusion(model, inputs, targets, low, show=progress, **settings)
    else:
        maps, calls = _anchors(model, inputs, targets, show=progress, **settings)
    if predicted:
        calls["forward"] += len(inputs)
    recorded = {k: v for k, v in settings.items() if k != "background"}
    if settings.get("background") is not None:
        recorded["background"] = len(settings["background"])
    return Attribution(np.asarray(maps, np.float32), targets, method, recorded,
                       time.perf_counter() - start, calls)
