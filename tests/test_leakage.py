"""The leakage guard on small synthetic exports whose post-outcome columns are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml.errors import DataError
from leadml.leakage import (
    NEAR_PERFECT_AUC,
    STANDOUT_AUC,
    STRONG_AUC,
    LeakageReport,
    find_leakage,
)
from leadml.schema import LeadSchema, Role, infer_schema

N_ROWS = 3_000
HONEST = ("time_on_site", "requested_demo", "source")
NOISE = ("noise_number", "noise_category", "noise_flag", "created_at")
#: Post-outcome columns of the fixture; none of their names is needed to find them.
LEAKY = ("bucket", "sales_rating", "field_9")


def _pick(rng: np.random.Generator, values: list[str], shares: list[float], n: int) -> np.ndarray:
    return rng.choice(np.array(values, dtype=object), size=n, p=np.array(shares) / sum(shares))


def make_leads(n_rows: int = N_ROWS, seed: int = 7) -> pd.DataFrame:
    """Leads whose outcome depends on three honest traits, plus columns written afterwards."""
    rng = np.random.default_rng(seed)
    engagement = rng.normal(size=n_rows)
    demo = rng.random(n_rows) < 0.25
    source = _pick(
        rng, ["Referral", "Organic", "Paid", "Social", "Select"], [2, 4, 3, 2, 1], n_rows
    )
    source_effect = pd.Series(source).map(
        {"Referral": 1.2, "Organic": 0.2, "Paid": -0.2, "Social": -0.9, "Select": -0.4}
    )
    log_odds = -1.2 + 1.5 * engagement + 2.0 * demo + source_effect.to_numpy(dtype=float)
    converted = rng.random(n_rows) < 1 / (1 + np.exp(-log_odds))
    won = converted.astype(bool)

    # Sales' tag: mostly values that only exist once the outcome is known.
    tag_won = _pick(rng, ["Closed - won", "Will revert", "Busy", "Select"], [6, 2, 1, 1], n_rows)
    tag_lost = _pick(
        rng,
        ["Ringing", "Not interested", "Lost to rival", "Busy", "Select"],
        [3, 3, 2, 1, 2],
        n_rows,
    )
    bucket = np.where(won, tag_won, tag_lost)
    # Sales' rating: mostly written for the leads that converted, a bit higher for them.
    rated = rng.random(n_rows) < np.where(won, 0.8, 0.2)
    rating = np.clip(np.round(rng.normal(np.where(won, 3.6, 2.6), 1.0)), 1, 5)
    # A field filled in (a contract number, say) almost only once a lead has converted.
    filled = rng.random(n_rows) < np.where(won, 0.9, 0.06)

    start = np.datetime64("2024-01-01T00:00:00")
    return pd.DataFrame(
        {
            "time_on_site": np.round(np.exp(5 + 0.9 * engagement + rng.normal(0, 0.4, n_rows))),
            "requested_demo": np.where(demo, "Yes", "No"),
            "source": source,
            "bucket": bucket,
            "sales_rating": np.where(rated, rating, np.nan),
            "field_9": np.where(filled, rng.integers(1000, 9999, n_rows), np.nan),
            "call_status": _pick(rng, ["New", "Open", "Pending"], [1, 1, 1], n_rows),
            "noise_number": rng.normal(size=n_rows),
            "noise_category": _pick(rng, list("ABCDEFGH"), [1] * 8, n_rows),
            "noise_flag": np.where(rng.random(n_rows) < 0.4, "Yes", "No"),
            "created_at": (start + rng.integers(0, 365 * 24 * 3600, n_rows).astype("m8[s]"))
            .astype(str)
            .tolist(),
            "lead_number": np.arange(n_rows) + 10_000,
            "won": np.where(won, "yes", "no"),
        }
    )


def _schema(frame: pd.DataFrame) -> LeadSchema:
    return infer_schema(frame, "won", "yes")


def _outcome(frame: pd.DataFrame) -> np.ndarray:
    return (frame["won"] == "yes").to_numpy(dtype=int)


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return make_leads()


@pytest.fixture(scope="module")
def schema(leads: pd.DataFrame) -> LeadSchema:
    return _schema(leads)


@pytest.fixture(scope="module")
def report(leads: pd.DataFrame, schema: LeadSchema) -> LeakageReport:
    return find_leakage(leads, _outcome(leads), schema, seed=0)


def test_fixture_roles_are_as_intended(schema: LeadSchema) -> None:
    assert schema.column("time_on_site").role is Role.NUMERIC
    assert schema.column("requested_demo").role is Role.BOOLEAN
    assert schema.column("source").role is Role.CATEGORICAL
    assert schema.column("created_at").role is Role.DATETIME
    assert schema.column("lead_number").role is Role.ID


def test_every_feature_column_is_scored(report: LeakageReport, schema: LeadSchema) -> None:
    assert set(report.single_column_auc) == set(schema.feature_names)
    assert report.rows_examined == N_ROWS
    assert all(0.0 <= auc <= 1.0 for auc in report.single_column_auc.values())


def test_honest_traits_are_predictive_but_far_from_perfect(report: LeakageReport) -> None:
    # Guards the fixture: the honest traits must be strong enough to tempt a naive rule.
    assert 0.70 <= report.single_column_auc["time_on_site"] < 0.85
    assert report.single_column_auc["requested_demo"] > 0.58
    assert report.single_column_auc["source"] > 0.58


@pytest.mark.parametrize("column", LEAKY)
def test_post_outcome_columns_are_excluded_with_evidence(
    report: LeakageReport, column: str
) -> None:
    found = report.finding(column)
    assert found is not None and found.verdict == "exclude"
    assert column in report.excluded()
    assert found.reason
    assert found.evidence["single_column_auc"] == report.single_column_auc[column]
    assert found.evidence["rules"]


@pytest.mark.parametrize("column", HONEST + NOISE)
def test_honest_and_noise_columns_are_kept(report: LeakageReport, column: str) -> None:
    assert column not in report.excluded()


@pytest.mark.parametrize("column", NOISE)
def test_noise_columns_raise_no_suspicion(report: LeakageReport, column: str) -> None:
    assert report.finding(column) is None


def test_pure_tag_values_are_named_in_the_evidence(report: LeakageReport) -> None:
    found = report.finding("bucket")
    assert found is not None
    assert "pure_values" in str(found.evidence["rules"])
    assert "Closed - won" in str(found.evidence["pure_values"])
    assert float(found.evidence["pure_value_share"]) > 0.2


def test_a_field_filled_in_after_conversion_is_caught_by_its_missingness(
    report: LeakageReport,
) -> None:
    found = report.finding("field_9")
    assert found is not None
    assert "missingness" in str(found.evidence["rules"])
    assert float(found.evidence["filled_in_converted"]) > float(
        found.evidence["filled_in_not_converted"]
    )


def test_an_outcome_like_name_alone_is_only_a_warning(report: LeakageReport) -> None:
    found = report.finding("call_status")
    assert found is not None
    assert found.verdict == "warn"
    assert "call_status" in report.warnings()
    assert found.evidence["name_match"] == "status"


def test_no_honest_column_is_excluded_when_there_is_no_leak(leads: pd.DataFrame) -> None:
    honest = leads.drop(columns=[*LEAKY, "call_status"])
    report = find_leakage(honest, _outcome(honest), _schema(honest))
    assert report.excluded() == []


def test_a_near_perfect_column_is_excluded_whatever_its_name(leads: pd.DataFrame) -> None:
    frame = leads[[*HONEST, "won"]].copy()
    rng = np.random.default_rng(3)
    flip = rng.random(len(frame)) < 0.02
    frame["x1"] = np.where((frame["won"] == "yes") ^ flip, "P", "Q")
    frame["x2"] = rng.normal(size=len(frame))
    report = find_leakage(frame, _outcome(frame), _schema(frame))
    found = report.finding("x1")
    assert found is not None and found.verdict == "exclude"
    assert "near_perfect" in str(found.evidence["rules"])
    assert report.excluded() == ["x1"]


def test_report_is_deterministic_for_a_seed(
    leads: pd.DataFrame, schema: LeadSchema, report: LeakageReport
) -> None:
    assert find_leakage(leads, _outcome(leads), schema, seed=0) == report


def test_large_frames_are_sampled_with_the_outcome_share_kept(
    leads: pd.DataFrame, schema: LeadSchema
) -> None:
    report = find_leakage(leads, _outcome(leads), schema, seed=1, max_rows=1_500)
    assert report.rows_examined == 1_500
    assert set(LEAKY) <= set(report.excluded())
    assert not set(HONEST) & set(report.excluded())


def test_apply_moves_excluded_columns_to_leakage(report: LeakageReport, schema: LeadSchema) -> None:
    applied = report.apply(schema)
    for column in LEAKY:
        spec = applied.column(column)
        assert spec.role is Role.LEAKAGE
        assert spec.reason == report.finding(column).reason  # type: ignore[union-attr]
        assert spec.evidence["single_column_auc"] == report.single_column_auc[column]
    assert not set(LEAKY) & set(applied.feature_names)
    assert set(HONEST) <= set(applied.feature_names)
    assert any("call_status" in warning for warning in applied.warnings)
    assert applied.column("call_status").role is schema.column("call_status").role


def test_keep_overrides_an_exclusion_with_a_warning(
    report: LeakageReport, schema: LeadSchema
) -> None:
    applied = report.apply(schema, keep=["bucket"])
    assert applied.column("bucket").role is Role.CATEGORICAL
    assert "bucket" in applied.feature_names
    assert any("bucket" in w and "your request" in w for w in applied.warnings)
    assert applied.column("field_9").role is Role.LEAKAGE


def test_keep_of_an_unknown_column_is_a_data_error(
    report: LeakageReport, schema: LeadSchema
) -> None:
    with pytest.raises(DataError, match="not a column"):
        report.apply(schema, keep=["bukket"])


def test_outcome_must_match_the_frame(leads: pd.DataFrame, schema: LeadSchema) -> None:
    y = _outcome(leads)
    with pytest.raises(DataError):
        find_leakage(leads, y[:-1], schema)
    with pytest.raises(DataError):
        find_leakage(leads, np.zeros_like(y), schema)
    with pytest.raises(DataError):
        find_leakage(leads, y * 2, schema)


def test_a_schema_without_features_gives_an_empty_report(leads: pd.DataFrame) -> None:
    frame = leads[["lead_number", "won"]]
    report = find_leakage(frame, _outcome(frame), _schema(frame))
    assert report.findings == ()
    assert report.single_column_auc == {}


def test_a_strong_honest_trait_that_dominates_is_not_excluded() -> None:
    rng = np.random.default_rng(11)
    engagement = rng.normal(size=N_ROWS)
    won = rng.random(N_ROWS) < 1 / (1 + np.exp(-(-0.5 + 1.8 * engagement)))
    frame = pd.DataFrame(
        {
            "minutes_on_site": np.round(np.exp(2 + 0.8 * engagement + rng.normal(0, 0.3, N_ROWS))),
            "country": _pick(rng, ["US", "UK", "DE", "FR"], [4, 2, 2, 1], N_ROWS),
            "opened_email": np.where(rng.random(N_ROWS) < 0.5, "Yes", "No"),
            "won": np.where(won, "yes", "no"),
        }
    )
    report = find_leakage(frame, _outcome(frame), _schema(frame))
    auc = report.single_column_auc["minutes_on_site"]
    assert 0.75 <= auc < STANDOUT_AUC
    assert (
        auc - max(report.single_column_auc["country"], report.single_column_auc["opened_email"])
        > 0.2
    )
    assert report.excluded() == []


def test_pure_values_with_strong_power_exclude_a_column_that_is_not_near_perfect() -> None:
    rng = np.random.default_rng(5)
    won = rng.random(N_ROWS) < 0.4
    plain = _pick(rng, ["A", "B", "C"], [1, 1, 1], N_ROWS)
    tag = np.where(
        won,
        np.where(rng.random(N_ROWS) < 0.55, "Signed", plain),
        np.where(rng.random(N_ROWS) < 0.35, "Gone", plain),
    )
    frame = pd.DataFrame(
        {
            "x_tag": tag,
            "visits": rng.poisson(np.where(won, 4.0, 3.0)),
            "region": _pick(rng, ["N", "S", "E", "W"], [1, 1, 1, 1], N_ROWS),
            "won": np.where(won, "yes", "no"),
        }
    )
    report = find_leakage(frame, _outcome(frame), _schema(frame))
    found = report.finding("x_tag")
    assert found is not None and found.verdict == "exclude"
    assert STRONG_AUC <= report.single_column_auc["x_tag"] < NEAR_PERFECT_AUC
    assert "pure_values" in str(found.evidence["rules"])
    assert "Signed" in found.reason and "Gone" in str(found.evidence["pure_values"])
    assert "visits" not in report.excluded()


def test_a_lone_near_perfect_column_is_excluded(leads: pd.DataFrame) -> None:
    frame = pd.DataFrame({"closed_as": leads["won"].map({"yes": "Won", "no": "Lost"})})
    frame["won"] = leads["won"]
    report = find_leakage(frame, _outcome(frame), _schema(frame))
    assert report.excluded() == ["closed_as"]
    assert "next_best_column" not in report.findings[0].evidence
