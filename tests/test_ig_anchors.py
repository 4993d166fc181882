"""Integrated Gradients (against Alibi, completeness, bad input) and anchors."""
from __future__ import annotations

import numpy as np
import pytest
from alibi.explainers import IntegratedGradients

from helpers.data import preprocess
import helpers
from helpers.methods.anchors import anchor_explainer, coverage_samples, slic_grey
from helpers.methods.base import rectangles
from helpers.methods.integrated_gradients import ig_alphas, make_baseline


def integrated_gradients(model, inputs, targets, **options):
    """IG through the door: per-channel attributions and completeness errors."""
    found = helpers.explain(model, inputs, "integrated_gradients", targets, **options)
    return found.details["attributions"], found.details["completeness_error"]


def anchor_explain(predict, image, segmentation="rectangles", **options):
    threshold = options.pop("threshold", 0.95)
    explainer = anchor_explainer(predict, image.shape, segmentation, **options)
    return explainer.explain(image, threshold=threshold, p_sample=0.5, tau=0.25,
                             coverage_samples=coverage_samples(image))


@pytest.fixture(scope="module")
def fashion_images(fashion):
    ((_, _), (x_test, y_test)), _ = fashion
    return preprocess(x_test[:4]), y_test[:4]


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle",
                                    "riemann_left", "riemann_trapezoid"])
def test_ig_agrees_with_alibi(small_model, fashion_images, rule):
    images, labels = fashion_images
    # Alibi explains the model's output as it is: the probability.
    ours, _ = integrated_gradients(small_model.model, images, labels, steps=32, rule=rule,
                                   score="probability", batch_size=40)
    alibi = IntegratedGradients(small_model.model, n_steps=32, method=rule,
                                internal_batch_size=40)
    theirs = alibi.explain(images, baselines=np.zeros_like(images),
                           target=labels.astype(int)).attributions[0]
    if rule == "riemann_trapezoid":
        # Alibi's (and Captum's) trapezoid weights sum to (n - 1) / n, not 1.
        theirs = theirs * 32 / 31
    relative = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    assert relative < 1e-3
    assert np.abs(theirs).max() > 1e-3  # a real map, not two zeros agreeing


def test_ig_completeness_improves_with_steps(small_model, fashion_images):
    images, labels = fashion_images
    errors = [integrated_gradients(small_model.model, images, labels, steps=s,
                                   score="probability")[1].max() for s in (2, 300)]
    assert errors[1] < 0.01 and errors[1] < errors[0]
    attributions, _ = integrated_gradients(small_model.model, images, labels, steps=300,
                                           score="probability")
    outputs = np.asarray(small_model.model(images))[np.arange(4), labels]
    base = np.asarray(small_model.model(np.zeros_like(images)))[np.arange(4), labels]
    np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), outputs - base, atol=0.01)
    # The default explains the logit: its completeness holds against the logit.
    attributions, error = integrated_gradients(small_model.model, images, labels, steps=300)
    logits = helpers.engine.Engine(small_model.model).predict
    gap = (logits(images, "logit") - logits(np.zeros_like(images), "logit"))[np.arange(4), labels]
    np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), gap, rtol=0.01, atol=0.01)


def test_ig_baselines_and_seeds(small_model, fashion_images):
    images, labels = fashion_images
    noise = [integrated_gradients(small_model.model, images[:1], labels[:1],
                                  baseline="noise", steps=8, seed=5)[0] for _ in range(2)]
    np.testing.assert_array_equal(*noise)
    assert make_baseline("noise", images, n_noise=3).shape == (3, *images.shape)
    blurred = make_baseline("blur", images)[0]
    assert blurred.shape == images.shape and blurred.std() < images.std()
    alphas, weights = ig_alphas(10)
    assert alphas.min() > 0 and alphas.max() < 1 and np.isclose(weights.sum(), 1)


def test_ig_bad_inputs(small_model, fashion_images):
    images, labels = fashion_images
    model = small_model.model
    shapes = r"baseline must have shape \(28, 28, 1\) or \(4, 28, 28, 1\)"
    with pytest.raises(ValueError, match=shapes):
        integrated_gradients(model, images, labels, baseline=np.zeros((28, 28)))
    with pytest.raises(ValueError, match="baseline must be one of"):
        integrated_gradients(model, images, labels, baseline="white")
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        integrated_gradients(model, images, labels, steps=0)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 10\), got \[0, 1, 2, 10\]"):
        integrated_gradients(model, images, [0, 1, 2, 10])
    with pytest.raises(ValueError, match="targets must be 4 class indices"):
        integrated_gradients(model, images, [0, 1])
    with pytest.raises(ValueError, match="rule must be one of"):
        integrated_gradients(model, images, labels, rule="simpson")


def test_rectangles_match_the_alibi_example_loop():
    image = np.zeros((28, 28, 1))
    expected = np.zeros((28, 28))
    for i in range(28):  # the loop of Alibi's FashionMNIST example
        for j in range(28):
            expected[i, j] = int((28 / 7) * (i // 4) + j // 7)
    np.testing.assert_array_equal(rectangles(image, (4, 7)), expected)


def test_anchor_precision_and_shape_errors(small_model, fashion_images):
    images, _ = fashion_images
    predict = lambda batch: np.asarray(small_model.model(batch))  # noqa: E731
    found = [anchor_explain(predict, images[2], "rectangles", seed=0)
             for _ in range(2)]
    assert found[0].data["raw"]["feature"] == found[1].data["raw"]["feature"]
    assert np.mean(found[0].precision) >= 0.95 or not found[0].data["raw"]["feature"]
    assert found[0].anchor.shape == (28, 28, 1)
    assert slic_grey(images[2], n_segments=15).max() + 1 > 5
    with pytest.raises(ValueError, match="segmentation must be one of"):
        anchor_explain(predict, images[0], "felzenszwalb")
