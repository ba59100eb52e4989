"""MQL policies, threshold tables, intervals and grades, checked against numbers worked by hand.

The worked example: ten leads with probabilities 0.95, 0.85, ..., 0.05 (best first) and
conversions at ranks 1, 2, 4 and 6 (base rate 0.4). Taking the top k leads:

    k  cut-off  conversions  precision  recall  value/lead (deal 1000, cost 300)
    1   0.95        1          1.000     0.25      (1000 -  300) / 10 =  70
    2   0.85        2          1.000     0.50      (2000 -  600) / 10 = 140
    3   0.75        2          0.667     0.50      (2000 -  900) / 10 = 110
    4   0.65        3          0.750     0.75      (3000 - 1200) / 10 = 180
    5   0.55        3          0.600     0.75      (3000 - 1500) / 10 = 150
    6   0.45        4          0.667     1.00      (4000 - 1800) / 10 = 220
    7   0.35        4          0.571     1.00      (4000 - 2100) / 10 = 190
    8   0.25        4          0.500     1.00                            160
    9   0.15        4          0.444     1.00                            130
   10   0.05        4          0.400     1.00                            100
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from leadml.errors import DataError, PolicyError
from leadml.threshold import (
    CapacityPolicy,
    FixedPolicy,
    GradeBands,
    MaxValuePolicy,
    MinPrecisionPolicy,
    MinRecallPolicy,
    Policy,
    assign_grades,
    bootstrap_intervals,
    default_grade_bands,
    grade_table,
    policy_from_dict,
    resolve_policy,
    simulate_shift,
    threshold_table,
)

PROBA = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
PRECISION = [1, 1, 2 / 3, 3 / 4, 3 / 5, 4 / 6, 4 / 7, 4 / 8, 4 / 9, 4 / 10]
RECALL = [0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1, 1, 1]
VALUE = [70, 140, 110, 180, 150, 220, 190, 160, 130, 100]


# --------------------------------------------------------------------------- threshold table


def test_threshold_table_by_hand() -> None:
    table = threshold_table(Y, PROBA, leads_per_week=1000, deal_value=1000, cost_per_contact=300)
    assert list(table.columns[:8]) == [
        "cutoff",
        "mql_share",
        "mqls_per_week",
        "precision",
        "recall",
        "lift",
        "expected_value_per_lead",
        "expected_conversions_per_week",
    ]
    assert table["cutoff"].tolist() == PROBA.tolist()
    assert table["mql_share"].tolist() == pytest.approx(np.arange(1, 11) / 10)
    assert table["mqls_per_week"].tolist() == pytest.approx(np.arange(1, 11) * 100)
    assert table["precision"].tolist() == pytest.approx(PRECISION)
    assert table["recall"].tolist() == pytest.approx(RECALL)
    assert table["lift"].tolist() == pytest.approx(np.array(PRECISION) / 0.4)
    assert table["expected_value_per_lead"].tolist() == pytest.approx(VALUE)
    # Conversions a week = conversions among MQLs / 10 leads * 1000 leads a week.
    assert table["expected_conversions_per_week"].tolist() == pytest.approx(
        [100, 200, 200, 300, 300, 400, 400, 400, 400, 400]
    )
    assert table["holdout_conversions"].tolist() == [1, 2, 2, 3, 3, 4, 4, 4, 4, 4]


def test_threshold_table_leaves_unknown_columns_empty() -> None:
    table = threshold_table(Y, PROBA)
    assert table["mqls_per_week"].isna().all()
    assert table["expected_value_per_lead"].isna().all()
    assert table["expected_conversions_per_week"].isna().all()
    assert table["precision"].notna().all()


def test_threshold_table_at_given_cutoffs() -> None:
    table = threshold_table(Y, PROBA, cutoffs=[0.5, 0.99, 0.0])
    assert table["cutoff"].tolist() == [0.99, 0.5, 0.0]
    assert table["mql_share"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert math.isnan(table["precision"].iloc[0])
    assert table["precision"].iloc[1] == pytest.approx(0.6)


def test_threshold_table_on_a_big_holdout_has_one_row_per_point_of_share() -> None:
    rng = np.random.default_rng(0)
    proba = rng.random(20_000)
    y = (rng.random(20_000) < proba).astype(int)
    table = threshold_table(y, proba)
    assert len(table) == 101
    assert table["cutoff"].is_monotonic_decreasing
    assert table["cutoff"].iloc[0] == proba.max()
    assert set(table["cutoff"]) <= set(proba)
    # Each step's share never exceeds its percentage point.
    steps = np.arange(1, 101) / 100
    assert (table["mql_share"].to_numpy()[1:] <= steps + 1e-12).all()
    assert (table["mql_share"].to_numpy()[1:] > steps - 0.01).all()


def test_threshold_table_input_errors() -> None:
    with pytest.raises(PolicyError, match="both deal_value and cost_per_contact"):
        threshold_table(Y, PROBA, deal_value=1000)
    with pytest.raises(PolicyError, match="leads_per_week must be a positive"):
        threshold_table(Y, PROBA, leads_per_week=0)
    with pytest.raises(PolicyError, match="between 0 and 1"):
        threshold_table(Y, PROBA, cutoffs=[1.5])
    with pytest.raises(DataError, match="no holdout lead converted"):
        threshold_table(np.zeros(10), PROBA)


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize(
    ("policy", "cutoff", "precision", "recall"),
    [
        # 300 of 1000 a week = 30 % -> the top 3 leads.
        (CapacityPolicy(per_week=300, leads_per_week=1000), 0.75, 2 / 3, 0.5),
        # 25 % of 10 leads is 2.5 leads: never more than capacity, so the top 2.
        (CapacityPolicy(per_week=250, leads_per_week=1000), 0.85, 1.0, 0.5),
        (CapacityPolicy(per_week=1000, leads_per_week=1000), 0.05, 0.4, 1.0),
        # Precision >= 0.7: k = 4 (0.75) is the lowest; k = 6 has only 0.667.
        (MinPrecisionPolicy(0.7), 0.65, 0.75, 0.75),
        # Precision >= 0.6: k = 6 (0.667) is the lowest even though k = 5 and k = 6 both meet it
        # and k = 3 (0.667) sits between higher cut-offs that do.
        (MinPrecisionPolicy(0.6), 0.45, 4 / 6, 1.0),
        (MinPrecisionPolicy(1.0), 0.85, 1.0, 0.5),
        # Recall >= 0.75: the highest cut-off reaching it is k = 4.
        (MinRecallPolicy(0.75), 0.65, 0.75, 0.75),
        (MinRecallPolicy(0.8), 0.45, 4 / 6, 1.0),
        (MinRecallPolicy(1.0), 0.45, 4 / 6, 1.0),
        # Observed value peaks at k = 6 (220 per lead).
        (MaxValuePolicy(deal_value=1000, cost_per_contact=300), 0.45, 4 / 6, 1.0),
        # Cost 700: values 30, 60, -10, 20, ... -> k = 2.
        (MaxValuePolicy(deal_value=1000, cost_per_contact=700), 0.85, 1.0, 0.5),
        # Calibrated: contact when p * 1000 >= 300, i.e. p >= 0.3 -> k = 7.
        (MaxValuePolicy(1000, 300, basis="calibrated"), 0.3, 4 / 7, 1.0),
        (FixedPolicy(0.5), 0.5, 0.6, 0.75),
    ],
)
def test_policies_resolve_to_the_hand_computed_cutoff(
    policy: Policy, cutoff: float, precision: float, recall: float
) -> None:
    resolution = resolve_policy(policy, Y, PROBA, n_boot=200)
    assert resolution.cutoff == pytest.approx(cutoff)
    assert resolution.precision == pytest.approx(precision)
    assert resolution.recall == pytest.approx(recall)
    assert resolution.lift == pytest.approx(precision / 0.4)
    assert resolution.policy == policy
    assert set(resolution.intervals) == {"precision", "recall", "mql_share"}


def test_capacity_resolution_reads_back_as_a_sentence() -> None:
    resolution = resolve_policy(CapacityPolicy(300, 1000), Y, PROBA)
    assert resolution.sentence == (
        "Sales can work 300 of 1,000 leads a week, so the top 30.0 % of leads"
        " (probability >= 0.75) become MQLs: about 300 MQLs a week, of which about 67 % convert,"
        " capturing 50 % of all conversions."
    )
    assert resolution.mql_share == pytest.approx(0.3)
    assert resolution.mqls_per_week == pytest.approx(300)
    assert resolution.expected_conversions_per_week == pytest.approx(200)
    assert resolution.expected_value_per_lead is None


def test_max_value_resolution_reports_value_per_lead() -> None:
    resolution = resolve_policy(MaxValuePolicy(1000, 300), Y, PROBA, leads_per_week=500)
    assert resolution.expected_value_per_lead == pytest.approx(220)
    assert resolution.mqls_per_week == pytest.approx(300)
    assert "expected value of 220.00 per lead" in resolution.sentence
    assert "probability >= 0.45" in resolution.sentence


def test_context_figures_for_other_policies() -> None:
    resolution = resolve_policy(
        MinRecallPolicy(0.75), Y, PROBA, leads_per_week=1000, deal_value=1000, cost_per_contact=300
    )
    assert resolution.mqls_per_week == pytest.approx(400)
    assert resolution.expected_value_per_lead == pytest.approx(180)
    assert resolution.sentence.startswith("To capture at least 75 % of all conversions, the top")


def test_capacity_with_ties_keeps_the_whole_tie_out() -> None:
    # Three of ten leads may be MQLs, but three leads are tied at 0.8 behind the lead at 0.9:
    # taking the tie would make four MQLs, so only the lead at 0.9 is one.
    proba = [0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    resolution = resolve_policy(CapacityPolicy(3, 10), y, proba, n_boot=100)
    assert resolution.cutoff == 0.9
    assert resolution.mql_share == pytest.approx(0.1)


def test_fixed_cutoff_above_every_lead_has_no_mqls() -> None:
    resolution = resolve_policy(FixedPolicy(0.99), Y, PROBA, n_boot=100)
    assert resolution.mql_share == 0.0
    assert math.isnan(resolution.precision)
    assert "no MQLs" in resolution.sentence


def test_policy_resolution_errors() -> None:
    # Best precision of this holdout: 1 of the top 2 = 50 %.
    y_weak = [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    with pytest.raises(PolicyError, match=r"highest on the holdout is 50\.0 %"):
        resolve_policy(MinPrecisionPolicy(0.9), y_weak, PROBA)
    # Values at k = 2 and k = 5 (the only conversions): (1000 - 1200) / 10 and (2000 - 3000) / 10.
    with pytest.raises(PolicyError, match="no cut-off has a positive expected value"):
        resolve_policy(MaxValuePolicy(1000, 600), y_weak, PROBA)
    # Contact only when p >= 97 / 100, but the best lead has 0.95.
    with pytest.raises(PolicyError, match=r"no holdout lead reaches probability 0\.97"):
        resolve_policy(MaxValuePolicy(100, 97, basis="calibrated"), Y, PROBA)
    # One lead in 20 is less than the single best lead out of 10.
    with pytest.raises(PolicyError, match="tied at the highest probability"):
        resolve_policy(CapacityPolicy(1, 20), Y, PROBA)
    with pytest.raises(PolicyError, match="leads_per_week is 1,000 in the policy"):
        resolve_policy(CapacityPolicy(300, 1000), Y, PROBA, leads_per_week=2000)
    with pytest.raises(DataError, match="no holdout lead converted"):
        resolve_policy(FixedPolicy(0.5), np.zeros(10), PROBA)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: MinPrecisionPolicy(0), r"min_precision must be a share in \(0, 1\]"),
        (lambda: MinPrecisionPolicy(60), "write 60 % as 0.6"),
        (lambda: MinRecallPolicy(-0.1), "min_recall must be a share"),
        (lambda: MinRecallPolicy(float("nan")), "finite"),
        (lambda: CapacityPolicy(2000, 1500), r"per_week \(2,000\) cannot exceed leads_per_week"),
        (lambda: CapacityPolicy(0, 1500), "per_week must be a positive"),
        (lambda: CapacityPolicy(10, -5), "leads_per_week must be a positive"),
        (lambda: MaxValuePolicy(-1, 0), "deal_value must be a positive"),
        (lambda: MaxValuePolicy(100, -1), "cost_per_contact cannot be negative"),
        (lambda: MaxValuePolicy(100, 100), "must be lower than deal_value"),
        (lambda: MaxValuePolicy(100, 1, basis="guess"), "basis must be"),  # type: ignore[arg-type]
        (lambda: FixedPolicy(1.2), "cutoff must be a probability"),
        (lambda: FixedPolicy("0.5"), "cutoff must be a number"),  # type: ignore[arg-type]
        (lambda: FixedPolicy(True), "cutoff must be a number"),
    ],
)
def test_policies_validate_their_values(make: Any, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        make()


ALL_POLICIES: list[Policy] = [
    CapacityPolicy(per_week=200, leads_per_week=1500),
    MinPrecisionPolicy(0.6),
    MinRecallPolicy(0.8),
    MaxValuePolicy(deal_value=5000, cost_per_contact=50),
    MaxValuePolicy(deal_value=5000, cost_per_contact=50, basis="calibrated"),
    FixedPolicy(0.3),
]


@pytest.mark.parametrize("policy", ALL_POLICIES)
def test_policy_dict_round_trip_through_json(policy: Policy) -> None:
    data = policy.to_dict()
    assert next(iter(data)) == "kind"
    assert data["kind"] == policy.kind
    assert policy_from_dict(json.loads(json.dumps(data))) == policy


def test_policy_from_dict_defaults_and_errors() -> None:
    assert policy_from_dict({"kind": "max_value", "deal_value": 10, "cost_per_contact": 1}) == (
        MaxValuePolicy(10.0, 1.0, basis="observed")
    )
    assert policy_from_dict({"kind": "fixed", "cutoff": 1}) == FixedPolicy(1.0)
    with pytest.raises(PolicyError, match="unknown policy kind 'quota'"):
        policy_from_dict({"kind": "quota"})
    with pytest.raises(PolicyError, match="unknown policy kind"):
        policy_from_dict({"cutoff": 0.5})
    with pytest.raises(PolicyError, match="does not take per_day"):
        policy_from_dict({"kind": "capacity", "per_day": 5, "leads_per_week": 10})
    with pytest.raises(PolicyError, match="capacity policy needs leads_per_week"):
        policy_from_dict({"kind": "capacity", "per_week": 5})
    with pytest.raises(PolicyError, match="must be an object"):
        policy_from_dict(["fixed", 0.5])  # type: ignore[arg-type]


def test_resolution_to_dict_is_json_ready() -> None:
    resolution = resolve_policy(MinPrecisionPolicy(0.7), Y, PROBA, n_boot=100)
    data = json.loads(json.dumps(resolution.to_dict()))
    assert data["policy"] == {"kind": "min_precision", "min_precision": 0.7}
    assert data["cutoff"] == 0.65
    assert data["mqls_per_week"] is None
    low, high = data["intervals"]["precision"]
    assert low <= 0.75 <= high


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_covers_the_population_figures_about_as_often_as_promised() -> None:
    rng = np.random.default_rng(2024)
    population_proba = rng.beta(2, 5, size=200_000)
    population_y = (rng.random(200_000) < population_proba).astype(int)
    cutoff = 0.4
    mql = population_proba >= cutoff
    true_precision = population_y[mql].mean()
    true_recall = population_y[mql].sum() / population_y.sum()
    true_share = mql.mean()

    simulations = 200
    covered = {"precision": 0, "recall": 0, "mql_share": 0}
    for simulation in range(simulations):
        rows = rng.integers(0, len(population_y), size=2000)
        intervals = bootstrap_intervals(
            population_y[rows], population_proba[rows], cutoff, level=0.9, seed=simulation
        )
        for name, truth in [
            ("precision", true_precision),
            ("recall", true_recall),
            ("mql_share", true_share),
        ]:
            low, high = intervals[name]
            covered[name] += low <= truth <= high
    for name, hits in covered.items():
        assert 0.80 <= hits / simulations <= 0.97, (name, hits)


def test_bootstrap_matches_resampling_rows() -> None:
    rng = np.random.default_rng(5)
    proba = rng.random(400)
    y = (rng.random(400) < proba).astype(int)
    cutoff = 0.6
    intervals = bootstrap_intervals(y, proba, cutoff, n_boot=4000, level=0.9, seed=1)

    rows = rng.integers(0, 400, size=(4000, 400))
    mql = proba[rows] >= cutoff
    converted = y[rows] == 1
    naive = {
        "precision": (mql & converted).sum(axis=1) / mql.sum(axis=1),
        "recall": (mql & converted).sum(axis=1) / converted.sum(axis=1),
        "mql_share": mql.mean(axis=1),
    }
    for name, values in naive.items():
        expected = np.quantile(values, [0.05, 0.95])
        assert intervals[name] == pytest.approx(tuple(expected), abs=0.015), name


def test_bootstrap_is_seeded_and_widens_with_level() -> None:
    first = bootstrap_intervals(Y, PROBA, 0.5, seed=7)
    assert first == bootstrap_intervals(Y, PROBA, 0.5, seed=7)
    narrow = bootstrap_intervals(Y, PROBA, 0.5, level=0.5)["mql_share"]
    wide = bootstrap_intervals(Y, PROBA, 0.5, level=0.99)["mql_share"]
    assert wide[0] <= narrow[0] <= 0.5 <= narrow[1] <= wide[1]


def test_bootstrap_without_mqls_has_no_precision_interval() -> None:
    intervals = bootstrap_intervals(Y, PROBA, 0.99)
    assert all(math.isnan(bound) for bound in intervals["precision"])
    assert intervals["mql_share"] == (0.0, 0.0)


# --------------------------------------------------------------------------- grades


def test_default_grades_by_hand() -> None:
    # MQL line 0.75 (top 30 %). A: upper half of MQLs but at most the top 10 % -> the top lead.
    # C: upper half of the seven leads below the line -> 3 of them (3.5 rounded down).
    bands = default_grade_bands(PROBA, 0.75)
    assert bands.labels == ("A", "B", "C", "D")
    assert bands.lower_bounds == (0.95, 0.75, 0.45, 0.0)
    grades = assign_grades(PROBA, bands)
    assert grades.tolist() == ["A", "B", "B", "C", "C", "C", "D", "D", "D", "D"]

    table = grade_table(Y, PROBA, bands)
    assert table["grade"].tolist() == ["A", "B", "C", "D"]
    assert table["lower_bound"].tolist() == [0.95, 0.75, 0.45, 0.0]
    assert table["upper_bound"].tolist() == [1.0, 0.95, 0.75, 0.45]
    assert table["n"].tolist() == [1, 2, 3, 4]
    assert table["share_of_leads"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert table["conversions"].tolist() == [1, 1, 2, 0]
    assert table["conversion_rate"].tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.0])
    assert table["share_of_conversions"].tolist() == pytest.approx([0.25, 0.25, 0.5, 0.0])


def test_default_grades_split_the_mqls_exactly() -> None:
    rng = np.random.default_rng(11)
    proba = rng.random(5000)
    cutoff = float(np.quantile(proba, 0.6))
    bands = default_grade_bands(proba, cutoff)
    grades = assign_grades(proba, bands)
    assert bands.labels == ("A", "B", "C", "D")
    assert np.array_equal(np.isin(grades, ["A", "B"]), proba >= cutoff)
    assert np.mean(grades == "A") == pytest.approx(0.10, abs=0.001)
    assert np.mean(grades == "C") == pytest.approx(0.30, abs=0.001)


def test_default_grades_drop_bands_the_holdout_cannot_fill() -> None:
    proba = [0.9] * 5 + [0.1] * 5
    bands = default_grade_bands(proba, 0.9)
    assert bands.labels == ("B", "D")
    assert bands.lower_bounds == (0.9, 0.0)


def test_grades_at_the_bounds() -> None:
    bands = GradeBands(("hot", "warm", "cold"), (0.5, 0.2, 0.0))
    grades = assign_grades([1.0, 0.5, 0.4999, 0.2, 0.0], bands)
    assert grades.tolist() == ["hot", "hot", "warm", "warm", "cold"]
    table = grade_table([1, 0, 0, 0, 0], [1.0, 0.5, 0.4999, 0.2, 0.0], bands)
    assert table["n"].tolist() == [2, 2, 1]


def test_empty_grade_has_no_conversion_rate() -> None:
    bands = GradeBands(("A", "B"), (0.99, 0.0))
    table = grade_table(Y, PROBA, bands)
    assert table["n"].tolist() == [0, 10]
    assert math.isnan(table["conversion_rate"].iloc[0])


def test_grade_bands_round_trip_and_validation() -> None:
    bands = GradeBands(("A", "B", "C"), (0.6, 0.3, 0.0))
    assert GradeBands.from_dict(json.loads(json.dumps(bands.to_dict()))) == bands
    with pytest.raises(PolicyError, match="must decrease"):
        GradeBands(("A", "B"), (0.3, 0.6))
    with pytest.raises(PolicyError, match="last grade's lower bound must be 0"):
        GradeBands(("A", "B"), (0.6, 0.1))
    with pytest.raises(PolicyError, match="unique"):
        GradeBands(("A", "A"), (0.6, 0.0))
    with pytest.raises(PolicyError, match="one lower bound per label"):
        GradeBands(("A", "B"), (0.0,))
    with pytest.raises(PolicyError, match=r"in \[0, 1\]"):
        GradeBands(("A", "B"), (1.5, 0.0))
    with pytest.raises(PolicyError, match="'labels' and 'lower_bounds'"):
        GradeBands.from_dict({"labels": ["A"]})


# --------------------------------------------------------------------------- what-if


def test_simulate_shift_by_hand() -> None:
    # From the top 30 % (0.75) to the top 50 % (0.55): 2 -> 3 conversions in 10 leads.
    shift = simulate_shift(Y, PROBA, 0.75, 20, leads_per_week=1000)
    assert shift.new_cutoff == 0.55
    assert shift.new_mql_share == pytest.approx(0.5)
    assert shift.mql_share_change == pytest.approx(0.2)
    assert shift.mqls_per_week_change == pytest.approx(200)
    assert shift.conversions_per_week_change == pytest.approx(100)
    assert shift.new_precision == pytest.approx(0.6)
    assert shift.new_recall == pytest.approx(0.75)
    assert shift.sentence == (
        "Moving the MQL line by +20 points (from 30.0 % to 50.0 % of leads, probability >= 0.55"
        " instead of 0.75): about +200 MQLs and +100 expected conversions a week."
    )
    assert json.loads(json.dumps(shift.to_dict()))["mqls_per_week_change"] == pytest.approx(200)


def test_simulate_shift_down_and_capped() -> None:
    down = simulate_shift(Y, PROBA, 0.75, -10)
    assert down.new_cutoff == 0.85
    assert down.mqls_per_week_change is None
    assert "capture 50 % of all conversions instead of 50 %" in down.sentence
    everyone = simulate_shift(Y, PROBA, 0.75, 500)
    assert everyone.new_cutoff == 0.05
    assert everyone.new_mql_share == 1.0


def test_simulate_shift_within_a_tie_changes_nothing() -> None:
    proba = [0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    # 10 % -> 20 % would split the tie at 0.8 (which would make 40 %), so the line stays.
    shift = simulate_shift(y, proba, 0.9, 10)
    assert shift.new_cutoff == 0.9
    assert shift.mql_share_change == 0.0


def test_simulate_shift_errors() -> None:
    with pytest.raises(PolicyError, match="leaves no MQLs"):
        simulate_shift(Y, PROBA, 0.75, -30)
    with pytest.raises(PolicyError, match="tied at the highest probability"):
        simulate_shift(Y, PROBA, 0.75, -25)
    with pytest.raises(PolicyError, match="current_cutoff must be a probability"):
        simulate_shift(Y, PROBA, 1.5, 5)
