"""Hot reload: the alias moves under load without a failed request; broken versions are refused."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from api_testkit import ADMIN, SCORER, ServerThread, api_settings, example_lead
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from api.main import create_app
from conftest import TrainedModel
from leadml.bundle import PIPELINE_FILE, read_info, sign_folder, write_info
from leadml.registry import BUNDLE_DIGEST_TAG, use_tracking
from leadml.tracking import CHAMPION, log_training

RELOAD_NAME = "api-reload-test"
THREADS = 4
#: A bound on each scoring thread, so a test that stops waiting never leaves it running long.
THREAD_SECONDS = 300.0


@pytest.fixture(scope="module")
def two_versions(trained: TrainedModel) -> tuple[str, str]:
    """A registered model of its own (moving its alias disturbs no other test), two versions:
    the fixture's champion registered again, and a second training run logged with
    log_training."""
    use_tracking(trained.tracking_uri)
    client = MlflowClient()
    source = client.get_model_version(trained.model_name, trained.version).source
    first = mlflow.register_model(source, RELOAD_NAME).version
    # The same files as the champion: the registry pins the same bundle digest for them.
    pinned = client.get_model_version(trained.model_name, trained.version).tags
    client.set_model_version_tag(RELOAD_NAME, first, BUNDLE_DIGEST_TAG, pinned[BUNDLE_DIGEST_TAG])
    second = log_training(trained.result, model_name=RELOAD_NAME, experiment="tests").version
    client.set_registered_model_alias(RELOAD_NAME, CHAMPION, first)
    return str(first), str(second)


def move_alias(version: str) -> None:
    MlflowClient().set_registered_model_alias(RELOAD_NAME, CHAMPION, version)


def test_the_admin_call_loads_the_version_the_alias_points_to(
    trained: TrainedModel, two_versions: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two_versions
    move_alias(first)
    settings = api_settings(trained, tmp_path, model_name=RELOAD_NAME)
    with TestClient(create_app(settings)) as client:
        unchanged = client.post("/v1/admin/reload", headers=ADMIN)
        assert unchanged.status_code == 200 and unchanged.json()["outcome"] == "unchanged"
        move_alias(second)
        lead = example_lead(client)
        assert (
            client.post("/v1/leads/score", json=lead, headers=SCORER).json()["model_version"]
            == first
        )  # nothing moves until asked (polling is off here)
        reloaded = client.post("/v1/admin/reload", headers=ADMIN).json()
        assert reloaded == {
            "outcome": "reloaded",
            "model_version": second,
            "previous_version": first,
            "message": f"now serving {RELOAD_NAME}/{second}",
        }
        scored = client.post("/v1/leads/score", json=lead, headers=SCORER).json()
        assert scored["model_version"] == second
        assert client.get("/v1/model", headers=SCORER).json()["version"] == second
        assert client.get("/readyz").json()["model_version"] == second
    move_alias(first)


def score_until(url: str, stop: threading.Event, lead: dict[str, Any], seen: list[Any]) -> None:
    # Score until told to stop, not a fixed count: on a slow machine the reloads take long enough
    # for a fixed number of requests to run out before the test has seen what it waits for.
    deadline = time.monotonic() + THREAD_SECONDS
    with httpx.Client(base_url=url, headers=SCORER, timeout=30) as http:
        while time.monotonic() < deadline:
            try:
                response = http.post("/v1/leads/score", json=lead)
                seen.append((response.status_code, response.json().get("model_version")))
            except httpx.HTTPError as error:  # a refused connection would be a failure too
                seen.append((repr(error), None))
            if stop.is_set():
                return


def test_no_request_fails_while_the_alias_moves_under_load(
    trained: TrainedModel, two_versions: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two_versions
    move_alias(first)
    settings = api_settings(trained, tmp_path, model_name=RELOAD_NAME, reload_interval_seconds=0.1)
    app = create_app(settings)
    with ServerThread(app) as server:
        lead = example_lead_of(app)
        stop = threading.Event()
        seen: list[Any] = []
        workers = [
            threading.Thread(target=score_until, args=(server.url, stop, lead, seen))
            for _ in range(THREADS)
        ]
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: len(seen) >= 40)
            move_alias(second)  # the poll picks it up
            wait_for(lambda: any(version == second for _, version in seen[-THREADS:]))
            move_alias(first)  # and back, through the admin call this time
            httpx.post(f"{server.url}/v1/admin/reload", headers=ADMIN, timeout=60)
            count_at_switch_back = len(seen)
            wait_for(lambda: len(seen) >= count_at_switch_back + 40)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    statuses = Counter(status for status, _ in seen)
    versions = Counter(version for _, version in seen)
    assert statuses == {200: len(seen)}, statuses
    assert versions[first] > 0 and versions[second] > 0, versions
    assert seen[-1][1] == first


def example_lead_of(app: Any) -> dict[str, Any]:
    return dict(app.state.holder.current.lead_model.example)


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_a_tampered_model_is_refused_and_the_old_one_keeps_serving(
    trained: TrainedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    settings = api_settings(trained, tmp_path, model_uri=str(folder))
    with TestClient(create_app(settings)) as client:
        lead = example_lead(client)
        before = client.post("/v1/leads/score", json=lead, headers=SCORER).json()
        # A "new version" arrives whose pipeline file is not the one model.json vouches for.
        info = read_info(folder)
        write_info(folder, replace(info, version="99"))
        with (folder / PIPELINE_FILE).open("ab") as handle:
            handle.write(b"tampered")
        refused = client.post("/v1/admin/reload", headers=ADMIN)
        assert refused.status_code == 409
        body = refused.json()
        assert body["outcome"] == "refused"
        assert body["model_version"] == trained.version
        assert "tampered" in body["message"]
        after = client.post("/v1/leads/score", json=lead, headers=SCORER).json()
        assert after["model_version"] == trained.version
        assert after["probability"] == before["probability"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        report = ready.json()
        assert report["ready"] is True and report["model_version"] == trained.version
        assert report["last_reload_error"]["refused_version"] == "99"
        assert "tampered" in report["last_reload_error"]["message"]
        metrics = client.get("/metrics").text
        assert 'leadml_model_reloads_total{outcome="refused"} 1.0' in metrics


def test_a_model_that_no_longer_reproduces_its_holdout_is_refused(
    trained: TrainedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    settings = api_settings(trained, tmp_path, model_uri=str(folder))
    with TestClient(create_app(settings)) as client:
        import pandas as pd

        holdout = pd.read_parquet(folder / "holdout.parquet")
        holdout["__probability"] = holdout["__probability"] * 0.5  # not what the model gives
        holdout.to_parquet(folder / "holdout.parquet", index=False)
        info = read_info(folder)
        write_info(folder, replace(info, version="100"))
        sign_folder(folder)  # signed by the key holder, yet not what the model gives
        refused = client.post("/v1/admin/reload", headers=ADMIN)
        assert refused.status_code == 409
        assert "probabilities it gave at training" in refused.json()["message"]
        assert client.get("/readyz").json()["model_version"] == trained.version


def test_the_poll_retries_a_refused_version_only_when_asked(
    trained: TrainedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    settings = api_settings(trained, tmp_path, model_uri=str(folder), reload_interval_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        info = read_info(folder)
        (folder / PIPELINE_FILE).write_bytes(b"not a model")
        write_info(folder, replace(info, version="7"))
        wait_for(lambda: client.get("/readyz").json()["last_reload_error"] is not None)
        time.sleep(0.3)  # several more polls
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1, [r.getMessage() for r in refusals]
        assert client.post("/v1/admin/reload", headers=ADMIN).status_code == 409
        assert json.loads(client.get("/readyz").text)["model_version"] == trained.version
