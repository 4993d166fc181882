"""Deep SHAP explains the logit: softmax detection, additivity, agreement."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import helpers
from conftest import assert_most_pixels_close
from helpers.data import preprocess
from helpers.evaluate import (background_agreement,
                              choose_background)
from helpers.engine import logit_model, softmax_layer
from helpers.methods.deep_shap import additivity_error, deep_shap, exp_softmax_model
from helpers.models import cifar_cnn, small_cnn

L = keras.layers


def _functional(*heads):
    inputs = keras.Input((6, 6, 1))
    x = L.Flatten()(inputs)
    for head in heads:
        x = head(x)
    return keras.Model(inputs, x)


SOFTMAX_MODELS = {
    "small_cnn (Sequential, Dense softmax)": lambda: small_cnn((6, 6, 1)),
    "cifar_cnn (Sequential, Dense softmax)": lambda: cifar_cnn((8, 8, 3)),
    "functional, Dense softmax": lambda: _functional(L.Dense(4, activation="softmax")),
    "functional, Softmax layer": lambda: _functional(L.Dense(4), L.Softmax()),
    "functional, Activation softmax (MobileNet's head)":
        lambda: _functional(L.Dense(4), L.Activation("softmax")),
    "Sequential, Softmax layer": lambda: keras.Sequential(
        [keras.Input((6, 6, 1)), L.Flatten(), L.Dense(4), L.Softmax()]),
}


@pytest.mark.parametrize("name", SOFTMAX_MODELS)
def test_logit_model_gives_the_scores_before_the_softmax(name):
    helpers.set_seed(0)
    model = SOFTMAX_MODELS[name]()
    assert softmax_layer(model) is model.layers[-1]
    x = np.random.default_rng(0).random((3, *model.input_shape[1:])).astype("float32")
    logits = np.asarray(logit_model(model)(x))
    probs = np.asarray(model(x))
    assert logits.shape == probs.shape
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), probs, atol=1e-6)
    assert not np.allclose(logits, probs, atol=1e-3)  # not the probability again
    np.testing.assert_allclose(np.asarray(exp_softmax_model(model)(x)), probs, atol=1e-6)


def test_a_model_without_softmax_is_its_own_logit_model():
    model = _functional(L.Dense(4))
    assert softmax_layer(model) is None and logit_model(model) is model
    model = _functional(L.Dense(4, activation="sigmoid"))
    assert softmax_layer(model) is None


def test_the_loaded_models_of_the_book_are_detected(small_model, fashion):
    loaded = keras.saving.load_model(small_model.path)
    (_, _), (x_test, _) = fashion[0]
    x = preprocess(x_test[:4])
    probs = np.asarray(loaded(x))
    np.testing.assert_allclose(
        keras.ops.softmax(logit_model(loaded)(x)).numpy(), probs, atol=1e-6)


def test_mobilenets_head_is_detected(classifier):
    model = classifier.model
    assert softmax_layer(model).name == "predictions"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.softmax(logit_model(model)(x)).numpy(),
                               np.asarray(model(x)), atol=1e-5)


def test_deep_shap_adds_up_to_the_logit_not_the_probability(small_model, fashion):
    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:3]), preprocess(x_train[:50])
    result = deep_shap(model, background, images)
    assert result.score == "logit"
    assert additivity_error(model, images, result) < 1e-3
    sums = result.values.sum(axis=(1, 2, 3)) + result.expected
    np.testing.assert_allclose(sums, np.asarray(logit_model(model)(images)), atol=1e-3)
    assert np.abs(sums - np.asarray(model(images))).max() > 0.5
    on_probability = deep_shap(model, background, images, score="probability")
    assert additivity_error(model, images, on_probability) < 1e-3


def test_deep_shap_score_is_checked(small_model):
    x = np.zeros((2, 28, 28, 1), np.float32)
    with pytest.raises(ValueError, match="score must be one of"):
        deep_shap(small_model.model, x, x, score="softmax")
    with pytest.raises(ValueError, match="score must be one of"):
        helpers.explain(small_model.model, x, "deep_shap", background=x, score="prob")


def test_explain_passes_the_score_through(small_model, fashion):
    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:2]), preprocess(x_train[:30])
    logit = helpers.explain(model, images, "deep_shap", background=background)
    probability = helpers.explain(model, images, "deep_shap", background=background,
                                  score="probability")
    direct = deep_shap(model, background, images, ranked_outputs=1)
    np.testing.assert_allclose(logit.maps, direct.values[..., 0].sum(-1), atol=1e-5)
    assert logit.options["score"] == "logit"
    assert not np.allclose(logit.maps, probability.maps, atol=1e-4)


def test_background_agreement_of_identical_draws_is_one(small_model, fashion):
    (x_train, _), (x_test, _) = fashion[0]
    found = background_agreement(small_model.model, preprocess(x_test[:2]),
                                 preprocess(x_train[:40]), 20, seeds=(3, 3))
    np.testing.assert_allclose(found.rank_correlation, 1.0, atol=1e-6)
    np.testing.assert_allclose(found.total_ratio, 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="size must be between 1 and 40"):
        background_agreement(small_model.model, preprocess(x_test[:2]),
                             preprocess(x_train[:40]), 41)


def test_choose_background_picks_the_first_size_that_agrees(small_model, fashion):
    """The rule the CIFAR-10 chapter applies (its chosen size, agreement and the
    probability's lower agreement are checked from its glued values in test_book)."""
    (x_train, _), (x_test, _) = fashion[0]
    images, pool = preprocess(x_test[:3]), preprocess(x_train[:60])
    size, curve = choose_background(small_model.model, images, pool, [5, 10, 20],
                                    threshold=-1.0, whole_curve=False)
    assert size == 5 and len(curve) == 1
    size, curve = choose_background(small_model.model, images, pool, [5, 10],
                                    threshold=1.01)
    assert size is None and len(curve) == 2
    means = [a.rank_correlation.mean() for a in curve]
    size, _ = choose_background(small_model.model, images, pool, [5, 10],
                                threshold=max(means))
    assert size == [5, 10][int(np.argmax(means))]
    with pytest.raises(ValueError, match="sizes must be increasing"):
        choose_background(small_model.model, images, pool, [10, 5])


def assert_shaps_values(ours: np.ndarray, theirs: np.ndarray, score: str) -> None:
    """Within rtol 1e-4; on the probability all but 1% of the values: shap's
    softmax rule divides by differences of logits, which magnifies the
    round-off of another batch composition (33 of 23,520 values, at most
    2.5e-5 apart, with 16 image-background pairs per call against shap's 20)."""
    if score == "logit":
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    else:
        assert_most_pixels_close(ours, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_deep_shap_gives_shaps_own_values(small_model, fashion, score):
    """The rules traced once give shap.DeepExplainer(...).shap_values's values."""
    import shap

    from helpers.engine import scored_model

    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:3]), preprocess(x_train[:20])
    ours = deep_shap(model, background, images, score=score)
    theirs = np.asarray(shap.DeepExplainer(scored_model(model, score), background)
                        .shap_values(images))
    assert theirs.shape == ours.values.shape
    assert_shaps_values(ours.values, theirs, score)
    again = deep_shap(model, background[:7], images[1:], ranked_outputs=2, score=score)
    theirs, ranked = shap.DeepExplainer(scored_model(model, score), background[:7]).shap_values(
        images[1:], ranked_outputs=2, check_additivity=False)
    np.testing.assert_array_equal(again.ranked, ranked)
    assert_shaps_values(again.values, np.asarray(theirs), score)


def test_deep_shap_traces_once_per_model(small_model, fashion):
    from helpers.methods.deep_shap import deep_rules

    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:4]), preprocess(x_train[:10])
    deep_shap(model, background, images[:2])
    rules = deep_rules(logit_model(model))
    traced = rules.gradients.experimental_get_tracing_count()
    deep_shap(model, background[:3], images, ranked_outputs=3)
    assert rules.gradients.experimental_get_tracing_count() == traced
