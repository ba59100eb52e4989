"""Day-month dates (01-02-2018) are read one way per column, the same in every path."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from api.lead_model import build_lead_model
from conftest import demo_config
from leadml import demo
from leadml.data import check_training_frame, split_leads
from leadml.errors import DataError
from leadml.features import LeadPreparer
from leadml.report import model_card
from leadml.schema import (
    DateReading,
    LeadSchema,
    datetime_series,
    decide_date_reading,
    decide_date_readings,
    infer_schema,
    parse_moment,
)
from leadml.train import TrainResult, train_model

MIXED = pd.Series(["01-02-2018", "26-02-2018 10:30", "2018-03-04 10:00", None, "Select", "1/2/18"])


def test_a_value_only_readable_day_first_makes_the_whole_column_day_first() -> None:
    choice = decide_date_reading(MIXED)
    assert choice.reading is DateReading.DAY_FIRST
    assert (choice.only_day_first, choice.only_month_first, choice.day_month_values) == (1, 0, 3)
    assert "'26-02-2018 10:30'" in choice.reason
    parsed = datetime_series(MIXED, choice.reading)
    assert list(parsed[:3]) == [
        pd.Timestamp("2018-02-01"),
        pd.Timestamp("2018-02-26 10:30"),
        pd.Timestamp("2018-03-04 10:00"),  # year-first text is never swapped
    ]
    assert parsed[3:5].isna().all()
    assert parsed[5] == pd.Timestamp("2018-02-01")


def test_pandas_alone_would_read_the_column_value_by_value() -> None:
    # Why leadml does not leave it to pandas: 01-02 becomes January, 26-02 February.
    alone = pd.to_datetime(MIXED[:2], format="mixed")
    assert [moment.month for moment in alone] == [1, 2]


def test_ambiguous_dates_are_month_first_unless_the_user_says_otherwise() -> None:
    ambiguous = pd.Series(["01-02-2018", "03-04-2018 09:00", "12.11.2019"])
    choice = decide_date_reading(ambiguous)
    assert choice.reading is DateReading.MONTH_FIRST
    assert "--date-order day-first" in choice.reason
    assert list(datetime_series(ambiguous, choice.reading).dt.month) == [1, 3, 12]
    asked = decide_date_reading(ambiguous, "day-first")
    assert asked.reading is DateReading.DAY_FIRST and "as asked" in asked.reason
    assert list(datetime_series(ambiguous, asked.reading).dt.month) == [2, 4, 11]


def test_the_users_word_wins_and_values_that_cannot_be_read_so_are_missing() -> None:
    choice = decide_date_reading(MIXED, "month-first")
    assert choice.reading is DateReading.MONTH_FIRST
    assert "1 value such as '26-02-2018 10:30' cannot be read so" in choice.reason
    parsed = datetime_series(MIXED, choice.reading)
    assert parsed[0] == pd.Timestamp("2018-01-02") and pd.isna(parsed[1])
    with pytest.raises(ValueError, match="date order"):
        decide_date_reading(MIXED, "year-first")


def test_iso_and_typed_dates_need_no_reading() -> None:
    iso = pd.Series(["2024-01-02T10:00:00", "2024-01-26 08:00"])
    assert decide_date_reading(iso).day_month_values == 0
    typed = pd.Series(pd.to_datetime(["2024-01-02", "2024-02-03"]))
    assert datetime_series(typed, DateReading.DAY_FIRST).equals(typed)


def test_parse_moment_reads_one_value_as_the_column_does() -> None:
    for reading in DateReading:
        column = datetime_series(MIXED, reading)
        for value, expected in zip(MIXED, column, strict=True):
            moment = parse_moment(value, reading) if value != "Select" else None
            if pd.isna(expected):
                assert moment is None, (value, reading)
            else:
                assert pd.Timestamp(moment).tz_localize(None) == expected, (value, reading)


def _frame(dates: list[str], n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "signed_up": (dates * n)[:n],
            "visits": rng.integers(0, 9, n),
            "won": np.where(rng.random(n) < 0.4, "yes", "no"),
        }
    )


def test_the_schema_keeps_the_reading_and_why_through_json() -> None:
    frame = _frame(["01-02-2018 09:00", "26-02-2018 10:00", "05-03-2018 11:00"])
    schema = infer_schema(frame, "won", "yes")
    spec = schema.column("signed_up")
    assert spec.date_reading is DateReading.DAY_FIRST
    assert "can only be read day-first" in spec.date_reading_reason
    back = LeadSchema.from_json(schema.to_json())
    assert back.column("signed_up").date_reading is DateReading.DAY_FIRST
    assert back.column("signed_up").date_reading_reason == spec.date_reading_reason
    assert back == schema


def test_a_reading_decided_on_all_rows_wins_over_the_rows_the_schema_sees() -> None:
    frame = _frame(["01-02-2018 09:00", "03-02-2018 10:00", "26-02-2018 11:00"])
    readings = decide_date_readings(frame)
    assert set(readings) == {"signed_up"}
    ambiguous_part = frame[~frame["signed_up"].str.startswith("26")]
    alone = infer_schema(ambiguous_part, "won", "yes")
    assert alone.column("signed_up").date_reading is DateReading.MONTH_FIRST
    told = infer_schema(ambiguous_part, "won", "yes", date_readings=readings)
    assert told.column("signed_up").date_reading is DateReading.DAY_FIRST


def test_a_clash_of_readings_is_a_schema_warning() -> None:
    frame = _frame(["01-02-2018 09:00", "26-02-2018 10:00", "05-03-2018 11:00"])
    frame.loc[7, "signed_up"] = "02-27-2018 11:00"  # a typo, or a row from another system
    schema = infer_schema(frame, "won", "yes")
    assert schema.column("signed_up").date_reading is DateReading.DAY_FIRST
    assert any("'02-27-2018 11:00' cannot be" in warning for warning in schema.warnings)


def test_frame_dict_and_api_paths_give_the_same_dates() -> None:
    values = ["01-02-2018 09:15", "26-02-2018 10:30", "07/03/2018 23:59", "2018-04-05T06:07:08Z"]
    frame = _frame(values[:3], n=30)
    schema = infer_schema(frame, "won", "yes")
    assert schema.column("signed_up").date_reading is DateReading.DAY_FIRST
    preparer = LeadPreparer(schema).fit()
    leads = pd.DataFrame({"signed_up": values, "visits": [1, 2, 3, 4]})
    from_frame = preparer.transform(leads)
    records = leads.to_dict("records")
    np.testing.assert_array_equal(preparer.transform_records(records), from_frame)
    np.testing.assert_array_equal(preparer.transform_records(records[:1]), from_frame[:1])
    api_model = build_lead_model(schema)
    parsed = [api_model.parse_one(json.dumps(record).encode()) for record in records]
    assert parsed[0]["signed_up"] == datetime(2018, 2, 1, 9, 15)
    assert parsed[2]["signed_up"] == datetime(2018, 3, 7, 23, 59)
    np.testing.assert_array_equal(preparer.transform_records(parsed), from_frame)
    # weekday, hour, month of 1 February 2018 (a Thursday), 09:15
    assert list(from_frame[0, :3]) == [3.0, 9.0, 2.0]


def test_the_time_split_reads_the_time_column_one_way() -> None:
    iso = demo.generate_leads(2_000, seed=9)
    day_first = demo.generate_leads(2_000, seed=9, variants=("day-first",))
    y = iso[demo.TARGET].to_numpy()
    reading = decide_date_reading(day_first[demo.TIME_COLUMN]).reading
    assert reading is DateReading.DAY_FIRST
    expected = split_leads(iso, y, time_column=demo.TIME_COLUMN)
    got = split_leads(day_first, y, time_column=demo.TIME_COLUMN, time_reading=reading)
    np.testing.assert_array_equal(got.holdout, expected.holdout)
    np.testing.assert_array_equal(got.calibrate, expected.calibrate)
    # Read month-first, days above 12 are unreadable: the column is refused, not half-parsed.
    with pytest.raises(DataError, match="is not a date"):
        check_training_frame(day_first, demo.TARGET, time_column=demo.TIME_COLUMN)
    check_training_frame(day_first, demo.TARGET, time_column=demo.TIME_COLUMN, time_reading=reading)


@pytest.fixture(scope="module")
def day_first_result(demo_frame: pd.DataFrame) -> TrainResult:
    """The session's demo model's leads, dates written day first, with post-contact columns."""
    frame = demo.generate_leads(len(demo_frame), seed=1, variants=("day-first", "post-contact"))
    return train_model(frame, demo_config())


def test_training_reads_day_first_dates_and_says_so(
    day_first_result: TrainResult, demo_result: TrainResult
) -> None:
    report = day_first_result.report()
    reading = report["date_readings"][demo.TIME_COLUMN]
    assert reading["reading"] == "day-first"
    assert "can only be read day-first" in reading["why"]
    assert demo_result.report()["date_readings"][demo.TIME_COLUMN]["reading"] == "month-first"
    # The same leads are held out as when the dates are written year first.
    assert list(day_first_result.holdout[demo.ID_COLUMN]) == list(
        demo_result.holdout[demo.ID_COLUMN]
    )
    card = model_card(day_first_result, "leads")
    assert f"Dates in `{demo.TIME_COLUMN}` read day-first (day-first: " in card
    spec = day_first_result.schema.column(demo.TIME_COLUMN)
    assert (
        LeadSchema.from_json(day_first_result.schema.to_json())
        .column(demo.TIME_COLUMN)
        .date_reading
        is spec.date_reading
        is DateReading.DAY_FIRST
    )


def test_an_unknown_date_order_is_refused(demo_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="date order 'sideways' is unknown"):
        train_model(demo_frame, demo_config(date_order="sideways"))


def test_training_excludes_the_post_contact_columns_with_evidence_in_the_report(
    day_first_result: TrainResult,
) -> None:
    report = day_first_result.report()
    excluded = {item["column"]: item for item in report["columns_excluded"]}
    for column in demo.leaky_columns_of(("post-contact",)):
        assert excluded[column]["reason"] == "leakage", column
        assert excluded[column]["evidence"]["rules"], column
        assert column not in report["columns_used"]
    assert excluded["call_duration_sec"]["evidence"]["extreme_values"].startswith("0: ")
    assert set(demo.STRONGEST_TRAITS) <= set(report["columns_used"])
