"""Explanation methods, each a thin layer over the library the book teaches."""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager
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
    """Deep SHAP values `(n, H, W, C, classes)` and the expected model output."""

    values: np.ndarray
    expected: np.ndarray


def _check_images(name: str, images: np.ndarray, model: keras.Model) -> np.ndarray:
    images = np.asarray(images, np.float32)
    want = tuple(model.input_shape[1:])
    if images.ndim != len(want) + 1 or images.shape[1:] != want or not len(images):
        raise ValueError(
            f"{name} must be a non-empty batch of shape (n, {', '.join(map(str, want))}),"
            f" got {images.shape}")
    return images


def deep_shap(model: keras.Model, background: np.ndarray,
              images: np.ndarray) -> DeepShap:
    """Deep SHAP (`shap.DeepExplainer`) values of `images` for every class."""
    import shap

    background = _check_images("background", background, model)
    images = _check_images("images", images, model)
    with warnings.catch_warnings():
        # shap calls the model with a list; Keras warns about the structure.
        warnings.filterwarnings("ignore", "The structure of `inputs`")
        explainer = shap.DeepExplainer(model, background)
        values = explainer.shap_values(images)
    return DeepShap(np.asarray(values), np.asarray(explainer.expected_value))


def additivity_error(model: keras.Model, images: np.ndarray,
                     result: DeepShap) -> float:
    """Largest |sum of attributions + expected value - model output|."""
    outputs = np.asarray(model(np.asarray(images, np.float32)))
    sums = result.values.sum(axis=tuple(range(1, result.values.ndim - 1)))
    return float(np.abs(sums + result.expected - outputs).max())


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


def _targets(model: keras.Model, inputs: np.ndarray, targets) -> np.ndarray:
    n_classes = model.output_shape[-1]
    if targets is None:
        return np.asarray(model(inputs)).argmax(-1)
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
    targets = _targets(model, inputs, targets)
    grad_model = keras.Model(model.inputs[0], [model.get_layer(layer).output,
                                            model.outputs[0]])
    with tf.GradientTape() as tape:
        maps, outputs = grad_model(inputs)
        scores = tf.gather(outputs, targets, axis=1, batch_dims=1)
    grads = tape.gradient(scores, maps)
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

IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right",
              "riemann_middle", "riemann_trapezoid")


class IntegratedGradients(NamedTuple):
    """IG attributions `(n, H, W, C)` and each image's completeness error."""

    attributions: np.ndarray
    targets: np.ndarray
    completeness_error: np.ndarray  # |sum(attr) - (f(x) - f(baseline))|


def ig_alphas(steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Points `alpha` in [0, 1] and quadrature weights for the path integral."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return (x + 1) / 2, w / 2
    if method not in IG_METHODS:
        raise ValueError(f"method must be one of {IG_METHODS}, got {method!r}")
    if method == "riemann_trapezoid":  # weights sum to 1 (Alibi's: (n - 1) / n)
        if steps < 2:
            raise ValueError("steps must be >= 2 for riemann_trapezoid")
        alphas = np.linspace(0, 1, steps)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
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
                         method: str = "gausslegendre", batch_size: int = 256,
                         pixel_range: tuple[float, float] = (0.0, 1.0),
                         n_noise: int = 4, seed: int = 0) -> IntegratedGradients:
    """Integrated Gradients with `tf.GradientTape`, batched over the path points."""
    import tensorflow as tf

    inputs = _check_images("inputs", inputs, model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    alphas, weights = ig_alphas(steps, method)
    targets = _targets(model, inputs, targets)
    baselines = make_baseline(baseline, inputs, pixel_range, n_noise, seed)

    def score(x: np.ndarray, t: np.ndarray) -> tf.Tensor:
        return tf.gather(model(x), t, axis=1, batch_dims=1)

    attributions = np.zeros_like(inputs)
    gap = np.zeros(len(inputs))
    for base in baselines:  # one pass per noise draw
        delta = inputs - base
        # Every (image, alpha) pair, in batches of `batch_size`.
        image_of = np.repeat(np.arange(len(inputs)), len(alphas))
        alpha = np.tile(alphas, len(inputs)).astype(np.float32)
        grads = np.zeros_like(inputs)
        for start in range(0, len(alpha), batch_size):
            i, a = image_of[start:start + batch_size], alpha[start:start + batch_size]
            points = tf.constant(base[i] + a[:, None, None, None] * delta[i])
            with tf.GradientTape() as tape:
                tape.watch(points)
                s = score(points, targets[i])
            g = tape.gradient(s, points).numpy()
            w = np.tile(weights, len(inputs))[start:start + batch_size]
            np.add.at(grads, i, w[:, None, None, None] * g)
        attributions += delta * grads / len(baselines)
        gap += (score(inputs, targets) - score(base, targets)).numpy() / len(baselines)
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
    """SLIC superpixels of a grey image `(H, W, 1)` or `(H, W)`."""
    from skimage.segmentation import slic

    return slic(np.squeeze(image), n_segments=n_segments, compactness=compactness,
                sigma=sigma, channel_axis=None, start_label=0)


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
    return explainer.explain(image, threshold=threshold, p_sample=0.5, tau=0.25)
