"""What a valid lead is: the one rule set, for leads as dicts and for frames of leads.

The scorer checks every lead with these functions before it scores it, and the explainer before
it explains one. The rules come from the `LeadSchema`: which fields are required, and each
field's role.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadml.errors import DataError
from leadml.schema import (
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


def _record_errors(
    record: Mapping[str, Any], schema: LeadSchema, placeholders: frozenset[str], row: int | None
) -> list[FieldError]:
    errors: list[FieldError] = []
    for spec in schema.features:
        value: Any = record.get(spec.name)
        if is_missing(value, placeholders):
            if spec.required:
                errors.append(FieldError(spec.name, "is required", row))
            continue
        if spec.role is Role.NUMERIC:
            if isinstance(value, bool):
                errors.append(FieldError(spec.name, "must be a number, not true/false", row))
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                errors.append(FieldError(spec.name, f"must be a number, got {value!r}", row))
                continue
            if math.isinf(number):
                errors.append(FieldError(spec.name, "must be a finite number", row))
        elif spec.role is Role.BOOLEAN and math.isnan(parse_boolean(value)):
            errors.append(
                FieldError(spec.name, f"must be yes/no or true/false, got {value!r}", row)
            )
        elif spec.role is Role.DATETIME and parse_moment(value, spec.date_reading) is None:
            errors.append(FieldError(spec.name, f"must be a date, got {value!r}", row))
        elif spec.role is Role.CATEGORICAL and not isinstance(value, str | int | float):
            errors.append(FieldError(spec.name, f"must be text, got {type(value).__name__}", row))
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
