"""Holdout metrics, gains and calibration tables: on arrays small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.errors import DataError
from leadml.evaluate import (
    METRIC_NAMES,
    calibration_table,
    check_scores,
    expected_calibration_error,
    gains_table,
    holdout_metrics,
    ranked_outcomes,
)

# Ten leads, best first. Conversions at ranks 1, 2, 4 and 6: base rate 0.4.
PROBA = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])


# --------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("y", "proba", "fragment"),
    [
        ([0, 1], [0.5], "2 outcomes but 1 probabilities"),
        ([0, 2], [0.5, 0.5], "0/1"),
        (["no", "yes"], [0.5, 0.5], "0/1"),
        ([0, 1], [0.5, 1.2], "between 0 and 1"),
        ([0, 1], [0.5, np.nan], "NaN"),
        ([], [], "no leads"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_check_scores_rejects_bad_input(y: list, proba: list, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        check_scores(y, proba)


def test_check_scores_accepts_booleans_and_float_labels() -> None:
    y, _ = check_scores(np.array([True, False]), [0.7, 0.2])
    assert y.tolist() == [1, 0]
    y, _ = check_scores(pd.Series([1.0, 0.0]), [0.7, 0.2])
    assert y.dtype == np.int64 and y.tolist() == [1, 0]


# --------------------------------------------------------------------------- holdout metrics


def test_holdout_metrics_by_hand() -> None:
    metrics = holdout_metrics(Y, PROBA)
    assert tuple(metrics) == METRIC_NAMES
    # 24 converter/non-converter pairs; the converters at 0.65 and 0.45 are out-ranked by
    # one and two non-converters: (24 - 3) / 24.
    assert metrics["roc_auc"] == pytest.approx(21 / 24)
    # Precision at each converter's rank: 1/1, 2/2, 3/4, 4/6.
    assert metrics["pr_auc"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 6) / 4)
    squared_errors = [0.05, 0.15, 0.75, 0.35, 0.55, 0.55, 0.35, 0.25, 0.15, 0.05]
    assert metrics["brier"] == pytest.approx(np.mean(np.square(squared_errors)))
    assert metrics["log_loss"] == pytest.approx(
        -np.mean(np.log(np.where(Y == 1, PROBA, 1 - PROBA)))
    )
    # Ten quantile bins of one lead each: ECE is the mean |p - y|.
    assert metrics["ece"] == pytest.approx(3.2 / 10)
    # The top decile is the lead at 0.95, which converted: 1.0 / 0.4.
    assert metrics["lift_top_decile"] == pytest.approx(2.5)
    assert metrics["base_rate"] == pytest.approx(0.4)
    assert metrics["n"] == 10.0
    assert all(isinstance(value, float) for value in metrics.values())


def test_perfect_ranking_scores_one() -> None:
    metrics = holdout_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0


def test_holdout_metrics_need_both_outcomes() -> None:
    with pytest.raises(DataError, match="every lead did not convert"):
        holdout_metrics([0, 0, 0], [0.1, 0.2, 0.3])


def test_lift_top_decile_rounds_the_decile_up_and_averages_ties() -> None:
    # 15 leads: the top decile is the best 2; they are tied with a third lead (0.9), and one of
    # the three converted, so the top two count as 2/3 of a conversion.
    proba = np.array([0.9, 0.9, 0.9] + [0.1] * 12)
    y = np.array([0, 0, 1] + [0] * 11 + [1])
    metrics = holdout_metrics(y, proba)
    top_rate = (2 / 3) / 2
    assert metrics["lift_top_decile"] == pytest.approx(top_rate / (2 / 15))


# --------------------------------------------------------------------------- calibration


def test_ece_is_zero_when_each_bin_matches_its_rate() -> None:
    proba = [0.2] * 5 + [0.8] * 5
    y = [1, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert expected_calibration_error(y, proba) == pytest.approx(0.0)


def test_calibration_table_by_hand_with_five_bins() -> None:
    table = calibration_table(Y, PROBA, n_bins=5)
    assert table["n"].tolist() == [2, 2, 2, 2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert table["observed_rate"].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5, 1.0])
    assert table["gap"].tolist() == pytest.approx([-0.1, -0.3, 0.0, -0.2, 0.1])
    # Equal weights: mean of the absolute gaps.
    assert expected_calibration_error(Y, PROBA, n_bins=5) == pytest.approx(0.7 / 5)


def test_calibration_bins_never_split_tied_probabilities() -> None:
    proba = np.array([0.1] * 6 + [0.3] * 3 + [0.7])
    y = np.array([0, 0, 0, 0, 0, 1, 0, 1, 0, 1])
    table = calibration_table(y, proba, n_bins=10)
    assert table["n"].tolist() == [6, 3, 1]
    assert (table["proba_min"] == table["proba_max"]).all()
    assert table["observed_rate"].tolist() == pytest.approx([1 / 6, 1 / 3, 1.0])


def test_uniform_bins_cut_zero_to_one() -> None:
    table = calibration_table(Y, PROBA, n_bins=2, strategy="uniform")
    assert table["n"].tolist() == [5, 5]
    assert table["proba_max"].tolist() == [0.45, 0.95]


# --------------------------------------------------------------------------- gains


def test_gains_table_by_hand() -> None:
    table = gains_table(Y, PROBA)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["n"].tolist() == [1] * 10
    assert table["proba_max"].tolist() == PROBA.tolist()
    assert table["conversions"].tolist() == Y.tolist()
    assert table["cum_share_leads"].tolist() == pytest.approx(np.arange(1, 11) / 10)
    assert table["cum_gain"].tolist() == pytest.approx([0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1, 1, 1])
    assert table["lift"].tolist() == pytest.approx(Y / 0.4)
    # Cumulative lift at decile 4: 3 conversions in 4 leads, over 0.4.
    assert table["cum_lift"].iloc[3] == pytest.approx(0.75 / 0.4)
    assert table["cum_lift"].iloc[-1] == pytest.approx(1.0)
    assert holdout_metrics(Y, PROBA)["lift_top_decile"] == pytest.approx(table["lift"].iloc[0])


def test_gains_table_shares_a_straddling_tie_between_deciles() -> None:
    # Two groups of two; the tied pair at 0.5 is split by the boundary and converted once.
    table = gains_table([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], n_bins=2)
    assert table["n"].tolist() == [2, 2]
    assert table["conversions"].tolist() == pytest.approx([1.5, 0.5])
    assert table["cum_gain"].tolist() == pytest.approx([0.75, 1.0])


def test_gains_table_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(3)
    proba = rng.choice([0.1, 0.2, 0.4, 0.7], size=200)
    y = (rng.random(200) < proba).astype(int)
    order = rng.permutation(200)
    pd.testing.assert_frame_equal(gains_table(y, proba), gains_table(y[order], proba[order]))


def test_gains_table_sizes_for_an_uneven_count() -> None:
    rng = np.random.default_rng(0)
    proba = rng.random(15)
    y = (proba > 0.5).astype(int)
    table = gains_table(y, proba)
    assert table["n"].sum() == 15
    assert table["n"].iloc[0] == 2  # the top 10 % of 15 leads, rounded up
    assert table["cum_share_leads"].iloc[-1] == 1.0
    assert table["cum_gain"].iloc[-1] == pytest.approx(1.0)
    assert (table["proba_min"].to_numpy()[:-1] >= table["proba_max"].to_numpy()[1:]).all()


def test_gains_table_errors() -> None:
    with pytest.raises(DataError, match="at least 10 leads"):
        gains_table([0, 1, 1], [0.1, 0.5, 0.9])
    with pytest.raises(DataError, match="no lead converted"):
        gains_table([0] * 10, PROBA)


def test_ranked_outcomes_average_tied_groups() -> None:
    p_desc, y_tied = ranked_outcomes([0, 1, 1, 0], [0.2, 0.5, 0.2, 0.2])
    assert p_desc.tolist() == [0.5, 0.2, 0.2, 0.2]
    assert y_tied.tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3])
