"""`helpers.bench` on a tiny workload: both workloads in one table, a row
saying why for a method that cannot run, and a readable plot."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from helpers import bench
from helpers.methods.deep_shap import relu6_layers

METHODS = ("saliency", "deep_shap", "occlusion")


@pytest.fixture(scope="module")
def tiny(small_model, classifier, tmp_path_factory):
    """Two FashionMNIST images and two photos, small floor batches, three methods."""
    workloads = [
        dataclasses.replace(bench.fashion_workload(2, model=small_model.model),
                            batch_sizes=(2, 4)),
        dataclasses.replace(bench.photo_workload(2, classifier=classifier),
                            batch_sizes=(2, 4)),
    ]
    found = bench.run(workloads, methods=METHODS, tutorial=False)
    path = tmp_path_factory.mktemp("bench") / "methods.png"
    return found, bench.plot(found.methods, path), path


def test_one_table_holds_both_workloads(tiny):
    found, _, _ = tiny
    rows = found.methods
    assert [(r["workload"], r["method"]) for r in rows] == [
        (w, m) for w in bench.WORKLOADS for m in METHODS]
    assert len({tuple(r) for r in rows}) == 1, "every row has the same columns"
    assert {r["workload"] for r in found.workloads} == set(bench.WORKLOADS)


def test_ratios_are_finite_and_positive(tiny):
    found, _, _ = tiny
    timed = [r for r in found.methods if not r["note"]]
    assert {(r["workload"], r["method"]) for r in timed} >= {
        (w, m) for w in bench.WORKLOADS for m in ("saliency", "occlusion")}
    for row in timed:
        for key in bench.COLUMNS:
            if key != "backward per image":
                assert math.isfinite(row[key]) and row[key] > 0, (row["method"], key, row[key])
        # The floor is the best of eager and compiled: never above the eager one.
        assert row["ratio to eager floor"] <= row["ratio to floor"] * (1 + 1e-9)
    occlusion = next(r for r in timed if r["workload"] == "photos"
                     and r["method"] == "occlusion")
    # 4 x 4 windows of 56 px, and each photo once unoccluded and once for its target.
    assert occlusion["forward per image"] == 16 + 2
    assert occlusion["backward per image"] == 0


def test_deep_shap_on_relu6_is_a_row_saying_why(tiny, classifier):
    if not relu6_layers(classifier.model):
        pytest.skip(f"{classifier.name} has no ReLU6")
    found, _, _ = tiny
    row = next(r for r in found.methods if r["workload"] == "photos"
               and r["method"] == "deep_shap")
    assert row["note"].startswith("not applicable:") and "ReLU6" in row["note"]
    assert all(row[key] is None for key in bench.COLUMNS)
    fashion = next(r for r in found.methods if r["workload"] == "fashion_mnist"
                   and r["method"] == "deep_shap")
    assert fashion["note"] == "" and fashion["ratio to floor"] > 0


def test_tables_are_written_atomically_as_csv_and_json(tiny, tmp_path):
    found, _, _ = tiny
    bench._write(found.methods, tmp_path / "methods")
    rows = json.loads((tmp_path / "methods.json").read_text())
    assert [r["workload"] for r in rows] == [r["workload"] for r in found.methods]
    header = (tmp_path / "methods.csv").read_text().splitlines()[0]
    assert header.startswith("workload,model,method,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["methods.csv", "methods.json"]


def test_plot_has_a_bar_per_timed_row_and_is_not_blank(tiny):
    import matplotlib.image

    found, fig, path = tiny
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 200 and pixels[..., :3].std() > 0.05
    ax = fig.axes[0]
    bars = [len(container) for container in ax.containers]
    assert bars == [sum(r["workload"] == w and r["ratio to floor"] is not None
                        for r in found.methods) for w in bench.WORKLOADS]
    lines = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert lines == [bench.TARGETS["photos"], bench.TARGETS["fashion_mnist"]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        m.replace("_", " ") for m in METHODS]


def test_photo_workload_refuses_too_many_photos(classifier):
    with pytest.raises(ValueError, match="n_photos must be between 1 and 60"):
        bench.photo_workload(61, classifier=classifier)
