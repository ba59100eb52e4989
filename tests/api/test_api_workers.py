"""`leadml serve --workers 2`, a real server of two processes: an admin reload and a policy change
made through one worker reach the other, /readyz says what each serves, /metrics counts both.

The alias poll is off and the policy cache long, so only the workers' shared generations can
carry the change from the worker that was asked to the other one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_testkit import ADMIN, KEY_ENTRIES, SCORER, free_port

from conftest import TrainedModel
from leadml.bundle import copy_bundle, read_bundle

#: Two workers each load and check the model; on 2 busy cores that can take a while.
START_SECONDS = 240
#: The stated bound is the sync interval (1 s) plus one model load; allow for a busy machine.
FOLLOW_SECONDS = 60


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def get(self, path: str, **options: Any) -> httpx.Response:
        # A new connection each time: the kernel hands it to either worker.
        with httpx.Client(base_url=self.url, timeout=30) as client:
            return client.get(path, **options)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            return client.request(method, path, **options)


def wait_until(condition: Any, seconds: float, what: str, server: Server) -> float:
    started = time.monotonic()
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"the server stopped: {server.log.read_text()[-3000:]}")
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > seconds:
            pytest.fail(f"timed out waiting until {what}; log: {server.log.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def model_folder(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("workers") / "model"
    shutil.copytree(trained.export_dir, folder)
    return folder


@pytest.fixture(scope="module")
def server(
    trained: TrainedModel, model_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    work = model_folder.parent
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
        "LEADML_MODEL_URI": str(model_folder),
        "LEADML_API_KEYS": KEY_ENTRIES,
        "LEADML_DATABASE_URL": f"sqlite:///{work / 'app.db'}",
        "LEADML_RELOAD_INTERVAL_SECONDS": "0",
        "LEADML_POLICY_REFRESH_SECONDS": "3600",
    }
    env.pop("LEADML_ALLOW_ANONYMOUS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "leadml.cli", "serve", "--port", str(port)),
                *("--workers", "2", "--new-database"),
            ],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until(
            lambda: len(running.get("/readyz").json()["workers"] or []) == 2,
            START_SECONDS,
            "both workers are ready",
            running,
        )
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers_by_worker(server: Server, path: str, tries: int = 200, **options: Any) -> dict:
    """The latest answer of each worker to `path`, over new connections, until both answered."""
    seen: dict[str, Any] = {}
    for _ in range(tries):
        response = server.get(path, **options)
        seen[response.headers["x-leadml-worker"]] = response
        if len(seen) == 2:
            break
    return seen


def test_an_admin_reload_reaches_both_workers(server: Server, model_folder: Path) -> None:
    workers = server.get("/readyz").json()["workers"]
    assert {w["model_version"] for w in workers} == {read_bundle(model_folder).info.version}
    pids = {str(w["pid"]) for w in workers}
    # A new version arrives in the folder (signed by the key holder); one worker is asked.
    copy_bundle(read_bundle(model_folder), model_folder, version="77")
    answer = server.request("POST", "/v1/admin/reload", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "77"
    asked = answer.headers["x-leadml-worker"]

    def both_serve_77() -> bool:
        seen = answers_by_worker(server, "/readyz", tries=20)
        return set(seen) == pids and all(r.json()["model_version"] == "77" for r in seen.values())

    took = wait_until(both_serve_77, FOLLOW_SECONDS, "both workers serve v77", server)
    print(f"admin reload on worker {asked} reached both workers in {took:.1f} s")
    workers = server.get("/readyz").json()["workers"]
    assert {str(w["pid"]) for w in workers} == pids
    assert {w["model_version"] for w in workers} == {"77"}


def test_a_policy_change_reaches_both_workers(server: Server) -> None:
    lead = server.get("/v1/model", headers=SCORER).json()
    assert lead["version"]
    put = server.request(
        "PUT",
        "/v1/mql-policy",
        headers=ADMIN,
        json={"kind": "fixed", "cutoff": 0.123, "set_by": "test", "reason": "workers"},
    )
    assert put.status_code == 200, put.text
    version = put.json()["version"]

    def both_use_it() -> bool:
        seen = answers_by_worker(server, "/v1/mql-policy", tries=20, headers=SCORER)
        return len(seen) == 2 and all(r.json()["version"] == version for r in seen.values())

    took = wait_until(both_use_it, FOLLOW_SECONDS, "both workers use the new policy", server)
    print(f"policy change reached both workers in {took:.1f} s")


def test_metrics_count_both_workers(server: Server) -> None:
    before = _readyz_count(server.get("/metrics").text)
    seen: set[str] = set()
    calls = 0
    while len(seen) < 2 or calls < 10:
        seen.add(server.get("/readyz").headers["x-leadml-worker"])
        calls += 1
    time.sleep(0.5)  # the last request is counted just after its answer went out
    text = server.get("/metrics").text
    # Each worker answered some of the calls; only figures of both together add up to all.
    assert _readyz_count(text) - before == calls
    served = re.findall(r"^leadml_model_info\{([^}]*)\} 1\.0$", text, flags=re.MULTILINE)
    assert len({re.search(r'pid="(\d+)"', labels).group(1) for labels in served}) == 2  # type: ignore[union-attr]


def _readyz_count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("leadml_http_requests_total{") and 'route="/readyz"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
