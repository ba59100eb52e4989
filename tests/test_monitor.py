"""Monitoring on recent outcomes: realised vs expected, calibration, drift, verdict, `leadml monitor`."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, flat, run_cli, run_cli_streams

from conftest import TrainedModel
from leadml import demo
from leadml.data import load_leads
from leadml.errors import DataError
from leadml.monitor import (
    ACT,
    HEALTHY,
    MIN_LEADS,
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    MonitorReport,
    monitor_outcomes,
    mql_contract,
    population_stability_index,
    psi_reading,
    wilson_interval,
)
from leadml.policy import Holdout, default_preview, load_holdout
from leadml.scoring import Scorer
from leadml.threshold import assign_grades

# --------------------------------------------------------------------------- pure functions


def test_wilson_interval_on_hand_checkable_numbers() -> None:
    # 5 of 10 at 95 %: the textbook 0.2366 to 0.7634.
    low, high = wilson_interval(5, 10, level=0.95)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    # 0 of n: lower bound 0, upper bound z^2 / (n + z^2); n of n mirrors it (z = 1.6449 at 90 %).
    z2 = 1.6448536**2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    # A wider level gives a wider interval around the same rate.
    assert wilson_interval(30, 100, 0.99)[0] < wilson_interval(30, 100, 0.9)[0] < 0.3
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_psi_by_hand_and_its_reading() -> None:
    reference = np.array([0.1, 0.2, 0.3, 0.4])  # two bins, split at the median 0.25
    drift = population_stability_index(reference, [0.1, 0.1, 0.1, 0.4], n_bins=2)
    assert drift.edges == pytest.approx((0.25,))
    assert drift.holdout_shares == pytest.approx((0.5, 0.5))
    assert drift.recent_shares == pytest.approx((0.75, 0.25))
    assert drift.psi == pytest.approx(0.25 * math.log(1.5) - 0.25 * math.log(0.5))
    assert population_stability_index(reference, reference, n_bins=2).psi == 0.0
    assert [psi_reading(x) for x in (0.05, 0.2, 0.3)] == [
        "stable",
        "moderate shift",
        "significant shift",
    ]


def synthetic(seed: int, n: int, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return (rng.random(n) < p * factor).astype(int), p


def test_mqls_converting_below_their_promise_mean_act() -> None:
    hy, hp = synthetic(0, 5000)
    y, p = synthetic(1, 3000)
    is_mql = p >= 0.7
    grades = np.where(is_mql, "A", "B")
    healthy = monitor_outcomes(y, p, grades, is_mql, hy, hp, grade_labels=("A", "B"))
    assert healthy.verdict == HEALTHY, healthy.sentence
    assert [g.group for g in healthy.grades] == ["A", "B"]
    assert sum(g.n for g in healthy.grades) == 3000
    y_worse, _ = synthetic(1, 3000, factor=0.8)  # same leads, every chance 20 % lower
    worse = monitor_outcomes(y_worse, p, grades, is_mql, hy, hp, grade_labels=("A", "B"))
    assert worse.verdict == ACT, worse.sentence
    mql = worse.mql[0]
    assert mql.group == "MQL" and mql.flag == "below" and mql.material
    assert mql.high < mql.expected_rate
    assert worse.drift.psi < PSI_MODERATE  # same scores: no drift, the outcomes moved
    assert any(reason.startswith("MQLs converted at") for reason in worse.reasons)
    json.dumps(worse.to_dict(), allow_nan=False)


def test_too_few_leads_is_a_data_error() -> None:
    hy, hp = synthetic(0, 500)
    y, p = synthetic(1, MIN_LEADS - 1)
    with pytest.raises(DataError, match=f"at least {MIN_LEADS}"):
        monitor_outcomes(y, p, np.full(len(y), "A"), p > 0.5, hy, hp)


# --------------------------------------------------------------------------- on the demo model


@pytest.fixture(scope="module")
def scorer(trained: TrainedModel) -> Scorer:
    return Scorer.load(str(trained.export_dir))


@pytest.fixture(scope="module")
def holdout(scorer: Scorer) -> Holdout:
    return load_holdout(scorer)


def monitor_demo(
    scorer: Scorer, holdout: Holdout, frame: pd.DataFrame, y: np.ndarray | None = None
) -> MonitorReport:
    preview = default_preview(holdout, n_boot=100)
    p = scorer.score(frame)["probability"].to_numpy()
    outcomes = frame[demo.TARGET].to_numpy() if y is None else y
    return monitor_outcomes(
        outcomes,
        p,
        assign_grades(p, preview.bands),
        p >= preview.cutoff,
        holdout.y,
        holdout.proba,
        grade_labels=preview.bands.labels,
    )


def test_fresh_leads_from_the_same_generator(scorer: Scorer, holdout: Holdout) -> None:
    report = monitor_demo(scorer, holdout, demo.generate_leads(2000, seed=7))
    assert report.verdict != ACT, report.sentence
    assert report.drift.psi < PSI_MODERATE and report.drift.reading == "stable"
    cal = report.calibration
    assert cal.recent_roc_auc is not None
    assert abs(cal.recent_roc_auc - cal.holdout_roc_auc) < 0.03
    assert [g.group for g in report.grades] == ["A", "B", "C", "D"]
    assert sum(g.n for g in report.grades) == report.n == 2000
    # Better grades convert more, and MQLs more than the rest.
    rates = [g.realised_rate for g in report.grades]
    assert rates == sorted(rates, reverse=True)
    assert report.mql[0].realised_rate > report.mql[1].realised_rate


def test_shuffled_outcomes_mean_act(scorer: Scorer, holdout: Holdout) -> None:
    frame = demo.generate_leads(2000, seed=7)
    shuffled = np.random.default_rng(0).permutation(frame[demo.TARGET].to_numpy())
    report = monitor_demo(scorer, holdout, frame, shuffled)
    cal = report.calibration
    assert cal.recent_roc_auc is not None and cal.recent_roc_auc < 0.6
    assert cal.recent_roc_auc < cal.holdout_roc_auc - 0.2
    assert report.verdict == ACT
    assert any("ROC AUC fell" in reason for reason in report.reasons)
    assert report.drift.psi < PSI_MODERATE  # the leads are as before; only outcomes are random
    assert report.mql[0].flag == "below"


def test_a_shifted_population_is_flagged(scorer: Scorer, holdout: Holdout) -> None:
    frame = demo.generate_leads(3000, seed=7)
    demo_requests = frame[frame["requested_demo"] == "Yes"].reset_index(drop=True)
    assert len(demo_requests) > MIN_LEADS
    report = monitor_demo(scorer, holdout, demo_requests)
    assert report.drift.psi > PSI_SIGNIFICANT
    assert report.drift.reading == "significant shift"
    assert report.verdict == ACT
    assert "shifted significantly" in report.reasons[0]
    # Most demo requesters land in the holdout's top deciles.
    assert report.drift.recent_shares[-1] > 3 * report.drift.holdout_shares[-1]


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")


def cli_args(trained: TrainedModel, tmp_path: Path, data: Path) -> list[str]:
    return [
        "monitor",
        "--data",
        str(data),
        "--target",
        demo.TARGET,
        "--model",
        str(trained.export_dir),
        "--database-url",
        f"sqlite:///{tmp_path / 'app.db'}",
    ]


def test_cli_prints_the_sections_and_verdict_and_writes_json(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path, holdout: Holdout
) -> None:
    frame = demo.generate_leads(1500, seed=7)
    frame[demo.TARGET] = frame[demo.TARGET].astype("object")
    frame.loc[:49, demo.TARGET] = None  # 50 open leads
    path = tmp_path / "recent.csv"
    frame.to_csv(path, index=False)
    report_path = tmp_path / "monitor.json"
    argv = [*cli_args(trained, tmp_path, path), "--positive", "1", "--report-json"]
    code, out, err = run_cli_streams([*argv, str(report_path)], capsys)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    text = flat(out)
    assert "1,450 leads with an outcome" in text and "50 open leads left out" in text
    for title in ("realised vs expected by grade", "calibration and ranking", "score drift"):
        assert title in text
    assert report["verdict"] in ("healthy", "watch")
    assert flat(report["sentence"]) in text
    assert report["n"] == 1450 and report["open_leads_left_out"] == 50
    assert sum(g["n"] for g in report["grades"]) == 1450
    assert report["model_version"] == trained.version
    # The drift is that of the file's closed leads against the model's holdout.
    closed = load_leads(path).iloc[50:].reset_index(drop=True)
    p = Scorer.load(str(trained.export_dir)).score(closed)["probability"].to_numpy()
    assert report["drift"]["psi"] == pytest.approx(population_stability_index(holdout.proba, p).psi)
    assert f"PSI {report['drift']['psi']:.3f}" in text


def test_cli_missing_file(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path
) -> None:
    code, err = run_cli(cli_args(trained, tmp_path, tmp_path / "nope.csv"), capsys)
    assert_one_line_error(code, err, "nope.csv", "no such file")


def test_cli_missing_target_column(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path
) -> None:
    path = tmp_path / "recent.csv"
    demo.generate_leads(200, seed=3).drop(columns=[demo.TARGET]).to_csv(path, index=False)
    code, err = run_cli(cli_args(trained, tmp_path, path), capsys)
    assert_one_line_error(code, err, f"no outcome column '{demo.TARGET}'", "--target")


def test_cli_without_enough_outcomes(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path
) -> None:
    path = tmp_path / "recent.csv"
    frame = demo.generate_leads(200, seed=3)
    frame[demo.TARGET] = frame[demo.TARGET].astype("object")
    frame.loc[10:, demo.TARGET] = None  # only 10 closed leads
    frame.to_csv(path, index=False)
    code, err = run_cli(cli_args(trained, tmp_path, path), capsys)
    assert_one_line_error(code, err, "10 leads with an outcome", f"at least {MIN_LEADS}")


def test_one_borderline_group_among_six_is_no_alarm() -> None:
    """90 % intervals on six groups flag something by chance; the verdict corrects for that."""
    from leadml.monitor import check_group

    y = np.array([1] * 120 + [0] * 30)
    p = np.full(150, 0.7317)
    alone = check_group("B", y, p, 0.9)
    among_six = check_group("B", y, p, 0.9, n_groups=6)
    assert alone.flag == among_six.flag == "above"
    assert alone.material and not among_six.material


# -- the MQL line as a contract, on a case a person can compute -----------------------------------

CONTRACT_NOW = datetime(2026, 6, 1, tzinfo=UTC)


def constructed_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """100 leads scored under policy v1 of model 3 in two weeks of March: 50 MQLs (grade A, p =
    0.7) and 50 others (grade C, p = 0.1). Of the MQLs, 16 were won, 16 lost after acceptance,
    8 rejected (6 "bad fit", 2 "no budget"), 10 are open: 5 scored 10 days ago, 5 in March."""
    rows = []
    for i in range(100):
        mql = i < 50
        week = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=7 * (i % 2))
        rows.append(
            {
                "lead_id": f"L{i}", "policy_version": 1, "model_version": "3",
                "probability": 0.7 if mql else 0.1, "grade": "A" if mql else "C", "is_mql": mql,
                "scored_at": week, "features": {},
                "converted": None, "sql_status": None, "rejection_reason": None,
            }
        )  # fmt: skip
    for i in range(16):
        rows[i] |= {"converted": True, "sql_status": "accepted"}
    for i in range(16, 32):
        rows[i] |= {"converted": False, "sql_status": "accepted"}
    for i in range(32, 40):
        reason = "bad fit" if i < 38 else "no budget"
        rows[i] |= {"converted": False, "sql_status": "rejected", "rejection_reason": reason}
    for i in range(40, 45):
        rows[i] |= {"scored_at": CONTRACT_NOW - timedelta(days=10)}
    joined = pd.DataFrame(rows)
    joined["converted"] = joined["converted"].astype("boolean")
    joined["policy_version"] = joined["policy_version"].astype("Int64")
    joined["scored_at"] = pd.to_datetime(joined["scored_at"], utc=True)
    return joined.drop(columns=["converted", "sql_status", "rejection_reason"]), joined


PROMISE = {
    "precision": 0.70,
    "mql_share": 0.50,
    "intervals": {"precision": [0.65, 0.75], "mql_share": [0.45, 0.55]},
    "grades": [{"grade": "A", "n": 100, "conversions": 70, "conversion_rate": 0.7},
               {"grade": "C", "n": 100, "conversions": 10, "conversion_rate": 0.1}],
}  # fmt: skip


def hand_wilson(k: float, n: float, z: float = 1.6448536269514722) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_the_contract_figures_on_a_constructed_case() -> None:
    ledger, joined = constructed_case()
    holdout_y = np.r_[np.ones(70), np.zeros(30), np.ones(10), np.zeros(90)].astype(int)
    holdout_p = np.r_[np.full(100, 0.7), np.full(100, 0.1)]

    report = mql_contract(
        ledger, joined, {1: PROMISE}, holdout_y, holdout_p,
        now=CONTRACT_NOW, outcome_window=timedelta(days=30),
    )  # fmt: skip

    [group] = report.groups
    assert (group.policy_version, group.model_version, group.scored, group.mqls) == (
        1,
        "3",
        100,
        50,
    )
    conversion = group.mql_conversion
    assert (conversion.successes, conversion.n, conversion.rate) == (16, 40, 0.4)
    assert (conversion.low, conversion.high) == pytest.approx(hand_wilson(16, 40))
    assert (group.sql_acceptance.successes, group.sql_acceptance.n) == (32, 40)
    assert group.rejection_reasons == {"bad fit": 6, "no budget": 2}
    assert group.mqls_per_week == {"2026-03-02": 22, "2026-03-09": 23, "2026-05-18": 5}
    assert (group.mql_share.successes, group.mql_share.n) == (50, 100)
    assert group.missing == {
        "mqls": 50, "with_outcome": 40, "too_recent": 5, "overdue": 5, "window_days": 30
    }  # fmt: skip
    [grade_a, grade_c] = group.grades
    assert (grade_a.realised.successes, grade_a.realised.n, grade_a.promised.rate) == (16, 40, 0.7)
    assert grade_c.realised.n == 0 and not grade_c.finding.judged
    assert group.calibration["ece"] == pytest.approx(0.3)
    verdicts = {f.figure: f.verdict for f in group.findings}
    assert verdicts == {
        "mql_conversion": "act", "grade_A": "watch", "grade_C": "healthy",
        "sql_acceptance": "healthy", "mql_volume": "healthy", "calibration": "watch",
        "missing_outcomes": "healthy", "below_line_conversion": "healthy",
    }  # fmt: skip
    assert report.score_drift is not None and report.score_drift.psi == pytest.approx(0.0)
    assert report.verdict == "act"
    low, high = hand_wilson(16, 40)
    assert report.reason == (
        "MQLs under MQL policy v1 (model v3) promised 65-75 % conversion; the last 40 with"
        f" outcomes converted 40 % ({low * 100:.0f}-{high * 100:.0f} %): the line is too low for"
        " this model now"
    )
    assert report.to_dict()["groups"][0]["verdict"] == "act"


def test_conversion_below_the_line_comes_from_the_exploration_leads() -> None:
    """Ten of the 50 leads below the line were handed to sales as exploration: four with a 10 %
    chance (weight 10), six with 25 % (weight 4). Won: one of the first four (one is open), two
    of the six. IPW: (10 + 4 + 4) / (3 * 10 + 6 * 4) = 1/3, on Kish's n = 54^2 / 396."""
    ledger, joined = constructed_case()
    holdout = (np.array([1, 0] * 50), np.full(100, 0.5))
    without = mql_contract(ledger, joined, {1: PROMISE}, *holdout, now=CONTRACT_NOW)
    below = without.groups[0].below_line
    assert below is not None and not below.observed and below.rate is None
    assert "below the MQL line is unobserved" in below.sentence
    assert without.to_dict()["below_line"]["observed"] is False

    for frame in (ledger, joined):
        frame["exploration"] = [50 <= i < 60 for i in range(100)]
        frame["selection_probability"] = [
            1.0 if i < 50 else 0.1 if i < 54 else 0.25 if i < 60 else 0.0 for i in range(100)
        ]
    outcomes = [True, False, False, None, True, True, False, False, False, False]
    joined.loc[joined.index[50:60], "converted"] = pd.array(outcomes, dtype="boolean")
    report = mql_contract(ledger, joined, {1: PROMISE}, *holdout, now=CONTRACT_NOW)
    below = report.groups[0].below_line
    assert below is not None and below.observed
    assert (below.n_below, below.n_explored, below.n_labelled) == (50, 10, 9)
    assert below.rate == pytest.approx(1 / 3)
    n_eff = 54**2 / 396
    assert below.effective_n == pytest.approx(n_eff)
    assert (below.low, below.high) == pytest.approx(hand_wilson(n_eff / 3, n_eff))
    assert below.naive_rate == pytest.approx(3 / 50)
    finding = {f.figure: f for f in report.groups[0].findings}["below_line_conversion"]
    assert finding.reason == below.sentence and "33.3 %" in finding.reason
    assert report.to_dict()["groups"][0]["below_line"]["rate"] == pytest.approx(1 / 3)


def test_a_kept_promise_is_healthy_and_too_few_outcomes_are_not_judged() -> None:
    ledger, joined = constructed_case()
    joined.loc[joined.index[16:24], "converted"] = True  # 24 of 40 MQLs converted: 60 %
    kept = mql_contract(
        ledger, joined, {1: PROMISE | {"intervals": {"precision": [0.55, 0.65]}}},
        np.array([1, 0] * 50), np.full(100, 0.5), now=CONTRACT_NOW,
    )  # fmt: skip
    finding = {f.figure: f for f in kept.groups[0].findings}["mql_conversion"]
    assert finding.verdict == "healthy" and finding.reason.endswith("as promised")
    assert kept.promise_checked and kept.to_dict()["promise_checked"] is True

    few = joined.copy()
    few.loc[few.index[10:40], "converted"] = pd.NA
    early = mql_contract(
        ledger, few, {1: PROMISE}, [1, 0] * 50, np.full(100, 0.5), now=CONTRACT_NOW
    )
    finding = {f.figure: f for f in early.groups[0].findings}["mql_conversion"]
    assert finding.verdict == "healthy" and not finding.judged
    assert "only 10 have an outcome yet" in finding.reason
    # Healthy on volume and drift only: the report says the promise is not checked yet.
    assert not early.promise_checked and early.to_dict()["promise_checked"] is False
