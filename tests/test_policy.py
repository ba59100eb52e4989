"""The policy book: the active MQL policy, versions kept, what-ifs that store nothing.

Runs on SQLite and on a real PostgreSQL server (the `store_url` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TrainedModel
from leadml.errors import PolicyError
from leadml.plots import plot_threshold_chart
from leadml.policy import (
    DEFAULT_KIND,
    DEFAULT_TOP_SHARE,
    Holdout,
    PolicyBook,
    load_holdout,
    rows_around,
)
from leadml.scoring import Scorer
from leadml.store import Store
from leadml.threshold import (
    CapacityPolicy,
    FixedPolicy,
    MinRecallPolicy,
    resolve_policy,
    threshold_table,
)


@pytest.fixture(scope="module")
def scorer(trained: TrainedModel) -> Scorer:
    return Scorer.load(trained.export_dir)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.from_url(store_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def book(store: Store) -> PolicyBook:
    return PolicyBook(store, n_boot=200)


def test_holdout_is_the_one_saved_with_the_model(scorer: Scorer, trained: TrainedModel) -> None:
    holdout = load_holdout(scorer)
    np.testing.assert_array_equal(holdout.y, trained.result.holdout_y)
    np.testing.assert_allclose(holdout.proba, trained.result.holdout_proba)
    from_registry = load_holdout(
        Scorer.load(trained.champion_uri, tracking_uri=trained.tracking_uri)
    )
    np.testing.assert_array_equal(from_registry.y, holdout.y)
    np.testing.assert_allclose(from_registry.proba, holdout.proba)


def test_default_policy_is_the_top_30_percent(book: PolicyBook, scorer: Scorer) -> None:
    active = book.active(scorer)
    p = book.holdout(scorer).proba
    assert active.version is None and active.kind == DEFAULT_KIND
    share = float(np.mean(p >= active.cutoff))
    assert share <= DEFAULT_TOP_SHARE
    # The lowest cut-off that keeps within 30 %: one step lower would exceed it.
    lower = p[p < active.cutoff]
    assert lower.size == 0 or np.mean(p >= lower.max()) > DEFAULT_TOP_SHARE
    assert "No MQL policy has been set yet" in active.sentence
    is_mql, grades = active.decide(p)
    np.testing.assert_array_equal(is_mql, p >= active.cutoff)
    assert set(grades[is_mql]) <= {"A", "B"} and set(grades[~is_mql]) <= {"C", "D"}
    assert book.history(scorer.info.name) == []


def test_set_stores_versions_and_keeps_history(book: PolicyBook, scorer: Scorer) -> None:
    y, p = book.holdout(scorer).y, book.holdout(scorer).proba
    capacity = CapacityPolicy(per_week=200, leads_per_week=1500)
    first = book.set(scorer, capacity, set_by="marketing@x", reason="sales has 4 reps")
    expected = resolve_policy(capacity, y, p, n_boot=200)
    assert first.version == 1 and first.model_name == scorer.info.name
    assert first.model_version == scorer.info.version
    assert first.cutoff == expected.cutoff
    assert first.expected["precision"] == pytest.approx(expected.precision)
    assert first.expected["recall"] == pytest.approx(expected.recall)
    assert first.expected["mqls_per_week"] == pytest.approx(expected.mqls_per_week)
    low, high = first.expected["intervals"]["recall"]
    assert low <= expected.recall <= high
    assert first.expected["context"]["leads_per_week"] == 1500
    assert [g["grade"] for g in first.expected["grades"]][:2] == ["A", "B"]
    assert first.sentence.startswith("Sales can work 200 of 1,500 leads a week")

    active = book.active(scorer)
    assert (active.version, active.cutoff, active.kind) == (1, first.cutoff, "capacity")
    assert active.set_by == "marketing@x" and not active.stale

    second = book.set(scorer, MinRecallPolicy(min_recall=0.8), set_by="sales@x", reason="more")
    assert second.version == 2
    assert book.active(scorer).version == 2
    history = book.history(scorer.info.name)
    assert [h.version for h in history] == [2, 1]
    assert history[1] == first  # never overwritten
    assert history[0].kind == "min_recall" and history[0].expected["recall"] >= 0.8


def test_set_needs_a_person(book: PolicyBook, scorer: Scorer) -> None:
    with pytest.raises(PolicyError, match="set_by"):
        book.set(scorer, FixedPolicy(0.5), set_by="  ")
    assert book.history(scorer.info.name) == []


def test_impossible_policy_stores_nothing(book: PolicyBook, scorer: Scorer) -> None:
    with pytest.raises(PolicyError):
        book.set(scorer, CapacityPolicy(per_week=1, leads_per_week=10**9), set_by="me")
    assert book.history(scorer.info.name) == []


def test_simulate_stores_nothing(book: PolicyBook, scorer: Scorer, store: Store) -> None:
    book.set(scorer, CapacityPolicy(per_week=300, leads_per_week=1000), set_by="me")
    before = store.policy_history(scorer.info.name)

    moved = book.simulate(scorer, 5)
    proposed = book.simulate(scorer, MinRecallPolicy(min_recall=0.9))

    assert store.policy_history(scorer.info.name) == before
    assert book.active(scorer).version == 1
    for answer in (moved, proposed):
        assert answer["saved"] is False
        change = answer["change"]
        for name in ("mql_share", "recall", "mqls_per_week", "expected_conversions_per_week"):
            assert change[name] == pytest.approx(answer["proposed"][name] - answer["current"][name])
        chosen = [row for row in answer["rows"] if row["chosen"]]
        assert len(chosen) == 1 and chosen[0]["cutoff"] == answer["proposed"]["cutoff"]
    # +5 points: about 5 % more of all leads (never more), with the context of the stored policy.
    assert 0 < moved["change"]["mql_share"] <= 0.05 + 1e-9
    assert moved["context"]["leads_per_week"] == 1000
    assert moved["change"]["mqls_per_week"] == pytest.approx(moved["change"]["mql_share"] * 1000)
    assert moved["sentence"].startswith("Moving the MQL line by +5 points")
    assert proposed["proposed"]["recall"] >= 0.9


def test_simulate_rejects_nonsense(book: PolicyBook, scorer: Scorer) -> None:
    with pytest.raises(PolicyError):
        book.simulate(scorer, "five")  # type: ignore[arg-type]
    with pytest.raises(PolicyError):
        book.simulate(scorer, -100)


def test_a_new_model_version_makes_the_policy_stale(book: PolicyBook, scorer: Scorer) -> None:
    stored = book.set(scorer, CapacityPolicy(per_week=300, leads_per_week=1000), set_by="me")
    newer = Scorer(scorer.pipeline, replace(scorer.info, version="999"), scorer.source)
    active = book.active(newer)
    assert active.stale and active.version == 1 and active.cutoff == stored.cutoff
    again = book.reapply(newer, set_by="ops")
    assert again.version == 2 and again.model_version == "999"
    assert again.params == stored.params and again.expected["context"]["leads_per_week"] == 1000
    assert not book.active(newer).stale


def test_holdout_is_read_once_per_model_version(store: Store, scorer: Scorer) -> None:
    calls: list[str] = []

    def counting_loader(s: Scorer) -> Holdout:
        calls.append(s.info.version or "")
        return load_holdout(s)

    book = PolicyBook(store, holdout_loader=counting_loader, n_boot=50)
    for _ in range(3):
        book.active(scorer)
        book.simulate(scorer, 2)
    assert calls == [scorer.info.version]


def test_cached_active_policy_sees_its_own_writes(store: Store, scorer: Scorer) -> None:
    book = PolicyBook(store, n_boot=50, cache_seconds=3600)
    assert book.active(scorer).version is None
    book.set(scorer, FixedPolicy(0.5), set_by="me")
    assert book.active(scorer).version == 1


# --------------------------------------------------------------------------- pure helpers


def test_rows_around_the_cutoff() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < p).astype(int)
    rows = rows_around(y, p, 0.5, k=3)
    assert len(rows) == 7 and rows["chosen"].sum() == 1
    assert rows.loc[rows["chosen"], "cutoff"].item() == 0.5
    assert rows["cutoff"].is_monotonic_decreasing
    assert rows.loc[rows["chosen"], "mql_share"].item() == pytest.approx(np.mean(p >= 0.5))


def test_threshold_artifacts(tmp_path: Path, trained: TrainedModel) -> None:
    from leadml.tracking import write_threshold_artifacts

    y, p = trained.result.holdout_y, trained.result.holdout_proba
    written = write_threshold_artifacts(tmp_path, y, p)
    assert [(path.name, folder) for path, folder in written] == [
        ("threshold_table.csv", None),
        ("threshold.png", "plots"),
    ]
    table = pd.read_csv(written[0][0])
    pd.testing.assert_frame_equal(table, threshold_table(y, p), check_dtype=False)
    assert written[1][0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = plot_threshold_chart(y, p, cutoff=0.4)
    assert len(figure.axes[0].lines) == 5  # share, precision, recall, base rate, the MQL line


def test_an_exploration_share_is_kept_with_the_policy(book: PolicyBook, scorer: Scorer) -> None:
    capacity = CapacityPolicy(per_week=300, leads_per_week=1000)
    record = book.set(scorer, capacity, set_by="marketing@x", exploration_share=0.05)
    assert record.params["exploration_share"] == 0.05
    assert record.expected["exploration"]["leads_per_week"] == pytest.approx(
        0.05 * (1 - record.expected["mql_share"]) * 1000
    )
    assert "extra leads a week for sales" in record.sentence
    active = book.active(scorer)
    assert active.exploration_share == 0.05
    is_mql = np.array([True, False, False, False])
    explored, chance = active.explore(is_mql, np.array([0.0, 0.01, 0.5, 0.049]))
    assert explored.tolist() == [False, True, False, True]
    assert chance.tolist() == [1.0, 0.05, 0.05, 0.05]
    # Drawn from a generator, the same rule: only leads below the line, about the share of them.
    below = np.zeros(20_000, dtype=bool)
    drawn, chances = active.hand_over(below, np.random.default_rng(3))
    assert abs(drawn.mean() - 0.05) < 4 * (0.05 * 0.95 / 20_000) ** 0.5
    assert set(chances.tolist()) == {0.05}
    assert not active.hand_over(np.ones(50, dtype=bool), np.random.default_rng(3))[0].any()
    unexplored = replace(active, exploration_share=0.0)
    none, zero_or_one = unexplored.hand_over(is_mql, np.random.default_rng(3))
    assert not none.any() and zero_or_one.tolist() == [1.0, 0.0, 0.0, 0.0]
    again = book.reapply(scorer, set_by="marketing@x")
    assert again.params["exploration_share"] == 0.05
    with pytest.raises(PolicyError, match="exploration_share"):
        book.set(scorer, capacity, set_by="me", exploration_share=0.9)
