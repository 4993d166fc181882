"""VGG19 ready for the day its weights can be had: a local weights file (Keras's
`.weights.h5` or legacy `.h5`), black in its input space, and every photo method
through that route. Random weights stand in for ImageNet's (548 MB, offline)."""
from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

import helpers
from helpers.data import fit_photo, photos
from helpers.models import imagenet_classifier


@pytest.fixture(scope="module")
def vgg19_files(tmp_path_factory):
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG19(weights=None)
    folder = tmp_path_factory.mktemp("vgg19")
    new, legacy = folder / "random.weights.h5", folder / "random.h5"
    model.save_weights(new)
    with h5py.File(legacy, "w") as f:  # the layout of Keras's own download
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    kernel = model.get_layer("block5_conv4").get_weights()[0]
    yield kernel, new, legacy
    new.unlink()
    legacy.unlink()


@pytest.fixture(scope="module")
def vgg19(vgg19_files):
    return imagenet_classifier(vgg19_weights=vgg19_files[1])


def test_a_weights_file_loads_as_vgg19(vgg19, vgg19_files):
    assert vgg19.name == "vgg19" and vgg19.note == "This build used VGG19."
    np.testing.assert_array_equal(
        vgg19.model.get_layer("block5_conv4").get_weights()[0], vgg19_files[0])


def test_the_environment_variable_takes_a_legacy_h5(vgg19_files, monkeypatch):
    monkeypatch.setenv("XAI_BOOK_VGG19_WEIGHTS", str(vgg19_files[2]))
    classifier = imagenet_classifier()
    assert classifier.name == "vgg19"
    np.testing.assert_array_equal(
        classifier.model.get_layer("block5_conv4").get_weights()[0], vgg19_files[0])


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"vgg19_weights \(or XAI_BOOK_VGG19_WEIGHTS\) "
                                         r"must name a Keras weights file"):
        imagenet_classifier(vgg19_weights=tmp_path / "nothing.h5")


def test_black_is_black_in_vgg19s_input_space(vgg19):
    np.testing.assert_allclose(vgg19.black, [-103.939, -116.779, -123.68], atol=1e-3)
    black = vgg19.prepare(np.zeros((224, 224, 3), np.uint8))
    np.testing.assert_allclose(black, np.broadcast_to(vgg19.black, black.shape))
    white = vgg19.prepare(np.full((224, 224, 3), 255, np.uint8))
    np.testing.assert_allclose(white[0, 0, 0], vgg19.white)
    assert vgg19.reading_note.startswith("(This build used VGG19")
    assert vgg19.grid(vgg19.gradcam_layer) == "14 × 14"


SMALL = {
    "saliency": {}, "gradcam": {}, "gradcam_plus_plus": {}, "smoothgrad": {"samples": 2},
    "integrated_gradients": {"steps": 4}, "rise": {"n_masks": 16},
    "gradient_shap": {"nsamples": 4}, "lime": {"num_samples": 20},
    "occlusion": {"window": 56}, "deep_shap": {},
    "anchors": {"segmentation": "slic", "segment_options": {"n_segments": 8},
                "threshold": 0.5},
}


# Anchors only call the model's predictions (covered on MobileNet in test_explain_api);
# on VGG19 Alibi's coverage samples cost 90 s of CI.
@pytest.mark.parametrize("method", [m for m in helpers.METHODS if m != "anchors"])
def test_every_method_runs_on_vgg19(vgg19, method):
    cat, coffee = (fit_photo(p.image) for p in photos(("skimage",))[:2])
    inputs = vgg19.prepare(coffee)
    options = {**SMALL[method], "pixel_range": vgg19.pixel_range}
    if "layer" in helpers.methods.OPTIONS[method] and method != "gradient_shap":
        options["layer"] = vgg19.gradcam_layer
    if method in ("gradient_shap", "deep_shap"):  # the two that need one
        options["background"] = vgg19.prepare(cat)
    result = helpers.explain(vgg19.model, inputs, method, **options)
    assert result.maps.shape == (1, 224, 224) and np.isfinite(result.maps).all()
    assert method == "anchors" or np.abs(result.maps).max() > 0


def test_gradient_shap_at_vgg19s_tutorial_layer(vgg19):
    cat, coffee = (fit_photo(p.image) for p in photos(("skimage",))[:2])
    result = helpers.explain(vgg19.model, vgg19.prepare(coffee), "gradient_shap",
                             background=vgg19.prepare(cat), layer=vgg19.shap_layer, nsamples=4)
    assert result.maps.shape == (1, 224, 224) and np.abs(result.maps).max() > 0


def test_call_costs_are_measured_once_and_vgg19_costs_more(private_cache):
    from helpers.models import call_cost

    vgg19, mobilenet = call_cost("vgg19"), call_cost("mobilenet")
    assert 0 < mobilenet.forward < mobilenet.gradient
    assert vgg19.forward > 5 * mobilenet.forward  # ~20 GFLOPs against ~0.3
    assert call_cost("vgg19") == vgg19  # cached for this machine
    assert len(list((private_cache / "costs").glob("*.json"))) == 2
    with pytest.raises(ValueError, match="name must be one of"):
        call_cost("resnet50")


def test_samples_within_a_time_budget():
    from helpers.models import samples_within

    assert samples_within(1000, seconds=600, per_sample=0.01) == 1000
    assert samples_within(1000, seconds=600, per_sample=1.0) == 600
    assert samples_within(1000, seconds=600, per_sample=1.7) == 300
    assert samples_within(1000, seconds=10, per_sample=1.0) == 100  # at least one step
    with pytest.raises(ValueError, match="must be positive"):
        samples_within(1000, seconds=0, per_sample=1.0)
