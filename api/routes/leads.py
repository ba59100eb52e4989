"""Score one lead, or a batch of leads (JSON array or CSV upload) ranked highest first.

The body is read raw and checked against the request model of the model serving *now* (it is
generated from that model's schema, and a reload may bring another): the OpenAPI document shows
the current one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, cast

import anyio.to_thread
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic_core import to_json
from starlette.datastructures import UploadFile

from api.deps import ScoringDep, SettingsDep, get_scoring
from api.keys import HEADER
from api.lead_model import LeadModel, decode_json
from api.ledger import LedgerWriter, ledger_rows, score_source
from api.metrics import ApiMetrics
from api.schemas import (
    AUTH_RESPONSES,
    BatchScores,
    Problem,
    SingleLeadScore,
    ValidationProblem,
)
from api.serving import ServingModel
from leadml.batch import rank_order
from leadml.data import detect_separator
from leadml.explain import what_would_move
from leadml.policy import ActivePolicy
from leadml.scoring import crm_import_frame

router = APIRouter(prefix="/v1/leads", tags=["leads"])

#: Batches at least this large are scored in a worker thread, so the event loop keeps answering.
THREAD_FROM_LEADS = 64
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
UPLOAD_FIELD = "file"

REASONS_DESCRIPTION = (
    "Give the top factors for and against each lead. Reasons cost more than the score itself"
    " (exact TreeSHAP for LightGBM models); pass false when only the score, grade and ranking"
    " are needed."
)
ReasonsQuery = Annotated[bool, Query(description=REASONS_DESCRIPTION)]
FormatQuery = Annotated[
    Literal["json", "crm"],
    Query(
        alias="format",
        description="json: the ranked scores as JSON; crm: a CSV shaped for a CRM import (lead"
        " id, score, grade, MQL flag, top reasons as text, model and policy version), the same"
        " as `leadml score --crm-csv`.",
    ),
]
MOVE_DESCRIPTION = (
    "For a lead below the MQL line, also give the smallest change of one actionable trait that"
    " would lift it past the line (a few milliseconds more), or null when none would."
)
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    413: {"model": Problem, "description": "The body (or the batch) is over the limit."},
    422: {"model": ValidationProblem, "description": "Field-level problems with the leads."},
    503: {"model": Problem, "description": "No model loaded, or the MQL policy is unreadable."},
}


_TRUE_WORDS = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off", "f", "n"})


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint takes the Request and is called as it is: no dependency or
    parameter resolution (FastAPI's documented `get_route_handler` hook). For the single-lead
    route, where that machinery costs more than scoring the lead; the endpoint resolves the key,
    model, policy and query itself, and `openapi_extra` documents them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


async def score_lead(request: Request) -> Response:
    """One lead in, its score out (the route is registered below, as a DirectRoute)."""
    scoring = await get_scoring(request, request.headers.get(HEADER))
    reasons = _flag(request, "reasons", default=True)
    suggest = _flag(request, "what_would_move", default=False)
    model = scoring.model
    record = model.lead_model.parse_one(await request.body())
    [result] = model.score([record], scoring.policy, reasons)
    if suggest:
        move = None
        if not result["is_mql"]:
            move = what_would_move(model.scorer, record, scoring.policy.cutoff, model.explainer)
        result["what_would_move"] = None if move is None else move.to_dict()
    _metrics(request).count_scores([result["grade"]], int(result["is_mql"]))
    await _record(request, model, [record], [result], "api")
    return Response(to_json(result), media_type="application/json")


router.add_api_route(
    "/score",
    score_lead,
    methods=["POST"],
    route_class_override=DirectRoute,
    response_model=SingleLeadScore,
    summary="Score one lead",
    description="Probability, score, grade, MQL decision, percentile and reasons for one lead."
    " The body is one lead as described by GET /v1/model (fields not known to the model answer"
    " 422).",
    responses=COMMON_RESPONSES,
    openapi_extra={
        "security": [{"APIKeyHeader": []}],
        "parameters": [
            {
                "name": "reasons",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": True, "title": "Reasons"},
                "description": REASONS_DESCRIPTION,
            },
            {
                "name": "what_would_move",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False, "title": "What would move"},
                "description": MOVE_DESCRIPTION,
            },
        ],
    },
)


def _flag(request: Request, name: str, default: bool) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return default
    if text.lower() in _TRUE_WORDS:
        return True
    if text.lower() in _FALSE_WORDS:
        return False
    raise RequestValidationError(
        [
            {
                "type": "bool_parsing",
                "loc": ["query", name],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": text,
            }
        ]
    )


@router.post(
    "/score-batch",
    response_model=BatchScores,
    summary="Score a batch of leads, ranked highest first",
    description="A JSON array of leads, or a CSV file (as the body with Content-Type text/csv,"
    f" or uploaded as the multipart form field '{UPLOAD_FIELD}') with one column per field."
    " At most LEADML_MAX_BATCH_LEADS leads (1,000 by default) per call.",
    responses={
        **COMMON_RESPONSES,
        200: {
            "description": "The ranked scores (JSON), or with format=crm a CSV for a CRM import.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def score_batch(
    request: Request,
    scoring: ScoringDep,
    settings: SettingsDep,
    reasons: ReasonsQuery = True,
    answer: FormatQuery = "json",
) -> Response:
    model, policy = scoring.model, scoring.policy
    limit = settings.max_batch_leads
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        records, outcome_ignored = await _leads_from_upload(request, model.lead_model, limit)
    elif media in CSV_TYPES:
        records, outcome_ignored = leads_from_csv(await request.body(), model.lead_model, limit)
    else:
        records, outcome_ignored = _leads_from_json(await request.body(), model.lead_model, limit)
    results = await _score(model, policy, records, reasons, request.app.state.scoring_threads)
    _metrics(request).count_scores(
        (r["grade"] for r in results), sum(1 for r in results if r["is_mql"])
    )
    await _record(request, model, records, results, "batch")
    order = rank_order([r["probability"] for r in results])
    ranked = [{**results[i], "rank": rank, "row": int(i) + 1} for rank, i in enumerate(order, 1)]
    if answer == "crm":
        return _crm_csv(ranked, model.version, policy.version)
    return JSONResponse(
        {
            "count": len(ranked),
            "model_version": model.version,
            "policy_version": policy.version,
            "notes": [_target_note(model.lead_model.target_field)] if outcome_ignored else [],
            "leads": ranked,
        }
    )


def _target_note(target: str) -> str:
    return f"Column '{target}' is the outcome the model learned from; it was ignored for scoring."


async def _score(
    model: ServingModel,
    policy: ActivePolicy,
    records: list[dict[str, Any]],
    reasons: bool,
    limiter: anyio.CapacityLimiter,
) -> list[dict[str, Any]]:
    if len(records) < THREAD_FROM_LEADS:
        return model.score(records, policy, reasons)
    return await anyio.to_thread.run_sync(model.score, records, policy, reasons, limiter=limiter)


def _crm_csv(
    ranked: list[dict[str, Any]], model_version: str | None, policy_version: int | None
) -> Response:
    """The ranked scores as the CSV `leadml score --crm-csv` writes, for a CRM import."""
    frame = pd.DataFrame(
        {
            "lead_id": [r["lead_id"] if r["lead_id"] is not None else r["row"] for r in ranked],
            "score": [r["score"] for r in ranked],
            "grade": [r["grade"] for r in ranked],
            "is_mql": [r["is_mql"] for r in ranked],
            "reasons_for": [
                "; ".join(x["text"] for x in (r["reasons"] or {}).get("for", [])) for r in ranked
            ],
        }
    )
    crm = crm_import_frame(
        frame, id_column="lead_id", model_version=model_version, policy_version=policy_version
    )
    return Response(
        crm.to_csv(index=False),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="leadml-crm-import.csv"'},
    )


async def _record(
    request: Request,
    model: ServingModel,
    records: list[dict[str, Any]],
    results: list[dict[str, Any]],
    source: str,
) -> None:
    """Hand the scores to the ledger writer: at once, or after waiting for room while the
    database catches up (back-pressure, bounded; never blocks the event loop; see
    api/ledger.py)."""
    ledger: LedgerWriter | None = request.app.state.ledger
    if ledger is not None:
        origin = score_source(request.headers, source)
        await ledger.submit_or_wait(ledger_rows(model.name, records, results, origin))


def _metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def too_many(count: int, limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"a batch holds at most {limit:,} leads (LEADML_MAX_BATCH_LEADS); this one has"
        f" {count:,}: split it into smaller batches",
    )


def _problem(loc: list[str | int], kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": None}])


def _leads_from_json(
    body: bytes, lead_model: LeadModel, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    leads = decode_json(body)
    if not isinstance(leads, list):
        raise _problem(["body"], "list_type", "Input should be a JSON array of leads")
    if len(leads) > limit:
        raise too_many(len(leads), limit)
    target = lead_model.target_field
    seen = any(isinstance(lead, dict) and lead.get(target) is not None for lead in leads)
    return lead_model.parse_many(leads), seen


async def _leads_from_upload(
    request: Request, lead_model: LeadModel, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    try:
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get(UPLOAD_FIELD)
            if not isinstance(upload, UploadFile):
                raise _problem(
                    ["body", UPLOAD_FIELD],
                    "missing",
                    f"Upload the CSV file as the form field '{UPLOAD_FIELD}'",
                )
            content = await upload.read()
    except HTTPException as error:
        if error.status_code != 400:
            raise
        raise _problem(["body"], "multipart", f"Unreadable upload: {error.detail}") from None
    return leads_from_csv(content, lead_model, limit)


def leads_from_csv(
    content: bytes, lead_model: LeadModel, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Leads from CSV bytes: a header row naming fields, one lead a row, empty cell = missing.

    Also says whether the file carried the outcome column (dropped: an export with outcomes can
    be ranked as it is).
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _problem(["body"], "csv_encoding", "The CSV is not UTF-8 text") from None
    try:
        separator = detect_separator(text.split("\n", 1)[0])
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))
    except csv.Error as error:
        raise _problem(["body"], "csv_invalid", f"The CSV cannot be read: {error}") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise _problem(["body"], "csv_empty", "The CSV has no header row")
    header = [name.strip() for name in rows[0]]
    _check_columns([name for name in header if name != lead_model.target_field], lead_model)
    body = rows[1:]
    if len(body) > limit:
        raise too_many(len(body), limit)
    leads: list[dict[str, Any]] = []
    for number, row in enumerate(body):
        if len(row) > len(header):
            raise _problem(
                ["body", number],
                "csv_row",
                f"Row {number + 1} has {len(row)} values but the header names {len(header)}",
            )
        leads.append(
            {name: value if value != "" else None for name, value in zip(header, row, strict=False)}
        )
    return lead_model.parse_many(leads), lead_model.target_field in header


def _check_columns(header: list[str], lead_model: LeadModel) -> None:
    known = lead_model.field_names
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(_column_problem(name, "csv_duplicate", "Column appears twice"))
        elif name not in known:
            problems.append(
                _column_problem(
                    name, "extra_forbidden", "Unknown column: the model has no such field"
                )
            )
        seen.add(name)
    for name in lead_model.required_names:
        if name not in seen:
            problems.append(_column_problem(name, "missing", "Column required by the model"))
    if problems:
        raise RequestValidationError(problems)


def _column_problem(name: str, kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", "columns", name], "msg": message, "input": None}
