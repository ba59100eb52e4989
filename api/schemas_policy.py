"""Request and response bodies of /v1/mql-policy.

A policy is a JSON object tagged by `kind` (a discriminated union), with the same fields as the
`leadml.threshold` policy it becomes:

    {"kind": "capacity", "per_week": 200, "leads_per_week": 1500}
    {"kind": "min_precision", "min_precision": 0.6}
    {"kind": "min_recall", "min_recall": 0.8}
    {"kind": "max_value", "deal_value": 5000, "cost_per_contact": 150, "basis": "observed"}
    {"kind": "fixed", "cutoff": 0.4}

Any policy may also carry `leads_per_week` (weekly figures) and `deal_value`/`cost_per_contact`
(value per lead). PUT adds `set_by` and `reason`; simulate also takes `{"shift_points": 5}`.
Rules that tie two fields together (per_week <= leads_per_week, cost below deal value) are checked
here too, so every bad input is a 422 that names its field.
"""

from __future__ import annotations

from dataclasses import MISSING
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    model_validator,
)

from leadml.errors import PolicyError
from leadml.threshold import (
    MAX_EXPLORATION_SHARE,
    POLICY_TYPES,
    Policy,
    policy_from_dict,
    policy_options,
)

Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Amount = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Cost = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ExplorationShare = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_EXPLORATION_SHARE,
        allow_inf_nan=False,
        description="Share of the leads below the line handed to sales anyway, at random, and"
        " flagged as exploration (0.05 = 5 %), so that conversion below the line is measured and"
        " retraining can weight them by the inverse of that chance. Costs share x (1 - MQL share)"
        " x leads a week extra leads for sales. 0: none.",
        examples=[0.05],
    ),
]

_CONTEXT_FIELDS = ("leads_per_week", "deal_value", "cost_per_contact")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Proposal(_Strict):
    """Context any policy can be read with; the policy kinds below add their own fields."""

    leads_per_week: Amount | None = Field(
        default=None, description="New leads a week, for weekly figures.", examples=[1500]
    )
    deal_value: Amount | None = Field(default=None, description="What a won deal is worth.")
    cost_per_contact: Cost | None = Field(default=None, description="What working a lead costs.")
    exploration_share: ExplorationShare = 0.0

    def to_policy(self) -> Policy:
        """The `leadml.threshold` policy this body describes."""
        kind = getattr(self, "kind", None)
        if kind not in POLICY_TYPES:
            raise PolicyError(
                f"unknown policy kind {kind!r}; use one of: {', '.join(POLICY_TYPES)}"
            )
        names = [option.name for option in policy_options(kind)]
        return policy_from_dict({"kind": kind, **{name: getattr(self, name) for name in names}})

    def context(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in _CONTEXT_FIELDS}

    @model_validator(mode="after")
    def _consistent(self) -> _Proposal:
        values = [self.deal_value, self.cost_per_contact]
        if (values[0] is None) != (values[1] is None):
            raise ValueError("give both deal_value and cost_per_contact, or neither")
        try:
            self.to_policy()
        except PolicyError as error:
            raise ValueError(str(error)) from None
        return self


# The request body of each policy kind is derived from the kind's options in leadml.threshold:
# adding a kind there adds it here, to PUT and to simulate.
_BOUNDS: dict[str, Any] = {
    "count": Amount,
    "amount": Amount,
    "cost": Cost,
    "share": Share,
    "probability": Probability,
}


def _proposal_model(policy: type[Policy]) -> type[_Proposal]:
    hints = get_type_hints(policy)
    fields: dict[str, Any] = {"kind": (Literal[policy.kind], ...)}
    for option in policy_options(policy.kind):
        unit = option.metadata["unit"]
        annotation = hints[option.name] if unit == "choice" else _BOUNDS[unit]
        example = option.metadata.get("example")
        fields[option.name] = (
            annotation,
            Field(
                ... if option.default is MISSING else option.default,
                description=f"{option.metadata['label']}.",
                examples=[example] if example is not None else None,
            ),
        )
    summary = (policy.__doc__ or policy.title).strip().split("\n\n")[0]
    return create_model(  # type: ignore[no-any-return, call-overload]
        policy.__name__.replace("Policy", "Proposal"),
        __base__=_Proposal,
        __doc__=" ".join(summary.split()),
        **fields,
    )


def _change_model(proposal: type[_Proposal]) -> type[_Proposal]:
    return create_model(  # type: ignore[no-any-return, call-overload]
        proposal.__name__.replace("Proposal", "Change"),
        __base__=(proposal, _Change),  # type: ignore[arg-type]
        __doc__=proposal.__doc__,
    )


class _Change(BaseModel):
    set_by: str = Field(
        min_length=1, max_length=200, description="Who sets the policy (kept in the history)."
    )
    reason: str = Field(default="", max_length=2000, description="Why, for the history.")


#: The request body of each policy kind, and the same with who sets it and why (PUT).
PROPOSALS: dict[str, type[_Proposal]] = {
    kind: _proposal_model(policy) for kind, policy in POLICY_TYPES.items()
}
CHANGES: dict[str, type[_Proposal]] = {
    kind: _change_model(model) for kind, model in PROPOSALS.items()
}

PolicyProposal: Any = Annotated[
    Union[tuple(PROPOSALS.values())],  # noqa: UP007 - built from the registry at import
    Field(discriminator="kind"),
]
PolicyChange: Any = Annotated[
    Union[tuple(CHANGES.values())],  # noqa: UP007
    Field(discriminator="kind"),
]


class ShiftProposal(_Strict):
    """Move the current MQL line by N percentage points of MQL share (+5: 5 % more leads)."""

    shift_points: float = Field(ge=-100, le=100, allow_inf_nan=False, examples=[5])
    leads_per_week: Amount | None = None
    deal_value: Amount | None = None
    cost_per_contact: Cost | None = None
    #: None: the exploration share of the policy in force.
    exploration_share: ExplorationShare | None = None

    @model_validator(mode="after")
    def _moves(self) -> ShiftProposal:
        if self.shift_points == 0:
            raise ValueError("shift_points must move the line: give a number other than 0")
        if (self.deal_value is None) != (self.cost_per_contact is None):
            raise ValueError("give both deal_value and cost_per_contact, or neither")
        return self

    def context(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in _CONTEXT_FIELDS}


def _simulation_kind(value: Any) -> str | None:
    """Which body a simulate request is: a shift, or a policy of some kind."""
    if isinstance(value, dict):
        return "shift" if "shift_points" in value else value.get("kind")
    if isinstance(value, ShiftProposal):
        return "shift"
    return getattr(value, "kind", None)


SimulationRequest: Any = Annotated[
    Union[  # noqa: UP007 - built from the registry at import
        tuple(
            [Annotated[model, Tag(kind)] for kind, model in PROPOSALS.items()]
            + [Annotated[ShiftProposal, Tag("shift")]]
        )
    ],
    Discriminator(
        _simulation_kind,
        custom_error_type="invalid_proposal",
        custom_error_message=(
            f"give a policy with a 'kind' ({', '.join(POLICY_TYPES)}) or {{'shift_points': N}}"
        ),
    ),
]


# --------------------------------------------------------------------------- responses


class GradeBandsOut(BaseModel):
    labels: list[str]
    lower_bounds: list[float]


class GradeOut(BaseModel):
    grade: str
    lower_bound: float
    upper_bound: float
    n: int
    share_of_leads: float
    conversions: int
    conversion_rate: float | None
    share_of_conversions: float | None
    mean_proba: float | None


class ContextOut(BaseModel):
    leads_per_week: float | None = None
    deal_value: float | None = None
    cost_per_contact: float | None = None


class ExplorationOut(BaseModel):
    """What an exploration share costs sales."""

    model_config = ConfigDict(extra="ignore")

    share: float = Field(description="Share of the leads below the line handed to sales anyway.")
    leads_per_week: float | None = Field(
        default=None,
        description="Extra leads a week for sales (null without leads_per_week): share x (1 -"
        " MQL share) x leads a week.",
    )
    sentence: str | None = None


class ExpectedOut(BaseModel):
    """What to expect at the cut-off, estimated on the model's holdout."""

    model_config = ConfigDict(extra="ignore")

    mql_share: float
    precision: float | None
    recall: float
    lift: float | None
    mqls_per_week: float | None = None
    expected_conversions_per_week: float | None = None
    expected_value_per_lead: float | None = None
    intervals: dict[str, tuple[float | None, float | None]] = Field(
        description="Bootstrap intervals at `level` for precision, recall and mql_share."
    )
    level: float
    base_rate: float
    n_holdout: int
    context: ContextOut = Field(default_factory=ContextOut)
    grades: list[GradeOut] = Field(default_factory=list)
    exploration: ExplorationOut | None = Field(
        default=None, description="The exploration share and its cost (null: no exploration)."
    )


class PolicyOut(BaseModel):
    """An MQL policy version (version null: the default while none is stored)."""

    version: int | None
    kind: str
    params: dict[str, Any]
    cutoff: float
    sentence: str
    grade_bands: GradeBandsOut
    expected: ExpectedOut
    model_name: str
    model_version: str | None = Field(description="The model version the cut-off was resolved on.")
    serving_model_version: str | None = Field(
        default=None, description="The model version being served now."
    )
    stale: bool = Field(
        default=False,
        description="The policy was resolved on another model version; PUT it again to re-resolve.",
    )
    set_by: str | None = None
    reason: str = ""
    created_at: datetime | None = None
    exploration_share: float = Field(
        default=0.0,
        description="Share of the leads below the line handed to sales anyway, flagged as"
        " exploration in the scores and the ledger (0: none).",
    )


class HistoryOut(BaseModel):
    model_name: str
    versions: list[PolicyOut] = Field(description="Newest first; versions are never overwritten.")


class ThresholdRowOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    chosen: bool
    cutoff: float
    mql_share: float
    mqls_per_week: float | None
    precision: float | None
    recall: float
    lift: float | None
    expected_value_per_lead: float | None
    expected_conversions_per_week: float | None
    holdout_mqls: int
    holdout_conversions: int


class FiguresOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cutoff: float
    mql_share: float
    precision: float | None
    recall: float
    lift: float | None
    mqls_per_week: float | None
    expected_conversions_per_week: float | None
    expected_value_per_lead: float | None
    holdout_mqls: int
    holdout_conversions: int


class CurrentFiguresOut(FiguresOut):
    version: int | None
    kind: str
    sentence: str


class ProposedFiguresOut(FiguresOut):
    policy: dict[str, Any]
    sentence: str
    intervals: dict[str, tuple[float | None, float | None]]
    level: float
    grade_bands: GradeBandsOut
    grades: list[GradeOut]


class ChangeOut(BaseModel):
    """Proposed minus current (null when a figure is unknown, e.g. no leads_per_week)."""

    cutoff: float
    mql_share: float
    precision: float | None
    recall: float
    mqls_per_week: float | None
    expected_conversions_per_week: float | None
    expected_value_per_lead: float | None
    holdout_mqls: int
    holdout_conversions: int


class SimulationOut(BaseModel):
    """What a proposed policy would change; nothing is stored."""

    model_name: str
    model_version: str | None
    saved: Literal[False] = False
    points: float | None
    sentence: str
    context: ContextOut
    current: CurrentFiguresOut
    proposed: ProposedFiguresOut
    change: ChangeOut
    rows: list[ThresholdRowOut]
    exploration: ExplorationOut = Field(
        description="The proposal's exploration share (the current one unless given) and what"
        " it costs sales at the proposed line."
    )
