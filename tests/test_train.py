from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import DEMO_ROWS, demo_config
from leadml import demo
from leadml.errors import DataError
from leadml.models import TREE_SHAPES
from leadml.report import model_card
from leadml.schema import Role, datetime_feature_names
from leadml.train import (
    FEATURE_MIN_Z,
    HIGH_CARDINALITY_VALUES,
    CandidateScore,
    TrainResult,
    select_candidate,
    train_model,
)


def permutation_drop(result: TrainResult, column: str, seed: int = 0) -> float:
    leads = result.holdout.copy()
    base = roc_auc_score(result.holdout_y, result.holdout_proba)
    leads[column] = leads[column].sample(frac=1.0, random_state=seed).to_numpy()
    shuffled = result.pipeline.predict_proba(leads)[:, 1]
    return float(base - roc_auc_score(result.holdout_y, shuffled))


def test_post_outcome_columns_are_found_and_excluded(demo_result: TrainResult) -> None:
    schema = demo_result.schema
    assert set(demo_result.leakage.excluded()) == set(demo.LEAKY_COLUMNS)
    for column in demo.LEAKY_COLUMNS:
        assert schema.column(column).role is Role.LEAKAGE
        assert schema.column(column).evidence
    excluded = {c["column"]: c for c in demo_result.report()["columns_excluded"]}
    assert excluded["sales_status"]["reason"] == "leakage"


def test_honest_strong_traits_are_kept(demo_result: TrainResult) -> None:
    for trait in demo.STRONGEST_TRAITS:
        assert demo_result.schema.column(trait).is_feature, trait


def test_recovers_the_strongest_ground_truth_traits(demo_result: TrainResult) -> None:
    drops = {
        column: permutation_drop(demo_result, column) for column in demo_result.schema.feature_names
    }
    top = sorted(drops, key=drops.__getitem__, reverse=True)[: len(demo.STRONGEST_TRAITS) + 1]
    assert set(demo.STRONGEST_TRAITS) <= set(top), drops
    assert drops["newsletter_opt_in"] < 0.01


def test_the_traits_that_convert_are_the_true_ones(demo_result: TrainResult) -> None:
    traits = demo_result.traits
    # company_size acts only through its interaction with job_level, which TreeSHAP shares out.
    direct = {"requested_demo", "time_on_site_sec", "job_level"}
    assert direct <= set(demo.STRONGEST_TRAITS)
    assert set(traits["field"].head(3)) == direct
    assert "company_size" in set(traits["field"].head(7))
    assert traits.set_index("field").loc["newsletter_opt_in", "share"] < 0.02
    assert traits["share"].sum() == pytest.approx(1.0)
    assert traits["importance"].is_monotonic_decreasing
    summary = traits.set_index("field")["summary"]
    assert summary["requested_demo"].startswith("Requested demo: yes raises the chance")
    assert "higher values raise the chance" in summary["time_on_site_sec"]
    report = demo_result.report()
    assert report["traits"][0]["field"] == traits["field"].iloc[0]


def test_probabilities_are_calibrated(demo_result: TrainResult) -> None:
    assert demo_result.metrics["ece"] < 0.05
    assert abs(demo_result.holdout_proba.mean() - demo_result.holdout_y.mean()) < 0.04


def test_gradient_boosting_beats_logistic_on_the_nonlinear_truth(
    demo_result: TrainResult,
) -> None:
    scores = {s.name: s for s in demo_result.selection}
    assert scores["lightgbm"].roc_auc > scores["logistic"].roc_auc + 0.01
    assert scores["lightgbm"].log_loss < scores["logistic"].log_loss
    assert scores["lightgbm"].pr_auc > scores["logistic"].pr_auc
    assert demo_result.model_kind == "lightgbm"
    assert "lightgbm chosen" in demo_result.selection_reason


def test_close_scores_prefer_the_simpler_model() -> None:
    chosen, reason = select_candidate(
        [
            CandidateScore("logistic", 0.8, 0.600, 0.4, 0.01, 1.0),
            CandidateScore("lightgbm", 0.8, 0.603, 0.4, 0.01, 1.0),
        ]
    )
    assert chosen == "logistic" and "easier to explain" in reason


def test_report_has_what_a_machine_needs(demo_result: TrainResult) -> None:
    report = demo_result.report()
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile"):
        assert 0 <= report["metrics"][key] < 10
    assert report["model"] == demo_result.model_kind
    assert set(report["columns_used"]) == set(demo_result.schema.feature_names)
    reasons = {c["column"]: c["reason"] for c in report["columns_excluded"]}
    assert reasons["lead_id"] == "id"
    flagged = {c["column"]: c for c in report["columns_flagged"]}
    assert all(c["reason"] == "leakage_suspect" and c["detail"] for c in flagged.values())
    assert not set(flagged) & set(reasons)
    assert report["split"]["by_time"] is True
    assert len(report["gains"]) == 10


# -- behavioural tests of the trained model (invariance, direction, minimum functionality) --
def test_invariance_to_the_lead_id_and_unused_columns(demo_result: TrainResult) -> None:
    leads = demo_result.holdout.head(200).copy()
    before = demo_result.pipeline.predict_proba(leads)[:, 1]
    leads["lead_id"] = [f"other-{i}" for i in range(len(leads))]
    leads["sales_status"] = "Closed - Won"
    after = demo_result.pipeline.predict_proba(leads)[:, 1]
    np.testing.assert_array_equal(before, after)


def test_direction_requesting_a_demo_raises_the_chance(demo_result: TrainResult) -> None:
    leads = demo_result.holdout.head(300).copy()
    leads["requested_demo"] = "No"
    without = demo_result.pipeline.predict_proba(leads)[:, 1]
    leads["requested_demo"] = "Yes"
    with_demo = demo_result.pipeline.predict_proba(leads)[:, 1]
    assert (with_demo >= without - 1e-9).mean() > 0.95
    assert with_demo.mean() > without.mean() + 0.1


def test_minimum_functionality_hot_lead_beats_cold_lead(demo_result: TrainResult) -> None:
    hot = {
        "lead_source": "Referral",
        "job_level": "VP",
        "company_size": "201-1000",
        "time_on_site_sec": 900,
        "requested_demo": "Yes",
        "days_since_last_activity": 0,
        "email_clicks": 4,
    }
    cold = {
        "lead_source": "Social",
        "job_level": "Student",
        "company_size": "1-10",
        "time_on_site_sec": 10,
        "requested_demo": "No",
        "days_since_last_activity": 60,
        "email_clicks": 0,
    }
    proba = demo_result.pipeline.predict_proba(pd.DataFrame([hot, cold]))[:, 1]
    assert proba[0] > 0.6 > 0.1 > proba[1]


def test_refuses_data_without_enough_outcomes(demo_frame: pd.DataFrame) -> None:
    few = pd.concat(
        [demo_frame[demo_frame.converted == 1].head(10), demo_frame[demo_frame.converted == 0]]
    )
    with pytest.raises(DataError, match="at least 40 of each"):
        train_model(few, demo_config())


def test_keep_overrides_the_leakage_guard(demo_frame: pd.DataFrame) -> None:
    result = train_model(
        demo_frame.head(1500), demo_config(keep=("sales_status",), candidates=("logistic",))
    )
    assert result.schema.column("sales_status").is_feature
    assert any("sales_status" in w for w in result.schema.warnings)


def test_open_leads_are_left_out_not_counted_as_lost(demo_frame: pd.DataFrame) -> None:
    leads = demo_frame.head(2000).copy()
    leads["converted"] = leads["converted"].astype(object)
    leads.loc[leads.index[:150], "converted"] = None
    leads.loc[leads.index[150:200], "converted"] = " "
    result = train_model(leads, demo_config(candidates=("logistic",)))
    assert result.split_sizes["open_leads_left_out"] == 200
    assert result.split_sizes["fit"] + result.split_sizes["holdout"] == 1800


def test_centered_isotonic_keeps_the_ranking_and_the_calibration() -> None:
    from sklearn.isotonic import IsotonicRegression

    from leadml.models import center_isotonic

    rng = np.random.default_rng(0)
    scores = rng.uniform(size=5000)
    outcomes = (rng.uniform(size=5000) < scores**2).astype(int)
    steps = IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes)
    stepped = steps.predict(scores)
    centred = center_isotonic(
        IsotonicRegression(out_of_bounds="clip").fit(scores, outcomes)
    ).predict(scores)
    assert len(np.unique(stepped)) < 100
    assert len(np.unique(centred)) > 4900  # strictly increasing: the ranking survives
    assert np.all(np.diff(centred[np.argsort(scores)]) >= 0)
    assert abs(centred.mean() - outcomes.mean()) < 0.01
    assert np.abs(centred - scores**2).mean() < np.abs(stepped - scores**2).mean() + 0.01
    assert centred.min() >= 0 and centred.max() <= 1


def test_a_shifting_world_is_learnt_from_the_recent_leads() -> None:
    """time-shift demo: from SHIFT_DATE Webinar leads convert far better. The final model learns
    from every non-holdout lead, the recent ones included, so it scores the holdout's Webinar
    leads well above the old rate (a model fitted on the oldest 64 % never saw the shift)."""
    leads = demo.generate_leads(8000, seed=2, variants=("time-shift",))
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    moments = pd.to_datetime(leads[demo.TIME_COLUMN])
    webinar = leads["lead_source"] == "Webinar"
    old_rate = leads.loc[webinar & (moments < demo.SHIFT_DATE), demo.TARGET].mean()
    new_rate = leads.loc[webinar & (moments >= demo.SHIFT_DATE), demo.TARGET].mean()
    assert new_rate > old_rate + 0.25  # the variant shifts the world
    in_holdout = (result.holdout["lead_source"] == "Webinar").to_numpy()
    predicted = result.holdout_proba[in_holdout].mean()
    assert predicted > old_rate + 0.08, (predicted, old_rate, new_rate)
    assert result.split_sizes["fit"] == len(leads) - result.split_sizes["holdout"]


def test_a_many_valued_column_is_a_feature_only_when_it_helps() -> None:
    """landing-page demo: thousands of page ids that say nothing the channel does not; CV finds
    no gain and the column is left out, with the reason in the report. A many-valued column that
    carries the strongest trait (job level written with a title suffix) is kept."""
    leads = demo.generate_leads(DEMO_ROWS, seed=3, variants=("landing-page",))
    assert leads["landing_page_id"].nunique() > 1000
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    [decision] = result.column_decisions
    assert decision.column == "landing_page_id" and decision.distinct_values > 1000
    assert not decision.kept, decision.reason
    assert "landing_page_id" not in result.schema.feature_names
    excluded = {c["column"]: c["detail"] for c in result.report()["columns_excluded"]}
    assert excluded["landing_page_id"] == decision.reason
    assert result.report()["column_decisions"][0]["kept"] is False

    titles = leads.drop(columns="landing_page_id")
    suffix = np.random.default_rng(0).integers(0, 20, len(titles)).astype(str)
    titles["job_title"] = titles["job_level"].fillna("none").str.cat(suffix, sep=" #")
    assert titles["job_title"].nunique() > HIGH_CARDINALITY_VALUES
    kept = train_model(titles, demo_config(candidates=("lightgbm",), exclude=("job_level",)))
    [decision] = kept.column_decisions
    assert decision.column == "job_title" and decision.kept, decision.reason
    assert "job_title" in kept.schema.feature_names


def test_time_features_stay_out_when_the_time_of_day_says_nothing(
    demo_result: TrainResult,
) -> None:
    """The demo's outcome does not depend on when a lead was created: by the paired time-ordered
    test the parts of created_at are left out, and the report says so with the figures."""
    decision = demo_result.time_features
    assert decision is not None and decision.column == demo.TIME_COLUMN
    assert not decision.kept and decision.z <= FEATURE_MIN_Z, decision.reason
    assert demo.TIME_COLUMN not in demo_result.schema.feature_names
    prepared = demo_result.pipeline.named_steps["prepare"].feature_names_out_
    assert not set(datetime_feature_names(demo.TIME_COLUMN)) & set(prepared)
    reported = demo_result.report()["time_features"]
    assert reported["kept"] is False and reported["z"] == decision.z
    assert "not used" in decision.reason and "standard errors" in decision.reason


def test_time_features_are_kept_when_office_hours_convert() -> None:
    """Leads created in office hours on weekdays convert far better (an inbound call desk): the
    time-ordered paired test keeps created_at's parts, and the model uses them."""
    leads = demo.generate_leads(DEMO_ROWS, seed=4).drop(columns=["sales_status", "lead_quality"])
    created = pd.to_datetime(leads[demo.TIME_COLUMN])
    office = (created.dt.weekday < 5) & created.dt.hour.between(9, 16)
    log_odds = demo.true_log_odds(leads) + np.where(office, 1.5, -1.0)
    draws = np.random.default_rng(4).random(len(leads))
    leads[demo.TARGET] = (draws < 1 / (1 + np.exp(-log_odds))).astype(int)
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    decision = result.time_features
    assert decision is not None and decision.kept, decision.reason
    assert decision.z > FEATURE_MIN_Z and decision.log_loss_gain > 0
    assert demo.TIME_COLUMN in result.schema.feature_names
    prepared = result.pipeline.named_steps["prepare"].feature_names_out_
    assert set(datetime_feature_names(demo.TIME_COLUMN)) <= set(prepared)
    assert permutation_drop(result, demo.TIME_COLUMN) > 0.01


def leads_whose_outcome_is(
    truth: Callable[[pd.DataFrame], np.ndarray], seed: int, noise: int = 0
) -> pd.DataFrame:
    """Demo leads (no post-outcome columns) with `noise` random numbers added and the outcome
    drawn again from the log-odds `truth` gives."""
    leads = demo.generate_leads(DEMO_ROWS, seed=seed).drop(columns=["sales_status", "lead_quality"])
    rng = np.random.default_rng(seed)
    for i in range(noise):
        leads[f"noise_{i}"] = rng.normal(size=len(leads))
    log_odds = truth(leads)
    leads[demo.TARGET] = (rng.random(len(leads)) < 1 / (1 + np.exp(-log_odds))).astype(int)
    return leads


def trait_by_trait(leads: pd.DataFrame) -> np.ndarray:
    return (
        0.8 * (leads["requested_demo"] == "yes")
        + 0.6 * np.log1p(leads["web_visits"])
        - 0.05 * leads["days_since_last_activity"].fillna(30)
        + 0.4 * (leads["form_fills"] > 0)
        - 1.0
    ).to_numpy(dtype=float)


def odd_number_of_strong_signals(leads: pd.DataFrame) -> np.ndarray:
    """Converts when an odd number of three activity signals is above the median: no signal
    says anything alone or in pairs, only all three together."""
    signals = [
        leads[column].fillna(0) >= leads[column].median()
        for column in ("web_visits", "email_opens", "time_on_site_sec")
    ]
    odd = (signals[0] ^ signals[1] ^ signals[2]).to_numpy()
    return np.where(odd, 1.5, -1.5) + np.where(leads["requested_demo"] == "yes", 1.0, 0.0)


@pytest.mark.parametrize(
    ("truth", "noise", "expected_shape"),
    [
        (trait_by_trait, 10, "7 leaves, depth 3"),
        (odd_number_of_strong_signals, 0, "15 leaves, depth 5"),
    ],
)
def test_cross_validation_chooses_the_tree_shape_the_outcome_needs(
    truth: Callable[[pd.DataFrame], np.ndarray], noise: int, expected_shape: str
) -> None:
    """An outcome that adds up trait by trait, among noise columns, gets the shallow trees
    (fewer interactions to fit noise with); one that needs three traits at once gets the deeper
    ones. The final model has the chosen shape and the model card says why."""
    leads = leads_whose_outcome_is(truth, seed=5, noise=noise)
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    [score] = result.selection
    assert score.tree_shape == expected_shape, score.tree_shape_reason
    head = result.pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.estimator
    assert (head.num_leaves, head.max_depth) == TREE_SHAPES[expected_shape]
    assert f"Trees: {expected_shape} chosen" in model_card(result, "shape")
