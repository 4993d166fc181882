"""`python -m helpers.bench --out DIR`: every method against its floor.

For each method: seconds and model calls per image on the FashionMNIST CNN,
and the ratio to its *floor*, the time the same number of model evaluations
takes at the best batch size, measured in the same run: eager or compiled
(`tf.function`), whichever is faster, and eager only. Then the classic
tutorial-style library calls on the same images: speed-up and agreement.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from . import explain, load_dataset, machine, train_or_load
from .data import preprocess, sample
from .evaluate import rank_correlation
from .engine import forward, logit_model, score_gradients
from .methods import METHODS, OPTIONS
from .methods.base import rectangles
from .methods.lime import lime_map, no_progress_bar

BATCH_SIZES = (32, 128, 512)


def _best(fn, repeats: int = 3) -> float:
    fn()  # warm up
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_rates(model, images: np.ndarray) -> dict[str, float]:
    """Seconds per image of a forward pass, and of a forward + backward pass,
    at the best batch size: eager calls, and the best of eager and compiled."""
    import tensorflow as tf

    rates = {"eager": ([], []), "compiled": ([], [])}
    predict, gradients = forward(model), score_gradients(model)
    for size in BATCH_SIZES:
        batch = tf.constant(np.resize(images, (size, *images.shape[1:])))
        targets = tf.zeros(size, tf.int64)

        def grad(batch=batch):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                total = tf.reduce_sum(model(batch)[:, 0])
            tape.gradient(total, batch)

        rates["eager"][0].append(_best(lambda b=batch: model(b)) / size)
        rates["eager"][1].append(_best(grad) / size)
        rates["compiled"][0].append(_best(lambda b=batch: predict(b)) / size)
        rates["compiled"][1].append(_best(lambda b=batch, t=targets: gradients(b, t)) / size)
    eager = (min(rates["eager"][0]), min(rates["eager"][1]))
    best = tuple(min(e, c) for e, c in zip(eager, map(min, rates["compiled"])))
    return {"eager": eager, "best": best}


def _floor(calls: dict, rates: tuple[float, float]) -> float:
    return (calls["forward"] - calls["backward"]) * rates[0] + calls["backward"] * rates[1]


def run(n_images: int = 8) -> tuple[list[dict], list[dict]]:
    """Time every method and the tutorial-style calls; return both tables."""
    from lime import lime_image

    model = train_or_load("fashion_mnist", verbose=0).model
    (x_train, y_train), (x_test, y_test) = load_dataset("fashion_mnist")
    images = preprocess(x_test[sample(y_test, n_images, seed=0, distinct=n_images <= 10)])
    background = preprocess(x_train[sample(y_train, 100, seed=0)])
    rates = floor_rates(model, images)
    rows, found = [], {}
    for method in METHODS:
        options = {"background": background} if "background" in OPTIONS[method] else {}
        explain(model, images[:1], method, **options)  # warm up
        result = explain(model, images, method, **options)
        found[method] = result
        calls = result.model_calls
        floor = _floor(calls, rates["best"])
        rows.append({"method": method,
                     "seconds per image": result.seconds / n_images,
                     "forward per image": calls["forward"] / n_images,
                     "backward per image": calls["backward"] / n_images,
                     "floor seconds per image": floor / n_images,
                     "ratio to floor": result.seconds / floor,
                     "ratio to eager floor": result.seconds / _floor(calls, rates["eager"])})
    tutorial = []
    # LIME as the tutorials call it: model.predict, LIME's default batch of 10.
    segmenter = lambda im: rectangles(im, (4, 4))  # noqa: E731 (the same work as explain's)
    start = time.perf_counter()
    maps = []
    for image, target in zip(images, found["lime"].targets):
        with no_progress_bar():
            e = lime_image.LimeImageExplainer(random_state=0).explain_instance(
                image[..., 0], lambda b: model.predict(b[..., :1], verbose=0),
                labels=(int(target),), top_labels=None, hide_color=0.0,
                num_samples=1000, segmentation_fn=segmenter, random_seed=0)
        maps.append(lime_map(e, int(target)))
    seconds = time.perf_counter() - start
    tutorial.append({"call": "LIME, model.predict, batch_size=10",
                     "seconds per image": seconds / n_images,
                     "speed-up of explain()": seconds / found["lime"].seconds,
                     "rank correlation": float(rank_correlation(
                         np.stack(maps), found["lime"].maps).mean())})
    # Deep SHAP over 1,000 background images, as in SHAP's MNIST example:
    # every class's logit explained, the maps for the targets read off afterwards.
    import shap

    big = preprocess(x_train[sample(y_train, 1000, seed=0)])
    start = time.perf_counter()
    values = np.asarray(shap.DeepExplainer(logit_model(model), big).shap_values(images))
    seconds = time.perf_counter() - start
    ours = explain(model, images, "deep_shap", background=big)
    maps = values[np.arange(n_images), ..., ours.targets].sum(-1)
    tutorial.append({"call": "Deep SHAP, 1,000 background images, every class",
                     "seconds per image": seconds / n_images,
                     "speed-up of explain()": seconds / ours.seconds,
                     "rank correlation": float(rank_correlation(maps, ours.maps).mean())})
    return rows, tutorial


def deep_shap_agreement(sizes: tuple[int, ...] = (100, 1000),
                        datasets: tuple[str, ...] = ("cifar10", "fashion_mnist"),
                        n_images: int = 10) -> list[dict]:
    """Deep SHAP under two random backgrounds: one test image per class,
    Spearman of |map| of the predicted class, for three explained outputs —
    the probability through shap's softmax rule, the same probability written
    as exp / sum (shap's generic rules), and the logit."""
    from .evaluate import background_agreement, softmax_factors
    from .methods.deep_shap import exp_softmax_model

    rows = []
    for dataset in datasets:
        model = train_or_load(dataset, verbose=0).model
        (x_train, _), (x_test, y_test) = load_dataset(dataset)
        pick = np.array([np.flatnonzero(y_test == c)[0] for c in range(n_images)])
        images, pool = preprocess(x_test[pick]), preprocess(x_train[:20_000])
        factors = np.abs(softmax_factors(model, images, pool[:1000]))
        outputs = {"probability (Softmax op)": (model, "probability"),
                   "probability (exp / sum)": (exp_softmax_model(model), "probability"),
                   "logit": (model, "logit")}
        for name, (explained, score) in outputs.items():
            for size in sizes:
                found = background_agreement(explained, images, pool, size, score=score)
                rows.append({"dataset": dataset, "explained output": name,
                             "background": size,
                             "rank correlation": float(found.rank_correlation.mean()),
                             "lowest": float(found.rank_correlation.min()),
                             "largest total ratio": float(found.total_ratio.max()),
                             "seconds per image": found.seconds_per_image,
                             "softmax factors > 10": float((factors > 10).mean()),
                             "largest softmax factor": float(factors.max())})
                print(rows[-1], flush=True)
    return rows


def _write(rows: list[dict], path: Path) -> None:
    from .data import atomic_path

    with atomic_path(path.with_suffix(".csv")) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(rows, indent=2))


def _print(rows: list[dict]) -> None:
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                         for k in keys))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its tables, write them as CSV and JSON."""
    parser = argparse.ArgumentParser(prog="python -m helpers.bench")
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--deep-shap", action="store_true",
                        help="only: Deep SHAP's agreement between two backgrounds")
    args = parser.parse_args(argv)
    print(machine())
    if args.deep_shap:
        rows = deep_shap_agreement()
        _print(rows)
        args.out.mkdir(parents=True, exist_ok=True)
        _write(rows, args.out / "deep_shap_agreement")
        return 0
    rows, tutorial = run(args.images)
    _print(rows)
    print()
    _print(tutorial)
    args.out.mkdir(parents=True, exist_ok=True)
    _write(rows, args.out / "methods")
    _write(tutorial, args.out / "tutorial")
    print(f"wrote {args.out}/methods.{{csv,json}} and {args.out}/tutorial.{{csv,json}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
