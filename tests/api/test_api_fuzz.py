"""Property-based fuzz of the OpenAPI document (schemathesis): no input makes a 5xx, and every
documented response matches its schema.

Driven through schemathesis' Python API (one Hypothesis run per operation and mode) rather than
`schemathesis.pytest.from_fixture`, which fails on pytest 9 ('Function' has no '_nodeid').
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_testkit import ADMIN, api_settings
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
    return schemathesis.openapi.from_asgi("/openapi.json", app)


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
