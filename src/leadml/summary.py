"""Tidy frames of what leadml decided, for notebooks and reports.

Each function turns one of leadml's result objects into a `DataFrame` with one row per thing a
data scientist asks about (a column, a leakage finding, a candidate model, an MQL policy). They
are pure: they read the objects they are given and touch no file, database or MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy.typing as npt
import pandas as pd

from leadml.leakage import LeakageReport
from leadml.schema import LeadSchema, normalise_placeholders
from leadml.threshold import Policy, resolve_policy

#: Categories shown per column in `schema_frame`; the schema keeps them all.
CATEGORIES_SHOWN = 5


def schema_frame(schema: LeadSchema) -> pd.DataFrame:
    """One row per column of the export: its role, share missing, categories, and why."""
    rows = []
    for spec in schema.columns:
        shown = ", ".join(spec.categories[:CATEGORIES_SHOWN])
        if len(spec.categories) > CATEGORIES_SHOWN:
            shown += f", ... ({len(spec.categories)} in all)"
        rows.append(
            {
                "column": spec.name,
                "role": spec.role.value,
                "feature": spec.is_feature,
                "required": spec.required,
                "missing_share": round(spec.missing_share, 4),
                "categories": shown,
                "reason": spec.reason,
            }
        )
    return pd.DataFrame(rows)


def leakage_frame(report: LeakageReport) -> pd.DataFrame:
    """One row per finding with its verdict, the whole reason, and every piece of evidence.

    Evidence keys become columns (`evidence.<key>`), so nothing is cut off or hidden in a dict.
    """
    rows: list[dict[str, Any]] = []
    for finding in report.findings:
        row: dict[str, Any] = {
            "column": finding.column,
            "verdict": finding.verdict,
            "single_column_auc": report.single_column_auc.get(finding.column),
            "reason": finding.reason,
        }
        row.update({f"evidence.{key}": value for key, value in finding.evidence.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["column", "verdict", "reason"])


def single_column_power(report: LeakageReport) -> pd.DataFrame:
    """Every feature column's out-of-fold ROC AUC alone, strongest first, with its verdict."""
    verdicts = {finding.column: finding.verdict for finding in report.findings}
    frame = pd.DataFrame(
        {
            "column": list(report.single_column_auc),
            "single_column_auc": list(report.single_column_auc.values()),
        }
    )
    frame["verdict"] = frame["column"].map(verdicts).fillna("kept")
    return frame.sort_values("single_column_auc", ascending=False, ignore_index=True)


def candidates_frame(selection: Sequence[Any]) -> pd.DataFrame:
    """Cross-validation figures of each candidate model (`TrainResult.selection`)."""
    return pd.DataFrame([asdict(score) for score in selection])


def policies_frame(
    policies: Mapping[str, Policy],
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    *,
    leads_per_week: float | None = None,
    n_boot: int = 500,
) -> pd.DataFrame:
    """Several MQL policies resolved on the same holdout, side by side, with their intervals.

    `policies` maps a label to a policy; `leads_per_week` gives weekly figures to policies that
    do not bring their own (a capacity policy does).
    """
    rows = []
    for label, policy in policies.items():
        weekly = None if getattr(policy, "leads_per_week", None) else leads_per_week
        resolution = resolve_policy(policy, y_true, proba, leads_per_week=weekly, n_boot=n_boot)
        low, high = resolution.intervals["precision"]
        rows.append(
            {
                "policy": label,
                "cutoff": resolution.cutoff,
                "mql_share": resolution.mql_share,
                "precision": resolution.precision,
                "precision_low": low,
                "precision_high": high,
                "recall": resolution.recall,
                "mqls_per_week": resolution.mqls_per_week,
                "sentence": resolution.sentence,
            }
        )
    return pd.DataFrame(rows)


def placeholder_counts(frame: pd.DataFrame, placeholders: Sequence[str]) -> pd.Series:
    """How many cells of each text column hold a "not answered" value, most first.

    Values are compared as the schema compares them (trimmed, lower-cased), so the counts are
    the cells leadml reads as missing rather than as a category.
    """
    wanted = normalise_placeholders(placeholders)
    text_columns = frame.select_dtypes(exclude="number").columns
    counts = {
        str(column): int(frame[column].astype("string").str.strip().str.lower().isin(wanted).sum())
        for column in text_columns
    }
    series = pd.Series(counts, name="placeholder cells", dtype="int64")
    return series[series > 0].sort_values(ascending=False)
