"""The leakage guard on columns measured during or after the sales contact, in both directions:
found on the demo's post-contact variant and on columns whose names give nothing away; not
raised on the honest columns of the demo and of the X Education export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml import demo
from leadml.leakage import (
    EXTREME_EXCLUDE_SHARE,
    MODERATE_AUC,
    NEAR_PERFECT_AUC,
    STANDOUT_AUC,
    STANDOUT_GAP,
    STRONG_AUC,
    LeakageReport,
    _contact_match,
    find_leakage,
)
from leadml.schema import LeadSchema, Role, infer_schema

N_ROWS = 4_000
POST_CONTACT = demo.VARIANTS["post-contact"].leaky_columns
#: Honest columns of the demo: everything it generates that is neither a leak, the id nor the target.
HONEST_DEMO = tuple(
    c for c in demo.COLUMNS if c not in (*demo.LEAKY_COLUMNS, demo.ID_COLUMN, demo.TARGET)
)
#: The one honest demo column whose name alone earns a warning ("last activity").
NAME_WARNED = "days_since_last_activity"
X_EDUCATION_NAME = Path("shared", "data", "x_education_leads.csv")
#: The export sits beside the checkout (../shared/data/...), or beside the folder of worktrees.
X_EDUCATION = next(
    (
        folder / X_EDUCATION_NAME
        for folder in Path(__file__).resolve().parents[1:4]
        if (folder / X_EDUCATION_NAME).exists()
    ),
    Path(__file__).resolve().parents[2] / X_EDUCATION_NAME,
)
X_EDUCATION_HONEST = (
    "Total Time Spent on Website",
    "Lead Origin",
    "What is your current occupation",
    "Lead Source",
    "TotalVisits",
    "Page Views Per Visit",
    "Do Not Email",
    "Do Not Call",
    "Specialization",
    "City",
)


def _schema(frame: pd.DataFrame) -> LeadSchema:
    return infer_schema(
        frame, demo.TARGET, "1", id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN
    )


def _guard(frame: pd.DataFrame) -> LeakageReport:
    return find_leakage(frame, frame[demo.TARGET].to_numpy(), _schema(frame), seed=0)


@pytest.fixture(scope="module")
def post_contact() -> pd.DataFrame:
    return demo.generate_leads(N_ROWS, seed=3, variants=("post-contact",))


@pytest.fixture(scope="module")
def post_contact_report(post_contact: pd.DataFrame) -> LeakageReport:
    return _guard(post_contact)


@pytest.fixture(scope="module")
def honest_report() -> LeakageReport:
    frame = demo.generate_leads(N_ROWS, seed=3).drop(columns=list(demo.LEAKY_COLUMNS))
    return _guard(frame)


@pytest.mark.parametrize("column", POST_CONTACT)
def test_post_contact_columns_are_excluded_with_evidence(
    post_contact_report: LeakageReport, column: str
) -> None:
    found = post_contact_report.finding(column)
    assert found is not None and found.verdict == "exclude", found
    assert found.evidence["extreme_values"].startswith("0: ")  # type: ignore[union-attr]
    assert float(found.evidence["extreme_value_share"]) >= EXTREME_EXCLUDE_SHARE
    assert found.evidence["contact_name_match"]
    assert "'0'" in found.reason and "sales" in found.reason


def test_a_touches_count_of_moderate_power_is_excluded_on_two_independent_signs(
    post_contact_report: LeakageReport,
) -> None:
    found = post_contact_report.finding("sales_touches")
    assert found is not None
    auc = post_contact_report.single_column_auc["sales_touches"]
    # Too weak alone for the name or extreme-value rules (guards the fixture).
    assert auc < STRONG_AUC
    assert auc >= MODERATE_AUC
    assert found.verdict == "exclude"
    assert found.evidence["rules"] == "two_signs"
    assert "touches" in found.reason and "'0'" in found.reason


def test_the_post_contact_variant_keeps_the_other_leaks_and_the_honest_traits(
    post_contact_report: LeakageReport,
) -> None:
    excluded = set(post_contact_report.excluded())
    assert excluded == set(demo.leaky_columns_of(("post-contact",)))
    assert not set(demo.STRONGEST_TRAITS) & excluded


def test_the_call_length_is_caught_by_its_values_when_its_name_says_nothing(
    post_contact: pd.DataFrame,
) -> None:
    frame = post_contact.drop(columns=[*demo.LEAKY_COLUMNS, "sales_touches"])
    frame = frame.rename(columns={"call_duration_sec": "field_17"})
    report = _guard(frame)
    found = report.finding("field_17")
    assert found is not None and found.verdict == "exclude"
    assert "extreme_value" in str(found.evidence["rules"])
    assert "contact_name_match" not in found.evidence
    # The honest traits are as strong as before and stay in.
    assert report.excluded() == ["field_17"]


def test_a_contact_name_with_strong_power_excludes_a_column_without_extreme_values() -> None:
    rng = np.random.default_rng(2)
    frame = demo.generate_leads(N_ROWS, seed=4).drop(columns=list(demo.LEAKY_COLUMNS))
    won = frame[demo.TARGET].to_numpy(dtype=bool)
    # Minutes in meetings with sales: longer for leads that bought, never 0, no telling minimum.
    frame.insert(3, "meeting_minutes", np.round(np.exp(rng.normal(np.where(won, 3.5, 2.8), 0.5))))
    report = _guard(frame)
    auc = report.single_column_auc["meeting_minutes"]
    assert STRONG_AUC <= auc < STANDOUT_AUC
    found = report.finding("meeting_minutes")
    assert found is not None and found.verdict == "exclude"
    assert found.evidence["rules"] == "contact_name"
    assert found.evidence["contact_name_match"] == "meeting"


def test_a_column_far_ahead_of_the_rest_is_warned_about_whatever_its_name() -> None:
    rng = np.random.default_rng(8)
    frame = demo.generate_leads(N_ROWS, seed=5).drop(columns=list(demo.LEAKY_COLUMNS))
    won = frame[demo.TARGET].to_numpy(dtype=bool)
    frame.insert(3, "field_3", np.round(rng.normal(np.where(won, 1.3, 0.0), 1.0), 3))
    report = _guard(frame)
    aucs = report.single_column_auc
    next_best = max(v for k, v in aucs.items() if k != "field_3")
    assert aucs["field_3"] - next_best >= STANDOUT_GAP and aucs["field_3"] < STANDOUT_AUC
    found = report.finding("field_3")
    assert found is not None and found.verdict == "warn"
    assert "far_ahead" in str(found.evidence["rules"])
    assert found.evidence["next_best_auc"] == round(next_best, 4)
    assert "field_3" not in report.excluded()


def test_a_leak_hidden_behind_a_bigger_one_is_found_in_a_later_round() -> None:
    rng = np.random.default_rng(9)
    frame = demo.generate_leads(N_ROWS, seed=6).drop(columns=list(demo.LEAKY_COLUMNS))
    won = frame[demo.TARGET].to_numpy(dtype=bool)
    # A neutral-named number far better than any honest column, but behind a sales tag.
    frame.insert(3, "field_8", np.round(rng.normal(np.where(won, 1.6, 0.0), 1.0), 3))
    # Sales' tag, right for 93 % of the leads: strong, yet not near-perfect.
    frame.insert(4, "deal_tag", np.where(won ^ (rng.random(len(frame)) < 0.07), "Signed", "Open"))
    report = _guard(frame)
    aucs = report.single_column_auc
    assert STANDOUT_AUC <= aucs["field_8"] < aucs["deal_tag"] < NEAR_PERFECT_AUC
    assert aucs["deal_tag"] - aucs["field_8"] < STANDOUT_GAP  # the tag does not stand out
    tag = report.finding("deal_tag")
    assert tag is not None and tag.verdict == "exclude"
    assert "judged_without" not in tag.evidence
    found = report.finding("field_8")
    assert found is not None and found.verdict == "exclude"
    assert "stands_out" in str(found.evidence["rules"])
    assert found.evidence["judged_without"] == "deal_tag"
    assert found.evidence["next_best_column"] != "deal_tag"


@pytest.mark.parametrize("column", HONEST_DEMO)
def test_honest_demo_columns_are_never_excluded(
    honest_report: LeakageReport, post_contact_report: LeakageReport, column: str
) -> None:
    assert column not in honest_report.excluded()
    assert column not in post_contact_report.excluded()


@pytest.mark.parametrize("column", [c for c in HONEST_DEMO if c != NAME_WARNED])
def test_honest_demo_columns_raise_no_suspicion(honest_report: LeakageReport, column: str) -> None:
    assert honest_report.finding(column) is None


def test_a_last_activity_name_alone_is_only_a_warning(honest_report: LeakageReport) -> None:
    found = honest_report.finding(NAME_WARNED)
    assert found is not None and found.verdict == "warn"
    assert found.evidence["rules"] == "outcome_name"


@pytest.mark.parametrize("name", ["Do Not Call", "do_not_contact", "DNC flag"])
def test_a_consent_flag_is_not_a_contact_name(name: str) -> None:
    rng = np.random.default_rng(1)
    frame = demo.generate_leads(2_000, seed=7).drop(columns=list(demo.LEAKY_COLUMNS))
    frame.insert(3, name, np.where(rng.random(len(frame)) < 0.1, "Yes", "No"))
    assert _guard(frame).finding(name) is None


@pytest.mark.skipif(
    not X_EDUCATION.exists(), reason="the X Education export is not on this machine"
)
def test_x_education_honest_columns_stay_and_its_sales_columns_go() -> None:
    frame = pd.read_csv(X_EDUCATION)
    schema = infer_schema(frame, "Converted", "1", id_column="Prospect ID")
    report = find_leakage(frame, frame["Converted"].to_numpy(), schema, seed=0)
    for column in X_EDUCATION_HONEST:
        assert schema.column(column).is_feature, column
        assert column not in report.excluded(), report.finding(column)
    assert {"Tags", "Lead Quality"} <= set(report.excluded())
    applied = report.apply(schema)
    assert applied.column("Tags").role is Role.LEAKAGE
    assert applied.column("Total Time Spent on Website").role is Role.NUMERIC


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("call_duration_sec", "call, duration"),
        ("CallAttempts", "call, attempts"),
        ("days_to_close", "days to close"),
        ("duration", "duration"),
        ("proposal_sent", "proposal"),
        ("session_duration", ""),
        ("video duration watched", ""),
        ("Requested a call back", ""),
        ("Do Not Call", ""),
        ("Total Time Spent on Website", ""),
        ("campaign", ""),
    ],
)
def test_contact_like_names(name: str, words: str) -> None:
    assert _contact_match(name) == words


def test_a_strong_honest_session_length_and_a_callback_request_stay_in() -> None:
    rng = np.random.default_rng(12)
    frame = demo.generate_leads(N_ROWS, seed=8).drop(columns=list(demo.LEAKY_COLUMNS))
    won = frame[demo.TARGET].to_numpy(dtype=bool)
    frame.insert(3, "session_duration", np.round(np.exp(rng.normal(np.where(won, 5.2, 4.5), 0.5))))
    asked = rng.random(len(frame)) < np.where(won, 0.45, 0.1)
    frame.insert(4, "requested_call_back", np.where(asked, "Yes", "No"))
    report = _guard(frame)
    assert report.single_column_auc["session_duration"] >= STRONG_AUC
    assert report.excluded() == []
    for column in ("session_duration", "requested_call_back"):
        found = report.finding(column)
        assert found is None or "contact_name" not in str(found.evidence["rules"]), found
