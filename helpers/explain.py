"""Explanation methods, each a thin layer over the library the book teaches."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import keras
import numpy as np


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
