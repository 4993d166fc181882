"""LIME (Ribeiro et al. 2016): a linear model of the class score over
superpixels switched on and off, `lime_image.LimeImageExplainer`."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Context, Method, progress, rectangles, register, switched_off


@contextmanager
def no_progress_bar():
    """lime 0.2.0.1 always draws a tqdm bar per explanation and has no option
    to stop it: silence it while lime's own explainer runs."""
    from lime import lime_image

    original = lime_image.tqdm
    lime_image.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        lime_image.tqdm = original


@functools.cache
def explainer_class() -> type:
    """`LimeImageExplainer` building each batch of perturbed images in one step.

    lime 0.2.0.1 builds them one at a time, a Python loop over every
    switched-off superpixel of every sample (most of LIME's time on small
    images), and draws a tqdm bar it has no option to stop. The same random
    draw gives the same images, batches and explanation.
    """
    from lime import lime_image

    class BatchedLimeImageExplainer(lime_image.LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn,
                        num_samples, batch_size=10):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features)\
                .reshape((num_samples, n_features))
            data[0, :] = 1
            labels = []
            for start in range(0, num_samples, batch_size):
                off = switched_off(data[start:start + batch_size], segments)
                labels.append(classifier_fn(np.where(off[..., None], fudged_image, image)))
            return data, np.concatenate(labels)

    return BatchedLimeImageExplainer


def lime_map(explanation, label: int) -> np.ndarray:
    """LIME's superpixel weights for `label`, painted back onto the pixels."""
    weights = np.zeros(explanation.segments.max() + 1, np.float32)
    for segment, weight in explanation.local_exp[label]:
        weights[segment] = weight
    return weights[explanation.segments]


@register
@dataclass
class Lime(Method):
    """`LimeImageExplainer(random_state=seed).explain_instance(image, predict,
    labels=(target,), num_samples=...)` per image, switched-off superpixels
    black; the map paints each superpixel with its weight. The perturbed
    images are built a batch at a time (`explainer_class`): lime's own images.

    Options:
        num_samples: perturbed images per explanation (default 1000).
        segmentation: a `SegmentationAlgorithm` name ("quickshift", "slic",
            "felzenszwalb"); default: 4x4 squares below 64 px, else quickshift.
        segment_options: its keyword arguments (quickshift default:
            kernel_size=4, max_dist=200, ratio=0.2).
        seed: LIME's random state.
    """

    name: ClassVar[str] = "lime"
    num_samples: int = 1000
    segmentation: str | None = None
    segment_options: dict | None = None
    seed: int = 0

    def segmenter(self, small: bool, low, high):
        """The segmentation function LIME is given."""
        if self.segmentation is None and small:
            return functools.partial(rectangles, size=(4, 4))
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        options = self.segment_options or dict(kernel_size=4, max_dist=200, ratio=0.2)
        algorithm = SegmentationAlgorithm(self.segmentation or "quickshift", **options)
        return lambda image: algorithm((image - low) / (high - low))  # colours in [0, 1]

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        engine, grey = context.engine, inputs.shape[-1] == 1
        # LIME hands RGB copies of grey images to the model: back to one channel.
        def predict(batch):
            return engine.predict(batch[..., :1] if grey else batch)

        segmenter = self.segmenter(inputs.shape[1] < 64, context.low, context.high)
        maps = []
        for image, target in progress(zip(inputs, targets), len(inputs), "lime",
                                      context.progress):
            explainer = explainer_class()(random_state=self.seed)
            found = explainer.explain_instance(
                image[..., 0] if grey else image, predict, labels=(int(target),),
                top_labels=None, hide_color=context.low, num_samples=self.num_samples,
                batch_size=min(self.num_samples, engine.batch_size),
                segmentation_fn=segmenter, random_seed=self.seed)
            maps.append(lime_map(found, int(target)))
        return np.stack(maps)
