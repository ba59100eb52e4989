"""Shared pieces of the API tests: keys, settings pointing at the `trained` fixture, clients.

Import the fixtures into a test module with `from api_testkit import client_fixture  # noqa: F401`
(a conftest.py here would shadow tests/conftest.py, which other tests import by name).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.keys import hash_key
from api.main import create_app
from conftest import TrainedModel
from leadml.settings import Settings

SCORER_KEY = "test-scorer-key-0123456789"
ADMIN_KEY = "test-admin-key-9876543210"
KEY_ENTRIES = f"scorer:{hash_key(SCORER_KEY)},admin:{hash_key(ADMIN_KEY)}"
SCORER = {"X-API-Key": SCORER_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}


def api_settings(trained: TrainedModel, folder: Path, **changes: Any) -> Settings:
    """Settings serving the fixture's champion, with keys, an app database in `folder`, and no
    polling (tests that poll say so)."""
    values: dict[str, Any] = {
        "tracking_uri": trained.tracking_uri,
        "model_name": trained.model_name,
        "database_url": f"sqlite:///{folder / 'app.db'}",
        "api_keys": KEY_ENTRIES,
        "allow_anonymous": False,
        "reload_interval_seconds": 0.0,
        "max_batch_leads": 50,
        "max_body_bytes": 200_000,
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture(scope="module", name="client")
def client_fixture(
    trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """A started app (lifespan run) serving the fixture's champion, keys required."""
    app = create_app(api_settings(trained, tmp_path_factory.mktemp("api")))
    with TestClient(app) as client:
        yield client


def example_lead(client: TestClient) -> dict[str, Any]:
    model = client.app.state.holder.current  # type: ignore[attr-defined]
    return dict(model.lead_model.example)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerThread:
    """A real uvicorn server on 127.0.0.1 in a background thread (for tests under load)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
