"""The API as an attacker meets it: model files that would run code, edited or damaged model
files found on reload, security headers on every answer, CSV that a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from api_testkit import ADMIN, SCORER, api_settings, client_fixture, example_lead  # noqa: F401
from fastapi.testclient import TestClient
from test_signing import crafted_pickle

from api.main import create_app
from conftest import TrainedModel
from leadml.bundle import PIPELINE_FILE, read_info, sha256_of, write_info


def serving_copy(trained: TrainedModel, tmp_path: Path) -> tuple[Path, TestClient]:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    app = create_app(api_settings(trained, tmp_path, model_uri=str(folder)))
    return folder, TestClient(app)


def test_a_crafted_pickle_on_admin_reload_is_refused_and_never_runs(
    trained: TrainedModel, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    folder, client = serving_copy(trained, tmp_path)
    with client:
        crafted_pickle(folder / PIPELINE_FILE, marker)
        info = read_info(folder)  # the attacker fixes up model.json too, as the old check wanted
        write_info(
            folder, replace(info, version="66", pipeline_sha256=sha256_of(folder / PIPELINE_FILE))
        )
        refused = client.post("/v1/admin/reload", headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert "changed after the model was signed" in refused.json()["message"]
        assert not marker.exists()
        ready = client.get("/readyz").json()
        assert ready["model_version"] == trained.version
        assert ready["last_reload_error"]["refused_version"] == "66"
        lead = example_lead(client)
        assert client.post("/v1/leads/score", json=lead, headers=SCORER).status_code == 200
    assert not marker.exists()


def test_an_edited_model_json_is_refused_on_reload_not_taken_as_unchanged(
    trained: TrainedModel, tmp_path: Path
) -> None:
    folder, client = serving_copy(trained, tmp_path)
    with client:
        info = read_info(folder)  # same name, version and pipeline: only the quantiles move
        write_info(
            folder, replace(info, reference_quantiles=tuple(0.0 for _ in info.reference_quantiles))
        )
        refused = client.post("/v1/admin/reload", headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert "model.json changed after" in refused.json()["message"]
        assert "model.json" in client.get("/readyz").json()["last_reload_error"]["message"]


def test_a_damaged_pipeline_is_found_by_the_poll_and_the_admin_call(
    trained: TrainedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    settings = api_settings(trained, tmp_path, model_uri=str(folder), reload_interval_seconds=0.1)
    with TestClient(create_app(settings)) as client:
        pipeline = folder / PIPELINE_FILE
        pipeline.write_bytes(pipeline.read_bytes()[:1000])  # a disk or copy error, no attacker
        deadline = time.monotonic() + 60
        while client.get("/readyz").json()["last_reload_error"] is None:
            assert time.monotonic() < deadline, "the poll did not notice the damaged file"
            time.sleep(0.05)
        report = client.get("/readyz").json()
        assert PIPELINE_FILE in report["last_reload_error"]["message"]
        assert report["ready"] is True  # the model in memory still serves
        again = client.post("/v1/admin/reload", headers=ADMIN)
        assert again.status_code == 409 and PIPELINE_FILE in again.json()["message"]


def test_the_admin_call_verifies_an_unchanged_registry_model_again(client: TestClient) -> None:
    answer = client.post("/v1/admin/reload", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "unchanged"
    assert "verified" in answer.json()["message"]


# --------------------------------------------------------------------------- headers

PAGES_AND_API = [
    ("get", "/", None),
    ("get", "/lead", None),
    ("get", "/policy", None),
    ("get", "/static/leadml.js", None),
    ("get", "/v1/model", SCORER),
    ("get", "/v1/model", None),  # 401
    ("post", "/v1/leads/score", SCORER),  # 422 (no body)
    ("get", "/no-such-page", None),  # 404
    ("get", "/healthz", None),
    ("get", "/docs", SCORER),
]


@pytest.mark.parametrize(("method", "path", "headers"), PAGES_AND_API)
def test_every_answer_carries_the_security_headers(
    client: TestClient, method: str, path: str, headers: dict[str, str] | None
) -> None:
    response = client.request(method.upper(), path, headers=headers)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    if path != "/docs":
        assert "script-src 'self';" in policy  # no inline script, nothing from elsewhere


# --------------------------------------------------------------------------- CSV


def test_the_csv_route_neutralises_formula_cells(client: TestClient) -> None:
    rows = [
        ['=HYPERLINK("http://evil")', -0.5, "-0.5", "@SUM(A1)", "+1+2", "plain", 3],
    ]
    answer = client.post(
        "/v1/csv", json={"columns": ["=cmd", "n", "t", "a", "p", "x", "i"], "rows": rows},
        headers=SCORER,
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    parsed = list(csv.reader(io.StringIO(answer.text)))
    assert parsed[0][0] == "'=cmd"
    assert parsed[1] == [
        '\'=HYPERLINK("http://evil")',
        "-0.5",
        "-0.5",
        "'@SUM(A1)",
        "'+1+2",
        "plain",
        "3",
    ]
    assert client.post("/v1/csv", json={"columns": ["a"], "rows": []}).status_code == 401


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_this_apps_own_files(client: TestClient, page: str) -> None:
    response = client.get(page, headers=SCORER)
    assert response.status_code == 200
    html = response.text
    assert "cdn.jsdelivr.net" not in html and "fastapi.tiangolo.com" not in html
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/static/docs/"), asset
        assert client.get(asset).status_code == 200, asset
    policy = response.headers["content-security-policy"]
    assert "https:" not in policy and "http:" not in policy
