"""Plot helpers: what the figures contain, and their bad inputs."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from helpers.plot import (figure_to_array, grid_columns, header_over_grid,
                          plot_categories, resize_width, score_bars,
                          shap_grid, shap_rows, stack_vertical)

NAMES = [f"class {c}" for c in range(4)]


@pytest.fixture
def grid_inputs():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 8, 8, 1, 4)).astype(np.float32)
    images = rng.uniform(size=(3, 8, 8, 1)).astype(np.float32)
    return values, images


@pytest.fixture
def header_inputs():
    labels = np.array([2, 0, 3, 1, 0])
    images = np.stack([np.full((8, 8), 10 * label, np.uint8) for label in labels])
    return images, labels


def test_shap_grid_has_a_column_per_class(grid_inputs):
    values, images = grid_inputs
    fig = shap_grid(values, images, NAMES, ["a", "b", "c"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 3 * (1 + 4)
    assert len(grid_columns(fig)) == 1 + 4
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles == ["a"] + NAMES
    # The map drawn in row 0, column "class 2" is that class's SHAP values.
    drawn = fig.axes[3].images[-1].get_array()
    np.testing.assert_allclose(drawn, values[0, :, :, 0, 2])
    plt.close(fig)


def test_header_columns_match_the_grid(grid_inputs, header_inputs):
    values, images = grid_inputs
    grid = shap_grid(values, images, NAMES)
    header = plot_categories(*header_inputs, NAMES, grid=grid)
    lefts = [(ax.get_position().x0, ax.get_position().width) for ax in header.axes]
    np.testing.assert_allclose(lefts, grid_columns(grid)[1:], atol=1e-6)
    assert [ax.get_title() for ax in header.axes] == NAMES
    # Column c shows an example of class c (its pixels are 10 * c).
    assert [int(ax.images[0].get_array().mean()) for ax in header.axes] == [0, 10, 20, 30]
    final = header_over_grid(header, grid)
    assert final.ndim == 3 and final.shape[2] == 3 and final.dtype == np.uint8


def test_resize_width_makes_widths_equal():
    header = figure_to_array(plt.figure(figsize=(3, 1)))
    grid = figure_to_array(plt.figure(figsize=(5, 4)))
    resized = resize_width(header, grid.shape[1])
    assert resized.shape[1] == grid.shape[1]
    assert resized.shape[0] == round(header.shape[0] * grid.shape[1] / header.shape[1])
    assert stack_vertical(resized, grid).shape[0] == resized.shape[0] + grid.shape[0]


def test_bad_inputs_are_clear_errors(grid_inputs, header_inputs):
    values, images = grid_inputs
    with pytest.raises(ValueError, match="values must have rank 5"):
        shap_grid(values[0], images, NAMES)
    with pytest.raises(ValueError, match=r"images must have shape \(3, 8, 8, 1\)"):
        shap_grid(values, images[:2], NAMES)
    with pytest.raises(ValueError, match="labels must have 4 entries"):
        shap_grid(values, images, NAMES[:3])
    with pytest.raises(ValueError, match="true_labels must have 3 entries"):
        shap_grid(values, images, NAMES, ["a"])
    header_images, labels = header_inputs
    with pytest.raises(ValueError, match="images and labels must have the same length"):
        plot_categories(header_images, labels[:3], NAMES)
    with pytest.raises(ValueError, match="labels has no example of class 1"):
        plot_categories(header_images, np.zeros(5, int), NAMES)
    with pytest.raises(ValueError, match="images must have rank 3 or 4"):
        plot_categories(np.zeros(5), labels, NAMES)
    with pytest.raises(ValueError, match="top and bottom must have the same width"):
        stack_vertical(np.zeros((2, 3, 3), np.uint8), np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="width must be a positive"):
        resize_width(np.zeros((2, 3, 3), np.uint8), 0)
    plt.close("all")


def test_score_bars_draw_each_score_against_the_random_map():
    import pandas as pd

    table = pd.DataFrame(
        {"seconds per image": [0.01, 2.0, np.nan], "deletion AUC": [0.2, 0.4, 0.5],
         "randomisation rank corr.": [0.1, 0.9, np.nan]},
        index=pd.Index(["saliency", "lime", "random"], name="method"))
    fig = score_bars(table)
    axes = fig.axes
    assert [ax.get_title().split("\n")[0] for ax in axes] == [
        "seconds per image", "deletion AUC", "randomisation rank corr."]
    widths = [[bar.get_width() for bar in ax.patches] for ax in axes]
    np.testing.assert_allclose(widths, [[0.01, 2.0], [0.2, 0.4], [0.1, 0.9]])
    assert axes[0].get_xscale() == "log"
    # Only deletion AUC has a random row: one dashed line, at its value.
    assert [len(ax.lines) for ax in axes] == [0, 1, 0]
    assert axes[1].lines[0].get_xdata()[0] == pytest.approx(0.5)
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["saliency", "lime"]
    plt.close(fig)
    with pytest.raises(ValueError, match="table must have one of the columns"):
        score_bars(pd.DataFrame({"x": [1.0]}))


def test_shap_rows_gives_each_row_its_own_colour_scale(grid_inputs):
    values, images = grid_inputs
    values = values.copy()
    values[0] *= 1000  # one bright row
    fig = shap_rows(values, images, NAMES, ["a", "b", "c"])
    maps = values.sum(axis=3)
    for r in range(3):
        row = [ax for ax in fig.axes if ax.images][r * 5:(r + 1) * 5]
        assert row[0].get_title() == "abc"[r]
        assert [ax.get_title() for ax in row[1:]] == NAMES
        limit = np.percentile(np.abs(maps[r]), 99.9)
        for c, ax in enumerate(row[1:]):
            drawn = ax.images[-1]
            np.testing.assert_allclose(drawn.get_array(), maps[r, ..., c])
            np.testing.assert_allclose(drawn.get_clim(), (-limit, limit), rtol=1e-5)
    # Rendered, rows 2 and 3 (1,000 times fainter) keep saturated colours;
    # on one shared scale they would be blank.
    pixels = figure_to_array(fig).astype(int)
    strips = np.array_split(pixels, 3)
    coloured = [np.mean(np.abs(s[..., 0] - s[..., 2]) > 120) for s in strips]
    assert min(coloured) > 0.003, coloured


def test_shap_rows_rejects_wrong_titles(grid_inputs):
    values, images = grid_inputs
    with pytest.raises(ValueError, match="true_labels must have 3 entries"):
        shap_rows(values, images, NAMES, ["a"])


def test_wide_figures_fit_the_text_column():
    """Ten classes, eight photos, five scores: at most MAX_INCHES wide, so the
    page shows them at (nearly) their size; more panels wrap onto rows."""
    import pandas as pd

    from helpers.plot import MAX_INCHES, image_row

    rng = np.random.default_rng(0)
    names = [f"class {c}" for c in range(10)]
    values = rng.normal(size=(2, 8, 8, 1, 10)).astype(np.float32)
    images = rng.uniform(size=(2, 8, 8, 1)).astype(np.float32)
    grid = shap_grid(values, images, names, ["a\npred b (90%)", "c\npred d (80%)"])
    row = image_row([rng.uniform(size=(16, 16, 3))] * 8, list("abcdefgh"))
    table = pd.DataFrame(rng.uniform(size=(3, 5)), columns=[
        "seconds per image", "deletion AUC", "insertion AUC", "max-sensitivity",
        "randomisation rank corr."], index=["saliency", "lime", "random"])
    bars = score_bars(table)
    for fig in (grid, row, bars):
        assert fig.get_figwidth() <= MAX_INCHES + 1e-6
    assert len(grid_columns(grid)) == 11
    assert len([ax for ax in row.axes if ax.images]) == 8
    assert len({round(ax.get_position().y0, 3) for ax in row.axes}) == 2  # two rows of 4
    assert len(bars.axes) == 5
    plt.close("all")
