"""API keys and roles on every authenticated route; anonymous access only when asked for."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from api_testkit import ADMIN, SCORER, api_settings, client_fixture, example_lead  # noqa: F401
from fastapi.testclient import TestClient

from api.main import StartupError, create_app
from conftest import TrainedModel

SCORING_ROUTES = [
    ("post", "/v1/leads/score"),
    ("post", "/v1/leads/score-batch"),
    ("get", "/v1/model"),
]


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    if method == "get":
        return client.get(path, headers=headers).status_code
    body = example_lead(client) if path.endswith("/score") else [example_lead(client)]
    return client.post(path, json=body, headers=headers).status_code


@pytest.mark.parametrize(("method", "path"), [*SCORING_ROUTES, ("post", "/v1/admin/reload")])
def test_no_key_is_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method.upper(), path, json={})
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), [*SCORING_ROUTES, ("post", "/v1/admin/reload")])
def test_an_unknown_key_is_401(client: TestClient, method: str, path: str) -> None:
    assert call(client, method, path, {"X-API-Key": "guessed"}) == 401


@pytest.mark.parametrize(("method", "path"), SCORING_ROUTES)
def test_scorer_and_admin_keys_may_score(client: TestClient, method: str, path: str) -> None:
    assert call(client, method, path, SCORER) == 200
    assert call(client, method, path, ADMIN) == 200


def test_a_scorer_key_may_not_reload(client: TestClient) -> None:
    response = client.post("/v1/admin/reload", headers=SCORER)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert client.post("/v1/admin/reload", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_the_docs_need_a_scorer_key(client: TestClient, path: str) -> None:
    """The document describes the served model's lead (fields, known categories)."""
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": "guessed"}).status_code == 401
    assert client.get(path, headers=SCORER).status_code == 200


def test_a_setting_makes_the_docs_public(trained: TrainedModel, tmp_path: Path) -> None:
    with TestClient(create_app(api_settings(trained, tmp_path, public_docs=True))) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/v1/model").status_code == 401  # only the docs


def test_without_keys_the_server_refuses_to_start(trained: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="LEADML_ALLOW_ANONYMOUS"):
        create_app(api_settings(trained, tmp_path, api_keys=""))


def test_a_malformed_key_list_refuses_to_start(trained: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="LEADML_API_KEYS"):
        create_app(api_settings(trained, tmp_path, api_keys="scorer:not-a-digest"))


LOCAL = ("127.0.0.1", 50000)


def test_anonymous_access_is_explicit_announced_and_scorer_only(
    trained: TrainedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(trained, tmp_path, api_keys="", allow_anonymous=True)
    with (
        caplog.at_level(logging.WARNING, logger="leadml.api"),
        TestClient(create_app(settings), client=LOCAL) as client,
    ):
        assert "ANONYMOUS ACCESS IS ON" in caplog.text
        assert "may score leads" in caplog.text
        assert "Nobody may reload the model and set the MQL policy" in caplog.text
        for method, path in SCORING_ROUTES:
            assert call(client, method, path, {}) == 200, path
        refused = client.post("/v1/admin/reload")
        assert refused.status_code == 403
        assert "LEADML_ANONYMOUS_ROLE=admin" in refused.json()["detail"]
        assert (
            client.put("/v1/mql-policy", json={"kind": "fixed", "cutoff": 0.5}).status_code == 403
        )


def test_a_setting_grants_anonymous_callers_admin_for_a_demo(
    trained: TrainedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(
        trained, tmp_path, api_keys="", allow_anonymous=True, anonymous_role="admin"
    )
    with (
        caplog.at_level(logging.WARNING, logger="leadml.api"),
        TestClient(create_app(settings), client=LOCAL) as client,
    ):
        assert "reload the model and set the MQL policy" in caplog.text
        assert "Nobody may" not in caplog.text
        assert client.post("/v1/admin/reload").status_code == 200


def test_anonymous_access_serves_this_machine_only(trained: TrainedModel, tmp_path: Path) -> None:
    settings = api_settings(trained, tmp_path, api_keys="", allow_anonymous=True)
    with TestClient(create_app(settings), client=("203.0.113.9", 40000)) as client:
        response = client.get("/v1/model")
        assert response.status_code == 403
        assert "server's machine" in response.json()["detail"]


def test_anonymous_and_keys_together_refuse_to_start(trained: TrainedModel, tmp_path: Path) -> None:
    """A stray LEADML_ALLOW_ANONYMOUS=true in a .env must not open a server that has keys."""
    with pytest.raises(StartupError, match="both set") as refused:
        create_app(api_settings(trained, tmp_path, allow_anonymous=True))
    assert "\n" not in str(refused.value)


def test_an_unknown_anonymous_role_refuses_to_start(trained: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="LEADML_ANONYMOUS_ROLE"):
        create_app(
            api_settings(
                trained, tmp_path, api_keys="", allow_anonymous=True, anonymous_role="root"
            )
        )
