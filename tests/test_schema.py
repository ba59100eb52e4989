from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import leadml.schema as schema
from leadml.schema import (
    LeadSchema,
    Role,
    blank_placeholders,
    boolean_series,
    infer_schema,
    normalise_placeholders,
)


@pytest.fixture()
def export() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "Prospect ID": [f"p-{i:04d}-{rng.integers(1e6)}" for i in range(n)],
            "Lead Number": np.arange(660000, 660000 + n),
            "Lead Source": rng.choice(["Google", "Referral", "Olark Chat", "Select"], n),
            "Do Not Email": rng.choice(["Yes", "No"], n),
            "TotalVisits": rng.integers(0, 20, n).astype(float),
            "Page Views": rng.normal(3, 1, n).round(2),
            "Created": pd.date_range("2024-01-01", periods=n, freq="7h").astype(str),
            "Magazine": ["No"] * n,
            "Notes": [None] * n,
            "Converted": rng.integers(0, 2, n),
        }
    )


def test_roles_are_inferred_from_values(export: pd.DataFrame) -> None:
    schema = infer_schema(export, "Converted", "1")
    roles = {c.name: c.role for c in schema.columns}
    assert roles == {
        "Prospect ID": Role.ID,
        "Lead Number": Role.ID,
        "Lead Source": Role.CATEGORICAL,
        "Do Not Email": Role.BOOLEAN,
        "TotalVisits": Role.NUMERIC,
        "Page Views": Role.NUMERIC,
        "Created": Role.DATETIME,
        "Magazine": Role.CONSTANT,
        "Notes": Role.EMPTY,
        "Converted": Role.TARGET,
    }
    assert schema.column("TotalVisits").integer
    assert not schema.column("Page Views").integer


def test_timestamps_from_parquet_or_sql_are_dates(export: pd.DataFrame) -> None:
    typed = export.assign(
        Created=pd.to_datetime(export["Created"]),
        Updated=pd.to_datetime(export["Created"], utc=True),
    )
    schema = infer_schema(typed, "Converted", "1")
    assert schema.column("Created").role is Role.DATETIME
    assert schema.column("Updated").role is Role.DATETIME


def test_placeholders_count_as_missing_and_are_not_categories(export: pd.DataFrame) -> None:
    schema = infer_schema(export, "Converted", "1")
    source = schema.column("Lead Source")
    assert "Select" not in source.categories
    assert set(source.categories) == {"Google", "Referral", "Olark Chat"}
    assert source.missing_share == pytest.approx((export["Lead Source"] == "Select").mean())
    assert not source.required
    assert schema.column("Do Not Email").required


def test_custom_placeholder_is_honoured(export: pd.DataFrame) -> None:
    schema = infer_schema(export, "Converted", "1", placeholders=("Select", "Olark Chat"))
    assert "Olark Chat" not in schema.column("Lead Source").categories


def test_user_roles_win(export: pd.DataFrame) -> None:
    schema = infer_schema(
        export, "Converted", "1", id_column="Lead Number", exclude=("Page Views",)
    )
    assert schema.column("Page Views").role is Role.EXCLUDED
    assert schema.column("Lead Number").reason == "the id column named by the user"
    assert "Page Views" not in schema.feature_names


def test_rare_categories_are_folded() -> None:
    frame = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 10 + ["rare"] * 2, "y": [0, 1] * 31})
    schema = infer_schema(frame, "y", "1")
    assert schema.column("c").categories == ("a", "b")


def test_json_round_trip(export: pd.DataFrame) -> None:
    schema = infer_schema(export, "Converted", "1", time_column="Created")
    schema = schema.with_roles({"Lead Source": (Role.LEAKAGE, "why", {"auc": 0.99})})
    again = LeadSchema.from_json(schema.to_json())
    assert again == schema
    assert again.column("Lead Source").evidence == {"auc": 0.99}


def test_blank_placeholders_and_booleans() -> None:
    placeholders = normalise_placeholders(["Select", "N/A", ""])
    series = pd.Series([" select ", "x", None, "n/a", "  "])
    assert blank_placeholders(series, placeholders).isna().tolist() == [
        True,
        False,
        True,
        True,
        True,
    ]
    flags = boolean_series(pd.Series(["Yes", "no", "TRUE", "maybe", None]))
    assert flags.tolist()[:3] == [1.0, 0.0, 1.0]
    assert np.isnan(flags.iloc[3]) and np.isnan(flags.iloc[4])


@pytest.mark.parametrize("text_share", [0.0, 0.005, 0.015, 0.019, 0.021, 0.03, 0.5, 1.0])
def test_text_read_once_per_value_decides_numbers_as_reading_every_row(
    text_share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than 98 % of the rows reading as numbers makes a number column, however the text is
    read: chunk by chunk of distinct values with an early stop, or every row at once."""

    monkeypatch.setattr(schema, "NUMERIC_PARSE_CHUNK", 7)
    rng = np.random.default_rng(int(text_share * 1000))
    n = 2000
    values = rng.integers(0, 300, n).astype(str).astype(object)
    words = rng.random(n) < text_share
    values[words] = [f"n/a {i % 40}" for i in range(int(words.sum()))]
    column = pd.Series(values, dtype="str")
    every_row = pd.to_numeric(column, errors="coerce").notna().mean() > 0.98
    spec = schema.infer_column("amount", column, normalise_placeholders(()))
    assert (spec.role is Role.NUMERIC) == every_row
    if every_row:
        assert spec.integer


def test_an_id_column_of_text_is_an_id_without_reading_it_as_numbers() -> None:
    column = pd.Series([f"L{i:07d}x" for i in range(50_000)], dtype="str")
    spec = infer_schema(pd.DataFrame({"ref": column, "y": [0, 1] * 25_000}), "y", "1").column("ref")
    assert spec.role is Role.ID
