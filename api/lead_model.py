"""The request body of a lead, generated from the trained model's LeadSchema.

One source of truth: the fields, their types, which are required and the known categories all come
from the schema saved with the model, so a new model version brings its own request model. Types:

- numeric -> number (integer when training only saw whole numbers); true/false is refused;
- boolean -> true/false, or the words "Yes"/"No" (also yes/no, y/n, 1/0);
- categorical -> text; known categories are listed in the JSON schema, any other text is scored
  as "other" (numbers are accepted and read as text);
- datetime -> ISO 8601 text; a time zone is converted to UTC; a day-month date (01-02-2018) is
  read the one way the schema says for the field (`ColumnSpec.date_reading`), as in training;
- a placeholder answer ("Select", "N/A", "", ... see the schema) or null means missing: allowed
  for an optional field, refused for a required one;
- the id field (`lead_id` unless the model names another) is optional and echoed back;
- other columns the model knows but does not use (leakage, ids, constants) are accepted and
  ignored; any other field is refused (422), so a typo never passes silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError, from_json

from leadml.schema import (
    ColumnSpec,
    DateReading,
    LeadSchema,
    Role,
    boolean_series,
    datetime_series,
    normalise_placeholders,
    parse_moment,
)
from leadml.validation import EARLIEST_MOMENT, LATEST_MOMENT, read_value, value_problem

DEFAULT_ID_FIELD = "lead_id"
#: Categories listed in a field's description; the rest are counted.
LISTED_CATEGORIES = 30
#: Categories given as JSON schema examples.
EXAMPLE_CATEGORIES = 5


# --------------------------------------------------------------------------- value checks


def _blank(placeholders: frozenset[str]) -> Callable[[Any], Any]:
    """None for null, NaN and placeholder answers; the value otherwise."""

    def blank(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in placeholders:
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return blank


def _required(blank: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        cleaned = blank(value)
        if cleaned is None:
            raise PydanticCustomError(
                "missing",
                "Field required: this model needs a value ({value} means not answered)",
                {"value": json.dumps(value) if not isinstance(value, float) else "NaN"},
            )
        return cleaned

    return check


def _library_rules(spec: ColumnSpec, placeholders: frozenset[str]) -> Callable[[Any], Any]:
    """The library's rule for one field (leadml.validation), asked before pydantic converts the
    value, so the API refuses what the scorer would refuse and reads values as it reads them."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        problem = value_problem(spec, value, placeholders)
        if problem is not None:
            raise PydanticCustomError("lead_value", "Input {problem}", {"problem": problem})
        return read_value(spec, value)

    return check


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "Input should be a number, not true/false")
    return value


def _fits_a_float(value: Any) -> Any:
    """Whole numbers beyond a float's range (about 1.8e308) cannot be scored: a 422, not a crash
    in the model's arithmetic."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise PydanticCustomError(
                "finite_number",
                "Input should be a finite number; a {digits}-digit whole number is too large",
                {"digits": len(str(abs(value)))},
            ) from None
    return value


def _as_moment(reading: DateReading | None) -> Callable[[Any], Any]:
    """ISO 8601 text (or anything pandas reads as a date) -> naive UTC datetime.

    Day-month dates (01-02-2018) are read the way the model's schema says for the field, as in
    training and in batch scoring.
    """

    def convert(value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            moment = _parse_moment_text(value.strip(), reading)
        else:
            raise PydanticCustomError(
                "datetime_type",
                "Input should be a date and time as text, e.g. 2024-05-01T10:00:00Z",
            )
        if moment is not None and moment.tzinfo is not None:
            try:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            except (OverflowError, ValueError):
                raise PydanticCustomError(
                    "datetime_range", "Input is not a representable time"
                ) from None
        if moment is not None and not EARLIEST_MOMENT <= moment <= LATEST_MOMENT:
            raise PydanticCustomError(
                "datetime_range", "Input should be a date between 1678 and 2261"
            )
        return moment

    return convert


def _parse_moment_text(text: str, reading: DateReading | None) -> datetime:
    stamp = parse_moment(text, reading)
    if isinstance(stamp, pd.Timestamp):
        return stamp.to_pydatetime()
    if isinstance(stamp, datetime):
        return stamp
    raise PydanticCustomError(
        "datetime_parsing",
        "Input should be a date and time, e.g. 2024-05-01T10:00:00Z; got {value}",
        {"value": json.dumps(text[:40])},
    )


# --------------------------------------------------------------------------- field types


def _described_categories(spec: ColumnSpec) -> str:
    listed = ", ".join(json.dumps(c) for c in spec.categories[:LISTED_CATEGORIES])
    more = len(spec.categories) - LISTED_CATEGORIES
    suffix = f" and {more} more (GET /v1/model lists them all)" if more > 0 else ""
    if not spec.categories:
        return "Text."
    return f"Text. Known categories: {listed}{suffix}; any other text is scored as 'other'."


def _field(spec: ColumnSpec, placeholders: frozenset[str], example: Any) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one feature of the schema."""
    blank = _blank(placeholders)
    check = _required(blank) if spec.required else blank
    rules = BeforeValidator(_library_rules(spec, placeholders))
    need = "Required." if spec.required else "Optional; null or a placeholder means missing."
    default: Any = ... if spec.required else None
    extra: dict[str, Any] = {}
    if spec.role is Role.NUMERIC:
        base: Any = (
            Annotated[int, AfterValidator(_fits_a_float)]
            if spec.integer
            else Annotated[float, Field(allow_inf_nan=False)]
        )
        # Before-validators run last to first: ours, the required check, the library's rules.
        validators = [
            BeforeValidator(_not_boolean),
            rules,
            BeforeValidator(check),
            BeforeValidator(_fits_a_float),
        ]
        what = "Whole number." if spec.integer else "Number."
        annotation: Any = Annotated[base if spec.required else base | None, *validators]
    elif spec.role is Role.BOOLEAN:
        options: list[dict[str, Any]] = [
            {"type": "boolean"},
            {"type": "string", "enum": ["Yes", "No"]},
        ]
        if not spec.required:
            options.append({"type": "null"})
        json_schema = WithJsonSchema({"anyOf": options})
        base = bool if spec.required else bool | None
        annotation = Annotated[base, rules, BeforeValidator(check), json_schema]
        what = 'true/false or "Yes"/"No".'
    elif spec.role is Role.CATEGORICAL:
        base = str if spec.required else str | None
        annotation = Annotated[base, rules, BeforeValidator(check)]
        what = _described_categories(spec)
        if spec.categories:
            extra["x-known-categories"] = list(spec.categories)
        if spec.required:  # say in the schema that a placeholder is no answer
            extra["minLength"] = 1
            extra["not"] = {"enum": _spellings(placeholders)}
    else:
        base = datetime if spec.required else datetime | None
        annotation = Annotated[
            base, BeforeValidator(_as_moment(spec.date_reading)), rules, BeforeValidator(check)
        ]
        what = "Date and time, ISO 8601, years 1678-2261 (a time zone is converted to UTC)."
        if spec.date_reading is not None:
            what += f" Dates such as 01-02-2018 are read {spec.date_reading.value}, as in training."
    examples = [example] if example is not None else None
    if spec.role is Role.CATEGORICAL and spec.categories:
        examples = list(spec.categories[:EXAMPLE_CATEGORIES])
    info = Field(
        default,
        alias=spec.name,
        description=f"{what} {need}",
        examples=examples,
        json_schema_extra=extra or None,
    )
    return annotation, info


def _spellings(placeholders: frozenset[str]) -> list[str]:
    words = {w for p in placeholders if p for w in (p, p.title(), p.upper())}
    return sorted(words)


def _ignored_field(spec: ColumnSpec) -> tuple[Any, Any]:
    why = spec.reason or spec.role.value
    return Any, Field(None, alias=spec.name, description=f"Accepted and ignored ({why}).")


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class LeadModel:
    """The generated request model of one trained model, with its batch form and an example."""

    model: type[BaseModel]
    batch: TypeAdapter[list[Any]]
    id_field: str
    feature_names: tuple[str, ...]
    #: Every field a lead may carry: the id, the features and the known-but-ignored columns.
    field_names: frozenset[str]
    #: The outcome column the model was trained on. A batch (an export with its outcomes) may
    #: carry it and it is dropped; a single lead may not, since there it can only be a mistake.
    target_field: str
    required_names: tuple[str, ...]
    example: dict[str, Any]

    def parse_one(self, body: bytes) -> dict[str, Any]:
        """The lead in a JSON body, checked; raises RequestValidationError (422)."""
        try:
            lead = self.model.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError(fastapi_errors(error, ("body",))) from None
        return lead.model_dump(by_alias=True)

    def parse_many(self, leads: list[Any], where: tuple[str | int, ...] = ("body",)) -> list[dict]:
        """Leads already decoded from JSON or CSV, checked; raises RequestValidationError.

        The outcome column, if a lead carries it, is dropped before the check (`target_field`).
        """
        leads = [self.without_target(lead) for lead in leads]
        try:
            parsed = self.batch.validate_python(leads)
        except ValidationError as error:
            raise RequestValidationError(fastapi_errors(error, where)) from None
        return [lead.model_dump(by_alias=True) for lead in parsed]

    def without_target(self, lead: Any) -> Any:
        if isinstance(lead, dict) and self.target_field in lead:
            return {key: value for key, value in lead.items() if key != self.target_field}
        return lead

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )


def id_field_of(schema: LeadSchema) -> str:
    """The field carrying a lead's id: the schema's id column, else `lead_id`."""
    if schema.id_column:
        return schema.id_column
    # A feature may itself be called lead_id; the id then gets another name.
    return DEFAULT_ID_FIELD if DEFAULT_ID_FIELD not in schema.feature_names else "lead_id_"


def build_lead_model(
    schema: LeadSchema, holdout: pd.DataFrame | None = None, title: str = "Lead"
) -> LeadModel:
    """Generate the request model for `schema` (examples from the holdout's typical values)."""
    placeholders = normalise_placeholders(schema.placeholders)
    example = example_lead(schema, holdout)
    id_field = id_field_of(schema)
    fields: dict[str, Any] = {
        "lead_id__": (
            str | None,
            Field(
                None,
                alias=id_field,
                max_length=500,
                description="The lead's id in your CRM, echoed back. Optional.",
                examples=[example[id_field]],
            ),
        )
    }
    features = schema.features
    for position, spec in enumerate(features):
        fields[f"f{position}"] = _field(spec, placeholders, example.get(spec.name))
    ignored = [
        spec
        for spec in schema.dropped
        if spec.name != id_field and spec.name != schema.target and not spec.is_feature
    ]
    for position, spec in enumerate(ignored):
        fields[f"ignored{position}"] = _ignored_field(spec)
    config = ConfigDict(
        extra="forbid",
        coerce_numbers_to_str=True,
        populate_by_name=False,
        json_schema_extra={"examples": [example]},
        title=title,
    )
    model = create_model(title, __config__=config, **fields)
    batch: TypeAdapter[list[Any]] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return LeadModel(
        model=model,
        batch=batch,
        id_field=id_field,
        feature_names=tuple(spec.name for spec in features),
        field_names=frozenset({id_field, *(s.name for s in features), *(s.name for s in ignored)}),
        required_names=tuple(spec.name for spec in features if spec.required),
        target_field=schema.target,
        example=example,
    )


def example_lead(schema: LeadSchema, holdout: pd.DataFrame | None = None) -> dict[str, Any]:
    """A typical lead, made from the schema and holdout summaries (never a real lead's row)."""
    lead: dict[str, Any] = {id_field_of(schema): "lead-0001"}
    for spec in schema.features:
        column = holdout[spec.name] if holdout is not None and spec.name in holdout else None
        lead[spec.name] = _typical_value(spec, column)
    return lead


def _typical_value(spec: ColumnSpec, column: pd.Series | None) -> Any:
    if spec.role is Role.CATEGORICAL:
        return spec.categories[0] if spec.categories else "other"
    if spec.role is Role.BOOLEAN:
        if column is not None:
            share = boolean_series(column).mean()
            if isinstance(share, float) and not math.isnan(share):
                return "Yes" if share >= 0.5 else "No"
        return "No"
    if spec.role is Role.NUMERIC:
        median = float("nan")
        if column is not None:
            median = float(pd.to_numeric(column, errors="coerce").median())
        if math.isnan(median):
            median = 0.0
        return round(median) if spec.integer else round(median, 2)
    if column is not None:
        latest = datetime_series(column, spec.date_reading).max()
        if isinstance(latest, pd.Timestamp) and latest is not pd.NaT:
            return latest.floor("h").strftime("%Y-%m-%dT%H:%M:%SZ")
    return "2024-05-01T10:00:00Z"


# --------------------------------------------------------------------------- errors


def fastapi_errors(
    error: ValidationError, prefix: tuple[str | int, ...] = ("body",)
) -> list[dict[str, Any]]:
    """pydantic errors in FastAPI's 422 shape, JSON-safe (no URLs, no exception objects)."""
    problems = []
    for item in error.errors(include_url=False):
        problem: dict[str, Any] = {
            "type": item["type"],
            "loc": [*prefix, *item["loc"]],
            "msg": item["msg"],
            "input": _json_safe(item.get("input")),
        }
        if item.get("ctx"):
            problem["ctx"] = {key: _json_safe(value) for key, value in item["ctx"].items()}
        problems.append(problem)
    return problems


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value[:50]]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    return str(value)


def decode_json(body: bytes) -> Any:
    """JSON text -> Python values; malformed JSON is a 422 like pydantic's own."""
    try:
        return from_json(body, allow_inf_nan=True)
    except ValueError as error:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body"],
                    "msg": f"Invalid JSON: {error}",
                    "input": None,
                }
            ]
        ) from None
