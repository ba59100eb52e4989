"""Training: from a lead frame with outcomes to a calibrated, leak-free, evaluated pipeline.

Everything here works on in-memory frames; `leadml.tracking` writes the result to MLflow.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import early_stopping

# Platt's sigmoid exactly as CalibratedClassifierCV fits it (the fast path replays its a_, b_).
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from leadml.data import (
    check_class_counts,
    check_training_frame,
    datetime_series,
    drop_open_leads,
    release_unused_memory,
    sample_positions,
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
    DEFAULT_TREE_SHAPE,
    DESCRIPTIONS,
    MAX_TREES,
    TREE_SHAPES,
    CandidateName,
    center_isotonic,
    fit_head,
    head_output,
    make_head,
    native_from_one_hot,
    one_hot_matrix,
)
from leadml.schema import (
    DATE_ORDERS,
    DEFAULT_PLACEHOLDERS,
    LeadSchema,
    Role,
    blank_placeholders,
    decide_date_reading,
    decide_date_readings,
    infer_schema,
    normalise_placeholders,
)

#: Isotonic calibration needs many examples of both outcomes; below this, Platt's sigmoid.
ISOTONIC_MIN_ROWS = 2000
ISOTONIC_MIN_PER_CLASS = 200
#: Logistic regression is preferred when gradient boosting is not clearly better.
PREFER_SIMPLE_WITHIN = 0.005
#: Every decision made by cross-validation (the candidate, its number of trees, the time features,
#: each many-valued column, the calibrator on out-of-fold outputs) looks at no more leads than
#: this: above it, a seeded random sample of the leads learnt from (`TrainConfig.seed`). The final
#: model is still fitted on all of them. 50,000 leads give a CV PR AUC to within about +-0.005 and
#: 40,000 out-of-fold predictions to calibrate on; cross-validating 800,000 would take minutes.
CV_MAX_ROWS = 50_000
#: One-hot categories (`category_encoding_decision`) are tried only up to this many
#: cross-validated leads: their cross-validation costs about a quarter of a training (10 s of CPU
#: on 50,000 demo leads, where it lost), and `train_model` has 30 s for 50,000 leads.
ONE_HOT_MAX_ROWS = 20_000
#: LightGBM folds stop growing trees once out-of-fold log loss has not improved for this many.
EARLY_STOPPING_ROUNDS = 50
#: A questioned feature (the time column's parts, a many-valued text column) stays only if it
#: lowers the out-of-fold log loss by more than this many standard errors of the per-lead
#: difference (a paired, one-sided test on the same leads, `paired_feature_test`): a noise
#: column wins half of all plain comparisons, and fold-to-fold PR AUC noise is larger than any
#: fixed small margin on a few thousand leads.
FEATURE_MIN_Z = 2.0
#: A text column with more distinct values than this among the leads learnt from (a landing-page
#: id, a referrer URL, a sales rep) is a feature only when cross-validation says it helps: most of
#: its values are rare, so a model can fit noise in them, and new values keep arriving.
HIGH_CARDINALITY_VALUES = 50
#: Probability quantiles kept with the model to place a new lead in the training distribution.
N_REFERENCE_QUANTILES = 1001

Progress = Callable[[str], None]
#: How the progress message that starts the cross-validation begins: from there on the main thread
#: mostly waits for LightGBM, so a caller may start its own Python work beside (the CLI opens the
#: MLflow store then; beside the schema and the leakage guard it took the GIL from them).
CROSS_VALIDATING = "cross-validating on"


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
    seed: int = 0
    #: Column of per-lead sample weights (e.g. inverse selection probabilities from the ledger);
    #: used to fit, cross-validate and calibrate, never as a feature.
    weight_column: str | None = None
    #: Cross-validation (and every decision it makes) samples the leads down to this many.
    cv_max_rows: int = CV_MAX_ROWS

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
            "seed": self.seed,
            "weight_column": self.weight_column,
            "cv_max_rows": self.cv_max_rows,
        }


@dataclass(frozen=True)
class CandidateScore:
    name: str
    roc_auc: float
    pr_auc: float
    log_loss: float
    pr_auc_std: float
    fit_seconds: float
    #: LightGBM: the number of trees cross-validation kept (the final model grows as many).
    n_estimators: int | None = None
    #: LightGBM: the tree shape (`TREE_SHAPES`) with the lowest out-of-fold log loss, and why.
    tree_shape: str | None = None
    tree_shape_reason: str | None = None
    #: LightGBM: categories as native splits or one-hot columns (`category_encoding_decision`).
    category_encoding: str | None = None
    category_encoding_reason: str | None = None


@dataclass(frozen=True)
class TimeFeatureDecision:
    """Whether the time column's weekday, hour and month are features, and why."""

    column: str
    kept: bool
    pr_auc_with: float
    pr_auc_without: float
    #: Mean time-ordered out-of-fold log-loss reduction a lead with them, and in standard errors.
    log_loss_gain: float
    z: float
    reason: str


@dataclass(frozen=True)
class ColumnDecision:
    """Whether a high-cardinality text column is a feature, and why."""

    column: str
    distinct_values: int
    kept: bool
    pr_auc_with: float
    pr_auc_without: float
    #: Mean out-of-fold log-loss reduction a lead with the column, and in standard errors.
    log_loss_gain: float
    z: float
    reason: str


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
    #: Set when a time column was given and could be a feature (see `time_feature_decision`).
    time_features: TimeFeatureDecision | None = None
    #: One per high-cardinality text column (see `HIGH_CARDINALITY_VALUES`).
    column_decisions: tuple[ColumnDecision, ...] = ()
    trained_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    seconds: float = 0.0
    #: CPU time of the process while training (all threads): on a shared machine wall time
    #: grows with the load, this much less.
    cpu_seconds: float = 0.0

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
            "time_features": None if self.time_features is None else vars(self.time_features),
            "column_decisions": [vars(decision) for decision in self.column_decisions],
            "columns_used": self.schema.feature_names,
            "date_readings": {
                spec.name: {"reading": spec.date_reading.value, "why": spec.date_reading_reason}
                for spec in self.schema.columns
                # The time column keeps its reading when its parts are not used as features.
                if spec.date_reading is not None
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
            "cpu_seconds": round(self.cpu_seconds, 2),
        }


def _noop(_: str) -> None:
    return None


def cv_folds(
    y: np.ndarray, folds: int, seed: int, time_order: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) per fold.

    Without time: stratified, shuffled k-fold. With `time_order` (row positions, oldest first):
    an expanding window, so that selection sees the shift the holdout has. The rows are cut into
    `folds + 1` consecutive blocks and fold i learns from blocks 0..i and is tested on block
    i + 1; the oldest block is never tested. Folds whose parts lack an outcome are skipped.
    """
    if time_order is None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    blocks = np.array_split(time_order, folds + 1)
    pairs = []
    for i in range(1, len(blocks)):
        train, test = np.concatenate(blocks[:i]), blocks[i]
        if len(np.unique(y[train])) == 2 and len(np.unique(y[test])) == 2:
            pairs.append((train, test))
    if not pairs:
        raise DataError(
            "no time-ordered fold has both outcomes in its past and its future;"
            " train without --time-column or with more history"
        )
    return pairs


@dataclass
class CandidateFolds:
    """One candidate's cross-validation: its scores, and its out-of-fold outputs to calibrate on."""

    score: CandidateScore
    #: `head_output` of the fold models on the rows each fold tested (aligned with `tested`).
    output: np.ndarray
    tested: np.ndarray
    n_estimators: int | None
    #: The fold models' own P(converted) on the tested rows (aligned with `tested`).
    proba: np.ndarray


#: Folds are fitted side by side on this many threads (LightGBM and the linear algebra release
#: Python's lock while they work): each fold's model is the same as fitted alone, one core each.
FOLD_THREADS = max(1, min(2, os.cpu_count() or 1))


@dataclass
class _FoldJob:
    """The folds of one cross-validation (a candidate, in one tree shape), fitting in a pool."""

    name: CandidateName
    shape: str | None
    futures: list[Future[tuple[Any, float, float]]]

    def results(self) -> tuple[list[Any], float]:
        """Each fold's result in the folds' order, and the seconds from the first fold's start
        to the last one's end."""
        done = [future.result() for future in self.futures]
        seconds = max(end for _, _, end in done) - min(start for _, start, _ in done)
        return [result for result, _, _ in done], seconds


def _submit_folds(
    pool: ThreadPoolExecutor,
    fit_fold: Callable[[tuple[np.ndarray, np.ndarray]], Any],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
) -> list[Future[tuple[Any, float, float]]]:
    def timed(pair: tuple[np.ndarray, np.ndarray]) -> tuple[Any, float, float]:
        started = time.perf_counter()
        return fit_fold(pair), started, time.perf_counter()

    return [pool.submit(timed, pair) for pair in pairs]


def _lightgbm_fit_fold(
    X: np.ndarray,
    y: np.ndarray,
    preparer: LeadPreparer,
    seed: int,
    sample_weight: np.ndarray | None,
    shape: str,
    one_hot: bool = False,
) -> Callable[[tuple[np.ndarray, np.ndarray]], tuple[Any, np.ndarray, float]]:
    """Fits one LightGBM fold with early stopping on its test rows: (model, loss curve, weight).
    With `one_hot`, X holds `one_hot_matrix` columns: plain numbers to LightGBM."""

    def fit_fold(pair: tuple[np.ndarray, np.ndarray]) -> tuple[Any, np.ndarray, float]:
        train_rows, test_rows = pair
        head = fit_head(
            make_head("lightgbm", preparer, seed, len(train_rows), shape=shape),
            X[train_rows],
            y[train_rows],
            preparer,
            sample_weight=None if sample_weight is None else sample_weight[train_rows],
            eval_X=(X[test_rows],),
            eval_y=(y[test_rows],),
            eval_sample_weight=None if sample_weight is None else [sample_weight[test_rows]],
            callbacks=[early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            **({"categorical_feature": "auto"} if one_hot else {}),
        )
        curve = np.asarray(head.evals_result_["valid_0"]["binary_logloss"], dtype=float)
        weight = len(test_rows) if sample_weight is None else sample_weight[test_rows].sum()
        return head, curve, float(weight)

    return fit_fold


def _lightgbm_outputs(
    X: np.ndarray,
    fitted: Sequence[tuple[Any, np.ndarray, float]],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Out-of-fold `head_output` per fold at the number of trees that minimises the summed
    out-of-fold log loss (one number for all folds, as `lightgbm.cv` picks it)."""
    models = [head for head, _, _ in fitted]
    curves = [(curve, weight) for _, curve, weight in fitted]
    longest = max(len(curve) for curve, _ in curves)
    # A fold that stopped early keeps its last loss: its loss was no longer falling.
    total = sum(
        np.pad(curve, (0, longest - len(curve)), mode="edge") * weight for curve, weight in curves
    )
    n_trees = int(np.argmin(total)) + 1
    outputs = [
        head_output(model, X[test], num_iteration=n_trees)
        for model, (_, test) in zip(models, pairs, strict=True)
    ]
    return outputs, n_trees


def _scored_folds(
    name: str,
    outputs: Sequence[tuple[np.ndarray, np.ndarray]],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    w: np.ndarray | None,
    seconds: float,
    n_trees: int | None = None,
    shape: str | None = None,
) -> CandidateFolds:
    """A candidate's out-of-fold scores from its fold models' outputs (weighted when given)."""
    tested = np.concatenate([test for _, test in pairs])
    output = np.concatenate([fold_output for fold_output, _ in outputs])
    proba = np.concatenate([fold_proba for _, fold_proba in outputs])
    y_tested = y[tested]
    w_tested = None if w is None else w[tested]
    fold_pr_auc = [
        average_precision_score(y[test], fold_proba, sample_weight=None if w is None else w[test])
        for (_, test), (_, fold_proba) in zip(pairs, outputs, strict=True)
    ]
    score = CandidateScore(
        name=name,
        # Folds are scored together, as one out-of-fold prediction per tested lead.
        roc_auc=float(roc_auc_score(y_tested, proba, sample_weight=w_tested)),
        pr_auc=float(average_precision_score(y_tested, proba, sample_weight=w_tested)),
        log_loss=float(log_loss(y_tested, np.clip(proba, 1e-6, 1 - 1e-6), sample_weight=w_tested)),
        pr_auc_std=float(np.std(fold_pr_auc)),
        fit_seconds=seconds,
        n_estimators=n_trees,
        tree_shape=shape,
    )
    return CandidateFolds(score, output, tested, n_trees, proba)


def choose_tree_shape(by_shape: Sequence[CandidateFolds]) -> CandidateFolds:
    """The LightGBM shape with the lowest out-of-fold log loss: the same loss early stopping
    minimises, on the same folds, so it weighs depth against the number of trees fairly. The
    shapes are few and equally plausible a priori, so the plain minimum is the rule."""
    best = min(by_shape, key=lambda folds: folds.score.log_loss)
    others = ", ".join(
        f"{f.score.tree_shape} {f.score.log_loss:.4f} ({f.n_estimators} trees)"
        for f in by_shape
        if f is not best
    )
    reason = (
        f"{best.score.tree_shape} chosen: out-of-fold log loss {best.score.log_loss:.4f}"
        f" with {best.n_estimators} trees" + (f" (others: {others})" if others else "")
    )
    best.score = replace(
        best.score,
        tree_shape_reason=reason,
        fit_seconds=sum(f.score.fit_seconds for f in by_shape),
    )
    return best


#: How LightGBM sees a text column's categories: its own categorical splits (a split sends a set
#: of categories each way) or one 0/1 column per category (a split takes one category out).
NATIVE_CATEGORIES = "native categorical splits"
ONE_HOT_CATEGORIES = "one-hot columns"


def category_encoding_decision(
    native: CandidateFolds, one_hot: CandidateFolds
) -> tuple[CandidateFolds, str]:
    """The encoding with the lower out-of-fold log loss (same folds, same leads, same tree
    shape), as the tree shape is chosen; native categories when equal. Measured on every
    benchmark export: one-hot columns fit X Education's many small text columns better, native
    splits the demo data's (bench/README.md, "Blends and bags")."""
    one_hot_wins = one_hot.score.log_loss < native.score.log_loss
    best, other = (one_hot, native) if one_hot_wins else (native, one_hot)
    reason = (
        # Five digits: on X Education seed 0 the two differ in the fifth.
        f"categories as {best.score.category_encoding}: out-of-fold log loss"
        f" {best.score.log_loss:.5f} with {best.n_estimators} trees"
        f" (as {other.score.category_encoding}: {other.score.log_loss:.5f},"
        f" {other.n_estimators} trees)"
    )
    best.score = replace(
        best.score,
        category_encoding_reason=reason,
        fit_seconds=native.score.fit_seconds + one_hot.score.fit_seconds,
    )
    return best, reason


def cross_validate_candidates(
    X: np.ndarray,
    y: np.ndarray,
    preparer: LeadPreparer,
    candidates: Sequence[CandidateName],
    *,
    folds: int,
    seed: int,
    time_order: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    tree_shapes: Sequence[str] = tuple(TREE_SHAPES),
    one_hot: bool = False,
) -> list[CandidateFolds]:
    """Out-of-fold ROC AUC, PR AUC and log loss for each candidate (weighted when given), and
    its out-of-fold outputs. LightGBM is cross-validated in each of `tree_shapes` and the one
    with the lowest out-of-fold log loss is kept (`choose_tree_shape`); with `one_hot`, on the
    categories as one-hot columns (`models.one_hot_matrix`) instead of native splits.

    `time_order` (positions into X, oldest first) makes the folds time-ordered (`cv_folds`).
    """
    w = sample_weight
    pairs = cv_folds(y, folds, seed, time_order)
    X_trees = one_hot_matrix(preparer, X) if one_hot and "lightgbm" in candidates else X

    def fold_fitter(name: CandidateName) -> Callable[[tuple[np.ndarray, np.ndarray]], Any]:
        def fit(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            train_rows, test_rows = pair
            head = fit_head(
                make_head(name, preparer, seed, len(train_rows)),
                X[train_rows],
                y[train_rows],
                preparer,
                sample_weight=None if w is None else w[train_rows],
            )
            return head_output(head, X[test_rows])

        return fit

    # Every fold of every candidate and shape goes into one pool, LightGBM's (the longest) first,
    # so both threads stay busy to the end instead of idling at the tail of each candidate's folds.
    # Each fold is fitted as it would be alone, so the results do not depend on the order.
    jobs: list[_FoldJob] = []
    with ThreadPoolExecutor(max_workers=FOLD_THREADS, thread_name_prefix="cv-fold") as pool:
        for name in sorted(candidates, key=lambda name: name != "lightgbm"):
            if name == "lightgbm":
                for shape in tree_shapes:
                    fit_lightgbm = _lightgbm_fit_fold(X_trees, y, preparer, seed, w, shape, one_hot)
                    jobs.append(_FoldJob(name, shape, _submit_folds(pool, fit_lightgbm, pairs)))
            else:
                jobs.append(_FoldJob(name, None, _submit_folds(pool, fold_fitter(name), pairs)))
        results = []
        for name in candidates:
            if name == "lightgbm":
                by_shape = []
                for job in (job for job in jobs if job.name == name):
                    fitted, seconds = job.results()
                    outputs, n_trees = _lightgbm_outputs(X_trees, fitted, pairs)
                    by_shape.append(
                        _scored_folds(name, outputs, pairs, y, w, seconds, n_trees, job.shape)
                    )
                shaped = choose_tree_shape(by_shape)
                encoding = ONE_HOT_CATEGORIES if one_hot else NATIVE_CATEGORIES
                shaped.score = replace(shaped.score, category_encoding=encoding)
                results.append(shaped)
                continue
            [job] = (job for job in jobs if job.name == name)
            outputs, seconds = job.results()
            results.append(_scored_folds(name, outputs, pairs, y, w, seconds))
    return results


def select_candidate(scores: Sequence[CandidateScore]) -> tuple[str, str]:
    """The candidate with the best CV PR AUC, unless the logistic model is about as good.

    PR AUC ranks by how well converted leads rise to the top, which is what sales works from.
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


def _time_is_a_feature(schema: LeadSchema) -> bool:
    return schema.time_column is not None and schema.column(schema.time_column).is_feature


def _without_time_features(schema: LeadSchema) -> LeadSchema:
    column = str(schema.time_column)
    reason = "the time column splits and orders the folds; its parts did not help as features"
    spec = replace(schema.column(column), role=Role.EXCLUDED, reason=reason)
    return replace(schema, columns=tuple(spec if c.name == column else c for c in schema.columns))


def time_feature_decision(
    column: str,
    y_tested: np.ndarray,
    with_time: CandidateFolds,
    without_time: CandidateFolds,
    w_tested: np.ndarray | None = None,
) -> TimeFeatureDecision:
    """Keep the time column's parts as features only when the time-ordered CV says they help, by
    the paired test every questioned feature passes (`paired_feature_test`): a month the model
    barely saw has to be extrapolated, so they must earn their place."""
    test = paired_feature_test(y_tested, with_time, without_time, w_tested)
    reason = (
        f"time features of {column!r} (weekday, hour, month)"
        f" {'kept' if test.kept else 'not used'}: {test.explanation('them', ordered=True)}"
    )
    return TimeFeatureDecision(
        column,
        test.kept,
        with_time.score.pr_auc,
        without_time.score.pr_auc,
        test.log_loss_gain,
        test.z,
        reason,
    )


def high_cardinality_columns(
    schema: LeadSchema, frame: pd.DataFrame, keep: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """(column, distinct values) of the text features with more than `HIGH_CARDINALITY_VALUES`
    distinct values in `frame`, most distinct first; columns the user keeps are not questioned."""
    placeholders = normalise_placeholders(schema.placeholders)
    found = []
    for spec in schema.features:
        if spec.role is not Role.CATEGORICAL or spec.name in keep:
            continue
        distinct = int(blank_placeholders(frame[spec.name], placeholders).nunique())
        if distinct > HIGH_CARDINALITY_VALUES:
            found.append((spec.name, distinct))
    return sorted(found, key=lambda pair: -pair[1])


def without_column(schema: LeadSchema, column: str, reason: str) -> LeadSchema:
    return schema.with_roles({column: (Role.EXCLUDED, reason, {})})


def paired_log_loss_gain(
    y: np.ndarray, with_it: np.ndarray, without_it: np.ndarray, w: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean per-lead log-loss reduction of `with_it` over `without_it` (probabilities for the
    same leads) and its standard error; weighted when `w` is given."""

    def per_lead(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    gain = per_lead(without_it) - per_lead(with_it)
    weights = np.ones_like(gain) if w is None else np.asarray(w, dtype=float)
    mean = float(np.average(gain, weights=weights))
    variance = float(np.average((gain - mean) ** 2, weights=weights))
    n_effective = weights.sum() ** 2 / (weights**2).sum()
    return mean, float(np.sqrt(variance / n_effective))


@dataclass(frozen=True)
class PairedTest:
    """Out-of-fold log loss with a feature against without it, on the same leads."""

    log_loss_gain: float
    z: float
    kept: bool
    pr_auc_with: float
    pr_auc_without: float

    def explanation(self, it: str, ordered: bool) -> str:
        return (
            f"with {it} the {'time-ordered ' if ordered else ''}CV log loss is lower by"
            f" {self.log_loss_gain:.4f} a lead, {self.z:.1f} standard errors"
            f" ({'more' if self.kept else 'not more'} than {FEATURE_MIN_Z:g} needed);"
            f" CV PR AUC {self.pr_auc_with:.3f} with {it}, {self.pr_auc_without:.3f} without"
        )


def paired_feature_test(
    y_tested: np.ndarray,
    with_it: CandidateFolds,
    without_it: CandidateFolds,
    w_tested: np.ndarray | None = None,
) -> PairedTest:
    """Keep a questioned feature only when it lowers out-of-fold log loss by more than
    `FEATURE_MIN_Z` standard errors (both CVs test the same leads in the same order)."""
    if not np.array_equal(with_it.tested, without_it.tested):
        raise ValueError("the two cross-validations tested different leads")
    gain, error = paired_log_loss_gain(y_tested, with_it.proba, without_it.proba, w_tested)
    z = gain / error if error > 0 else 0.0
    return PairedTest(
        round(gain, 6),
        round(z, 3),
        z > FEATURE_MIN_Z,
        with_it.score.pr_auc,
        without_it.score.pr_auc,
    )


def column_decision(
    column: str,
    distinct: int,
    y_tested: np.ndarray,
    with_it: CandidateFolds,
    without_it: CandidateFolds,
    ordered: bool,
    w_tested: np.ndarray | None = None,
) -> ColumnDecision:
    """Keep a high-cardinality column only when it passes `paired_feature_test`."""
    test = paired_feature_test(y_tested, with_it, without_it, w_tested)
    reason = (
        f"{column!r} ({distinct:,} distinct values) {'kept' if test.kept else 'not used'}:"
        f" {test.explanation('it', ordered)}"
    )
    return ColumnDecision(
        column,
        distinct,
        test.kept,
        test.pr_auc_with,
        test.pr_auc_without,
        test.log_loss_gain,
        test.z,
        reason,
    )


def calibration_method(y_calibrate: np.ndarray) -> str:
    per_class = min(int(y_calibrate.sum()), int(len(y_calibrate) - y_calibrate.sum()))
    if len(y_calibrate) >= ISOTONIC_MIN_ROWS and per_class >= ISOTONIC_MIN_PER_CLASS:
        return "isotonic"
    return "sigmoid"


def fit_calibrator(
    output: np.ndarray, y: np.ndarray, method: str, sample_weight: np.ndarray | None = None
) -> Any:
    """The calibrator `CalibratedClassifierCV` would fit on these head outputs: isotonic
    (clipped, then centred, see `center_isotonic`) or Platt's sigmoid."""
    if method == "isotonic":
        isotonic = IsotonicRegression(out_of_bounds="clip").fit(output, y, sample_weight)
        return center_isotonic(isotonic)
    return _SigmoidCalibration().fit(output, y, sample_weight)


def calibrated_on(head: Any, calibrator: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """`CalibratedClassifierCV(FrozenEstimator(head))` whose calibrator is `calibrator` (fitted
    out of fold), in the shape scoring, the fast path and the explainer read."""
    # Fitting needs some leads of both outcomes; the calibrator it fits is replaced right away.
    rows = np.r_[np.flatnonzero(y == 1)[:50], np.flatnonzero(y == 0)[:50]]
    method = "isotonic" if isinstance(calibrator, IsotonicRegression) else "sigmoid"
    calibrated = CalibratedClassifierCV(FrozenEstimator(head), method=method)
    calibrated.fit(X[rows], y[rows])
    calibrated.calibrated_classifiers_[0].calibrators = [calibrator]
    return calibrated


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


def check_training_input(frame: pd.DataFrame, config: TrainConfig) -> None:
    """The checks `train_model` starts with, for a caller that wants a refusal before it reports
    progress: the named columns exist, the time column holds dates, the outcome has two values
    and enough of each."""
    time_reading = (
        decide_date_reading(frame[config.time_column], config.date_order).reading
        if config.time_column is not None
        and config.time_column in frame.columns
        and config.date_order in DATE_ORDERS
        else None
    )
    check_training_frame(
        frame,
        config.target,
        id_column=config.id_column,
        time_column=config.time_column,
        named_columns=(
            *config.exclude,
            *config.keep,
            *((config.weight_column,) if config.weight_column else ()),
        ),
        time_reading=time_reading,
    )
    frame, _ = drop_open_leads(frame, config.target)
    y, _ = target_vector(frame[config.target], config.positive)
    check_class_counts(y)


def _train_model(frame: pd.DataFrame, config: TrainConfig, progress: Progress) -> TrainResult:
    started, started_cpu = time.perf_counter(), time.process_time()
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
        calibration_share=0.0,
        seed=config.seed,
        time_reading=time_reading,
    )
    learn_rows = np.sort(np.concatenate([split.fit, split.calibrate]))
    progress(
        f"split {len(frame):,} leads {'by time' if split.by_time else 'stratified'}:"
        f" {len(learn_rows):,} to learn from, {len(split.holdout):,} holdout"
    )
    learn_frame = frame.iloc[learn_rows]
    schema = infer_schema(
        learn_frame,
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
    leakage = find_leakage(learn_frame, y[learn_rows], schema, seed=config.seed)
    schema = leakage.apply(schema, keep=config.keep)
    if leakage.excluded():
        progress(f"leakage guard excluded: {', '.join(leakage.excluded())}")
    if not schema.features:
        raise DataError(
            "no usable feature columns are left after dropping ids, constants and leakage;"
            " check the export or use --keep COLUMN"
        )

    preparer = LeadPreparer(schema).fit()
    y_learn = y[learn_rows]
    w_learn = None if weights is None else weights[learn_rows]
    cv_rows = sample_positions(len(y_learn), config.cv_max_rows, config.seed)
    # Only the sampled leads are prepared for the decisions; all of them once, for the final fit.
    cv_frame = learn_frame if len(cv_rows) == len(learn_frame) else learn_frame.iloc[cv_rows]
    y_cv = y_learn[cv_rows]
    w_cv = None if w_learn is None else w_learn[cv_rows]
    time_order = None
    if split.by_time:
        moments = datetime_series(cv_frame[config.time_column], time_reading)
        time_order = np.argsort(moments.to_numpy(dtype="datetime64[ns]"), kind="stable")
    sampled = (
        f"a random sample of {len(cv_rows):,} of the {len(y_learn):,} leads"
        if len(cv_rows) < len(y_learn)
        else f"{len(cv_rows):,} leads"
    )
    progress(
        f"{CROSS_VALIDATING} {sampled}"
        f" ({'time-ordered, expanding window' if split.by_time else 'stratified'},"
        f" {config.cv_folds} folds)"
    )
    cv_preparer, cv_matrix = preparer, preparer.transform(cv_frame)
    folds = cross_validate_candidates(
        cv_matrix,
        y_cv,
        preparer,
        config.candidates,
        folds=config.cv_folds,
        seed=config.seed,
        time_order=time_order,
        sample_weight=w_cv,
    )
    scores = [f.score for f in folds]
    for score in scores:
        progress(
            f"cv {score.name}: ROC AUC {score.roc_auc:.3f}, PR AUC {score.pr_auc:.3f},"
            f" log loss {score.log_loss:.3f}"
        )
    chosen, reason = select_candidate(scores)
    progress(reason)
    chosen_folds = next(f for f in folds if f.score.name == chosen)
    # Every cross-validation below uses the same folds, so it tests the same leads in the same
    # order (`paired_feature_test` checks it): their outcomes and weights are these.
    y_tested = y_cv[chosen_folds.tested]
    w_tested = None if w_cv is None else w_cv[chosen_folds.tested]
    chosen_shape = chosen_folds.score.tree_shape or DEFAULT_TREE_SHAPE
    if chosen_folds.score.tree_shape_reason:
        progress(chosen_folds.score.tree_shape_reason)

    def cross_validate_chosen(candidate_schema: LeadSchema) -> tuple[LeadPreparer, CandidateFolds]:
        candidate_preparer = LeadPreparer(candidate_schema).fit()
        [candidate_folds] = cross_validate_candidates(
            candidate_preparer.transform(cv_frame),
            y_cv,
            candidate_preparer,
            (chosen,),  # type: ignore[arg-type]
            folds=config.cv_folds,
            seed=config.seed,
            time_order=time_order,
            sample_weight=w_cv,
            # A feature is questioned with the trees already chosen: one question at a time.
            tree_shapes=(chosen_shape,),
        )
        return candidate_preparer, candidate_folds

    time_features = None
    if time_order is not None and _time_is_a_feature(schema):
        without = _without_time_features(schema)
        preparer_without, folds_without = cross_validate_chosen(without)
        time_features = time_feature_decision(
            str(config.time_column), y_tested, chosen_folds, folds_without, w_tested
        )
        progress(time_features.reason)
        if not time_features.kept:
            schema, preparer, chosen_folds = without, preparer_without, folds_without

    decisions = []
    for column, distinct in high_cardinality_columns(schema, learn_frame, config.keep):
        if len(schema.features) == 1:
            break  # the last feature stays, whatever it is
        without = without_column(schema, column, "")
        preparer_without, folds_without = cross_validate_chosen(without)
        decision = column_decision(
            column,
            distinct,
            y_tested,
            chosen_folds,
            folds_without,
            time_order is not None,
            w_tested,
        )
        decisions.append(decision)
        progress(decision.reason)
        if not decision.kept:
            schema = without_column(schema, column, decision.reason)
            preparer, chosen_folds = preparer_without, folds_without

    one_hot = False
    if chosen == "lightgbm" and preparer.categorical_indices_:
        if len(y_cv) > ONE_HOT_MAX_ROWS:
            encoding_reason = (
                f"categories as {NATIVE_CATEGORIES}: one-hot columns are tried only up to"
                f" {ONE_HOT_MAX_ROWS:,} cross-validated leads (the training-time budget)"
            )
        else:
            [one_hot_folds] = cross_validate_candidates(
                cv_matrix if preparer is cv_preparer else preparer.transform(cv_frame),
                y_cv,
                preparer,
                ("lightgbm",),
                folds=config.cv_folds,
                seed=config.seed,
                time_order=time_order,
                sample_weight=w_cv,
                tree_shapes=(chosen_shape,),
                one_hot=True,
            )
            chosen_folds, encoding_reason = category_encoding_decision(chosen_folds, one_hot_folds)
            one_hot = chosen_folds is one_hot_folds
        progress(encoding_reason)
        # The report's CV row of LightGBM says how its categories were seen and why.
        scores = [
            replace(
                score,
                category_encoding=chosen_folds.score.category_encoding,
                category_encoding_reason=encoding_reason,
            )
            if score.name == "lightgbm"
            else score
            for score in scores
        ]

    # When the CV looked at every lead learnt from with the preparer kept, its matrix is the one.
    reuse = preparer is cv_preparer and cv_frame is learn_frame
    X_learn = cv_matrix if reuse else preparer.transform(learn_frame)
    del cv_matrix
    # On a million leads the frame of the leads learnt from is a few hundred MB: let it go before
    # LightGBM builds its own copy of the data (the CV sample is small above CV_MAX_ROWS).
    del learn_frame
    release_unused_memory()
    head = fit_head(
        make_head(
            chosen,  # type: ignore[arg-type]
            preparer,
            config.seed,
            len(y_learn),
            n_estimators=chosen_folds.n_estimators or MAX_TREES,
            shape=chosen_shape,
        ),
        one_hot_matrix(preparer, X_learn) if one_hot else X_learn,
        y_learn,
        preparer,
        sample_weight=w_learn,
        **({"categorical_feature": "auto"} if one_hot else {}),
    )
    if one_hot:
        # Written back onto the prepared columns: one booster with native categorical splits
        # and the same margins, so scoring, reasons and every saved format stay as they are.
        head = native_from_one_hot(head, preparer, X_learn, y_learn)
    method = calibration_method(y_tested)
    calibrator = fit_calibrator(chosen_folds.output, y_tested, method, w_tested)
    pipeline = Pipeline(
        [("prepare", preparer), ("model", calibrated_on(head, calibrator, X_learn, y_learn))]
    )
    del X_learn
    calibration = "centered isotonic" if method == "isotonic" else method
    progress(
        f"fitted on all {len(y_learn):,} non-holdout leads; calibrated ({calibration}) on"
        f" {len(y_tested):,} out-of-fold predictions"
    )

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
        traits=trait_importance(pipeline, holdout, seed=config.seed),
        config=config,
        positive_label=positive,
        split_sizes={
            "open_leads_left_out": n_open,
            "fit": len(learn_rows),
            "cross_validated": len(cv_rows),
            "calibrated_out_of_fold": len(y_tested),
            "holdout": len(split.holdout),
        },
        time_features=time_features,
        column_decisions=tuple(decisions),
        split_by_time=split.by_time,
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - started_cpu,
    )
