"""The request model generated from a LeadSchema."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.exceptions import RequestValidationError

from api.lead_model import build_lead_model, example_lead
from leadml.schema import ColumnSpec, LeadSchema, Role

SCHEMA = LeadSchema(
    columns=(
        ColumnSpec("Prospect ID", Role.ID),
        ColumnSpec("Lead Source", Role.CATEGORICAL, categories=("Google", "Direct"), required=True),
        ColumnSpec("Country", Role.CATEGORICAL, categories=("India",)),
        ColumnSpec("TotalVisits", Role.NUMERIC, integer=True),
        ColumnSpec("Time Spent", Role.NUMERIC, required=True),
        ColumnSpec("Do Not Email", Role.BOOLEAN),
        ColumnSpec("Created", Role.DATETIME),
        ColumnSpec("Tags", Role.LEAKAGE, reason="written by sales after the call"),
        ColumnSpec("Converted", Role.TARGET),
    ),
    target="Converted",
    positive_label="1",
    id_column="Prospect ID",
)
MODEL = build_lead_model(SCHEMA)
LEAD = {"Lead Source": "Google", "Time Spent": 12.5}


def parse(lead: dict[str, object]) -> dict[str, object]:
    return MODEL.parse_one(json.dumps(lead).encode())


def errors(lead: dict[str, object]) -> list[dict[str, object]]:
    with pytest.raises(RequestValidationError) as refused:
        parse(lead)
    return list(refused.value.errors())


def test_field_names_with_spaces_come_back_as_sent() -> None:
    parsed = parse({**LEAD, "Prospect ID": 7, "Country": "India", "TotalVisits": "3"})
    assert parsed["Prospect ID"] == "7"  # ids are text
    assert parsed["Lead Source"] == "Google"
    assert parsed["TotalVisits"] == 3
    assert parsed["Do Not Email"] is None


def test_placeholders_and_nan_mean_missing_for_optional_fields() -> None:
    parsed = parse({**LEAD, "Country": " Select ", "TotalVisits": "n/a", "Do Not Email": ""})
    assert parsed["Country"] is None and parsed["TotalVisits"] is None
    assert parsed["Do Not Email"] is None


def test_a_placeholder_is_no_answer_for_a_required_field() -> None:
    [problem] = errors({**LEAD, "Lead Source": "Select"})
    assert problem["loc"] == ["body", "Lead Source"] and problem["type"] == "missing"


def test_yes_no_words_become_booleans() -> None:
    assert parse({**LEAD, "Do Not Email": "Yes"})["Do Not Email"] is True
    assert parse({**LEAD, "Do Not Email": "no"})["Do Not Email"] is False
    [problem] = errors({**LEAD, "Do Not Email": "maybe"})
    assert problem["loc"] == ["body", "Do Not Email"]


def test_whole_numbers_stay_whole() -> None:
    [problem] = errors({**LEAD, "TotalVisits": 2.5})
    assert problem["loc"] == ["body", "TotalVisits"]
    assert parse({**LEAD, "TotalVisits": 2.0})["TotalVisits"] == 2


def test_times_are_naive_utc() -> None:
    parsed = parse({**LEAD, "Created": "2024-01-31T23:30:00-02:00"})
    assert parsed["Created"] == datetime(2024, 2, 1, 1, 30)
    assert parse({**LEAD, "Created": "2024-01-31 08:00"})["Created"] == datetime(2024, 1, 31, 8)
    for bad in ("yesterday", 1700000000, "0001-01-01T00:00:00Z"):
        [problem] = errors({**LEAD, "Created": bad})
        assert problem["loc"] == ["body", "Created"]


def test_known_unused_columns_are_ignored_and_unknown_ones_refused() -> None:
    assert parse({**LEAD, "Tags": "Will revert"})["Lead Source"] == "Google"
    [problem] = errors({**LEAD, "Converted": 1})  # the outcome is not an input
    assert problem["type"] == "extra_forbidden"


def test_the_json_schema_documents_types_categories_and_requirements() -> None:
    schema = MODEL.json_schema()
    assert set(schema["required"]) == {"Lead Source", "Time Spent"}
    assert schema["additionalProperties"] is False
    source = schema["properties"]["Lead Source"]
    assert source["examples"] == ["Google", "Direct"]
    assert '"Google", "Direct"' in source["description"]
    assert "Select" in source["not"]["enum"]
    boolean = schema["properties"]["Do Not Email"]
    assert {"type": "string", "enum": ["Yes", "No"]} in boolean["anyOf"]
    assert "ignored" in schema["properties"]["Tags"]["description"]
    assert schema["examples"] == [MODEL.example]


def test_the_example_is_a_valid_typical_lead() -> None:
    example = example_lead(SCHEMA)
    assert example["Lead Source"] == "Google"
    assert parse(example)["Prospect ID"] == "lead-0001"
    assert MODEL.field_names == {
        "Prospect ID", "Lead Source", "Country", "TotalVisits", "Time Spent", "Do Not Email",
        "Created", "Tags",
    }  # fmt: skip
    assert MODEL.required_names == ("Lead Source", "Time Spent")
