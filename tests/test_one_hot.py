"""Categories as one-hot columns, chosen by cross-validation and written back as one booster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train import leads_whose_outcome_is

from conftest import demo_config
from leadml import demo, train
from leadml.bundle import write_trained_bundle
from leadml.data import target_vector
from leadml.explain import Explainer
from leadml.fastpath import CompiledPredictor, probe_leads, verify_fast_path
from leadml.features import LeadPreparer
from leadml.models import fit_head, make_head, native_from_one_hot, one_hot_matrix
from leadml.report import model_card
from leadml.schema import infer_schema
from leadml.scoring import Scorer
from leadml.train import NATIVE_CATEGORIES, ONE_HOT_CATEGORIES, TrainResult, train_model
from leadml.treeshap import TreeShap

pytestmark = [pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")]

TEXT_COLUMNS = ("lead_source", "campaign", "country", "industry", "company_size", "job_level")


def one_value_of_each_text_column(leads: pd.DataFrame) -> np.ndarray:
    """One value of each text column raises the chance; the others say nothing: what a split
    that takes one category out (a one-hot column) finds directly."""
    log_odds = np.full(len(leads), -1.5)
    for column in TEXT_COLUMNS:
        value = leads[column].value_counts().index[3]
        log_odds += np.where(leads[column] == value, 1.2, 0.0)
    return log_odds


def every_value_its_own_effect(leads: pd.DataFrame) -> np.ndarray:
    """Every value of every text column moves the chance by its own amount: what a split that
    sends a set of categories each way (native categorical splits) fits with fewer trees."""
    rng = np.random.default_rng(1)
    log_odds = np.full(len(leads), -1.0)
    for column in TEXT_COLUMNS:
        values = leads[column].astype(str)
        distinct = values.unique()
        effects = dict(zip(distinct, rng.normal(0.0, 0.7, len(distinct)), strict=True))
        log_odds += values.map(effects).to_numpy(dtype=float)
    return log_odds


@pytest.fixture(scope="module")
def one_hot_result() -> TrainResult:
    leads = leads_whose_outcome_is(one_value_of_each_text_column, seed=5)
    return train_model(leads, demo_config(candidates=("lightgbm",)))


def head_of(result: TrainResult) -> object:
    return result.pipeline.named_steps["model"].calibrated_classifiers_[0].estimator.estimator


def test_one_value_per_text_column_is_learnt_on_one_hot_columns(
    one_hot_result: TrainResult,
) -> None:
    [score] = one_hot_result.selection
    assert score.category_encoding == ONE_HOT_CATEGORIES, score.category_encoding_reason
    assert "Categories: categories as one-hot columns" in model_card(one_hot_result, "hot")
    report = one_hot_result.report()["cv"][0]
    assert report["category_encoding"] == ONE_HOT_CATEGORIES
    assert NATIVE_CATEGORIES in report["category_encoding_reason"]  # the loss it beat
    # The model is one booster on the prepared columns, with native categorical splits.
    preparer = one_hot_result.pipeline.named_steps["prepare"]
    booster = head_of(one_hot_result).booster_  # type: ignore[attr-defined]
    assert booster.num_feature() == preparer.n_features_out_
    assert '"decision_type": "=="' in str(booster.dump_model()).replace("'", '"')


def test_every_value_with_its_own_effect_keeps_native_categories() -> None:
    leads = leads_whose_outcome_is(every_value_its_own_effect, seed=5)
    [score] = train_model(leads, demo_config(candidates=("lightgbm",))).selection
    assert score.category_encoding == NATIVE_CATEGORIES, score.category_encoding_reason


def test_the_written_back_model_gives_the_one_hot_models_margins() -> None:
    """Also for values it never saw and for no value, which one-hot columns see as all zeros
    (or the missing column) and the rewritten splits must send the same way."""
    frame = demo.generate_leads(3000, seed=3)
    y, positive = target_vector(frame[demo.TARGET], None)
    schema = infer_schema(frame, demo.TARGET, positive, id_column=demo.ID_COLUMN)
    preparer = LeadPreparer(schema).fit()
    X = preparer.transform(frame)
    grown = fit_head(
        make_head("lightgbm", preparer, 0, len(y), n_estimators=150),
        one_hot_matrix(preparer, X),
        y,
        preparer,
        categorical_feature="auto",
    )
    native = native_from_one_hot(grown, preparer, X, y)
    odd = frame.head(300).copy()
    for column in TEXT_COLUMNS:
        odd.loc[odd.index[:100], column] = "never seen"
        odd.loc[odd.index[100:200], column] = None
    X_odd = preparer.transform(odd)
    expected = grown.booster_.predict(one_hot_matrix(preparer, X_odd), raw_score=True)
    np.testing.assert_allclose(native.booster_.predict(X_odd, raw_score=True), expected, atol=1e-9)
    assert native.booster_.num_trees() == grown.booster_.num_trees() == 150


def test_one_hot_reasons_are_exact_and_the_fast_path_and_bundle_agree(
    one_hot_result: TrainResult, tmp_path: Path
) -> None:
    pipeline = one_hot_result.pipeline
    preparer = pipeline.named_steps["prepare"]
    probes = pd.DataFrame(probe_leads(one_hot_result.schema, 1000, seed=2))
    X = preparer.transform(probes)
    explainer = Explainer(preparer, head_of(one_hot_result))
    contributions = explainer.contributions(X)
    margin = explainer.margin(X)
    np.testing.assert_allclose(contributions.sum(axis=1) + explainer.base_value, margin, atol=1e-9)
    booster = head_of(one_hot_result).booster_  # type: ignore[attr-defined]
    compiled = TreeShap.for_booster(booster)
    assert compiled is not None
    exact = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(compiled.contributions(X), exact, atol=1e-9)
    # The fast path and a saved bundle give the pipeline's probabilities.
    assert verify_fast_path(CompiledPredictor(pipeline), pipeline, probes) <= 1e-9
    write_trained_bundle(tmp_path, one_hot_result, name="one-hot", version="1")
    loaded = Scorer.load(tmp_path)
    np.testing.assert_allclose(
        loaded.pipeline.predict_proba(probes)[:, 1],
        pipeline.predict_proba(probes)[:, 1],
        atol=1e-12,
    )


def test_above_the_row_budget_one_hot_columns_are_not_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extra cross-validation is skipped on large exports, and the report says so."""
    monkeypatch.setattr(train, "ONE_HOT_MAX_ROWS", 1000)
    leads = leads_whose_outcome_is(one_value_of_each_text_column, seed=5)
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    [score] = result.selection
    assert score.category_encoding == NATIVE_CATEGORIES
    assert "tried only up to 1,000 cross-validated leads" in str(score.category_encoding_reason)
    assert "Categories: categories as native categorical splits" in model_card(result, "big")
