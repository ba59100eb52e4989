"""Response bodies of the API (the request body of a lead is generated per model: lead_model.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Reason(BaseModel):
    """One field's part in a lead's score, in plain words."""

    field: str = Field(description="The lead's field.")
    value: Any = Field(description="The lead's value of the field (null when missing).")
    effect: float = Field(
        description="Contribution in log-odds of the model before calibration; > 0 raises."
    )
    direction: Literal["raises", "lowers"]
    text: str = Field(examples=["Requested demo = yes raises the chance"])


class Reasons(BaseModel):
    """The strongest factors for and against a lead."""

    model_config = ConfigDict(populate_by_name=True)

    for_: list[Reason] = Field(
        alias="for", description="Factors raising the chance, strongest first."
    )
    against: list[Reason] = Field(description="Factors lowering the chance, strongest first.")


class LeadScore(BaseModel):
    """The score of one lead."""

    lead_id: str | None = Field(description="The lead's id as sent (null when none was sent).")
    probability: float = Field(ge=0, le=1, description="Calibrated probability of converting.")
    score: int = Field(ge=0, le=100, description="The probability in points: 37 ~ 37 % convert.")
    grade: str = Field(description="Grade under the MQL policy (A best).", examples=["B"])
    is_mql: bool = Field(description="At or above the MQL line of the policy in force.")
    exploration: bool = Field(
        default=False,
        description="Below the line but handed to sales anyway, at random, under the policy's"
        " exploration share: work it like an MQL, so conversion below the line is measured.",
    )
    selection_probability: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="The chance this lead goes to sales under the policy: 1 for MQLs, the"
        " exploration share below the line (0 without exploration).",
    )
    percentile: float = Field(
        ge=0, le=100, description="Share (%) of the model's holdout leads scored at or below."
    )
    reasons: Reasons | None = Field(
        description="Top factors for and against; null when the call asked for none."
    )
    model_version: str | None = Field(description="Registered model version that scored it.")
    policy_version: int | None = Field(
        description="MQL policy version that decided is_mql and grade; null = the default policy."
    )


class Suggestion(BaseModel):
    """The smallest change of one actionable trait that lifts a lead past the MQL line."""

    field: str
    from_value: Any
    to_value: Any
    probability_before: float
    probability_after: float
    cutoff: float
    steps: int
    sentence: str = Field(examples=["Requesting a demo would raise the probability ..."])


class SingleLeadScore(LeadScore):
    what_would_move: Suggestion | None = Field(
        default=None,
        description="Only with ?what_would_move=true: the smallest single change that would make"
        " the lead an MQL, or null when it already is one or no single change would.",
    )


class RankedLeadScore(LeadScore):
    rank: int = Field(ge=1, description="1 = the most likely to convert in this batch.")
    row: int = Field(ge=1, description="Position of the lead in the request (1 = first).")


class BatchScores(BaseModel):
    """A batch of leads, ranked highest probability first (ties keep the request order)."""

    count: int
    model_version: str | None
    policy_version: int | None
    #: Said once for the batch, e.g. that the outcome column in an export was ignored.
    notes: list[str] = []
    leads: list[RankedLeadScore]


class FieldDescription(BaseModel):
    """One field a lead may carry."""

    name: str
    role: Literal["numeric", "categorical", "boolean", "datetime"]
    type: Literal["number", "integer", "boolean", "string", "date-time"]
    required: bool
    known_categories: list[str] = Field(
        default_factory=list, description="Categories seen in training, most frequent first."
    )
    missing_share: float = Field(description="Share of training leads without a value.")


class IgnoredField(BaseModel):
    name: str
    reason: str


class GradeBand(BaseModel):
    grade: str
    lower_bound: float = Field(description="Lowest probability of the grade (inclusive).")


class PolicySummary(BaseModel):
    version: int | None = Field(description="Stored version; null = the default policy.")
    kind: str
    cutoff: float = Field(description="Leads at or above this probability are MQLs.")
    sentence: str
    grades: list[GradeBand]
    stale: bool = Field(description="The cut-off was resolved on another model version.")


class ModelDescription(BaseModel):
    """The model being served and what a lead may carry."""

    name: str
    version: str | None
    alias: str | None = Field(description="Registry alias served (null for a folder or URI).")
    kind: str = Field(examples=["lightgbm"])
    calibration: str
    trained_at: str
    loaded_at: str
    source: str
    metrics: dict[str, float] = Field(description="Holdout metrics measured at training time.")
    id_field: str = Field(description="Field carrying the lead's id (optional in a request).")
    fields: list[FieldDescription]
    ignored_fields: list[IgnoredField] = Field(
        description="Known columns a lead may carry that this model does not use."
    )
    placeholders: list[str] = Field(description="Values counted as missing, e.g. 'Select'.")
    policy: PolicySummary | None
    fast_path: Literal["compiled", "pipeline"]
    max_batch_leads: int
    max_body_bytes: int = Field(description="Largest request body; pages split uploads to fit.")
    your_roles: list[str] = Field(description="The roles of the key that asked (or anonymous's).")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReloadError(BaseModel):
    at: str
    source: str
    message: str
    refused_version: str | None


class WorkerState(BaseModel):
    pid: int
    model_name: str | None = None
    model_version: str | None = None
    fingerprint: str | None = None
    loaded_at: str | None = None
    last_reload_error: str | None = None


class Readiness(BaseModel):
    ready: bool
    model_name: str | None
    model_version: str | None
    loaded_at: str | None
    last_reload_at: str | None
    last_reload_error: ReloadError | None
    detail: str | None = None
    pid: int = Field(description="The worker process that answered.")
    workers: list[WorkerState] | None = Field(
        default=None,
        description="With `leadml serve --workers N`: what every live worker serves now.",
    )


class ReloadResult(BaseModel):
    outcome: Literal["reloaded", "unchanged", "refused"]
    model_version: str | None = Field(description="The version serving after the call.")
    previous_version: str | None
    message: str


class Problem(BaseModel):
    """An error that is not about one field."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: 'body', then the row (batches), the field.")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationProblem(BaseModel):
    """Field-level problems with the request (422)."""

    detail: list[FieldProblem]


#: Error responses shared by the authenticated routes (OpenAPI documentation).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No X-API-Key header, or an unknown key."},
    403: {"model": Problem, "description": "The key's role may not do this."},
}
