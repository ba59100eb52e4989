"""A simulated quarter through the API: leads scored, outcomes posted, the contract checked.

Demo leads (same ground truth as the training data, other seeds) are scored through the batch
route, sales posts outcomes for the MQLs from the demo's own truth, and GET /v1/monitoring must
call it healthy; when one channel stops converting, it must say "act", because MQLs convert below
the promise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from api_testkit import ADMIN, SCORER, api_settings
from fastapi.testclient import TestClient

from api.main import create_app
from conftest import TrainedModel
from leadml import demo

QUARTER_LEADS = 3000
BATCH = 1000
REJECTION_SHARE = 0.15


def score_quarter(client: TestClient, leads: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    rows = json.loads(leads[columns].to_json(orient="records", date_format="iso"))
    scored = []
    for start in range(0, len(rows), BATCH):
        response = client.post(
            "/v1/leads/score-batch?reasons=false", json=rows[start : start + BATCH], headers=SCORER
        )
        assert response.status_code == 200, response.text
        scored += response.json()["leads"]
    assert client.app.state.ledger.flush(30.0)  # type: ignore[attr-defined]
    return pd.DataFrame(scored)


def post_outcomes(
    client: TestClient, scored: pd.DataFrame, truth: pd.Series, seed: int
) -> dict[str, int]:
    """Sales works every MQL: accepts it (or rejects a share of those that will not convert),
    then wins or loses it, as the simulation's truth says."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC) + timedelta(minutes=1)
    events: list[dict[str, Any]] = []
    for lead in scored[scored["is_mql"]].itertuples():
        converted = bool(truth[lead.lead_id])
        day = start + timedelta(days=int(rng.integers(1, 20)))
        if not converted and rng.random() < REJECTION_SHARE:
            reason = str(rng.choice(["bad fit", "no budget", "no answer"]))
            events.append({"lead_id": lead.lead_id, "event": "sql_rejected",
                           "occurred_at": day.isoformat(), "reason": reason})  # fmt: skip
            continue
        events.append({"lead_id": lead.lead_id, "event": "sql_accepted",
                       "occurred_at": day.isoformat()})  # fmt: skip
        close = day + timedelta(days=int(rng.integers(5, 40)))
        events.append({"lead_id": lead.lead_id, "event": "won" if converted else "lost",
                       "occurred_at": close.isoformat(),
                       **({"deal_value": 1000.0} if converted else {})})  # fmt: skip
    totals = {"stored": 0, "unseen_leads": 0}
    for begin in range(0, len(events), 2000):
        response = client.post(
            "/v1/outcomes", json={"events": events[begin : begin + 2000]}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        totals["stored"] += response.json()["stored"]
        totals["unseen_leads"] += response.json()["unseen_leads"]
    assert totals == {"stored": len(events), "unseen_leads": 0}
    return totals


def run_quarter(
    trained: TrainedModel, folder: Path, seed: int, dead_channel: str | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    settings = api_settings(trained, folder, max_batch_leads=BATCH, max_body_bytes=5_000_000)
    leads = demo.generate_leads(QUARTER_LEADS, seed=seed, start_id=1_000_000 * seed)
    with TestClient(create_app(settings)) as client:
        model = client.app.state.holder.current  # type: ignore[attr-defined]
        columns = [model.scorer.schema.id_column, *model.scorer.schema.feature_names]
        scored = score_quarter(client, leads, columns)
        truth = leads.set_index(demo.ID_COLUMN)[demo.TARGET].astype(bool)
        truth.index = truth.index.astype(str)
        if dead_channel is not None:
            dead = leads.set_index(demo.ID_COLUMN)["lead_source"] == dead_channel
            dead.index = dead.index.astype(str)
            truth = truth & ~dead
        scored["lead_id"] = scored["lead_id"].astype(str)
        post_outcomes(client, scored, truth, seed)
        response = client.get("/v1/monitoring", headers=SCORER)
        assert response.status_code == 200, response.text
    scored = scored.merge(
        leads[[demo.ID_COLUMN, "lead_source"]].astype({demo.ID_COLUMN: str}),
        left_on="lead_id",
        right_on=demo.ID_COLUMN,
    )
    return response.json(), scored


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_healthy_quarter_stays_healthy(trained: TrainedModel, tmp_path: Path, seed: int) -> None:
    report, _ = run_quarter(trained, tmp_path, seed)

    assert report["verdict"] == "healthy", report["reason"]
    [group] = report["groups"]
    assert group["policy_version"] is None and group["model_version"] == trained.version
    assert group["mql_conversion"]["n"] == group["mqls"] > 500
    assert group["scored"] == QUARTER_LEADS
    assert 0.75 < group["sql_acceptance"]["rate"] < 1.0
    assert set(group["rejection_reasons"]) <= {"bad fit", "no budget", "no answer"}
    assert sum(group["mqls_per_week"].values()) == group["mqls"]
    assert group["missing_outcomes"]["with_outcome"] == group["mqls"]
    assert report["score_drift"]["psi"] < 0.1
    # No exploration share: nothing below the line was handed to sales, and the report says so.
    assert group["below_line"]["observed"] is False and group["below_line"]["rate"] is None
    assert "below the MQL line is unobserved" in group["below_line"]["sentence"]


def test_a_channel_that_stops_converting_means_act_for_the_mql_promise(
    trained: TrainedModel, tmp_path: Path
) -> None:
    healthy, scored = run_quarter(trained, tmp_path / "before", seed=14)
    mqls = scored[scored["is_mql"]]
    channel = str(mqls["lead_source"].value_counts().index[0])  # the channel most MQLs come from

    report, _ = run_quarter(trained, tmp_path / "after", seed=14, dead_channel=channel)

    assert healthy["verdict"] == "healthy", healthy["reason"]
    assert report["verdict"] == "act", report["reason"]
    acts = [f for f in report["findings"] if f["verdict"] == "act"]
    assert [f["figure"] for f in acts] == ["mql_conversion"]
    assert "the line is too low" in report["reason"]
    [before], [after] = healthy["groups"], report["groups"]
    assert after["mql_conversion"]["rate"] < before["mql_conversion"]["rate"] - 0.05
    # Nothing about the leads themselves changed: no drift.
    assert report["score_drift"]["psi"] == pytest.approx(healthy["score_drift"]["psi"])
