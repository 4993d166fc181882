"""Anchors (Ribeiro et al. 2018): Alibi's `AnchorImage`, the superpixels that
keep the prediction when the rest is replaced."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import (Context, Method, check_images, progress, rectangles, register,
                   switched_off)


def slic_grey(image: np.ndarray, n_segments: int = 20, compactness: float = 0.1,
              sigma: float = 0.5) -> np.ndarray:
    """SLIC superpixels of a grey `(H, W, 1)` / `(H, W)` or an RGB image."""
    from skimage.segmentation import slic

    image = np.asarray(image)
    rgb = image.ndim == 3 and image.shape[-1] == 3
    return slic(image if rgb else np.squeeze(image), n_segments=n_segments,
                compactness=compactness, sigma=sigma,
                channel_axis=-1 if rgb else None, start_label=0)


SEGMENTERS = {"rectangles": rectangles, "slic": slic_grey}


def anchor_explainer(predict, image_shape: tuple[int, ...], segmentation: str = "rectangles",
                     seed: int = 0, background: np.ndarray | None = None,
                     **segment_options):
    """Alibi's `AnchorImage` for images of `image_shape`, with a named segmentation.

    Absent superpixels take their mean grey, or with `background` the pixels
    of a random background image.
    """
    from alibi.explainers import AnchorImage

    if segmentation not in SEGMENTERS:
        raise ValueError(f"segmentation must be one of {list(SEGMENTERS)}, "
                         f"got {segmentation!r}")
    # Alibi ignores segmentation_kwargs for a custom function: bind them here.
    segmenter = functools.partial(SEGMENTERS[segmentation], **segment_options)
    return AnchorImage(predict, image_shape, segmentation_fn=segmenter,
                       images_background=background, seed=seed)


@functools.cache
def sampler_class() -> type:
    """Alibi's `AnchorImageSampler` perturbing all samples of a call in one step.

    alibi 0.9.6 builds them one at a time, a Python loop over every perturbed
    superpixel of every sample, and averages each superpixel again on every
    call. The same random draws give the same images and anchors.
    """
    from alibi.explainers.anchors.anchor_image import AnchorImageSampler

    class BatchedAnchorImageSampler(AnchorImageSampler):
        def perturbation(self, anchor: tuple, num_samples: int):
            segments_mask = self._choose_superpixels(num_samples, p_sample=self.p_sample)
            segments_mask[:, anchor] = 1
            if self.images_background is not None:
                chosen = np.random.choice(range(len(self.images_background)),
                                          segments_mask.shape[0], replace=True)
                fill = self.images_background[chosen]
            else:
                fill = self.fudged
            off = switched_off(segments_mask, self.segments)
            images = np.where(off[..., None], fill, self.image).astype(self.image.dtype, copy=False)
            return images, segments_mask

        @functools.cached_property
        def fudged(self) -> np.ndarray:
            """Each superpixel replaced by its mean colour, as Alibi computes it."""
            image, segments = self.image, self.segments
            fudged = image.copy()
            for x in np.unique(segments):
                fudged[segments == x] = [np.mean(image[segments == x][:, i])
                                         for i in range(image.shape[-1])]
            return fudged

    return BatchedAnchorImageSampler


@contextmanager
def batched_sampler():
    """Let `AnchorImage.explain` build its sampler from `sampler_class()`."""
    from alibi.explainers.anchors import anchor_image

    original = anchor_image.AnchorImageSampler
    anchor_image.AnchorImageSampler = sampler_class()
    try:
        yield
    finally:
        anchor_image.AnchorImageSampler = original


def coverage_samples(image: np.ndarray) -> int:
    """Alibi perturbs `coverage_samples` whole images at once (10,000 by
    default): bounded to about 0.8 GB of float32 for large images."""
    return int(min(10_000, 2e8 / image.size))


@register
@dataclass
class Anchors(Method):
    """`AnchorImage(predict, shape, segmentation_fn).explain(image, threshold=...)`
    per image; the map is 1 on the anchor's superpixels, 0 elsewhere (an
    empty anchor gives an empty map). An anchor explains the predicted class:
    other targets are refused. The perturbed images are built a call at a
    time (`sampler_class`): Alibi's own images and anchors.

    Options:
        segmentation: "rectangles" (default) or "slic".
        segment_options: its keyword arguments.
        threshold: the precision the anchor must reach (default 0.95).
        seed: Alibi's seed.
        background: images whose pixels replace absent superpixels (default:
            their mean grey).
    """

    name: ClassVar[str] = "anchors"
    any_target: ClassVar[bool] = False
    segmentation: str = "rectangles"
    segment_options: dict | None = None
    threshold: float = 0.95
    seed: int = 0
    background: np.ndarray | None = None

    def check(self, model, inputs) -> None:
        if self.segmentation not in SEGMENTERS:
            raise ValueError(f"segmentation must be one of {list(SEGMENTERS)}, "
                             f"got {self.segmentation!r}")
        if self.background is not None:
            self.background = check_images("background", self.background, model)

    def attribute(self, context: Context, inputs: np.ndarray,
                  targets: np.ndarray) -> np.ndarray:
        maps = []
        for image in progress(inputs, len(inputs), "anchors", context.progress):
            # One explainer per image: Alibi seeds at construction, so each
            # image's anchor does not depend on the others in the batch.
            explainer = anchor_explainer(context.engine.predict, inputs.shape[1:],
                                         self.segmentation, self.seed, self.background,
                                         **(self.segment_options or {}))
            with batched_sampler():
                found = explainer.explain(image, threshold=self.threshold, p_sample=0.5,
                                          tau=0.25, coverage_samples=coverage_samples(image))
            maps.append(np.isin(found.segments, found.data["raw"]["feature"]))
        return np.stack(maps).astype(np.float32)
