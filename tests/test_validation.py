"""What a valid lead is (validation.py), and that the API's request model agrees with it.

The property test sends the same random leads, good and bad, through the API's generated request
model and through the library's check and asserts that both accept, or both refuse, each one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.lead_model import build_lead_model
from leadml.schema import ColumnSpec, LeadSchema, Role, is_missing, normalise_placeholders
from leadml.validation import LeadValidationError, read_value, validate_records, value_problem

SCHEMA = LeadSchema(
    columns=(
        ColumnSpec("Prospect ID", Role.ID),
        ColumnSpec("Lead Source", Role.CATEGORICAL, categories=("Google", "Direct"), required=True),
        ColumnSpec("Country", Role.CATEGORICAL, categories=("India",)),
        ColumnSpec("TotalVisits", Role.NUMERIC, integer=True),
        ColumnSpec("Time Spent", Role.NUMERIC, required=True),
        ColumnSpec("Do Not Email", Role.BOOLEAN),
        ColumnSpec("Created", Role.DATETIME),
        ColumnSpec("Converted", Role.TARGET),
    ),
    target="Converted",
    positive_label="1",
    id_column="Prospect ID",
)
MODEL = build_lead_model(SCHEMA)
PLACEHOLDERS = normalise_placeholders(SCHEMA.placeholders)
SPECS = {spec.name: spec for spec in SCHEMA.features}

#: Values real exports and clients send, right and wrong, beside hypothesis's own.
TRICKY = [
    "Yes", "no", " yes ", "Y", "1.0", "0.0", "on", "off", "t", "maybe", "true", "FALSE",
    "12", " 12 ", "1_000", "1e3", "2.5", "-3", "nan", "inf", "-Infinity", "0x10",
    "2024-01-31T23:30:00-02:00", "2024-01-31 08:00", "31/01/2024", "yesterday", "now",
    "0001-01-01T00:00:00Z", "Select", " n/a ", "", "Google", "Direct", "never seen",
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.sampled_from(TRICKY),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(3000, 1, 1)),
)
LEADS = st.fixed_dictionaries({}, optional=dict.fromkeys(SPECS, VALUES))


def _api_accepts(lead: dict[str, Any]) -> bool:
    try:
        MODEL.parse_many([lead])
    except RequestValidationError:
        return False
    return True


def _library_accepts(lead: dict[str, Any]) -> bool:
    try:
        validate_records([lead], SCHEMA)
    except LeadValidationError:
        return False
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LEADS)
@example({"Lead Source": "Google", "Time Spent": 3})
@example({"Lead Source": "Google", "Time Spent": "12", "TotalVisits": 2.5})
@example({"Lead Source": True, "Time Spent": 1.0})
@example({"Lead Source": "Google", "Time Spent": 1, "Created": 1700000000})
@example({"Lead Source": "Google", "Time Spent": "nan"})
@example({"Lead Source": "Google", "Time Spent": 1, "Do Not Email": "on"})
def test_the_api_and_the_library_accept_and_refuse_the_same_leads(lead: dict[str, Any]) -> None:
    api, library = _api_accepts(lead), _library_accepts(lead)
    assert api == library, f"api {'accepts' if api else 'refuses'}, library does not: {lead!r}"


@given(VALUES)
def test_the_api_reads_an_accepted_value_as_the_library_does(value: Any) -> None:
    for name in ("TotalVisits", "Time Spent", "Do Not Email"):
        spec = SPECS[name]
        lead = {"Lead Source": "Google", "Time Spent": 1.0, name: value}
        if not is_missing(value, PLACEHOLDERS) and value_problem(spec, value, PLACEHOLDERS) is None:
            parsed = MODEL.parse_many([lead])[0]
            assert parsed[name] == read_value(spec, value)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("Time Spent", None, "is required"),
        ("Time Spent", "Select", "is required"),
        ("Time Spent", True, "must be a number, not true/false"),
        ("Time Spent", "lots", "must be a number, got 'lots'"),
        ("Time Spent", "inf", "must be a finite number"),
        ("TotalVisits", 2.5, "must be a whole number, got 2.5"),
        ("Do Not Email", "maybe", "must be yes/no or true/false, got 'maybe'"),
        ("Created", 1700000000, "must be a date as text, got 1700000000"),
        ("Created", "31 Febtember", "must be a date, got '31 Febtember'"),
        ("Lead Source", False, "must be text, got bool"),
    ],
)
def test_each_rule_says_what_is_wrong(name: str, value: Any, problem: str) -> None:
    assert value_problem(SPECS[name], value, PLACEHOLDERS) == problem
    with pytest.raises(LeadValidationError, match=f"field '{name}': {problem}"):
        validate_records([{"Lead Source": "Google", "Time Spent": 1.0, name: value}], SCHEMA)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TotalVisits", 2.0),
        ("TotalVisits", " 3 "),
        ("Time Spent", "1e3"),
        ("Do Not Email", " yes "),
        ("Do Not Email", 0),
        ("Created", "2024-01-31 08:00"),
        ("Country", "never seen"),
        ("Country", 7),
        ("Country", "n/a"),
    ],
)
def test_good_values_pass(name: str, value: Any) -> None:
    assert value_problem(SPECS[name], value, PLACEHOLDERS) is None
