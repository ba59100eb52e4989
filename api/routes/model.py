"""What model is serving and what a lead may carry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PoliciesDep, PolicyBookDep, ScorerRole, ServingDep, SettingsDep
from api.schemas import AUTH_RESPONSES, ModelDescription, Problem
from api.serving import ServingModel, describe_fields
from leadml.errors import ModelError
from leadml.evaluate import calibration_table, gains_table
from leadml.explain import trait_importance
from leadml.policy import ActivePolicy, Holdout, model_key
from leadml.registry import model_versions

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


def _identity(model: ServingModel) -> dict[str, Any]:
    """What names the served model, the same in the description and the report."""
    info = model.scorer.info
    return {
        "name": model.name,
        "version": model.version,
        "alias": model.alias,
        "kind": info.kind,
        "calibration": info.calibration,
        "trained_at": info.trained_at,
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
        **_identity(model),
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


# --------------------------------------------------------------------------- the model page

#: What each holdout metric means, in one line, for the model page.
METRIC_MEANINGS: dict[str, tuple[str, str]] = {
    "roc_auc": (
        "ROC AUC",
        "Chance that a lead who converted is ranked above one who did not (0.5 is a coin toss).",
    ),
    "pr_auc": (
        "PR AUC",
        "How well the top of the list holds converters; compare it with the base rate.",
    ),
    "lift_top_decile": (
        "Lift in the top 10 %",
        "How many times more often the top tenth of leads convert than leads on average.",
    ),
    "brier": ("Brier score", "Mean squared gap between probability and outcome; lower is better."),
    "log_loss": ("Log loss", "Penalty for confident wrong probabilities; lower is better."),
    "ece": (
        "Calibration error",
        "Average gap between the predicted and the observed conversion rate; 0.02 is 2 points.",
    ),
    "base_rate": ("Base rate", "Share of the test leads that converted."),
    "n": ("Test leads", "Leads held out of training and used for these figures."),
}
#: Points on the gains curve (and bins of the calibration chart).
GAINS_POINTS = 50
CALIBRATION_BINS = 10
#: Trait importance is TreeSHAP over the holdout: once per model version and worker.
_DRIVERS: dict[tuple[str, str, str], list[dict[str, Any]]] = {}


def holdout_curves(holdout: Holdout) -> dict[str, Any]:
    """The gains curve and the calibration table of a model's holdout, JSON-ready."""
    gains = gains_table(holdout.y, holdout.proba, n_bins=min(GAINS_POINTS, len(holdout.y)))
    calibration = calibration_table(holdout.y, holdout.proba, n_bins=CALIBRATION_BINS)
    return {
        "n_holdout": len(holdout.y),
        "base_rate": float(holdout.y.mean()),
        "gains": [{"share_of_leads": 0.0, "share_of_conversions": 0.0, "cutoff": 1.0}]
        + [
            {
                "share_of_leads": float(row["cum_share_leads"]),
                "share_of_conversions": float(row["cum_gain"]),
                "cutoff": float(row["proba_min"]),
            }
            for row in gains.to_dict(orient="records")
        ],
        "calibration": [
            {
                "predicted": float(row["mean_predicted"]),
                "observed": float(row["observed_rate"]),
                "n": int(row["n"]),
            }
            for row in calibration.to_dict(orient="records")
        ],
    }


@router.get(
    "/model/curves",
    summary="Gains and calibration of the served model on its holdout",
    description="The cumulative gains curve (share of conversions captured against the share of"
    " leads made MQLs, highest scores first) and the calibration table (mean predicted"
    " probability against the observed conversion rate, 10 equal-sized bins), on the leads held"
    " out of training.",
    responses={**AUTH_RESPONSES, 503: {"model": Problem, "description": "No model loaded."}},
)
def model_curves(_: ScorerRole, model: ServingDep, book: PolicyBookDep) -> dict[str, Any]:
    return holdout_curves(book.holdout(model.scorer))


def _drivers(model: ServingModel) -> list[dict[str, Any]]:
    key = model_key(model.scorer)
    if key not in _DRIVERS:
        leads = model.holdout_leads
        if leads is None or leads.empty:
            return []
        table = trait_importance(model.scorer.pipeline, leads)
        _DRIVERS[key] = [
            {
                "field": str(row["field"]),
                "label": str(row["label"]),
                "share": float(row["share"]),
                "summary": str(row["summary"]),
            }
            for row in table.to_dict(orient="records")
        ]
    return _DRIVERS[key]


def _columns(model: ServingModel) -> dict[str, list[dict[str, str]]]:
    schema = model.scorer.schema
    return {
        "excluded": [
            {"name": spec.name, "role": spec.role.value, "evidence": spec.reason or ""}
            for spec in schema.dropped
            if spec.role.value != "target"
        ],
        # Kept as features but worth a look (e.g. a name that sounds like sales filled it in).
        "flagged": [
            {"name": spec.name, "role": spec.role.value, "evidence": spec.reason}
            for spec in schema.features
            if spec.reason
        ],
    }


def _history(name: str, tracking_uri: str | None) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return [v.to_dict() for v in model_versions(name, tracking_uri)], None
    except ModelError as error:
        return [], str(error)


@router.get(
    "/model/report",
    summary="What the model page shows: metrics with meanings, drivers, columns, history",
    description="Holdout metrics with a one-line meaning each, the gains and calibration curves,"
    " the traits that drive conversion (mean |contribution| share and direction), the columns"
    " left out (leaks, ids) and those flagged, with the evidence, and the registered versions"
    " of the model with their holdout metrics side by side (from the MLflow registry).",
    responses={**AUTH_RESPONSES, 503: {"model": Problem, "description": "No model loaded."}},
)
def model_report(
    _: ScorerRole, model: ServingDep, book: PolicyBookDep, settings: SettingsDep
) -> dict[str, Any]:
    info = model.scorer.info
    history, history_error = _history(model.name, settings.tracking_uri)
    return {
        **_identity(model),
        "selection_reason": info.selection_reason,
        "source": model.source,
        "target": model.scorer.schema.target,
        "n_features": len(model.scorer.schema.features),
        "metrics": [
            {"name": name, "label": label, "meaning": meaning, "value": info.metrics[name]}
            for name, (label, meaning) in METRIC_MEANINGS.items()
            if name in info.metrics and info.metrics[name] == info.metrics[name]
        ],
        "curves": holdout_curves(book.holdout(model.scorer)),
        "drivers": _drivers(model),
        "columns": _columns(model),
        "history": history,
        "history_error": history_error,
    }
