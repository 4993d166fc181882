"""Gradient SHAP through the engine: shap.GradientExplainer's own values, traced once."""
from __future__ import annotations

import numpy as np
import pytest

import helpers
from helpers.data import preprocess
from helpers.engine import scored_model, score_gradients


@pytest.mark.parametrize("score, smoothing", [("logit", 0.0), ("probability", 0.1)])
def test_gradient_shap_gives_shaps_own_values(small_model, fashion, score, smoothing):
    """Each image's map is shap's `shap_values` for that image alone, same rseed."""
    import shap

    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:3]), preprocess(x_train[:12])
    targets = np.array([3, 0, 7])
    ours = helpers.explain(model, images, "gradient_shap", targets, background=background,
                           nsamples=24, seed=4, local_smoothing=smoothing, score=score)
    explainer = shap.GradientExplainer(scored_model(model, score), background,
                                       local_smoothing=smoothing)
    theirs = np.concatenate([
        np.asarray(explainer.shap_values(images[i:i + 1], nsamples=24, rseed=4,
                                         ranked_outputs=targets[i:i + 1, None],
                                         output_rank_order="custom")[0]).sum(-2)[..., 0]
        for i in range(3)])
    assert theirs.shape == ours.maps.shape
    np.testing.assert_allclose(ours.maps, theirs, rtol=1e-4, atol=1e-6)


def test_gradient_shap_traces_once_per_model(small_model, fashion):
    model = small_model.model
    (x_train, _), (x_test, _) = fashion[0]
    images, background = preprocess(x_test[:4]), preprocess(x_train[:6])
    helpers.explain(model, images[:2], "gradient_shap", [1, 2], background=background,
                    nsamples=4)
    traced = score_gradients(scored_model(model, "logit")).experimental_get_tracing_count()
    helpers.explain(model, images, "gradient_shap", [5, 6, 7, 8], background=background[:3],
                    nsamples=9)
    assert score_gradients(scored_model(model, "logit")).experimental_get_tracing_count() \
        == traced
