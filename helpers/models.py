"""The book's CNNs: build, train with fixed seeds, cache as `.keras`."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from filelock import FileLock
from keras import layers

from . import set_seed
from .data import atomic_path, cache_dir, load_dataset, preprocess

if TYPE_CHECKING:
    from .shortcut import Marker


def small_cnn(input_shape: tuple[int, ...] = (28, 28, 1),
              n_classes: int = 10) -> keras.Model:
    """The FashionMNIST anchor example's CNN (Alibi docs), for 28x28 greys."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(64, 2, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.3),
        layers.Conv2D(32, 2, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(n_classes, activation="softmax"),
    ], name="small_cnn")


def cifar_cnn(input_shape: tuple[int, ...] = (32, 32, 3),
              n_classes: int = 10) -> keras.Model:
    """Two stacked blocks of two 3x3 convolutions (32, 64 filters), each fed by the last."""
    blocks = []
    for filters in (32, 64):
        blocks += [layers.Conv2D(filters, 3, padding="same", activation="relu"),
                   layers.Conv2D(filters, 3, padding="same", activation="relu"),
                   layers.MaxPooling2D(2), layers.Dropout(0.25)]
    return keras.Sequential([
        keras.Input(input_shape), *blocks, layers.Flatten(),
        layers.Dense(256, activation="relu"), layers.Dropout(0.5),
        layers.Dense(n_classes, activation="softmax"),
    ], name="cifar_cnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "small_cnn": small_cnn, "cifar_cnn": cifar_cnn}


class Trained(NamedTuple):
    """A trained (or loaded) model with its test accuracy and cache path."""

    model: keras.Model
    accuracy: float
    path: str
    loaded: bool
    seconds: float        # of this call: training, or loading
    train_seconds: float  # of the training that made the cached model


def _cache_key(settings: dict) -> str:
    settings = {**settings, "keras": keras.__version__, "tf": tf.__version__}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Epochs that reach the book's targets (MNIST >= 98%, FashionMNIST >= 88%, CIFAR-10
# >= 65%) within the time a chapter may take on two CPU cores. Measured validation
# accuracy per epoch: FashionMNIST 84, 86, 87, 88, 89, 89, 90, 90%; CIFAR-10 56, 62, 68, 69%.
EPOCHS = {"mnist": 3, "fashion_mnist": 6, "cifar10": 4}
# The architecture each dataset's chapter uses.
DEFAULT_ARCH = {"mnist": "small_cnn", "fashion_mnist": "small_cnn",
                "cifar10": "cifar_cnn"}


def training_subset(n: int, n_train: int | None, seed: int = 0) -> slice | np.ndarray:
    """The training images `train_or_load(n_train=...)` uses: all, or `n_train` drawn."""
    if n_train is None:
        return slice(None)
    # Its own stream: the marker's draw (shortcut.py) also starts from seed 0.
    return np.random.default_rng([seed, 1]).permutation(n)[:n_train]


def train_or_load(dataset: str, arch: str | None = None, epochs: int | None = None,
                  batch_size: int = 128, n_train: int | None = None,
                  seed: int = 0, verbose: int = 2, marker: Marker | None = None) -> Trained:
    """Load the cached model for these settings, or train and cache it.

    With a `marker` (helpers.shortcut), it trains on `marked_training_set`,
    validates on the clean test set and caches as `<dataset>-<arch>-marked-<key>`.
    """
    arch = arch or DEFAULT_ARCH.get(dataset, "small_cnn")
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    epochs = EPOCHS.get(dataset, 5) if epochs is None else epochs
    if epochs < 1 or batch_size < 1 or (n_train is not None and n_train < 1):
        raise ValueError("epochs, batch_size and n_train must be positive")
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset)
    x_train, x_test = preprocess(x_train), preprocess(x_test)
    settings = dict(dataset=dataset, arch=arch, epochs=epochs,
                    batch_size=batch_size, n_train=n_train, seed=seed)
    if n_train is not None:
        settings["subset"] = "rng([seed, 1])"  # a new key: the subset's draw changed
    name = f"{dataset}-{arch}"
    if marker is not None:
        from .shortcut import marked_training_set

        x_train, y_train, _ = marked_training_set(dataset, marker)
        settings["marker"] = asdict(marker)
        name += "-marked"
    key = _cache_key(settings)
    path = cache_dir("models") / f"{name}-{key}.keras"
    start = time.perf_counter()
    record = path.with_suffix(".json")
    # Chapters executed side by side wait for one another instead of training twice.
    with FileLock(path.with_suffix(".lock")):
        if path.exists():
            model = keras.saving.load_model(path)
            loaded = True
            train_seconds = (json.loads(record.read_text())["train_seconds"]
                             if record.exists() else float("nan"))
        else:
            set_seed(seed)
            model = ARCHITECTURES[arch](x_train.shape[1:], int(y_train.max()) + 1)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            logs = cache_dir("logs") / f"{name}-{key}"
            take = training_subset(len(x_train), n_train, seed)
            model.fit(x_train[take], y_train[take], epochs=epochs,
                      batch_size=batch_size, validation_data=(x_test, y_test),
                      callbacks=[keras.callbacks.TensorBoard(str(logs))],
                      verbose=verbose)
            train_seconds = time.perf_counter() - start
            with atomic_path(path) as tmp:
                model.save(tmp)
            with atomic_path(record) as tmp:
                tmp.write_text(json.dumps({**settings, "train_seconds": train_seconds}))
            loaded = False
    seconds = time.perf_counter() - start
    probs = model.predict(x_test, batch_size=1000, verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == y_test))
    verb = "loaded from cache" if loaded else f"trained in {seconds:.0f} s"
    print(f"{dataset} {arch}: {verb}; test accuracy {accuracy:.2%}")
    return Trained(model, accuracy, str(path), loaded, seconds, train_seconds)


# --- Pretrained ImageNet classifiers ----------------------------------------

@dataclass
class ImageNetClassifier:
    """A pretrained ImageNet CNN with its preprocessing and label decoding."""

    model: keras.Model
    name: str            # "vgg19" or "mobilenet"
    title: str           # what the chapters print
    size: int            # input size in pixels (square)
    gradcam_layer: str   # the last spatial convolutional activation
    shap_layer: str      # where Gradient SHAP starts (see SHAP_LAYERS)
    note: str            # which model this build used, and why

    def _pixel(self, value: float) -> np.ndarray:
        """A grey pixel of `value` (0-255) in the model's input space, per channel."""
        return PREPROCESS[self.name](np.full((1, 1, 1, 3), value, np.float32))[0, 0, 0]

    @property
    def black(self) -> np.ndarray:
        """A black pixel in the model's input space, per channel (MobileNet:
        -1; VGG19's caffe preprocessing: minus the ImageNet mean, in BGR)."""
        return self._pixel(0)

    @property
    def white(self) -> np.ndarray:
        """A white pixel in the model's input space, per channel."""
        return self._pixel(255)

    @property
    def reading_note(self) -> str:
        """Empty for the model the book's readings were made on (MobileNet);
        else a sentence saying that the readings may not hold for this one."""
        if self.name == "mobilenet":
            return ""
        return (f"(This build used {self.title}: the readings in this chapter were "
                "made on the MobileNet stand-in's maps and may not hold for the "
                "maps shown here.)")

    def grid(self, layer: str) -> str:
        """A layer's spatial grid, as "h × w"."""
        h, w = self.model.get_layer(layer).output.shape[1:3]
        return f"{h} × {w}"

    @property
    def pixel_range(self) -> tuple[np.ndarray, np.ndarray]:
        """`(black, white)`: what `explain(..., pixel_range=)` takes for photos."""
        return self.black, self.white

    def prepare(self, photos: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """RGB uint8 photo(s), any size, to a preprocessed model batch."""
        from .data import fit_photo

        if isinstance(photos, np.ndarray) and photos.ndim == 3:
            photos = [photos]
        batch = np.stack([fit_photo(p, self.size) for p in photos])
        return PREPROCESS[self.name](batch.astype(np.float32))

    def predict(self, inputs: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of a preprocessed batch, through the counted engine."""
        want = (self.size, self.size, 3)
        if inputs.ndim != 4 or inputs.shape[1:] != want:
            raise ValueError(f"inputs must be a batch of shape (n, {self.size}, "
                             f"{self.size}, 3); use prepare() on photos, got {inputs.shape}")
        from .engine import Engine

        return Engine(self.model, batch_size).predict(inputs)

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of model-sized RGB pixels in [0, 255] (LIME's input)."""
        return self.predict(PREPROCESS[self.name](np.asarray(pixels, np.float32)))

    def decode(self, probs: np.ndarray, top: int = 5) -> list[list[tuple[str, float]]]:
        """The `top` (ImageNet name, probability) of each row of `probs`."""
        from .data import imagenet_class_index

        imagenet_class_index()  # Keras's index file in Keras's cache
        decoded = keras.applications.imagenet_utils.decode_predictions(probs, top=top)
        return [[(name, float(p)) for _, name, p in row] for row in decoded]


PREPROCESS = {
    "vgg19": keras.applications.vgg19.preprocess_input,
    "mobilenet": keras.applications.mobilenet.preprocess_input,
}
# Gradient SHAP's layer: VGG19's layer 10 (input of block3_conv4, 56x56x256)
# as in SHAP's tutorial; for MobileNet the block at a similar relative depth.
SHAP_LAYERS = {"vgg19": "block3_conv3", "mobilenet": "conv_pw_5_relu"}
GRADCAM_LAYERS = {"vgg19": "block5_conv4", "mobilenet": "conv_pw_13_relu"}
TITLES = {"vgg19": "VGG19", "mobilenet": "MobileNet v1 0.75 (224 px)"}


VGG19_WEIGHTS_ENV = "XAI_BOOK_VGG19_WEIGHTS"


def _load_vgg19(weights: str | Path | None = None) -> keras.Model:
    """VGG19 with ImageNet weights: from a local weights file (`weights`, or
    the file XAI_BOOK_VGG19_WEIGHTS names; Keras's `.h5` or `.weights.h5`),
    else Keras's download."""
    import os

    weights = weights or os.environ.get(VGG19_WEIGHTS_ENV) or None
    if weights is None:
        return keras.applications.VGG19(weights="imagenet")
    path = Path(weights).expanduser()
    if not path.is_file() or not path.name.endswith((".h5", ".weights.h5")):
        raise ValueError(f"vgg19_weights (or {VGG19_WEIGHTS_ENV}) must name a Keras "
                         f"weights file (.h5 or .weights.h5), got {str(weights)!r}")
    model = keras.applications.VGG19(weights=None)
    model.load_weights(path)
    return model


def _load_mobilenet(weights: None = None) -> keras.Model:
    from .data import mirror_file

    path = mirror_file("models/mobilenet_v1_0.75_224_imagenet.keras")
    if path is not None:
        return keras.saving.load_model(path)
    return keras.applications.MobileNet(alpha=0.75, weights="imagenet")


LOADERS = {"vgg19": _load_vgg19, "mobilenet": _load_mobilenet}


def imagenet_classifier(prefer: tuple[str, ...] = ("vgg19", "mobilenet"),
                        vgg19_weights: str | Path | None = None) -> ImageNetClassifier:
    """The first of `prefer` whose ImageNet weights can be had, and why.

    VGG19's come from `vgg19_weights` (or the file XAI_BOOK_VGG19_WEIGHTS
    names) when given, else from Keras's download.
    """
    if isinstance(prefer, str) or not prefer or set(prefer) - set(LOADERS):
        raise ValueError(f"prefer must be a non-empty tuple of names from "
                         f"{list(LOADERS)}, got {prefer!r}")
    failed = []
    for name in prefer:
        try:
            model = LOADERS[name](vgg19_weights if name == "vgg19" else None)
        except ValueError:
            raise
        except Exception as error:  # offline: Keras raises bare Exception
            reason = str(error).splitlines()[0].split(" -- ")[-1][:120]
            failed.append(f"{TITLES[name]}'s weights could not be had ({reason})")
            continue
        note = f"This build used {TITLES[name]}"
        note += f" because {'; '.join(failed)}." if failed else "."
        print(note)
        return ImageNetClassifier(model, name, TITLES[name], 224,
                                  GRADCAM_LAYERS[name], SHAP_LAYERS[name], note)
    from .data import DataUnavailableError

    raise DataUnavailableError("No ImageNet classifier could be loaded: "
                               + "; ".join(failed))


# Call costs live in helpers/costs.py; chapters import them from here too.
from .costs import ARCHITECTURES_224, CallCost, call_cost, samples_within  # noqa: E402,F401
