"""helpers.localisation: pointing game, relevance mass and rank against Quantus; bootstrap."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.localisation import (Interval, bootstrap, constant_maps, differs,
                                  paired_difference, pointing_game, relevance_mass,
                                  relevance_rank)

N, H, W = 60, 10, 12


@pytest.fixture(scope="module")
def quantus():
    """Quantus (PyPI `quantus`, the test extra), the independent implementation."""
    return pytest.importorskip("quantus")


def by_quantus(quantus, name: str, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Quantus's metric `name` on raw maps (abs=False, normalise=False), per image."""
    n, h, w = maps.shape
    metric = getattr(quantus, name)(abs=False, normalise=False, disable_warnings=True)
    scores = metric(model=None, x_batch=np.zeros((n, 1, h, w), np.float32),
                    y_batch=np.zeros(n, int), a_batch=maps[:, None].astype(np.float64),
                    s_batch=masks[:, None].astype(np.float32), channel_first=True)
    return np.asarray(scores, dtype=np.float64)


def random_case(seed: int, levels: int | None = None, signed: bool = False):
    """Random maps (continuous, or rounded to `levels` values: many ties) and
    random non-empty masks of varied density (a blob plus scattered pixels)."""
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(N, H, W)) if signed else rng.random((N, H, W))
    if levels:
        maps = np.floor(maps * levels) / levels
    density = rng.uniform(0.02, 0.6, (N, 1, 1))
    masks = rng.random((N, H, W)) < density
    masks[:, 2:5, 3:7] |= rng.random((N, 1, 1)) < 0.5
    masks[:, 0, 0] |= ~masks.reshape(N, -1).any(1)
    # No constant maps here: they are NaN by design (tested on their own).
    assert not constant_maps(maps).any()
    return maps, masks


# ---- hand-made cases -------------------------------------------------------

def one(map_rows, mask_rows):
    return np.array([map_rows], float), np.array([mask_rows], bool)


def test_pointing_game_by_hand():
    inside = one([[0, 1], [5, 2]], [[0, 0], [1, 0]])
    outside = one([[0, 1], [5, 2]], [[1, 1], [0, 1]])
    assert pointing_game(*inside)[0] == 1.0 and pointing_game(*outside)[0] == 0.0
    # Two pixels share the maximum, one inside: a hit (Quantus's rule).
    tie = one([[5, 1], [5, 2]], [[0, 0], [1, 0]])
    assert pointing_game(*tie)[0] == 1.0
    tie_out = one([[5, 1], [5, 2]], [[0, 1], [0, 1]])
    assert pointing_game(*tie_out)[0] == 0.0


def test_relevance_mass_and_rank_by_hand():
    maps, masks = one([[2, -1], [1, 0]], [[1, 1], [0, 0]])
    assert relevance_mass(maps, masks)[0] == pytest.approx(2 / 3)  # -1 clipped
    assert relevance_rank(maps, masks)[0] == pytest.approx(1 / 2)  # top 2: {2, 1}
    # K = 2; pixel 3.0 is in, two pixels tie at 1.0 for the one place left,
    # one of them inside: 1 + 1/2 hits of 2.
    maps, masks = one([[3, 1], [1, 0]], [[1, 1], [0, 0]])
    assert relevance_rank(maps, masks)[0] == pytest.approx(0.75)
    maps, masks = one([[-1, -2], [-3, -4]], [[1, 0], [0, 0]])
    assert np.isnan(relevance_mass(maps, masks)[0])  # no positive relevance
    assert relevance_rank(maps, masks)[0] == 1.0


def test_constant_map_is_nan_and_flagged():
    maps = np.stack([np.full((H, W), 0.3), np.arange(H * W, dtype=float).reshape(H, W)])
    masks = np.zeros((2, H, W), bool)
    masks[:, -1, -1] = True  # the second map's top pixel
    assert constant_maps(maps).tolist() == [True, False]
    for score, expected in ((pointing_game, 1.0), (relevance_rank, 1.0),
                            (relevance_mass, (H * W - 1) / (H * W * (H * W - 1) / 2))):
        found = score(maps, masks)
        assert np.isnan(found[0]) and found[1] == pytest.approx(expected), score.__name__


@pytest.mark.parametrize("maps, masks, word", [
    (np.zeros((2, 4)), np.ones((2, 4), bool), "maps"),
    (np.zeros((2, 4, 4)), np.ones((2, 4, 5), bool), "masks"),
    (np.zeros((2, 4, 4)), np.eye(4, dtype=bool)[None].repeat(2, 0) * 2, "masks"),
    (np.zeros((2, 4, 4)), np.stack([np.eye(4, dtype=bool), np.zeros((4, 4), bool)]),
     r"masks must not be empty; images \[1\]"),
    (np.where(np.eye(4), np.nan, 0)[None], np.ones((1, 4, 4), bool), r"maps must be finite"),
])
def test_clear_errors(maps, masks, word):
    for score in (pointing_game, relevance_mass, relevance_rank):
        with pytest.raises(ValueError, match=word):
            score(maps, masks)


# ---- against Quantus -------------------------------------------------------

def test_pointing_game_matches_quantus(quantus):
    for maps, masks in (random_case(0), random_case(1, levels=4)):  # the second: ties
        np.testing.assert_array_equal(pointing_game(maps, masks),
                                      by_quantus(quantus, "PointingGame", maps, masks))


def test_relevance_mass_matches_quantus(quantus):
    maps, masks = random_case(2)  # non-negative: clipping changes nothing
    np.testing.assert_allclose(relevance_mass(maps, masks),
                               by_quantus(quantus, "RelevanceMassAccuracy", maps, masks))
    maps, masks = random_case(3, signed=True)  # Quantus on the positive part
    ours = relevance_mass(maps, masks)
    np.testing.assert_allclose(ours, by_quantus(quantus, "RelevanceMassAccuracy",
                                                np.maximum(maps, 0), masks))
    # Quantus on the signed maps themselves: not the paper's score.
    raw = by_quantus(quantus, "RelevanceMassAccuracy", maps, masks)
    assert not np.allclose(ours, raw) and ((raw < 0) | (raw > 1)).any()
    assert ((ours >= 0) & (ours <= 1)).all()


def test_relevance_rank_matches_quantus(quantus):
    for maps, masks in (random_case(4), random_case(5, signed=True)):
        np.testing.assert_allclose(relevance_rank(maps, masks),
                                   by_quantus(quantus, "RelevanceRankAccuracy", maps, masks))


def test_relevance_rank_ties_are_the_mean_over_tie_orders():
    maps, masks = random_case(6, levels=3)
    rng = np.random.default_rng(0)
    k = masks.reshape(N, -1).sum(1)
    flat, inside = maps.reshape(N, -1), masks.reshape(N, -1)
    draws = []
    for _ in range(400):  # rank by value, ties broken by a random key
        order = np.lexsort((rng.random(flat.shape), -flat), axis=1)
        ranked = np.take_along_axis(inside, order, 1)
        draws.append([ranked[i, :k[i]].mean() for i in range(N)])
    np.testing.assert_allclose(relevance_rank(maps, masks), np.mean(draws, 0), atol=0.03)


def wrong_pointing_game(maps, masks):
    """First-index argmax: a tie counts only its first pixel."""
    flat = maps.reshape(len(maps), -1)
    return masks.reshape(len(maps), -1)[np.arange(len(maps)), flat.argmax(1)].astype(float)


def test_the_comparisons_catch_wrong_semantics(quantus):
    maps, masks = random_case(1, levels=4)
    assert not np.array_equal(wrong_pointing_game(maps, masks),
                              by_quantus(quantus, "PointingGame", maps, masks))
    maps, masks = random_case(4)
    reference = by_quantus(quantus, "RelevanceRankAccuracy", maps, masks)
    fixed_k = [np.isin(np.argsort(-m.ravel())[:10], np.flatnonzero(s)).mean()
               for m, s in zip(maps, masks)]
    assert not np.allclose(fixed_k, reference)
    # Mass over |map| instead of the positive part.
    maps, masks = random_case(3, signed=True)
    wrong = relevance_mass(np.abs(maps), masks)
    assert not np.allclose(wrong, by_quantus(quantus, "RelevanceMassAccuracy",
                                             np.maximum(maps, 0), masks))


# ---- bootstrap -------------------------------------------------------------

def hand_bootstrap(values, n_resamples, confidence, seed):
    """Percentile bootstrap of the mean, written out."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_resamples, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    return np.percentile(means, [tail, 100 - tail])


def test_bootstrap_matches_a_hand_written_one():
    values = np.random.default_rng(0).gamma(2.0, size=80)
    found = bootstrap(values, n_resamples=4000, confidence=0.9)
    low, high = hand_bootstrap(values, 4000, 0.9, seed=1)
    width = high - low
    assert found.mean == pytest.approx(values.mean())
    assert abs(found.low - low) < 0.1 * width and abs(found.high - high) < 0.1 * width
    assert found.n == 80 and found.dropped == 0
    assert bootstrap(values, n_resamples=4000, confidence=0.9) == found  # seeded


def test_bootstrap_drops_nans_and_counts_them():
    values = np.random.default_rng(1).random(30)
    with_nans = np.concatenate([values, [np.nan] * 3])
    found = bootstrap(with_nans)
    assert (found.n, found.dropped) == (30, 3)
    assert found._replace(dropped=0) == bootstrap(values)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap(np.array([np.nan, 1.0]))


def test_bootstrap_contains_the_mean_narrows_with_n_and_covers():
    rng = np.random.default_rng(2)
    small, large = bootstrap(rng.random(50)), bootstrap(rng.random(800))
    for found in (small, large):
        assert found.low < found.mean < found.high
    assert (large.high - large.low) < (small.high - small.low) / 2  # about 1/4
    # Coverage of the true mean 0.5 over 200 data sets of 40 uniform values;
    # a wrong interval (mean ± 1.96 sd of the values, not of the mean) covers 100%.
    samples = rng.random((200, 40))
    found = [bootstrap(s, n_resamples=1000, seed=i) for i, s in enumerate(samples)]
    coverage = np.mean([f.low <= 0.5 <= f.high for f in found])
    assert 0.88 <= coverage <= 0.99, coverage
    wrong = np.mean([abs(s.mean() - 0.5) <= 1.96 * s.std() for s in samples])
    assert not 0.88 <= wrong <= 0.99


def test_paired_difference():
    rng = np.random.default_rng(3)
    difficulty = rng.random(100)  # shared by both methods, image by image
    a = difficulty + 0.05 + rng.normal(0, 0.02, 100)
    b = difficulty.copy()
    found = paired_difference(a, b)
    assert found.mean == pytest.approx(0.05, abs=0.01) and differs(found)
    low, high = hand_bootstrap(a - b, 2000, 0.95, seed=1)
    assert abs(found.low - low) < 0.1 * (high - low) and abs(found.high - high) < 0.1 * (high - low)
    # The unpaired intervals overlap: difficulty hides the difference.
    ia, ib = bootstrap(a), bootstrap(b)
    assert ia.low < ib.high
    same = paired_difference(difficulty + rng.normal(0, 0.02, 100), difficulty)
    assert not differs(same)
    a[[0, 5]], b[7] = np.nan, np.nan
    assert paired_difference(a, b)[3:] == (97, 3)
    with pytest.raises(ValueError, match="b must have"):
        paired_difference(a, b[:-1])


def test_differs():
    assert differs(Interval(0.1, 0.05, 0.2, 10, 0))
    assert differs(Interval(-0.1, -0.2, -0.01, 10, 0))
    assert not differs(Interval(0.0, -0.1, 0.1, 10, 0))
    assert not differs(Interval(0.1, 0.0, 0.2, 10, 0))
