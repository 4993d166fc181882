"""helpers.explain: every registered method through the same asserts (Xplique's
test_common style), seeds, batch sizes, counted calls, options and bad input."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import helpers
from helpers.data import fit_photo, photos, preprocess
from helpers.methods import OPTIONS, RANDOM, get

from conftest import assert_most_pixels_close

FAST = {  # small settings, so the whole matrix runs in seconds
    "integrated_gradients": dict(steps=8),
    "gradient_shap": dict(nsamples=16),
    "lime": dict(num_samples=100),
    "rise": dict(n_masks=200),
    "smoothgrad": dict(samples=8),
}


@pytest.fixture(scope="module")
def fashion_batch(fashion):
    ((x_train, _), (x_test, _)), _ = fashion
    return preprocess(x_test[:2]), preprocess(x_train[:20])


def _options(method, background):
    options = dict(FAST.get(method, {}))
    if "background" in OPTIONS[method]:
        options["background"] = background
    return options


@pytest.mark.parametrize("method", helpers.METHODS)
def test_every_method_on_the_fashion_cnn(small_model, fashion_batch, method):
    inputs, background = fashion_batch
    result = helpers.explain(small_model.model, inputs, method,
                             **_options(method, background))
    assert result.maps.shape == (2, 28, 28) and result.maps.dtype == np.float32
    # An empty anchor (all zeros) is a valid answer; every other map is not.
    assert np.isfinite(result.maps).all()
    assert method == "anchors" or np.abs(result.maps).max() > 0
    predicted = np.asarray(small_model.model(inputs)).argmax(1)
    np.testing.assert_array_equal(result.targets, predicted)
    assert result.method == method and result.seconds > 0
    assert result.model_calls["forward"] >= 2
    if method == "anchors":
        assert set(np.unique(result.maps)) <= {0.0, 1.0}


@pytest.mark.parametrize("method", RANDOM)
def test_random_methods_repeat_with_the_same_seed(small_model, fashion_batch, method):
    inputs, background = fashion_batch
    options = _options(method, background)
    if method == "integrated_gradients":
        options["baseline"] = "noise"
    runs = [helpers.explain(small_model.model, inputs[:1], method, seed=3, **options)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].maps, runs[1].maps)


# Cheap settings on each method's random path; 7 x 7 squares at 0.99 give this
# model non-empty anchors.
ALONE = {**FAST, "integrated_gradients": dict(steps=8, baseline="noise", n_noise=2),
         "anchors": dict(segment_options={"size": (7, 7)}, threshold=0.99)}


@pytest.fixture(scope="module")
def six_images(small_model, fashion):
    """Six test images, targets of which two are not the predicted class (deep
    SHAP explains those another way), the predicted classes, a background."""
    ((x_train, _), (x_test, _)), _ = fashion
    inputs = preprocess(x_test[:6])
    predicted = np.asarray(small_model.model(inputs)).argmax(1)
    targets = predicted.copy()
    targets[[1, 4]] = (predicted[[1, 4]] + 1) % 10
    return inputs, targets, predicted, preprocess(x_train[:20])


@pytest.mark.parametrize("method", helpers.METHODS)
def test_a_map_does_not_depend_on_the_images_beside_it(small_model, six_images, method):
    """One call on six images, six calls on one, two calls on 4 + 2: the same
    maps (what `explain_dataset`'s chunks rely on), with pixel_range fixed."""
    inputs, others, predicted, background = six_images
    targets = others if get(method).any_target else predicted
    options = {**ALONE.get(method, {}), "pixel_range": (0.0, 1.0)}
    if "background" in OPTIONS[method]:
        options["background"] = background
    if method != "anchors":  # small calls split images' samples across calls
        options["batch_size"] = 20  # (not Alibi's 10,000 coverage samples: slow)

    def maps(parts, **extra):
        return np.concatenate([helpers.explain(small_model.model, inputs[part], method,
                                               targets[part], **options, **extra).maps
                               for part in parts])

    whole = maps([slice(0, 6)])
    assert np.abs(whole).max() > 0
    # Float round-off of the model's outputs, relative to the maps (logits) or
    # to 1 (probabilities, whose differences occlusion shows): measured <= 5e-7.
    close = dict(rtol=1e-5, atol=2e-6 * max(1.0, np.abs(whole).max()))
    for split in ([slice(i, i + 1) for i in range(6)], [slice(0, 4), slice(4, 6)]):
        assert_most_pixels_close(maps(split), whole, **close)  # ReLU flips from round-off
    if get(method).random() and method != "anchors":  # anchors often ignore the seed
        # Can fail: other draws for the last image (as its place in the batch
        # gave it before) miss the tolerance.
        other = maps([slice(5, 6)], seed=1)
        assert not np.allclose(other, whole[5:], **close)


@pytest.mark.parametrize("method", [m for m in helpers.METHODS if m != "deep_shap"])
def test_every_method_on_the_imagenet_classifier(classifier, method):
    cat, coffee = (fit_photo(p.image) for p in photos(("skimage",))[:2])
    inputs = classifier.prepare(coffee)
    options = _options(method, classifier.prepare(cat))
    if method == "anchors":
        options.update(segmentation="slic", segment_options=dict(n_segments=20))
    result = helpers.explain(classifier.model, inputs[0], method, **options)
    assert result.maps.shape == (1, 224, 224)
    assert result.targets.tolist() == [967]  # espresso
    assert method == "anchors" or np.abs(result.maps).max() > 0


def test_deep_shap_on_mobilenet_is_a_clear_error(classifier):
    inputs = classifier.prepare(np.zeros((224, 224, 3), np.uint8))
    with pytest.raises(ValueError, match="no rule for ReLU6.*use 'gradient_shap'"):
        helpers.explain(classifier.model, inputs, "deep_shap", background=inputs)


def _dense():
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])


BAD = [  # (inputs, method, targets, options, message)
    ("ok", "sharpness", None, {}, r"method must be one of \('saliency'"),
    ("ok", "", None, {}, "method must be one of"),
    (np.zeros((2, 28, 28), np.float32), "saliency", None, {}, r"images of shape \(28, 28, 1\)"),
    (np.zeros((28, 28), np.float32), "saliency", None, {}, r"inputs must be \(n, H, W, C\)"),
    (np.zeros((1, 2, 28, 28, 1), np.float32), "saliency", None, {},
     r"inputs must be \(n, H, W, C\)"),
    (np.zeros((2, 28, 28, 1), np.uint8), "saliency", None, {}, "inputs must be floating point"),
    (np.zeros((2, 28, 28, 1), bool), "gradcam", None, {}, "inputs must be floating point"),
    (np.zeros((2, 32, 32, 1), np.float32), "saliency", None, {}, r"images of shape \(28, 28, 1\)"),
    (np.zeros((2, 28, 28, 3), np.float32), "occlusion", None, {}, r"images of shape \(28, 28, 1\)"),
    (np.zeros((0, 28, 28, 1), np.float32), "saliency", None, {}, "empty batch"),
    ("nan", "saliency", None, {}, "NaN or infinite"),
    ("inf", "integrated_gradients", None, {}, "NaN or infinite"),
    ("ok", "saliency", [0], {}, "targets must be 2 class indices"),
    ("ok", "saliency", [0, 1, 2], {}, "targets must be 2 class indices"),
    ("ok", "saliency", [0, 10], {}, r"targets must be in \[0, 10\)"),
    ("ok", "saliency", [-1, 0], {}, r"targets must be in \[0, 10\)"),
    ("ok", "saliency", [0.5, 1.0], {}, "targets must be 2 class indices"),
    ("ok", "saliency", None, {"steps": 5},
     r"options \['steps'\] are not taken by method 'saliency'"),
    ("ok", "gradcam", None, {"nsamples": 5}, "are not taken by method 'gradcam'"),
    ("ok", "lime", None, {"background": 1}, "are not taken by method 'lime'"),
    ("ok", "integrated_gradients", None, {"steps": 0}, "steps must be an integer >= 1"),
    ("ok", "integrated_gradients", None, {"baseline": np.zeros(3)}, "baseline must have shape"),
    ("ok", "integrated_gradients", None, {"baseline": "white"}, "baseline must be one of"),
    ("ok", "integrated_gradients", None, {"rule": "simpson"}, "rule must be one of"),
    ("ok", "saliency", None, {"score": "prob"}, "score must be one of"),
    ("ok", "gradcam_plus_plus", None, {"score": "softmax"}, "score must be one of"),
    ("ok", "smoothgrad", None, {"base": "lime"}, "base must be a gradient method"),
    ("ok", "smoothgrad", None, {"samples": 0}, "samples must be a positive integer"),
    ("ok", "rise", None, {"p_keep": 0.0}, r"p_keep must be in \(0, 1\]"),
    ("ok", "rise", None, {"n_masks": 0}, "n_masks must be a positive integer"),
    ("ok", "occlusion", None, {"batch_size": 0}, "batch_size must be a positive integer"),
    ("ok", "occlusion", None, {"pixel_range": (1, 0)}, r"pixel_range must be \(black, white\)"),
    ("ok", "gradient_shap", None, {"background": np.zeros((4, 28, 28, 1)), "layer": "x"},
     "layer must name a layer of the model"),
    ("ok", "gradient_shap", None, {}, "needs background="),
    ("ok", "deep_shap", None, {"background": np.zeros((4, 28, 28))},
     "background must be a non-empty batch"),
    ("ok", "gradcam", None, {"layer": "no_such_layer"}, "layer must name a layer of the model"),
    ("ok", "anchors", None, {"segmentation": "watershed"}, "segmentation must be one of"),
]


@pytest.mark.parametrize("inputs, method, targets, options, message", BAD,
                         ids=[f"{i}-{case[1] or 'empty'}" for i, case in enumerate(BAD)])
def test_bad_input_is_one_clear_error(small_model, fashion_batch, inputs, method,
                                      targets, options, message):
    ok = fashion_batch[0]
    given = {"ok": ok, "nan": np.where(np.arange(ok.size).reshape(ok.shape) == 5, np.nan, ok),
             "inf": np.where(np.arange(ok.size).reshape(ok.shape) == 5, np.inf, ok)}
    inputs = given[inputs] if isinstance(inputs, str) else inputs
    with pytest.raises(ValueError, match=message):
        helpers.explain(small_model.model, inputs, method, targets=targets, **options)


def test_gradcam_without_a_convolutional_layer():
    with pytest.raises(ValueError, match="model must have a convolutional layer"):
        helpers.explain(_dense(), np.zeros((1, 28, 28, 1), np.float32), "gradcam")


# Every documented option of every method, with a value other than its default,
# and the options it needs to matter (n_noise and seed act on noise baselines).
OPTION_VALUES = {
    "saliency": {"score": "probability"},
    "smoothgrad": {"base": "integrated_gradients", "base_options": {"score": "probability"},
                   "noise": 0.3, "samples": 4, "seed": 5},
    "gradcam": {"layer": "first conv", "score": "probability"},
    "gradcam_plus_plus": {"layer": "first conv", "score": "probability"},
    "integrated_gradients": {"steps": 4, "baseline": "blur", "rule": "riemann_left",
                             "sigma": (2.0, {"baseline": "blur"}),
                             "n_noise": (2, {"baseline": "noise"}),
                             "seed": (5, {"baseline": "noise"}), "score": "probability"},
    "gradient_shap": {"nsamples": 8, "local_smoothing": 0.1, "seed": 5,
                      "background": "half", "layer": "first conv", "score": "probability"},
    "deep_shap": {"score": "probability", "chunk": 5, "background": "half"},
    "lime": {"num_samples": 60, "seed": 5,
             "segmentation": ("slic", {"segment_options": {"n_segments": 10}}),
             "segment_options": ({"kernel_size": 2, "max_dist": 50, "ratio": 0.5},
                                 {"segmentation": "quickshift"})},
    "rise": {"n_masks": 50, "cells": 4, "p_keep": 0.3, "seed": 5},
    "occlusion": {"window": 7, "stride": 2},
    # At 0.95 this model's anchors are empty: 0.99 makes the options visible.
    "anchors": {"segmentation": ("slic", {"threshold": 0.99}),
                "segment_options": ({"size": (7, 7)}, {"threshold": 0.99}),
                "threshold": 0.99, "seed": 5,
                "background": ("half", {"threshold": 0.99})},
}
# Options that change how the work is split, never the maps.
SAME_MAPS = {"chunk"}
# A new seed may find the same answer (anchors often do): recorded, and repeatable.
SEEDS = {("anchors", "seed")}


def test_option_values_cover_every_documented_option():
    options = OPTIONS
    assert {m: set(o) for m, o in options.items() if o} == \
        {m: set(o) for m, o in OPTION_VALUES.items()}


CASES = [(m, o) for m, values in OPTION_VALUES.items() for o in values]


@pytest.mark.parametrize("method,option", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_each_option_passes_through_explain(small_model, fashion_batch, method, option):
    inputs, background = fashion_batch
    value = OPTION_VALUES[method][option]
    value, needs = value if isinstance(value, tuple) and isinstance(value[1], dict) \
        else (value, {})
    if isinstance(value, str) and value == "half":
        value = background[:10]
    if isinstance(value, str) and value == "first conv":
        value = next(layer.name for layer in small_model.model.layers
                     if isinstance(layer, keras.layers.Conv2D))
    base = {**FAST.get(method, {}), **needs}
    if "background" in OPTIONS[method] and method != "anchors":
        base["background"] = background  # required: the option halves it
    if option in base and option != "background":
        del base[option]
    default = helpers.explain(small_model.model, inputs[:1], method, **base)
    changed = helpers.explain(small_model.model, inputs[:1], method,
                              **{**base, option: value})
    recorded = changed.options[option]
    assert recorded == (len(value) if option == "background" else value)
    if option in SAME_MAPS:
        np.testing.assert_allclose(changed.maps, default.maps, rtol=1e-4, atol=1e-6)
    elif (method, option) in SEEDS:
        again = helpers.explain(small_model.model, inputs[:1], method,
                                **{**base, option: value})
        np.testing.assert_array_equal(again.maps, changed.maps)
    else:
        assert not np.allclose(changed.maps, default.maps), f"{option} had no effect"


@pytest.mark.parametrize("method", helpers.METHODS)
def test_batch_size_splits_the_work_not_the_maps(small_model, fashion_batch, method):
    inputs, background = fashion_batch
    options = _options(method, background)
    whole = helpers.explain(small_model.model, inputs, method, **options)
    split = helpers.explain(small_model.model, inputs, method, batch_size=3, **options)
    np.testing.assert_allclose(split.maps, whole.maps, rtol=1e-4, atol=1e-6)
    assert split.model_calls == whole.model_calls


# Images through the model, from each algorithm's definition (n images,
# + n for the predicted targets).
CALLS = {
    "saliency": lambda n, o: (2 * n, n),
    "gradcam": lambda n, o: (2 * n, n),
    "integrated_gradients": lambda n, o: (n + n * o["steps"] + 2 * n, n * o["steps"]),
    "smoothgrad": lambda n, o: (n + n * o["samples"], n * o["samples"]),
    "rise": lambda n, o: (n + n * o["n_masks"], 0),
    "occlusion": lambda n, o: (n + n + n * 7 * 7, 0),  # 28 px, window 4: a 7 x 7 grid
    # shap reads the outputs (n), then one forward and backward pass per sample.
    "gradient_shap": lambda n, o: (n + n * o["nsamples"], n * o["nsamples"]),
}


@pytest.mark.parametrize("method", list(CALLS))
def test_the_engine_counts_every_model_call(small_model, fashion_batch, method):
    inputs, background = fashion_batch
    options = {**get(method).options(), **_options(method, background)}
    result = helpers.explain(small_model.model, inputs, method,
                             **_options(method, background))
    forward, backward = CALLS[method](len(inputs), options)
    assert result.model_calls == {"forward": forward, "backward": backward}


def test_a_method_documents_its_options():
    for method in helpers.METHODS:
        doc = get(method).__doc__
        assert "Options:" in doc or not OPTIONS[method], method
        for option in OPTIONS[method]:
            assert option in doc, f"{method}: option {option} undocumented"


def test_gradcam_divides_by_the_maximum(small_model, fashion_batch):
    from helpers.engine import Engine
    from helpers.methods.base import Context

    inputs, _ = fashion_batch
    model = small_model.model
    targets = Engine(model).predict(inputs).argmax(1)
    for method in ("gradcam", "gradcam_plus_plus"):
        for score in ("logit", "probability"):
            chosen = get(method)(score=score)
            chosen.check(model, inputs)
            cams = chosen.cams(Context(Engine(model), 0.0, 1.0), inputs, targets)
            # Saturated probabilities give maxima of ~1e-6: no epsilon may move them.
            np.testing.assert_array_equal(cams.reshape(len(cams), -1).max(1), 1.0)


def test_anchors_explain_the_predicted_class_only(small_model, fashion_batch):
    inputs, _ = fashion_batch
    other = (np.asarray(small_model.model(inputs)).argmax(1) + 1) % 10
    with pytest.raises(ValueError, match="explains the model.s predicted class only"):
        helpers.explain(small_model.model, inputs, "anchors", other)


def test_method_labels_are_the_tables_and_figures_names():
    assert helpers.label("gradcam_plus_plus") == "gradcam++"
    assert helpers.label("integrated_gradients") == "integrated gradients"
    assert helpers.label("gradient_shap", "\n") == "gradient\nshap"
    assert len({helpers.label(m) for m in helpers.METHODS}) == len(helpers.METHODS)
