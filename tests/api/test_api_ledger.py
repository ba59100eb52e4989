"""The score ledger behind the API: every score recorded, off when asked, never blocking."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_testkit import SCORER, api_settings
from fastapi.testclient import TestClient

from api.ledger import LedgerWriter
from api.main import create_app
from conftest import TrainedModel
from leadml.store import ScoreAnswer, Store


def demo_leads(client: TestClient, count: int) -> list[dict[str, Any]]:
    model = client.app.state.holder.current  # type: ignore[attr-defined]
    example = dict(model.lead_model.example)
    id_field = model.lead_model.id_field
    return [{**example, id_field: f"L{i}"} for i in range(count)]


def ledger_of(client: TestClient) -> Any:
    state = client.app.state  # type: ignore[attr-defined]
    assert state.ledger.flush(10.0)
    store: Store = state.store
    return store.ledger_frame()


@pytest.fixture(scope="module")
def ledger_client(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(api_settings(trained, tmp_path_factory.mktemp("ledger")))
    with TestClient(app) as client:
        yield client


def test_every_score_is_recorded_with_its_provenance(ledger_client: TestClient) -> None:
    client = ledger_client
    [one, *batch] = demo_leads(client, 4)
    single = client.post("/v1/leads/score", json=one, headers=SCORER).json()
    ranked = client.post("/v1/leads/score-batch", json=batch, headers=SCORER).json()
    page = client.post(
        "/v1/leads/score?reasons=false",
        json={**one, "lead_id": "P1"},
        headers={**SCORER, "X-LeadML-Source": "page"},
    ).json()

    ledger = ledger_of(client)
    by_id = {row["lead_id"]: row for row in ledger.to_dict(orient="records")}
    assert sorted(by_id) == ["L0", "L1", "L2", "L3", "P1"]
    assert [by_id[i]["source"] for i in ("L0", "L1", "P1")] == ["api", "batch", "page"]
    first = by_id["L0"]
    assert first["probability"] == pytest.approx(single["probability"])
    assert (first["score"], first["grade"], first["is_mql"]) == (
        single["score"],
        single["grade"],
        single["is_mql"],
    )
    assert first["model_version"] == single["model_version"]
    assert first["reasons"] == single["reasons"]
    assert by_id["P1"]["reasons"] is None and page["reasons"] is None
    assert first["features"]["lead_id"] == "L0"
    assert set(first["features"]) >= set(one) - {"created_at"}
    assert first["exploration"] is False or first["exploration"] == 0
    assert first["selection_probability"] == (1.0 if single["is_mql"] else 0.0)
    for lead in ranked["leads"]:
        assert by_id[lead["lead_id"]]["probability"] == pytest.approx(lead["probability"])
    metrics = client.get("/metrics").text
    assert 'leadml_ledger_rows_total{outcome="written"} 5.0' in metrics
    assert "leadml_ledger_enabled 1.0" in metrics


def test_ledger_off_records_nothing(trained: TrainedModel, tmp_path: Path) -> None:
    app = create_app(api_settings(trained, tmp_path, ledger=False))
    with TestClient(app) as client:
        response = client.post("/v1/leads/score", json=demo_leads(client, 1)[0], headers=SCORER)
        assert response.status_code == 200
        assert client.app.state.ledger is None  # type: ignore[attr-defined]
        assert "leadml_ledger_enabled 0.0" in client.get("/metrics").text
        assert client.app.state.store.ledger_frame().empty  # type: ignore[attr-defined]


def test_a_full_queue_drops_scores_says_so_and_never_fails_the_score(
    trained: TrainedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(api_settings(trained, tmp_path, ledger_queue_rows=3))
    with TestClient(app) as client, caplog.at_level(logging.WARNING, "leadml.api.ledger"):
        response = client.post("/v1/leads/score-batch", json=demo_leads(client, 5), headers=SCORER)
        assert response.status_code == 200 and response.json()["count"] == 5
        metrics = client.get("/metrics").text
        assert 'leadml_ledger_rows_total{outcome="dropped_queue_full"} 5.0' in metrics
        assert ledger_of(client).empty
    assert any("queue is full" in record.message for record in caplog.records)


def scores_written(metrics: str, outcome: str) -> float:
    prefix = f'leadml_ledger_rows_total{{outcome="{outcome}"}} '
    [line] = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def test_a_full_queue_waits_for_the_database_and_loses_no_score(
    trained: TrainedModel, tmp_path: Path
) -> None:
    # The database is busy for a while (another process holds the write lock, as a second
    # worker's commit or a backup does) and more scores arrive than the queue holds: the
    # requests wait for room and every score is recorded once the database is free.
    app = create_app(api_settings(trained, tmp_path, ledger_queue_rows=12, ledger_batch_rows=4))
    with TestClient(app) as client:
        leads = demo_leads(client, 40)
        blocker = sqlite3.connect(
            tmp_path / "app.db", isolation_level=None, check_same_thread=False
        )
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(1.5, blocker.rollback)
        release.start()
        try:
            answers = [
                client.post("/v1/leads/score-batch", json=leads[i : i + 5], headers=SCORER)
                for i in range(0, 40, 5)
            ]
        finally:
            release.join()
            blocker.close()
        assert [a.status_code for a in answers] == [200] * 8
        ledger = ledger_of(client)
        metrics = client.get("/metrics").text
    assert sorted(ledger["lead_id"]) == sorted(lead["lead_id"] for lead in leads)
    assert scores_written(metrics, "dropped_queue_full") == 0
    assert scores_written(metrics, "written") == 40
    waited = [line for line in metrics.splitlines() if line.startswith("leadml_ledger_wait")]
    assert float(waited[0].split()[-1]) > 0.5, waited


def test_concurrent_large_batches_are_all_answered_and_recorded(
    trained: TrainedModel, tmp_path: Path
) -> None:
    # Batches of 64 leads or more are scored in worker threads, at most two at once (more only
    # starve the ledger's writer); six sent together all finish, each lead recorded once.
    app = create_app(api_settings(trained, tmp_path, max_batch_leads=200))
    with TestClient(app) as client:
        leads = demo_leads(client, 600)
        chunks = [leads[i : i + 100] for i in range(0, 600, 100)]
        answers: list[Any] = [None] * len(chunks)

        def send(index: int) -> None:
            answers[index] = client.post(
                "/v1/leads/score-batch?reasons=false", json=chunks[index], headers=SCORER
            )

        senders = [threading.Thread(target=send, args=(i,)) for i in range(len(chunks))]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=300)
        assert [a.status_code for a in answers] == [200] * len(chunks)
        assert [a.json()["count"] for a in answers] == [100] * len(chunks)
        ledger = ledger_of(client)
    assert sorted(ledger["lead_id"]) == sorted(lead["lead_id"] for lead in leads)


def test_a_failing_database_drops_at_once_counted_and_never_stalls_the_score(
    trained: TrainedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Waiting helps only while the database commits: when it refuses the writes, a full queue
    # drops (counted, logged) at once rather than holding every request for the wait bound.
    settings = api_settings(
        trained, tmp_path, ledger_queue_rows=5, ledger_batch_rows=5, ledger_wait_seconds=120.0
    )
    app = create_app(settings)
    with TestClient(app) as client, caplog.at_level(logging.WARNING, "leadml.api.ledger"):
        leads = demo_leads(client, 20)
        with sqlite3.connect(tmp_path / "app.db") as broken:
            broken.execute("ALTER TABLE scored_leads RENAME TO scored_leads_gone")
        started = time.monotonic()
        answers = [
            client.post("/v1/leads/score-batch", json=leads[i : i + 5], headers=SCORER)
            for i in range(0, 20, 5)
        ]
        elapsed = time.monotonic() - started
        assert client.app.state.ledger.flush(10.0)  # type: ignore[attr-defined]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200] * 4
    assert elapsed < 60, f"the requests waited {elapsed:.0f} s for a database that refuses"
    lost = scores_written(metrics, "dropped_queue_full") + scores_written(
        metrics, "dropped_write_error"
    )
    assert lost == 20 and scores_written(metrics, "written") == 0
    assert any("lost" in r.message or "queue is full" in r.message for r in caplog.records)


WRITE_MANY = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime
    from api.ledger import LedgerWriter
    from leadml.store import ScoreAnswer, Store

    url, worker, threads, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = Store.from_url(url)
    writer = LedgerWriter(store, batch_rows=50, flush_seconds=0.01)
    writer.start()

    def score(thread):
        for i in range(rows):
            lead = f"{worker}-{thread}-{i}"
            answer = {"lead_id": lead, "model_version": "1", "policy_version": None,
                      "probability": 0.5, "score": 50, "grade": "B", "is_mql": True}
            writer.submit([ScoreAnswer("leads", {"n": i}, answer, "api", datetime.now(UTC))])

    pool = [threading.Thread(target=score, args=(t,)) for t in range(threads)]
    for t in pool: t.start()
    for t in pool: t.join()
    writer.close()
    print("done")
    """
)


def test_several_workers_write_at_once_without_losing_rows(store_url: str) -> None:
    store = Store.from_url(store_url)
    store.migrate()
    workers, threads, rows = 4, 3, 300
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITE_MANY, store_url, f"w{w}", str(threads), str(rows)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0 and out.strip() == "done", err

    ledger = store.ledger_frame()
    store.close()
    expected = {
        f"w{w}-{t}-{i}" for w in range(workers) for t in range(threads) for i in range(rows)
    }
    assert len(ledger) == len(expected)
    assert set(ledger["lead_id"]) == expected


def test_the_writer_commits_in_groups(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'app.db'}")
    store.migrate()
    groups: list[int] = []
    writer = LedgerWriter(
        store,
        batch_rows=100,
        flush_seconds=5.0,
        count=lambda outcome, rows: groups.append(rows),
    )
    writer.start()
    answer = {"lead_id": "G", "model_version": "1", "policy_version": None, "probability": 0.1,
              "score": 10, "grade": "D", "is_mql": False, "reasons": None}  # fmt: skip
    row = ScoreAnswer("leads", {"x": json.dumps({"a": 1})}, answer, "api", datetime.now(UTC))
    writer.submit([row] * 250)
    writer.close()

    assert groups == [100, 100, 50]
    assert len(store.ledger_frame()) == 250
    store.close()


def test_the_batch_route_answers_a_crm_import_file(ledger_client: TestClient) -> None:
    leads = demo_leads(ledger_client, 3)
    ranked = ledger_client.post("/v1/leads/score-batch", json=leads, headers=SCORER).json()
    response = ledger_client.post("/v1/leads/score-batch?format=crm", json=leads, headers=SCORER)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert (
        lines[0] == "lead_id,lead_score,lead_grade,is_mql,top_reasons,model_version,policy_version"
    )
    first = lines[1].split(",")
    best = ranked["leads"][0]
    assert first[:4] == [best["lead_id"], str(best["score"]), best["grade"],
                         "true" if best["is_mql"] else "false"]  # fmt: skip
    assert "the chance" in lines[1] and first[-2] == str(best["model_version"])
    bad = ledger_client.post("/v1/leads/score-batch?format=xml", json=leads, headers=SCORER)
    assert bad.status_code == 422
