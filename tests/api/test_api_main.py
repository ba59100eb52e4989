"""create_app: a factory (nothing at import), startup checks, folder models, the OpenAPI document."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from api_testkit import SCORER, api_settings, client_fixture, example_lead  # noqa: F401
from fastapi.testclient import TestClient

import api.main
from api.main import create_app
from conftest import TrainedModel
from leadml.errors import ModelError


def test_importing_the_module_makes_no_app() -> None:
    assert not hasattr(api.main, "app")


def test_a_missing_model_stops_the_start_with_the_reason(
    trained: TrainedModel, tmp_path: Path
) -> None:
    app = create_app(api_settings(trained, tmp_path, model_name="no-such-model"))
    with pytest.raises(ModelError, match="no-such-model"), TestClient(app):
        pass


def test_an_exported_folder_can_be_served(trained: TrainedModel, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    settings = api_settings(trained, tmp_path, model_uri=str(folder))
    with TestClient(create_app(settings)) as client:
        described = client.get("/v1/model", headers=SCORER).json()
        assert described["source"] == str(folder)
        assert described["alias"] is None
        assert described["version"] == trained.version
        lead = example_lead(client)
        assert client.post("/v1/leads/score", json=lead, headers=SCORER).status_code == 200


def test_the_openapi_document_describes_the_lead_of_the_served_model(
    client: TestClient, trained: TrainedModel
) -> None:
    document = client.get("/openapi.json", headers=SCORER).json()
    lead = document["components"]["schemas"]["Lead"]
    schema = trained.result.schema
    assert set(lead["properties"]) >= {schema.id_column, *schema.feature_names}
    assert set(lead["required"]) == {s.name for s in schema.features if s.required}
    assert lead["additionalProperties"] is False
    categorical = next(s for s in schema.features if s.categories)
    field = lead["properties"][categorical.name]
    assert categorical.categories[0] in str(field["description"])
    assert field["examples"][0] == categorical.categories[0]
    single = document["paths"]["/v1/leads/score"]["post"]
    body = single["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Lead"}
    assert body["example"] == example_lead(client)
    batch = document["paths"]["/v1/leads/score-batch"]["post"]["requestBody"]["content"]
    assert set(batch) == {"application/json", "text/csv", "multipart/form-data"}
    assert batch["application/json"]["schema"]["maxItems"] == 50
    assert "X-API-Key" in str(document["components"]["securitySchemes"])
    for path in ("/v1/leads/score", "/v1/leads/score-batch", "/v1/model"):
        operation = next(iter(document["paths"][path].values()))
        assert {"401", "403", "422" if path != "/v1/model" else "503"} <= set(
            operation["responses"]
        )


def test_the_example_lead_scores(client: TestClient) -> None:
    response = client.post("/v1/leads/score", json=example_lead(client), headers=SCORER)
    assert response.status_code == 200


def test_uvicorns_factory_says_a_refused_setting_in_one_line(tmp_path: Path) -> None:
    """`uvicorn api.main:create_app --factory`, the documented way around `leadml serve`."""
    root = Path(api.main.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADML_")}
    env |= {"LEADML_ALLOW_ANONYMOUS": "maybe", "PYTHONPATH": f"{root}{os.pathsep}{root / 'src'}"}
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("leadml: error: ")
    assert "LEADML_ALLOW_ANONYMOUS" in line and "true or false" in line
