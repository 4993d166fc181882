"""Scores for explanations: faithfulness, stability, and a sanity check."""
from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from scipy.stats import spearmanr

from .engine import Engine
from .methods import Attribution, explain, get
from .methods.deep_shap import deep_shap


class Curve(NamedTuple):
    """Target-class probability as pixels are deleted (or inserted) in order."""

    fractions: np.ndarray  # (steps + 1,) fraction of pixels changed
    scores: np.ndarray     # (n, steps + 1)
    auc: np.ndarray        # (n,) mean over the curve (trapezoid rule)


def perturbation_curve(model: keras.Model, inputs: np.ndarray, maps: np.ndarray,
                       targets: np.ndarray, mode: str = "deletion",
                       baseline: float | np.ndarray = 0.0, steps: int = 20,
                       engine: Engine | None = None) -> Curve:
    """Deletion: set the most-attributed pixels to `baseline` first.

    Insertion: start from an all-`baseline` image and restore them first.
    Lower deletion AUC and higher insertion AUC mean a more faithful map.
    `baseline`: a value (or one per channel), or images like `inputs` (e.g.
    `blurred(inputs)`: deleted pixels then lose their detail, not their colour).
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    n, h, w = maps.shape
    if inputs.shape[:3] != (n, h, w):
        raise ValueError(f"maps must have shape {inputs.shape[:3]}, got {maps.shape}")
    engine = engine or Engine(model)
    fractions = np.linspace(0, 1, steps + 1)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    # rank[i, p]: the step at which pixel p of image i changes.
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)
    counts = np.round(fractions * h * w).astype(int)
    baseline = np.asarray(baseline, np.float32)
    per_image = baseline.shape == inputs.shape
    if baseline.ndim > 1 and not per_image:
        raise ValueError(f"baseline must be a value, one per channel, or images of shape "
                         f"{inputs.shape}, got shape {baseline.shape}")
    scores = np.zeros((n, steps + 1), np.float32)
    # Images per round: their perturbed copies fill about one model call.
    step = max(1, engine.batch_size // (steps + 1))
    for start in range(0, n, step):
        part = slice(start, start + step)
        changed = rank[part, None, :] < counts[None, :, None]
        changed = changed.reshape(-1, steps + 1, h, w, 1)
        image = inputs[part, None]
        base = baseline[part, None] if per_image else baseline
        batch = (np.where(changed, base, image) if mode == "deletion"
                 else np.where(changed, image, base))
        scores[part] = engine.target_scores(
            batch.reshape(-1, *inputs.shape[1:]),
            np.repeat(targets[part], steps + 1)).reshape(-1, steps + 1)
    auc = (scores[:, 1:] + scores[:, :-1]).mean(axis=1) / 2
    return Curve(fractions, scores, auc)


def blurred(inputs: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """The images blurred (Gaussian, `sigma` pixels): a baseline that removes
    detail but keeps colour, the other common choice besides black."""
    from .methods.integrated_gradients import make_baseline

    return make_baseline("blur", inputs, sigma=sigma)[0]


def random_maps(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Uniform random attributions: the chance level for every score."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def max_sensitivity(model: keras.Model, inputs: np.ndarray, method: str,
                    radius: float = 0.02, draws: int = 3, noise_seed: int = 0,
                    reference: Attribution | None = None, **options) -> np.ndarray:
    """Per image: max over `draws` noisy copies (uniform in ±`radius`) of
    ||map(x + d) - map(x)||, relative to the larger of the two maps' norms, so
    it lies in [0, 2] (Yeh et al. 2019), for `targets` (default: predicted).
    `reference`: the maps of `inputs` already computed with these options
    (else computed); other keywords are the method's options (its own `seed`,
    `samples`, ... pass through)."""
    targets = options.pop("targets", None)
    reference = reference or explain(model, inputs, method, targets, **options)
    rng = np.random.default_rng(noise_seed)
    worst = np.zeros(len(inputs))
    flat = reference.maps.reshape(len(inputs), -1)
    for _ in range(draws):
        noisy = inputs + rng.uniform(-radius, radius, inputs.shape).astype(np.float32)
        # A method that explains the prediction only follows the noisy input's.
        maps = explain(model, noisy, method,
                       targets=reference.targets if get(method).any_target else None,
                       **options)
        other = maps.maps.reshape(len(inputs), -1)
        # A map can be all zero (Grad-CAM's ReLU): scale by the larger norm.
        size = np.maximum(np.linalg.norm(flat, axis=1), np.linalg.norm(other, axis=1))
        change = np.linalg.norm(other - flat, axis=1)
        worst = np.maximum(worst, np.where(size > 0, change / np.maximum(size, 1e-30), 0.0))
    return worst


def randomized_top(model: keras.Model, layers: int = 2, seed: int = 0) -> keras.Model:
    """A copy of `model` whose top `layers` layers with a kernel (dense or
    convolution) get fresh Glorot-uniform kernels and zero biases."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    # Normalisation layers are left alone: zeroing a BatchNorm scale would cut
    # the input off the output and make every map constant.
    top = [layer for layer in copy.layers if getattr(layer, "kernel", None) is not None]
    rng = np.random.default_rng(seed)
    for layer in top[-layers:]:
        for weight in layer.weights:
            shape = tuple(weight.shape)
            scale = np.sqrt(6 / (np.prod(shape[:-1]) + shape[-1])) if len(shape) > 1 else 0.0
            weight.assign(rng.uniform(-scale, scale, shape).astype(np.float32))
    return copy


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of |a| and |b|, image by image; NaN where either
    map is constant (no ranking to correlate: not a pass, not a failure)."""
    return np.array([np.nan if np.ptp(x) == 0 or np.ptp(y) == 0 else
                     spearmanr(np.abs(x).ravel(), np.abs(y).ravel())[0]
                     for x, y in zip(a, b)])


# The background sizes the CIFAR-10 chapter measures Deep SHAP's agreement at.
BACKGROUND_SIZES = (50, 100, 250, 500, 1000)


class Agreement(NamedTuple):
    """Deep SHAP under two random backgrounds of one size, per image."""

    size: int
    seconds_per_image: float
    rank_correlation: np.ndarray  # (n,) Spearman of |map| between the two
    total_ratio: np.ndarray       # (n,) larger / smaller total |attribution|


def background_agreement(model: keras.Model, images: np.ndarray, pool: np.ndarray,
                         size: int, seeds: tuple[int, int] = (0, 1),
                         score: str = "logit") -> Agreement:
    """Deep SHAP maps of each image's predicted class against two backgrounds
    of `size` images drawn from `pool` with two seeds: how far they agree.

    Deep SHAP is an average over the background, so the two maps should
    agree, and agree better as `size` grows.
    """
    import time

    if not 1 <= size <= len(pool):
        raise ValueError(f"size must be between 1 and {len(pool)}, got {size}")
    maps, seconds = [], 0.0
    for seed in seeds:
        background = pool[np.random.default_rng(seed).permutation(len(pool))[:size]]
        start = time.perf_counter()
        found = deep_shap(model, background, images, ranked_outputs=1, score=score)
        seconds += time.perf_counter() - start
        maps.append(found.values[..., 0].sum(-1))
    totals = np.stack([np.abs(m).reshape(len(images), -1).sum(1) for m in maps])
    ratio = totals.max(0) / np.maximum(totals.min(0), 1e-30)
    return Agreement(size, seconds / len(seeds) / len(images),
                     rank_correlation(*maps), ratio)


def choose_background(model: keras.Model, images: np.ndarray, pool: np.ndarray,
                      sizes: list[int], threshold: float = 0.9, score: str = "logit",
                      whole_curve: bool = True) -> tuple[int | None, list[Agreement]]:
    """The smallest of `sizes` whose two random backgrounds agree (mean rank
    correlation) to at least `threshold`, or None, and the curve measured
    (every size, or with `whole_curve=False` up to the chosen one)."""
    if list(sizes) != sorted(sizes):
        raise ValueError(f"sizes must be increasing, got {sizes}")
    curve, chosen = [], None
    for size in sizes:
        curve.append(background_agreement(model, images, pool, size, score=score))
        if chosen is None and curve[-1].rank_correlation.mean() >= threshold:
            chosen = size
            if not whole_curve:
                break
    return chosen, curve


def softmax_factors(model: keras.Model, images: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The factor shap's softmax rule multiplies its multipliers by, for every
    (image, background image, class): (Δlogit - Δmax logit) / Δlogit.

    shap centres the logits on their row maximum before its exp/divide rules,
    then rescales by this ratio; where a logit barely moves between the image
    and the background image but the maximum does, it explodes.
    """
    engine = Engine(model)
    z_x, z_r = (engine.predict(part, "logit") for part in (images, background))
    delta = z_x[:, None, :] - z_r[None, :, :]
    shift = z_x.max(1)[:, None, None] - z_r.max(1)[None, :, None]
    still = np.abs(delta) < 1e-6  # shap keeps these multipliers as they are
    return np.where(still, 1.0, (delta - shift) / np.where(still, 1.0, delta))


def randomization_check(model: keras.Model, inputs: np.ndarray, method: str,
                        layers: int = 2, init_seed: int = 0,
                        original: Attribution | None = None, **options) -> np.ndarray:
    """Adebayo et al. (2018): rank correlation of maps before and after
    re-initialising the top layers. Near 1 means the method ignores the
    weights it claims to explain: it fails the check. `original`: the maps
    already computed on `model` with these options (else computed)."""
    original = original or explain(model, inputs, method, **options)
    random_model = randomized_top(model, layers, init_seed)
    again = explain(random_model, inputs, method,
                    targets=original.targets if get(method).any_target else None, **options)
    return rank_correlation(original.maps, again.maps)


def score_methods(model: keras.Model, inputs: np.ndarray, methods: dict[str, dict],
                  baseline: float = 0.0, stability: bool = True,
                  seed: int = 0) -> tuple[list[dict], dict]:
    """Explain `inputs` with each method and score it; rows for a table, and maps.

    `methods` maps a method name to its options. A row holds seconds and model
    calls per image, deletion and insertion AUC, max-sensitivity (if
    `stability`) and the randomisation check's rank correlation; the row
    "random" gives the chance level of the AUCs. `found[method]` is the
    Attribution, its curves in `details["deletion"]` / `details["insertion"]`;
    `found["random"]` holds the random map's two curves.
    """
    rows, found, engine = [], {}, Engine(model)
    for method, options in methods.items():
        result = explain(model, inputs, method, **options)
        found[method] = result
        n = len(inputs)
        deletion, insertion = (perturbation_curve(model, inputs, result.maps, result.targets,
                                                  mode, baseline, engine=engine)
                               for mode in ("deletion", "insertion"))
        result.details.update(deletion=deletion, insertion=insertion)
        row = {"method": method, "seconds per image": result.seconds / n,
               "model calls per image": sum(result.model_calls.values()) / n,
               "deletion AUC": deletion.auc.mean(), "insertion AUC": insertion.auc.mean()}
        if stability:
            row["max-sensitivity"] = max_sensitivity(
                model, inputs, method, noise_seed=seed, reference=result, **options).mean()
        row["randomisation rank corr."] = np.nanmean(randomization_check(
            model, inputs, method, init_seed=seed, original=result, **options))
        rows.append(row)
    targets = next(iter(found.values())).targets
    chance = random_maps(inputs.shape[:3], seed)
    curves = {mode: perturbation_curve(model, inputs, chance, targets, mode, baseline,
                                       engine=engine) for mode in ("deletion", "insertion")}
    rows.append({"method": "random", "deletion AUC": curves["deletion"].auc.mean(),
                 "insertion AUC": curves["insertion"].auc.mean()})
    found["random"] = curves
    return rows, found
