"""POST /v1/outcomes: the sales role, idempotence, unseen leads, field-level problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_testkit import ADMIN, KEY_ENTRIES, SCORER, api_settings
from fastapi.testclient import TestClient

from api.keys import hash_key
from api.main import create_app
from conftest import TrainedModel

SALES_KEY = "test-sales-key-5555555555"
SALES = {"X-API-Key": SALES_KEY}


@pytest.fixture(scope="module")
def client(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = api_settings(
        trained,
        tmp_path_factory.mktemp("outcomes"),
        api_keys=f"{KEY_ENTRIES},sales:{hash_key(SALES_KEY)}",
        max_outcome_events=10,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def scored_lead(client: TestClient, lead_id: str) -> None:
    model = client.app.state.holder.current  # type: ignore[attr-defined]
    lead = {**model.lead_model.example, model.lead_model.id_field: lead_id}
    assert client.post("/v1/leads/score", json=lead, headers=SCORER).status_code == 200
    assert client.app.state.ledger.flush(10.0)  # type: ignore[attr-defined]


def test_outcomes_need_the_sales_or_admin_role(client: TestClient) -> None:
    body = {"events": [{"lead_id": "R1", "event": "lost", "occurred_at": "2026-01-05T10:00:00Z"}]}

    assert client.post("/v1/outcomes", json=body).status_code == 401
    assert client.post("/v1/outcomes", json=body, headers=SCORER).status_code == 403
    assert client.post("/v1/outcomes", json=body, headers=SALES).status_code == 200
    assert client.post("/v1/outcomes", json=body, headers=ADMIN).json()["duplicates"] == 1


def test_a_retried_batch_is_counted_once_and_unseen_leads_are_kept(client: TestClient) -> None:
    scored_lead(client, "K1")
    later = datetime.now(UTC) + timedelta(minutes=5)
    events = [
        {"lead_id": "K1", "event": "sql_accepted", "occurred_at": later.isoformat()},
        {"lead_id": "K1", "event": "won", "occurred_at": (later + timedelta(days=3)).isoformat(),
         "deal_value": 1200},
        {"lead_id": "NEVER", "event": "sql_rejected", "occurred_at": "2026-02-02T09:00:00",
         "reason": "No Budget"},
    ]  # fmt: skip

    first = client.post("/v1/outcomes", json={"events": events}, headers=SALES).json()
    again = client.post("/v1/outcomes", json={"events": events}, headers=SALES).json()
    within = client.post("/v1/outcomes", json={"events": events[:1] * 2}, headers=SALES).json()

    assert first == {
        "received": 3, "stored": 3, "duplicates": 0, "unseen_leads": 1,
        "unseen_lead_ids": ["NEVER"],
    }  # fmt: skip
    assert (again["stored"], again["duplicates"], again["unseen_leads"]) == (0, 3, 1)
    assert (within["received"], within["stored"], within["duplicates"]) == (2, 0, 2)
    store = client.app.state.store  # type: ignore[attr-defined]
    stored = store.outcome_events_frame()
    k1 = stored[stored["lead_id"] == "K1"]
    assert len(k1) == 2 and k1["deal_value"].max() == 1200
    assert stored[stored["lead_id"] == "NEVER"]["reason"].tolist() == ["no budget"]
    joined = store.ledger_with_outcomes()
    row = joined[joined["lead_id"] == "K1"].iloc[0]
    assert bool(row["converted"]) and row["outcome"] == "won" and row["sql_status"] == "accepted"
    assert store.get_outcome("K1").converted is True


@pytest.mark.parametrize(
    ("event", "loc", "message"),
    [
        ({"lead_id": "X", "event": "sql_rejected", "occurred_at": "2026-01-01T00:00:00Z"},
         ["body", "events", 0, "reason"], "needs a reason"),
        ({"lead_id": "X", "event": "sql_rejected", "occurred_at": "2026-01-01T00:00:00Z",
          "reason": "too pricey"}, ["body", "events", 0, "reason"], "unknown rejection reason"),
        ({"lead_id": "X", "event": "lost", "occurred_at": "2026-01-01T00:00:00Z",
          "deal_value": 5}, ["body", "events", 0, "deal_value"], "only a won event"),
        ({"lead_id": "X", "event": "closed", "occurred_at": "2026-01-01T00:00:00Z"},
         ["body", "events", 0, "event"], "Input should be"),
        ({"lead_id": "X", "event": "won", "occurred_at": "yesterday"},
         ["body", "events", 0, "occurred_at"], "datetime"),
        # Found by the fuzzer: a moment before year 1 once in UTC was a 500.
        ({"lead_id": "X", "event": "won", "occurred_at": "0001-01-01T00:00:00+00:01"},
         ["body", "events", 0, "occurred_at"], "not a representable time"),
        ({"lead_id": "X", "event": "won", "occurred_at": "2026-01-01T00:00:00Z",
          "deal_value": -1}, ["body", "events", 0, "deal_value"], "greater than or equal"),
    ],
)  # fmt: skip
def test_bad_events_are_422_naming_the_field(
    client: TestClient, event: dict[str, Any], loc: list[Any], message: str
) -> None:
    response = client.post("/v1/outcomes", json={"events": [event]}, headers=SALES)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc and message in problem["msg"]


def test_too_many_events_is_413_and_an_empty_batch_422(client: TestClient) -> None:
    many = [
        {"lead_id": f"M{i}", "event": "lost", "occurred_at": "2026-01-01T00:00:00Z"}
        for i in range(11)
    ]
    assert client.post("/v1/outcomes", json={"events": many}, headers=SALES).status_code == 413
    assert client.post("/v1/outcomes", json={"events": []}, headers=SALES).status_code == 422
    assert client.post("/v1/outcomes", content=b"{", headers=SALES).status_code == 422


def test_a_broken_store_is_503_so_the_crm_retries(trained: TrainedModel, tmp_path: Path) -> None:
    settings = api_settings(
        trained, tmp_path, database_url=f"sqlite:///{tmp_path / 'missing' / 'app.db'}"
    )
    body = {"events": [{"lead_id": "R1", "event": "lost", "occurred_at": "2026-01-05T10:00:00Z"}]}
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/outcomes", json=body, headers=ADMIN).status_code == 503
