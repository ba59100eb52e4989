"""Sales outcome events: what a valid one is, and reading them from a CRM export.

Sales says what became of a lead with one of four events, each at the time it happened:
`sql_accepted` (sales took the MQL as a sales-qualified lead), `sql_rejected` (with a reason from
the configured list), `won` (optionally with the deal value) and `lost`. The API
(`POST /v1/outcomes`) and `leadml outcomes import` apply the same rules, from here.

CRM exports name things their own way, so `events_from_frame` maps columns and values: the lead id,
event (stage/status), time, reason and amount columns are found under their usual CRM names unless
given, and stage values such as "Closed Won", "closedlost" or "Disqualified" map to the events
(`CRM_EVENT_VALUES`, extendable). Pure functions of in-memory frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pandas as pd

from leadml.errors import DataError

EVENTS: Final = ("sql_accepted", "sql_rejected", "won", "lost")

#: Usual CRM column names (compared ignoring case, spaces and underscores), most specific first.
LEAD_ID_NAMES: Final = ("lead_id", "leadid", "prospect_id", "prospectid", "lead_number", "id")
EVENT_NAMES: Final = ("event", "outcome", "stage", "dealstage", "status", "lead_status")
TIME_NAMES: Final = (
    "occurred_at",
    "event_time",
    "close_date",
    "closedate",
    "closed_at",
    "date",
    "timestamp",
    "updated_at",
    "last_modified_date",
)
REASON_NAMES: Final = (
    "reason",
    "rejection_reason",
    "disqualification_reason",
    "closed_lost_reason",
    "lost_reason",
)
VALUE_NAMES: Final = ("deal_value", "amount", "value", "deal_amount", "revenue")

#: CRM stage / status values (lower case, spaces and underscores removed) -> events.
CRM_EVENT_VALUES: Final[Mapping[str, str]] = {
    "sqlaccepted": "sql_accepted",
    "sql": "sql_accepted",
    "accepted": "sql_accepted",
    "qualified": "sql_accepted",
    "salesqualified": "sql_accepted",
    "salesqualifiedlead": "sql_accepted",
    "sqlrejected": "sql_rejected",
    "rejected": "sql_rejected",
    "disqualified": "sql_rejected",
    "unqualified": "sql_rejected",
    "won": "won",
    "closedwon": "won",
    "converted": "won",
    "lost": "lost",
    "closedlost": "lost",
}


def _key(name: object) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in " _-")


def event_problem(
    event: str, reason: str | None, deal_value: float | None, reasons: Sequence[str]
) -> tuple[str, str] | None:
    """What is wrong with an event's reason or deal value, as (field, message), else None.

    A rejection needs a reason from `reasons` (compared ignoring case); a deal value belongs to
    a won deal only.
    """
    if event == "sql_rejected":
        if reason is None or not reason.strip():
            return "reason", f"a rejected SQL needs a reason: one of {', '.join(reasons)}"
        if reason.strip().lower() not in reasons:
            return "reason", (
                f"unknown rejection reason {reason!r}; use one of {', '.join(reasons)}"
                " (LEADML_REJECTION_REASONS)"
            )
    if deal_value is not None and event != "won":
        return "deal_value", "only a won event carries a deal value"
    return None


def normalise_reason(event: str, reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    return reason.strip().lower() if event == "sql_rejected" else reason.strip()


@dataclass(frozen=True)
class ColumnMapping:
    """Which column of an export holds what; None: found under the usual CRM names."""

    lead_id: str | None = None
    event: str | None = None
    time: str | None = None
    reason: str | None = None
    deal_value: str | None = None


def _find(frame: pd.DataFrame, given: str | None, usual: Sequence[str], what: str) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise DataError(
                f"the export has no column {given!r} for the {what}; columns:"
                f" {', '.join(map(str, frame.columns[:15]))}"
            )
        return given
    by_key = {_key(column): str(column) for column in frame.columns}
    for name in usual:
        if _key(name) in by_key:
            return by_key[_key(name)]
    return None


def event_values(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CRM value map with `extra` (value -> event) added; refuses unknown events."""
    values = dict(CRM_EVENT_VALUES)
    for value, event in (extra or {}).items():
        if event not in EVENTS:
            raise DataError(
                f"--event-value {value}={event}: {event!r} is not an event; use one of"
                f" {', '.join(EVENTS)}"
            )
        values[_key(value)] = event
    return values


def events_from_frame(
    frame: pd.DataFrame,
    reasons: Sequence[str],
    mapping: ColumnMapping | None = None,
    extra_values: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A CRM export as outcome events: columns lead_id, event, occurred_at (UTC), reason,
    deal_value; one row per event. Any row that cannot be read stops it with the row's number
    (1 = the first data row) and what to fix."""
    mapping = mapping or ColumnMapping()
    lead_col = _find(frame, mapping.lead_id, LEAD_ID_NAMES, "lead id")
    event_col = _find(frame, mapping.event, EVENT_NAMES, "event")
    time_col = _find(frame, mapping.time, TIME_NAMES, "event time")
    reason_col = _find(frame, mapping.reason, REASON_NAMES, "rejection reason")
    value_col = _find(frame, mapping.deal_value, VALUE_NAMES, "deal value")
    for column, what, option in (
        (lead_col, "lead id", "--lead-id-column"),
        (event_col, "event (stage or status)", "--event-column"),
        (time_col, "event time", "--time-column"),
    ):
        if column is None:
            raise DataError(
                f"cannot tell which column holds the {what}; name it with {option}"
                f" (columns: {', '.join(map(str, frame.columns[:15]))})"
            )
    assert lead_col is not None and event_col is not None and time_col is not None
    values = event_values(extra_values)
    events = frame[event_col].map(lambda v: values.get(_key(v)) if pd.notna(v) else None)
    unknown = frame[event_col][events.isna()]
    if not unknown.empty:
        first = unknown.index[0]
        raise DataError(
            f"row {_row_number(frame, first)}: the {event_col!r} value {unknown.iloc[0]!r} is no"
            f" outcome event; map it with --event-value '{unknown.iloc[0]}=EVENT' (events:"
            f" {', '.join(EVENTS)})"
        )
    times = pd.to_datetime(frame[time_col], errors="coerce", utc=True, format="mixed")
    if times.isna().any():
        first = times.index[times.isna()][0]
        raise DataError(
            f"row {_row_number(frame, first)}: {frame[time_col].loc[first]!r} in {time_col!r} is"
            " not a date and time; use ISO 8601, e.g. 2026-03-01T10:00:00Z"
        )
    lead_ids = frame[lead_col]
    if lead_ids.isna().any():
        first = lead_ids.index[lead_ids.isna()][0]
        raise DataError(f"row {_row_number(frame, first)}: no lead id in {lead_col!r}")
    out = pd.DataFrame(
        {
            "lead_id": lead_ids.map(_id_text),
            "event": events,
            "occurred_at": times,
            "reason": frame[reason_col] if reason_col else None,
            "deal_value": (
                pd.to_numeric(frame[value_col], errors="coerce") if value_col else float("nan")
            ),
        }
    )
    out["reason"] = out["reason"].map(lambda v: None if pd.isna(v) or str(v) == "" else str(v))
    for index, row in out.iterrows():
        value = None if pd.isna(row["deal_value"]) else float(row["deal_value"])
        if row["event"] != "won" and value is not None:
            # A CRM amount on a lost or open deal is its size, not what was won.
            out.at[index, "deal_value"] = float("nan")
            value = None
        reason = row["reason"] if isinstance(row["reason"], str) else None
        problem = event_problem(row["event"], reason, value, reasons)
        if problem is not None:
            raise DataError(f"row {_row_number(frame, index)}: {problem[1]}")
        out.at[index, "reason"] = normalise_reason(row["event"], reason)
    return out.reset_index(drop=True)


def _id_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _row_number(frame: pd.DataFrame, index: object) -> int:
    return int(frame.index.get_loc(index)) + 1  # type: ignore[arg-type]
