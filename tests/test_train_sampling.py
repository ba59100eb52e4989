"""Large exports: decisions on a seeded sample of the leads, the final model on all of them.

The sampling rules are exercised on small demo data by lowering their thresholds; no timings here
(they are in bench/scaling.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import demo_config
from leadml import demo
from leadml.explain import _calibrated_head, trait_importance
from leadml.train import CV_MAX_ROWS, TrainResult, train_model

pytestmark = pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")

ROWS = 3000
SAMPLE = 1200


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return demo.generate_leads(ROWS, seed=5)


@pytest.fixture(scope="module")
def sampled(leads: pd.DataFrame) -> tuple[TrainResult, TrainResult]:
    """The same training twice, cross-validating on a sample of SAMPLE of the leads."""
    config = demo_config(cv_max_rows=SAMPLE, candidates=("lightgbm",))
    return train_model(leads, config), train_model(leads, config)


def _root_count(result: TrainResult) -> int:
    """How many leads the final model's first tree was grown on (after LightGBM's bagging)."""
    head = _calibrated_head(result.pipeline)
    return int(head.booster_.dump_model()["tree_info"][0]["tree_structure"]["internal_count"])


def test_cross_validation_samples_the_leads_but_the_final_model_learns_from_all(
    sampled: tuple[TrainResult, TrainResult],
) -> None:
    result, _ = sampled
    sizes = result.split_sizes
    assert sizes["cross_validated"] == SAMPLE
    assert sizes["fit"] + sizes["holdout"] == ROWS
    # Time-ordered folds test all blocks but the oldest: the calibrator sees only sampled leads.
    assert sizes["calibrated_out_of_fold"] < SAMPLE
    # LightGBM bags 80 % of the leads per tree: far more than the sample, so all of them.
    assert _root_count(result) > 0.75 * sizes["fit"] > SAMPLE
    assert result.report()["split"]["cross_validated"] == SAMPLE


def test_the_sample_is_the_same_every_time(sampled: tuple[TrainResult, TrainResult]) -> None:
    first, second = sampled
    assert [(a.name, a.roc_auc, a.pr_auc, a.log_loss, a.n_estimators) for a in first.selection] == [
        (b.name, b.roc_auc, b.pr_auc, b.log_loss, b.n_estimators) for b in second.selection
    ]
    np.testing.assert_array_equal(first.holdout_proba, second.holdout_proba)
    assert first.time_features == second.time_features


def test_another_seed_draws_another_sample(leads: pd.DataFrame) -> None:
    config = demo_config(cv_max_rows=SAMPLE, candidates=("lightgbm",))
    scores = {
        seed: train_model(leads, config.__class__(**{**vars(config), "seed": seed})).selection[0]
        for seed in (0, 1)
    }
    assert scores[0].log_loss != scores[1].log_loss


def test_below_the_threshold_every_lead_is_cross_validated(leads: pd.DataFrame) -> None:
    assert ROWS < CV_MAX_ROWS
    result = train_model(leads, demo_config(candidates=("lightgbm",)))
    assert result.split_sizes["cross_validated"] == result.split_sizes["fit"]
    at_the_threshold = train_model(leads, demo_config(candidates=("lightgbm",), cv_max_rows=ROWS))
    assert at_the_threshold.selection[0].log_loss == result.selection[0].log_loss
    np.testing.assert_array_equal(at_the_threshold.holdout_proba, result.holdout_proba)


def test_trait_importance_samples_many_leads_with_its_seed(
    sampled: tuple[TrainResult, TrainResult],
) -> None:
    result, _ = sampled
    holdout = result.holdout
    whole = trait_importance(result.pipeline, holdout)
    assert whole.equals(trait_importance(result.pipeline, holdout, max_leads=len(holdout)))
    half = len(holdout) // 2
    first = trait_importance(result.pipeline, holdout, max_leads=half, seed=3)
    again = trait_importance(result.pipeline, holdout, max_leads=half, seed=3)
    other = trait_importance(result.pipeline, holdout, max_leads=half, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert not first["importance"].equals(other["importance"])
    # Half of the holdout already names the same strongest traits.
    assert list(first["field"].head(2)) == list(whole["field"].head(2))
