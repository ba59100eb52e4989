"""`leadml retrain` and `leadml rollback` against a real MLflow registry and SQLite ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, run_cli
from mlflow import MlflowClient
from retrain_sim import LEDGER_START, new_world

from conftest import demo_config
from leadml import demo
from leadml.errors import ExitCode
from leadml.registry import audit_trail, use_tracking
from leadml.store import OutcomeEventIn, ScoredLeadIn, Store, create_store_engine
from leadml.tracking import CHAMPION, log_training, promote
from leadml.train import train_model

MODEL = "retrain-leads"


@dataclass(frozen=True)
class Loop:
    tracking_uri: str
    database_url: str
    folder: Path

    def args(self) -> list[str]:
        return [
            "--model-name",
            MODEL,
            "--tracking-uri",
            self.tracking_uri,
            "--models-dir",
            str(self.folder / "models"),
        ]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    """A champion trained on last year's leads, and a quarter of its scores in the ledger after
    which organic search stopped converting; outcome events arrive for every lead, weekly."""
    folder = tmp_path_factory.mktemp("retrain")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    use_tracking(tracking_uri)
    result = train_model(demo.generate_leads(4000, seed=21), demo_config(candidates=("logistic",)))
    result.trained_at = (LEDGER_START - pd.Timedelta(days=1)).isoformat()
    log_training(result, model_name=MODEL, experiment="tests")
    promote(MODEL)

    sync_time = [LEDGER_START.to_pydatetime()]
    engine = create_store_engine(f"sqlite:///{folder / 'leadml.db'}")
    store = Store(engine, clock=lambda: sync_time[0])
    store.migrate()
    leads = new_world(4000, seed=22, dead_channel="Organic Search")
    proba = result.pipeline.predict_proba(leads)[:, 1]
    cutoff = float(np.quantile(result.holdout_proba, 0.7))
    fields = leads.drop(columns=[demo.TARGET, *demo.LEAKY_COLUMNS])
    scored_at = pd.to_datetime(leads["created_at"], utc=True)
    store.record_scores(
        [
            ScoredLeadIn(
                model_name=MODEL,
                model_version="1",
                probability=float(p),
                score=round(float(p) * 100),
                grade="B" if p >= cutoff else "D",
                is_mql=bool(p >= cutoff),
                features=record,
                lead_id=record["lead_id"],
                scored_at=moment.to_pydatetime(),
            )
            for p, record, moment in zip(
                proba, fields.to_dict(orient="records"), scored_at, strict=True
            )
        ]
    )
    # Sales report what became of every lead through outcome events (as POST /v1/outcomes and
    # `leadml outcomes import` store them), the CRM syncing once a week.
    outcome_at = scored_at + pd.Timedelta(days=20)
    synced_at = outcome_at.dt.ceil("7D")
    for moment in sorted(synced_at.unique()):
        sync_time[0] = pd.Timestamp(moment).to_pydatetime()
        now = (synced_at == moment).to_numpy()
        store.record_outcome_events(
            [
                OutcomeEventIn(
                    lead_id=lead_id,
                    event="won" if converted else "lost",
                    occurred_at=at.to_pydatetime(),
                )
                for lead_id, converted, at in zip(
                    leads["lead_id"][now], leads[demo.TARGET][now], outcome_at[now], strict=True
                )
            ]
        )
    store.close()
    return Loop(tracking_uri, f"sqlite:///{folder / 'leadml.db'}", folder)


def champion_version(loop: Loop) -> str:
    use_tracking(loop.tracking_uri)
    return str(MlflowClient().get_model_version_by_alias(MODEL, CHAMPION).version)


def test_retrain_promotes_then_rollback_goes_back(
    loop: Loop, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = loop.folder / "report.json"
    base = [*loop.args(), "--database-url", loop.database_url, "--all-leads-observed"]
    # A week into the quarter too few outcomes are in to judge: refused, champion kept.
    early = ["--as-of", "2025-01-08T00:00:00+00:00", "--report-json", str(report_path)]
    refused, _ = run_cli(["retrain", *base, *early], capsys)
    assert refused == ExitCode.GATE_REFUSED
    assert "too few recent outcomes" in json.loads(report_path.read_text())["gate"]["sentence"]
    assert champion_version(loop) == "1"

    code, err = run_cli(["retrain", *base, "--report-json", str(report_path)], capsys)
    assert code == ExitCode.OK, err
    report = json.loads(report_path.read_text())
    assert report["promoted"] is True and report["mode"] == "retrain"
    new_version = report["challenger_version"]
    assert champion_version(loop) == new_version != "1"
    assert report["gate"]["metrics"]["roc_auc"]["difference"] > 0.005
    assert report["policy"]["challenger_mql_share"] == pytest.approx(0.3, abs=0.03)
    run = MlflowClient().get_model_version(MODEL, new_version).run_id
    artifacts = {a.path for a in MlflowClient().list_artifacts(run, "retrain")}
    assert {"retrain/report.json", "retrain/report.txt"} <= artifacts

    code, err = run_cli(["rollback", *loop.args(), "--reason", "test"], capsys)
    assert code == 0, err
    assert champion_version(loop) == "1"
    last = audit_trail(MODEL)[-1]
    assert (last.action, last.from_version, last.to_version) == ("rollback", new_version, "1")
    assert last.reason == "test"
    exported = json.loads((loop.folder / "models" / MODEL / "model.json").read_text())
    assert exported["version"] == "1"


def test_bad_retrain_input_is_one_line(loop: Loop, capsys: pytest.CaptureFixture[str]) -> None:
    base = [*loop.args(), "--database-url", loop.database_url]
    code, err = run_cli(["retrain", *base, "--as-of", "soon"], capsys)
    assert_one_line_error(code, err, "--as-of")
    code, err = run_cli(["retrain", *base, "--margin", "-1"], capsys)
    assert_one_line_error(code, err, "margin", alone=False)
    code, err = run_cli(["rollback", "--model-name", "no-such-model", *loop.args()[2:]], capsys)
    assert_one_line_error(code, err, alone=False)
