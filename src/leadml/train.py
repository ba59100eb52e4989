"""Training: from a lead frame with outcomes to a calibrated, leak-free, evaluated pipeline.

Everything here works on in-memory frames; `leadml.tracking` writes the result to MLflow.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from leadml.data import (
    check_class_counts,
    check_training_frame,
    drop_open_leads,
    split_leads,
    target_vector,
)
from leadml.errors import DataError
from leadml.evaluate import gains_table, holdout_metrics
from leadml.explain import trait_importance
from leadml.features import LeadPreparer
from leadml.leakage import LeakageReport, find_leakage
from leadml.models import (
    CANDIDATES,
    DESCRIPTIONS,
    CandidateName,
    center_isotonic,
    fit_head,
    make_head,
)
from leadml.schema import (
    DATE_ORDERS,
    DEFAULT_PLACEHOLDERS,
    LeadSchema,
    Role,
    decide_date_reading,
    decide_date_readings,
    infer_schema,
)

#: Isotonic calibration needs many examples of both outcomes; below this, Platt's sigmoid.
ISOTONIC_MIN_ROWS = 2000
ISOTONIC_MIN_PER_CLASS = 200
#: Logistic regression is preferred when gradient boosting is not clearly better.
PREFER_SIMPLE_WITHIN = 0.005
#: Cross-validation looks at no more rows than this, so that selection stays quick.
CV_MAX_ROWS = 200_000
#: Probability quantiles kept with the model to place a new lead in the training distribution.
N_REFERENCE_QUANTILES = 1001

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    target: str
    positive: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    exclude: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    #: How day-month dates (01-02-2018) are read: auto, day-first or month-first.
    date_order: str = "auto"
    candidates: tuple[CandidateName, ...] = CANDIDATES
    cv_folds: int = 5
    holdout_share: float = 0.2
    calibration_share: float = 0.2
    seed: int = 0
    #: Column of per-lead sample weights (e.g. inverse selection probabilities from the ledger);
    #: used to fit, cross-validate and calibrate, never as a feature.
    weight_column: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "positive": self.positive,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "exclude": list(self.exclude),
            "keep": list(self.keep),
            "date_order": self.date_order,
            "candidates": list(self.candidates),
            "cv_folds": self.cv_folds,
            "holdout_share": self.holdout_share,
            "calibration_share": self.calibration_share,
            "seed": self.seed,
            "weight_column": self.weight_column,
        }


@dataclass(frozen=True)
class CandidateScore:
    name: str
    roc_auc: float
    pr_auc: float
    log_loss: float
    pr_auc_std: float
    fit_seconds: float


@dataclass
class TrainResult:
    """What one training produced; everything needed to log, register and score."""

    pipeline: Pipeline
    schema: LeadSchema
    model_kind: str
    selection: list[CandidateScore]
    selection_reason: str
    calibration_method: str
    metrics: dict[str, float]
    gains: pd.DataFrame
    holdout: pd.DataFrame
    holdout_y: np.ndarray
    holdout_proba: np.ndarray
    reference_quantiles: np.ndarray
    leakage: LeakageReport
    #: Which traits move the predicted chance, measured on the holdout (`trait_importance`).
    traits: pd.DataFrame
    config: TrainConfig
    positive_label: str
    split_sizes: dict[str, int]
    split_by_time: bool
    trained_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        """The machine-readable report (`--report-json`)."""
        return {
            "trained_at": self.trained_at,
            "target": self.schema.target,
            "positive_label": self.positive_label,
            "model": self.model_kind,
            "model_description": DESCRIPTIONS.get(self.model_kind, self.model_kind),
            "selection_reason": self.selection_reason,
            "calibration": self.calibration_method,
            "metrics": self.metrics,
            "cv": [vars(score) for score in self.selection],
            "split": {"by_time": self.split_by_time, **self.split_sizes},
            "columns_used": self.schema.feature_names,
            "date_readings": {
                spec.name: {"reading": spec.date_reading.value, "why": spec.date_reading_reason}
                for spec in self.schema.columns
                if spec.role is Role.DATETIME and spec.date_reading is not None
            },
            "traits": [
                {"field": t["field"], "share": round(t["share"], 4), "summary": t["summary"]}
                for t in self.traits.to_dict("records")
            ],
            "columns_excluded": [
                {
                    "column": spec.name,
                    "reason": spec.role.value,
                    "detail": spec.reason,
                    "evidence": dict(spec.evidence),
                }
                for spec in self.schema.dropped
            ],
            "columns_flagged": [
                {
                    "column": finding.column,
                    "reason": "leakage_suspect",
                    "detail": finding.reason,
                    "kept_by_user": finding.column in self.config.keep,
                    "evidence": dict(finding.evidence),
                }
                for finding in self.leakage.findings
                if finding.verdict == "warn" or finding.column in self.config.keep
            ],
            "warnings": list(self.schema.warnings),
            "gains": self.gains.to_dict(orient="records"),
            "seconds": round(self.seconds, 2),
        }


def _noop(_: str) -> None:
    return None


def _subsample(n_rows: int, y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if n_rows <= limit:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=limit, replace=False))


def cross_validate_candidates(
    X: np.ndarray,
    y: np.ndarray,
    preparer: LeadPreparer,
    candidates: Sequence[CandidateName],
    *,
    folds: int,
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> list[CandidateScore]:
    """Out-of-fold ROC AUC, PR AUC and log loss for each candidate (weighted when given)."""
    rows = _subsample(len(y), y, CV_MAX_ROWS, seed)
    X, y = X[rows], y[rows]
    w = None if sample_weight is None else sample_weight[rows]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    positive_rate = float(y.mean())
    scores = []
    for name in candidates:
        started = time.perf_counter()
        oof = np.zeros(len(y))
        fold_pr_auc = []
        for train_rows, test_rows in splitter.split(X, y):
            head = fit_head(
                clone(make_head(name, preparer, positive_rate, seed, len(train_rows))),
                X[train_rows],
                y[train_rows],
                preparer,
                sample_weight=None if w is None else w[train_rows],
            )
            oof[test_rows] = head.predict_proba(X[test_rows])[:, 1]
            fold_pr_auc.append(
                average_precision_score(
                    y[test_rows], oof[test_rows], sample_weight=None if w is None else w[test_rows]
                )
            )
        scores.append(
            CandidateScore(
                name=name,
                roc_auc=float(roc_auc_score(y, oof, sample_weight=w)),
                pr_auc=float(average_precision_score(y, oof, sample_weight=w)),
                log_loss=float(log_loss(y, np.clip(oof, 1e-6, 1 - 1e-6), sample_weight=w)),
                pr_auc_std=float(np.std(fold_pr_auc)),
                fit_seconds=time.perf_counter() - started,
            )
        )
    return scores


def select_candidate(scores: Sequence[CandidateScore]) -> tuple[str, str]:
    """The candidate with the best CV PR AUC, unless the logistic model is about as good.

    PR AUC ranks by how well converted leads rise to the top, which is what sales works from;
    log loss is not compared because re-weighted candidates are calibrated afterwards.
    """
    best = max(scores, key=lambda s: s.pr_auc)
    simple = next((s for s in scores if s.name == "logistic"), None)
    others = ", ".join(f"{s.name} {s.pr_auc:.3f}" for s in scores if s is not best)
    if (
        simple is not None
        and best is not simple
        and best.pr_auc - simple.pr_auc < PREFER_SIMPLE_WITHIN
    ):
        return simple.name, (
            f"logistic chosen: its CV PR AUC {simple.pr_auc:.3f} is within"
            f" {PREFER_SIMPLE_WITHIN} of {best.name}'s {best.pr_auc:.3f}, and it is easier to explain"
        )
    return best.name, (
        f"{best.name} chosen: best cross-validated PR AUC {best.pr_auc:.3f}"
        f" (± {best.pr_auc_std:.3f} across folds; others: {others or 'none'})"
    )


def calibration_method(y_calibrate: np.ndarray) -> str:
    per_class = min(int(y_calibrate.sum()), int(len(y_calibrate) - y_calibrate.sum()))
    if len(y_calibrate) >= ISOTONIC_MIN_ROWS and per_class >= ISOTONIC_MIN_PER_CLASS:
        return "isotonic"
    return "sigmoid"


def reference_quantiles(proba: np.ndarray) -> np.ndarray:
    return np.quantile(proba, np.linspace(0.0, 1.0, N_REFERENCE_QUANTILES))


def train_model(
    frame: pd.DataFrame, config: TrainConfig, progress: Progress = _noop
) -> TrainResult:
    """Split, infer the schema, guard against leakage, select, calibrate and evaluate."""
    # Multi-threaded BLAS on the small dense matrices of lead data is many times slower than
    # one thread (measured: 15 s against 0.3 s for one logistic fit on 9k leads, 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        return _train_model(frame, config, progress)


def sample_weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """The weights in `column` as floats, or None; refuses missing, zero or negative weights."""
    if column is None:
        return None
    weights = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(weights) | (weights <= 0)
    if bad.any():
        raise DataError(
            f"weight column {column!r} has {int(bad.sum())} empty, zero or negative values;"
            " every lead needs a positive weight"
        )
    return weights


def _train_model(frame: pd.DataFrame, config: TrainConfig, progress: Progress) -> TrainResult:
    started = time.perf_counter()
    weight_columns = (config.weight_column,) if config.weight_column else ()
    if config.date_order not in DATE_ORDERS:
        raise DataError(
            f"date order {config.date_order!r} is unknown; use one of {', '.join(DATE_ORDERS)}"
        )
    # Decided on every row, before the split, so the time order and all parts agree.
    readings = decide_date_readings(frame, config.date_order)
    if config.time_column is not None and config.time_column in frame.columns:
        readings[config.time_column] = decide_date_reading(
            frame[config.time_column], config.date_order
        )
    time_reading = readings[config.time_column].reading if config.time_column in readings else None
    check_training_frame(
        frame,
        config.target,
        id_column=config.id_column,
        time_column=config.time_column,
        named_columns=(*config.exclude, *config.keep, *weight_columns),
        time_reading=time_reading,
    )
    frame, n_open = drop_open_leads(frame, config.target)
    weights = sample_weights(frame, config.weight_column)
    if n_open:
        progress(f"left out {n_open:,} leads with no outcome yet (empty {config.target!r})")
    y, positive = target_vector(frame[config.target], config.positive)
    check_class_counts(y)
    split = split_leads(
        frame,
        y,
        time_column=config.time_column,
        holdout_share=config.holdout_share,
        calibration_share=config.calibration_share,
        seed=config.seed,
        time_reading=time_reading,
    )
    progress(
        f"split {len(frame):,} leads {'by time' if split.by_time else 'stratified'}:"
        f" {len(split.fit):,} fit, {len(split.calibrate):,} calibrate,"
        f" {len(split.holdout):,} holdout"
    )
    learn_rows = np.sort(np.concatenate([split.fit, split.calibrate]))
    schema = infer_schema(
        frame.iloc[learn_rows],
        config.target,
        positive,
        id_column=config.id_column,
        time_column=config.time_column,
        exclude=(*config.exclude, *weight_columns),
        placeholders=config.placeholders,
        date_order=config.date_order,
        date_readings=readings,
    )
    for spec in schema.columns:
        if spec.role is Role.DATETIME and spec.date_reading is not None:
            progress(f"dates in {spec.name!r}: {spec.date_reading_reason}")
    progress(f"schema: {len(schema.features)} features, {len(schema.dropped)} columns dropped")
    fit_frame = frame.iloc[split.fit]
    leakage = find_leakage(fit_frame, y[split.fit], schema, seed=config.seed)
    schema = leakage.apply(schema, keep=config.keep)
    if leakage.excluded():
        progress(f"leakage guard excluded: {', '.join(leakage.excluded())}")
    if not schema.features:
        raise DataError(
            "no usable feature columns are left after dropping ids, constants and leakage;"
            " check the export or use --keep COLUMN"
        )

    preparer = LeadPreparer(schema).fit()
    X_fit = preparer.transform(fit_frame)

    def part_weights(rows: np.ndarray) -> np.ndarray | None:
        return None if weights is None else weights[rows]

    scores = cross_validate_candidates(
        X_fit,
        y[split.fit],
        preparer,
        config.candidates,
        folds=config.cv_folds,
        seed=config.seed,
        sample_weight=part_weights(split.fit),
    )
    for score in scores:
        progress(
            f"cv {score.name}: ROC AUC {score.roc_auc:.3f}, PR AUC {score.pr_auc:.3f},"
            f" log loss {score.log_loss:.3f}"
        )
    chosen, reason = select_candidate(scores)
    progress(reason)

    positive_rate = float(np.average(y[split.fit], weights=part_weights(split.fit)))
    head = fit_head(
        make_head(chosen, preparer, positive_rate, config.seed, len(split.fit)),  # type: ignore[arg-type]
        X_fit,
        y[split.fit],
        preparer,
        sample_weight=part_weights(split.fit),
    )
    method = calibration_method(y[split.calibrate])
    calibrated = CalibratedClassifierCV(FrozenEstimator(head), method=method)
    with warnings.catch_warnings():
        # The weights are meant for the calibrator only: the frozen head is not refit.
        warnings.filterwarnings("ignore", message="Since FrozenEstimator", category=UserWarning)
        calibrated.fit(
            preparer.transform(frame.iloc[split.calibrate]),
            y[split.calibrate],
            sample_weight=part_weights(split.calibrate),
        )
    for member in calibrated.calibrated_classifiers_:
        member.calibrators = [
            center_isotonic(c) if isinstance(c, IsotonicRegression) else c
            for c in member.calibrators
        ]
    pipeline = Pipeline([("prepare", preparer), ("model", calibrated)])
    calibration = "centered isotonic" if method == "isotonic" else method
    progress(f"calibrated ({calibration}) on {len(split.calibrate):,} leads")

    holdout = frame.iloc[split.holdout].reset_index(drop=True)
    holdout_y = y[split.holdout]
    holdout_proba = pipeline.predict_proba(holdout)[:, 1]
    metrics = holdout_metrics(holdout_y, holdout_proba)
    progress(
        f"holdout: ROC AUC {metrics['roc_auc']:.3f}, PR AUC {metrics['pr_auc']:.3f},"
        f" ECE {metrics['ece']:.3f}, lift top decile {metrics['lift_top_decile']:.2f}"
    )
    return TrainResult(
        pipeline=pipeline,
        schema=schema,
        model_kind=chosen,
        selection=scores,
        selection_reason=reason,
        calibration_method=calibration,
        metrics=metrics,
        gains=gains_table(holdout_y, holdout_proba),
        holdout=holdout,
        holdout_y=holdout_y,
        holdout_proba=holdout_proba,
        reference_quantiles=reference_quantiles(holdout_proba),
        leakage=leakage,
        traits=trait_importance(pipeline, holdout),
        config=config,
        positive_label=positive,
        split_sizes={
            "open_leads_left_out": n_open,
            "fit": len(split.fit),
            "calibrate": len(split.calibrate),
            "holdout": len(split.holdout),
        },
        split_by_time=split.by_time,
        seconds=time.perf_counter() - started,
    )
