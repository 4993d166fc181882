"""Every explanation method behind one door, `explain(model, inputs, method)`.

Each method is one module here: a dataclass over `base.Method` whose fields
are its options, registered by name. `help(get("lime"))` shows a method's
options; `explain` validates the inputs, builds the method, runs it through
one counted `Engine` and returns an `Attribution`.
"""
from __future__ import annotations

import time

import keras
import numpy as np

from ..engine import Engine
# Imported in the order the book presents them: the registry keeps it.
from . import saliency, smoothgrad, gradcam, gradcam_plus_plus  # noqa: F401, I001
from . import integrated_gradients, gradient_shap, deep_shap  # noqa: F401, I001
from . import lime, rise, occlusion, anchors  # noqa: F401, I001
from .base import REGISTRY, Attribution, Context, Method

METHODS = tuple(REGISTRY)
OPTIONS = {name: cls.options() for name, cls in REGISTRY.items()}
RANDOM = tuple(name for name, cls in REGISTRY.items() if cls.random())

__all__ = ["explain", "get", "label", "METHODS", "OPTIONS", "RANDOM", "Attribution", "Method"]


def get(method: str) -> type[Method]:
    """The class of `method` (its docstring lists its options)."""
    if method not in REGISTRY:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return REGISTRY[method]


def label(method: str, space: str = " ") -> str:
    """A method's name as tables and figures print it: "gradcam_plus_plus" ->
    "gradcam++", "integrated_gradients" -> "integrated gradients" (`space`
    replaces the underscores, e.g. a line break for tick labels)."""
    return method.replace("_plus_plus", "++").replace("_", space)


def validate_inputs(model: keras.Model, inputs) -> np.ndarray:
    """`inputs` as a float32 batch the model takes, or one clear error."""
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


def black_white(value, inputs: np.ndarray) -> tuple:
    """`(black, white)`: two numbers, or two arrays of one value per channel;
    default (None): the range of `inputs`, widened to include [0, 1]."""
    if value is None:
        return float(min(0.0, inputs.min())), float(max(1.0, inputs.max()))
    channels = inputs.shape[-1]
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


def check_targets(engine: Engine, inputs: np.ndarray, targets) -> np.ndarray:
    """Class indices, one per image; default: each image's predicted class."""
    n_classes = engine.model.output_shape[-1]
    if targets is None:
        return engine.predict(inputs).argmax(-1)
    targets = np.atleast_1d(np.asarray(targets))
    if targets.shape != (len(inputs),) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be {len(inputs)} class indices, got {targets!r}")
    if targets.min() < 0 or targets.max() >= n_classes:
        raise ValueError(f"targets must be in [0, {n_classes}), got {targets.tolist()}")
    return targets.astype(np.int64)  # uint8 labels cannot index in TensorFlow


def _recorded(options: dict) -> dict:
    """Options as recorded in the result: arrays by their length."""
    return {k: len(v) if isinstance(v, np.ndarray) and k == "background" else v
            for k, v in options.items()}


def explain(model: keras.Model, inputs: np.ndarray, method: str, targets=None, *,
            batch_size: int | None = None, pixel_range=None, progress: bool | None = None,
            **options) -> Attribution:
    """Explain `inputs` (preprocessed, `(n, H, W, C)` or one image) with `method`.

    `targets`: the class explained per image (default: the predicted one).
    `batch_size`: images per model call, for every method (default: ~8 MB of
    input per call, at most `engine.MAX_BATCH` images). `pixel_range=(black,
    white)` in the model's input space (numbers, or one value per channel as
    `ImageNetClassifier.pixel_range` gives) sets what "black" means for the
    methods that switch pixels off; default: the range of `inputs`. Every
    other keyword is an option of the method:
    `help(helpers.methods.get(method))` lists them with their defaults.

    Each image's map depends only on that image, the model, its target and the
    options, never on the other images in the call (random methods give every
    image the same draws of their seed), up to float round-off. The one
    exception is the default `pixel_range`, computed from all of `inputs`:
    pass it explicitly to explain a data set in chunks with the same maps.
    """
    cls = get(method)
    unknown = set(options) - set(cls.options())
    if unknown:
        raise ValueError(f"options {sorted(unknown)} are not taken by method "
                         f"{method!r}; it takes {sorted(cls.options()) or 'none'}")
    inputs = validate_inputs(model, inputs)
    low, high = black_white(pixel_range, inputs)
    engine = Engine(model, batch_size)
    chosen = cls(**options)
    chosen.check(model, inputs)
    start = time.perf_counter()
    predicted_only = targets is None
    targets = check_targets(engine, inputs, targets)
    if not cls.any_target and not predicted_only:
        other = np.flatnonzero(engine.predict(inputs).argmax(-1) != targets)
        if len(other):
            raise ValueError(f"targets: method {method!r} explains the model's predicted "
                             f"class only; images {other[:5].tolist()} have another target "
                             "(pass targets=None)")
    context = Context(engine, low, high, progress)
    maps = chosen.attribute(context, inputs, targets)
    settings = {f: getattr(chosen, f) for f in cls.options()}
    return Attribution(np.asarray(maps, np.float32), targets, method, _recorded(settings),
                       time.perf_counter() - start, dict(engine.calls), context.details)
