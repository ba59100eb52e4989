"""The demo's variants: one table, seeded like the rest of the stream, mechanism unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml.demo import (
    BLOCK_ROWS,
    COLUMNS,
    CONTACTED_WHEN_CONVERTED,
    TARGET,
    TIME_COLUMN,
    VARIANTS,
    columns_of,
    generate_leads,
    leaky_columns_of,
    true_log_odds,
    write_demo_leads,
)
from leadml.errors import DataError

BOTH = ("post-contact", "day-first")


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return generate_leads(10_000, seed=4)


@pytest.fixture(scope="module")
def post_contact() -> pd.DataFrame:
    return generate_leads(10_000, seed=4, variants=("post-contact",))


def test_variants_live_in_one_table_with_their_columns() -> None:
    assert {"post-contact", "day-first"} <= set(VARIANTS)
    for name, variant in VARIANTS.items():
        assert variant.name == name and variant.description
        assert set(variant.leaky_columns) <= {c for c, _ in variant.added_columns}
    salts = [variant.salt for variant in VARIANTS.values()]
    assert len(set(salts)) == len(salts)
    assert leaky_columns_of(("post-contact",))[-2:] == ("call_duration_sec", "sales_touches")


def test_a_variant_adds_its_columns_before_the_target(post_contact: pd.DataFrame) -> None:
    assert list(post_contact.columns) == list(columns_of(("post-contact",)))
    assert list(post_contact.columns[:-3]) == list(COLUMNS[:-1])
    assert post_contact.columns[-1] == TARGET


def test_a_variant_leaves_the_leads_and_their_outcomes_as_they_were(
    base: pd.DataFrame, post_contact: pd.DataFrame
) -> None:
    pd.testing.assert_frame_equal(post_contact[list(COLUMNS)], base)
    np.testing.assert_allclose(true_log_odds(post_contact), true_log_odds(base))


def test_a_call_length_of_zero_means_sales_never_reached_the_lead(
    post_contact: pd.DataFrame,
) -> None:
    converted = post_contact[TARGET] == 1
    uncontacted = post_contact["call_duration_sec"] == 0
    assert (uncontacted == (post_contact["sales_touches"] == 0)).all()
    assert 0.2 < uncontacted.mean() < 0.5
    assert post_contact.loc[uncontacted, TARGET].mean() < 0.05
    assert (~uncontacted[converted]).mean() == pytest.approx(CONTACTED_WHEN_CONVERTED, abs=0.02)
    reached = ~uncontacted
    longer = post_contact.loc[reached & converted, "call_duration_sec"].median()
    assert longer > post_contact.loc[reached & ~converted, "call_duration_sec"].median()
    assert (post_contact.loc[reached, "sales_touches"] >= 1).all()


def test_day_first_writes_the_same_moments_day_first(base: pd.DataFrame) -> None:
    day_first = generate_leads(10_000, seed=4, variants=("day-first",))
    text = day_first[TIME_COLUMN]
    assert text.str.fullmatch(r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}").all()
    parsed = pd.to_datetime(text, format="%d-%m-%Y %H:%M:%S")
    pd.testing.assert_series_equal(parsed, pd.to_datetime(base[TIME_COLUMN]), check_names=False)
    # Both kinds of day are there: 01-02 (either way) and 26-02 (only day-first).
    days = text.str.slice(0, 2).astype(int)
    assert (days <= 12).any() and (days > 12).any()


def test_the_world_shifts_on_the_same_day_whether_or_not_dates_are_written_day_first() -> None:
    """time-shift after day-first reads the dates as written (2024-01-02 is not 1 February)."""
    after = generate_leads(10_000, seed=5, variants=("day-first", "time-shift"))
    before = generate_leads(10_000, seed=5, variants=("time-shift", "day-first"))
    pd.testing.assert_series_equal(after[TARGET], before[TARGET])
    assert not after[TARGET].equals(generate_leads(10_000, seed=5)[TARGET])


def test_variants_keep_the_stream_the_same_however_it_is_cut() -> None:
    start = BLOCK_ROWS - 150
    window = generate_leads(300, seed=5, start_id=start, variants=BOTH)
    whole = generate_leads(start + 300, seed=5, variants=BOTH)
    pd.testing.assert_frame_equal(window, whole.iloc[start:].reset_index(drop=True))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_variants_are_written_whatever_the_chunk_size(tmp_path: Path, suffix: str) -> None:
    single = write_demo_leads(tmp_path / f"a{suffix}", 500, seed=2, chunk_rows=500, variants=BOTH)
    chunked = write_demo_leads(tmp_path / f"b{suffix}", 500, seed=2, chunk_rows=77, variants=BOTH)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    back = read(chunked)
    pd.testing.assert_frame_equal(back, read(single))
    assert list(back.columns) == list(columns_of(BOTH))
    assert pd.api.types.is_integer_dtype(back["call_duration_sec"].dtype)


@pytest.mark.parametrize(
    ("variants", "message"),
    [(("post-kontakt",), "unknown demo variant 'post-kontakt'"), (BOTH + BOTH[:1], "twice")],
)
def test_bad_variants_are_refused(tmp_path: Path, variants: tuple[str, ...], message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate_leads(100, variants=variants)
    with pytest.raises(DataError, match=message):
        write_demo_leads(tmp_path / "x.csv", 100, variants=variants)
    assert not (tmp_path / "x.csv").exists()


def test_landing_pages_are_many_rare_and_new_each_quarter(base: pd.DataFrame) -> None:
    """landing-page: thousands of opaque page ids, each within one channel, most seen a few
    times, new ones each quarter; the leads and their outcomes are the base stream's."""
    leads = generate_leads(10_000, seed=4, variants=("landing-page",))
    pd.testing.assert_frame_equal(leads.drop(columns="landing_page_id"), base)
    pages = leads["landing_page_id"]
    counts = pages.value_counts()
    assert counts.size > 1500 and (counts < 5).mean() > 0.5  # many, mostly rare
    assert pages.str.fullmatch(r"lp-[0-9a-f]{8}").all()
    channel = leads["campaign"].fillna(leads["lead_source"])
    assert (channel.groupby(pages).nunique() == 1).all()  # a page belongs to one channel
    quarter = pd.to_datetime(leads[TIME_COLUMN]).dt.to_period("Q")
    assert (quarter.groupby(pages).nunique() == 1).all()  # and is live for one quarter
    day_first = generate_leads(10_000, seed=4, variants=("day-first", "landing-page"))
    pd.testing.assert_series_equal(day_first["landing_page_id"], pages)
