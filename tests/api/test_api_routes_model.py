"""GET /v1/model, /healthz, /readyz and /metrics."""

from __future__ import annotations

from typing import Any

from api_testkit import SCORER, client_fixture, example_lead  # noqa: F401
from fastapi.testclient import TestClient

from conftest import TrainedModel
from leadml.schema import Role


def test_the_model_description_names_the_version_and_its_fields(
    client: TestClient, trained: TrainedModel
) -> None:
    body = client.get("/v1/model", headers=SCORER).json()
    assert body["name"] == trained.model_name
    assert body["version"] == trained.version
    assert body["alias"] == "champion"
    assert body["kind"] == trained.result.model_kind
    assert body["trained_at"] == trained.result.trained_at
    assert body["metrics"]["roc_auc"] == trained.result.metrics["roc_auc"]
    assert body["fast_path"] == "compiled"
    schema = trained.result.schema
    fields = {f["name"]: f for f in body["fields"]}
    assert list(fields) == schema.feature_names
    for spec in schema.features:
        described = fields[spec.name]
        assert described["role"] == spec.role.value
        assert described["required"] == spec.required
        assert described["known_categories"] == list(spec.categories)
        if spec.role is Role.NUMERIC:
            assert described["type"] == ("integer" if spec.integer else "number")
    assert body["id_field"] == schema.id_column
    ignored = {f["name"]: f["reason"] for f in body["ignored_fields"]}
    expected = {s.name for s in schema.dropped if s.role is Role.LEAKAGE}
    time_features = trained.result.time_features
    if time_features is not None and not time_features.kept:  # the data decided: dates only split
        expected.add(str(schema.time_column))
        assert "did not help" in ignored[str(schema.time_column)]
    assert set(ignored) == expected
    policy = body["policy"]
    assert policy["version"] is None and policy["kind"] == "default"
    assert 0 < policy["cutoff"] < 1
    assert policy["grades"][-1]["lower_bound"] == 0


def test_healthz_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_the_model_and_no_reload_error(
    client: TestClient, trained: TrainedModel
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["model_version"] == trained.version
    assert body["last_reload_error"] is None


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_scores_and_the_model(
    client: TestClient, trained: TrainedModel
) -> None:
    before = client.get("/metrics").text
    lead: dict[str, Any] = example_lead(client)
    scored = [client.post("/v1/leads/score", json=lead, headers=SCORER).json() for _ in range(3)]
    client.post("/v1/leads/score", json={"bad": 1}, headers=SCORER)
    after = client.get("/metrics").text
    route = "/v1/leads/score"
    ok = metric(after, "leadml_http_requests_total", route=route, status="200")
    assert ok - metric(before, "leadml_http_requests_total", route=route, status="200") == 3
    bad = metric(after, "leadml_http_requests_total", route=route, status="422")
    assert bad - metric(before, "leadml_http_requests_total", route=route, status="422") == 1
    assert metric(after, "leadml_http_request_duration_seconds_count", route=route) >= 4
    grade = scored[0]["grade"]
    assert (
        metric(after, "leadml_scores_total", grade=grade)
        - metric(before, "leadml_scores_total", grade=grade)
        == 3
    )
    assert metric(after, "leadml_model_info", version=trained.version, alias="champion") == 1


def test_unknown_paths_are_counted_under_one_label(client: TestClient) -> None:
    client.get("/no/such/page/123")
    text = client.get("/metrics").text
    assert metric(text, "leadml_http_requests_total", route="unmatched", status="404") >= 1
    assert "/no/such/page/123" not in text
