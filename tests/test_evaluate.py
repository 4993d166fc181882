"""helpers.evaluate: deletion/insertion curves, stability, the sanity check."""
from __future__ import annotations

import numpy as np
import pytest

import helpers
from helpers.data import fit_photo, photos, preprocess
from helpers.evaluate import (max_sensitivity, perturbation_curve, random_maps,
                              randomization_check, randomized_top, rank_correlation)


@pytest.fixture(scope="module")
def batch(fashion):
    ((_, _), (x_test, _)), _ = fashion
    return preprocess(x_test[:8])


def test_curves_start_and_end_where_they_must(small_model, batch):
    model = small_model.model
    probs = np.asarray(model(batch))
    targets = probs.argmax(-1)
    blank = np.asarray(model(np.zeros_like(batch)))[np.arange(8), targets]
    maps = random_maps(batch.shape[:3])
    deletion = perturbation_curve(model, batch, maps, targets, "deletion", steps=10)
    insertion = perturbation_curve(model, batch, maps, targets, "insertion", steps=10)
    assert deletion.scores.shape == (8, 11) and deletion.auc.shape == (8,)
    np.testing.assert_allclose(deletion.fractions, np.linspace(0, 1, 11))
    np.testing.assert_allclose(deletion.scores[:, 0], probs.max(-1), atol=1e-5)
    np.testing.assert_allclose(deletion.scores[:, -1], blank, atol=1e-5)
    np.testing.assert_allclose(insertion.scores[:, 0], blank, atol=1e-5)
    np.testing.assert_allclose(insertion.scores[:, -1], probs.max(-1), atol=1e-5)
    assert ((deletion.auc >= 0) & (deletion.auc <= 1)).all()


def test_occlusion_deletes_better_than_chance(small_model, batch):
    model = small_model.model
    found = helpers.explain(model, batch, "occlusion", window=4)
    ours = perturbation_curve(model, batch, found.maps, found.targets, "deletion")
    chance = perturbation_curve(model, batch, random_maps(batch.shape[:3]),
                                found.targets, "deletion")
    assert ours.auc.mean() < chance.auc.mean() - 0.05


def test_curve_bad_input(small_model, batch):
    maps, targets = random_maps(batch.shape[:3]), np.zeros(8, int)
    with pytest.raises(ValueError, match="mode must be 'deletion' or 'insertion'"):
        perturbation_curve(small_model.model, batch, maps, targets, "remove")
    with pytest.raises(ValueError, match=r"maps must have shape \(8, 28, 28\)"):
        perturbation_curve(small_model.model, batch, maps[:, :5], targets)


def test_max_sensitivity_is_bounded_and_zero_without_noise(small_model, batch):
    model = small_model.model
    noisy = max_sensitivity(model, batch, "gradcam", radius=0.05)
    assert noisy.shape == (8,) and ((noisy >= 0) & (noisy <= 2)).all()
    assert noisy.max() > 0
    np.testing.assert_allclose(max_sensitivity(model, batch, "saliency", radius=0.0), 0)


def test_rank_correlation():
    a = np.random.default_rng(0).random((2, 5, 5))
    np.testing.assert_allclose(rank_correlation(a, a), 1)
    assert np.isnan(rank_correlation(a, np.zeros_like(a))).all()  # constant: no ranking


def test_randomized_top_changes_only_the_top_kernels(small_model):
    model = small_model.model
    before = [w.copy() for w in model.get_weights()]
    copy = randomized_top(model, layers=2)
    kernels = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    changed = {layer.name for layer in kernels[-2:]}
    for original, fresh in zip(model.layers, copy.layers):
        same = all(np.array_equal(a, b) for a, b in
                   zip(original.get_weights(), fresh.get_weights()))
        assert same == (original.name not in changed), original.name
    for a, b in zip(before, model.get_weights()):  # the original is untouched
        np.testing.assert_array_equal(a, b)


def test_sanity_check_on_mobilenet_keeps_the_input_connected(classifier):
    pixels = np.stack([fit_photo(p.image) for p in photos(("skimage",))[:2]])
    inputs = classifier.prepare(pixels)
    random_model = randomized_top(classifier.model)
    outputs = np.asarray(random_model(inputs))
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4  # not a constant model
    bn = classifier.model.get_layer("conv_pw_13_bn").get_weights()
    for a, b in zip(bn, random_model.get_layer("conv_pw_13_bn").get_weights()):
        np.testing.assert_array_equal(a, b)
    corr = randomization_check(classifier.model, inputs, "saliency")
    assert corr.shape == (2,) and (np.abs(corr) < 1).all() and (corr != 0).all()


def test_max_sensitivity_passes_the_methods_own_options(small_model, batch):
    model = small_model.model
    # SmoothGrad's `samples` and `seed` are its own, not the noise draws'.
    found = max_sensitivity(model, batch[:2], "smoothgrad", draws=1, samples=3, seed=4)
    assert found.shape == (2,) and np.all((found >= 0) & (found <= 2))
