"""Retraining from the ledger without fooling yourself: a point-in-time training set, honest
weights for the leads sales never saw, a gate with a diff, and recalibration only.

Everything here is pure and works on in-memory frames: the CLI reads the ledger and the outcomes
from the store, the champion from the registry, and writes the challenger to MLflow.

The point-in-time training set (`point_in_time_set`)
----------------------------------------------------
- Each lead's features are the ones in the ledger *as they were scored*: the lead's first score,
  the moment it was handed to sales or not. Later scores of the same lead, and whatever the CRM
  holds today, are never read (they may carry what sales did after the hand-over).
- Only outcomes that had arrived by `as_of` count (`recorded_at <= as_of`). A lead is labelled
  converted when it was won within `window_days` of its score; not converted when it was lost or
  rejected first, or when its conversion window has passed *and the outcomes feed has caught up
  past the window's end* (`outcomes_through`, the latest outcome time that has arrived: a CRM
  that syncs weekly must not turn last week's wins into losses). Everything else is open: left
  out and counted.
- Only leads handed to sales have an honest outcome: MQLs, and the exploration leads handed over
  although below the line. Leads never handed over are left out and counted (their missing
  outcome says nobody called, not that they would not buy), unless `all_leads_observed` says
  that every lead's outcome is recorded whether sales worked it or not (e.g. self-serve sign-ups).
- Each lead is weighted by the inverse of its chance of being handed over (1 for MQLs, 1/share
  for exploration leads), capped at `MAX_WEIGHT`, so the leads below the line count for all the
  leads below the line they stand for.
- The original export (`export`) may add leads from before the ledger: rows whose id is not in
  the ledger (or, without ids, rows created before the ledger's first score), weight 1.

The gate (`run_gate`)
---------------------
The challenger and the champion are compared on the most recent labelled leads, scored after the
champion was trained and left out of the challenger's training (`split_for_gate`): ROC AUC,
PR AUC, ECE, Brier and realised precision at the policy's line (each model at the cut-off the
policy in force resolves to for it), all weighted, each with a paired bootstrap interval of the
difference (challenger minus champion; the same resampled leads for both). A full retrain is
promoted only when the primary metric is better by at least `margin` with an interval above
zero, and calibration is not worse (ECE by more than `ece_tolerance` with an interval above
zero, or Brier with an interval above zero). A recalibration is promoted when calibration is
better (ECE or Brier with an interval below zero) and ranking is not worse by more than `margin`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import Pipeline

from leadml.bundle import Bundle
from leadml.errors import DataError
from leadml.evaluate import gains_table, holdout_metrics
from leadml.explain import trait_importance
from leadml.leakage import LeakageReport
from leadml.models import CANDIDATES, CandidateName, center_isotonic
from leadml.monitor import BelowLineEstimate, below_line_conversion
from leadml.policy import ActivePolicy
from leadml.schema import LeadSchema
from leadml.threshold import (
    CapacityPolicy,
    FixedPolicy,
    GradeBands,
    Policy,
    assign_grades,
    default_grade_bands,
    policy_from_dict,
    resolve_policy,
)
from leadml.train import (
    TrainConfig,
    TrainResult,
    calibration_method,
    reference_quantiles,
    train_model,
)

#: Default conversion window: a lead handed to sales and not won within it did not convert.
DEFAULT_WINDOW_DAYS: Final = 90
#: Inverse-propensity weights are capped here, so one lucky exploration lead cannot dominate.
MAX_WEIGHT: Final = 100.0
#: Share of the labelled ledger leads, the most recent, kept for the gate.
GATE_SHARE: Final = 0.25
#: Fewest leads, and fewest of each outcome, the gate judges on.
GATE_MIN_LEADS: Final = 100
GATE_MIN_PER_OUTCOME: Final = 10
DEFAULT_MARGIN: Final = 0.005
ECE_TOLERANCE: Final = 0.01
GATE_LEVEL: Final = 0.90
GATE_BOOTSTRAPS: Final = 500
ECE_BINS: Final = 10
#: Recalibration only is refused when the champion's recent ROC AUC fell more than this below
#: its holdout's: the ranking no longer holds, so a full retrain is needed.
RANKING_HOLDS_WITHIN: Final = 0.05
#: While no policy is stored, the default line is the top 30 % (as in leadml.policy).
DEFAULT_TOP_SHARE: Final = 0.30

#: Columns `point_in_time_set` reads from the ledger; `exploration` and
#: `selection_probability` may be missing (a ledger from before exploration: MQLs only).
LEDGER_COLUMNS: Final = ("lead_id", "scored_at", "features", "probability", "is_mql")
#: Columns of the outcomes frame: one row per event; `converted` is True (won), False (lost,
#: rejected) or missing (a step that closes nothing, e.g. sql_accepted).
OUTCOME_COLUMNS: Final = ("lead_id", "converted", "outcome_at", "recorded_at")
WON_EVENTS: Final = ("won",)
LOST_EVENTS: Final = ("lost", "sql_rejected")

# Columns the labelled frame carries beside the lead's own fields.
LEAD_ID: Final = "__lead_id"
SCORED_AT: Final = "__scored_at"
WEIGHT: Final = "__weight"
ORIGIN: Final = "__origin"
HANDED: Final = "__handed"
EXPLORATION: Final = "__exploration"
IS_MQL: Final = "__is_mql"
SELECTION: Final = "__selection_probability"
LABEL: Final = "__label"
META_COLUMNS: Final = (LEAD_ID, SCORED_AT, WEIGHT, ORIGIN, HANDED, EXPLORATION, IS_MQL, SELECTION)

Mode = Literal["retrain", "recalibrate"]
HIGHER_IS_BETTER: Final = {
    "roc_auc": True,
    "pr_auc": True,
    "ece": False,
    "brier": False,
    "precision_at_line": True,
}
METRIC_LABELS: Final = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "ece": "ECE",
    "brier": "Brier",
    "precision_at_line": "precision at the line",
}


def _pct(share: float, decimals: int = 1) -> str:
    return f"{share * 100:.{decimals}f} %"


# --------------------------------------------------------------------------- outcomes


def outcomes_from_events(
    events: pd.DataFrame,
    *,
    event_column: str = "event",
    won: Sequence[str] = WON_EVENTS,
    lost: Sequence[str] = LOST_EVENTS,
) -> pd.DataFrame:
    """Outcome events (sql_accepted, sql_rejected, won, lost, ...) as `OUTCOME_COLUMNS` rows;
    the time an event happened is `occurred_at` (the store's name) or `outcome_at`."""
    if "occurred_at" in events.columns and "outcome_at" not in events.columns:
        events = events.rename(columns={"occurred_at": "outcome_at"})
    missing = [c for c in ("lead_id", event_column, "outcome_at", "recorded_at") if c not in events]
    if missing:
        raise DataError(f"outcome events need the columns {', '.join(missing)}")
    names = events[event_column].astype("string").str.strip().str.lower()
    converted = pd.Series(pd.NA, index=events.index, dtype="boolean")
    converted[names.isin([w.lower() for w in won]).fillna(False)] = True
    converted[names.isin([x.lower() for x in lost]).fillna(False)] = False
    return pd.DataFrame(
        {
            "lead_id": events["lead_id"].astype("string"),
            "converted": converted,
            "outcome_at": _utc(events["outcome_at"]),
            "recorded_at": _utc(events["recorded_at"]),
        }
    )


def retraining_outcomes(events: pd.DataFrame, per_lead: pd.DataFrame | None = None) -> pd.DataFrame:
    """What retraining labels with, as `OUTCOME_COLUMNS` rows: every outcome event sales sent
    (the store's `outcome_events`, each with the time it arrived), plus the one-per-lead outcomes
    of leads that have no event at all (recorded before outcome events existed).

    The events come first because each keeps its own arrival time: a lead first reported lost and
    later corrected to won is lost as of any moment before the correction arrived. The per-lead
    table holds only the latest closing outcome, stamped with the first arrival, so for a lead
    with events it would let the correction leak back in time; it is read only for the others.
    """
    from_events = outcomes_from_events(events)
    if per_lead is None or per_lead.empty:
        return from_events
    missing = [c for c in OUTCOME_COLUMNS if c not in per_lead.columns]
    if missing:
        raise DataError(f"the outcomes frame lacks the columns {', '.join(missing)}")
    older = per_lead[~per_lead["lead_id"].astype(str).isin(set(from_events["lead_id"]))]
    if older.empty:
        return from_events
    older = pd.DataFrame(
        {
            "lead_id": older["lead_id"].astype("string"),
            "converted": older["converted"].astype("boolean"),
            "outcome_at": _utc(older["outcome_at"]),
            "recorded_at": _utc(older["recorded_at"]),
        }
    )
    return pd.concat([from_events, older], ignore_index=True)


def _utc(values: pd.Series | Sequence[Any]) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True, format="ISO8601")


def _as_utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# --------------------------------------------------------------------------- point in time


@dataclass(frozen=True)
class TrainingSetCounts:
    """How the ledger's leads ended up: labelled, open, or left out, and why."""

    as_of: str
    outcomes_through: str | None
    window_days: int
    ledger_leads: int = 0
    labelled: int = 0
    converted: int = 0
    open: int = 0
    not_handed_over: int = 0
    not_handed_over_with_outcome: int = 0
    exploration_labelled: int = 0
    exploration_without_chance: int = 0
    closed_before_scoring: int = 0
    won_after_window: int = 0
    scores_without_lead_id: int = 0
    later_scores_ignored: int = 0
    export_rows: int = 0
    export_open: int = 0
    export_in_ledger: int = 0

    def sentences(self) -> list[str]:
        lines = [
            f"{self.labelled:,} of {self.ledger_leads:,} ledger leads labelled as of"
            f" {self.as_of[:10]} ({self.converted:,} converted; outcomes through"
            f" {(self.outcomes_through or 'none yet')[:10]}, window {self.window_days} days)",
            f"{self.open:,} handed-over leads still open (no outcome, window not passed): left out",
        ]
        if self.not_handed_over:
            lines.append(
                f"{self.not_handed_over:,} leads never handed to sales left out: their outcome is"
                f" unobserved ({self.not_handed_over_with_outcome:,} of them have one anyway)"
            )
        if self.exploration_labelled:
            lines.append(
                f"{self.exploration_labelled:,} exploration leads from below the line labelled,"
                " weighted by the inverse of their chance of being handed over"
            )
        if self.exploration_without_chance:
            lines.append(
                f"{self.exploration_without_chance:,} exploration leads without a recorded chance"
                " left out"
            )
        if self.closed_before_scoring:
            lines.append(
                f"{self.closed_before_scoring:,} leads closed before they were scored left out"
            )
        if self.won_after_window:
            lines.append(
                f"{self.won_after_window:,} leads won after their window counted as not converted"
            )
        if self.later_scores_ignored:
            lines.append(
                f"{self.later_scores_ignored:,} later re-scores ignored: each lead keeps the"
                " features of its first score"
            )
        if self.export_rows or self.export_in_ledger:
            lines.append(
                f"{self.export_rows:,} leads from the original export added"
                f" ({self.export_in_ledger:,} already in the ledger and {self.export_open:,} still"
                " open left out)"
            )
        return lines


@dataclass(frozen=True)
class TrainingSet:
    """Labelled leads: their fields as scored, `target` (0/1) and the `META_COLUMNS`."""

    frame: pd.DataFrame
    target: str
    counts: TrainingSetCounts
    #: Every ledger lead (labelled or not) with its label (NaN when unknown or unobserved).
    ledger: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def training_frame(self, id_column: str | None) -> pd.DataFrame:
        """What `train_model` reads: the fields, the target and the weight column."""
        return for_training(self.frame, id_column)


def for_training(frame: pd.DataFrame, id_column: str | None) -> pd.DataFrame:
    """A labelled frame as `train_model` reads it: fields, target, weight (and the lead id)."""
    result = frame.drop(columns=[c for c in META_COLUMNS if c != WEIGHT])
    if id_column and id_column not in result:
        result.insert(0, id_column, frame[LEAD_ID].to_numpy())
    return result.reset_index(drop=True)


def lead_fields(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """A labelled frame as the models score it: the lead's fields only."""
    return frame.drop(columns=[c for c in (*META_COLUMNS, target) if c in frame.columns])


def _first_scores(ledger: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise DataError(f"the ledger frame lacks the columns {', '.join(missing)}")
    rows = ledger.copy()
    no_id = rows["lead_id"].isna() | (rows["lead_id"].astype("string").str.strip() == "")
    rows = rows[~no_id.fillna(True)].copy()
    rows["lead_id"] = rows["lead_id"].astype(str)
    rows["scored_at"] = _utc(rows["scored_at"]).to_numpy()
    tie = next((c for c in ("ledger_id", "id") if c in rows.columns), None)
    order = ["scored_at", tie] if tie else ["scored_at"]
    rows = rows.sort_values(order, kind="stable")
    first = rows.drop_duplicates("lead_id", keep="first").reset_index(drop=True)
    return first, int(no_id.sum()), len(rows) - len(first)


def _selection(first: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    is_mql = first["is_mql"].astype(bool).to_numpy()
    if "exploration" in first.columns:
        exploration = first["exploration"].fillna(False).astype(bool).to_numpy() & ~is_mql
    else:
        exploration = np.zeros(len(first), dtype=bool)
    if "selection_probability" in first.columns:
        chance = pd.to_numeric(first["selection_probability"], errors="coerce").to_numpy(float)
    else:
        chance = np.full(len(first), np.nan)
    chance = np.where(is_mql, 1.0, chance)
    return is_mql, exploration, chance


def point_in_time_set(
    ledger: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    target: str,
    as_of: datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    outcomes_through: datetime | None = None,
    all_leads_observed: bool = False,
    max_weight: float = MAX_WEIGHT,
) -> TrainingSet:
    """Label the ledger's leads with the outcomes known at `as_of` (see the module docstring).

    `ledger`: one row per score (`LEDGER_COLUMNS`, optionally `exploration`,
    `selection_probability`, `id`); `features` holds the lead's fields as scored.
    `outcomes`: one row per event (`OUTCOME_COLUMNS`, see `outcomes_from_events`).
    `outcomes_through`: up to when outcomes are known to have arrived (default: the latest
    `outcome_at` among those recorded by `as_of`).
    """
    if window_days < 1:
        raise DataError(f"the conversion window must be at least 1 day, got {window_days}")
    moment = _as_utc(as_of)
    first, no_id, later = _first_scores(ledger)
    first = first[first["scored_at"] <= moment].reset_index(drop=True)
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise DataError(f"the outcomes frame lacks the columns {', '.join(missing)}")
    events = outcomes.copy()
    events["lead_id"] = events["lead_id"].astype(str)
    events["outcome_at"] = _utc(events["outcome_at"]).to_numpy()
    events["recorded_at"] = _utc(events["recorded_at"]).to_numpy()
    events = events[events["recorded_at"] <= moment]
    through = (
        _as_utc(outcomes_through)
        if outcomes_through is not None
        else (events["outcome_at"].max() if len(events) else None)
    )
    if through is not None and pd.isna(through):
        through = None

    scored = first.set_index("lead_id")["scored_at"]
    events = events[events["lead_id"].isin(scored.index)].copy()
    events["scored_at"] = pd.to_datetime(events["lead_id"].map(scored), utc=True)
    before = events["outcome_at"] < events["scored_at"]
    closed_before = set(events.loc[before & events["converted"].notna(), "lead_id"])
    events = events[~before]
    window = pd.Timedelta(days=window_days)
    in_window = events["outcome_at"] <= events["scored_at"] + window
    terminal = events["converted"].notna()
    won = events["converted"].fillna(False).astype(bool)
    won_in_window = set(events.loc[terminal & won & in_window, "lead_id"])
    lost_in_window = set(events.loc[terminal & ~won & in_window, "lead_id"])
    won_later = set(events.loc[terminal & won & ~in_window, "lead_id"])
    with_outcome = set(events.loc[terminal, "lead_id"])

    ids = first["lead_id"].to_numpy()
    window_end = first["scored_at"] + window
    window_passed = (
        (window_end <= through).to_numpy() if through is not None else np.zeros(len(first), bool)
    )
    is_won = np.isin(ids, list(won_in_window))
    is_lost = np.isin(ids, list(lost_in_window))
    label = np.where(is_won, 1.0, np.where(is_lost | window_passed, 0.0, np.nan))
    closed_early = np.isin(ids, list(closed_before))
    label[closed_early] = np.nan

    is_mql, exploration, chance = _selection(first)
    handed = is_mql | exploration
    observed = np.ones(len(first), bool) if all_leads_observed else handed
    chance = np.where(all_leads_observed & ~handed, 1.0, chance)
    no_chance = exploration & ~(chance > 0)
    usable = observed & ~no_chance & ~closed_early
    labelled = usable & ~np.isnan(label)
    weight = np.minimum(1.0 / np.where(chance > 0, chance, np.nan), max_weight)

    features = pd.DataFrame.from_records(
        [dict(f) if isinstance(f, Mapping) else {} for f in first["features"]]
    )
    features = features.drop(columns=[c for c in (target,) if c in features.columns])
    all_leads = features.copy()
    all_leads[LEAD_ID] = ids
    all_leads[SCORED_AT] = first["scored_at"].to_numpy()
    all_leads[WEIGHT] = weight
    all_leads[ORIGIN] = "ledger"
    all_leads[HANDED] = handed
    all_leads[EXPLORATION] = exploration
    all_leads[IS_MQL] = is_mql
    all_leads[SELECTION] = chance
    all_leads["probability"] = first["probability"].to_numpy(float)
    all_leads[LABEL] = np.where(observed & ~closed_early, label, np.nan)

    frame = all_leads.loc[labelled].drop(columns=["probability", LABEL])
    frame.insert(len(features.columns), target, label[labelled].astype(np.int64))
    counts = TrainingSetCounts(
        as_of=moment.isoformat(),
        outcomes_through=through.isoformat() if through is not None else None,
        window_days=window_days,
        ledger_leads=len(first),
        labelled=int(labelled.sum()),
        converted=int(label[labelled].sum()),
        open=int((usable & np.isnan(label)).sum()),
        not_handed_over=int((~observed).sum()),
        not_handed_over_with_outcome=int((~observed & np.isin(ids, list(with_outcome))).sum()),
        exploration_labelled=int((labelled & exploration).sum()),
        exploration_without_chance=int(no_chance.sum()),
        closed_before_scoring=int(closed_early.sum()),
        won_after_window=int((labelled & np.isin(ids, list(won_later)) & ~is_won).sum()),
        scores_without_lead_id=no_id,
        later_scores_ignored=later,
    )
    return TrainingSet(frame.reset_index(drop=True), target, counts, all_leads)


def add_export(
    training: TrainingSet,
    export: pd.DataFrame,
    *,
    positive_label: str,
    id_column: str | None,
    time_column: str | None,
) -> TrainingSet:
    """Add leads of the original export that the ledger does not have (weight 1).

    With an id column, rows whose id is in the ledger are left out (the ledger's features as
    scored win); without one, only rows created before the ledger's first score are added.
    Rows with an empty outcome are open and left out.
    """
    target = training.target
    if target not in export.columns:
        raise DataError(
            f"the original export has no {target!r} column; pass the export the"
            " champion was trained on"
        )
    rows = export.copy()
    in_ledger = np.zeros(len(rows), dtype=bool)
    ledger_ids = set(training.ledger[LEAD_ID]) if len(training.ledger) else set()
    if id_column and id_column in rows.columns:
        in_ledger = rows[id_column].astype(str).isin(ledger_ids).to_numpy()
        lead_ids = rows[id_column].astype(str).to_numpy()
    elif time_column and time_column in rows.columns and len(training.ledger):
        created = _utc(rows[time_column].astype("string"))
        in_ledger = (created >= training.ledger[SCORED_AT].min()).fillna(True).to_numpy()
        lead_ids = np.array([f"export-{i}" for i in range(len(rows))], dtype=object)
    else:
        lead_ids = np.array([f"export-{i}" for i in range(len(rows))], dtype=object)
    outcome = rows[target]
    is_open = (outcome.isna() | (outcome.astype("string").str.strip() == "")).to_numpy()
    keep = ~in_ledger & ~is_open
    kept = rows.loc[keep].reset_index(drop=True)
    kept[target] = _is_positive(kept[target], positive_label)
    stamps = (
        _utc(kept[time_column].astype("string"))
        if time_column and time_column in kept.columns
        else pd.Series(pd.NaT, index=kept.index, dtype="datetime64[ns, UTC]")
    )
    kept[LEAD_ID] = lead_ids[keep]
    kept[SCORED_AT] = stamps.to_numpy()
    kept[WEIGHT] = 1.0
    kept[ORIGIN] = "export"
    kept[HANDED] = True
    kept[EXPLORATION] = False
    kept[IS_MQL] = False
    kept[SELECTION] = 1.0
    if id_column and id_column in kept.columns:
        kept = kept.drop(columns=[id_column])
    frame = pd.concat([kept, training.frame], ignore_index=True, sort=False)
    counts = replace(
        training.counts,
        export_rows=int(keep.sum()),
        export_open=int((~in_ledger & is_open).sum()),
        export_in_ledger=int(in_ledger.sum()),
    )
    return TrainingSet(frame, target, counts, training.ledger)


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _is_positive(outcome: pd.Series, positive_label: str) -> np.ndarray:
    """1 where the export's outcome is the positive label (compared as trimmed lower text)."""
    wanted = _label(positive_label)
    return np.array([_label(v) == wanted for v in outcome], dtype=np.int64)


@dataclass(frozen=True)
class GateSplit:
    """Labelled leads for the challenger to learn from, and the most recent ones to judge on."""

    train: pd.DataFrame
    gate: pd.DataFrame
    gate_from: str | None


def split_for_gate(
    training: TrainingSet,
    champion_trained_at: datetime | str | None,
    *,
    gate_share: float = GATE_SHARE,
) -> GateSplit:
    """The most recent `gate_share` of labelled ledger leads scored after the champion was
    trained: neither model learned from them (the champion could not, the challenger does not).
    """
    if not 0 < gate_share < 1:
        raise DataError(f"the gate share must be between 0 and 1, got {gate_share}")
    frame = training.frame
    ledger_rows = frame[frame[ORIGIN] == "ledger"].sort_values(SCORED_AT, kind="stable")
    n_gate = math.ceil(len(ledger_rows) * gate_share)
    recent = ledger_rows.tail(n_gate)
    if champion_trained_at is not None:
        trained = _as_utc(pd.Timestamp(champion_trained_at))
        recent = recent[recent[SCORED_AT] > trained]
    gate = recent
    train = frame.drop(index=gate.index)
    start = gate[SCORED_AT].min() if len(gate) else None
    return GateSplit(
        train=train.reset_index(drop=True),
        gate=gate.reset_index(drop=True),
        gate_from=start.isoformat() if start is not None and not pd.isna(start) else None,
    )


# --------------------------------------------------------------------------- weighted metrics


def _weight_matrix(w: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Row 0: the weights themselves; rows 1..n_boot: Poisson bootstrap resamples of them."""
    rng = np.random.default_rng(seed)
    draws = rng.poisson(1.0, size=(n_boot, len(w))).astype(np.float64)
    return np.vstack([w, draws * w])


def _ranking_metrics(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC AUC and average precision for each row of weights `W` (ties handled)."""
    order = np.argsort(-p, kind="stable")
    p_desc, y_desc = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, np.diff(p_desc) != 0])
    Ws = W[:, order]
    pos = np.add.reduceat(Ws * y_desc, starts, axis=1)
    neg = np.add.reduceat(Ws * (1 - y_desc), starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = total_neg[:, None] - np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        precision = tp / np.where(tp + fp > 0, tp + fp, np.nan)
        ap = np.nansum(pos * precision, axis=1) / total_pos
    return auc, ap


def _calibration_metrics(
    y: np.ndarray, p: np.ndarray, W: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ECE (bins: weighted quantiles of `p` under row 0) and Brier, per row of `W`."""
    order = np.argsort(p, kind="stable")
    share = np.cumsum(W[0, order]) / W[0].sum()
    edges = np.unique(np.interp(np.linspace(0, 1, n_bins + 1)[1:-1], share, p[order]))
    bins = np.searchsorted(edges, p, side="right")
    onehot = np.zeros((len(p), len(edges) + 1))
    onehot[np.arange(len(p)), bins] = 1.0
    mass = W @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs((W * y) @ onehot - (W * p) @ onehot) / mass
    total = W.sum(axis=1)
    ece = np.nansum(mass * gap, axis=1) / total
    brier = (W * (p - y) ** 2).sum(axis=1) / total
    return ece, brier


def _precision_at(y: np.ndarray, p: np.ndarray, W: np.ndarray, cutoff: float) -> np.ndarray:
    mql = p >= cutoff
    with np.errstate(invalid="ignore", divide="ignore"):
        return (W[:, mql] * y[mql]).sum(axis=1) / W[:, mql].sum(axis=1)


def weighted_metrics(
    y: npt.ArrayLike, proba: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> dict[str, float]:
    """ROC AUC, PR AUC, ECE and Brier of `proba` against `y`, each lead counted `weights` times."""
    yy = np.asarray(y, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    w = np.ones(len(yy)) if weights is None else np.asarray(weights, dtype=np.float64)
    W = w[None, :]
    auc, ap = _ranking_metrics(yy, p, W)
    ece, brier = _calibration_metrics(yy, p, W)
    return {
        "roc_auc": float(auc[0]),
        "pr_auc": float(ap[0]),
        "ece": float(ece[0]),
        "brier": float(brier[0]),
    }


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class GateConfig:
    mode: Mode = "retrain"
    margin: float = DEFAULT_MARGIN
    metric: Literal["roc_auc", "pr_auc"] = "roc_auc"
    ece_tolerance: float = ECE_TOLERANCE
    n_boot: int = GATE_BOOTSTRAPS
    level: float = GATE_LEVEL
    seed: int = 0
    min_leads: int = GATE_MIN_LEADS
    min_per_outcome: int = GATE_MIN_PER_OUTCOME

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise DataError(f"the gate margin must be between 0 and 1, got {self.margin}")
        if self.metric not in ("roc_auc", "pr_auc"):
            raise DataError(f"the gate metric must be roc_auc or pr_auc, got {self.metric!r}")
        if not 0 < self.level < 1:
            raise DataError(f"the gate level must be between 0 and 1, got {self.level}")
        if self.n_boot < 10:
            raise DataError(f"the gate needs at least 10 bootstrap resamples, got {self.n_boot}")


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    higher_is_better: bool

    @property
    def improvement(self) -> float:
        """The difference, signed so that positive means the challenger is better."""
        return self.difference if self.higher_is_better else -self.difference

    def text(self) -> str:
        return (
            f"{METRIC_LABELS[self.metric]} {self.challenger:.4f} vs {self.champion:.4f}"
            f" (difference {self.difference:+.4f}, interval {self.low:+.4f} to {self.high:+.4f})"
        )


@dataclass(frozen=True)
class GateResult:
    promoted: bool
    mode: Mode
    reasons: tuple[str, ...]
    comparisons: tuple[MetricComparison, ...]
    n: int
    effective_n: float
    conversions: float
    level: float
    margin: float
    metric: str
    champion_cutoff: float | None = None
    challenger_cutoff: float | None = None

    def comparison(self, metric: str) -> MetricComparison:
        return next(c for c in self.comparisons if c.metric == metric)

    @property
    def sentence(self) -> str:
        verdict = "promoted" if self.promoted else "refused"
        return f"{verdict}: {'; '.join(self.reasons)}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "mode": self.mode,
            "sentence": self.sentence,
            "reasons": list(self.reasons),
            "n": self.n,
            "effective_n": self.effective_n,
            "conversions": self.conversions,
            "level": self.level,
            "margin": self.margin,
            "metric": self.metric,
            "champion_cutoff": self.champion_cutoff,
            "challenger_cutoff": self.challenger_cutoff,
            "metrics": {
                c.metric: {**asdict(c), "improvement": c.improvement} for c in self.comparisons
            },
        }


def _refused(reason: str, config: GateConfig, n: int, n_eff: float, conv: float) -> GateResult:
    return GateResult(
        False,
        config.mode,
        (reason,),
        (),
        n,
        n_eff,
        conv,
        config.level,
        config.margin,
        config.metric,
    )


def run_gate(
    y: npt.ArrayLike,
    champion_proba: npt.ArrayLike,
    challenger_proba: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    champion_cutoff: float | None = None,
    challenger_cutoff: float | None = None,
    config: GateConfig | None = None,
) -> GateResult:
    """Compare two models' probabilities on the same recent leads; see the module docstring."""
    cfg = config or GateConfig()
    yy = np.asarray(y, dtype=np.float64)
    p_old = np.asarray(champion_proba, dtype=np.float64)
    p_new = np.asarray(challenger_proba, dtype=np.float64)
    w = np.ones(len(yy)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(yy) == len(p_old) == len(p_new) == len(w):
        raise DataError("outcomes, weights and both models' probabilities differ in length")
    n = len(yy)
    n_eff = float(w.sum() ** 2 / (w**2).sum()) if n else 0.0
    conversions = float((w * yy).sum())
    positives, negatives = int(yy.sum()), int(n - yy.sum())
    if n < cfg.min_leads or min(positives, negatives) < cfg.min_per_outcome:
        return _refused(
            f"too few recent outcomes to judge: {n} leads ({positives} converted, {negatives} not)"
            f" scored after the champion was trained; the gate needs {cfg.min_leads} leads and"
            f" {cfg.min_per_outcome} of each outcome, so wait for more outcomes",
            cfg,
            n,
            n_eff,
            conversions,
        )
    W = _weight_matrix(w, cfg.n_boot, cfg.seed)
    old_auc, old_ap = _ranking_metrics(yy, p_old, W)
    new_auc, new_ap = _ranking_metrics(yy, p_new, W)
    old_ece, old_brier = _calibration_metrics(yy, p_old, W)
    new_ece, new_brier = _calibration_metrics(yy, p_new, W)
    series = {
        "roc_auc": (old_auc, new_auc),
        "pr_auc": (old_ap, new_ap),
        "ece": (old_ece, new_ece),
        "brier": (old_brier, new_brier),
    }
    if champion_cutoff is not None and challenger_cutoff is not None:
        series["precision_at_line"] = (
            _precision_at(yy, p_old, W, champion_cutoff),
            _precision_at(yy, p_new, W, challenger_cutoff),
        )
    tail = (1 - cfg.level) / 2
    comparisons = []
    for name, (old, new) in series.items():
        diff = new[1:] - old[1:]
        diff = diff[np.isfinite(diff)]
        low, high = np.quantile(diff, [tail, 1 - tail]) if len(diff) else (np.nan, np.nan)
        comparisons.append(
            MetricComparison(
                name,
                float(old[0]),
                float(new[0]),
                float(new[0] - old[0]),
                float(low),
                float(high),
                HIGHER_IS_BETTER[name],
            )
        )
    by_name = {c.metric: c for c in comparisons}
    reasons, promoted = _decide(by_name, cfg)
    return GateResult(
        promoted,
        cfg.mode,
        tuple(reasons),
        tuple(comparisons),
        n,
        n_eff,
        conversions,
        cfg.level,
        cfg.margin,
        cfg.metric,
        champion_cutoff,
        challenger_cutoff,
    )


def _significantly_worse(c: MetricComparison, tolerance: float = 0.0) -> bool:
    if c.higher_is_better:
        return -c.difference > tolerance and c.high < 0
    return c.difference > tolerance and c.low > 0


def _significantly_better(c: MetricComparison) -> bool:
    return c.low > 0 if c.higher_is_better else c.high < 0


def _decide(by_name: Mapping[str, MetricComparison], cfg: GateConfig) -> tuple[list[str], bool]:
    primary = by_name[cfg.metric]
    ece, brier = by_name["ece"], by_name["brier"]
    pct = f"{_pct(cfg.level, 0)}"
    reasons: list[str] = []
    if cfg.mode == "recalibrate":
        calibration_better = _significantly_better(ece) or _significantly_better(brier)
        ranking_kept = primary.improvement >= -cfg.margin
        if calibration_better:
            reasons.append(f"calibration improved: {ece.text()}; {brier.text()}")
        else:
            reasons.append(
                f"calibration did not improve beyond chance ({pct} intervals):"
                f" {ece.text()}; {brier.text()}"
            )
        if not ranking_kept:
            reasons.append(
                f"ranking got worse by more than the margin {cfg.margin}: {primary.text()}"
            )
        return reasons, calibration_better and ranking_kept
    better = primary.improvement >= cfg.margin and _significantly_better(primary)
    if better:
        reasons.append(
            f"the challenger ranks recent leads better by at least the margin"
            f" {cfg.margin}: {primary.text()}"
        )
    elif primary.improvement >= cfg.margin:
        reasons.append(
            f"the challenger's gain is within chance ({pct} interval reaches 0): {primary.text()}"
        )
    else:
        reasons.append(f"the challenger is not better by the margin {cfg.margin}: {primary.text()}")
    worse = [
        c.text()
        for c, tolerance in ((ece, cfg.ece_tolerance), (brier, 0.0))
        if _significantly_worse(c, tolerance)
    ]
    if worse:
        reasons.append(f"calibration is worse: {'; '.join(worse)}")
    else:
        reasons.append(f"calibration is not worse: {ece.text()}; {brier.text()}")
    return reasons, better and not worse


# --------------------------------------------------------------------------- the diff


def expand_by_weight(weights: npt.ArrayLike) -> np.ndarray:
    """Row positions repeated by their (rounded, at least 1) weight, to read shares of all
    leads from weighted ones with functions that count leads."""
    w = np.asarray(weights, dtype=np.float64)
    return np.repeat(np.arange(len(w)), np.maximum(np.rint(w), 1).astype(np.int64))


@dataclass(frozen=True)
class PolicyShift:
    """What the policy in force resolves to under the challenger, on the recent outcomes."""

    kind: str
    champion_cutoff: float
    challenger_cutoff: float
    champion_mql_share: float
    challenger_mql_share: float
    champion_precision: float
    challenger_precision: float
    sentence: str

    @property
    def cutoff_change(self) -> float:
        return self.challenger_cutoff - self.champion_cutoff


def _policy_of(kind: str, params: Mapping[str, Any]) -> Policy:
    if kind == "default" or not params:
        return CapacityPolicy(per_week=DEFAULT_TOP_SHARE * 100, leads_per_week=100)
    return policy_from_dict({k: v for k, v in params.items() if k != "exploration_share"})


def policy_shift(
    kind: str,
    params: Mapping[str, Any],
    champion_cutoff: float,
    y: npt.ArrayLike,
    champion_proba: npt.ArrayLike,
    challenger_proba: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    current_champion_proba: npt.ArrayLike | None = None,
    current_challenger_proba: npt.ArrayLike | None = None,
) -> PolicyShift:
    """Resolve the policy in force for the challenger on the recent outcomes (weighted).

    With the current leads' scores (every lead scored lately, handed to sales or not), a
    capacity policy is resolved on them, and the MQL shares are theirs: a share of leads needs
    no outcome, and the labelled leads are mostly the champion's MQLs, far from a fair sample
    of the leads coming in when there is little or no exploration.
    """
    yy = np.asarray(y, dtype=np.int64)
    rows = expand_by_weight(np.ones(len(yy)) if weights is None else weights)
    y_all = yy[rows]
    old = np.asarray(champion_proba, dtype=np.float64)[rows]
    new = np.asarray(challenger_proba, dtype=np.float64)[rows]
    current_old = (
        None
        if current_champion_proba is None
        else np.asarray(current_champion_proba, dtype=np.float64)
    )
    current_new = (
        None
        if current_challenger_proba is None
        else np.asarray(current_challenger_proba, dtype=np.float64)
    )
    policy = _policy_of(kind, params)
    if isinstance(policy, CapacityPolicy) and current_new is not None and len(current_new):
        new_cutoff = policy.resolve(np.zeros(len(current_new), np.int64), current_new)
    else:
        new_cutoff = resolve_policy(policy, y_all, new, n_boot=1).cutoff
    if isinstance(policy, FixedPolicy):
        new_cutoff = policy.cutoff

    def share_precision(
        p: np.ndarray, cutoff: float, current: np.ndarray | None
    ) -> tuple[float, float]:
        mql = p >= cutoff
        leads = current if current is not None and len(current) else p
        precision = float(y_all[mql].mean()) if mql.any() else math.nan
        return float((leads >= cutoff).mean()), precision

    old_share, old_precision = share_precision(old, champion_cutoff, current_old)
    new_share, new_precision = share_precision(new, new_cutoff, current_new)
    move = new_cutoff - champion_cutoff
    figures = (
        f"MQLs {_pct(old_share)} -> {_pct(new_share)} of"
        f" {'current' if current_new is not None and len(current_new) else 'recent'} leads,"
        f" converting {_pct(old_precision)} -> {_pct(new_precision)} on the recent outcomes"
    )
    if isinstance(policy, CapacityPolicy):
        what = "the capacity policy" if kind != "default" else "the default line (top 30 %)"
        sentence = (
            f"{what} keeps its share of {_pct(policy.share)}: the cut-off moves from"
            f" {champion_cutoff:.4g} to {new_cutoff:.4g} ({move:+.4g}); {figures}"
        )
    elif isinstance(policy, FixedPolicy):
        sentence = f"the fixed cut-off stays at {new_cutoff:.4g}; {figures}"
    else:
        sentence = (
            f"the {kind} policy moves its cut-off from {champion_cutoff:.4g} to"
            f" {new_cutoff:.4g}, by {move:+.4g}; {figures}"
        )
    return PolicyShift(
        kind,
        champion_cutoff,
        new_cutoff,
        old_share,
        new_share,
        old_precision,
        new_precision,
        sentence,
    )


@dataclass(frozen=True)
class GradeChanges:
    """How the current leads' grades and MQL decisions change under the challenger."""

    n: int
    changed_grade: int
    became_mql: int
    dropped_from_mql: int
    crosstab: pd.DataFrame

    def sentence(self) -> str:
        return (
            f"of {self.n:,} current leads {self.changed_grade:,} change grade;"
            f" {self.became_mql:,} would become MQLs and {self.dropped_from_mql:,} would stop"
            " being MQLs"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "changed_grade": self.changed_grade,
            "became_mql": self.became_mql,
            "dropped_from_mql": self.dropped_from_mql,
            "crosstab": {
                str(k): {str(c): int(v) for c, v in row.items()}
                for k, row in self.crosstab.to_dict(orient="index").items()
            },
        }


def grade_changes(
    champion_proba: npt.ArrayLike,
    challenger_proba: npt.ArrayLike,
    *,
    champion_cutoff: float,
    champion_bands: GradeBands,
    challenger_cutoff: float,
    challenger_bands: GradeBands,
) -> GradeChanges:
    """Grades and MQL decisions of the same leads under each model and its own line."""
    old = np.asarray(champion_proba, dtype=np.float64)
    new = np.asarray(challenger_proba, dtype=np.float64)
    old_grade = assign_grades(old, champion_bands)
    new_grade = assign_grades(new, challenger_bands)
    old_mql, new_mql = old >= champion_cutoff, new >= challenger_cutoff
    table = pd.crosstab(
        pd.Series(old_grade, name="champion"), pd.Series(new_grade, name="challenger")
    )
    return GradeChanges(
        n=len(old),
        changed_grade=int((old_grade != new_grade).sum()),
        became_mql=int((~old_mql & new_mql).sum()),
        dropped_from_mql=int((old_mql & ~new_mql).sum()),
        crosstab=table,
    )


def trait_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per field: its share of the model's attention under the champion and the challenger.

    Both tables are `explain.trait_importance` output on the same leads; rows follow the
    challenger's order, fields only one model uses get a share of 0 in the other.
    """
    old = before.set_index("field")[["share", "summary"]]
    new = after.set_index("field")[["share", "summary"]]
    fields_ = list(new.index) + [f for f in old.index if f not in new.index]
    table = pd.DataFrame({"field": fields_})
    table["share_before"] = old["share"].reindex(fields_).fillna(0.0).to_numpy()
    table["share_after"] = new["share"].reindex(fields_).fillna(0.0).to_numpy()
    table["change"] = table["share_after"] - table["share_before"]
    table["summary_before"] = old["summary"].reindex(fields_).fillna("").to_numpy()
    table["summary_after"] = new["summary"].reindex(fields_).fillna("").to_numpy()
    return table


# --------------------------------------------------------------------------- recalibration


def _calibrated(pipeline: Pipeline) -> CalibratedClassifierCV:
    model = pipeline.named_steps.get("model")
    if not isinstance(model, CalibratedClassifierCV):
        raise DataError("the champion has no calibrator to refit; retrain it fully instead")
    return model


def recalibrate(
    pipeline: Pipeline,
    leads: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    weights: npt.ArrayLike | None = None,
    method: str | None = None,
) -> tuple[Pipeline, str]:
    """The same pipeline with only its calibrator refit on `leads` (the preparer and the model
    that ranks stay as they are); returns it and the calibration method used."""
    yy = np.asarray(y, dtype=np.int64)
    head = _calibrated(pipeline).calibrated_classifiers_[0].estimator
    frozen = head if isinstance(head, FrozenEstimator) else FrozenEstimator(head)
    chosen = method or calibration_method(yy)
    calibrator = CalibratedClassifierCV(frozen, method=chosen)  # type: ignore[arg-type]
    prepare = pipeline.named_steps["prepare"]
    with warnings.catch_warnings():
        # The weights are meant for the calibrator only: the frozen head is not refit.
        warnings.filterwarnings("ignore", message="Since FrozenEstimator", category=UserWarning)
        calibrator.fit(
            prepare.transform(leads),
            yy,
            sample_weight=None if weights is None else np.asarray(weights, dtype=np.float64),
        )
    for member in calibrator.calibrated_classifiers_:
        member.calibrators = [
            center_isotonic(c) if isinstance(c, IsotonicRegression) else c
            for c in member.calibrators
        ]
    label = "centered isotonic" if chosen == "isotonic" else chosen
    return Pipeline([("prepare", prepare), ("model", calibrator)]), label


def recalibrated_result(
    pipeline: Pipeline,
    calibration: str,
    *,
    schema: LeadSchema,
    kind: str,
    champion_version: str | None,
    holdout: pd.DataFrame,
    holdout_y: npt.ArrayLike,
    n_calibrated: int,
) -> TrainResult:
    """A `TrainResult` for a recalibrated champion, so it is logged and registered like any
    training; its holdout is the gate's recent leads."""
    hy = np.asarray(holdout_y, dtype=np.int64)
    proba = pipeline.predict_proba(holdout)[:, 1]
    return TrainResult(
        pipeline=pipeline,
        schema=schema,
        model_kind=kind,
        selection=[],
        selection_reason=(
            f"recalibration of v{champion_version}: the ranking model kept, the calibrator"
            f" ({calibration}) refit on {n_calibrated:,} recent outcomes"
        ),
        calibration_method=calibration,
        metrics=holdout_metrics(hy, proba),
        gains=gains_table(hy, proba),
        holdout=holdout.reset_index(drop=True),
        holdout_y=hy,
        holdout_proba=proba,
        reference_quantiles=reference_quantiles(proba),
        leakage=LeakageReport(findings=(), single_column_auc={}),
        traits=trait_importance(pipeline, holdout),
        config=TrainConfig(
            target=schema.target,
            positive=schema.positive_label,
            id_column=schema.id_column,
            time_column=schema.time_column,
        ),
        positive_label=schema.positive_label,
        split_sizes={
            "open_leads_left_out": 0,
            "fit": 0,
            "calibrate": n_calibrated,
            "holdout": len(hy),
        },
        split_by_time=True,
    )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class RetrainReport:
    """The one-page report of a retrain or recalibration: why, what changed, what it costs."""

    model_name: str
    champion_version: str | None
    mode: Mode
    counts: TrainingSetCounts
    gate: GateResult
    traits: pd.DataFrame | None = None
    grades: GradeChanges | None = None
    policy: PolicyShift | None = None
    below_line: BelowLineEstimate | None = None
    gate_from: str | None = None
    challenger_version: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "mode": self.mode,
            "promoted": self.gate.promoted,
            "training_set": asdict(self.counts),
            "gate_from": self.gate_from,
            "gate": self.gate.to_dict(),
            "traits": None if self.traits is None else self.traits.to_dict(orient="records"),
            "grades": None if self.grades is None else self.grades.to_dict(),
            "policy": None
            if self.policy is None
            else {**asdict(self.policy), "cutoff_change": self.policy.cutoff_change},
            "below_line": None if self.below_line is None else self.below_line.to_dict(),
            "notes": list(self.notes),
        }

    def text(self, top_traits: int = 6) -> str:
        what = "Recalibration" if self.mode == "recalibrate" else "Retrain"
        challenger = f"v{self.challenger_version}" if self.challenger_version else "challenger"
        lines = [
            f"{what} of {self.model_name}: {challenger} against champion"
            f" v{self.champion_version or '?'}",
            "",
            f"Verdict: {self.gate.sentence}",
            "",
            "Training set (point in time):",
            *(f"  {line}" for line in self.counts.sentences()),
            "",
            f"Gate: {self.gate.n:,} recent leads scored from {(self.gate_from or '?')[:10]}"
            f" (effective {self.gate.effective_n:,.0f}), {_pct(self.gate.level, 0)} bootstrap"
            " intervals of challenger minus champion:",
        ]
        for c in self.gate.comparisons:
            lines.append(f"  {c.text()}")
        if self.traits is not None and len(self.traits):
            lines += [
                "",
                "What drives conversion (share of the model's attention, before -> after):",
            ]
            for row in self.traits.head(top_traits).to_dict(orient="records"):
                before = _pct(float(row["share_before"]), 0)
                after = _pct(float(row["share_after"]), 0)
                lines.append(f"  {before:>5} -> {after:>5}  {row['summary_after']}")
        if self.grades is not None:
            lines += ["", f"Current leads: {self.grades.sentence()}."]
        if self.policy is not None:
            lines += [f"MQL line: {self.policy.sentence}."]
        if self.below_line is not None:
            lines += ["", f"Below the line: {self.below_line.sentence}."]
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)


def policy_bands(proba: npt.ArrayLike, cutoff: float) -> GradeBands:
    """Default A-D bands around `cutoff` on `proba` (as the policy book draws them)."""
    return default_grade_bands(np.asarray(proba, dtype=np.float64), cutoff)


# --------------------------------------------------------------------------- one retrain


@dataclass(frozen=True)
class Champion:
    """What retraining needs of the model in force and its MQL line."""

    pipeline: Pipeline
    schema: LeadSchema
    kind: str
    version: str | None
    trained_at: str | None
    holdout_roc_auc: float
    policy_kind: str
    policy_params: Mapping[str, Any]
    cutoff: float
    bands: GradeBands


def champion_from_bundle(bundle: Bundle, policy: ActivePolicy) -> Champion:
    """The champion as retraining needs it: its model and schema from the bundle, the MQL policy
    in force for it (kind, parameters, cut-off, grade bands)."""
    info = bundle.info
    return Champion(
        pipeline=bundle.pipeline,
        schema=info.schema,
        kind=info.kind,
        version=info.version,
        trained_at=info.trained_at,
        holdout_roc_auc=float(info.metrics.get("roc_auc", float("nan"))),
        policy_kind=policy.kind,
        policy_params=dict(policy.params),
        cutoff=policy.cutoff,
        bands=policy.bands,
    )


@dataclass(frozen=True)
class RetrainConfig:
    window_days: int = DEFAULT_WINDOW_DAYS
    recalibrate_only: bool = False
    gate_share: float = GATE_SHARE
    all_leads_observed: bool = False
    #: Leads scored this many days before `as_of` are the "current leads" of the diff.
    current_days: int = 30
    gate: GateConfig = field(default_factory=GateConfig)
    seed: int = 0
    candidates: tuple[CandidateName, ...] = CANDIDATES
    cv_folds: int = 5


@dataclass(frozen=True)
class RetrainOutcome:
    """The new model (None when nothing could be trained) and the one-page report."""

    result: TrainResult | None
    report: RetrainReport


def _labels(frame: pd.DataFrame, target: str) -> np.ndarray:
    return frame[target].to_numpy(dtype=np.int64)


def _current_leads(training: TrainingSet, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    ledger = training.ledger
    if not len(ledger):
        return ledger
    recent = ledger[ledger[SCORED_AT] > as_of - pd.Timedelta(days=days)]
    return lead_fields(recent.drop(columns=["probability", LABEL]), training.target)


def retrain_from_ledger(
    ledger: pd.DataFrame,
    outcomes: pd.DataFrame,
    champion: Champion,
    *,
    model_name: str,
    as_of: datetime,
    export: pd.DataFrame | None = None,
    config: RetrainConfig | None = None,
    progress: Any = None,
) -> RetrainOutcome:
    """Build the point-in-time set, train (or recalibrate) a challenger, gate it, diff it."""
    cfg = config or RetrainConfig()
    schema = champion.schema
    target = schema.target
    moment = _as_utc(as_of)
    training = point_in_time_set(
        ledger,
        outcomes,
        target=target,
        as_of=moment,
        window_days=cfg.window_days,
        all_leads_observed=cfg.all_leads_observed,
    )
    if export is not None and not cfg.recalibrate_only:
        training = add_export(
            training,
            export,
            positive_label=schema.positive_label,
            id_column=schema.id_column,
            time_column=schema.time_column,
        )
    split = split_for_gate(training, champion.trained_at, gate_share=cfg.gate_share)
    gate_leads = lead_fields(split.gate, target)
    gate_y = _labels(split.gate, target) if len(split.gate) else np.array([], np.int64)
    gate_w = split.gate[WEIGHT].to_numpy(dtype=np.float64)
    mode: Mode = "recalibrate" if cfg.recalibrate_only else "retrain"
    gate_cfg = replace(cfg.gate, mode=mode)
    below = below_line_conversion(
        training.ledger[IS_MQL].to_numpy(bool) if len(training.ledger) else np.array([], bool),
        training.ledger[EXPLORATION].to_numpy(bool) if len(training.ledger) else np.array([], bool),
        training.ledger[SELECTION].to_numpy(float) if len(training.ledger) else np.array([]),
        training.ledger[LABEL].to_numpy(float) if len(training.ledger) else np.array([]),
        level=gate_cfg.level,
    )
    notes: list[str] = []
    if not below.observed:
        notes.append(
            "without exploration leads the challenger learns only from leads above the line"
            " (and the original export, if given); its ranking below the line is extrapolated"
        )

    def refused(reason: str) -> RetrainOutcome:
        gate = _refused(reason, gate_cfg, len(gate_y), 0.0, float(gate_y.sum()))
        report = RetrainReport(
            model_name,
            champion.version,
            mode,
            training.counts,
            gate,
            below_line=below,
            gate_from=split.gate_from,
            notes=tuple(notes),
        )
        return RetrainOutcome(None, report)

    n_gate_pos = int(gate_y.sum())
    if len(gate_y) < gate_cfg.min_leads or min(n_gate_pos, len(gate_y) - n_gate_pos) < (
        gate_cfg.min_per_outcome
    ):
        return refused(
            f"too few recent outcomes to judge: {len(gate_y)} labelled leads ({n_gate_pos}"
            f" converted) scored after the champion was trained; the gate needs"
            f" {gate_cfg.min_leads} leads and {gate_cfg.min_per_outcome} of each outcome, so wait"
            " for more outcomes or lengthen the period"
        )
    champion_gate = champion.pipeline.predict_proba(gate_leads)[:, 1]
    if cfg.recalibrate_only:
        recent = split.train[split.train[ORIGIN] == "ledger"]
        if champion.trained_at is not None:
            recent = recent[recent[SCORED_AT] > _as_utc(pd.Timestamp(champion.trained_at))]
        champion_auc = weighted_metrics(gate_y, champion_gate, gate_w)["roc_auc"]
        if champion.holdout_roc_auc - champion_auc > RANKING_HOLDS_WITHIN:
            return refused(
                f"the ranking no longer holds: the champion's ROC AUC on recent outcomes is"
                f" {champion_auc:.3f} against {champion.holdout_roc_auc:.3f} on its holdout (more"
                f" than {RANKING_HOLDS_WITHIN} lower), so refitting the calibrator is not enough;"
                " retrain fully (without --recalibrate-only)"
            )
        y_recent = _labels(recent, target)
        if len(recent) < 50 or min(int(y_recent.sum()), len(y_recent) - int(y_recent.sum())) < 5:
            return refused(
                f"too few recent outcomes to refit the calibrator: {len(recent)} labelled leads"
                " scored after the champion was trained besides the gate's; wait for more"
            )
        pipeline, method = recalibrate(
            champion.pipeline,
            lead_fields(recent, target),
            y_recent,
            weights=recent[WEIGHT].to_numpy(float),
        )
        result = recalibrated_result(
            pipeline,
            method,
            schema=schema,
            kind=champion.kind,
            champion_version=champion.version,
            holdout=gate_leads,
            holdout_y=gate_y,
            n_calibrated=len(recent),
        )
    else:
        excluded = [
            c.name
            for c in schema.columns
            if c.role.value == "excluded" and c.name in split.train.columns
        ]
        train_config = TrainConfig(
            target=target,
            positive="1",
            id_column=schema.id_column,
            # Scores sent without the lead's creation date (it is no feature) leave the time
            # column empty in the ledger: the challenger's holdout is then stratified.
            time_column=schema.time_column
            if schema.time_column
            and schema.time_column in split.train.columns
            and split.train[schema.time_column].notna().all()
            else None,
            exclude=tuple(excluded),
            weight_column=WEIGHT,
            seed=cfg.seed,
            candidates=cfg.candidates,
            cv_folds=cfg.cv_folds,
        )
        result = train_model(
            for_training(split.train, schema.id_column),
            train_config,
            progress or (lambda _: None),
        )
    challenger_gate = result.pipeline.predict_proba(gate_leads)[:, 1]
    current = _current_leads(training, moment, cfg.current_days)
    if not len(current):
        current = gate_leads
    champion_current = champion.pipeline.predict_proba(current)[:, 1]
    challenger_current = result.pipeline.predict_proba(current)[:, 1]
    shift = policy_shift(
        champion.policy_kind,
        champion.policy_params,
        champion.cutoff,
        gate_y,
        champion_gate,
        challenger_gate,
        gate_w,
        current_champion_proba=champion_current,
        current_challenger_proba=challenger_current,
    )
    gate = run_gate(
        gate_y,
        champion_gate,
        challenger_gate,
        weights=gate_w,
        champion_cutoff=champion.cutoff,
        challenger_cutoff=shift.challenger_cutoff,
        config=gate_cfg,
    )
    # Grades are placed on the current leads' scores: a fair sample of the leads coming in,
    # which the labelled leads (mostly MQLs) are not.
    grades = grade_changes(
        champion_current,
        challenger_current,
        champion_cutoff=champion.cutoff,
        champion_bands=champion.bands,
        challenger_cutoff=shift.challenger_cutoff,
        challenger_bands=policy_bands(challenger_current, shift.challenger_cutoff),
    )
    traits = trait_changes(
        trait_importance(champion.pipeline, gate_leads),
        trait_importance(result.pipeline, gate_leads),
    )
    report = RetrainReport(
        model_name,
        champion.version,
        mode,
        training.counts,
        gate,
        traits=traits,
        grades=grades,
        policy=shift,
        below_line=below,
        gate_from=split.gate_from,
        notes=tuple(notes),
    )
    return RetrainOutcome(result, report)
