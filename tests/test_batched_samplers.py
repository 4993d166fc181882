"""LIME's and anchors' perturbed images, built a batch at a time (issue 15),
against the libraries' own one-at-a-time loops: the same random draws must give
the same images, the same model inputs and the same explanations."""
from __future__ import annotations

import numpy as np
import pytest
from alibi.explainers.anchors.anchor_image import AnchorImageSampler
from lime import lime_image
from skimage.segmentation import slic

import helpers
from helpers.data import preprocess
from helpers.engine import Engine
from helpers.methods.anchors import anchor_explainer, batched_sampler, sampler_class
from helpers.methods.base import rectangles
from helpers.methods.lime import explainer_class, lime_map, no_progress_bar


class Recorder:
    """A classifier function that keeps every batch it is given."""

    def __init__(self, predict):
        self.predict, self.batches = predict, []

    def __call__(self, batch):
        self.batches.append(np.array(batch))
        return self.predict(batch)


def mean_colour(batch: np.ndarray) -> np.ndarray:
    """A stand-in classifier for the sampler tests: two 'classes' from the brightness."""
    m = batch.reshape(len(batch), -1).mean(1)
    return np.stack([m, 1 - m], 1)


@pytest.fixture(scope="module")
def fashion_images(fashion):
    ((_, _), (x_test, _)), _ = fashion
    return preprocess(x_test[:3])


@pytest.fixture(scope="module")
def colour_image():
    """A smooth 48 x 48 colour image SLIC cuts into a few dozen superpixels."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:48, :48] / 48
    image = np.stack([x, y, (x + y) / 2], -1) + rng.normal(0, 0.05, (48, 48, 3))
    return np.clip(image, 0, 1).astype(np.float32)


def lime_data_labels(cls, image, segments, batch_size):
    """`data_labels` of `cls` on `image`, black where a superpixel is off."""
    recorder = Recorder(mean_colour)
    with no_progress_bar():
        data, labels = cls(random_state=3).data_labels(
            image, np.zeros_like(image), segments, recorder, 70, batch_size=batch_size)
    return data, labels, recorder.batches


@pytest.mark.parametrize("case", ["grey rectangles", "colour slic from 1"])
def test_lime_batches_are_lime_s_images(fashion_images, colour_image, case):
    if case == "grey rectangles":
        image = np.repeat(fashion_images[0], 3, -1)  # what lime makes of a grey image
        segments = rectangles(image, (4, 4))
    else:
        image = colour_image
        segments = slic(image, n_segments=30, start_label=1)  # lime's default
    assert 10 < segments.max() + 1 < 100
    ours = lime_data_labels(explainer_class(), image, segments, 32)
    theirs = lime_data_labels(lime_image.LimeImageExplainer, image, segments, 32)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert [b.shape for b in ours[2]] == [(32, *image.shape)] * 2 + [(6, *image.shape)]
    for mine, lime_s in zip(ours[2], theirs[2], strict=True):
        np.testing.assert_array_equal(mine, lime_s)
    # A wrong variant (another random state) gives other images.
    other = explainer_class()(random_state=4).data_labels(
        image, np.zeros_like(image), segments, mean_colour, 70, batch_size=32)
    assert not np.array_equal(other[0], ours[0])


def test_lime_through_explain_is_lime_s_explanation(small_model, fashion_images):
    model = small_model.model
    found = helpers.explain(model, fashion_images, "lime", num_samples=150, seed=2)
    engine = Engine(model)
    predict = lambda batch: engine.predict(batch[..., :1])  # noqa: E731
    for image, target, ours in zip(fashion_images, found.targets, found.maps, strict=True):
        with no_progress_bar():
            theirs = lime_image.LimeImageExplainer(random_state=2).explain_instance(
                image[..., 0], predict, labels=(int(target),), top_labels=None,
                hide_color=0.0, num_samples=150, batch_size=min(150, engine.batch_size),
                segmentation_fn=lambda im: rectangles(im, (4, 4)), random_seed=2)
        expected = lime_map(theirs, int(target))
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)


def anchor_samples(cls, image, background, anchor):
    """`perturbation` of a sampler of `cls` after seeding numpy's global generator."""
    sampler = cls(mean_colour, lambda im: rectangles(im, (7, 7)), True, image,
                  images_background=background, p_sample=0.5)
    np.random.seed(7)
    first = sampler.perturbation(anchor, 40)
    return first, sampler.perturbation(anchor, 25)


@pytest.mark.parametrize("with_background", [False, True])
def test_anchor_samples_are_alibi_s_images(fashion_images, with_background):
    image = fashion_images[0]
    background = fashion_images[1:] if with_background else None
    ours = anchor_samples(sampler_class(), image, background, (1, 5))
    theirs = anchor_samples(AnchorImageSampler, image, background, (1, 5))
    for (mine, mask), (alibi_s, alibi_mask) in zip(ours, theirs, strict=True):
        assert mine.dtype == alibi_s.dtype and mine.shape == (len(mask), 28, 28, 1)
        np.testing.assert_array_equal(mask, alibi_mask)
        np.testing.assert_array_equal(mine, alibi_s)
        assert (mask[:, [1, 5]] == 1).all() and (mask == 0).any()
    # A wrong variant (another anchor) gives other images.
    other = anchor_samples(sampler_class(), image, background, (2,))
    assert not np.array_equal(other[0][0], ours[0][0])


def test_anchors_through_explain_are_alibi_s_anchors(small_model, fashion_images):
    model = small_model.model
    options = dict(segment_options={"size": (7, 7)}, threshold=0.99, seed=1)
    found = helpers.explain(model, fashion_images, "anchors", **options)
    engine = Engine(model)
    assert found.maps.any()
    for image, ours in zip(fashion_images, found.maps, strict=True):
        explainer = anchor_explainer(engine.predict, image.shape, "rectangles", seed=1,
                                     size=(7, 7))
        theirs = explainer.explain(image, threshold=0.99, p_sample=0.5, tau=0.25,
                                   coverage_samples=10_000)
        expected = np.isin(theirs.segments, theirs.data["raw"]["feature"])
        np.testing.assert_array_equal(ours, expected)
    with batched_sampler():
        from alibi.explainers.anchors import anchor_image

        assert anchor_image.AnchorImageSampler is sampler_class()
    assert anchor_image.AnchorImageSampler is AnchorImageSampler
