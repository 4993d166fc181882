"""Localisation scores: does a map point at the object a mask marks? With bootstrap intervals.

Every score is per image, in [0, 1], higher is better, and NaN where it is
undefined: a constant map has no top pixel and no ranking, so it is reported
as NaN (find such maps with `constant_maps`), never silently scored. The
scores follow Quantus 0.6 (`PointingGame`, `RelevanceMassAccuracy`,
`RelevanceRankAccuracy` with `abs=False, normalise=False`); where they differ
(negative relevance in `relevance_mass`, ties in `relevance_rank`) the
docstring says how.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["pointing_game", "relevance_mass", "relevance_rank", "constant_maps",
           "Interval", "bootstrap", "paired_difference", "differs"]


def _check(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`maps` as float64 (n, H*W) and `masks` as bool (n, H*W), or one clear ValueError."""
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must have shape (n, H, W) with n >= 1, got {maps.shape}")
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {maps.shape}, got {masks.shape}")
    if not np.issubdtype(maps.dtype, np.number) or np.issubdtype(maps.dtype, np.complexfloating):
        raise ValueError(f"maps must be real numbers, got dtype {maps.dtype}")
    bad = np.flatnonzero(~np.isfinite(maps).reshape(len(maps), -1).all(1))
    if bad.size:
        raise ValueError(f"maps must be finite; images {bad.tolist()} hold NaN or inf")
    if masks.dtype != bool:
        if not np.isin(masks, (0, 1)).all():
            raise ValueError(f"masks must be boolean (or 0/1), got dtype {masks.dtype}")
        masks = masks.astype(bool)
    n = len(maps)
    masks = masks.reshape(n, -1)
    empty = np.flatnonzero(~masks.any(1))
    if empty.size:
        raise ValueError(f"masks must not be empty; images {empty.tolist()} have no pixel set")
    return maps.reshape(n, -1).astype(np.float64), masks


def constant_maps(maps: np.ndarray) -> np.ndarray:
    """Per image: True where the map is constant (no top pixel, no ranking: scored NaN)."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (n, H, W), got {maps.shape}")
    flat = maps.reshape(len(maps), -1)
    return flat.min(1) == flat.max(1)


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, 1 if the map's top pixel lies in the mask, else 0.

    Zhang et al. (2018), 'Top-down neural attention by excitation backprop'.

    Ties: as in Quantus's `PointingGame`, a hit if *any* pixel sharing the
    maximum lies in the mask (Zhang et al. do not say; their 15-pixel
    tolerance is not applied). A constant map, all pixels tied, is NaN.
    """
    maps, masks = _check(maps, masks)
    top = maps == maps.max(1, keepdims=True)
    hit = (top & masks).any(1).astype(np.float64)
    return np.where(maps.min(1) == maps.max(1), np.nan, hit)


def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, positive relevance inside the mask / positive relevance in the whole map.

    Arras, Osman & Samek (2022), 'CLEVR-XAI: a benchmark dataset for the
    ground truth evaluation of neural network explanations' (relevance mass accuracy).

    Negative relevance is clipped to 0 first (positive relevance, as Quantus's
    docstring also says); Quantus's `RelevanceMassAccuracy` code, though,
    uses the map as given (sum inside / sum overall),
    which equals this score for a non-negative map (or Quantus fed
    `np.maximum(maps, 0)`), but not for a signed one: there it can leave [0, 1].
    NaN for a constant map, and for a map with no positive relevance.
    """
    maps, masks = _check(maps, masks)
    positive = np.maximum(maps, 0.0)
    total = positive.sum(1)
    inside = np.where(masks, positive, 0.0).sum(1)
    undefined = (total == 0) | (maps.min(1) == maps.max(1))
    return np.where(undefined, np.nan, inside / np.where(total > 0, total, 1.0))


def relevance_rank(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, with K = mask size, the fraction of the K top-ranked pixels in the mask.

    Arras, Osman & Samek (2022), CLEVR-XAI (relevance rank accuracy).

    Relevance is ranked as given (signed). Ties across the K-th place are
    split fairly: the tied pixels share the places left, so the score is its
    mean over random tie orders. Quantus's `RelevanceRankAccuracy` breaks ties
    by `np.argsort` order instead; without ties the two agree. A constant map is NaN.
    """
    maps, masks = _check(maps, masks)
    k = masks.sum(1)
    kth = -np.sort(-maps, axis=1)[np.arange(len(maps)), k - 1]  # the K-th largest value
    above, tied = maps > kth[:, None], maps == kth[:, None]
    places = k - above.sum(1)  # places in the top K left for the tied pixels
    hits = (above & masks).sum(1) + places * (tied & masks).sum(1) / tied.sum(1)
    return np.where(maps.min(1) == maps.max(1), np.nan, hits / k)


class Interval(NamedTuple):
    """A mean over images and its percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int         # images used
    dropped: int   # NaN values left out (e.g. constant maps)

    def __str__(self) -> str:
        """'0.43 [0.41, 0.45]': the mean and its interval."""
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _finite(values: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """`values` as a 1-D float array without its NaNs, and how many were dropped."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per image), got shape {values.shape}")
    if np.isinf(values).any():
        raise ValueError(f"{name} must not hold inf")
    keep = ~np.isnan(values)
    if keep.sum() < 2:
        raise ValueError(f"{name} must hold at least 2 values that are not NaN, got {keep.sum()}")
    return values[keep], int((~keep).sum())


def _interval(values: np.ndarray, dropped: int, n_resamples: int, confidence: float,
              seed: int) -> Interval:
    """Percentile bootstrap of the mean of `values` with scipy.stats.bootstrap."""
    from scipy.stats import bootstrap as scipy_bootstrap

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    mean = float(values.mean())
    if values.min() == values.max():  # every resample has the same mean
        return Interval(mean, mean, mean, len(values), dropped)
    found = scipy_bootstrap((values,), np.mean, n_resamples=n_resamples,
                            confidence_level=confidence, method="percentile",
                            vectorized=True, rng=np.random.default_rng(seed))
    ci = found.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), len(values), dropped)


def bootstrap(values: np.ndarray, n_resamples: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> Interval:
    """The mean of `values` over images and its percentile-bootstrap interval.

    Efron & Tibshirani (1993), 'An introduction to the bootstrap'.

    Images are resampled with replacement; NaN values are dropped first and
    counted in `dropped`.
    """
    values, dropped = _finite(values, "values")
    return _interval(values, dropped, n_resamples, confidence, seed)


def paired_difference(a: np.ndarray, b: np.ndarray, n_resamples: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean of a - b over the same images and its percentile-bootstrap interval.

    Efron & Tibshirani (1993), 'An introduction to the bootstrap'.

    The per-image differences are resampled, so the images' shared difficulty
    cancels. An image where either score is NaN is dropped and counted.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"b must have a's shape {a.shape} (the same images), got {b.shape}")
    values, dropped = _finite(a - b, "a - b")
    return _interval(values, dropped, n_resamples, confidence, seed)


def differs(interval: Interval) -> bool:
    """True if 0 lies outside the interval: the difference is significant at its level."""
    return bool(interval.low > 0 or interval.high < 0)
