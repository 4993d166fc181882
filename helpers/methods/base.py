"""The base every method shares: options as dataclass fields, one `attribute`
call, a registry by name, and the one result type, `Attribution`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import keras
import numpy as np

from ..engine import Engine

REGISTRY: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make `cls` reachable as `explain(..., cls.name)`."""
    if cls.name in REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class Attribution:
    """One map per image `(n, H, W)` for its target class, and what it cost.

    `model_calls` counts the images the engine pushed forward and backward;
    `details` holds a method's extras (e.g. IG's completeness error).
    """

    maps: np.ndarray
    targets: np.ndarray
    method: str
    options: dict
    seconds: float
    model_calls: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


@dataclass
class Context:
    """What a method gets besides the images: the counted model calls, what
    black and white are in the model's input space, whether to show progress."""

    engine: Engine
    low: float | np.ndarray
    high: float | np.ndarray
    progress: bool | None = None
    details: dict = field(default_factory=dict)

    @property
    def model(self) -> keras.Model:
        return self.engine.model


@dataclass
class Method:
    """A method's options are the fields of its dataclass (documented in its
    docstring); `attribute` returns one `(n, H, W)` map per image."""

    name: ClassVar[str] = ""
    any_target: ClassVar[bool] = True  # False: explains the predicted class only

    @classmethod
    def options(cls) -> dict:
        """Every option with its default."""
        return {f.name: f.default if f.default is not dataclasses.MISSING
                else f.default_factory() for f in dataclasses.fields(cls)}

    @classmethod
    def random(cls) -> bool:
        """Whether the method draws random numbers (it then takes a `seed`)."""
        return "seed" in cls.options()

    def check(self, model: keras.Model, inputs: np.ndarray) -> None:
        """Refuse options that cannot work for this model before any work."""

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        """`(n, H, W)` maps of `inputs` for `targets`."""
        raise NotImplementedError


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps `(n, h, w)` resized bilinearly to `size` (the input's height, width)."""
    import tensorflow as tf

    if maps.shape[1:3] == tuple(size):
        return maps
    return tf.image.resize(maps[..., None], size, "bilinear").numpy()[..., 0]


def progress(iterable, total: int, desc: str, show: bool | None):
    """A tqdm bar over `iterable`, shown when asked (default: on a terminal)."""
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if show is None else show
    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False)


def check_images(name: str, images, model: keras.Model) -> np.ndarray:
    """`images` as float32, or a clear error unless a non-empty batch the model takes."""
    images = np.asarray(images, np.float32)
    want = tuple(model.input_shape[1:])
    if images.ndim != len(want) + 1 or images.shape[1:] != want or not len(images):
        raise ValueError(
            f"{name} must be a non-empty batch of shape (n, {', '.join(map(str, want))}),"
            f" got {images.shape}")
    return images


def rectangles(image: np.ndarray, size: tuple[int, int] = (4, 7)) -> np.ndarray:
    """Rectangular superpixels of `size` (rows, columns): the Alibi example's, vectorised."""
    rows = np.arange(image.shape[0])[:, None] // size[0]
    cols = np.arange(image.shape[1])[None, :] // size[1]
    return rows * -(-image.shape[1] // size[1]) + cols


def switched_off(rows: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """`(n, H, W)`: the pixels each row of superpixel switches `(n, k)` turns off
    (0). As in lime and Alibi, switch j is label j of `segments`; labels beyond
    the k switches (a segmentation numbered from 1) stay on."""
    off = np.zeros((len(rows), max(rows.shape[1], int(segments.max()) + 1)), bool)
    off[:, :rows.shape[1]] = rows == 0
    return off[:, segments]
