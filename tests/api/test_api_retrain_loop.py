"""A simulated quarter of the whole loop through the real API, store, MLflow and CLI.

Demo leads are scored through `POST /v1/leads/score-batch` with the ledger on, under a capacity
policy set through `PUT /v1/mql-policy`; the channel most MQLs come from then stops converting.
A simulated sales team works only the MQLs and the exploration leads and posts what became of
them through `POST /v1/outcomes` with the sales key. `GET /v1/monitoring` must say act, and must
report conversion below the line honestly; `leadml retrain` reads the ledger and the outcome
events from the store (no CSV), gates the challenger and prints its diff; the API picks up the
new champion and, after `leadml rollback`, the old one.

The quarter is run twice, with an exploration share and without, and the two are compared with
the simulation's truth: only with exploration is conversion below the line measured, and only
then does the retrained model see leads below the line at all.
"""

from __future__ import annotations

import io
import json
import math
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_testkit import ADMIN, KEY_ENTRIES, SCORER
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from api.keys import hash_key
from api.main import create_app
from conftest import demo_config
from leadml import demo
from leadml.cli import main
from leadml.errors import ExitCode
from leadml.registry import audit_trail, use_tracking
from leadml.settings import Settings
from leadml.store import Store
from leadml.tracking import CHAMPION, log_training, promote
from leadml.train import TrainResult, train_model

SALES_KEY = "test-sales-key-4242424242"
SALES = {"X-API-Key": SALES_KEY}
QUARTER_LEADS = 8000
BATCH = 1000
#: Sales can work 300 of 1,000 new leads a week: the line is the top 30 %.
CAPACITY = {"kind": "capacity", "per_week": 300, "leads_per_week": 1000}
#: A large share so that a small test quarter has a few hundred exploration leads.
EXPLORATION_SHARE = 0.2


@dataclass(frozen=True)
class Quarter:
    model_name: str
    leads: pd.DataFrame  # each lead's answer from the API, its channel and its true outcome
    monitoring: dict[str, Any]
    retrain_code: int
    retrain_out: str
    report: dict[str, Any]
    served_after_retrain: str
    served_after_rollback: str
    champion_version: str
    challenger_version: str | None

    @property
    def below(self) -> pd.DataFrame:
        return self.leads[~self.leads["is_mql"]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, TrainResult, Path]:
    """Last year's champion, logged to a throwaway MLflow store under two model names (one per
    run, so that each run's promotions and rollbacks are its own)."""
    folder = tmp_path_factory.mktemp("loop")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    use_tracking(tracking_uri)
    result = train_model(demo.generate_leads(4000, seed=31), demo_config(candidates=("logistic",)))
    for name in ("loop-explore", "loop-blind"):
        log_training(result, model_name=name, experiment="tests")
        promote(name)
    return tracking_uri, result, folder


def settings_for(tracking_uri: str, model_name: str, database_url: str) -> Settings:
    return Settings(
        tracking_uri=tracking_uri,
        model_name=model_name,
        database_url=database_url,
        api_keys=f"{KEY_ENTRIES},sales:{hash_key(SALES_KEY)}",
        allow_anonymous=False,
        reload_interval_seconds=0.0,
        max_batch_leads=BATCH,
        max_body_bytes=5_000_000,
    )


def leadml(argv: list[str]) -> tuple[int, str, str]:
    """Run `leadml ARGV` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def score(client: TestClient, leads: pd.DataFrame) -> pd.DataFrame:
    model = client.app.state.holder.current  # type: ignore[attr-defined]
    # The id and the fields the model reads, nothing else: the creation date (the champion's time
    # column, no feature) stays empty in the ledger, and retraining must cope.
    columns = [model.scorer.schema.id_column, *model.scorer.schema.feature_names]
    rows = json.loads(leads[columns].to_json(orient="records", date_format="iso"))
    answers: list[dict[str, Any]] = []
    for begin in range(0, len(rows), BATCH):
        response = client.post(
            "/v1/leads/score-batch?reasons=false", json=rows[begin : begin + BATCH], headers=SCORER
        )
        assert response.status_code == 200, response.text
        answers += response.json()["leads"]
    scored = pd.DataFrame(answers)
    scored["lead_id"] = scored["lead_id"].astype(str)
    return scored


def wait_for_ledger(database_url: str, model_name: str, rows: int) -> None:
    """The ledger writer commits in groups; sales post outcomes once the scores are in."""
    store = Store.from_url(database_url)
    try:
        deadline = time.monotonic() + 60
        while len(store.ledger_frame(model_name=model_name)) < rows:
            assert time.monotonic() < deadline, "the ledger did not catch up"
            time.sleep(0.1)
    finally:
        store.close()


def sales_report(client: TestClient, worked: pd.DataFrame) -> None:
    """Sales accept every lead handed to them and close it a few days later, won or lost."""
    start = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for i, lead in enumerate(worked.itertuples()):
        accepted = start + timedelta(milliseconds=i)
        closed = accepted + timedelta(seconds=1)
        events.append(
            {"lead_id": lead.lead_id, "event": "sql_accepted", "occurred_at": accepted.isoformat()}
        )
        events.append(
            {
                "lead_id": lead.lead_id,
                "event": "won" if lead.truth else "lost",
                "occurred_at": closed.isoformat(),
            }
        )
    for begin in range(0, len(events), 2000):
        response = client.post(
            "/v1/outcomes", json={"events": events[begin : begin + 2000]}, headers=SALES
        )
        assert response.status_code == 200, response.text
        assert response.json()["unseen_leads"] == 0


def served_version(client: TestClient) -> str:
    response = client.get("/v1/model", headers=SCORER)
    assert response.status_code == 200, response.text
    return str(response.json()["version"])


def run_quarter(
    world: tuple[str, TrainResult, Path],
    model_name: str,
    exploration_share: float,
) -> Quarter:
    tracking_uri, _, root = world
    folder = root / model_name
    folder.mkdir()
    database_url = f"sqlite:///{folder / 'app.db'}"
    settings = settings_for(tracking_uri, model_name, database_url)
    leads = demo.generate_leads(QUARTER_LEADS, seed=32, start_id=5_000_000)
    leads[demo.ID_COLUMN] = leads[demo.ID_COLUMN].astype(str)
    with TestClient(create_app(settings)) as client:
        policy = client.put(
            "/v1/mql-policy",
            json={
                **CAPACITY,
                "exploration_share": exploration_share,
                "set_by": "marketing",
                "reason": "the quarter's line",
            },
            headers=ADMIN,
        )
        assert policy.status_code == 200, policy.text
        scored = score(client, leads)
        # The world shifts: the channel most MQLs come from stops converting.
        scored = scored.merge(
            leads[[demo.ID_COLUMN, "lead_source", demo.TARGET]],
            left_on="lead_id",
            right_on=demo.ID_COLUMN,
        )
        dead = scored.loc[scored["is_mql"], "lead_source"].value_counts().index[0]
        scored["truth"] = scored[demo.TARGET].astype(bool) & (scored["lead_source"] != dead)
        wait_for_ledger(database_url, model_name, QUARTER_LEADS)
        sales_report(client, scored[scored["is_mql"] | scored["exploration"]])
        monitoring = client.get("/v1/monitoring", headers=SCORER)
        assert monitoring.status_code == 200, monitoring.text

    report_path = folder / "retrain.json"
    cli = ["--model-name", model_name, "--tracking-uri", tracking_uri]
    cli += ["--models-dir", str(folder / "models")]
    code, printed, err = leadml(["retrain", *cli, "--database-url", database_url,
                                 "--report-json", str(report_path)])  # fmt: skip
    assert code in (ExitCode.OK, ExitCode.GATE_REFUSED), err
    report = json.loads(report_path.read_text())
    use_tracking(tracking_uri)
    champion_now = str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    with TestClient(create_app(settings)) as client:
        after_retrain = served_version(client)
        if code == ExitCode.OK:
            rolled, _, err = leadml(["rollback", *cli, "--reason", "end of the test quarter"])
            assert rolled == 0, err
            reload = client.post("/v1/admin/reload", headers=ADMIN)
            assert reload.status_code == 200, reload.text
        after_rollback = served_version(client)
    return Quarter(
        model_name=model_name,
        leads=scored,
        monitoring=monitoring.json(),
        retrain_code=code,
        retrain_out=printed,
        report=report,
        served_after_retrain=after_retrain,
        served_after_rollback=after_rollback,
        champion_version=champion_now,
        challenger_version=report.get("challenger_version"),
    )


@pytest.fixture(scope="module")
def explored(world: tuple[str, TrainResult, Path]) -> Quarter:
    return run_quarter(world, "loop-explore", EXPLORATION_SHARE)


@pytest.fixture(scope="module")
def blind(world: tuple[str, TrainResult, Path]) -> Quarter:
    return run_quarter(world, "loop-blind", 0.0)


def check_the_loop(quarter: Quarter) -> None:
    """What holds with or without exploration: act, a promoted challenger with its diff, the
    API following the champion there and back."""
    monitoring = quarter.monitoring
    assert monitoring["verdict"] == "act", monitoring["reason"]
    assert "mql_conversion" in [
        f["figure"] for f in monitoring["findings"] if f["verdict"] == "act"
    ]
    [group] = monitoring["groups"]
    assert group["policy_version"] == 1 and group["scored"] == QUARTER_LEADS
    assert group["mql_conversion"]["n"] == int(quarter.leads["is_mql"].sum())

    report = quarter.report
    counts = report["training_set"]
    handed = quarter.leads["is_mql"] | quarter.leads["exploration"]
    # Point in time from the store: every handed-over lead closed, nobody else was called.
    assert counts["ledger_leads"] == QUARTER_LEADS
    assert counts["labelled"] == int(handed.sum()) and counts["open"] == 0
    assert counts["not_handed_over"] == int((~handed).sum())
    assert counts["converted"] == int(quarter.leads.loc[handed, "truth"].sum())

    # The world changed: the gate promotes, and says why, with the diff.
    assert quarter.retrain_code == ExitCode.OK, report["gate"]["sentence"]
    assert report["promoted"] is True
    assert report["gate"]["metrics"]["roc_auc"]["difference"] > 0
    for metric in ("roc_auc", "pr_auc", "ece", "brier", "precision_at_line"):
        figures = report["gate"]["metrics"][metric]
        assert figures["low"] <= figures["difference"] <= figures["high"], metric
    grades = report["grades"]
    assert grades["n"] == QUARTER_LEADS and grades["became_mql"] + grades["dropped_from_mql"] > 0
    # The capacity line keeps its share of the leads coming in, not of the leads sales worked:
    # about as many current leads become MQLs as stop being MQLs.
    assert abs(grades["became_mql"] - grades["dropped_from_mql"]) < 0.05 * QUARTER_LEADS
    assert report["traits"] and report["policy"]["kind"] == "capacity"
    assert report["policy"]["challenger_mql_share"] == pytest.approx(0.3, abs=0.05)
    assert "promoted" in quarter.retrain_out and "Below the line" in quarter.retrain_out

    # The API serves the promoted champion, then the old one after `leadml rollback`.
    assert quarter.champion_version == quarter.challenger_version != "1"
    assert quarter.served_after_retrain == quarter.challenger_version
    assert quarter.served_after_rollback == "1"
    last = audit_trail(quarter.model_name)[-1]
    assert (last.action, last.from_version, last.to_version) == (
        "rollback",
        quarter.challenger_version,
        "1",
    )


def test_a_quarter_with_exploration_measures_below_the_line(explored: Quarter) -> None:
    check_the_loop(explored)
    truth = float(explored.below["truth"].mean())
    explored_leads = explored.below[explored.below["exploration"]]
    assert 0.1 < len(explored_leads) / len(explored.below) < 0.3
    assert set(explored.below["selection_probability"]) == {EXPLORATION_SHARE}
    for below in (explored.monitoring["below_line"], explored.report["below_line"]):
        assert below["observed"] is True
        assert below["n_labelled"] == len(explored_leads)
        # The exploration draws are random by design (unseeded), so a 95 % interval misses the
        # truth in one run of twenty: check the estimate within 4 standard errors of the truth
        # (a false alarm in about one run of 15,000) and that its own interval holds it.
        error = math.sqrt(truth * (1 - truth) / below["n_labelled"])
        assert abs(below["rate"] - truth) < 4 * error, (below, truth)
        assert below["low"] < below["rate"] < below["high"], below
        # Counting the leads nobody called as lost would be far off.
        assert below["naive_rate"] < below["low"]
    assert explored.report["training_set"]["exploration_labelled"] == len(explored_leads)


def test_a_quarter_without_exploration_says_below_the_line_is_unobserved(blind: Quarter) -> None:
    check_the_loop(blind)
    assert not blind.leads["exploration"].any()
    truth = float(blind.below["truth"].mean())
    assert truth > 0.03  # the leads below the line do convert
    for below in (blind.monitoring["below_line"], blind.report["below_line"]):
        assert below["observed"] is False and below["rate"] is None
        assert "below the MQL line is unobserved" in below["sentence"]
        assert below["naive_rate"] == 0.0  # what "unworked = lost" would believe
    assert blind.report["training_set"]["exploration_labelled"] == 0
    assert "extrapolated" in " ".join(blind.report["notes"])
