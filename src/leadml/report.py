"""Human-readable text about a training: the model card."""

from __future__ import annotations

from collections.abc import Mapping

from leadml.models import DESCRIPTIONS
from leadml.train import TrainResult

_METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (average precision)",
    "brier": "Brier score",
    "log_loss": "log loss",
    "ece": "expected calibration error",
    "lift_top_decile": "lift in the top 10 %",
    "base_rate": "conversion rate",
}


TOP_TRAITS = 12


def model_card(result: TrainResult, model_name: str) -> str:
    """A markdown model card: what the model is for, what it learned from, how good it is."""
    schema = result.schema
    lines = [
        f"# Model card: {model_name}",
        "",
        f"Predicts the probability that a lead converts (`{schema.target}` ="
        f" `{result.positive_label}`), calibrated so that marketing can set its MQL line on it.",
        "",
        "## Model",
        f"- {DESCRIPTIONS.get(result.model_kind, result.model_kind)}",
        f"- Selection: {result.selection_reason}",
        *(
            f"- Trees: {score.tree_shape_reason}"
            for score in result.selection
            if score.name == result.model_kind and score.tree_shape_reason
        ),
        *(
            f"- Categories: {score.category_encoding_reason}"
            for score in result.selection
            if score.name == result.model_kind and score.category_encoding_reason
        ),
        f"- Calibration: {result.calibration_method}, {_calibrated_on(result.split_sizes)}",
        *(
            [f"- Time features: {result.time_features.reason}"]
            if result.time_features is not None
            else []
        ),
        *(f"- Many-valued column: {decision.reason}" for decision in result.column_decisions),
        f"- Trained at {result.trained_at} in {result.seconds:.1f} s",
        "",
        "## Data",
        f"- Split {'by time (most recent leads held out)' if result.split_by_time else 'stratified'}:"
        f" {result.split_sizes['fit']:,} to learn from (the final model sees them all),"
        f" {result.split_sizes['holdout']:,} holdout",
        f"- {len(schema.features)} features: {', '.join(schema.feature_names)}",
        *(
            f"- Dates in `{c.name}` read {c.date_reading.value} ({c.date_reading_reason})"
            for c in schema.columns
            if c.date_reading is not None  # the time column too, when only used to split
        ),
        "",
        "## What converts",
        "",
        "How much each trait moves the predicted chance on the holdout (mean absolute effect on"
        " the log-odds, as a share of all traits), and which way.",
        "",
        "| trait | share | which way |",
        "| --- | --- | --- |",
        *(
            f"| {t.label} | {t.share:.0%} | {str(t.summary).split(': ', 1)[-1]} |"
            for t in result.traits.head(TOP_TRAITS).itertuples()
        ),
        "",
        "## Columns not used",
        "",
        "| column | why | detail |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c.name} | {c.role.value} | {c.reason} |" for c in schema.dropped] or [
        "| - | - | - |"
    ]
    if schema.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in schema.warnings]
    lines += ["", "## Holdout performance", "", "| metric | value |", "| --- | --- |"]
    lines += [
        f"| {_METRIC_LABELS.get(k, k)} | {v:.4f} |"
        for k, v in result.metrics.items()
        if k in _METRIC_LABELS
    ]
    lines += [
        "",
        "## Limits",
        "- Scores are only as good as the traits the CRM records before sales contact;"
        " columns filled in after the outcome are excluded on purpose.",
        "- Monitor realised conversion by grade; retrain when the lead mix or the offer changes.",
        "",
    ]
    return "\n".join(lines)


def _calibrated_on(split_sizes: Mapping[str, int]) -> str:
    """What the calibrator learnt from: a training's out-of-fold predictions, or (a
    recalibration, `leadml.retrain`) the recent outcomes it was refit on."""
    if "calibrated_out_of_fold" in split_sizes:
        return f"on out-of-fold predictions for {split_sizes['calibrated_out_of_fold']:,} leads"
    return f"refit on {split_sizes.get('calibrate', 0):,} recent outcomes"
