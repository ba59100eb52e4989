"""/v1/mql-policy through the API, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_testkit import ADMIN, SCORER, api_settings, example_lead
from fastapi.testclient import TestClient

from api.main import create_app
from conftest import TrainedModel
from leadml.policy import PolicyBook, load_holdout
from leadml.scoring import Scorer
from leadml.store import Store
from leadml.threshold import CapacityPolicy, MinRecallPolicy, resolve_policy

URL = "/v1/mql-policy"
CAPACITY = {"kind": "capacity", "per_week": 300, "leads_per_week": 1000}


@pytest.fixture
def client(trained: TrainedModel, tmp_path: Path, store_url: str) -> Iterator[TestClient]:
    app = create_app(api_settings(trained, tmp_path, database_url=store_url))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def stored(store_url: str) -> Iterator[Store]:
    """The app database read directly, to see what the API really stored."""
    store = Store.from_url(store_url)
    yield store
    store.close()


def put(client: TestClient, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    return client.put(URL, json=body, headers=headers)


def test_default_policy_until_one_is_set(client: TestClient, trained: TrainedModel) -> None:
    response = client.get(URL, headers=SCORER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] is None and body["kind"] == "default"
    p = trained.result.holdout_proba
    assert body["expected"]["mql_share"] == pytest.approx(np.mean(p >= body["cutoff"]))
    assert body["expected"]["mql_share"] <= 0.30
    assert body["model_version"] == trained.version == body["serving_model_version"]
    assert client.get(f"{URL}/history", headers=SCORER).json()["versions"] == []


def test_put_needs_the_admin_role(client: TestClient, stored: Store, trained: TrainedModel) -> None:
    body = {**CAPACITY, "set_by": "ana"}
    assert put(client, body, headers={}).status_code == 401
    assert put(client, body, headers=SCORER).status_code == 403
    assert stored.policy_history(trained.model_name) == []


def test_put_stores_a_version_that_decides_scores(
    client: TestClient, stored: Store, trained: TrainedModel
) -> None:
    response = put(client, {**CAPACITY, "set_by": "ana", "reason": "3 reps"})
    assert response.status_code == 200, response.text
    body = response.json()
    y, p = trained.result.holdout_y, trained.result.holdout_proba
    expected = resolve_policy(CapacityPolicy(per_week=300, leads_per_week=1000), y, p)
    assert body["version"] == 1 and body["kind"] == "capacity"
    assert body["cutoff"] == expected.cutoff
    assert body["expected"]["precision"] == pytest.approx(expected.precision)
    assert body["expected"]["recall"] == pytest.approx(expected.recall)
    assert body["expected"]["mqls_per_week"] == pytest.approx(expected.mqls_per_week)
    low, high = body["expected"]["intervals"]["recall"]
    assert low <= expected.recall <= high
    assert body["sentence"] == expected.sentence
    assert (body["set_by"], body["reason"], body["stale"]) == ("ana", "3 reps", False)

    current = client.get(URL, headers=SCORER).json()
    assert current["version"] == 1 and current["cutoff"] == expected.cutoff
    row = stored.current_policy(trained.model_name)
    assert row is not None and row.version == 1 and row.cutoff == expected.cutoff

    scored = client.post("/v1/leads/score", json=example_lead(client), headers=SCORER)
    assert scored.status_code == 200, scored.text
    score = scored.json()
    assert score["policy_version"] == 1
    assert score["is_mql"] == (score["probability"] >= expected.cutoff)


def test_history_is_kept_never_overwritten(
    client: TestClient, stored: Store, trained: TrainedModel
) -> None:
    first = put(client, {**CAPACITY, "set_by": "ana"}).json()
    second = put(client, {"kind": "min_recall", "min_recall": 0.8, "set_by": "ben"}).json()
    assert (first["version"], second["version"]) == (1, 2)
    history = client.get(f"{URL}/history", headers=SCORER).json()
    assert history["model_name"] == trained.model_name
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert history["versions"][1] == first
    assert history["versions"][0]["expected"]["recall"] >= 0.8
    y, p = trained.result.holdout_y, trained.result.holdout_proba
    assert second["cutoff"] == resolve_policy(MinRecallPolicy(min_recall=0.8), y, p).cutoff
    assert [r.version for r in stored.policy_history(trained.model_name)] == [2, 1]
    limited = client.get(f"{URL}/history", params={"limit": 1}, headers=SCORER).json()
    assert [v["version"] for v in limited["versions"]] == [2]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"kind": "min_recall", "min_recall": 80, "set_by": "a"}, "min_recall"),
        ({"kind": "min_recall", "min_recall": "lots", "set_by": "a"}, "min_recall"),
        ({"kind": "capacity", "per_week": 200, "set_by": "a"}, "leads_per_week"),
        ({"kind": "fixed", "cutoff": 0.4}, "set_by"),
        ({"kind": "fixed", "cutoff": 0.4, "set_by": "a", "cut_off": 1}, "cut_off"),
        ({"kind": "sometimes", "set_by": "a"}, None),
        ({**CAPACITY, "per_week": 2000, "set_by": "a"}, None),
        ({"kind": "max_value", "deal_value": 100, "cost_per_contact": 100, "set_by": "a"}, None),
        ({**CAPACITY, "set_by": "a", "exploration_share": -0.01}, "exploration_share"),
        ({**CAPACITY, "set_by": "a", "exploration_share": 1.0}, "exploration_share"),
        ({**CAPACITY, "set_by": "a", "exploration_share": 0.6}, "exploration_share"),
        ({**CAPACITY, "set_by": "a", "exploration_share": "5 %"}, "exploration_share"),
        ({**CAPACITY, "set_by": "a", "exploration_share": None}, "exploration_share"),
    ],
)
def test_bad_policies_are_422_by_field(
    client: TestClient,
    stored: Store,
    trained: TrainedModel,
    body: dict[str, Any],
    where: str | None,
) -> None:
    response = put(client, body)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert problems and all("msg" in p and "loc" in p for p in problems)
    if where is not None:
        assert any(p["loc"][-1] == where for p in problems), problems
    assert stored.policy_history(trained.model_name) == []


def test_a_policy_that_cannot_be_met_is_422(
    client: TestClient, stored: Store, trained: TrainedModel
) -> None:
    response = put(
        client, {"kind": "capacity", "per_week": 1, "leads_per_week": 10**9, "set_by": "a"}
    )
    assert response.status_code == 422
    assert "tied at the highest probability" in response.json()["detail"][0]["msg"]
    assert stored.policy_history(trained.model_name) == []


def test_simulate_saves_nothing(client: TestClient, stored: Store, trained: TrainedModel) -> None:
    put(client, {**CAPACITY, "set_by": "ana"})
    before = stored.policy_history(trained.model_name)

    moved = client.post(f"{URL}/simulate", json={"shift_points": 5}, headers=SCORER)
    proposed = client.post(
        f"{URL}/simulate", json={"kind": "min_recall", "min_recall": 0.9}, headers=SCORER
    )

    assert moved.status_code == 200, moved.text
    assert proposed.status_code == 200, proposed.text
    assert stored.policy_history(trained.model_name) == before
    assert client.get(URL, headers=SCORER).json()["version"] == 1
    shift = moved.json()
    assert shift["saved"] is False and shift["points"] == 5
    assert shift["current"]["version"] == 1
    assert 0 < shift["change"]["mql_share"] <= 0.05 + 1e-9
    assert shift["change"]["mqls_per_week"] == pytest.approx(shift["change"]["mql_share"] * 1000)
    assert shift["change"]["expected_conversions_per_week"] == pytest.approx(
        shift["proposed"]["expected_conversions_per_week"]
        - shift["current"]["expected_conversions_per_week"]
    )
    assert [row["chosen"] for row in shift["rows"]].count(True) == 1
    assert proposed.json()["proposed"]["recall"] >= 0.9


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"shift_points": "five"},
        {"shift_points": 0},
        {"kind": "fixed"},
        {"shift_points": 500},
        {"shift_points": 5, "exploration_share": 1.5},
        {"kind": "fixed", "cutoff": 0.4, "exploration_share": -1},
    ],
)
def test_bad_simulations_are_422(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(f"{URL}/simulate", json=body, headers=SCORER)
    assert response.status_code == 422, response.text


def test_reading_needs_a_key(client: TestClient) -> None:
    assert client.get(URL).status_code == 401
    assert client.get(f"{URL}/history").status_code == 401
    assert client.post(f"{URL}/simulate", json={"shift_points": 5}).status_code == 401


def test_exploration_hands_a_share_below_the_line_to_sales(
    stored: Store, trained: TrainedModel, demo_frame: Any, tmp_path: Path, store_url: str
) -> None:
    settings = api_settings(trained, tmp_path, database_url=store_url, policy_refresh_seconds=0)
    with TestClient(create_app(settings)) as client:
        _explore(client, stored, trained, demo_frame)


def _explore(client: TestClient, stored: Store, trained: TrainedModel, demo_frame: Any) -> None:
    scorer = Scorer.load(str(trained.export_dir))
    book = PolicyBook(stored, holdout_loader=lambda _: load_holdout(scorer))
    book.set(
        scorer, CapacityPolicy(per_week=300, leads_per_week=1000), set_by="t", exploration_share=0.3
    )
    columns = [scorer.schema.id_column, *scorer.schema.feature_names]
    rows = json.loads(demo_frame[columns].head(400).to_json(orient="records", date_format="iso"))
    found = []
    for start in range(0, len(rows), 50):
        response = client.post(
            "/v1/leads/score-batch", json=rows[start : start + 50], headers=SCORER
        )
        assert response.status_code == 200, response.text
        found += response.json()["leads"]
    below = [lead for lead in found if not lead["is_mql"]]
    mqls = [lead for lead in found if lead["is_mql"]]
    assert mqls and not any(lead["exploration"] for lead in mqls)
    assert {lead["selection_probability"] for lead in mqls} == {1.0}
    assert {lead["selection_probability"] for lead in below} == {0.3}
    share = np.mean([lead["exploration"] for lead in below])
    assert 0.2 < share < 0.4
    single = client.post("/v1/leads/score", json=rows[0], headers=SCORER).json()
    assert "exploration" in single and "selection_probability" in single


def test_the_exploration_share_is_set_through_put_audited_and_priced(
    client: TestClient, stored: Store, trained: TrainedModel, demo_frame: Any
) -> None:
    response = put(
        client,
        {**CAPACITY, "set_by": "ana", "reason": "measure the bottom", "exploration_share": 0.05},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    mql_share = body["expected"]["mql_share"]
    assert body["exploration_share"] == 0.05 and body["params"]["exploration_share"] == 0.05
    # The cost: 5 % of the leads below the line, of 1,000 leads a week.
    cost = body["expected"]["exploration"]
    assert cost["leads_per_week"] == pytest.approx(0.05 * (1 - mql_share) * 1000)
    assert f"about {round(cost['leads_per_week'])} extra leads a week" in body["sentence"]
    [record] = stored.policy_history(trained.model_name)
    assert (record.set_by, record.reason, record.params["exploration_share"]) == (
        "ana",
        "measure the bottom",
        0.05,
    )
    assert client.get(URL, headers=SCORER).json()["exploration_share"] == 0.05

    # Served scores hand that share below the line to sales, with its chance recorded.
    scorer = Scorer.load(str(trained.export_dir))
    columns = [scorer.schema.id_column, *scorer.schema.feature_names]
    rows = json.loads(demo_frame[columns].head(50).to_json(orient="records", date_format="iso"))
    scored = client.post("/v1/leads/score-batch", json=rows, headers=SCORER).json()["leads"]
    below = [lead for lead in scored if not lead["is_mql"]]
    assert below and all(lead["selection_probability"] == 0.05 for lead in below)

    # A new version without the share turns exploration off, and the history keeps both.
    off = put(client, {**CAPACITY, "set_by": "ben"}).json()
    assert (off["version"], off["exploration_share"], off["expected"]["exploration"]) == (
        2,
        0,
        None,
    )
    history = client.get(f"{URL}/history", headers=SCORER).json()["versions"]
    assert [v["exploration_share"] for v in history] == [0.0, 0.05]


def test_simulate_prices_an_exploration_share(client: TestClient) -> None:
    put(client, {**CAPACITY, "set_by": "ana", "exploration_share": 0.1})
    kept = client.post(f"{URL}/simulate", json={"shift_points": 5}, headers=SCORER).json()
    asked = client.post(
        f"{URL}/simulate", json={"shift_points": 5, "exploration_share": 0.02}, headers=SCORER
    ).json()
    for answer, share in ((kept, 0.1), (asked, 0.02)):
        mql_share = answer["proposed"]["mql_share"]
        assert answer["exploration"]["share"] == share
        assert answer["exploration"]["leads_per_week"] == pytest.approx(
            share * (1 - mql_share) * 1000
        )
    none = client.post(
        f"{URL}/simulate", json={"kind": "fixed", "cutoff": 0.5}, headers=SCORER
    ).json()["exploration"]
    assert none["share"] == 0 and "not measured" in none["sentence"]
