"""What a valid lead is: the one rule set, for leads as dicts and for frames of leads.

The scorer checks every lead with these functions before it scores it, and the explainer before
it explains one; the API's request model asks `value_problem` for each field, so the library and
the API accept and refuse the same leads. The rules come from the `LeadSchema`: which fields are
required, and each field's role.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from leadml.errors import DataError
from leadml.schema import (
    ColumnSpec,
    LeadSchema,
    Role,
    blank_placeholders,
    boolean_series,
    datetime_series,
    is_missing,
    normalise_placeholders,
    parse_boolean,
    parse_moment,
)

# Within what pandas can hold (nanoseconds since 1970), as the model's frames need.
EARLIEST_MOMENT = datetime(1677, 9, 22)
LATEST_MOMENT = datetime(2262, 4, 11)


@dataclass(frozen=True)
class FieldError:
    """One bad value: which field, which row, what is wrong."""

    field: str
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row + 1}, " if self.row is not None else ""
        return f"{where}field {self.field!r}: {self.message}"


class LeadValidationError(DataError):
    """Leads that cannot be scored, with every bad field named."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{shown}{more}; fix these fields and score again")


def value_problem(spec: ColumnSpec, value: Any, placeholders: frozenset[str]) -> str | None:
    """What is wrong with one field's value of a lead given as a dict, or None if nothing is.

    The one rule set for single leads: the scorer checks every field with it, and the API's
    request model asks it before its own type conversion (tests/test_validation.py checks
    that both accept and refuse the same leads).
    """
    if is_missing(value, placeholders):
        return "is required" if spec.required else None
    if spec.role is Role.NUMERIC:
        if isinstance(value, bool):
            return "must be a number, not true/false"
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return f"must be a number, got {value!r}"
        if not math.isfinite(number):
            return "must be a finite number"
        if spec.integer and not number.is_integer():
            return f"must be a whole number, got {value!r}"
    elif spec.role is Role.BOOLEAN:
        if math.isnan(parse_boolean(value)):
            return f"must be yes/no or true/false, got {value!r}"
    elif spec.role is Role.DATETIME:
        if not isinstance(value, str | datetime):
            return f"must be a date as text, got {value!r}"
        moment = parse_moment(value, spec.date_reading)
        if moment is None:
            return f"must be a date, got {value!r}"
        if not _representable(moment):
            return "must be a date between 1678 and 2261"
    elif spec.role is Role.CATEGORICAL and (
        isinstance(value, bool) or not isinstance(value, str | int | float)
    ):
        return f"must be text, got {type(value).__name__}"
    return None


def _representable(moment: datetime) -> bool:
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except (OverflowError, ValueError):
            return False
    try:
        return bool(EARLIEST_MOMENT <= moment <= LATEST_MOMENT)
    except (OverflowError, ValueError):  # a Timestamp beyond what datetime holds
        return False


def read_value(spec: ColumnSpec, value: Any) -> Any:
    """A value `value_problem` accepts, read as the model reads it: numbers as numbers (whole
    ones as int), yes/no words as booleans; text and dates as given."""
    if spec.role is Role.NUMERIC:
        number = float(value)
        return int(number) if spec.integer else number
    if spec.role is Role.BOOLEAN:
        return bool(parse_boolean(value))
    return value


def _record_errors(
    record: Mapping[str, Any], schema: LeadSchema, placeholders: frozenset[str], row: int | None
) -> list[FieldError]:
    errors: list[FieldError] = []
    for spec in schema.features:
        problem = value_problem(spec, record.get(spec.name), placeholders)
        if problem is not None:
            errors.append(FieldError(spec.name, problem, row))
    return errors


def validate_records(records: Sequence[Mapping[str, Any]], schema: LeadSchema) -> None:
    placeholders = normalise_placeholders(schema.placeholders)
    errors: list[FieldError] = []
    for row, record in enumerate(records):
        errors.extend(
            _record_errors(record, schema, placeholders, row if len(records) > 1 else None)
        )
    if errors:
        raise LeadValidationError(errors)


def validate_frame(frame: pd.DataFrame, schema: LeadSchema) -> None:
    """Name every column that is missing or holds values of the wrong type."""
    placeholders = normalise_placeholders(schema.placeholders)
    errors: list[FieldError] = []
    for spec in schema.features:
        if spec.name not in frame.columns:
            if spec.required:
                errors.append(FieldError(spec.name, "column is required but missing"))
            continue
        raw = blank_placeholders(frame[spec.name], placeholders)
        present = raw.notna()
        if spec.role is Role.NUMERIC:
            parsed = pd.to_numeric(raw, errors="coerce")
            bad = present & parsed.isna()
        elif spec.role is Role.BOOLEAN:
            bad = present & boolean_series(raw).isna()
        elif spec.role is Role.DATETIME:
            bad = present & datetime_series(raw, spec.date_reading).isna()
        else:
            continue
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            errors.append(
                FieldError(
                    spec.name,
                    f"{int(bad.sum())} values of the wrong type, e.g. {raw.iloc[first]!r}"
                    f" ({spec.role.value} expected)",
                    first,
                )
            )
    if errors:
        raise LeadValidationError(errors)
