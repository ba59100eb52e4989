from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from leadml.data import (
    MIN_PER_CLASS,
    check_class_counts,
    check_training_frame,
    iter_lead_chunks,
    load_leads,
    split_leads,
    target_vector,
)
from leadml.errors import DataError


def test_reads_csv_parquet_and_sql(tmp_path: Path, demo_frame: pd.DataFrame) -> None:
    leads = demo_frame.head(50)
    leads.to_csv(tmp_path / "l.csv", index=False)
    leads.to_parquet(tmp_path / "l.parquet")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    leads.to_sql("leads", create_engine(url), index=False)
    assert len(load_leads(tmp_path / "l.csv")) == 50
    assert list(load_leads(tmp_path / "l.parquet").columns) == list(leads.columns)
    from_sql = load_leads(url, "SELECT * FROM leads WHERE converted = 1")
    assert len(from_sql) == int(leads.converted.sum())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "empty"),
        ("a,b\n", "no rows"),
        (b"\x89PNG\x00\xff", "cannot read"),
    ],
)
def test_unreadable_files_are_one_line_errors(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "leads.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        load_leads(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("separator", "encoding"),
    [(";", "utf-8-sig"), ("\t", "utf-8"), (",", "cp1252"), ("|", "utf-8")],
)
def test_reads_csv_in_other_dialects(
    tmp_path: Path, demo_frame: pd.DataFrame, separator: str, encoding: str
) -> None:
    leads = demo_frame.head(30).copy()
    leads["country"] = "Côte d'Ivoire"
    path = tmp_path / "leads.csv"
    leads.to_csv(path, index=False, sep=separator, encoding=encoding)
    again = load_leads(path)
    assert list(again.columns) == list(leads.columns)
    assert (again["country"] == "Côte d'Ivoire").all()
    assert [len(c) for c in iter_lead_chunks(path, 20)] == [20, 10]


def test_database_url_needs_a_query() -> None:
    with pytest.raises(DataError, match="--query"):
        load_leads("sqlite:///nowhere.db")


def test_chunks_cover_the_file(tmp_path: Path, demo_frame: pd.DataFrame) -> None:
    demo_frame.head(250).to_csv(tmp_path / "l.csv", index=False)
    sizes = [len(chunk) for chunk in iter_lead_chunks(tmp_path / "l.csv", 100)]
    assert sizes == [100, 100, 50]


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        ([1, 0, 1], None, [1, 0, 1]),
        (["yes", "no", "Yes"], None, [1, 0, 1]),
        (["Won", "Lost", "Lost"], None, [1, 0, 0]),
        ([True, False, False], None, [1, 0, 0]),
        (["a", "b", "a"], "b", [0, 1, 0]),
        ([1.0, 0.0, 1.0], "1", [1, 0, 1]),
    ],
)
def test_target_values(values: list[object], positive: str | None, expected: list[int]) -> None:
    y, _ = target_vector(pd.Series(values, name="t"), positive)
    assert y.tolist() == expected


@pytest.mark.parametrize(
    ("values", "positive", "message"),
    [
        ([1, 2, 3], None, "exactly two values, found 3"),
        ([1, 1], None, "exactly two values, found 1"),
        (["a", "b"], None, "pass --positive"),
        (["a", "b"], "c", "is not a value"),
        ([1, 0, None], None, "empty in 1 rows"),
    ],
)
def test_bad_targets(values: list[object], positive: str | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        target_vector(pd.Series(values, name="t"), positive)


def test_frame_checks() -> None:
    frame = pd.DataFrame({"id": [1, 1, 2], "t": [0, 1, 0], "when": ["x", "y", "z"]})
    with pytest.raises(DataError, match="target column 'y' not found; columns are: id, t, when"):
        check_training_frame(frame, "y")
    with pytest.raises(DataError, match="--id-column 'lead'"):
        check_training_frame(frame, "t", id_column="lead")
    with pytest.raises(DataError, match="2 rows share an id"):
        check_training_frame(frame, "t", id_column="id")
    with pytest.raises(DataError, match="column 'nope' not found"):
        check_training_frame(frame, "t", named_columns=["nope"])
    with pytest.raises(DataError, match="not a date"):
        check_training_frame(frame, "t", time_column="when")


def test_class_counts() -> None:
    check_class_counts(np.array([1] * MIN_PER_CLASS + [0] * MIN_PER_CLASS))
    with pytest.raises(DataError, match=f"39 converted and 500 not; at least {MIN_PER_CLASS}"):
        check_class_counts(np.array([1] * 39 + [0] * 500))


def test_stratified_split_keeps_the_rate() -> None:
    y = np.array([1] * 300 + [0] * 700)
    split = split_leads(pd.DataFrame({"x": range(1000)}), y, seed=3)
    parts = [split.fit, split.calibrate, split.holdout]
    assert sum(len(p) for p in parts) == 1000
    assert len(np.unique(np.concatenate(parts))) == 1000
    assert len(split.holdout) == 200
    for part in parts:
        assert y[part].mean() == pytest.approx(0.3, abs=0.01)


def test_time_split_holds_out_the_most_recent() -> None:
    rng = np.random.default_rng(0)
    when = pd.Series(pd.date_range("2024-01-01", periods=500, freq="D")).sample(
        frac=1, random_state=1
    )
    frame = pd.DataFrame({"when": when.astype(str).to_numpy()})
    y = rng.integers(0, 2, 500)
    split = split_leads(frame, y, time_column="when")
    moments = pd.to_datetime(frame["when"])
    assert split.by_time
    assert moments.iloc[split.holdout].min() > moments.iloc[split.calibrate].max()
    assert moments.iloc[split.calibrate].min() > moments.iloc[split.fit].max()
