"""The app-state store on SQLite and on a real PostgreSQL server (fixtures in tests/pg.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from leadml.errors import DataError, LeadmlError, PolicyError
from leadml.store import (
    JOINED_COLUMNS,
    OutcomeEventIn,
    OutcomeIn,
    PolicyRecordIn,
    ScoredLeadIn,
    Store,
    StoreError,
    alembic_config,
    metadata,
    normalise_url,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


class StepClock:
    """A clock that moves one minute forward each time it is read."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def policy(model_name: str = "leads", cutoff: float = 0.3, **changes: object) -> PolicyRecordIn:
    values: dict[str, object] = {
        "model_name": model_name,
        "model_version": "3",
        "kind": "capacity",
        "params": {"capacity": 200, "per": "week"},
        "cutoff": cutoff,
        "grade_bands": [{"grade": "A", "min": 0.6}, {"grade": "B", "min": 0.3}],
        "expected": {"precision": 0.41, "recall": 0.72, "precision_interval": [0.37, 0.45]},
        "sentence": "Leads above 30% are MQLs: about 200 a week.",
        "set_by": "ops@example.com",
        "reason": "sales capacity",
    }
    values.update(changes)
    return PolicyRecordIn(**values)  # type: ignore[arg-type]


def scored(lead_id: str | None, probability: float, **changes: object) -> ScoredLeadIn:
    values: dict[str, object] = {
        "lead_id": lead_id,
        "model_name": "leads",
        "model_version": "3",
        "probability": probability,
        "score": round(probability * 100),
        "grade": "A" if probability >= 0.6 else "B",
        "is_mql": probability >= 0.3,
        "features": {"source": "Google", "visits": 4},
    }
    values.update(changes)
    return ScoredLeadIn(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(Store.from_url(store_url).engine, clock=StepClock())
    opened.migrate()
    yield opened
    opened.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- schema ---------------------------------------------------------------------------------------


def test_migrate_creates_the_schema_once_and_is_idempotent(store_url: str) -> None:
    store = Store.from_url(store_url)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert store.schema_revision() is None

    store.migrate()
    stored = store.add_policy(policy())
    store.migrate()

    assert head is not None
    assert store.schema_revision() == head
    assert store.current_policy("leads") == stored
    store.close()


def test_migrations_match_the_tables_the_store_uses(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_sqlite_runs_with_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'leadml.db'}")
    with store.engine.connect() as conn:
        journal_mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
    store.close()

    assert (journal_mode, synchronous, foreign_keys) == ("wal", 2, 1)  # 2 is FULL


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_plain_postgres_urls_get_the_psycopg_driver(scheme: str) -> None:
    url = normalise_url(f"{scheme}://user:pw@db.example:5433/leads")

    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database) == ("db.example", 5433, "leads")


# -- MQL policies ---------------------------------------------------------------------------------


def test_policy_versions_are_kept_never_overwritten(store: Store) -> None:
    first = store.add_policy(policy(cutoff=0.3))
    second = store.add_policy(policy(cutoff=0.25, kind="min_recall", reason="more reach"))

    assert (first.version, second.version) == (1, 2)
    assert first.created_at < second.created_at
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)
    history = store.policy_history("leads")
    assert history == [second, first]
    assert history[1].cutoff == 0.3 and history[1].kind == "capacity"
    assert history[1].expected == {
        "precision": 0.41,
        "recall": 0.72,
        "precision_interval": [0.37, 0.45],
    }
    assert store.policy_history("leads", limit=1) == [second]


def test_current_policy_is_the_newest_version_of_each_model_name(store: Store) -> None:
    store.add_policy(policy("leads", cutoff=0.3))
    newest = store.add_policy(policy("leads", cutoff=0.35))
    other = store.add_policy(policy("partners", cutoff=0.5))

    assert store.current_policy("leads") == newest
    assert store.current_policy("partners") == other
    assert other.version == 1
    assert store.current_policy("unknown") is None
    assert store.policy_history("unknown") == []


def test_concurrent_policy_adds_get_distinct_versions(store: Store) -> None:
    errors: list[BaseException] = []

    def add_three() -> None:
        try:
            for _ in range(3):
                store.add_policy(policy())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add_three) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    versions = sorted(record.version for record in store.policy_history("leads"))
    assert versions == list(range(1, 13))


def test_policy_json_keeps_numpy_values_and_stores_nan_as_null(store: Store) -> None:
    stored = store.add_policy(
        policy(params={"capacity": np.int64(200)}, expected={"precision": float("nan")})
    )

    assert stored.params == {"capacity": 200}
    assert stored.expected == {"precision": None}


def test_policy_with_an_unknown_kind_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown MQL policy kind 'top_k'"):
        policy(kind="top_k")


# -- scores and outcomes --------------------------------------------------------------------------


def test_record_scores_and_read_them_back(store: Store) -> None:
    current = store.add_policy(policy())
    rows = [
        scored("L1", 0.72, policy_version=current.version, features={"visits": np.int64(7)}),
        scored("L2", 0.12, policy_version=current.version, features={"time": float("nan")}),
        scored(None, 0.31),
    ]

    assert store.record_scores(rows) == 3
    assert store.record_scores([]) == 0

    latest = store.recent_scores("leads")
    assert [row.lead_id for row in latest] == [None, "L2", "L1"]
    assert latest[2].policy_version == current.version
    assert latest[2].probability == pytest.approx(0.72)
    assert latest[2].features == {"visits": 7}
    assert latest[1].features == {"time": None}
    assert latest[1].is_mql is False and latest[2].is_mql is True
    assert all(row.scored_at.tzinfo is not None for row in latest)
    assert store.recent_scores("leads", limit=1)[0].lead_id is None
    assert store.recent_scores("other") == []


def test_scores_naming_a_policy_version_not_in_the_store_are_refused(store: Store) -> None:
    store.add_policy(policy())

    with pytest.raises(PolicyError, match="MQL policy version 7 of 'leads'"):
        store.record_scores(
            [scored("L1", 0.5, policy_version=1), scored("L2", 0.5, policy_version=7)]
        )
    assert store.recent_scores("leads") == []


def test_scored_lead_with_a_probability_outside_0_1_is_refused() -> None:
    with pytest.raises(DataError, match="between 0 and 1"):
        scored("L1", 1.5)


def test_outcome_upsert_replaces_and_keeps_the_first_arrival(store: Store) -> None:
    assert store.record_outcomes([OutcomeIn(lead_id="L1", converted=False, source="csv")]) == 1
    first = store.get_outcome("L1")
    won_at = datetime(2025, 3, 20, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    written = store.record_outcomes(
        [
            OutcomeIn(lead_id="L1", converted=False),
            OutcomeIn(lead_id="L2", converted=False),
            OutcomeIn(lead_id="L1", converted=True, outcome_at=won_at),
        ]
    )
    updated = store.get_outcome("L1")

    assert written == 2
    assert first is not None and updated is not None
    assert first.converted is False and first.source == "csv"
    assert updated.converted is True and updated.source == "api"
    assert updated.outcome_at == won_at and updated.outcome_at.tzinfo == UTC
    assert updated.first_recorded_at == first.recorded_at
    assert updated.recorded_at > first.recorded_at
    assert store.get_outcome("L2") is not None
    assert store.get_outcome("L3") is None


def test_outcome_with_an_unknown_source_is_refused() -> None:
    with pytest.raises(DataError, match="unknown outcome source 'fax'"):
        OutcomeIn(lead_id="L1", converted=True, source="fax")


def test_outcomes_joined_with_the_last_score_before_the_outcome(store: Store) -> None:
    day = timedelta(days=1)
    store.record_scores(
        [
            scored("L1", 0.20, scored_at=T0),
            scored("L1", 0.65, scored_at=T0 + 2 * day, model_version="4"),
            scored("L1", 0.99, scored_at=T0 + 9 * day),  # after the outcome: not used
            scored("L2", 0.40, scored_at=T0 + day),
            scored("L3", 0.70, scored_at=T0 + day),  # no outcome yet
            scored("L4", 0.50, scored_at=T0 + day, model_name="partners"),
        ]
    )
    naive_outcome_time = (T0 + 5 * day).replace(tzinfo=None)  # taken as UTC
    store.record_outcomes(
        [
            OutcomeIn(lead_id="L1", converted=True, outcome_at=T0 + 5 * day),
            OutcomeIn(lead_id="L2", converted=False, outcome_at=naive_outcome_time),
            OutcomeIn(lead_id="L4", converted=True, outcome_at=T0 + 5 * day),
        ]
    )

    joined = store.outcomes_joined_scores("leads")
    recent = store.outcomes_joined_scores("leads", since=T0 + 2 * day)
    nothing = store.outcomes_joined_scores("nobody")

    assert list(joined.columns) == list(JOINED_COLUMNS)
    assert joined["lead_id"].tolist() == ["L2", "L1"]
    assert joined["probability"].tolist() == pytest.approx([0.40, 0.65])
    assert joined["model_version"].tolist() == ["3", "4"]
    assert joined["converted"].tolist() == [False, True]
    assert str(joined["scored_at"].dt.tz) == "UTC"
    assert joined["outcome_at"].iloc[0] == T0 + 5 * day
    assert joined["features"].iloc[0] == {"source": "Google", "visits": 4}
    assert recent["lead_id"].tolist() == ["L1"]
    assert nothing.empty and list(nothing.columns) == list(JOINED_COLUMNS)


# -- durability and errors ------------------------------------------------------------------------

WRITE_THEN_DIE = textwrap.dedent(
    """
    import os, sys
    from leadml.store import OutcomeIn, PolicyRecordIn, ScoredLeadIn, Store

    store = Store.from_url(sys.argv[1])
    store.migrate()
    stored = store.add_policy(PolicyRecordIn(
        model_name="leads", model_version="3", kind="fixed", params={"cutoff": 0.42},
        cutoff=0.42, grade_bands=[], expected={}, sentence="fixed at 42%", set_by="test",
    ))
    store.record_scores([ScoredLeadIn(
        lead_id="K1", model_name="leads", model_version="3", probability=0.5, score=50,
        grade="B", is_mql=True, policy_version=stored.version,
    )])
    store.record_outcomes([OutcomeIn(lead_id="K1", converted=True)])
    print("ok", flush=True)
    os.kill(os.getpid(), 9)
    """
)


def test_acknowledged_writes_survive_the_writer_being_killed(store_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WRITE_THEN_DIE, store_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == -signal.SIGKILL, result.stderr
    assert result.stdout.strip() == "ok"
    store = Store.from_url(store_url)
    current = store.current_policy("leads")
    outcome = store.get_outcome("K1")
    scores = store.recent_scores("leads")
    store.close()
    assert current is not None and current.cutoff == 0.42 and current.version == 1
    assert outcome is not None and outcome.converted is True
    assert [row.lead_id for row in scores] == ["K1"]


def test_unreachable_postgres_gives_a_one_line_error() -> None:
    port = closed_port()
    store = Store.from_url(f"postgresql://leadml:s3cret@127.0.0.1:{port}/leads")

    with pytest.raises(StoreError) as raised:
        store.migrate()

    message = str(raised.value)
    assert message == (
        f"cannot open the database at postgresql+psycopg://leadml:***@127.0.0.1:{port}/leads: "
        "connection refused; check LEADML_DATABASE_URL"
    )
    assert isinstance(raised.value, LeadmlError)


def test_sqlite_in_a_missing_folder_gives_a_one_line_error(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'absent' / 'leadml.db'}")

    with pytest.raises(
        StoreError, match=r"the folder .*absent does not exist; check LEAD"
    ) as raised:
        store.current_policy("leads")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "cannot understand the database URL 'not a url'"),
        ("mysql://user@localhost/leads", "unsupported database 'mysql'"),
    ],
)
def test_unusable_urls_are_refused_with_a_hint(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as raised:
        Store.from_url(url)
    assert str(raised.value).endswith("check LEADML_DATABASE_URL")


def test_a_database_without_the_tables_says_to_migrate(store_url: str) -> None:
    store = Store.from_url(store_url)

    with pytest.raises(StoreError, match=r"has no leadml tables .*Store\.migrate\(\)"):
        store.policy_history("leads")
    store.close()


# -- the ledger and outcome events ----------------------------------------------------------------


def event(lead_id: str, kind: str, at: datetime, **changes: object) -> OutcomeEventIn:
    return OutcomeEventIn(lead_id=lead_id, event=kind, occurred_at=at, **changes)  # type: ignore[arg-type]


def test_outcome_events_are_stored_once_per_lead_event_and_time(store: Store) -> None:
    day = timedelta(days=1)
    store.record_scores([scored("L1", 0.7, scored_at=T0)])
    batch = [
        event("L1", "sql_accepted", T0 + day),
        event("L1", "won", T0 + 9 * day, deal_value=1500.0),
        event("L9", "sql_rejected", T0 + day, reason="bad fit"),
        event("L1", "sql_accepted", (T0 + day).astimezone(timezone(timedelta(hours=3)))),
    ]

    first = store.record_outcome_events(batch)
    again = store.record_outcome_events(batch[:3])

    assert (first.received, first.stored, first.duplicates) == (4, 3, 1)
    assert first.unseen_lead_ids == ("L9",)
    assert (again.stored, again.duplicates, again.unseen_leads) == (0, 3, 1)
    events = store.outcome_events_frame()
    assert len(events) == 3 and str(events["occurred_at"].dt.tz) == "UTC"
    outcome = store.get_outcome("L1")
    assert outcome is not None and outcome.converted is True
    assert outcome.outcome_at == T0 + 9 * day
    # An earlier closing event arriving late does not replace the later one.
    store.record_outcome_events([event("L1", "lost", T0 + 2 * day)])
    assert store.get_outcome("L1").converted is True  # type: ignore[union-attr]


def test_ledger_rows_keep_provenance_and_the_handover_chance(store: Store) -> None:
    store.record_scores(
        [
            scored("L1", 0.7, source="page", reasons={"for": [], "against": []}),
            scored("L2", 0.1, exploration=True, selection_probability=0.05, source="batch"),
            scored("L3", 0.1),
        ]
    )
    ledger = store.ledger_frame(model_name="leads")

    assert ledger["source"].tolist() == ["page", "batch", "api"]
    assert ledger["exploration"].tolist() == [False, True, False]
    assert ledger["selection_probability"].tolist() == [1.0, 0.05, 0.0]
    assert ledger["reasons"].tolist()[0] == {"for": [], "against": []}
    with pytest.raises(DataError, match="unknown score source"):
        scored("L4", 0.5, source="fax")


def test_ledger_with_outcomes_is_point_in_time(store: Store) -> None:
    day = timedelta(days=1)
    store.record_scores(
        [
            scored("L1", 0.40, scored_at=T0, features={"visits": 1}),
            scored("L1", 0.65, scored_at=T0 + day, features={"visits": 5}),
            scored("L1", 0.99, scored_at=T0 + 5 * day, features={"visits": 50}),  # after sales
            scored("L2", 0.50, scored_at=T0 + day),  # no outcome yet
            scored("L3", 0.20, scored_at=T0 + 3 * day),  # scored only after its outcome
            scored(None, 0.30, scored_at=T0),
        ]
    )
    store.record_outcome_events(
        [
            event("L1", "sql_accepted", T0 + 2 * day),
            event("L1", "sql_rejected", T0 + 3 * day, reason="no budget"),
            event("L3", "lost", T0 + 2 * day),
        ]
    )

    joined = store.ledger_with_outcomes(model_name="leads")
    by_id = joined.set_index("lead_id")

    assert sorted(by_id.index) == ["L1", "L2"]
    assert by_id.loc["L1", "features"] == {"visits": 5}
    assert by_id.loc["L1", "converted"] == False  # noqa: E712 (a pandas NA-able boolean)
    assert by_id.loc["L1", "outcome"] == "sql_rejected"
    assert by_id.loc["L1", "sql_status"] == "rejected"
    assert by_id.loc["L1", "rejection_reason"] == "no budget"
    assert by_id.loc["L1", "outcome_at"] == T0 + 3 * day
    assert pd.isna(by_id.loc["L2", "converted"]) and by_id.loc["L2", "outcome"] is None
    later = store.ledger_with_outcomes(since=T0 + day + timedelta(hours=1))
    assert later.empty
