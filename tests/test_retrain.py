from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from retrain_sim import LEDGER_START, new_world, score_quarter
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from conftest import demo_config
from leadml import demo
from leadml.errors import DataError
from leadml.retrain import (
    LEAD_ID,
    SCORED_AT,
    WEIGHT,
    Champion,
    GateConfig,
    RetrainConfig,
    add_export,
    below_line_conversion,
    for_training,
    grade_changes,
    lead_fields,
    outcomes_from_events,
    point_in_time_set,
    policy_shift,
    recalibrate,
    retrain_from_ledger,
    retraining_outcomes,
    run_gate,
    split_for_gate,
    trait_changes,
    weighted_metrics,
)
from leadml.store import OutcomeEventIn, OutcomeIn, ScoredLeadIn, Store, create_store_engine
from leadml.threshold import GradeBands, choose_exploration, default_grade_bands
from leadml.train import TrainResult, train_model

T0 = pd.Timestamp("2025-03-01", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def ledger_row(lead: str, at: float, x: float, *, mql: bool = True, **extra: object) -> dict:
    return {
        "lead_id": lead,
        "scored_at": day(at),
        "features": {"lead_source": "Referral", "time_on_site_sec": x},
        "probability": 0.5,
        "is_mql": mql,
        **extra,
    }


def outcome(lead: str, converted: bool | None, at: float, recorded: float | None = None) -> dict:
    return {
        "lead_id": lead,
        "converted": converted,
        "outcome_at": day(at),
        "recorded_at": day(at if recorded is None else recorded),
    }


# --------------------------------------------------------------------------- point in time


def test_point_in_time_join_leaks_nothing_recorded_after_scoring() -> None:
    ledger = pd.DataFrame(
        [
            ledger_row("A", 0, 10),
            # A was re-scored after sales had called it: its features changed.
            ledger_row("A", 20, 900),
            ledger_row("B", 0, 30),
            ledger_row("C", 150, 40),  # too recent: open
            ledger_row("D", 0, 50, mql=False),  # never handed to sales
            ledger_row("E", 0, 60, mql=False, exploration=True, selection_probability=0.05),
            ledger_row("F", 0, 70),  # its win arrives after as_of
            ledger_row("G", 0, 80),  # won, but after its window
        ]
    )
    outcomes = pd.DataFrame(
        [
            outcome("A", None, 3),  # sql_accepted: closes nothing
            outcome("A", True, 5, recorded=6),
            outcome("E", False, 10),
            outcome("F", True, 30, recorded=179),
            outcome("G", True, 120),
            outcome("Z", True, 160),  # the latest outcome that arrived: outcomes through day 160
        ]
    )
    training = point_in_time_set(
        ledger, outcomes, target="converted", as_of=day(170), window_days=90
    )
    frame = training.frame.set_index(LEAD_ID)
    assert frame.loc["A", "time_on_site_sec"] == 10  # as first scored, never the later 900
    assert frame.loc["A", "converted"] == 1
    assert frame.loc["B", "converted"] == 0  # window passed, outcomes have caught up
    assert frame.loc["F", "converted"] == 0  # the win had not arrived by as_of
    assert frame.loc["G", "converted"] == 0
    assert frame.loc["E", "converted"] == 0
    assert frame.loc["E", WEIGHT] == pytest.approx(20.0)
    assert frame.loc["A", WEIGHT] == 1.0
    assert set(frame.index) == {"A", "B", "E", "F", "G"}
    counts = training.counts
    assert counts.open == 1  # C
    assert counts.not_handed_over == 1  # D
    assert counts.later_scores_ignored == 1
    assert counts.won_after_window == 1
    assert counts.exploration_labelled == 1
    assert counts.labelled == 5 and counts.converted == 1

    # What the CRM export says today about a ledger lead is never used either.
    export = pd.DataFrame(
        {
            "lead_id": ["A", "H"],
            "lead_source": ["Referral", "Social"],
            "time_on_site_sec": [5000, 20],
            "converted": [0, 1],
            "created_at": ["2024-01-01", "2024-01-02"],
        }
    )
    combined = add_export(
        training, export, positive_label="1", id_column="lead_id", time_column="created_at"
    )
    rows = combined.frame.set_index(LEAD_ID)
    assert rows.loc["A", "time_on_site_sec"] == 10
    assert rows.loc["H", "converted"] == 1
    assert combined.counts.export_rows == 1 and combined.counts.export_in_ledger == 1
    train_frame = combined.training_frame("lead_id")
    assert {"lead_id", "converted", WEIGHT} <= set(train_frame.columns)
    assert SCORED_AT not in train_frame.columns


def test_the_window_waits_for_the_outcomes_to_arrive() -> None:
    ledger = pd.DataFrame([ledger_row("A", 0, 10), ledger_row("B", 0, 10)])
    # By the wall clock A's 90-day window passed long ago, but the outcomes feed has only
    # caught up to day 60: A is open, not lost.
    outcomes = pd.DataFrame([outcome("B", False, 60)])
    training = point_in_time_set(
        ledger, outcomes, target="converted", as_of=day(200), window_days=90
    )
    assert list(training.frame[LEAD_ID]) == ["B"]
    assert training.counts.open == 1
    later = point_in_time_set(
        ledger,
        outcomes,
        target="converted",
        as_of=day(200),
        window_days=90,
        outcomes_through=day(100),
    )
    assert sorted(later.frame[LEAD_ID]) == ["A", "B"]


def test_leads_nobody_called_count_only_when_every_outcome_is_recorded() -> None:
    ledger = pd.DataFrame([ledger_row("A", 0, 10), ledger_row("D", 0, 10, mql=False)])
    outcomes = pd.DataFrame([outcome("A", True, 5), outcome("D", True, 100)])
    honest = point_in_time_set(ledger, outcomes, target="converted", as_of=day(200))
    assert list(honest.frame[LEAD_ID]) == ["A"]
    assert honest.counts.not_handed_over_with_outcome == 1
    everyone = point_in_time_set(
        ledger, outcomes, target="converted", as_of=day(200), all_leads_observed=True
    )
    assert sorted(everyone.frame[LEAD_ID]) == ["A", "D"]


def test_outcome_events_map_to_converted() -> None:
    events = pd.DataFrame(
        {
            "lead_id": ["A", "A", "B", "C"],
            "event": ["sql_accepted", "won", "sql_rejected", "lost"],
            "outcome_at": ["2025-01-01", "2025-02-01", "2025-01-03", "2025-01-04"],
            "recorded_at": ["2025-01-01", "2025-02-01", "2025-01-03", "2025-01-04"],
        }
    )
    rows = outcomes_from_events(events)
    assert rows["converted"].tolist()[1:] == [True, False, False]
    assert rows["converted"].isna().tolist() == [True, False, False, False]


def test_outcomes_posted_to_the_store_label_leads_as_they_arrived(tmp_path: Path) -> None:
    """Outcome events from the store (as POST /v1/outcomes and `leadml outcomes import` leave
    them) label the ledger's leads point in time: a correction that arrives after `as_of` is not
    seen; a lead known only from the older per-lead table still counts."""
    clock = [day(0).to_pydatetime()]
    store = Store(create_store_engine(f"sqlite:///{tmp_path / 'l.db'}"), clock=lambda: clock[0])
    store.migrate()
    store.record_scores(
        [
            ScoredLeadIn(
                model_name="m",
                model_version="1",
                probability=0.5,
                score=50,
                grade="B",
                is_mql=True,
                features={"lead_source": "Referral", "time_on_site_sec": float(i)},
                lead_id=lead,
                scored_at=day(0).to_pydatetime(),
            )
            for i, lead in enumerate(["A", "B", "C"])
        ]
    )
    clock[0] = day(10).to_pydatetime()
    store.record_outcome_events(
        [
            OutcomeEventIn(lead_id="A", event="lost", occurred_at=day(9).to_pydatetime()),
            OutcomeEventIn(lead_id="B", event="sql_accepted", occurred_at=day(9).to_pydatetime()),
        ]
    )
    clock[0] = day(40).to_pydatetime()
    store.record_outcome_events(
        [
            OutcomeEventIn(lead_id="A", event="won", occurred_at=day(30).to_pydatetime()),
            OutcomeEventIn(lead_id="B", event="won", occurred_at=day(35).to_pydatetime()),
        ]
    )
    clock[0] = day(5).to_pydatetime()
    store.record_outcomes(
        [OutcomeIn(lead_id="C", converted=True, outcome_at=day(4).to_pydatetime())]
    )
    per_lead = store.outcomes_frame()
    outcomes = retraining_outcomes(store.outcome_events_frame(), per_lead)
    ledger = store.ledger_frame(model_name="m")
    store.close()

    def labels(as_of: float, known: pd.DataFrame = outcomes) -> dict[str, int]:
        training = point_in_time_set(ledger, known, target="converted", as_of=day(as_of))
        return dict(zip(training.frame[LEAD_ID], training.frame["converted"], strict=True))

    # Day 20: A's loss has arrived, B is only accepted (open), C won before events existed.
    assert labels(20) == {"A": 0, "C": 1}
    # Day 50: the correction to won and B's win have arrived.
    assert labels(50) == {"A": 1, "B": 1, "C": 1}
    # The per-lead table says A won, stamped with its first arrival (day 10): read alone, the
    # correction would leak back to day 20.
    assert labels(20, per_lead)["A"] == 1


def test_bad_window_is_refused() -> None:
    with pytest.raises(DataError, match="window"):
        point_in_time_set(
            pd.DataFrame([ledger_row("A", 0, 1)]),
            pd.DataFrame([outcome("A", True, 1)]),
            target="converted",
            as_of=day(10),
            window_days=0,
        )


# --------------------------------------------------------------------------- below the line


def test_inverse_propensity_recovers_the_truth_below_the_line() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    score = rng.random(n)
    truth = rng.random(n) < 0.02 + 0.5 * score**2  # conversion rises with the score
    is_mql = score >= 0.7
    # Leads just below the line are explored more often than those far below it.
    chance = np.where(is_mql, 1.0, np.where(score > 0.35, 0.10, 0.02))
    explored = ~is_mql & (rng.random(n) < chance)
    worked = is_mql | explored
    label = np.where(worked, truth.astype(float), np.nan)
    true_rate = truth[~is_mql].mean()

    estimate = below_line_conversion(is_mql, explored, chance, label)
    assert estimate.observed
    assert estimate.low <= true_rate <= estimate.high
    assert abs(estimate.rate - true_rate) < 0.01
    width = estimate.high - estimate.low
    # Taking unworked leads as lost, or the explored leads as they come, is far off.
    assert estimate.naive_rate < true_rate - 3 * width
    unweighted = truth[explored].mean()
    assert unweighted > true_rate + width


def test_without_exploration_conversion_below_the_line_is_unobserved() -> None:
    is_mql = np.array([True, False, False])
    estimate = below_line_conversion(
        is_mql, np.zeros(3, bool), np.array([1.0, 0.0, 0.0]), np.array([1.0, np.nan, np.nan])
    )
    assert not estimate.observed and estimate.rate is None
    assert "unobserved" in estimate.sentence


def test_exploration_flags_a_share_of_the_leads_below_the_line() -> None:
    rng = np.random.default_rng(0)
    is_mql = rng.random(20_000) < 0.3
    explored, chance = choose_exploration(is_mql, 0.05, rng.random(20_000))
    assert not (explored & is_mql).any()
    assert explored[~is_mql].mean() == pytest.approx(0.05, abs=0.006)
    assert set(chance[is_mql]) == {1.0} and set(chance[~is_mql]) == {0.05}


# --------------------------------------------------------------------------- metrics


def test_weighted_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    p = np.round(rng.random(2000), 2)
    y = (rng.random(2000) < p).astype(int)
    w = rng.choice([1.0, 20.0], 2000)
    got = weighted_metrics(y, p, w)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, p, sample_weight=w))
    assert got["brier"] == pytest.approx(brier_score_loss(y, p, sample_weight=w))


# --------------------------------------------------------------------------- the gate


@pytest.fixture(scope="module")
def champion() -> TrainResult:
    old = demo.generate_leads(5000, seed=11)
    return train_model(old, demo_config(candidates=("logistic",)))


def challenger_for(quarter, champion: TrainResult, **config: object):  # type: ignore[no-untyped-def]
    training = point_in_time_set(
        quarter.ledger, quarter.outcomes, target=demo.TARGET, as_of=quarter.as_of
    )
    split = split_for_gate(training, LEDGER_START)
    result = train_model(
        for_training(split.train, demo.ID_COLUMN),
        demo_config(candidates=("logistic",), weight_column=WEIGHT, **config),
    )
    return result, split.gate, lead_fields(split.gate, demo.TARGET)


def test_gate_promotes_when_a_channel_stopped_converting(champion: TrainResult) -> None:
    leads = new_world(8000, seed=5, dead_channel="Organic Search")
    proba = champion.pipeline.predict_proba(leads)[:, 1]
    cutoff = float(np.quantile(champion.holdout_proba, 0.7))
    quarter = score_quarter(leads, proba, cutoff, exploration_share=0.2, seed=5)
    challenger, gate, gate_leads = challenger_for(quarter, champion)
    y = gate[demo.TARGET].to_numpy()
    result = run_gate(
        y,
        champion.pipeline.predict_proba(gate_leads)[:, 1],
        challenger.pipeline.predict_proba(gate_leads)[:, 1],
        weights=gate[WEIGHT].to_numpy(),
        config=GateConfig(margin=0.01),
    )
    assert result.promoted, result.sentence
    auc = result.comparison("roc_auc")
    assert auc.difference >= 0.01 and auc.low > 0
    # The challenger learned that the channel no longer converts.
    organic = gate_leads["lead_source"] == "Organic Search"
    assert challenger.pipeline.predict_proba(gate_leads[organic])[:, 1].mean() < 0.5 * (
        champion.pipeline.predict_proba(gate_leads[organic])[:, 1].mean()
    )


def test_gate_refuses_a_worse_challenger(champion: TrainResult) -> None:
    leads = new_world(8000, seed=6)
    proba = champion.pipeline.predict_proba(leads)[:, 1]
    cutoff = float(np.quantile(champion.holdout_proba, 0.7))
    quarter = score_quarter(leads, proba, cutoff, exploration_share=0.2, seed=6)
    worse, gate, gate_leads = challenger_for(quarter, champion, exclude=demo.STRONGEST_TRAITS[:2])
    result = run_gate(
        gate[demo.TARGET].to_numpy(),
        champion.pipeline.predict_proba(gate_leads)[:, 1],
        worse.pipeline.predict_proba(gate_leads)[:, 1],
        weights=gate[WEIGHT].to_numpy(),
    )
    assert not result.promoted
    assert result.comparison("roc_auc").difference < 0
    assert "not better" in result.sentence


def test_gate_refuses_on_too_few_outcomes() -> None:
    y = np.array([0, 1] * 10)
    result = run_gate(y, np.full(20, 0.5), np.linspace(0.1, 0.9, 20))
    assert not result.promoted and "too few recent outcomes" in result.sentence


def test_gate_refuses_worse_calibration_despite_better_ranking() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(4000) * 0.6
    y = (rng.random(4000) < p).astype(int)
    champion = np.clip(p + rng.normal(0, 0.15, 4000), 0.001, 0.999)  # noisier, calibrated
    challenger = np.clip(p * 1.6, 0, 1)  # ranks perfectly, overconfident
    result = run_gate(y, champion, challenger, config=GateConfig(n_boot=200))
    assert result.comparison("roc_auc").low > 0
    assert not result.promoted
    assert "calibration is worse" in result.sentence


# --------------------------------------------------------------------------- the diff


def test_grade_and_mql_changes_are_counted() -> None:
    bands = GradeBands(("A", "B", "C", "D"), (0.8, 0.5, 0.2, 0.0))
    old = np.array([0.9, 0.6, 0.6, 0.3, 0.1, 0.55])
    new = np.array([0.9, 0.4, 0.85, 0.6, 0.1, 0.52])
    changes = grade_changes(
        old,
        new,
        champion_cutoff=0.5,
        champion_bands=bands,
        challenger_cutoff=0.5,
        challenger_bands=bands,
    )
    # grades A B B C D B -> A C A B D B
    assert changes.changed_grade == 3
    assert changes.became_mql == 1  # the 0.3 -> 0.6 lead
    assert changes.dropped_from_mql == 1  # the 0.6 -> 0.4 lead
    assert changes.crosstab.loc["B", "A"] == 1
    assert "3 change grade" in changes.sentence()


def test_capacity_keeps_its_share_and_precision_moves_its_cutoff() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    champion = p
    challenger = p**2  # same ranking, different probabilities
    capacity = policy_shift(
        "capacity",
        {"kind": "capacity", "per_week": 20, "leads_per_week": 100},
        0.8,
        y,
        champion,
        challenger,
    )
    assert capacity.challenger_mql_share == pytest.approx(0.2, abs=0.002)
    assert capacity.challenger_cutoff == pytest.approx(np.quantile(p, 0.8) ** 2, abs=0.005)
    assert "keeps its share of 20.0 %" in capacity.sentence
    precision = policy_shift(
        "min_precision",
        {"kind": "min_precision", "min_precision": 0.8},
        0.6,
        y,
        champion,
        challenger,
    )
    assert precision.challenger_cutoff == pytest.approx(precision.champion_cutoff**2, abs=0.03)
    assert f"by {precision.cutoff_change:+.4g}" in precision.sentence


def test_capacity_is_resolved_on_the_current_leads_not_the_worked_ones() -> None:
    """Without exploration the labelled leads are the champion's MQLs only: the top 30 % of
    them is not the top 30 % of the leads coming in. The current leads' scores (no outcome
    needed for a share) put the line where the capacity says."""
    rng = np.random.default_rng(3)
    current = rng.random(10_000)
    worked = current[current >= 0.7]  # sales only worked the old MQLs
    y = (rng.random(len(worked)) < worked).astype(int)
    params = {"kind": "capacity", "per_week": 30, "leads_per_week": 100}
    on_worked = policy_shift("capacity", params, 0.7, y, worked, worked)
    assert on_worked.challenger_cutoff > 0.85  # the top 30 % of the MQLs: far too few MQLs
    fair = policy_shift(
        "capacity",
        params,
        0.7,
        y,
        worked,
        worked,
        current_champion_proba=current,
        current_challenger_proba=current,
    )
    assert fair.challenger_cutoff == pytest.approx(np.quantile(current, 0.7), abs=0.005)
    assert fair.challenger_mql_share == pytest.approx(0.3, abs=0.002)
    assert fair.champion_mql_share == pytest.approx(0.3, abs=0.01)
    assert "of current leads" in fair.sentence


def test_trait_changes_line_up_fields() -> None:
    before = pd.DataFrame({"field": ["a", "b"], "share": [0.7, 0.3], "summary": ["A", "B"]})
    after = pd.DataFrame({"field": ["b", "c"], "share": [0.6, 0.4], "summary": ["B2", "C"]})
    table = trait_changes(before, after).set_index("field")
    assert list(table.index) == ["b", "c", "a"]
    assert table.loc["b", "change"] == pytest.approx(0.3)
    assert table.loc["a", "share_after"] == 0.0 and table.loc["c", "share_before"] == 0.0


# --------------------------------------------------------------------------- recalibration


def test_recalibration_fixes_drift_without_changing_the_ranking(champion: TrainResult) -> None:
    leads = new_world(8000, seed=7, log_odds_shift=-1.2)  # everyone converts less now
    recent, later = leads.iloc[:4000], leads.iloc[4000:]
    y_recent, y_later = recent[demo.TARGET].to_numpy(), later[demo.TARGET].to_numpy()
    before = champion.pipeline.predict_proba(later)[:, 1]
    pipeline, method = recalibrate(champion.pipeline, recent, y_recent)
    after = pipeline.predict_proba(later)[:, 1]
    drifted = weighted_metrics(y_later, before)
    fixed = weighted_metrics(y_later, after)
    assert drifted["ece"] > 0.08
    assert fixed["ece"] < drifted["ece"] / 2
    assert fixed["brier"] < drifted["brier"]
    assert spearmanr(before, after).statistic > 0.999
    order = np.argsort(before, kind="stable")
    assert np.all(np.diff(after[order]) >= -1e-12)  # never reorders two leads
    result = run_gate(y_later, before, after, config=GateConfig(mode="recalibrate"))
    assert result.promoted, result.sentence
    assert method in ("sigmoid", "centered isotonic")


# --------------------------------------------------------------------------- one retrain


def champion_of(result: TrainResult, trained_at: pd.Timestamp) -> Champion:
    cutoff = float(np.quantile(result.holdout_proba, 0.7))
    return Champion(
        pipeline=result.pipeline,
        schema=result.schema,
        kind=result.model_kind,
        version="1",
        trained_at=trained_at.isoformat(),
        holdout_roc_auc=result.metrics["roc_auc"],
        policy_kind="capacity",
        policy_params={"kind": "capacity", "per_week": 30, "leads_per_week": 100},
        cutoff=cutoff,
        bands=default_grade_bands(result.holdout_proba, cutoff),
    )


def test_retrain_from_the_ledger_reports_gate_diff_and_line(champion: TrainResult) -> None:
    leads = new_world(8000, seed=8, dead_channel="Organic Search")
    model = champion_of(champion, LEDGER_START)
    proba = champion.pipeline.predict_proba(leads)[:, 1]
    quarter = score_quarter(leads, proba, model.cutoff, exploration_share=0.2, seed=8)
    outcome = retrain_from_ledger(
        quarter.ledger,
        quarter.outcomes,
        model,
        model_name="lead-scoring",
        as_of=quarter.as_of,
        config=RetrainConfig(
            gate=GateConfig(n_boot=200, margin=0.01), candidates=("logistic",), cv_folds=3
        ),
    )
    report = outcome.report
    assert outcome.result is not None
    assert report.gate.promoted, report.gate.sentence
    assert report.policy is not None and report.grades is not None
    assert report.policy.challenger_mql_share == pytest.approx(0.3, abs=0.02)
    assert report.grades.became_mql + report.grades.dropped_from_mql > 0
    assert report.below_line is not None and report.below_line.observed
    truth_below = leads.loc[proba < model.cutoff, demo.TARGET].mean()
    assert report.below_line.low <= truth_below <= report.below_line.high
    text = report.text()
    for part in (
        "Verdict: promoted",
        "Training set",
        "Gate:",
        "What drives",
        "Current leads",
        "MQL line",
        "Below the line",
    ):
        assert part in text
    assert report.to_dict()["promoted"] is True


def test_without_exploration_the_report_says_below_the_line_is_unobserved(
    champion: TrainResult,
) -> None:
    leads = new_world(6000, seed=9)
    model = champion_of(champion, LEDGER_START)
    proba = champion.pipeline.predict_proba(leads)[:, 1]
    quarter = score_quarter(leads, proba, model.cutoff, exploration_share=0.0, seed=9)
    outcome = retrain_from_ledger(
        quarter.ledger,
        quarter.outcomes,
        model,
        model_name="lead-scoring",
        as_of=quarter.as_of,
        config=RetrainConfig(recalibrate_only=True, gate=GateConfig(n_boot=100)),
    )
    assert outcome.report.below_line is not None
    assert not outcome.report.below_line.observed
    assert "unobserved" in outcome.report.text()
    assert outcome.report.counts.not_handed_over > 0


def test_recalibration_only_is_refused_when_the_ranking_no_longer_holds(
    champion: TrainResult,
) -> None:
    leads = new_world(6000, seed=10)
    leads[demo.TARGET] = np.random.default_rng(0).permutation(leads[demo.TARGET].to_numpy())
    model = champion_of(champion, LEDGER_START)
    proba = champion.pipeline.predict_proba(leads)[:, 1]
    quarter = score_quarter(leads, proba, model.cutoff, exploration_share=0.2, seed=10)
    outcome = retrain_from_ledger(
        quarter.ledger,
        quarter.outcomes,
        model,
        model_name="lead-scoring",
        as_of=quarter.as_of,
        config=RetrainConfig(recalibrate_only=True, gate=GateConfig(n_boot=100)),
    )
    assert outcome.result is None and not outcome.report.gate.promoted
    assert "ranking no longer holds" in outcome.report.gate.sentence


def test_nothing_is_labelled_before_its_outcome_arrived() -> None:
    ledger = pd.DataFrame([ledger_row("A", 0, 10)])
    outcomes = pd.DataFrame([outcome("A", True, 2, recorded=400)])
    training = point_in_time_set(ledger, outcomes, target="converted", as_of=day(5))
    assert training.frame.empty
    assert training.counts.open == 1 and training.counts.outcomes_through is None
