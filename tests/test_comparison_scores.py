"""The comparison chapter's scores, read from what the last build glued:
enough images, every score a mean inside its bootstrap interval, and
constant maps counted rather than scored."""
from __future__ import annotations

import re

import pytest

from test_book import glued, number

# "0.43 [0.41, 0.45]": a mean and its bootstrap 95% interval.
INTERVAL = re.compile(r"^(-?\d+\.\d+) \[(-?\d+\.\d+), (-?\d+\.\d+)\]$")
# "7 of 50": a count out of the images looked at.
COUNT = re.compile(r"^(\d+) of (\d+)$")


@pytest.mark.book
def test_comparison_scores_come_from_enough_images():
    values = glued("comparison")
    assert int(number(values["n_images"])) >= 500, "FashionMNIST test images"
    assert int(number(values["n_anchors"])) >= 50, "anchors' images"
    assert int(number(values["n_check"])) >= 100, "randomisation check's images"
    assert int(number(glued("comparison_photos")["n_photos"])) >= 50, "photos"


@pytest.mark.book
def test_comparison_scores_are_means_within_their_intervals():
    values = {**glued("comparison"), **glued("comparison_photos")}
    keys = [k for k, v in values.items() if isinstance(v, str) and INTERVAL.match(v)]
    for key in ("random_deletion", "gradcam_corr", "gradcampp_corr", "anchors_corr",
                "smoothgrad_sensitivity", "saliency_sensitivity",
                "deletion_black_random", "insertion_blur_random",
                "photo_deletion_black_random", "photo_insertion_blur_random"):
        assert key in keys, f"{key}: {values.get(key)!r} is not 'mean [low, high]'"
    for key in keys:
        mean, low, high = map(float, INTERVAL.match(values[key]).groups())
        assert low <= mean <= high, (key, values[key])


@pytest.mark.book
def test_comparison_counts_constant_maps():
    values = glued("comparison")
    for key in ("gradcam_constant", "anchors_constant", "anchors_check_constant"):
        found = COUNT.match(str(values[key]))
        assert found, f"{key}: {values[key]!r} is not 'k of n'"
        k, n = map(int, found.groups())
        assert 0 <= k <= n and n >= 50, (key, values[key])
