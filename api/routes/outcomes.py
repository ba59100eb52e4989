"""Sales outcomes: what became of a lead (sql_accepted, sql_rejected, won, lost), posted by a CRM.

Idempotent on (lead id, event, time): a CRM that retries a batch gets its events counted as
duplicates, never twice. The answer comes after the events are committed (they survive a crash
of the server from then on), and says how many were stored, how many were already there, and
which lead ids the score ledger has never seen (they are kept, not refused).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from api.deps import SalesRole, SettingsDep
from api.schemas import AUTH_RESPONSES, Problem, ValidationProblem
from leadml.outcomes import event_problem, normalise_reason
from leadml.store import OutcomeEventIn, Store

router = APIRouter(prefix="/v1", tags=["outcomes"])

#: Unseen lead ids listed in an answer (all are counted).
UNSEEN_SHOWN = 100


class OutcomeEvent(BaseModel):
    """One thing that happened to a lead, at the time it happened."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    lead_id: str = Field(min_length=1, max_length=200, description="The lead's id in the ledger.")
    event: Literal["sql_accepted", "sql_rejected", "won", "lost"]
    occurred_at: datetime = Field(
        description="When it happened (ISO 8601; without a time zone it is taken as UTC)."
    )
    reason: str | None = Field(
        default=None,
        max_length=200,
        description="sql_rejected: one of LEADML_REJECTION_REASONS; lost: any text.",
    )
    deal_value: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="won: what the deal is worth."
    )

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):  # 0001-01-01T00:00+00:01 is before year 1 in UTC
            raise PydanticCustomError(
                "datetime_range", "Input is not a representable time in UTC"
            ) from None


class OutcomeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[OutcomeEvent] = Field(min_length=1)


class OutcomesStored(BaseModel):
    received: int = Field(description="Events in the request.")
    stored: int = Field(description="New events, now committed.")
    duplicates: int = Field(description="Events already stored (same lead id, event and time).")
    unseen_leads: int = Field(description="Lead ids the score ledger has never seen (kept).")
    unseen_lead_ids: list[str] = Field(description=f"The first {UNSEEN_SHOWN} of them.")


@router.post(
    "/outcomes",
    response_model=OutcomesStored,
    summary="Post sales outcomes",
    description="A batch of outcome events (at most LEADML_MAX_OUTCOME_EVENTS). Needs the sales"
    " (or admin) role. Idempotent on (lead id, event, time).",
    responses={
        **AUTH_RESPONSES,
        413: {"model": Problem, "description": "Too many events in one batch."},
        422: {"model": ValidationProblem, "description": "Field-level problems with the events."},
        503: {"model": Problem, "description": "The app database cannot be written now: retry."},
    },
)
async def post_outcomes(
    batch: OutcomeBatch, request: Request, _: SalesRole, settings: SettingsDep
) -> OutcomesStored:
    limit = settings.max_outcome_events
    if len(batch.events) > limit:
        raise HTTPException(
            413,
            f"a batch holds at most {limit:,} events (LEADML_MAX_OUTCOME_EVENTS); this one has"
            f" {len(batch.events):,}: split it",
        )
    reasons = settings.rejection_reason_list
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(batch.events):
        problem = event_problem(item.event, item.reason, item.deal_value, reasons)
        if problem is not None:
            field, message = problem
            problems.append(
                {
                    "type": "value_error",
                    "loc": ["body", "events", index, field],
                    "msg": message,
                    "input": getattr(item, field),
                }
            )
    if problems:
        raise RequestValidationError(problems)
    events = [
        OutcomeEventIn(
            lead_id=item.lead_id,
            event=item.event,
            occurred_at=item.occurred_at,
            reason=normalise_reason(item.event, item.reason),
            deal_value=item.deal_value,
            source="api",
        )
        for item in batch.events
    ]
    store: Store = request.app.state.store
    result = await anyio.to_thread.run_sync(store.record_outcome_events, events)
    return OutcomesStored(
        received=result.received,
        stored=result.stored,
        duplicates=result.duplicates,
        unseen_leads=result.unseen_leads,
        unseen_lead_ids=list(result.unseen_lead_ids[:UNSEEN_SHOWN]),
    )
