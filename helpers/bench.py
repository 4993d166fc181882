"""`python -m helpers.bench --out DIR`: every method against its floor.

Two workloads: the FashionMNIST CNN on test images, and the book's ImageNet
classifier (VGG19 if its weights can be had, else the MobileNet stand-in) on
224-px photos, with the modest budgets of the photo comparison chapter. For
each method: seconds and model calls per image, and the ratio to its *floor*,
the time the same number of model evaluations takes at the best batch size,
measured in the same run: eager or compiled (`tf.function`), whichever is
faster, and eager only. A method that cannot run on a model, or would take too
long, gets a row saying why. Then the classic tutorial-style library calls on
the FashionMNIST images: speed-up and agreement. `DIR/methods.png` plots every
ratio against the targets in TARGETS.
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from . import explain, load_dataset, machine, train_or_load
from .data import preprocess, sample
from .evaluate import rank_correlation
from .engine import forward, logit_model, score_gradients
from .methods import METHODS, OPTIONS, Attribution, get, label
from .methods.base import rectangles
from .methods.lime import lime_map, no_progress_bar

WORKLOADS = ("fashion_mnist", "photos")
# Batch sizes the floor is the best of: 512 photos of 224 px would take
# minutes per pass and gigabytes of activations.
BATCH_SIZES = {"fashion_mnist": (32, 128, 512), "photos": (8, 32, 64)}
TARGETS = {"fashion_mnist": 1.5, "photos": 1.3}  # the ratio to floor aimed at
# Per method, beyond `background` (and the photos' pixel_range): the budgets
# are cut so that the photo workload takes a few minutes on two cores.
PHOTO_OPTIONS = {
    "smoothgrad": {"samples": 10},
    "integrated_gradients": {"steps": 16},
    "gradient_shap": {"nsamples": 10},
    "lime": {"num_samples": 100},
    "rise": {"n_masks": 200},
    "occlusion": {"window": 56, "stride": 56},
    "anchors": {"segmentation": "slic", "segment_options": {"n_segments": 15}},
}
PHOTO_BUDGET = 150.0  # seconds a method may take on all the photos (from one)
COLUMNS = ("seconds per image", "forward per image", "backward per image",
           "floor seconds per image", "ratio to floor", "ratio to eager floor")


def _best(fn, repeats: int = 3) -> float:
    fn()  # warm up
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_rates(model, images: np.ndarray,
                batch_sizes: tuple[int, ...] = BATCH_SIZES["fashion_mnist"]
                ) -> dict[str, tuple[float, float]]:
    """Seconds per image of a forward pass, and of a forward + backward pass,
    at the best of `batch_sizes`: eager calls, and the best of eager and compiled."""
    import tensorflow as tf

    rates = {"eager": ([], []), "compiled": ([], [])}
    predict, gradients = forward(model), score_gradients(model)
    for size in batch_sizes:
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


@dataclass
class Workload:
    """A model, the images it explains, each method's options, the floor's
    batch sizes, and `budget`: seconds a method may take on all the images,
    projected from its one-image warm-up (None: no limit)."""

    name: str
    model: keras.Model
    model_name: str
    note: str
    images: np.ndarray
    options: dict[str, dict]
    batch_sizes: tuple[int, ...]
    pixel_range: tuple | None = None
    budget: float | None = None


class Bench(NamedTuple):
    """The methods table (both workloads), the tutorial-style calls, the workloads."""

    methods: list[dict]
    tutorial: list[dict]
    workloads: list[dict]


def fashion_workload(n_images: int = 32, model: keras.Model | None = None) -> Workload:
    """FashionMNIST test images on the book's CNN (or `model`), every method at
    its defaults, 100 training images as background."""
    model = model or train_or_load("fashion_mnist", verbose=0).model
    (x_train, y_train), (x_test, y_test) = load_dataset("fashion_mnist")
    images = preprocess(x_test[sample(y_test, n_images, seed=0, distinct=n_images <= 10)])
    background = preprocess(x_train[sample(y_train, 100, seed=0)])
    options = {m: {"background": background} if "background" in OPTIONS[m] else {}
               for m in METHODS}
    return Workload("fashion_mnist", model, f"FashionMNIST CNN ({model.name})", "",
                    images, options, BATCH_SIZES["fashion_mnist"])


def photo_workload(n_photos: int = 8, classifier=None) -> Workload:
    """The first `n_photos` of the val20 and imagenet50 photos at 224 px on the
    book's ImageNet classifier (or `classifier`), the last 10 imagenet50 photos
    as background, the budgets of PHOTO_OPTIONS."""
    from .data import fit_photo, photos
    from .models import imagenet_classifier

    classifier = classifier or imagenet_classifier()
    album = photos(("val20", "imagenet50"))
    if not 1 <= n_photos <= len(album) - 10:
        raise ValueError(f"n_photos must be between 1 and {len(album) - 10}, got {n_photos}")
    images = classifier.prepare(np.stack([fit_photo(p.image) for p in album[:n_photos]]))
    background = classifier.prepare(np.stack([fit_photo(p.image) for p in album[-10:]]))
    options = {}
    for method in METHODS:
        options[method] = dict(PHOTO_OPTIONS.get(method, {}))
        if method in ("gradcam", "gradcam_plus_plus"):
            options[method]["layer"] = classifier.gradcam_layer
        if "background" in OPTIONS[method]:
            options[method]["background"] = background
    return Workload("photos", classifier.model, classifier.title, classifier.note, images,
                    options, BATCH_SIZES["photos"], classifier.pixel_range, PHOTO_BUDGET)


def _describe(options: dict) -> str:
    """Options as one short string: arrays by their length."""
    return ", ".join(f"{k}={len(v) if isinstance(v, np.ndarray) else v}"
                     for k, v in options.items())


def not_applicable(workload: Workload, method: str) -> str | None:
    """Why `method` cannot run on the workload's model (its `check`), or None."""
    try:
        get(method)(**workload.options[method]).check(workload.model, workload.images[:1])
    except ValueError as error:
        return str(error)
    return None


def time_workload(workload: Workload, methods: tuple[str, ...] = METHODS
                  ) -> tuple[list[dict], dict[str, Attribution], dict]:
    """Time `methods` on the workload against its floor: the rows, the results
    and the floor's rates."""
    rates = floor_rates(workload.model, workload.images, workload.batch_sizes)
    n = len(workload.images)
    rows, found = [], {}
    for method in methods:
        options = workload.options[method]
        row = {"workload": workload.name, "model": workload.model_name, "method": method,
               "options": _describe(options), **dict.fromkeys(COLUMNS), "note": ""}
        rows.append(row)
        why = not_applicable(workload, method)
        if why:
            row["note"] = f"not applicable: {why}"
            continue
        call = dict(pixel_range=workload.pixel_range, **options)
        warm = explain(workload.model, workload.images[:1], method, **call)
        if workload.budget is not None and warm.seconds * n > workload.budget:
            row["note"] = (f"skipped: one image took {warm.seconds:.0f} s, {n} would take "
                           f"about {warm.seconds * n:.0f} s (budget {workload.budget:.0f} s)")
            continue
        result = found[method] = explain(workload.model, workload.images, method, **call)
        calls = result.model_calls
        floor = _floor(calls, rates["best"])
        row.update({"seconds per image": result.seconds / n,
                    "forward per image": calls["forward"] / n,
                    "backward per image": calls["backward"] / n,
                    "floor seconds per image": floor / n,
                    "ratio to floor": result.seconds / floor,
                    "ratio to eager floor": result.seconds / _floor(calls, rates["eager"])})
    return rows, found, rates


def _workload_row(workload: Workload, rates: dict) -> dict:
    """What the workload ran on: model, images, the floor's rates per image."""
    return {"workload": workload.name, "model": workload.model_name,
            "images": len(workload.images), "image shape": "x".join(
                map(str, workload.images.shape[1:])),
            "floor batch sizes": " ".join(map(str, workload.batch_sizes)),
            "forward seconds per image": rates["best"][0],
            "forward + backward seconds per image": rates["best"][1],
            "eager forward": rates["eager"][0], "eager forward + backward": rates["eager"][1],
            "note": workload.note}


def tutorial_calls(workload: Workload, found: dict[str, Attribution]) -> list[dict]:
    """The tutorial-style LIME and Deep SHAP calls on the FashionMNIST images
    (LIME's only if `found` holds explain()'s LIME maps to compare with)."""
    model, images = workload.model, workload.images
    n_images = len(images)
    tutorial = []
    if "lime" in found:
        from lime import lime_image

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

    (x_train, y_train), _ = load_dataset("fashion_mnist")
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
    return tutorial


def run(workloads: list[Workload], methods: tuple[str, ...] = METHODS,
        tutorial: bool = True) -> Bench:
    """Time `methods` on every workload, then (with `tutorial`) the
    tutorial-style calls on the FashionMNIST one; return the three tables."""
    rows, calls, described = [], [], []
    for workload in workloads:
        found_rows, found, rates = time_workload(workload, methods)
        rows += found_rows
        described.append(_workload_row(workload, rates))
        if tutorial and workload.name == "fashion_mnist":
            calls += tutorial_calls(workload, found)
    return Bench(rows, calls, described)


def plot(rows: list[dict], path: Path | None = None):
    """Ratio to floor per method, one bar group per workload, with the targets
    as reference lines; written to `path` (PNG, atomically) if given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(row["method"] for row in rows))
    workloads = list(dict.fromkeys(row["workload"] for row in rows))
    colours = {"fashion_mnist": "#7fb3e0", "photos": "#1f4e79"}
    height = 0.8 / len(workloads)
    fig = Figure(figsize=(7.5, 1.6 + 0.2 * len(methods) * (len(workloads) + 1)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ratios = [row["ratio to floor"] for row in rows if row["ratio to floor"] is not None]
    right = max([2.0, *ratios]) * 1.6
    for j, workload in enumerate(workloads):
        mine = [row for row in rows if row["workload"] == workload]
        colour = colours.get(workload, f"C{j}")
        ys = {row["method"]: methods.index(row["method"]) + (j - (len(workloads) - 1) / 2)
              * height for row in mine}
        done = [row for row in mine if row["ratio to floor"] is not None]
        bars = ax.barh([ys[row["method"]] for row in done],
                       [row["ratio to floor"] for row in done], height=height * 0.9,
                       color=colour, label=f"{workload}: {mine[0]['model']}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        for row in mine:
            if row["ratio to floor"] is None:  # at the left edge, whatever the scale
                ax.text(0.01, ys[row["method"]], f"{workload}: {row['note'].split(':')[0]}",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7,
                        color=colour, style="italic")
    for workload in workloads:
        if workload in TARGETS:
            ax.axvline(TARGETS[workload], color=colours.get(workload, "grey"),
                       linestyle="--", linewidth=1.3,
                       label=f"{workload} target {TARGETS[workload]:g}")
    ax.set_xscale("log")
    left = min([1.0, *ratios]) / 1.15
    ax.set_xlim(left, right)
    ticks = [t for t in (0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
             if left <= t <= right]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xticks([], minor=True)
    ax.set_yticks(range(len(methods)), [label(m) for m in methods], fontsize=8.5)
    ax.set_ylim(len(methods) - 0.5, -0.5)  # the first method on top
    ax.set_axisbelow(True)
    ax.set_xlabel("seconds / floor (the same model calls at the best batch size), log scale")
    ax.set_title("Every method against its floor; dashed: the targets", fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.legend(fontsize=7.5, loc="outside lower center", ncols=2)  # clear of the bars
    if path is not None:
        from .data import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    return fig


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
        print(" | ".join("—" if row[k] is None else f"{row[k]:.4g}"
                         if isinstance(row[k], float) else str(row[k]) for k in keys))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its tables, write them as CSV and JSON, and
    the ratios as methods.png."""
    parser = argparse.ArgumentParser(prog="python -m helpers.bench")
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--workload", choices=(*WORKLOADS, "both"), default="both")
    parser.add_argument("--images", type=int, default=32, help="FashionMNIST test images")
    parser.add_argument("--photos", type=int, default=8, help="photos (224 px)")
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
    workloads = []
    if args.workload in ("fashion_mnist", "both"):
        workloads.append(fashion_workload(args.images))
    if args.workload in ("photos", "both"):
        workloads.append(photo_workload(args.photos))
    bench = run(workloads)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("workloads", bench.workloads), ("methods", bench.methods),
                       ("tutorial", bench.tutorial)):
        if rows:
            print()
            _print(rows)
            _write(rows, args.out / name)
            written.append(f"{args.out}/{name}.{{csv,json}}")
    plot(bench.methods, args.out / "methods.png")
    print(f"wrote {', '.join(written)} and {args.out}/methods.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
