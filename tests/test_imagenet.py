"""The ImageNet classifier, the photos, Grad-CAM, LIME and Gradient SHAP."""
from __future__ import annotations

import os
import subprocess
import sys

import eli5
import keras
import numpy as np
import pytest

from helpers.data import fit_photo, imagenet_names, photos
from helpers.explain import (grad_cam, gradcam_layer, gradient_shap,
                             lime_explain, lime_map)
from helpers.models import imagenet_classifier


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"prefer must be .* \['vgg19', 'mobilenet'\], got \('resnet',\)"):
        imagenet_classifier(prefer=("resnet",))
    with pytest.raises(ValueError, match="prefer must be"):
        imagenet_classifier(prefer="vgg19")


def test_vgg19_unavailable_falls_back_visibly(mirror, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_PROXY", "no_proxy")}
    env.update(KERAS_HOME=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")
    code = ("from helpers.models import imagenet_classifier as f; c = f(); "
            "print('NAME', c.name, c.gradcam_layer)")
    result = subprocess.run([sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("This build used MobileNet v1 0.75 (224 px) because VGG19's "
            "weights could not be had") in result.stdout
    assert "NAME mobilenet conv_pw_13_relu" in result.stdout


def test_photos_and_their_labels(mirror):
    found = photos()
    by_source = {s: [p for p in found if p.source.startswith(s)]
                 for s in ("scikit-image", "ImageNet val20", "ImageNet imagenet50")}
    assert [len(v) for v in by_source.values()] == [5, 20, 50]
    assert all(p.label is not None for p in by_source["ImageNet val20"])
    assert sum(p.label is not None for p in by_source["ImageNet imagenet50"]) == 7
    assert all(p.image.ndim == 3 and p.image.shape[2] == 3 and p.image.dtype == np.uint8
               for p in found)


def test_predictions_and_offline_decoding(classifier, mirror):
    val20 = photos(("val20",))
    probs = classifier.predict(classifier.prepare([p.image for p in val20]))
    assert probs.shape == (20, 1000)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    top1 = np.mean(probs.argmax(1) == [p.label for p in val20])
    assert top1 >= 0.7  # the mirror's note: 16/20 top-1 for this model
    decoded = classifier.decode(np.eye(1000, dtype=np.float32)[[281, 967]], top=1)
    assert [row[0][0] for row in decoded] == ["tabby", "espresso"]
    assert imagenet_names()[281] == "tabby"


def test_bad_photos_are_clear_errors(classifier):
    with pytest.raises(ValueError, match=r"image must be an RGB photo of shape \(H, W, 3\), got \(50, 60\)"):
        classifier.prepare([np.zeros((50, 60), np.uint8)])
    with pytest.raises(ValueError, match=r"image must be an RGB photo .* got \(50, 60, 4\)"):
        classifier.prepare(np.zeros((50, 60, 4), np.uint8))
    # Not 224 px: resized, not an error.
    assert classifier.prepare(np.zeros((300, 500, 3), np.uint8)).shape == (1, 224, 224, 3)
    with pytest.raises(ValueError, match=r"inputs must be a batch of shape \(n, 224, 224, 3\)"):
        classifier.predict(np.zeros((1, 100, 100, 3), np.float32))
    assert fit_photo(np.zeros((224, 224, 3), np.uint8)).shape == (224, 224, 3)


def test_gradcam_agrees_with_eli5_on_a_small_model(small_model, fashion):
    ((_, _), (x_test, _)), _ = fashion
    model = small_model.model
    inputs = x_test[:6, ..., None].astype(np.float32) / 255
    layer = gradcam_layer(model)
    assert isinstance(model.get_layer(layer), keras.layers.Conv2D)
    targets = np.asarray(model(inputs)).argmax(1)
    ours = grad_cam(model, inputs, targets, layer=layer)
    theirs = np.stack([eli5.explain_prediction(model, inputs[i:i + 1], layer=layer,
                                               targets=[int(targets[i])]).targets[0].heatmap
                       for i in range(len(inputs))])
    assert ours.shape == theirs.shape == (6, 14, 14)
    assert np.abs(ours - theirs).max() < 1e-4
    # Normalised to [0, 1]; a map is all zero only when the ReLU removes it all.
    assert ours.min() >= 0 and ours.max() <= 1
    assert (ours.max(axis=(1, 2)) > 0.99).sum() >= 4


def test_gradcam_layer_skips_1x1_maps(classifier):
    assert gradcam_layer(classifier.model) == "conv_pw_13_relu"


def test_gradcam_needs_a_convolutional_layer():
    dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="model must have a convolutional layer"):
        grad_cam(dense, np.zeros((1, 8, 8, 1), np.float32))


def test_lime_is_seeded_and_batched(classifier):
    image = fit_photo(photos(("skimage",))[1].image)  # coffee
    calls = []

    def predict(batch):
        calls.append(len(batch))
        return classifier.predict_pixels(batch)

    runs = [lime_explain(predict, image, top_labels=2, num_samples=100,
                         batch_size=50, seed=3, kernel_size=4, max_dist=200,
                         ratio=0.2) for _ in range(2)]
    assert runs[0].top_labels == runs[1].top_labels
    assert runs[0].local_exp == runs[1].local_exp
    assert calls == [50, 50] * 2  # 100 samples (the image among them), 2 batches
    weights = lime_map(runs[0], runs[0].top_labels[0])
    assert weights.shape == (224, 224) and np.abs(weights).max() > 0
    with pytest.raises(ValueError, match="image must be an RGB image"):
        lime_explain(predict, image[..., 0])


def test_gradient_shap_ranked_outputs(classifier):
    images = [fit_photo(p.image) for p in photos(("skimage",))[:2]]
    inputs = classifier.prepare(images)
    result = gradient_shap(classifier.model, classifier.shap_layer, inputs,
                           inputs, ranked_outputs=3, nsamples=8, seed=0)
    assert len(result.values) == 3 and result.values[0].shape == (2, 28, 28, 192)
    top = np.argsort(classifier.predict(inputs), axis=1)[:, ::-1][:, :3]
    np.testing.assert_array_equal(result.ranked, top)
    again = gradient_shap(classifier.model, classifier.shap_layer, inputs,
                          inputs, ranked_outputs=3, nsamples=8, seed=0)
    np.testing.assert_array_equal(again.values[0], result.values[0])
