"""The lead schema: the one place that says what each column of a lead is.

A `LeadSchema` is inferred from a CRM export at training time, saved with the model, and read back
by everything that touches a lead afterwards: the feature encoder, the MLflow signature, the API's
request models and the web pages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

#: Values a CRM writes when nobody answered. Compared after stripping and lower-casing.
DEFAULT_PLACEHOLDERS: tuple[str, ...] = (
    "",
    "select",
    "n/a",
    "na",
    "nan",
    "none",
    "null",
    "unknown",
    "not provided",
    "not specified",
    "-",
    "--",
    "?",
)

TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "1.0"})
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "0.0"})

#: Share of distinct values above which a text column is an identifier, not a trait.
ID_UNIQUE_SHARE = 0.9
#: A category seen fewer times than this in training is folded into "other".
MIN_CATEGORY_COUNT = 5
#: At most this many categories are kept per column; the rest are folded into "other".
MAX_CATEGORIES = 200

DATETIME_PARTS = ("weekday", "hour", "month")


class Role(StrEnum):
    """What a column is to the model."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    # Roles below are not used as features; `ColumnSpec.reason` says why.
    TARGET = "target"
    ID = "id"
    CONSTANT = "constant"
    EMPTY = "empty"
    LEAKAGE = "leakage"
    EXCLUDED = "excluded"


class DateReading(StrEnum):
    """How a date written as two numbers and a year (01-02-2018, 1/2/18) is read."""

    MONTH_FIRST = "month-first"
    DAY_FIRST = "day-first"


#: What the user may ask for: `auto` reads day-first when some value can only be day-first.
DateOrder = Literal["auto", "day-first", "month-first"]
DATE_ORDERS: tuple[str, ...] = ("auto", "day-first", "month-first")


FEATURE_ROLES = frozenset({Role.NUMERIC, Role.CATEGORICAL, Role.BOOLEAN, Role.DATETIME})


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a lead export and what leadml does with it."""

    name: str
    role: Role
    #: Known categories, most frequent first (categorical columns only).
    categories: tuple[str, ...] = ()
    #: A lead must carry this field to be scored (it was never missing in training).
    required: bool = False
    #: Share of training rows where the value was missing (placeholders included).
    missing_share: float = 0.0
    #: A numeric column that only ever held whole numbers.
    integer: bool = False
    #: Why the column is not a feature (for non-feature roles), or a warning about it.
    reason: str = ""
    #: Evidence behind `reason`, e.g. {"single_column_auc": 0.97}.
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: Datetime columns: how day-month dates such as 01-02-2018 are read, and why.
    date_reading: DateReading | None = None
    date_reading_reason: str = ""

    @property
    def is_feature(self) -> bool:
        return self.role in FEATURE_ROLES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = self.role.value
        data["categories"] = list(self.categories)
        data["evidence"] = dict(self.evidence)
        data["date_reading"] = self.date_reading.value if self.date_reading else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        return cls(
            name=str(data["name"]),
            role=Role(data["role"]),
            categories=tuple(str(c) for c in data.get("categories", ())),
            required=bool(data.get("required", False)),
            missing_share=float(data.get("missing_share", 0.0)),
            integer=bool(data.get("integer", False)),
            reason=str(data.get("reason", "")),
            evidence=dict(data.get("evidence", {})),
            date_reading=DateReading(data["date_reading"]) if data.get("date_reading") else None,
            date_reading_reason=str(data.get("date_reading_reason", "")),
        )


@dataclass(frozen=True)
class LeadSchema:
    """Column roles of one lead export, with the target and its positive value."""

    columns: tuple[ColumnSpec, ...]
    target: str
    positive_label: str
    id_column: str | None = None
    time_column: str | None = None
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    warnings: tuple[str, ...] = ()

    # -- views ---------------------------------------------------------------------------------
    @property
    def features(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.is_feature)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def dropped(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if not c.is_feature and c.role is not Role.TARGET)

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def with_roles(self, changes: Mapping[str, tuple[Role, str, Mapping[str, Any]]]) -> LeadSchema:
        """A copy where the named columns get a new role, reason and evidence."""
        columns = []
        for spec in self.columns:
            if spec.name in changes:
                role, reason, evidence = changes[spec.name]
                spec = replace(spec, role=role, reason=reason, evidence=dict(evidence))
            columns.append(spec)
        return replace(self, columns=tuple(columns))

    def with_warnings(self, warnings: Iterable[str]) -> LeadSchema:
        return replace(self, warnings=(*self.warnings, *warnings))

    # -- JSON round trip -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "positive_label": self.positive_label,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "placeholders": list(self.placeholders),
            "warnings": list(self.warnings),
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeadSchema:
        return cls(
            columns=tuple(ColumnSpec.from_dict(c) for c in data["columns"]),
            target=str(data["target"]),
            positive_label=str(data["positive_label"]),
            id_column=data.get("id_column"),
            time_column=data.get("time_column"),
            placeholders=tuple(data.get("placeholders", DEFAULT_PLACEHOLDERS)),
            warnings=tuple(data.get("warnings", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> LeadSchema:
        return cls.from_dict(json.loads(text))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -- value cleaning ----------------------------------------------------------------------------
def normalise_placeholders(placeholders: Iterable[str]) -> frozenset[str]:
    return frozenset(p.strip().lower() for p in placeholders)


def is_missing(value: Any, placeholders: frozenset[str]) -> bool:
    """True for None, NaN, NaT and placeholder answers such as "Select"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip().lower() in placeholders
    return False


def blank_placeholders(series: pd.Series, placeholders: frozenset[str]) -> pd.Series:
    """The series with placeholder answers turned into missing values."""
    if not (
        pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)
    ):
        return series
    as_text = series.astype("string").str.strip()
    placeholder_mask = as_text.str.lower().isin(placeholders).fillna(False).astype(bool)
    return as_text.mask(placeholder_mask)


def parse_boolean(value: Any) -> float:
    """1.0 for yes/true/1, 0.0 for no/false/0, NaN otherwise."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        if isinstance(value, float | np.floating) and math.isnan(value):
            return math.nan
        return float(value) if value in (0, 1) else math.nan
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return 1.0
        if word in FALSE_WORDS:
            return 0.0
    return math.nan


def boolean_series(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series.astype(float)
        return numbers.where(numbers.isin([0.0, 1.0]))
    words = series.astype("string").str.strip().str.lower()
    result = pd.Series(np.nan, index=series.index, dtype=float)
    result[words.isin(TRUE_WORDS).fillna(False).astype(bool)] = 1.0
    result[words.isin(FALSE_WORDS).fillna(False).astype(bool)] = 0.0
    return result


def numeric_series(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float)
    return pd.to_numeric(series, errors="coerce").astype(float)


#: A date that starts with day and month as numbers, then the year: 01-02-2018, 1/2/18,
#: 01.02.2018 10:00. Which number is the day is decided once per column (`DateReading`).
DAY_MONTH_DATE = re.compile(r"^\s*(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?=$|[\sT])")
#: Two-digit years from this one on are 19xx, below it 20xx (as C's strptime %y).
TWO_DIGIT_YEAR_PIVOT = 69


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _iso_date(match: re.Match[str], reading: DateReading) -> str:
    first, _, second, year = match.groups()
    day, month = (first, second) if reading is DateReading.DAY_FIRST else (second, first)
    if len(year) == 2:
        year = ("19" if int(year) >= TWO_DIGIT_YEAR_PIVOT else "20") + year
    return f"{year}-{int(month):02d}-{int(day):02d}"


def _as_iso_text(text: str, reading: DateReading) -> str:
    """`text` with a leading day-month date rewritten year first (an impossible month stays)."""
    match = DAY_MONTH_DATE.match(text)
    if match is None:
        return text
    return _iso_date(match, reading) + text[match.end() :]


def datetime_series(
    series: pd.Series, reading: DateReading | None = DateReading.MONTH_FIRST
) -> pd.Series:
    """Naive UTC timestamps; day-month dates are read the one way `reading` says.

    pandas alone reads such dates value by value (01-02-2018 as 2 January but 26-02-2018 as
    26 February), so they are rewritten year first before parsing; a value that cannot be read
    the column's way (26-02-2018 month-first) becomes missing.
    """
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        parsed = series
    else:
        if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
            text = series.astype("string")
            day_month = text.str.match(DAY_MONTH_DATE).fillna(False).astype(bool)
            if day_month.any():
                chosen = reading or DateReading.MONTH_FIRST
                rewritten = text[day_month].str.replace(
                    DAY_MONTH_DATE, lambda m: _iso_date(m, chosen), regex=True
                )
                series = series.astype(object).where(~day_month, rewritten.astype(object))
        parsed = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def parse_moment(value: Any, reading: DateReading | None = DateReading.MONTH_FIRST) -> Any:
    """One value as `datetime_series` reads it: a datetime or Timestamp, or None if unreadable.

    The dict path (API, `transform_records`) uses this so that a lead scores the same as in a
    frame. ISO 8601 text is parsed with the standard library (ten times faster than pandas).
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = _as_iso_text(value.strip(), reading or DateReading.MONTH_FIRST)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            value = text
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if pd.isna(stamp) else stamp


@dataclass(frozen=True)
class DateReadingChoice:
    """The reading of one column's day-month dates, with the counts behind it."""

    reading: DateReading
    reason: str
    #: Values such as 26-02-2018 (only day-first) and 02-26-2018 (only month-first).
    only_day_first: int = 0
    only_month_first: int = 0
    day_month_values: int = 0


def decide_date_reading(series: pd.Series, order: str = "auto") -> DateReadingChoice:
    """Day-first or month-first for the whole column, never value by value.

    `order` "day-first" or "month-first" is the user's word and wins. With "auto" the column is
    read day-first when any value can only be read day-first (its first number is above 12),
    otherwise month-first (pandas' and the US default).
    """
    if order not in DATE_ORDERS:
        raise ValueError(f"date order must be one of {', '.join(DATE_ORDERS)}, got {order!r}")
    counts = {"only_day_first": 0, "only_month_first": 0, "day_month_values": 0}
    example_day = example_month = ""
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        parts = series.dropna().astype("string").str.extract(DAY_MONTH_DATE).dropna()
        if not parts.empty:
            first = parts[0].astype(int)
            second = parts[2].astype(int)
            day_only = (first > 12) & (second <= 12)
            month_only = (second > 12) & (first <= 12)
            counts = {
                "only_day_first": int(day_only.sum()),
                "only_month_first": int(month_only.sum()),
                "day_month_values": len(parts),
            }
            text = series.dropna().astype("string")
            if day_only.any():
                example_day = str(text.loc[day_only[day_only].index[0]]).strip()
            if month_only.any():
                example_month = str(text.loc[month_only[month_only].index[0]]).strip()
    if order != "auto":
        reading = DateReading(order)
        reason = f"{reading.value}, as asked"
        clash = example_month if reading is DateReading.DAY_FIRST else example_day
        clashes = (
            counts["only_month_first"]
            if reading is DateReading.DAY_FIRST
            else counts["only_day_first"]
        )
        if clashes:
            reason += f"; {_values(clashes)} such as {clash!r} cannot be read so and are missing"
        return DateReadingChoice(reading, reason, **counts)
    if counts["day_month_values"] == 0:
        return DateReadingChoice(
            DateReading.MONTH_FIRST, "no day-month dates (year first or typed timestamps)"
        )
    if counts["only_day_first"]:
        reason = (
            f"day-first: {_values(counts['only_day_first'])} such as {example_day!r} can only be"
            " read day-first"
        )
        if counts["only_month_first"]:
            reason += (
                f"; {_values(counts['only_month_first'])} such as {example_month!r} cannot be and"
                " are missing"
            )
        return DateReadingChoice(DateReading.DAY_FIRST, reason, **counts)
    return DateReadingChoice(
        DateReading.MONTH_FIRST,
        "month-first: every day-month date reads either way, and month-first is the default;"
        " train with --date-order day-first if 01-02-2018 means 1 February",
        **counts,
    )


def datetime_feature_names(column: str) -> list[str]:
    return [f"{column}__{part}" for part in DATETIME_PARTS]


# -- inference ---------------------------------------------------------------------------------
def _looks_boolean(values: pd.Series, n_distinct: int) -> bool:
    if n_distinct > 2:
        return False  # never yes/no; and an id column would be read value by value below
    distinct = {str(v).strip().lower() for v in values.unique()}
    return 1 <= len(distinct) <= 2 and distinct <= (TRUE_WORDS | FALSE_WORDS)


def _looks_datetime(values: pd.Series, name: str) -> bool:
    sample = values.head(500)
    if pd.api.types.is_datetime64_any_dtype(sample.dtype):
        return True
    if not (
        pd.api.types.is_object_dtype(sample.dtype) or pd.api.types.is_string_dtype(sample.dtype)
    ):
        return False
    text = sample.astype(str)
    # Dates have digits and separators; plain words never parse, so skip the costly parse.
    if not text.str.contains(
        r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}", regex=True
    ).all():
        return False
    parsed = datetime_series(text, decide_date_reading(text).reading)
    return bool(parsed.notna().mean() > 0.95)


def infer_column(
    name: str,
    raw: pd.Series,
    placeholders: frozenset[str],
    *,
    max_categories: int = MAX_CATEGORIES,
    min_category_count: int = MIN_CATEGORY_COUNT,
) -> ColumnSpec:
    """Infer one column's role from its values (placeholders count as missing)."""
    series = blank_placeholders(raw, placeholders)
    present = series.dropna()
    n_rows = len(series)
    missing_share = float(1 - len(present) / n_rows) if n_rows else 1.0
    required = missing_share == 0.0
    if present.empty:
        return ColumnSpec(name, Role.EMPTY, missing_share=missing_share, reason="always missing")
    n_distinct = int(present.nunique())
    if n_distinct == 1:
        return ColumnSpec(
            name,
            Role.CONSTANT,
            missing_share=missing_share,
            reason=f"a single value ({present.iloc[0]!r}) in every row that has one",
        )
    if pd.api.types.is_datetime64_any_dtype(present.dtype):
        # Checked first: pd.to_numeric would read timestamps (Parquet, SQL) as nanosecond counts.
        return ColumnSpec(name, Role.DATETIME, required=required, missing_share=missing_share)
    if _looks_boolean(present, n_distinct):
        return ColumnSpec(name, Role.BOOLEAN, required=required, missing_share=missing_share)
    whole = _numbers_if_numeric(present)
    if whole is not None:
        return ColumnSpec(
            name,
            Role.NUMERIC,
            required=required,
            missing_share=missing_share,
            integer=bool((whole == np.round(whole)).all()),
        )
    if _looks_datetime(present, name):
        return ColumnSpec(name, Role.DATETIME, required=required, missing_share=missing_share)
    unique_share = n_distinct / len(present)
    if unique_share >= ID_UNIQUE_SHARE and len(present) >= 20:
        return ColumnSpec(
            name,
            Role.ID,
            missing_share=missing_share,
            reason=f"identifier-like: {unique_share:.0%} of values are distinct",
            evidence={"unique_share": round(unique_share, 4)},
        )
    counts = present.astype(str).value_counts()
    kept = counts[counts >= min_category_count].head(max_categories)
    if kept.empty:
        kept = counts.head(max_categories)
    return ColumnSpec(
        name,
        Role.CATEGORICAL,
        categories=tuple(str(c) for c in kept.index),
        required=required,
        missing_share=missing_share,
    )


#: Text is a column of numbers when more than this share of its filled-in rows read as numbers.
NUMERIC_MIN_SHARE = 0.98
#: Distinct text values read as numbers at a time (see `_numbers_if_numeric`).
NUMERIC_PARSE_CHUNK = 20_000


def _numbers_if_numeric(present: pd.Series) -> pd.Series | None:
    """The numbers of a column's filled-in values (each distinct value once for text) if it is
    a column of numbers: numeric already, or text of which more than `NUMERIC_MIN_SHARE` of the
    rows read as numbers; else None.

    `pd.to_numeric` reads text one value at a time, so text is read one distinct value at a
    time, most frequent first, and reading stops once the rows found unreadable already rule
    the column out (an id or free-text column has as many distinct values as rows).
    """
    if pd.api.types.is_numeric_dtype(present.dtype):
        return pd.to_numeric(present, errors="coerce").dropna()
    n_rows = len(present)
    counts = present.value_counts()
    readable_rows, unreadable_rows, parts = 0, 0, []
    for start in range(0, len(counts), NUMERIC_PARSE_CHUNK):
        chunk = counts.iloc[start : start + NUMERIC_PARSE_CHUNK]
        numbers = pd.to_numeric(pd.Series(chunk.index), errors="coerce")
        readable = numbers.notna().to_numpy()
        readable_rows += int(chunk.to_numpy()[readable].sum())
        unreadable_rows += int(chunk.to_numpy()[~readable].sum())
        parts.append(numbers[readable])
        if not (n_rows - unreadable_rows) / n_rows > NUMERIC_MIN_SHARE:
            return None
    if not readable_rows / n_rows > NUMERIC_MIN_SHARE:
        return None
    return pd.concat(parts, ignore_index=True)


def _id_like_numeric(series: pd.Series) -> bool:
    """Sequential or unique integers (lead numbers) carry no trait of the lead."""
    numbers = pd.to_numeric(series, errors="coerce").dropna()
    if len(numbers) < 20 or not (numbers == numbers.round()).all():
        return False
    return bool(numbers.nunique() / len(numbers) >= 0.99)


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    positive_label: str,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    exclude: Sequence[str] = (),
    placeholders: Sequence[str] = DEFAULT_PLACEHOLDERS,
    date_order: str = "auto",
    date_readings: Mapping[str, DateReadingChoice] | None = None,
) -> LeadSchema:
    """Infer the role of every column of a lead export.

    Every datetime column gets one `DateReading` (see `decide_date_reading`, with `date_order`);
    `date_readings`, decided beforehand on a larger frame (all of the training data, when
    `frame` is only part of it), wins for the columns it names.

    Leakage is not decided here: `leadml.leakage` looks at the outcome and moves columns to
    `Role.LEAKAGE` afterwards.
    """
    placeholder_set = normalise_placeholders(placeholders)
    decided = dict(date_readings or {})
    columns: list[ColumnSpec] = []
    warnings: list[str] = []
    for name in frame.columns:
        name = str(name)
        if name == target:
            columns.append(ColumnSpec(name, Role.TARGET))
        elif name == id_column:
            columns.append(ColumnSpec(name, Role.ID, reason="the id column named by the user"))
        elif name in exclude:
            columns.append(ColumnSpec(name, Role.EXCLUDED, reason="excluded by the user"))
        else:
            spec = infer_column(name, frame[name], placeholder_set)
            if spec.role is Role.NUMERIC and _id_like_numeric(frame[name]):
                spec = replace(
                    spec,
                    role=Role.ID,
                    required=False,
                    reason="identifier-like: distinct whole numbers in every row",
                )
            if name == time_column and spec.role is not Role.DATETIME:
                spec = replace(spec, role=Role.DATETIME, required=spec.missing_share == 0.0)
            if spec.role is Role.DATETIME:
                choice = decided.get(name) or decide_date_reading(frame[name], date_order)
                spec = replace(spec, date_reading=choice.reading, date_reading_reason=choice.reason)
                unreadable = (
                    choice.only_month_first
                    if choice.reading is DateReading.DAY_FIRST
                    else choice.only_day_first
                )
                if unreadable:
                    warnings.append(f"dates in '{name}': {choice.reason}")
            columns.append(spec)
    return LeadSchema(
        columns=tuple(columns),
        target=target,
        positive_label=str(positive_label),
        id_column=id_column,
        time_column=time_column,
        placeholders=tuple(placeholders),
        warnings=tuple(warnings),
    )


def decide_date_readings(frame: pd.DataFrame, order: str = "auto") -> dict[str, DateReadingChoice]:
    """The reading of every text column that holds day-month dates, on all of `frame`."""
    readings = {}
    for name in frame.columns:
        series = frame[name]
        if not (
            pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)
        ):
            continue
        sample = series.dropna().head(500).astype("string")
        if sample.empty or not sample.str.match(DAY_MONTH_DATE).fillna(False).any():
            continue
        readings[str(name)] = decide_date_reading(series, order)
    return readings
