"""Every figure (plots.py): holdout curves and the threshold chart, on arrays small enough to
check by hand."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from leadml.monitor import below_line_conversion
from leadml.plots import (
    plot_below_line,
    plot_calibration,
    plot_cumulative_gains,
    plot_precision_recall,
    plot_roc,
    plot_trait_importance,
)

# Ten leads, best first. Conversions at ranks 1, 2, 4 and 6: base rate 0.4.
PROBA = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])


def _line_data(figure: Figure) -> list[tuple[list[float], list[float]]]:
    axes = figure.axes[0]
    return [
        (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))  # type: ignore[arg-type]
        for line in axes.get_lines()
    ]


@pytest.mark.parametrize(
    "plot", [plot_roc, plot_precision_recall, plot_calibration, plot_cumulative_gains]
)
def test_plots_return_labelled_figures_that_render(plot: object) -> None:
    rng = np.random.default_rng(1)
    proba = rng.random(300)
    y = (rng.random(300) < proba).astype(int)
    figure = plot(y, proba, title="My title")  # type: ignore[operator]
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert axes.get_title() == "My title"
    assert axes.get_xlabel() and axes.get_ylabel()
    assert axes.get_legend() is not None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_plot_has_the_diagonal_and_the_bins() -> None:
    figure = plot_calibration(Y, PROBA, n_bins=5)
    lines = _line_data(figure)
    assert ([0.0, 1.0], [0.0, 1.0]) in lines
    assert ([0.1, 0.3, 0.5, 0.7, 0.9], [0.0, 0.0, 0.5, 0.5, 1.0]) in [
        ([round(x, 6) for x in xs], [round(v, 6) for v in ys]) for xs, ys in lines
    ]


def test_gains_plot_has_the_random_baseline_and_the_model_curve() -> None:
    lines = _line_data(plot_cumulative_gains(Y, PROBA))
    assert ([0.0, 1.0], [0.0, 1.0]) in lines
    model_x, model_y = lines[0]
    assert model_x[0] == 0.0 and model_x[-1] == 1.0
    assert model_y == pytest.approx([0, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1, 1, 1])


def test_plot_titles_have_defaults() -> None:
    assert plot_roc(Y, PROBA).axes[0].get_title() == "ROC curve (holdout)"


def test_trait_importance_plot_puts_the_largest_share_on_top() -> None:
    traits = pd.DataFrame(
        {
            "field": ["demo", "visits", "source"],
            "label": ["Demo", "Visits", "Source"],
            "share": [0.5, 0.3, 0.2],
        }
    )
    axes = plot_trait_importance(traits, top=2).axes[0]
    bars = sorted(axes.patches, key=lambda bar: bar.get_y())  # type: ignore[attr-defined]
    assert [round(bar.get_width(), 6) for bar in bars] == [0.3, 0.5]
    assert [tick.get_text() for tick in axes.get_yticklabels()] == ["Visits", "Demo"]


def test_below_line_plot_shows_the_estimate_its_interval_the_naive_rate_and_the_truth() -> None:
    # 20 leads below the line, 4 explored (chance 0.2), 1 of them won: IPW 25 %, naive 5 %.
    is_mql = np.r_[np.ones(5, bool), np.zeros(20, bool)]
    explored = np.r_[np.zeros(5, bool), np.ones(4, bool), np.zeros(16, bool)]
    chance = np.where(is_mql, 1.0, 0.2)
    label = np.r_[np.ones(5), [1, 0, 0, 0], np.full(16, np.nan)]
    estimate = below_line_conversion(is_mql, explored, chance, label)
    figure = plot_below_line(estimate, truth=0.2)
    heights = [round(bar.get_height(), 4) for bar in figure.axes[0].patches]
    assert heights == [0.05, 0.25, 0.2]
    [interval] = figure.axes[0].containers[-1:]
    assert interval.get_label() == "90% interval"
    figure.savefig(io.BytesIO(), format="png")

    unobserved = below_line_conversion(is_mql, np.zeros(25, bool), chance, label)
    blind = plot_below_line(unobserved)
    assert [round(bar.get_height(), 4) for bar in blind.axes[0].patches] == [0.05]
    assert "unobserved" in blind.axes[0].texts[0].get_text()
    blind.savefig(io.BytesIO(), format="png")
