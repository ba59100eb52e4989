"""Property-based fuzz of the OpenAPI document (schemathesis): no input makes a 5xx, and every
documented response matches its schema. Inputs that once made a 500 are tried by name as well.

Driven through schemathesis' Python API (one Hypothesis run per operation and mode) rather than
`schemathesis.pytest.from_fixture`, which fails on pytest 9 ('Function' has no '_nodeid').
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from api_testkit import ADMIN, api_settings, example_lead
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.main import create_app
from conftest import TrainedModel

#: Examples per operation and mode; the whole fuzz stays well under a minute.
MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_schema(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(api_settings(trained, tmp_path_factory.mktemp("fuzz"), max_batch_leads=20))
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=ADMIN)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_a_server_error(fuzz_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    inputs = {"POST /v1/leads/score", "POST /v1/leads/score-batch"}
    assert inputs | {"GET /v1/model", "POST /v1/admin/reload"} <= labels
    fuzzed = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=ADMIN, checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:  # an operation without inputs has no invalid request to make
            assert mode is GenerationMode.NEGATIVE and operation.label not in inputs
            continue
        fuzzed.add(operation.label)
    assert inputs <= fuzzed


@pytest.fixture(scope="module")
def fuzz_client(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(api_settings(trained, tmp_path_factory.mktemp("fuzz-known")))
    with TestClient(app) as client:
        yield client


#: Larger than any float (about 1.8e308): once a 500 from the model's arithmetic.
HUGE = "1" + "0" * 400


def test_a_whole_number_too_large_for_a_float_is_a_422_naming_the_field(
    fuzz_client: TestClient,
) -> None:
    lead = example_lead(fuzz_client)
    numeric = [s.name for s in fuzz_client.app.state.holder.current.scorer.schema.features
               if s.role.value == "numeric"]  # fmt: skip
    assert numeric
    for name in numeric:
        body = (
            json.dumps({k: v for k, v in lead.items() if k != name})[:-1] + f', "{name}": {HUGE}}}'
        )
        for path, payload in (("/v1/leads/score", body), ("/v1/leads/score-batch", f"[{body}]")):
            response = fuzz_client.post(
                path, content=payload, headers={**ADMIN, "Content-Type": "application/json"}
            )
            assert response.status_code == 422, (name, response.text)
            assert any(name in problem["loc"] for problem in response.json()["detail"])
    csv_body = f"{numeric[0]}\n{HUGE}\n"
    answer = fuzz_client.post(
        "/v1/leads/score-batch", content=csv_body, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert answer.status_code == 422


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/mql-policy", '{"kind": "fixed", "cutoff": %s, "set_by": "fuzz"}'),
        ("POST", "/v1/mql-policy/simulate", '{"kind": "fixed", "cutoff": %s}'),
        ("POST", "/v1/mql-policy/simulate", '{"shift_points": %s}'),
        (
            "PUT",
            "/v1/mql-policy",
            '{"kind": "capacity", "per_week": 10, "leads_per_week": %s, "set_by": "fuzz"}',
        ),
    ],
)
def test_nan_and_infinity_in_policy_bodies_are_a_422(
    fuzz_client: TestClient, token: str, method: str, path: str, body: str
) -> None:
    response = fuzz_client.request(
        method,
        path,
        content=body % token,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert problems and all("loc" in problem for problem in problems)
