"""The planted shortcut (helpers.shortcut): markers, marked sets, and proven reliance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import helpers
from helpers.methods import Attribution
from helpers.shortcut import (LOCALISATION, Marker, interval_table, localisation_table,
                              marked_test_set, marked_training_set, reliance, verdicts)

SHAPES = [(28, 28), (32, 32)]  # FashionMNIST, CIFAR-10


def _images(shape: tuple[int, ...], n: int = 20, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.2, 0.8, (n, *shape))
    return (pixels * 255).astype(dtype) if dtype == np.uint8 else pixels.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_masks_are_distinct_disjoint_squares_on_the_border(shape):
    marker = Marker(size=4)
    masks = np.stack([marker.mask(shape, c) for c in range(10)])
    assert masks.shape == (10, *shape) and masks.dtype == bool
    assert (masks.sum((1, 2)) == 16).all()
    assert masks.sum(0).max() == 1  # no two classes share a pixel
    for mask in masks:
        rows, cols = np.nonzero(mask)
        assert rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3
        assert rows.min() == 0 or cols.min() == 0 or rows.max() == shape[0] - 1 \
            or cols.max() == shape[1] - 1


@pytest.mark.parametrize("image_shape, dtype", [((28, 28), np.float32), ((28, 28, 1), np.float32),
                                                ((32, 32, 3), np.uint8)])
def test_plant_writes_the_checkerboard_in_the_mask_and_nothing_else(image_shape, dtype):
    marker = Marker(size=4)
    images = _images(image_shape, dtype=dtype)
    labels = np.arange(len(images)) % 10
    before = images.copy()
    marked, masks = marker.plant(images, labels)
    np.testing.assert_array_equal(images, before)  # inputs not mutated
    assert marked.dtype == images.dtype and marked.shape == images.shape
    white = 255 if dtype == np.uint8 else 1.0
    pattern = marker.pattern(white)
    for image, old, mask, label in zip(marked, images, masks, labels):
        np.testing.assert_array_equal(mask, marker.mask(image_shape, label))
        np.testing.assert_array_equal(image[~mask], old[~mask])
        patch = image[mask].reshape(4, 4, -1)
        assert (patch == pattern[..., None]).all()
    # the background was grey, so every pixel of the mask changed
    changed = (marked != images).reshape(len(images), *image_shape[:2], -1).all(-1)
    np.testing.assert_array_equal(changed, masks)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="size must be a positive integer"):
        Marker(size=0)
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
        Marker(share=1.5)
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
        Marker(share=0)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        Marker(n_classes=1)
    with pytest.raises(ValueError, match=r"label must be in \[0, 10\), got 10"):
        Marker().mask((28, 28), 10)
    with pytest.raises(ValueError, match="do not fit apart on the border"):
        Marker(size=6).mask((28, 28), 0)
    with pytest.raises(ValueError, match="one label each"):
        Marker().plant(np.zeros((3, 28, 28)), np.zeros(2, int))
    with pytest.raises(ValueError, match="one label each"):
        Marker().plant(np.zeros((28, 28)), np.zeros(28, int))
    with pytest.raises(ValueError, match="marker.n_classes is 5 but the dataset has 10"):
        marked_test_set("fashion_mnist", Marker(n_classes=5), 10)


def test_marker_is_frozen():
    with pytest.raises(AttributeError):
        Marker().share = 0.2


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_training_set_marks_the_share_asked_for_with_the_seed(share):
    marker = Marker(share=share)
    x, y, masks = marked_training_set("fashion_mnist", marker)
    (raw, labels), _ = helpers.load_dataset("fashion_mnist")
    assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(y, labels)
    marked = masks.any((1, 2))
    assert marked.sum() == round(share * 60000)
    np.testing.assert_array_equal(x[~marked], helpers.data.preprocess(raw[~marked]))
    first = np.flatnonzero(marked)[0]
    np.testing.assert_array_equal(masks[first], marker.mask((28, 28), labels[first]))
    again = marked_training_set("fashion_mnist", Marker(share=share, seed=1))[2].any((1, 2))
    assert (again != marked).any()


def test_test_sets_carry_their_own_or_another_class_marker():
    marker = Marker()
    own = marked_test_set("fashion_mnist", marker, 200, seed=3)
    swapped = marked_test_set("fashion_mnist", marker, 200, seed=3, swap=True)
    np.testing.assert_array_equal(own.labels, swapped.labels)  # the same images
    np.testing.assert_array_equal(own.marker_labels, own.labels)
    assert (swapped.marker_labels != swapped.labels).all()
    assert len(np.unique(swapped.marker_labels - swapped.labels)) > 5  # many shifts
    for data in (own, swapped):
        assert data.inputs.shape == (200, 28, 28, 1)
        for mask, label in zip(data.masks[:10], data.marker_labels[:10]):
            np.testing.assert_array_equal(mask, marker.mask((28, 28), label))


def test_a_model_trained_on_marked_images_follows_the_marker(small_model):
    """3,000 images, half marked, 2 epochs (~10 s): the prediction follows another
    class's marker far above chance (measured 0.55 against 0.04; the unmarked
    model of the same settings follows it 0.05 of the time)."""
    marker = Marker(size=4, share=0.5)
    trained = helpers.train_or_load("fashion_mnist", epochs=2, n_train=3000, verbose=0,
                                    marker=marker)
    assert "-marked-" in Path(trained.path).name
    assert "-marked-" not in Path(small_model.path).name  # the same settings, unmarked
    scores = reliance(trained.model, "fashion_mnist", marker, n=500)
    assert scores["n"] == 500
    assert scores["own_marker_accuracy"] > 0.95
    assert scores["follows_marker"] > 0.4 > 0.2 > scores["chance"]
    # the clean model ignores the marker: its predictions follow it at chance
    unmarked = reliance(small_model.model, "fashion_mnist", marker, n=500)
    assert unmarked["follows_marker"] < 0.2


def _result(maps: np.ndarray) -> Attribution:
    return Attribution(maps.astype(np.float32), np.zeros(len(maps), np.int64), "test", {}, 1.0)


def test_localisation_table_and_verdicts_sort_known_maps():
    """A map that is the marker reveals it; a random one does not; a map that puts
    a little more than the clean model on the marker, but near chance, is weak."""
    marker, rng = Marker(size=4), np.random.default_rng(0)
    labels = rng.integers(0, 10, 60)
    masks = np.stack([marker.mask((28, 28), c) for c in labels])
    noise = rng.random(masks.shape)
    found = {("marked", "exact"): _result(masks + 0.01 * noise),
             ("clean", "exact"): _result(noise),
             ("marked", "random"): _result(noise),
             ("clean", "random"): _result(rng.random(masks.shape)),
             ("marked", "faint"): _result(noise + 0.3 * masks),
             ("clean", "faint"): _result(noise),
             ("marked", "few"): _result((masks + 0.01 * noise)[:20]),
             ("clean", "few"): _result(noise[:10])}
    table, scores = localisation_table(found, masks)
    assert len(table) == 4 * 2 * 3 and set(table.score) == set(LOCALISATION)
    exact = table.set_index(["model", "method", "score"])["mean"]
    assert exact["marked", "exact", "pointing game"] == 1.0
    assert exact["marked", "exact", "relevance rank"] == 1.0
    indexed = table.set_index(["model", "method", "score"])
    shown = indexed["interval"]
    assert shown["marked", "exact", "pointing game"] == "1.00 [1.00, 1.00]"
    low, high = indexed.loc[("clean", "random", "relevance mass"), ["low", "high"]]
    assert shown["clean", "random", "relevance mass"].endswith(f"[{low:.2f}, {high:.2f}]")
    wide = interval_table(table, ["random", "exact"])
    assert list(wide.index) == [("random", "marked"), ("random", "clean"),
                                ("exact", "marked"), ("exact", "clean")]
    assert wide.loc[("exact", "marked"), "pointing game"] == "1.00 [1.00, 1.00]"
    assert list(wide.columns) == [*sorted(LOCALISATION), "seconds per image"]
    assert len(scores["marked", "few", "relevance mass"]) == 20  # scored on the first masks
    chance = masks.sum((1, 2)).mean() / masks[0].size
    verdict = verdicts(scores, ["exact", "random", "faint", "few"], chance)
    assert verdict == {"revealed": ["exact", "few"], "weak": ["faint"], "not": ["random"]}


def test_a_training_subset_is_marked_in_the_markers_share():
    """The subset `train_or_load(n_train=...)` draws is independent of the marker's
    draw (both start from seed 0: with one stream every image of a subset smaller
    than the marked share was marked)."""
    from helpers.models import training_subset

    marker = Marker(share=0.7)
    _, _, masks = marked_training_set("fashion_mnist", marker)
    take = training_subset(len(masks), 20_000, seed=0)
    assert abs(masks[take].any((1, 2)).mean() - 0.7) < 0.02
    bad = np.random.default_rng(0).permutation(len(masks))[:20_000]  # the old draw
    assert masks[bad].any((1, 2)).all()
