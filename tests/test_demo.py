"""Tests for the synthetic demo leads and their documented ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadml.demo import (
    BLOCK_ROWS,
    COLUMNS,
    ID_COLUMN,
    LEAKY_COLUMNS,
    MAX_ROWS,
    MIN_ROWS,
    STRONGEST_TRAITS,
    TARGET,
    TIME_COLUMN,
    generate_leads,
    true_log_odds,
    write_demo_leads,
)
from leadml.errors import DataError

EXPECTED_COLUMNS = [
    "lead_id",
    "created_at",
    "lead_source",
    "campaign",
    "country",
    "industry",
    "company_size",
    "job_level",
    "web_visits",
    "time_on_site_sec",
    "pages_per_visit",
    "email_opens",
    "email_clicks",
    "form_fills",
    "requested_demo",
    "days_since_last_activity",
    "newsletter_opt_in",
    "sales_status",
    "lead_quality",
    "converted",
]
TEXT_COLUMNS = [
    "lead_id",
    "created_at",
    "lead_source",
    "campaign",
    "country",
    "industry",
    "company_size",
    "job_level",
    "requested_demo",
    "newsletter_opt_in",
    "sales_status",
    "lead_quality",
]
INTEGER_COLUMNS = [
    "time_on_site_sec",
    "email_opens",
    "email_clicks",
    "form_fills",
    "days_since_last_activity",
    "converted",
]


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(20_000, seed=7)


def _rate(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> float:
    return float(frame.loc[mask, TARGET].mean())


# -- determinism -------------------------------------------------------------------------------
def test_same_seed_gives_the_same_frame() -> None:
    pd.testing.assert_frame_equal(generate_leads(2_000, seed=3), generate_leads(2_000, seed=3))


def test_different_seeds_give_different_frames() -> None:
    first = generate_leads(2_000, seed=3)
    second = generate_leads(2_000, seed=4)
    assert (first["time_on_site_sec"] != second["time_on_site_sec"]).mean() > 0.9
    assert (first["created_at"] != second["created_at"]).mean() > 0.9


def test_a_window_of_the_stream_is_the_same_however_it_is_cut() -> None:
    start = BLOCK_ROWS - 150  # the window crosses a block boundary
    window = generate_leads(300, seed=5, start_id=start)
    whole = generate_leads(start + 300, seed=5)
    expected = whole.iloc[start:].reset_index(drop=True)
    pd.testing.assert_frame_equal(window, expected)
    assert window[ID_COLUMN].iloc[0] == f"L{start + 1:07d}"


# -- shape of the data -------------------------------------------------------------------------
def test_columns_come_in_the_documented_order(leads: pd.DataFrame) -> None:
    assert list(leads.columns) == EXPECTED_COLUMNS
    assert list(COLUMNS) == EXPECTED_COLUMNS
    assert (TARGET, ID_COLUMN, TIME_COLUMN) == ("converted", "lead_id", "created_at")
    assert LEAKY_COLUMNS == ("sales_status", "lead_quality")


def test_column_dtypes(leads: pd.DataFrame) -> None:
    for column in TEXT_COLUMNS:
        assert pd.api.types.is_string_dtype(leads[column].dtype), column
    for column in INTEGER_COLUMNS:
        assert pd.api.types.is_integer_dtype(leads[column].dtype), column
    for column in ("web_visits", "pages_per_visit"):
        assert pd.api.types.is_float_dtype(leads[column].dtype), column
    assert set(leads[TARGET].unique()) == {0, 1}
    assert set(leads["requested_demo"].unique()) == {"Yes", "No"}
    assert set(leads["newsletter_opt_in"].unique()) == {"Yes", "No"}


def test_ids_are_unique_and_sequential(leads: pd.DataFrame) -> None:
    assert leads[ID_COLUMN].is_unique
    assert leads[ID_COLUMN].str.fullmatch(r"L\d{7}").all()
    assert leads[ID_COLUMN].iloc[0] == "L0000001"
    assert leads[ID_COLUMN].iloc[-1] == "L0020000"


def test_created_at_is_iso_and_spans_about_eighteen_months(leads: pd.DataFrame) -> None:
    assert leads[TIME_COLUMN].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").all()
    moments = pd.to_datetime(leads[TIME_COLUMN], format="%Y-%m-%dT%H:%M:%S")
    span_days = (moments.max() - moments.min()).days
    assert 500 <= span_days <= 560


def test_categories_look_like_a_crm_export(leads: pd.DataFrame) -> None:
    assert leads["lead_source"].nunique() == 9
    assert 10 <= leads["campaign"].nunique() <= 20
    rare_campaigns = leads["campaign"].value_counts(normalize=True)
    assert rare_campaigns.min() < 0.01
    assert set(leads["company_size"].dropna()) == {
        "1-10",
        "11-50",
        "51-200",
        "201-1000",
        "1000+",
        "Unknown",
    }
    assert set(leads["job_level"].dropna()) == {
        "Student",
        "Individual Contributor",
        "Manager",
        "Director",
        "VP",
        "C-Level",
    }


def test_counts_are_sane(leads: pd.DataFrame) -> None:
    assert (leads["email_clicks"] <= leads["email_opens"]).all()
    assert (leads["form_fills"] >= (leads["requested_demo"] == "Yes")).all()
    no_visit = leads["web_visits"] == 0
    assert (leads.loc[no_visit, "time_on_site_sec"] == 0).all()
    for column in ("time_on_site_sec", "email_opens", "days_since_last_activity"):
        assert (leads[column] >= 0).all(), column


# -- missing values and placeholders -----------------------------------------------------------
def test_placeholders_and_missing_values_are_present(leads: pd.DataFrame) -> None:
    for column in ("industry", "country"):
        assert (leads[column] == "Select").mean() > 0.02, column
        assert leads[column].isna().mean() > 0.02, column
    assert leads["job_level"].isna().mean() > 0.05
    assert (leads["company_size"] == "Unknown").mean() > 0.05
    for column in ("web_visits", "pages_per_visit"):
        assert 0.005 < leads[column].isna().mean() < 0.05, column
    assert leads["lead_quality"].isna().mean() > 0.3
    assert leads["sales_status"].isna().mean() > 0.1


# -- outcome and ground truth ------------------------------------------------------------------
def test_base_rate_is_between_ten_and_forty_percent(leads: pd.DataFrame) -> None:
    assert 0.10 <= leads[TARGET].mean() <= 0.40


def test_outcome_follows_the_true_log_odds(leads: pd.DataFrame) -> None:
    probability = 1.0 / (1.0 + np.exp(-true_log_odds(leads)))
    assert abs(leads[TARGET].mean() - probability.mean()) < 0.015
    high = probability > 0.6
    low = probability < 0.1
    assert _rate(leads, high) > 0.6
    assert _rate(leads, low) < 0.1
    # Neither trivial nor hopeless: the best possible model lands in a realistic range.
    assert 0.80 <= roc_auc_score(leads[TARGET], probability) <= 0.92


def test_leaky_columns_do_not_enter_the_true_log_odds(leads: pd.DataFrame) -> None:
    without_leaks = leads.drop(columns=[*LEAKY_COLUMNS, TARGET])
    np.testing.assert_array_equal(true_log_odds(without_leaks), true_log_odds(leads))


def test_strongest_traits_move_the_true_log_odds_most(leads: pd.DataFrame) -> None:
    """Shuffling a documented strongest trait hurts more than shuffling any other column."""
    base = true_log_odds(leads)
    base_auc = roc_auc_score(leads[TARGET], base)
    rng = np.random.default_rng(0)
    shift: dict[str, float] = {}
    auc_drop: dict[str, float] = {}
    for column in leads.columns.drop([*LEAKY_COLUMNS, TARGET, ID_COLUMN]):
        shuffled = leads.copy()
        shuffled[column] = shuffled[column].to_numpy()[rng.permutation(len(leads))]
        log_odds = true_log_odds(shuffled)
        shift[column] = float(np.abs(log_odds - base).mean())
        auc_drop[column] = base_auc - roc_auc_score(leads[TARGET], log_odds)
    others = [c for c in shift if c not in STRONGEST_TRAITS]
    assert 3 <= len(STRONGEST_TRAITS) <= 4
    for measure, margin in ((shift, 1.3), (auc_drop, 2.0)):
        weakest_strong = min(measure[c] for c in STRONGEST_TRAITS)
        strongest_other = max(measure[c] for c in others)
        assert weakest_strong > margin * strongest_other, measure
    for no_effect in ("newsletter_opt_in", "campaign", "web_visits", "email_opens"):
        assert shift[no_effect] == 0.0, no_effect


def test_demo_request_converts_much_more(leads: pd.DataFrame) -> None:
    demo = leads["requested_demo"] == "Yes"
    assert _rate(leads, demo) > 2.5 * _rate(leads, ~demo)


def test_time_on_site_helps_then_saturates(leads: pd.DataFrame) -> None:
    time = leads["time_on_site_sec"]
    bounce = _rate(leads, time < 60)
    medium = _rate(leads, (time >= 300) & (time < 600))
    long = _rate(leads, (time >= 600) & (time < 1200))
    very_long = _rate(leads, time >= 1200)
    assert medium > 2 * bounce
    assert long > medium
    # Saturation: the gain from ten to twenty-plus minutes is small.
    assert abs(very_long - long) < long - bounce


def test_seniority_pays_only_at_companies_with_budget(leads: pd.DataFrame) -> None:
    senior = leads["job_level"].isin(["Director", "VP", "C-Level"])
    with_budget = leads["company_size"].isin(["51-200", "201-1000", "1000+"])
    small = leads["company_size"].isin(["1-10", "11-50"])
    assert _rate(leads, senior & with_budget) > 1.5 * _rate(leads, senior & small)
    assert _rate(leads, senior & with_budget) > 2 * _rate(leads, ~senior & with_budget)
    assert _rate(leads, leads["job_level"] == "Student") < 0.7 * _rate(leads, ~senior)


def test_inactivity_lowers_conversion(leads: pd.DataFrame) -> None:
    days = leads["days_since_last_activity"]
    assert _rate(leads, days <= 2) > 1.5 * _rate(leads, days >= 30)


def test_newsletter_opt_in_has_no_effect(leads: pd.DataFrame) -> None:
    opted_in = leads["newsletter_opt_in"] == "Yes"
    assert abs(_rate(leads, opted_in) - _rate(leads, ~opted_in)) < 0.03


def test_sales_status_leaks_the_outcome(leads: pd.DataFrame) -> None:
    won = leads["sales_status"] == "Closed - Won"
    assert _rate(leads, won) > 0.95
    assert won[leads[TARGET] == 1].mean() > 0.4
    for lost_tag in ("Ringing", "Not interested", "Lost to competitor"):
        assert _rate(leads, leads["sales_status"] == lost_tag) < 0.05, lost_tag


def test_lead_quality_leaks_more_mildly(leads: pd.DataFrame) -> None:
    rated = leads["lead_quality"].notna()
    high = _rate(leads, leads["lead_quality"] == "High")
    low = _rate(leads, leads["lead_quality"] == "Low")
    assert high > 5 * low
    codes = leads.loc[rated, "lead_quality"].map({"Low": 0, "Not Sure": 1, "Medium": 2, "High": 3})
    auc = roc_auc_score(leads.loc[rated, TARGET], codes)
    assert 0.7 < auc < 0.95


def test_true_log_odds_survive_a_csv_and_parquet_round_trip(tmp_path: Path) -> None:
    frame = generate_leads(1_000, seed=11)
    expected = true_log_odds(frame)
    csv = write_demo_leads(tmp_path / "leads.csv", 1_000, seed=11)
    parquet = write_demo_leads(tmp_path / "leads.parquet", 1_000, seed=11)
    np.testing.assert_allclose(true_log_odds(pd.read_csv(csv)), expected)
    np.testing.assert_allclose(true_log_odds(pd.read_parquet(parquet)), expected)


# -- writing -----------------------------------------------------------------------------------
def test_chunked_csv_is_identical_to_a_single_chunk(tmp_path: Path) -> None:
    single = write_demo_leads(tmp_path / "single.csv", 1_000, seed=2, chunk_rows=1_000)
    chunked = write_demo_leads(tmp_path / "chunked.csv", 1_000, seed=2, chunk_rows=137)
    assert chunked.read_bytes() == single.read_bytes()
    back = pd.read_csv(chunked)
    assert list(back.columns) == EXPECTED_COLUMNS
    assert len(back) == 1_000
    assert list(back[ID_COLUMN]) == [f"L{i:07d}" for i in range(1, 1_001)]
    assert list(back[TIME_COLUMN]) == list(generate_leads(1_000, seed=2)[TIME_COLUMN])


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_chunked_parquet_is_identical_to_a_single_chunk(tmp_path: Path, suffix: str) -> None:
    single = write_demo_leads(tmp_path / f"single{suffix}", 1_000, seed=2, chunk_rows=1_000)
    chunked = write_demo_leads(tmp_path / f"chunked{suffix}", 1_000, seed=2, chunk_rows=137)
    from_single = pd.read_parquet(single)
    from_chunked = pd.read_parquet(chunked)
    pd.testing.assert_frame_equal(from_chunked, from_single)
    generated = generate_leads(1_000, seed=2)
    assert list(from_chunked.columns) == EXPECTED_COLUMNS
    assert from_chunked[ID_COLUMN].is_unique
    np.testing.assert_array_equal(from_chunked[TARGET].to_numpy(), generated[TARGET].to_numpy())
    np.testing.assert_array_equal(
        from_chunked["web_visits"].to_numpy(), generated["web_visits"].to_numpy()
    )


def test_writing_leaves_only_the_target_file(tmp_path: Path) -> None:
    written = write_demo_leads(tmp_path / "nested" / "leads.csv", 250, chunk_rows=100)
    assert written == tmp_path / "nested" / "leads.csv"
    assert [p.name for p in written.parent.iterdir()] == ["leads.csv"]


@pytest.mark.parametrize("n_rows", [0, MIN_ROWS - 1, MAX_ROWS + 1])
def test_size_out_of_range_is_refused(tmp_path: Path, n_rows: int) -> None:
    target = tmp_path / "leads.csv"
    with pytest.raises(DataError, match=r"between 100 and 10,000,000"):
        write_demo_leads(target, n_rows)
    assert not target.exists()


def test_unknown_file_type_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "leads.xlsx"
    with pytest.raises(DataError, match=r"\.csv, \.parquet or \.pq"):
        write_demo_leads(target, 1_000)
    assert not target.exists()


def test_bad_generation_arguments_are_refused() -> None:
    with pytest.raises(DataError, match="n_rows"):
        generate_leads(0)
    with pytest.raises(DataError, match="seed"):
        generate_leads(100, seed=-1)
    with pytest.raises(DataError, match="start_id"):
        generate_leads(100, start_id=-5)
    with pytest.raises(DataError, match="chunk_rows"):
        write_demo_leads("leads.csv", 1_000, chunk_rows=0)
