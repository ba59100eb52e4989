"""The MQL policy of the served model: read it, set a new version, try one out, see the history.

- `GET /v1/mql-policy`: the policy deciding `is_mql` and grades now, with the figures expected at
  its cut-off (the default policy, version null, while none is stored).
- `PUT /v1/mql-policy` (admin): resolve a policy on the served model's holdout and store it as a
  new version; returns that version. History is kept, never overwritten. `exploration_share`
  (0 to 0.5, default 0) hands that share of the leads below the line to sales at random, flagged
  as exploration; it is part of the version (who set it, when, why) like the rest.
- `POST /v1/mql-policy/simulate`: a proposed policy, or `{"shift_points": N}` moving the current
  line, answered with the threshold-table rows and the change in MQL volume and conversions.
  Nothing is stored.
- `GET /v1/mql-policy/history`: stored versions, newest first.

A policy that is well formed but cannot be met on this model's holdout (no cut-off reaches the
precision asked for, a capacity smaller than the leads tied at the top) is a 422 too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query

from api.deps import ActivePolicyDep, AdminRole, PolicyBookDep, ScorerDep, ScorerRole
from api.schemas import AUTH_RESPONSES, Problem, ValidationProblem
from api.schemas_policy import (
    HistoryOut,
    PolicyChange,
    PolicyOut,
    ShiftProposal,
    SimulationOut,
    SimulationRequest,
)
from leadml.errors import PolicyError
from leadml.policy import ActivePolicy, active_from_record
from leadml.scoring import Scorer

router = APIRouter(prefix="/v1/mql-policy", tags=["mql-policy"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    422: {
        "model": ValidationProblem,
        "description": "A field is wrong, or the policy cannot be met.",
    },
    503: {"model": Problem, "description": "No model is loaded, or the app database is down."},
}


def policy_out(policy: ActivePolicy, scorer: Scorer) -> PolicyOut:
    return PolicyOut.model_validate(
        {**policy.to_dict(), "serving_model_version": scorer.info.version}
    )


def _unreachable(error: PolicyError) -> HTTPException:
    """A policy that is valid but cannot be met on this model: 422, in the validation shape."""
    return HTTPException(
        422, detail=[{"loc": ["body"], "msg": str(error), "type": "policy_cannot_be_met"}]
    )


@router.get(
    "",
    response_model=PolicyOut,
    summary="The MQL policy in force",
    description="The policy deciding `is_mql` and grades for the served model, with the figures"
    " expected at its cut-off (holdout estimates with bootstrap intervals). `version` is null for"
    " the default policy (the top 30 % of leads) while none is stored.",
    responses=_RESPONSES,
)
async def current_policy(_: ScorerRole, scorer: ScorerDep, policy: ActivePolicyDep) -> PolicyOut:
    return policy_out(policy, scorer)


@router.put(
    "",
    response_model=PolicyOut,
    summary="Set a new MQL policy version",
    description="Resolves the policy on the served model's holdout and stores it as the next"
    " version, with who set it and why. Scores use it from the next request on. An"
    " `exploration_share` (0 to 0.5; 0, the default, for none) hands that share of the leads"
    " below the line to sales anyway, at random, flagged `exploration` in the scores and the"
    " ledger; `expected.exploration` says how many extra leads a week that is.",
    responses=_RESPONSES,
)
def set_policy(
    _: AdminRole,
    scorer: ScorerDep,
    book: PolicyBookDep,
    change: Annotated[PolicyChange, Body()],
) -> PolicyOut:
    try:
        record = book.set(
            scorer,
            change.to_policy(),
            set_by=change.set_by,
            reason=change.reason,
            exploration_share=change.exploration_share,
            **change.context(),
        )
    except PolicyError as error:
        raise _unreachable(error) from None
    return policy_out(active_from_record(record, scorer.info.version), scorer)


@router.post(
    "/simulate",
    response_model=SimulationOut,
    summary="What a policy would change (nothing is stored)",
    description='Send a policy (as for PUT, without set_by and reason), or `{"shift_points": 5}`'
    " to move the current MQL line by 5 percentage points of leads (negative: fewer MQLs). The"
    " answer compares it with the current policy on the served model's holdout; `exploration`"
    " gives the exploration share (the current one for a shift unless given) and what it costs"
    " sales in leads a week at the proposed line.",
    responses=_RESPONSES,
)
def simulate(
    _: ScorerRole,
    scorer: ScorerDep,
    book: PolicyBookDep,
    proposal: Annotated[SimulationRequest, Body()],
) -> SimulationOut:
    target = proposal.shift_points if isinstance(proposal, ShiftProposal) else proposal.to_policy()
    try:
        result = book.simulate(
            scorer, target, exploration_share=proposal.exploration_share, **proposal.context()
        )
    except PolicyError as error:
        raise _unreachable(error) from None
    return SimulationOut.model_validate(result)


@router.get(
    "/history",
    response_model=HistoryOut,
    summary="Stored MQL policy versions, newest first",
    responses=_RESPONSES,
)
def history(
    _: ScorerRole,
    scorer: ScorerDep,
    book: PolicyBookDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most versions returned.")] = 100,
) -> HistoryOut:
    records = book.history(scorer.info.name, limit=limit)
    return HistoryOut(
        model_name=scorer.info.name,
        versions=[
            policy_out(active_from_record(record, scorer.info.version), scorer)
            for record in records
        ],
    )
