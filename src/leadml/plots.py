"""Every figure leadml draws: holdout curves (ROC, precision-recall, calibration, gains), the
MQL line's threshold chart, and conversion below the line.

matplotlib is imported here and nowhere else, so the scorer, the policy book and every API
worker start without it (about 170 modules). Each function returns a `matplotlib.figure.Figure`
built without pyplot (no global state, no GUI backend); the caller decides where to save it.
matplotlib is imported in the functions that draw (`_figure`, `_percent_formatter`), not when
this module is: it takes about a second to import, which every CLI command, `--help` included,
paid at start; `leadml train` imports it when it logs its figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from leadml.evaluate import (
    calibration_table,
    check_scores,
    expected_calibration_error,
    ranked_outcomes,
    require_both_outcomes,
)
from leadml.monitor import BelowLineEstimate
from leadml.threshold import threshold_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

_FIGSIZE = (6.4, 4.8)


def _figure(figsize: tuple[float, float] = _FIGSIZE) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _percent_formatter() -> PercentFormatter:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _new_axes() -> tuple[Figure, Axes]:
    figure = _figure()
    return figure, figure.add_subplot()


def _percent_axes(axes: Axes) -> None:
    axes.xaxis.set_major_formatter(_percent_formatter())
    axes.yaxis.set_major_formatter(_percent_formatter())
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.grid(alpha=0.3)


def plot_roc(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, title: str = "ROC curve (holdout)"
) -> Figure:
    """ROC curve with the chance diagonal; the legend gives the ROC AUC."""
    y, p = check_scores(y_true, proba)
    require_both_outcomes(y, "an ROC curve")
    fpr, tpr, _ = roc_curve(y, p)
    figure, axes = _new_axes()
    axes.plot(fpr, tpr, linewidth=2, label=f"model (ROC AUC {roc_auc_score(y, p):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random ranking (AUC 0.5)")
    _percent_axes(axes)
    axes.set_xlabel("False positive rate (share of non-converting leads flagged)")
    axes.set_ylabel("True positive rate (share of conversions caught)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    return figure


def plot_precision_recall(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, title: str = "Precision-recall curve (holdout)"
) -> Figure:
    """Precision against recall with the base rate as the no-skill line; legend gives the AP."""
    y, p = check_scores(y_true, proba)
    require_both_outcomes(y, "a precision-recall curve")
    precision, recall, _ = precision_recall_curve(y, p)
    base_rate = float(y.mean())
    figure, axes = _new_axes()
    axes.plot(
        recall,
        precision,
        drawstyle="steps-post",
        linewidth=2,
        label=f"model (average precision {average_precision_score(y, p):.3f})",
    )
    axes.axhline(
        base_rate, linestyle="--", color="grey", label=f"random selection ({base_rate:.1%})"
    )
    _percent_axes(axes)
    axes.set_xlabel("Recall (share of all conversions captured)")
    axes.set_ylabel("Precision (share of selected leads that convert)")
    axes.set_title(title)
    axes.legend(loc="upper right")
    return figure


def plot_calibration(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    title: str = "Calibration (holdout)",
    n_bins: int = 10,
) -> Figure:
    """Reliability diagram: observed conversion rate per equal-frequency bin, with the diagonal."""
    y, p = check_scores(y_true, proba)
    table = calibration_table(y, p, n_bins=n_bins)
    ece = expected_calibration_error(y, p, n_bins=n_bins)
    figure, axes = _new_axes()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    axes.plot(
        table["mean_predicted"],
        table["observed_rate"],
        marker="o",
        linewidth=2,
        label=f"model (ECE {ece:.3f}, {len(table)} equal-frequency bins)",
    )
    _percent_axes(axes)
    axes.set_xlabel("Mean predicted probability of converting")
    axes.set_ylabel("Observed conversion rate")
    axes.set_title(title)
    axes.legend(loc="upper left")
    return figure


def plot_cumulative_gains(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, title: str = "Cumulative gains (holdout)"
) -> Figure:
    """Share of conversions captured against share of leads worked, best-scored first."""
    y, p = check_scores(y_true, proba)
    require_both_outcomes(y, "a cumulative gains curve")
    _, y_tied = ranked_outcomes(y, p)
    n = len(y)
    base_rate = float(y.mean())
    share_leads = np.arange(n + 1) / n
    gain = np.concatenate([[0.0], np.cumsum(y_tied)]) / y.sum()
    figure, axes = _new_axes()
    axes.plot(share_leads, gain, linewidth=2, label="model")
    axes.plot(
        [0.0, base_rate, 1.0], [0.0, 1.0, 1.0], linestyle=":", color="black", label="perfect model"
    )
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random selection")
    _percent_axes(axes)
    axes.set_xlabel("Share of leads worked, highest probability first")
    axes.set_ylabel("Share of all conversions captured")
    axes.set_title(title)
    axes.legend(loc="lower right")
    return figure


def plot_threshold_chart(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    cutoff: float | None = None,
    title: str = "The MQL line: what each cut-off means (holdout)",
    cutoff_label: str = "MQL line",
) -> Figure:
    """MQL share, precision and recall against the probability cut-off, with an optional line.

    Reading it right to left: lowering the cut-off makes more leads MQLs (share rises), captures
    more of the conversions (recall rises) and usually lowers the conversion rate among MQLs.
    """
    table = threshold_table(y_true, proba).sort_values("cutoff")
    figure, axes = _new_axes()
    x = table["cutoff"].to_numpy()
    axes.plot(x, table["mql_share"], linewidth=2, label="share of leads that are MQLs")
    axes.plot(x, table["precision"], linewidth=2, label="MQLs that convert (precision)")
    axes.plot(x, table["recall"], linewidth=2, label="conversions captured (recall)")
    base_rate = float(np.mean(np.asarray(y_true, dtype=float)))
    axes.axhline(base_rate, linestyle="--", color="grey", label=f"base rate ({base_rate:.1%})")
    if cutoff is not None:
        axes.axvline(cutoff, color="black", linestyle=":", label=f"{cutoff_label} ({cutoff:.3g})")
    axes.set_xlim(0.0, max(1e-6, float(x.max())))
    axes.set_ylim(0.0, 1.02)
    axes.yaxis.set_major_formatter(_percent_formatter())
    axes.grid(alpha=0.3)
    axes.set_xlabel("Probability cut-off (leads at or above it are MQLs)")
    axes.set_ylabel("Share")
    axes.set_title(title)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    return figure


def plot_trait_importance(
    traits: pd.DataFrame, top: int = 12, title: str = "What converts (holdout)"
) -> Figure:
    """Each trait's share of the model's attention (`TrainResult.traits`), largest on top."""
    shown = traits.head(top).iloc[::-1]
    figure = _figure((_FIGSIZE[0], max(2.5, 0.35 * len(shown) + 1)))
    axes = figure.add_subplot()
    labels = shown["label"] if "label" in shown.columns else shown["field"]
    axes.barh(labels.astype(str), shown["share"], color="#1f6f8b")
    axes.xaxis.set_major_formatter(_percent_formatter())
    axes.set_xlabel("Share of the model's attention (mean absolute effect on the log-odds)")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    return figure


def plot_below_line(
    estimate: BelowLineEstimate,
    truth: float | None = None,
    title: str = "Conversion below the MQL line",
) -> Figure:
    """What the leads below the line convert at: the exploration leads' inverse-propensity
    estimate with its interval, beside what counting every unworked lead as lost would say, and
    the truth when it is known (a simulation)."""
    figure, axes = _new_axes()
    bars: list[tuple[str, float, str]] = []
    if estimate.naive_rate is not None:
        bars.append(("unworked = lost", estimate.naive_rate, "#c44e52"))
    ipw_at = len(bars)
    if estimate.observed and estimate.rate is not None:
        label = f"exploration leads\n(IPW, {estimate.n_labelled:,})"
        bars.append((label, estimate.rate, "#4c72b0"))
    if truth is not None:
        bars.append(("truth\n(simulation)", truth, "#55a868"))
    positions = np.arange(len(bars))
    axes.bar(positions, [b[1] for b in bars], color=[b[2] for b in bars], width=0.6)
    axes.set_xticks(positions, [b[0] for b in bars])
    if estimate.observed and estimate.rate is not None:
        assert estimate.low is not None and estimate.high is not None
        axes.errorbar(
            [ipw_at],
            [estimate.rate],
            yerr=[[estimate.rate - estimate.low], [estimate.high - estimate.rate]],
            fmt="none",
            color="black",
            capsize=8,
            label=f"{estimate.level:.0%} interval",
        )
        axes.legend(loc="upper left")
    else:
        axes.text(
            0.5,
            0.9,
            "unobserved: no exploration lead has an outcome",
            transform=axes.transAxes,
            ha="center",
        )
    top = max([b[1] for b in bars] + [estimate.high or 0.0, 0.01])
    axes.set_ylim(0.0, top * 1.3)
    axes.yaxis.set_major_formatter(_percent_formatter())
    axes.set_ylabel("Conversion rate of the leads below the line")
    axes.grid(alpha=0.3, axis="y")
    axes.set_title(title)
    return figure
