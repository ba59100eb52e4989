"""The MQL policy of a model, end to end: threshold maths + the store + the model's holdout.

`PolicyBook` is what the CLI and the API use:

- `active(scorer)` is the policy that decides `is_mql` and the grade of each score: the newest
  stored version for the model's name, or, while none is stored, the default (version None): the
  top 30 % of the model's holdout leads (`DEFAULT_TOP_SHARE`), resolved like a capacity policy.
  Thirty per cent is the share most lead-scoring tools flag by default and, on a model with any
  skill, captures well over half of the conversions, so sales sees a manageable list from day one.
- `set(scorer, policy, ...)` resolves a policy on the model's holdout and stores it as a new
  version (cut-off, grade bands, expected figures with bootstrap intervals, sentence, who, why).
  History is kept; nothing is ever overwritten.
- `simulate(scorer, policy or points)` answers "what if" with the threshold-table rows around the
  proposed cut-off and the change in MQL volume and conversions, and stores nothing.

A stored policy keeps the cut-off it resolved to on the model version named in the record. When a
newer model version is served, the same cut-off keeps deciding (calibrated probabilities keep
their meaning) and `ActivePolicy.stale` says so; storing the policy again (`reapply`) resolves it
on the new model's holdout.

The holdout (outcomes and calibrated probabilities saved with the model at training time) is
read once per model version and kept in memory: reading Parquet per request would be too slow.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadml.errors import ModelError, PolicyError
from leadml.monitor import ContractReport, mql_contract
from leadml.registry import exact_source, open_bundle
from leadml.schema import LeadSchema, Role, normalise_placeholders
from leadml.store import PolicyRecord, PolicyRecordIn, Store
from leadml.threshold import (
    BUSINESS_FIGURES,
    EXPLORATION_PARAM,
    POLICY_TYPES,
    CapacityPolicy,
    FixedPolicy,
    GradeBands,
    Policy,
    Resolution,
    assign_grades,
    check_exploration_share,
    choose_exploration,
    default_grade_bands,
    exploration_leads_per_week,
    exploration_sentence,
    grade_table,
    policy_from_dict,
    policy_options,
    required_options,
    resolve_policy,
    simulate_shift,
    threshold_table,
)

if TYPE_CHECKING:
    from leadml.scoring import Scorer

#: While no policy is stored, the top 30 % of leads are MQLs.
DEFAULT_TOP_SHARE = 0.30
DEFAULT_KIND = "default"
#: Threshold-table rows shown on each side of the chosen cut-off.
ROWS_AROUND = 5
UNKNOWN_VERSION = "unknown"


# --------------------------------------------------------------------------- the holdout


@dataclass(frozen=True)
class Holdout:
    """A model's holdout outcomes and calibrated probabilities (as saved at training time)."""

    y: npt.NDArray[np.int64]
    proba: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if len(self.y) != len(self.proba) or len(self.y) == 0:
            raise ModelError("the model's holdout is empty or damaged; retrain the model")


def model_key(scorer: Scorer) -> tuple[str, str, str]:
    """What identifies one trained model: name, version and the sha256 of its pipeline."""
    info = scorer.info
    return (info.name, info.version or UNKNOWN_VERSION, info.pipeline_sha256)


def load_holdout(scorer: Scorer, tracking_uri: str | None = None) -> Holdout:
    """The holdout saved with the scorer's model, from its folder or from the MLflow registry."""
    source = scorer.source
    if not source:
        raise ModelError(
            "the scorer does not say where its model came from; load it with Scorer.load"
        )
    info = scorer.info
    # The alias may have moved since the scorer was loaded: ask for the exact version.
    bundle = open_bundle(exact_source(source, info.name, info.version), tracking_uri=tracking_uri)
    if bundle.info.pipeline_sha256 != scorer.info.pipeline_sha256:
        raise ModelError(
            f"the model at {source} changed since it was loaded; reload it before setting a policy"
        )
    y, proba, _ = bundle.holdout_parts()
    return Holdout(y=y.astype(np.int64), proba=proba.astype(np.float64))


def load_holdout_leads(scorer: Scorer, tracking_uri: str | None = None) -> pd.DataFrame:
    """The holdout leads (features as at training) saved with the scorer's model."""
    info = scorer.info
    bundle = open_bundle(
        exact_source(scorer.source, info.name, info.version), tracking_uri=tracking_uri
    )
    _, _, leads = bundle.holdout_parts()
    return leads.reset_index(drop=True)


def feature_kinds(schema: LeadSchema) -> dict[str, str]:
    """Features whose drift is checked, with how: numeric, boolean or categorical (dates are
    left out: time moves on by design)."""
    kinds = {Role.NUMERIC: "numeric", Role.BOOLEAN: "boolean", Role.CATEGORICAL: "categorical"}
    return {spec.name: kinds[spec.role] for spec in schema.features if spec.role in kinds}


# --------------------------------------------------------------------------- previews


@dataclass(frozen=True)
class BusinessFigures:
    """The business figures a policy is read with: leads a week, deal value, cost per contact."""

    leads_per_week: float | None = None
    deal_value: float | None = None
    cost_per_contact: float | None = None

    @classmethod
    def for_policy(cls, policy: Policy, context: BusinessFigures) -> BusinessFigures:
        """The figures a policy sets itself win; other values stay."""
        return replace(context, **policy.own_figures())

    @classmethod
    def from_expected(cls, expected: Mapping[str, Any]) -> BusinessFigures:
        stored = expected.get("context") or {}
        return cls(
            leads_per_week=stored.get("leads_per_week"),
            deal_value=stored.get("deal_value"),
            cost_per_contact=stored.get("cost_per_contact"),
        )

    def to_dict(self) -> dict[str, float | None]:
        return {
            "leads_per_week": self.leads_per_week,
            "deal_value": self.deal_value,
            "cost_per_contact": self.cost_per_contact,
        }


@dataclass(frozen=True)
class PolicyPreview:
    """A policy resolved on a holdout with everything people look at before agreeing to it."""

    resolution: Resolution
    bands: GradeBands
    grades: pd.DataFrame
    rows: pd.DataFrame
    context: BusinessFigures

    @property
    def cutoff(self) -> float:
        return self.resolution.cutoff

    @property
    def sentence(self) -> str:
        return self.resolution.sentence

    def expected(self) -> dict[str, Any]:
        """The expected figures as stored with a policy version (JSON-ready)."""
        resolved = self.resolution.to_dict()
        resolved.pop("policy")
        resolved.pop("sentence")
        resolved.pop("cutoff")
        return {
            **resolved,
            "context": self.context.to_dict(),
            "grades": _records(self.grades),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.resolution.policy.to_dict(),
            "cutoff": self.cutoff,
            "sentence": self.sentence,
            "expected": self.expected(),
            "grade_bands": self.bands.to_dict(),
            "rows": _records(self.rows),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts with NaN as None (JSON has no NaN)."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): _plain(v) for k, v in row.items()} for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rows_around(
    y: npt.ArrayLike,
    proba: npt.ArrayLike,
    cutoff: float,
    *,
    context: BusinessFigures | None = None,
    k: int = ROWS_AROUND,
) -> pd.DataFrame:
    """The threshold-table rows on each side of `cutoff` (k above, k below), and its own row.

    The rows are those of the default threshold table (one per percentage point of MQL share on a
    large holdout), with the chosen cut-off's row added; `chosen` marks it.
    """
    used = context or BusinessFigures()
    both = used.deal_value is not None and used.cost_per_contact is not None
    grid = threshold_table(y, proba)["cutoff"].to_numpy()
    table = threshold_table(
        y,
        proba,
        cutoffs=np.append(grid, cutoff),
        leads_per_week=used.leads_per_week,
        deal_value=used.deal_value if both else None,
        cost_per_contact=used.cost_per_contact if both else None,
    )
    position = int(np.flatnonzero(table["cutoff"].to_numpy() == cutoff)[0])
    window = table.iloc[max(position - k, 0) : position + k + 1].copy()
    window.insert(0, "chosen", window.index == table.index[position])
    return window.reset_index(drop=True)


def preview_policy(
    holdout: Holdout,
    policy: Policy,
    *,
    context: BusinessFigures | None = None,
    bands: GradeBands | None = None,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> PolicyPreview:
    """Resolve `policy` on the holdout, with grades (default A-D around it) and the table rows."""
    used = BusinessFigures.for_policy(policy, context or BusinessFigures())
    resolution = resolve_policy(
        policy,
        holdout.y,
        holdout.proba,
        **_figure_kwargs(policy, used),
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    chosen_bands = bands or default_grade_bands(holdout.proba, resolution.cutoff)
    return PolicyPreview(
        resolution=resolution,
        bands=chosen_bands,
        grades=grade_table(holdout.y, holdout.proba, chosen_bands),
        rows=rows_around(holdout.y, holdout.proba, resolution.cutoff, context=used),
        context=used,
    )


def _figure_kwargs(policy: Policy, context: BusinessFigures) -> dict[str, float | None]:
    """The business figures to resolve with, besides those the policy sets itself; value per
    lead needs both the deal value and the cost per contact."""
    both = context.deal_value is not None and context.cost_per_contact is not None
    figures = {
        "leads_per_week": context.leads_per_week,
        "deal_value": context.deal_value if both else None,
        "cost_per_contact": context.cost_per_contact if both else None,
    }
    own = policy.own_figures()
    return {name: value for name, value in figures.items() if name not in own}


def _share_text(share: float) -> str:
    return f"{share * 100:.1f} %".replace(".0 %", " %")


def default_preview(holdout: Holdout, *, n_boot: int = 1000, level: float = 0.9) -> PolicyPreview:
    """The default policy: the top `DEFAULT_TOP_SHARE` of holdout leads are MQLs."""
    capacity = CapacityPolicy(per_week=DEFAULT_TOP_SHARE * 100, leads_per_week=100)
    cutoff = resolve_policy(capacity, holdout.y, holdout.proba, n_boot=1).cutoff
    preview = preview_policy(holdout, FixedPolicy(cutoff), n_boot=n_boot, level=level)
    r = preview.resolution
    sentence = (
        f"No MQL policy has been set yet, so the default applies: the top"
        f" {_share_text(r.mql_share)} of leads (probability >= {cutoff:.4g}) are MQLs; on the"
        f" holdout about {r.precision * 100:.0f} % of them convert, capturing"
        f" {r.recall * 100:.0f} % of all conversions."
    )
    return PolicyPreview(
        resolution=Resolution(**{**vars(r), "sentence": sentence}),
        bands=preview.bands,
        grades=preview.grades,
        rows=preview.rows,
        context=preview.context,
    )


# --------------------------------------------------------------------------- from flat options

#: Options any policy can be read with (weekly figures, value per lead).
CONTEXT_OPTIONS = BUSINESS_FIGURES


def _option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def policy_from_options(
    kind: str, given: Mapping[str, float | str | None], *, basis: str | None = None
) -> Policy:
    """A policy from flat command-line options (None = not given), named as the CLI names them.

    Options the kind needs must be there; options for another kind are refused so that a typo
    never silently changes the policy. Context options (`CONTEXT_OPTIONS`) go with any kind.
    """
    if kind not in POLICY_TYPES:
        raise PolicyError(f"--policy {kind!r} is unknown; use one of {', '.join(POLICY_TYPES)}")
    values = {**given, **({"basis": basis} if basis is not None else {})}
    accepted = [option.name for option in policy_options(kind)]
    missing = [_option_name(n) for n in required_options(kind) if values.get(n) is None]
    if missing:
        raise PolicyError(f"--policy {kind} needs {' and '.join(missing)}")
    stray = [
        _option_name(n)
        for n, value in values.items()
        if value is not None and n not in accepted and n not in CONTEXT_OPTIONS
    ]
    if stray:
        raise PolicyError(f"{', '.join(stray)} does not apply to --policy {kind}; leave it out")
    params = {name: values[name] for name in accepted if values.get(name) is not None}
    return policy_from_dict({"kind": kind, **params})


# --------------------------------------------------------------------------- the active policy


@dataclass(frozen=True)
class ActivePolicy:
    """The MQL policy in force for a model: what decides `is_mql` and the grade of a score.

    `version` is the stored policy version (None for the default); `model_version` is the model
    version its cut-off was resolved on, and `stale` is True when a different model version is
    being served.
    """

    version: int | None
    cutoff: float
    bands: GradeBands
    sentence: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    expected: Mapping[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_version: str | None = None
    stale: bool = False
    set_by: str | None = None
    reason: str = ""
    created_at: datetime | None = None
    #: Share of the leads below the line handed to sales anyway, at random (0: none).
    exploration_share: float = 0.0

    def decide(self, proba: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.str_]]:
        """For calibrated probabilities: whether each lead is an MQL, and its grade."""
        p = np.atleast_1d(np.asarray(proba, dtype=np.float64))
        return p >= self.cutoff, assign_grades(p, self.bands)

    def explore(
        self, is_mql: npt.ArrayLike, draws: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Exploration flags and each lead's chance of going to sales (see
        `threshold.choose_exploration`); `draws` are uniform in [0, 1), one per lead."""
        return choose_exploration(is_mql, self.exploration_share, draws)

    def hand_over(
        self, is_mql: npt.ArrayLike, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """`explore` with one draw per lead from `rng`; without exploration nothing is drawn,
        no lead below the line is explored and each lead's chance is 1 (MQL) or 0."""
        mql = np.atleast_1d(np.asarray(is_mql, dtype=bool))
        if self.exploration_share <= 0:
            return np.zeros(len(mql), dtype=bool), mql.astype(np.float64)
        return self.explore(mql, rng.random(len(mql)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "params": dict(self.params),
            "cutoff": self.cutoff,
            "sentence": self.sentence,
            "grade_bands": self.bands.to_dict(),
            "expected": dict(self.expected),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "stale": self.stale,
            "set_by": self.set_by,
            "reason": self.reason,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "exploration_share": self.exploration_share,
        }


def split_exploration(params: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """A stored policy's parameters without its exploration share, and the share (0 if none)."""
    rest = {k: v for k, v in params.items() if k != EXPLORATION_PARAM}
    return rest, check_exploration_share(params.get(EXPLORATION_PARAM, 0.0))


def active_from_record(record: PolicyRecord, serving_version: str | None) -> ActivePolicy:
    return ActivePolicy(
        version=record.version,
        cutoff=float(record.cutoff),
        bands=GradeBands.from_dict(record.grade_bands),
        sentence=record.sentence,
        kind=record.kind,
        params=dict(record.params),
        expected=dict(record.expected),
        model_name=record.model_name,
        model_version=record.model_version,
        stale=record.model_version != (serving_version or UNKNOWN_VERSION),
        set_by=record.set_by,
        reason=record.reason,
        created_at=record.created_at,
        exploration_share=split_exploration(record.params)[1],
    )


def _default_active(scorer: Scorer, preview: PolicyPreview) -> ActivePolicy:
    return ActivePolicy(
        version=None,
        cutoff=preview.cutoff,
        bands=preview.bands,
        sentence=preview.sentence,
        kind=DEFAULT_KIND,
        params={"top_share": DEFAULT_TOP_SHARE},
        expected=preview.expected(),
        model_name=scorer.info.name,
        model_version=scorer.info.version or UNKNOWN_VERSION,
    )


# --------------------------------------------------------------------------- the policy book


HoldoutLoader = Callable[["Scorer"], Holdout]


class PolicyBook:
    """MQL policies of models: the active one, setting a new version, simulating, history.

    `holdout_loader` reads a model's holdout (default: `load_holdout`, from the model's folder or
    the MLflow registry); it is called once per model version. `cache_seconds` keeps the active
    policy of a model name in memory that long (0: read the store on every call); a policy set
    through this book is seen at once, one set by another process after at most that long.
    """

    def __init__(
        self,
        store: Store,
        *,
        holdout_loader: HoldoutLoader | None = None,
        n_boot: int = 1000,
        level: float = 0.9,
        cache_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self._load_holdout = holdout_loader or load_holdout
        self.n_boot = n_boot
        self.level = level
        self.cache_seconds = cache_seconds
        self._holdouts: dict[tuple[str, str, str], Holdout] = {}
        self._defaults: dict[tuple[str, str, str], PolicyPreview] = {}
        self._records: dict[str, tuple[float, PolicyRecord | None]] = {}
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------

    def holdout(self, scorer: Scorer) -> Holdout:
        """The scorer's holdout, read once per model version."""
        key = model_key(scorer)
        with self._lock:
            if key not in self._holdouts:
                self._holdouts[key] = self._load_holdout(scorer)
            return self._holdouts[key]

    def _current_record(self, model_name: str) -> PolicyRecord | None:
        now = time.monotonic()
        cached = self._records.get(model_name)
        if cached is not None and self.cache_seconds > 0 and now - cached[0] < self.cache_seconds:
            return cached[1]
        record = self.store.current_policy(model_name)
        self._records[model_name] = (now, record)
        return record

    def forget_cached(self) -> None:
        """Read the store again at the next call (another process has set a policy)."""
        self._records = {}

    def active(self, scorer: Scorer) -> ActivePolicy:
        """The policy in force for the scorer's model (the stored one, else the default)."""
        record = self._current_record(scorer.info.name)
        if record is not None:
            return active_from_record(record, scorer.info.version)
        return _default_active(scorer, self._default_preview(scorer))

    def _default_preview(self, scorer: Scorer) -> PolicyPreview:
        key = model_key(scorer)
        preview = self._defaults.get(key)
        if preview is None:
            preview = default_preview(self.holdout(scorer), n_boot=self.n_boot, level=self.level)
            self._defaults[key] = preview
        return preview

    def history(self, model_name: str, limit: int = 100) -> list[PolicyRecord]:
        """Stored policy versions of `model_name`, newest first."""
        return self.store.policy_history(model_name, limit=limit)

    def promises(self, scorer: Scorer, limit: int = 1000) -> dict[int | None, dict[str, Any]]:
        """What each policy version of the scorer's model promised when it was set (its expected
        figures); None: the default policy, as resolved on this model's holdout."""
        promised: dict[int | None, dict[str, Any]] = {
            record.version: dict(record.expected)
            for record in self.history(scorer.info.name, limit=limit)
        }
        promised[None] = self._default_preview(scorer).expected()
        return promised

    def contract(
        self,
        scorer: Scorer,
        *,
        since: datetime,
        now: datetime,
        outcome_window: timedelta,
        holdout_leads: pd.DataFrame | None = None,
    ) -> ContractReport:
        """The MQL line's contract for the scorer's model over the ledger's scores made since
        `since` (leadml.monitor.mql_contract), from the store."""
        name = scorer.info.name
        ledger = self.store.ledger_frame(model_name=name, since=since)
        joined = self.store.ledger_with_outcomes(model_name=name, since=since)
        holdout = self.holdout(scorer)
        return mql_contract(
            ledger,
            joined,
            self.promises(scorer),
            holdout.y,
            holdout.proba,
            now=now,
            outcome_window=outcome_window,
            since=since,
            holdout_features=holdout_leads,
            feature_kinds=feature_kinds(scorer.schema),
            placeholders=normalise_placeholders(scorer.schema.placeholders),
            level=self.level,
        )

    def preview(
        self,
        scorer: Scorer,
        policy: Policy,
        *,
        context: BusinessFigures | None = None,
        bands: GradeBands | None = None,
    ) -> PolicyPreview:
        """`policy` resolved on the scorer's holdout; stores nothing."""
        return preview_policy(
            self.holdout(scorer),
            policy,
            context=context,
            bands=bands,
            n_boot=self.n_boot,
            level=self.level,
        )

    # -- writing ---------------------------------------------------------------------------

    def set(
        self,
        scorer: Scorer,
        policy: Policy,
        *,
        set_by: str,
        reason: str = "",
        leads_per_week: float | None = None,
        deal_value: float | None = None,
        cost_per_contact: float | None = None,
        bands: GradeBands | None = None,
        exploration_share: float = 0.0,
    ) -> PolicyRecord:
        """Resolve `policy` on the scorer's holdout and store it as the next version.

        `exploration_share` (e.g. 0.05) hands that share of the leads below the line to sales
        anyway, at random; it is kept with the policy's parameters.
        """
        if not set_by or not set_by.strip():
            raise PolicyError("say who sets the MQL policy (set_by); it is kept in the history")
        share = check_exploration_share(exploration_share)
        context = BusinessFigures(leads_per_week, deal_value, cost_per_contact)
        preview = self.preview(scorer, policy, context=context, bands=bands)
        params = policy.to_dict()
        sentence = preview.sentence
        expected = preview.expected()
        if share > 0:
            params[EXPLORATION_PARAM] = share
            explore = exploration_sentence(
                share, preview.resolution.mql_share, preview.context.leads_per_week
            )
            sentence = f"{sentence} {explore}"
            expected["exploration"] = {
                "share": share,
                "leads_per_week": exploration_leads_per_week(
                    share, preview.resolution.mql_share, preview.context.leads_per_week
                ),
                "sentence": explore,
            }
        record = self.store.add_policy(
            PolicyRecordIn(
                model_name=scorer.info.name,
                model_version=scorer.info.version or UNKNOWN_VERSION,
                kind=policy.kind,
                params=params,
                cutoff=preview.cutoff,
                grade_bands=preview.bands.to_dict(),
                expected=expected,
                sentence=sentence,
                set_by=set_by.strip(),
                reason=reason.strip(),
            )
        )
        self._records[scorer.info.name] = (time.monotonic(), record)
        return record

    def reapply(self, scorer: Scorer, *, set_by: str, reason: str = "") -> PolicyRecord:
        """Store the current policy again, resolved on the scorer's (new) model version."""
        record = self.store.current_policy(scorer.info.name)
        if record is None:
            raise PolicyError(
                f"{scorer.info.name} has no stored MQL policy to re-apply; set one first"
            )
        context = BusinessFigures.from_expected(record.expected)
        params, share = split_exploration(record.params)
        return self.set(
            scorer,
            policy_from_dict(params),
            set_by=set_by,
            reason=reason
            or f"policy v{record.version} re-resolved on model v{scorer.info.version}",
            leads_per_week=context.leads_per_week,
            deal_value=context.deal_value,
            cost_per_contact=context.cost_per_contact,
            bands=None,
            exploration_share=share,
        )

    # -- what if ---------------------------------------------------------------------------

    def simulate(
        self,
        scorer: Scorer,
        proposal: Policy | float,
        *,
        leads_per_week: float | None = None,
        deal_value: float | None = None,
        cost_per_contact: float | None = None,
        exploration_share: float | None = None,
    ) -> dict[str, Any]:
        """What a proposed policy, or the current one moved by N points of MQL share, would do.

        `proposal` is a policy, or a number of percentage points (+5: 5 % more of all leads
        become MQLs). Business figures not given are taken from the current policy, and so is the
        exploration share when `exploration_share` is None. Stores nothing.
        Returns a JSON-ready dict: `current`, `proposed` (with intervals, sentence and grades),
        `change` (proposed minus current), `rows` (threshold table around the proposal) and
        `exploration` (the share and the extra leads a week it hands to sales at the new line).
        """
        holdout = self.holdout(scorer)
        current = self.active(scorer)
        stored = BusinessFigures.from_expected(current.expected)
        context = BusinessFigures(
            leads_per_week if leads_per_week is not None else stored.leads_per_week,
            deal_value if deal_value is not None else stored.deal_value,
            cost_per_contact if cost_per_contact is not None else stored.cost_per_contact,
        )
        if isinstance(proposal, bool) or not isinstance(
            proposal, (int, float, *POLICY_TYPES.values())
        ):
            raise PolicyError("simulate takes a policy or a number of points to move the MQL line")
        points: float | None = None
        shift_sentence: str | None = None
        if isinstance(proposal, int | float):
            points = float(proposal)
            shift = simulate_shift(
                holdout.y,
                holdout.proba,
                current.cutoff,
                points,
                leads_per_week=context.leads_per_week,
            )
            policy: Policy = FixedPolicy(shift.new_cutoff)
            shift_sentence = shift.sentence
        else:
            policy = proposal
            context = BusinessFigures.for_policy(policy, context)
        proposed = preview_policy(
            holdout, policy, context=context, n_boot=self.n_boot, level=self.level
        )
        now = preview_policy(
            holdout,
            FixedPolicy(current.cutoff),
            context=context,
            bands=current.bands,
            n_boot=self.n_boot,
            level=self.level,
        )
        before, after = _figures(now.resolution), _figures(proposed.resolution)
        share = check_exploration_share(
            current.exploration_share if exploration_share is None else exploration_share
        )
        mql_share = proposed.resolution.mql_share
        return {
            "model_name": scorer.info.name,
            "model_version": scorer.info.version,
            "saved": False,
            "points": points,
            "sentence": shift_sentence or proposed.sentence,
            "context": context.to_dict(),
            "current": {
                "version": current.version,
                "kind": current.kind,
                "sentence": current.sentence,
                **before,
            },
            "proposed": {
                "policy": policy.to_dict(),
                "sentence": proposed.sentence,
                **after,
                "intervals": {k: list(v) for k, v in proposed.resolution.intervals.items()},
                "level": proposed.resolution.level,
                "grade_bands": proposed.bands.to_dict(),
                "grades": _records(proposed.grades),
            },
            "change": {
                name: (
                    None
                    if after[name] is None or before[name] is None
                    else after[name] - before[name]
                )
                for name in _CHANGED
            },
            "rows": _records(proposed.rows),
            "exploration": {
                "share": share,
                "leads_per_week": exploration_leads_per_week(
                    share, mql_share, context.leads_per_week
                ),
                "sentence": exploration_sentence(share, mql_share, context.leads_per_week),
            },
        }


_CHANGED = (
    "cutoff",
    "mql_share",
    "precision",
    "recall",
    "mqls_per_week",
    "expected_conversions_per_week",
    "expected_value_per_lead",
    "holdout_mqls",
    "holdout_conversions",
)


def _figures(resolution: Resolution) -> dict[str, Any]:
    n = resolution.n_holdout
    mqls = round(resolution.mql_share * n)
    conversions = round(resolution.recall * resolution.base_rate * n)
    return {
        "cutoff": resolution.cutoff,
        "mql_share": resolution.mql_share,
        "precision": _plain(resolution.precision),
        "recall": resolution.recall,
        "lift": _plain(resolution.lift),
        "mqls_per_week": resolution.mqls_per_week,
        "expected_conversions_per_week": resolution.expected_conversions_per_week,
        "expected_value_per_lead": resolution.expected_value_per_lead,
        "holdout_mqls": mqls,
        "holdout_conversions": conversions,
    }
