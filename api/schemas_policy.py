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

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    Tag,
    model_validator,
)

from leadml.errors import PolicyError
from leadml.threshold import Policy, policy_from_dict

Share = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Amount = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Cost = Annotated[float, Field(ge=0, allow_inf_nan=False)]

_CONTEXT_FIELDS = ("leads_per_week", "deal_value", "cost_per_contact")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Proposal(_Strict):
    """Context any policy can be read with; the policy kinds below add their own fields."""

    #: Context fields that are the policy's own parameters for this kind.
    POLICY_FIELDS: ClassVar[tuple[str, ...]] = ()

    leads_per_week: Amount | None = Field(
        default=None, description="New leads a week, for weekly figures.", examples=[1500]
    )
    deal_value: Amount | None = Field(default=None, description="What a won deal is worth.")
    cost_per_contact: Cost | None = Field(default=None, description="What working a lead costs.")

    def to_policy(self) -> Policy:
        """The `leadml.threshold` policy this body describes."""
        data = self.model_dump(exclude={"set_by", "reason", *_CONTEXT_FIELDS})
        for name in self.POLICY_FIELDS:
            if name in _CONTEXT_FIELDS:
                data[name] = getattr(self, name)
        return policy_from_dict(data)

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


class CapacityProposal(_Proposal):
    """Sales can work `per_week` of the `leads_per_week` new leads."""

    POLICY_FIELDS: ClassVar[tuple[str, ...]] = ("leads_per_week",)
    kind: Literal["capacity"]
    per_week: Amount = Field(description="Leads sales can work a week.", examples=[200])
    leads_per_week: PositiveFloat = Field(  # type: ignore[assignment]
        description="New leads a week.", examples=[1500], allow_inf_nan=False
    )


class MinPrecisionProposal(_Proposal):
    """At least `min_precision` of MQLs should convert."""

    kind: Literal["min_precision"]
    min_precision: Share = Field(description="Share of MQLs that should convert.", examples=[0.6])


class MinRecallProposal(_Proposal):
    """MQLs should capture at least `min_recall` of all conversions."""

    kind: Literal["min_recall"]
    min_recall: Share = Field(description="Share of all conversions to capture.", examples=[0.8])


class MaxValueProposal(_Proposal):
    """Maximise expected value per lead given a deal's value and a contact's cost."""

    POLICY_FIELDS: ClassVar[tuple[str, ...]] = ("deal_value", "cost_per_contact")
    kind: Literal["max_value"]
    deal_value: Amount = Field(description="What a won deal is worth.")  # type: ignore[assignment]
    cost_per_contact: Cost = Field(  # type: ignore[assignment]
        description="What working one lead costs."
    )
    basis: Literal["observed", "calibrated"] = "observed"


class FixedProposal(_Proposal):
    """A cut-off set by hand."""

    kind: Literal["fixed"]
    cutoff: Probability = Field(description="Probability at or above which a lead is an MQL.")


PolicyProposal = Annotated[
    CapacityProposal | MinPrecisionProposal | MinRecallProposal | MaxValueProposal | FixedProposal,
    Field(discriminator="kind"),
]


class _Change(BaseModel):
    set_by: str = Field(
        min_length=1, max_length=200, description="Who sets the policy (kept in the history)."
    )
    reason: str = Field(default="", max_length=2000, description="Why, for the history.")


class CapacityChange(CapacityProposal, _Change):
    pass


class MinPrecisionChange(MinPrecisionProposal, _Change):
    pass


class MinRecallChange(MinRecallProposal, _Change):
    pass


class MaxValueChange(MaxValueProposal, _Change):
    pass


class FixedChange(FixedProposal, _Change):
    pass


PolicyChange = Annotated[
    CapacityChange | MinPrecisionChange | MinRecallChange | MaxValueChange | FixedChange,
    Field(discriminator="kind"),
]


class ShiftProposal(_Strict):
    """Move the current MQL line by N percentage points of MQL share (+5: 5 % more leads)."""

    shift_points: float = Field(ge=-100, le=100, allow_inf_nan=False, examples=[5])
    leads_per_week: Amount | None = None
    deal_value: Amount | None = None
    cost_per_contact: Cost | None = None

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


SimulationRequest = Annotated[
    Annotated[CapacityProposal, Tag("capacity")]
    | Annotated[MinPrecisionProposal, Tag("min_precision")]
    | Annotated[MinRecallProposal, Tag("min_recall")]
    | Annotated[MaxValueProposal, Tag("max_value")]
    | Annotated[FixedProposal, Tag("fixed")]
    | Annotated[ShiftProposal, Tag("shift")],
    Discriminator(
        _simulation_kind,
        custom_error_type="invalid_proposal",
        custom_error_message=(
            "give a policy with a 'kind' (capacity, min_precision, min_recall, max_value,"
            " fixed) or {'shift_points': N}"
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
