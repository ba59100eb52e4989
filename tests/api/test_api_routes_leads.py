"""POST /v1/leads/score and /v1/leads/score-batch: answers, ranking, and every bad input."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from api_testkit import SCORER, api_settings, client_fixture, example_lead  # noqa: F401
from fastapi.testclient import TestClient

from api.main import create_app
from conftest import TrainedModel, demo_config
from leadml.bundle import write_trained_bundle
from leadml.schema import Role
from leadml.scoring import Scorer
from leadml.train import train_model

LIMIT = 50  # api_settings: max_batch_leads
BODY_LIMIT = 200_000  # api_settings: max_body_bytes


@pytest.fixture(scope="module")
def scorer(trained: TrainedModel) -> Scorer:
    return Scorer.load(trained.export_dir)


@pytest.fixture(scope="module")
def leads(demo_frame: Any, scorer: Scorer) -> list[dict[str, Any]]:
    """Real demo leads as JSON values (features and id only)."""
    frame = demo_frame.head(40)
    columns = [scorer.schema.id_column, *scorer.schema.feature_names]
    rows = json.loads(frame[columns].to_json(orient="records", date_format="iso"))
    return [{k: v for k, v in row.items()} for row in rows]


def feature(scorer: Scorer, role: Role, required: bool | None = None) -> str:
    for spec in scorer.schema.features:
        if spec.role is role and (required is None or spec.required == required):
            return spec.name
    raise LookupError(role)


def problems(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    return detail


def locs(response: Any) -> list[list[Any]]:
    return [p["loc"] for p in problems(response)]


# --------------------------------------------------------------------------- one lead


def test_one_lead_gets_every_field_of_a_score(
    client: TestClient, leads: list[dict[str, Any]], scorer: Scorer, trained: TrainedModel
) -> None:
    response = client.post("/v1/leads/score", json=leads[0], headers=SCORER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["lead_id"] == leads[0]["lead_id"]
    expected = scorer.score([leads[0]])
    assert body["probability"] == pytest.approx(expected["probability"].iloc[0], abs=1e-12)
    assert body["score"] == expected["score"].iloc[0]
    assert body["percentile"] == pytest.approx(expected["percentile"].iloc[0])
    assert body["grade"] in {"A", "B", "C", "D"}
    assert isinstance(body["is_mql"], bool)
    assert body["model_version"] == trained.version
    assert body["policy_version"] is None  # no policy stored: the default decides
    reasons = body["reasons"]
    assert set(reasons) == {"for", "against"}
    assert reasons["for"] or reasons["against"]
    for reason in reasons["for"]:
        assert reason["effect"] > 0 and reason["direction"] == "raises"
        assert reason["field"] in scorer.schema.feature_names and reason["text"]
    for reason in reasons["against"]:
        assert reason["effect"] < 0 and reason["direction"] == "lowers"


def test_the_mql_decision_and_grade_follow_the_policy(
    client: TestClient, leads: list[dict[str, Any]]
) -> None:
    policy = client.get("/v1/model", headers=SCORER).json()["policy"]
    for lead in leads[:15]:
        body = client.post("/v1/leads/score?reasons=false", json=lead, headers=SCORER).json()
        assert body["is_mql"] == (body["probability"] >= policy["cutoff"])
        band = next(g for g in policy["grades"] if body["probability"] >= g["lower_bound"])
        assert body["grade"] == band["grade"]


def test_reasons_can_be_left_out(client: TestClient, leads: list[dict[str, Any]]) -> None:
    body = client.post("/v1/leads/score?reasons=false", json=leads[1], headers=SCORER).json()
    assert body["reasons"] is None
    with_reasons = client.post("/v1/leads/score", json=leads[1], headers=SCORER).json()
    assert with_reasons["probability"] == body["probability"]


def test_a_lead_without_id_or_optional_fields_is_scored(client: TestClient, scorer: Scorer) -> None:
    lead = example_lead(client)
    del lead["lead_id"]
    for spec in scorer.schema.features:
        if not spec.required:
            lead[spec.name] = "Select" if spec.role is not Role.NUMERIC else None
    body = client.post("/v1/leads/score", json=lead, headers=SCORER).json()
    assert body["lead_id"] is None
    assert 0 < body["probability"] < 1


def test_yes_no_words_and_booleans_score_alike(client: TestClient, scorer: Scorer) -> None:
    name = feature(scorer, Role.BOOLEAN)
    lead = example_lead(client)
    as_word = client.post("/v1/leads/score", json={**lead, name: "Yes"}, headers=SCORER).json()
    as_bool = client.post("/v1/leads/score", json={**lead, name: True}, headers=SCORER).json()
    assert as_word["probability"] == as_bool["probability"]


@pytest.fixture(scope="module")
def dated(
    trained: TrainedModel, demo_frame: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Scorer]]:
    """A client serving a model with a date among its features: trained without a time column,
    so `created_at` is a feature (with one, the data decides, and on demo leads drops it)."""
    result = train_model(demo_frame, demo_config(time_column=None, candidates=("lightgbm",)))
    folder = tmp_path_factory.mktemp("dated-model")
    write_trained_bundle(folder, result, name="dated")
    settings = api_settings(trained, tmp_path_factory.mktemp("dated-api"), model_uri=str(folder))
    with TestClient(create_app(settings)) as client:
        yield client, Scorer.load(folder)


def test_a_time_zone_is_read_as_utc(dated: tuple[TestClient, Scorer]) -> None:
    client, scorer = dated
    name = feature(scorer, Role.DATETIME)
    lead = example_lead(client)
    utc = client.post(
        "/v1/leads/score", json={**lead, name: "2024-03-05T08:00:00Z"}, headers=SCORER
    )
    local = client.post(
        "/v1/leads/score", json={**lead, name: "2024-03-05T10:00:00+02:00"}, headers=SCORER
    )
    assert utc.json()["probability"] == local.json()["probability"]


def test_wrong_types_are_422_naming_each_field(dated: tuple[TestClient, Scorer]) -> None:
    client, scorer = dated
    numeric = feature(scorer, Role.NUMERIC)
    boolean = feature(scorer, Role.BOOLEAN)
    moment = feature(scorer, Role.DATETIME)
    lead = {**example_lead(client), numeric: "many", boolean: "perhaps", moment: "next tuesday-ish"}
    found = locs(client.post("/v1/leads/score", json=lead, headers=SCORER))
    assert sorted(found) == sorted([["body", numeric], ["body", boolean], ["body", moment]])


def test_true_false_is_not_a_number(client: TestClient, scorer: Scorer) -> None:
    numeric = feature(scorer, Role.NUMERIC)
    response = client.post(
        "/v1/leads/score", json={**example_lead(client), numeric: True}, headers=SCORER
    )
    [problem] = problems(response)
    assert problem["loc"] == ["body", numeric] and "true/false" in problem["msg"]


def test_infinity_is_refused(client: TestClient, scorer: Scorer) -> None:
    name = next(s.name for s in scorer.schema.features if s.role is Role.NUMERIC and not s.integer)
    body = json.dumps({**example_lead(client), name: 1e999}).replace("1e999", "Infinity")
    response = client.post("/v1/leads/score", content=body, headers=SCORER)
    assert locs(response) == [["body", name]]


def test_missing_required_fields_are_422(client: TestClient, scorer: Scorer) -> None:
    required = feature(scorer, Role.CATEGORICAL, required=True)
    lead = example_lead(client)
    del lead[required]
    assert locs(client.post("/v1/leads/score", json=lead, headers=SCORER)) == [["body", required]]
    placeholder = {**example_lead(client), required: "Select"}
    [problem] = problems(client.post("/v1/leads/score", json=placeholder, headers=SCORER))
    assert problem["loc"] == ["body", required] and problem["type"] == "missing"


def test_unknown_fields_are_422(client: TestClient) -> None:
    lead = {**example_lead(client), "lead_sorce": "Referral"}
    [problem] = problems(client.post("/v1/leads/score", json=lead, headers=SCORER))
    assert problem["loc"] == ["body", "lead_sorce"] and problem["type"] == "extra_forbidden"


def test_known_but_unused_columns_are_accepted(client: TestClient, scorer: Scorer) -> None:
    leak = next(s.name for s in scorer.schema.dropped if s.role is Role.LEAKAGE)
    lead = example_lead(client)
    with_leak = client.post("/v1/leads/score", json={**lead, leak: "Closed - Won"}, headers=SCORER)
    without = client.post("/v1/leads/score", json=lead, headers=SCORER)
    assert with_leak.status_code == 200
    assert with_leak.json()["probability"] == without.json()["probability"]


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"a": 1,}', b"\xff\xfe"])
def test_malformed_json_is_422(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/v1/leads/score", content=body, headers={**SCORER, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("body", ["[]", "3", '"lead"', "null", "[{}]"])
def test_a_body_that_is_not_one_lead_is_422(client: TestClient, body: str) -> None:
    response = client.post("/v1/leads/score", content=body, headers=SCORER)
    assert response.status_code == 422


# --------------------------------------------------------------------------- size limits


def test_an_oversized_body_is_413_before_it_is_read(client: TestClient) -> None:
    response = client.post("/v1/leads/score", content=b" " * (BODY_LIMIT + 1), headers=SCORER)
    assert response.status_code == 413
    assert f"{BODY_LIMIT:,}" in response.json()["detail"]


def test_an_oversized_streamed_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(30):
            yield b" " * 10_000

    response = client.post("/v1/leads/score-batch", content=chunks(), headers=SCORER)
    assert response.status_code == 413


def test_a_batch_over_the_limit_states_the_limit(client: TestClient) -> None:
    batch = [example_lead(client)] * (LIMIT + 1)
    response = client.post("/v1/leads/score-batch", json=batch, headers=SCORER)
    assert response.status_code == 413
    assert f"at most {LIMIT}" in response.json()["detail"]


# --------------------------------------------------------------------------- batches


def test_a_batch_is_ranked_highest_first(
    client: TestClient, leads: list[dict[str, Any]], scorer: Scorer
) -> None:
    response = client.post("/v1/leads/score-batch?reasons=false", json=leads, headers=SCORER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(leads) == len(body["leads"])
    ranked = body["leads"]
    probabilities = [lead["probability"] for lead in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert [lead["rank"] for lead in ranked] == list(range(1, len(leads) + 1))
    expected = scorer.score(leads)["probability"].to_numpy()
    for lead in ranked:
        source = leads[lead["row"] - 1]
        assert lead["lead_id"] == source["lead_id"]
        assert lead["probability"] == pytest.approx(expected[lead["row"] - 1], abs=1e-12)
        assert lead["reasons"] is None


def rounded(score: dict[str, Any]) -> dict[str, Any]:
    """Reasons' effects to 1e-9: TreeSHAP sums in another order for a batch than for one lead."""
    reasons = score["reasons"]
    for side in ("for", "against"):
        for reason in reasons[side]:
            reason["effect"] = pytest.approx(reason["effect"], abs=1e-9)
    return score


def test_batch_leads_score_as_single_leads(client: TestClient, leads: list[dict[str, Any]]) -> None:
    batch = client.post("/v1/leads/score-batch", json=leads[:5], headers=SCORER).json()
    for lead in batch["leads"]:
        single = client.post("/v1/leads/score", json=leads[lead["row"] - 1], headers=SCORER).json()
        assert {k: v for k, v in lead.items() if k not in ("rank", "row")} == rounded(single)


def test_an_empty_batch_is_an_empty_ranking(client: TestClient) -> None:
    response = client.post("/v1/leads/score-batch", json=[], headers=SCORER)
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_batch_errors_name_the_lead_and_field(client: TestClient, scorer: Scorer) -> None:
    numeric = feature(scorer, Role.NUMERIC)
    batch = [example_lead(client), {**example_lead(client), numeric: "lots"}, {"oops": 1}]
    found = locs(client.post("/v1/leads/score-batch", json=batch, headers=SCORER))
    assert ["body", 1, numeric] in found
    assert ["body", 2, "oops"] in found
    assert not any(loc[1] == 0 for loc in found)


def test_a_batch_must_be_a_json_array(client: TestClient) -> None:
    response = client.post("/v1/leads/score-batch", json=example_lead(client), headers=SCORER)
    assert locs(response) == [["body"]]


def to_csv(leads: list[dict[str, Any]], separator: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(leads[0]), delimiter=separator)
    writer.writeheader()
    for lead in leads:
        writer.writerow({k: "" if v is None else v for k, v in lead.items()})
    return out.getvalue()


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_a_csv_body_scores_like_json(
    client: TestClient, leads: list[dict[str, Any]], separator: str
) -> None:
    as_json = client.post("/v1/leads/score-batch?reasons=false", json=leads, headers=SCORER).json()
    as_csv = client.post(
        "/v1/leads/score-batch?reasons=false",
        content=to_csv(leads, separator).encode(),
        headers={**SCORER, "content-type": "text/csv"},
    )
    assert as_csv.status_code == 200, as_csv.text
    got = {lead["lead_id"]: lead["probability"] for lead in as_csv.json()["leads"]}
    want = {lead["lead_id"]: lead["probability"] for lead in as_json["leads"]}
    assert got.keys() == want.keys()
    assert np.allclose([got[k] for k in want], list(want.values()), rtol=0, atol=1e-12)


def test_a_csv_upload_is_scored(client: TestClient, leads: list[dict[str, Any]]) -> None:
    response = client.post(
        "/v1/leads/score-batch",
        files={"file": ("leads.csv", to_csv(leads[:7]).encode(), "text/csv")},
        headers=SCORER,
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 7


def test_an_upload_without_the_file_field_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/leads/score-batch",
        files={"wrong": ("leads.csv", b"a,b\n1,2\n", "text/csv")},
        headers=SCORER,
    )
    assert locs(response) == [["body", "file"]]


def test_csv_with_bad_columns_is_422(
    client: TestClient, leads: list[dict[str, Any]], scorer: Scorer
) -> None:
    required = feature(scorer, Role.NUMERIC, required=True)
    rows = [
        {**{k: v for k, v in lead.items() if k != required}, "shoe_size": 42} for lead in leads[:3]
    ]
    response = client.post(
        "/v1/leads/score-batch",
        content=to_csv(rows).encode(),
        headers={**SCORER, "content-type": "text/csv"},
    )
    found = locs(response)
    assert ["body", "columns", "shoe_size"] in found
    assert ["body", "columns", required] in found


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", "caf\xe9".encode("latin-1"), b"lead_id\n\x00\n"],
)
def test_unreadable_csv_is_422(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/leads/score-batch", content=content, headers={**SCORER, "content-type": "text/csv"}
    )
    assert response.status_code == 422


def test_csv_values_of_the_wrong_type_name_the_row(
    client: TestClient, leads: list[dict[str, Any]], scorer: Scorer
) -> None:
    numeric = feature(scorer, Role.NUMERIC)
    rows = [dict(lead) for lead in leads[:3]]
    rows[2][numeric] = "n/a please"
    response = client.post(
        "/v1/leads/score-batch",
        content=to_csv(rows).encode(),
        headers={**SCORER, "content-type": "text/csv"},
    )
    assert locs(response) == [["body", 2, numeric]]


def test_csv_over_the_limit_is_413(client: TestClient, leads: list[dict[str, Any]]) -> None:
    rows = (leads * 2)[: LIMIT + 1]
    response = client.post(
        "/v1/leads/score-batch",
        content=to_csv(rows).encode(),
        headers={**SCORER, "content-type": "text/csv"},
    )
    assert response.status_code == 413 and f"at most {LIMIT}" in response.json()["detail"]


def test_what_would_move_a_lead_past_the_line(
    client: TestClient, leads: list[dict[str, Any]]
) -> None:
    answers = [
        client.post("/v1/leads/score?what_would_move=true", json=lead, headers=SCORER).json()
        for lead in leads[:25]
    ]
    below = [a for a in answers if not a["is_mql"]]
    moved = [a["what_would_move"] for a in below if a["what_would_move"] is not None]
    assert below and moved
    for move in moved:
        assert move["probability_after"] >= move["cutoff"] > move["probability_before"]
        assert "MQL line" in move["sentence"] or "line" in move["sentence"]
    assert all(a.get("what_would_move") is None for a in answers if a["is_mql"])
    plain = client.post("/v1/leads/score", json=leads[0], headers=SCORER).json()
    assert "what_would_move" not in plain or plain["what_would_move"] is None
    bad = client.post("/v1/leads/score?what_would_move=perhaps", json=leads[0], headers=SCORER)
    assert locs(bad) == [["query", "what_would_move"]]


def test_an_export_with_its_outcome_column_is_ranked_and_the_outcome_ignored_once(
    client: TestClient, demo_frame: Any, scorer: Scorer
) -> None:
    target = scorer.schema.target
    columns = [scorer.schema.id_column, *scorer.schema.feature_names, target]
    frame = demo_frame.head(30)[columns]
    with_outcome = frame.to_csv(index=False).encode()
    without_outcome = frame.drop(columns=target).to_csv(index=False).encode()
    csv_headers = {**SCORER, "content-type": "text/csv"}
    ranked = client.post(
        "/v1/leads/score-batch?reasons=false", content=with_outcome, headers=csv_headers
    )
    plain = client.post(
        "/v1/leads/score-batch?reasons=false", content=without_outcome, headers=csv_headers
    )
    assert ranked.status_code == 200, ranked.text
    answer = ranked.json()
    assert answer["count"] == 30
    assert answer["notes"] == [
        f"Column '{target}' is the outcome the model learned from; it was ignored for scoring."
    ]
    assert plain.json()["notes"] == []
    # The outcome changes nothing: the same probabilities as without it.
    assert [lead["probability"] for lead in answer["leads"]] == [
        lead["probability"] for lead in plain.json()["leads"]
    ]
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    as_json = client.post("/v1/leads/score-batch?reasons=false", json=records, headers=SCORER)
    assert as_json.status_code == 200, as_json.text
    assert len(as_json.json()["notes"]) == 1


def test_a_single_lead_still_may_not_carry_the_outcome(client: TestClient, scorer: Scorer) -> None:
    lead = {**example_lead(client), scorer.schema.target: 1}
    response = client.post("/v1/leads/score", json=lead, headers=SCORER)
    assert response.status_code == 422
    assert ["body", scorer.schema.target] in locs(response)
