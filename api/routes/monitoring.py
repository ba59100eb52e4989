"""The MQL line as a contract: what each policy version promised against what the ledger shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from api.deps import PolicyBookDep, ScorerRole, ServingDep, SettingsDep
from api.schemas import AUTH_RESPONSES, Problem

router = APIRouter(prefix="/v1", tags=["monitoring"])

DaysQuery = Annotated[
    float,
    Query(gt=0, le=3650, description="Look at the scores of the last this many days."),
]


@router.get(
    "/monitoring",
    summary="The MQL line's contract: promise against outcomes, with a verdict",
    description="Per MQL policy version and model version, over the scores of the last `days`"
    " days in the ledger: realised conversion of MQLs and per grade against the promise (with"
    " intervals), the SQL acceptance rate and rejection reasons, MQL volume per week, calibration,"
    " missing outcomes; realised conversion below the line from the exploration leads, weighted"
    " by the inverse of their chance of being handed over, with an interval (`below_line`; it says"
    " plainly that conversion below the line is unobserved without exploration); score and"
    " feature drift (PSI) against the model's holdout. `verdict` is"
    " healthy, watch or act, and `reason` says why in one sentence.",
    responses={**AUTH_RESPONSES, 503: {"model": Problem, "description": "No model or store."}},
)
async def monitoring(
    _: ScorerRole,
    model: ServingDep,
    book: PolicyBookDep,
    settings: SettingsDep,
    days: DaysQuery = 90.0,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    report = await anyio.to_thread.run_sync(
        lambda: book.contract(
            model.scorer,
            since=now - timedelta(days=days),
            now=now,
            outcome_window=timedelta(days=settings.outcome_window_days),
            holdout_leads=model.holdout_leads,
        )
    )
    return {"model_name": model.name, "model_version": model.version, **report.to_dict()}
