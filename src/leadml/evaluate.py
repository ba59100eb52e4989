"""How good are a model's holdout probabilities: metrics, gains/lift and calibration tables.

Everything here works on two in-memory arrays, the holdout outcomes (0/1) and the calibrated
probabilities, and has no side effects. The figures drawn from them are in `plots.py`, so that scoring and
the API never load matplotlib.

Ties. Calibrated models (isotonic calibration above all) give many leads the same probability.
Wherever leads are ranked (gains table, top-decile lift, cumulative gains curve), leads tied at
one probability share their group's conversion rate: a tied group that straddles a decile
boundary contributes its average outcome to each side. The result is what random tie-breaking
gives on average, and it does not depend on the order of the input rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from leadml.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BinStrategy = Literal["quantile", "uniform"]

METRIC_NAMES = (
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_top_decile",
    "base_rate",
    "n",
)

TOP_DECILE_SHARE = 0.10


def check_probabilities(proba: npt.ArrayLike) -> FloatArray:
    """Return probabilities as a 1-D float array, or raise `DataError`."""
    try:
        p = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("probabilities must be numbers between 0 and 1") from exc
    if p.ndim != 1:
        raise DataError("probabilities must be one-dimensional; pass one column")
    if not np.all(np.isfinite(p)):
        raise DataError("probabilities contain NaN or infinity; score every lead first")
    if np.any((p < 0) | (p > 1)):
        raise DataError(
            f"probabilities must be between 0 and 1, got {p.min():.4g} to {p.max():.4g};"
            " pass predict_proba(...)[:, 1], not a decision score"
        )
    return p


def check_scores(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    """Return outcomes as 0/1 integers and probabilities as floats, or raise `DataError`."""
    y = np.asarray(y_true)
    p = check_probabilities(proba)
    if y.ndim != 1:
        raise DataError("outcomes must be one-dimensional; pass one column")
    if len(y) != len(p):
        raise DataError(
            f"{len(y):,} outcomes but {len(p):,} probabilities; pass one probability per lead"
        )
    if len(y) == 0:
        raise DataError("no leads to evaluate; pass at least one lead with an outcome")
    try:
        y_num = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("outcomes must be 0/1 (or True/False); encode the target first") from exc
    if not np.all((y_num == 0) | (y_num == 1)):
        raise DataError("outcomes must be 0/1 (or True/False); encode the target first")
    return y_num.astype(np.int64), p


def require_both_outcomes(y: IntArray, what: str) -> None:
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        outcome = "converted" if positives else "did not convert"
        raise DataError(
            f"cannot compute {what}: every lead {outcome}; evaluate on leads with both outcomes"
        )


def ranked_outcomes(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Probabilities from highest to lowest, with each lead's outcome averaged over its tie group.

    Ranking statistics computed on these do not depend on how tied leads happen to be ordered.
    """
    y, p = check_scores(y_true, proba)
    order = np.argsort(-p, kind="stable")
    p_desc = p[order]
    y_desc = y[order].astype(np.float64)
    group = np.concatenate([[0], np.cumsum(np.diff(p_desc) != 0)])
    group_rate = np.bincount(group, weights=y_desc) / np.bincount(group)
    return p_desc, group_rate[group]


def _bin_ids(p: FloatArray, n_bins: int, strategy: BinStrategy) -> IntArray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    # Bins are [lower, upper) except the last, so equal probabilities always share a bin.
    return np.searchsorted(edges[1:-1], p, side="right").astype(np.int64)


def calibration_table(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 10,
    strategy: BinStrategy = "quantile",
) -> pd.DataFrame:
    """Mean predicted probability against the observed conversion rate, one row per bin.

    `strategy="quantile"` makes bins of (about) equal numbers of leads, with edges at the
    quantiles of the probabilities; `"uniform"` cuts [0, 1] into equal widths. Leads with equal
    probabilities always share a bin, so heavy ties give fewer bins; empty bins are left out.
    Rows go from the lowest to the highest probabilities; `gap` is observed minus predicted.
    """
    y, p = check_scores(y_true, proba)
    ids = _bin_ids(p, n_bins, strategy)
    used = np.unique(ids)
    counts = np.bincount(ids, minlength=n_bins)[used]
    predicted = np.bincount(ids, weights=p, minlength=n_bins)[used] / counts
    observed = np.bincount(ids, weights=y.astype(np.float64), minlength=n_bins)[used] / counts
    lowest = np.array([p[ids == b].min() for b in used])
    highest = np.array([p[ids == b].max() for b in used])
    return pd.DataFrame(
        {
            "bin": np.arange(1, len(used) + 1),
            "n": counts,
            "proba_min": lowest,
            "proba_max": highest,
            "mean_predicted": predicted,
            "observed_rate": observed,
            "gap": observed - predicted,
        }
    )


def expected_calibration_error(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_bins: int = 10,
    strategy: BinStrategy = "quantile",
) -> float:
    """Share-weighted mean of |observed rate - mean predicted probability| over the bins.

    The default bins are 10 equal-frequency (quantile) bins, as in `calibration_table`.
    """
    table = calibration_table(y_true, proba, n_bins=n_bins, strategy=strategy)
    weights = table["n"].to_numpy() / table["n"].sum()
    return float(np.sum(weights * np.abs(table["gap"].to_numpy())))


def _top_share_rate(y_tied: FloatArray, share: float) -> float:
    top = max(1, int(np.ceil(share * len(y_tied) - 1e-9)))
    return float(y_tied[:top].mean())


def holdout_metrics(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> dict[str, float]:
    """The headline numbers of a holdout set.

    - `roc_auc`, `pr_auc` (average precision), `brier`, `log_loss`;
    - `ece`: expected calibration error over 10 equal-frequency (quantile) bins;
    - `lift_top_decile`: conversion rate of the top 10 % of leads by probability (rounded up to
      whole leads, ties averaged) divided by the base rate;
    - `base_rate`: share of leads that converted; `n`: number of leads (as a float).
    """
    y, p = check_scores(y_true, proba)
    require_both_outcomes(y, "holdout metrics")
    base_rate = float(y.mean())
    _, y_tied = ranked_outcomes(y, p)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": _top_share_rate(y_tied, TOP_DECILE_SHARE) / base_rate,
        "base_rate": base_rate,
        "n": float(len(y)),
    }


def gains_table(y_true: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Cumulative gains and lift, one row per decile (or `n_bins` groups) from the highest scores.

    Decile k ends after the first ceil(k * n / n_bins) leads ranked by probability, so the first
    decile is the top 10 % rounded up. Leads tied across a boundary share their group's
    conversion rate (see the module docstring), which makes `conversions` fractional then.

    Columns: `decile`, `n`, `proba_min`, `proba_max`, `conversions`, `conversion_rate`,
    `mean_proba`, `cum_share_leads` (share of all leads in this and higher deciles), `cum_gain`
    (share of all conversions captured by them), `lift` (decile conversion rate / base rate) and
    `cum_lift` (conversion rate of this and higher deciles / base rate).
    """
    y, p = check_scores(y_true, proba)
    n = len(y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if n < n_bins:
        raise DataError(f"a gains table of {n_bins} groups needs at least {n_bins} leads, got {n}")
    positives = int(y.sum())
    if positives == 0:
        raise DataError("cannot compute gains: no lead converted; evaluate on leads with outcomes")
    p_desc, y_tied = ranked_outcomes(y, p)
    ends = np.array([(n * k + n_bins - 1) // n_bins for k in range(1, n_bins + 1)])
    starts = np.concatenate([[0], ends[:-1]])
    sizes = ends - starts
    conversions = np.add.reduceat(y_tied, starts)
    base_rate = positives / n
    rate = conversions / sizes
    cum_conversions = np.cumsum(conversions)
    return pd.DataFrame(
        {
            "decile": np.arange(1, n_bins + 1),
            "n": sizes,
            "proba_min": p_desc[ends - 1],
            "proba_max": p_desc[starts],
            "conversions": conversions,
            "conversion_rate": rate,
            "mean_proba": np.add.reduceat(p_desc, starts) / sizes,
            "cum_share_leads": ends / n,
            "cum_gain": cum_conversions / positives,
            "lift": rate / base_rate,
            "cum_lift": (cum_conversions / ends) / base_rate,
        }
    )
