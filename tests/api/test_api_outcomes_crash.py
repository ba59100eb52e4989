"""Acknowledged outcomes survive the server being killed: SIGKILL, restart, repeat.

A bounded client posts batches of outcome events to a real `uvicorn` server process while the test
kills it with SIGKILL and starts it again, several times. Every event that got a 2xx answer must be
in the store afterwards, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from api_testkit import ADMIN, KEY_ENTRIES, free_port

from conftest import TrainedModel
from leadml.store import Store

KILLS = 3
BATCH = 10
#: The client stops after this many batches even if the test has not told it to.
MAX_BATCHES = 5000
START_TIMEOUT_S = 120


class Server:
    def __init__(self, trained: TrainedModel, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "LEADML_MODEL_URI": str(trained.export_dir),
            "MLFLOW_TRACKING_URI": trained.tracking_uri,
            "LEADML_DATABASE_URL": database_url,
            "LEADML_API_KEYS": KEY_ENTRIES,
            "LEADML_RELOAD_INTERVAL_SECONDS": "0",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


class Client(threading.Thread):
    """Posts new events one batch after another; remembers which ones were acknowledged."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: set[tuple[str, str]] = set()
        self.failures = 0
        self.stop = threading.Event()
        self.t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            for batch in range(MAX_BATCHES):
                if self.stop.is_set():
                    return
                events = [
                    {
                        "lead_id": f"C{batch}-{i}",
                        "event": "lost",
                        "occurred_at": (self.t0 + timedelta(seconds=batch)).isoformat(),
                    }
                    for i in range(BATCH)
                ]
                try:
                    response = http.post(
                        f"{self.url}/v1/outcomes", json={"events": events}, headers=ADMIN
                    )
                except httpx.HTTPError:
                    self.failures += 1
                    time.sleep(0.02)
                    continue
                if 200 <= response.status_code < 300:
                    self.acknowledged.update((e["lead_id"], e["event"]) for e in events)
                else:
                    self.failures += 1


def test_every_acknowledged_outcome_survives_sigkill(
    trained: TrainedModel, store_url: str, tmp_path: Path
) -> None:
    server = Server(trained, store_url, tmp_path / "server.log")
    server.start()
    client = Client(server.url)
    client.start()
    acknowledged_before_kill = []
    try:
        for _ in range(KILLS):
            time.sleep(1.0)
            acknowledged_before_kill.append(len(client.acknowledged))
            server.kill()
            server.start()
        time.sleep(0.5)
    finally:
        client.stop.set()
        client.join(timeout=30)
        server.kill()

    store = Store.from_url(store_url)
    events = store.outcome_events_frame()
    store.close()
    stored = set(zip(events["lead_id"], events["event"], strict=True))
    lost = client.acknowledged - stored
    assert len(client.acknowledged) > acknowledged_before_kill[0] > 0
    assert lost == set(), f"{len(lost)} acknowledged events are missing"
