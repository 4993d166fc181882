"""The model cache and Deep SHAP's additivity on a small trained model."""
from __future__ import annotations

import numpy as np
import pytest

import helpers
from helpers.data import preprocess
from helpers.methods.deep_shap import additivity_error, deep_shap


def test_second_call_loads_instead_of_training(small_model):
    assert not small_model.loaded
    again = helpers.train_or_load("fashion_mnist", epochs=2, n_train=3000, verbose=0)
    assert again.loaded and again.path == small_model.path
    assert again.accuracy == pytest.approx(small_model.accuracy)
    for a, b in zip(again.model.get_weights(), small_model.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert small_model.accuracy > 0.6  # 2 epochs on 3,000 images: well above 10%


def test_cache_key_separates_settings(small_model):
    other = helpers.train_or_load("fashion_mnist", epochs=2, n_train=500, verbose=0)
    assert not other.loaded and other.path != small_model.path


def test_bad_training_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        helpers.train_or_load("mnist", arch="resnet")
    with pytest.raises(ValueError, match="epochs, batch_size and n_train"):
        helpers.train_or_load("mnist", epochs=0)


def test_deep_shap_additivity_below_1e3(small_model, fashion):
    ((x_train, _), (x_test, _)), _ = fashion
    images = preprocess(x_test[:4])
    result = deep_shap(small_model.model, preprocess(x_train[:50]), images)
    assert result.values.shape == (4, 28, 28, 1, 10)
    assert result.expected.shape == (10,)
    assert additivity_error(small_model.model, images, result) < 1e-3
    # The attributions are not trivially zero: they carry the output.
    assert np.abs(result.values).sum() > 0.1


def test_deep_shap_rejects_wrong_shapes(small_model):
    message = r"images must be a non-empty batch of shape \(n, 28, 28, 1\)"
    with pytest.raises(ValueError, match=message):
        deep_shap(small_model.model, np.zeros((5, 28, 28, 1)), np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="background must be"):
        deep_shap(small_model.model, np.zeros((0, 28, 28, 1)), np.zeros((2, 28, 28, 1)))


def test_deep_shap_in_background_chunks_gives_the_same_values(small_model, fashion):
    ((x_train, _), (x_test, _)), _ = fashion
    images, background = preprocess(x_test[:2]), preprocess(x_train[:60])
    whole = deep_shap(small_model.model, background, images, chunk=60)
    chunked = deep_shap(small_model.model, background, images, chunk=25)
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-6)
    np.testing.assert_allclose(chunked.expected, whole.expected, atol=1e-6)


def test_deep_shap_of_the_top_class_only_equals_its_column(small_model, fashion):
    ((x_train, _), (x_test, _)), _ = fashion
    images, background = preprocess(x_test[:3]), preprocess(x_train[:40])
    model = small_model.model
    every = deep_shap(model, background, images)
    top = deep_shap(model, background, images, ranked_outputs=2)
    predicted = np.asarray(model(images)).argmax(-1)
    assert top.values.shape == (3, 28, 28, 1, 2)
    np.testing.assert_array_equal(top.ranked[:, 0], predicted)
    for rank in range(2):
        column = every.values[np.arange(3), ..., top.ranked[:, rank]]
        np.testing.assert_allclose(top.values[..., rank], column, atol=1e-6)
    assert additivity_error(model, images, top) < 1e-3
    # explain(): the predicted class takes the ranked path, another a class-picking layer.
    other = (predicted + 1) % 10
    for targets in (predicted, other):
        maps = helpers.explain(model, images, "deep_shap", targets=targets,
                               background=background).maps
        want = every.values[np.arange(3), ..., targets].sum(-1)
        np.testing.assert_allclose(maps, want, atol=1e-6)
