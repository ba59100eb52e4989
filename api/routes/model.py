"""What model is serving and what a lead may carry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PoliciesDep, ScorerRole, ServingDep, SettingsDep
from api.schemas import AUTH_RESPONSES, ModelDescription, Problem
from api.serving import ServingModel, describe_fields
from leadml.policy import ActivePolicy

router = APIRouter(prefix="/v1", tags=["model"])


@router.get(
    "/model",
    response_model=ModelDescription,
    summary="The model being served",
    description="Name, version, alias, training time, holdout metrics, the MQL policy in force,"
    " and every field a lead may carry with its type, known categories and whether it is"
    " required.",
    responses={**AUTH_RESPONSES, 503: {"model": Problem, "description": "No model loaded."}},
)
async def describe_model(
    caller: ScorerRole, model: ServingDep, policies: PoliciesDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        policy: ActivePolicy | None = await policies.active(model.scorer)
    except Exception:  # the description is still useful without the policy
        policy = None
    return {
        **model_description(model, policy, settings.max_batch_leads),
        "max_body_bytes": settings.max_body_bytes,
        # The pages say up front what a role may not do, instead of failing after a click.
        "your_roles": sorted(role.value for role in caller.roles),
    }


def model_description(
    model: ServingModel, policy: ActivePolicy | None, max_batch_leads: int
) -> dict[str, Any]:
    info = model.scorer.info
    schema = model.scorer.schema
    lead_model = model.lead_model
    ignored = [
        {"name": spec.name, "reason": spec.reason or spec.role.value}
        for spec in schema.dropped
        if spec.name in lead_model.field_names and spec.name != lead_model.id_field
    ]
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "kind": info.kind,
        "calibration": info.calibration,
        "trained_at": info.trained_at,
        "loaded_at": model.loaded_at.isoformat(),
        "source": model.source,
        "metrics": {k: v for k, v in info.metrics.items() if v == v},  # drop NaN
        "id_field": lead_model.id_field,
        "fields": describe_fields(model),
        "ignored_fields": ignored,
        "placeholders": [p for p in schema.placeholders],
        "policy": _policy(policy),
        "fast_path": model.predictor.kind,
        "max_batch_leads": max_batch_leads,
    }


def _policy(policy: ActivePolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "version": policy.version,
        "kind": policy.kind,
        "cutoff": policy.cutoff,
        "sentence": policy.sentence,
        "grades": [
            {"grade": label, "lower_bound": bound}
            for label, bound in zip(policy.bands.labels, policy.bands.lower_bounds, strict=True)
        ],
        "stale": policy.stale,
    }
