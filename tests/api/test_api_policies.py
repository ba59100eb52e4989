"""Scores follow the MQL policy in force: at once when set through the API's book, after the
refresh interval when another process stores it, and a 503 when it cannot be read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_testkit import SCORER, api_settings, example_lead
from fastapi.testclient import TestClient

from api.main import create_app
from conftest import TrainedModel
from leadml.policy import PolicyBook
from leadml.store import Store
from leadml.threshold import FixedPolicy

REFRESH = 0.3


@pytest.fixture()
def client(trained: TrainedModel, tmp_path: Path) -> Iterator[TestClient]:
    settings = api_settings(trained, tmp_path, policy_refresh_seconds=REFRESH)
    with TestClient(create_app(settings)) as started:
        yield started


def score(client: TestClient) -> dict[str, object]:
    response = client.post(
        "/v1/leads/score?reasons=false", json=example_lead(client), headers=SCORER
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_policy_set_through_the_api_decides_the_next_score(client: TestClient) -> None:
    first = score(client)
    assert first["policy_version"] is None
    book = client.app.state.policy_book  # type: ignore[attr-defined]
    scorer = client.app.state.holder.current.scorer  # type: ignore[attr-defined]
    probability = float(first["probability"])  # type: ignore[arg-type]
    book.set(scorer, FixedPolicy(cutoff=probability / 2), set_by="test", reason="lower line")
    second = score(client)
    assert second["policy_version"] == 1
    assert second["is_mql"] is True
    book.set(scorer, FixedPolicy(cutoff=min(1.0, probability * 2)), set_by="test")
    third = score(client)
    assert third["policy_version"] == 2
    assert third["is_mql"] is False


def test_a_policy_stored_by_another_process_is_seen_after_the_refresh(
    client: TestClient, trained: TrainedModel, tmp_path: Path
) -> None:
    assert score(client)["policy_version"] is None
    other = Store.from_url(f"sqlite:///{tmp_path / 'app.db'}")
    scorer = client.app.state.holder.current.scorer  # type: ignore[attr-defined]
    PolicyBook(other).set(scorer, FixedPolicy(cutoff=0.5), set_by="another worker")
    other.close()
    deadline = time.monotonic() + 10 * REFRESH + 5
    while score(client)["policy_version"] is None:
        assert time.monotonic() < deadline, "the new policy was never picked up"
        time.sleep(REFRESH / 3)
    assert score(client)["policy_version"] == 1


def test_an_unreadable_policy_store_is_503_and_the_model_stays_ready(
    trained: TrainedModel, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "app.db"
    settings = api_settings(trained, tmp_path, database_url=f"sqlite:///{missing}")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/leads/score", json=example_lead(client), headers=SCORER)
        assert response.status_code == 503
        assert "MQL policy" in response.json()["detail"]
        assert client.get("/readyz").json()["ready"] is True
