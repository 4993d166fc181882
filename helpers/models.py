"""The book's CNNs: build, train with fixed seeds, cache as `.keras`."""
from __future__ import annotations

import hashlib
import json
import time
from typing import Callable, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from . import set_seed
from .data import atomic_path, cache_dir, load_dataset, preprocess


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


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"small_cnn": small_cnn}


class Trained(NamedTuple):
    """A trained (or loaded) model with its test accuracy and cache path."""

    model: keras.Model
    accuracy: float
    path: str
    loaded: bool
    seconds: float


def _cache_key(settings: dict) -> str:
    settings = {**settings, "keras": keras.__version__, "tf": tf.__version__}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Epochs that reach the book's targets (MNIST >= 98%, FashionMNIST >= 88%).
EPOCHS = {"mnist": 3, "fashion_mnist": 8, "cifar10": 15}


def train_or_load(dataset: str, arch: str = "small_cnn", epochs: int | None = None,
                  batch_size: int = 128, n_train: int | None = None,
                  seed: int = 0, verbose: int = 2) -> Trained:
    """Load the cached model for these settings, or train and cache it."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    epochs = EPOCHS.get(dataset, 5) if epochs is None else epochs
    if epochs < 1 or batch_size < 1 or (n_train is not None and n_train < 1):
        raise ValueError("epochs, batch_size and n_train must be positive")
    (x_train, y_train), (x_test, y_test) = load_dataset(dataset)
    x_train, x_test = preprocess(x_train), preprocess(x_test)
    settings = dict(dataset=dataset, arch=arch, epochs=epochs,
                    batch_size=batch_size, n_train=n_train, seed=seed)
    key = _cache_key(settings)
    path = cache_dir("models") / f"{dataset}-{arch}-{key}.keras"
    start = time.perf_counter()
    if path.exists():
        model = keras.saving.load_model(path)
        loaded = True
    else:
        set_seed(seed)
        model = ARCHITECTURES[arch](x_train.shape[1:], int(y_train.max()) + 1)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        logs = cache_dir("logs") / f"{dataset}-{arch}-{key}"
        take = (slice(None) if n_train is None else np.random.default_rng(
            seed).permutation(len(x_train))[:n_train])
        model.fit(x_train[take], y_train[take], epochs=epochs,
                  batch_size=batch_size, validation_data=(x_test, y_test),
                  callbacks=[keras.callbacks.TensorBoard(str(logs))],
                  verbose=verbose)
        with atomic_path(path) as tmp:
            model.save(tmp)
        loaded = False
    seconds = time.perf_counter() - start
    probs = model.predict(x_test, batch_size=1000, verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == y_test))
    verb = "loaded from cache" if loaded else f"trained in {seconds:.0f} s"
    print(f"{dataset} {arch}: {verb}; test accuracy {accuracy:.2%}")
    return Trained(model, accuracy, str(path), loaded, seconds)
