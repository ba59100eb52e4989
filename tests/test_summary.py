"""The tidy frames notebooks show: every finding's whole evidence, placeholders as leadml reads
them, and policies resolved side by side exactly as `resolve_policy` resolves each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.leakage import LeakageFinding, LeakageReport
from leadml.schema import DEFAULT_PLACEHOLDERS, infer_schema
from leadml.summary import (
    leakage_frame,
    placeholder_counts,
    policies_frame,
    schema_frame,
    single_column_power,
)
from leadml.threshold import CapacityPolicy, MinPrecisionPolicy, resolve_policy

REPORT = LeakageReport(
    findings=(
        LeakageFinding("stage", "exclude", "a long reason " * 20, {"single_column_auc": 0.99}),
        LeakageFinding("last_call", "warn", "sounds like the sales process", {"name": "call"}),
    ),
    single_column_auc={"stage": 0.99, "last_call": 0.71, "source": 0.64},
)


def test_leakage_frame_keeps_the_whole_reason_and_every_evidence_key() -> None:
    frame = leakage_frame(REPORT)
    assert list(frame["column"]) == ["stage", "last_call"]
    assert frame.loc[0, "reason"] == "a long reason " * 20
    assert frame.loc[0, "evidence.single_column_auc"] == 0.99
    assert frame.loc[1, "evidence.name"] == "call"


def test_leakage_frame_of_a_clean_export_is_empty_with_its_columns() -> None:
    frame = leakage_frame(LeakageReport(findings=(), single_column_auc={}))
    assert frame.empty
    assert {"column", "verdict", "reason"} <= set(frame.columns)


def test_single_column_power_is_sorted_and_says_what_was_kept() -> None:
    frame = single_column_power(REPORT)
    assert list(frame["column"]) == ["stage", "last_call", "source"]
    assert list(frame["verdict"]) == ["exclude", "warn", "kept"]


def test_placeholder_counts_compare_like_the_schema() -> None:
    leads = pd.DataFrame(
        {"source": ["Select", " select ", "Web", None], "visits": [1, 2, 3, 4], "job": ["a"] * 4}
    )
    counts = placeholder_counts(leads, DEFAULT_PLACEHOLDERS)
    assert counts.to_dict() == {"source": 2}


def test_schema_frame_has_one_row_per_column() -> None:
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(50)],
            "visits": [i % 7 for i in range(50)],
            "won": [0, 1] * 25,
        }
    )
    schema = infer_schema(leads, "won", "1", id_column="lead_id")
    frame = schema_frame(schema)
    assert list(frame["column"]) == ["lead_id", "visits", "won"]
    assert frame.set_index("column").loc["visits", "feature"]
    assert not frame.set_index("column").loc["lead_id", "feature"]


def test_policies_side_by_side_match_each_resolution() -> None:
    rng = np.random.default_rng(0)
    proba = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < proba).astype(int)
    policies = {
        "capacity": CapacityPolicy(per_week=200, leads_per_week=1000),
        "precision": MinPrecisionPolicy(min_precision=0.7),
    }
    frame = policies_frame(policies, y, proba, leads_per_week=1000, n_boot=200).set_index("policy")
    for label, policy in policies.items():
        expected = resolve_policy(policy, y, proba, leads_per_week=1000, n_boot=200)
        assert frame.loc[label, "cutoff"] == pytest.approx(expected.cutoff)
        assert frame.loc[label, "precision"] == pytest.approx(expected.precision)
        assert frame.loc[label, "precision_low"] <= expected.precision
        assert frame.loc[label, "mqls_per_week"] == pytest.approx(expected.mqls_per_week)
