"""helpers.explain: every method through one door, seeds, and bad input."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import helpers
from helpers.data import fit_photo, photos, preprocess

FAST = {  # small settings, so the whole matrix runs in seconds
    "integrated_gradients": dict(steps=8),
    "gradient_shap": dict(nsamples=16),
    "lime": dict(num_samples=100),
}


@pytest.fixture(scope="module")
def fashion_batch(fashion):
    ((x_train, _), (x_test, _)), _ = fashion
    return preprocess(x_test[:2]), preprocess(x_train[:20])


def _options(method, background):
    options = dict(FAST.get(method, {}))
    if method in ("gradient_shap", "deep_shap"):
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


@pytest.mark.parametrize("method", helpers.explain.__globals__["RANDOM"])
def test_random_methods_repeat_with_the_same_seed(small_model, fashion_batch, method):
    inputs, background = fashion_batch
    options = _options(method, background)
    if method == "integrated_gradients":
        options["baseline"] = "noise"
    runs = [helpers.explain(small_model.model, inputs[:1], method, seed=3, **options)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].maps, runs[1].maps)


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
    (np.zeros((1, 2, 28, 28, 1), np.float32), "saliency", None, {}, r"inputs must be \(n, H, W, C\)"),
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
    ("ok", "saliency", None, {"steps": 5}, r"options \['steps'\] are not taken by method 'saliency'"),
    ("ok", "gradcam", None, {"nsamples": 5}, "are not taken by method 'gradcam'"),
    ("ok", "lime", None, {"background": 1}, "are not taken by method 'lime'"),
    ("ok", "integrated_gradients", None, {"steps": 0}, "steps must be an integer >= 1"),
    ("ok", "integrated_gradients", None, {"baseline": np.zeros(3)}, "baseline must have shape"),
    ("ok", "gradient_shap", None, {}, "needs background="),
    ("ok", "deep_shap", None, {"background": np.zeros((4, 28, 28))}, "background must be a non-empty batch"),
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
    "gradcam": {"layer": "first conv"},  # the model's first Conv2D, by name
    "integrated_gradients": {"steps": 4, "baseline": "blur", "rule": "riemann_left",
                             "batch_size": 3, "sigma": (2.0, {"baseline": "blur"}),
                             "n_noise": (2, {"baseline": "noise"}),
                             "seed": (5, {"baseline": "noise"})},
    "gradient_shap": {"nsamples": 8, "local_smoothing": 0.1, "batch_size": 4, "seed": 5,
                      "background": "half"},
    "deep_shap": {"score": "probability", "chunk": 5, "background": "half"},
    "lime": {"num_samples": 60, "batch_size": 7, "seed": 5,
             "segmentation": ("slic", {"segment_options": {"n_segments": 10}}),
             "segment_options": ({"kernel_size": 2, "max_dist": 50, "ratio": 0.5},
                                 {"segmentation": "quickshift"})},
    "occlusion": {"window": 7, "stride": 2, "batch_size": 5},
    # At 0.95 this model's anchors are empty: 0.99 makes the options visible.
    "anchors": {"segmentation": ("slic", {"threshold": 0.99}),
                "segment_options": ({"size": (7, 7)}, {"threshold": 0.99}),
                "threshold": 0.99, "seed": 5,
                "background": ("half", {"threshold": 0.99})},
}
# Options that change how the work is split, never the maps.
SAME_MAPS = {"batch_size", "chunk"}
# A new seed may find the same answer (anchors often do): recorded, and repeatable.
SEEDS = {("anchors", "seed")}


def test_option_values_cover_every_documented_option():
    options = helpers.explain.__globals__["OPTIONS"]
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
    if method in ("gradient_shap", "deep_shap"):
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
