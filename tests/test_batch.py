"""Chunked scoring and ranking (batch.py), shared by `leadml score` and the API's batch route."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TrainedModel
from leadml import demo
from leadml.batch import (
    MQL_WORDS,
    PROBABILITY_DECIMALS,
    for_people,
    rank_order,
    score_chunks,
    score_file,
)
from leadml.errors import DataError
from leadml.policy import ActivePolicy, _default_active, default_preview, load_holdout
from leadml.scoring import Scorer


@pytest.fixture(scope="module")
def scorer(trained: TrainedModel) -> Scorer:
    return Scorer.load(trained.export_dir)


@pytest.fixture(scope="module")
def policy(scorer: Scorer) -> ActivePolicy:
    return _default_active(scorer, default_preview(load_holdout(scorer), n_boot=1))


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return demo.generate_leads(700, seed=11).drop(columns=[demo.TARGET])


def test_rank_order_is_highest_first_and_keeps_ties_in_input_order() -> None:
    assert rank_order([0.5, 0.7, 0.5, 0.7, 0.1, 0.5]).tolist() == [1, 3, 0, 2, 5, 4]
    assert rank_order([]).tolist() == []


def test_chunks_rank_as_one_frame(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    whole = score_chunks([leads], scorer, policy)
    parts = [leads.iloc[i : i + 150] for i in range(0, len(leads), 150)]
    seen: list[int] = []
    chunked = score_chunks(parts, scorer, policy, on_chunk=seen.append)
    pd.testing.assert_frame_equal(whole, chunked)
    assert seen == [150, 300, 450, 600, 700]
    assert whole["rank"].tolist() == list(range(1, len(leads) + 1))
    assert whole["probability"].is_monotonic_decreasing
    expected = scorer.score(leads).sort_values("probability", ascending=False, kind="stable")
    assert whole[demo.ID_COLUMN].tolist() == expected[demo.ID_COLUMN].tolist()
    is_mql, grades = policy.decide(whole["probability"].to_numpy())
    assert whole["is_mql"].tolist() == is_mql.tolist()
    assert whole["grade"].tolist() == grades.tolist()
    assert set(whole["model_version"]) == {scorer.info.version}
    assert set(whole["policy_version"]) == {None}


def test_leads_without_ids_get_their_row_number(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    anonymous = leads.drop(columns=[demo.ID_COLUMN]).head(40)
    ranked = score_chunks([anonymous.head(25), anonymous.tail(15)], scorer, policy)
    assert sorted(ranked["row"]) == list(range(1, 41))
    best = int(ranked["row"].iloc[0]) - 1
    assert ranked["probability"].iloc[0] == pytest.approx(
        float(scorer.score(anonymous.iloc[[best]])["probability"].iloc[0]), abs=1e-12
    )


def test_a_bad_chunk_names_its_rows(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    numeric = next(s.name for s in scorer.schema.features if s.role.value == "numeric")
    bad = leads.head(20).copy()
    bad[numeric] = bad[numeric].astype(object)
    bad.loc[bad.index[3], numeric] = "lots"
    with pytest.raises(DataError, match=r"leads\.csv, rows from 11: "):
        score_chunks([leads.head(10), bad], scorer, policy, source="leads.csv")
    with pytest.raises(DataError, match="has no leads to score"):
        score_chunks([], scorer, policy)


def test_a_file_scores_as_its_frame(
    tmp_path: Path, scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    path = tmp_path / "leads.parquet"
    leads.to_parquet(path, index=False)
    from_file = score_file(path, scorer, policy, chunk_rows=256)
    np.testing.assert_allclose(
        from_file["probability"], score_chunks([leads], scorer, policy)["probability"], atol=1e-12
    )


def test_an_id_the_model_does_not_read_is_kept_next_to_the_score(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    # As with X Education's `Prospect ID`: nobody named the id column, training found it.
    schema = replace(scorer.schema, id_column=None)
    found_id = Scorer(scorer.pipeline, replace(scorer.info, schema=schema), scorer.source)
    assert found_id.id_column is None
    assert demo.ID_COLUMN in {s.name for s in schema.dropped if s.role.value == "id"}
    ranked = score_chunks([leads.head(30), leads.iloc[30:60]], found_id, policy)
    assert list(ranked.columns[:2]) == ["rank", demo.ID_COLUMN]
    assert "row" not in ranked.columns
    by_id = scorer.score(leads.head(60)).set_index(demo.ID_COLUMN)["probability"]
    np.testing.assert_allclose(
        ranked["probability"], by_id.loc[ranked[demo.ID_COLUMN]].to_numpy(), atol=1e-12
    )


def test_a_ranked_file_for_people_rounds_probabilities_and_says_yes_or_no(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    ranked = score_chunks([leads.head(80)], scorer, policy)
    shown = for_people(ranked)
    assert set(shown["is_mql"]) == set(MQL_WORDS.values())
    assert (shown["is_mql"] == "yes").tolist() == ranked["is_mql"].tolist()
    assert (shown["probability"] == shown["probability"].round(PROBABILITY_DECIMALS)).all()
    np.testing.assert_allclose(shown["probability"], ranked["probability"], atol=5e-5)
    assert ranked["is_mql"].dtype == bool  # the frame itself is left as it was


def test_under_an_exploration_share_some_leads_below_the_line_go_to_sales_at_random(
    scorer: Scorer, policy: ActivePolicy, leads: pd.DataFrame
) -> None:
    share = 0.3
    exploring = replace(policy, exploration_share=share)
    ranked = score_chunks([leads], scorer, exploring, draws=np.random.default_rng(5))
    again = score_chunks([leads], scorer, exploring, draws=np.random.default_rng(5))
    pd.testing.assert_frame_equal(ranked, again)  # the draws, not the leads, decide
    below = ~ranked["is_mql"]
    assert below.sum() > 200
    assert not ranked.loc[~below, "exploration"].any()  # MQLs go to sales anyway
    explored = ranked.loc[below, "exploration"].mean()
    assert abs(explored - share) < 4 * np.sqrt(share * (1 - share) / below.sum())
    assert (ranked.loc[~below, "selection_probability"] == 1.0).all()
    assert (ranked.loc[below, "selection_probability"] == share).all()
    assert set(for_people(ranked)["exploration"]) == set(MQL_WORDS.values())
    assert "exploration" not in score_chunks([leads.head(50)], scorer, policy).columns
