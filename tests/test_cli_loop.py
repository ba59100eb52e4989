"""The loop from the command line: score (ledger, CRM file), outcomes import, monitor's exit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, flat, run_cli, run_cli_streams

from conftest import TrainedModel
from leadml import demo
from leadml.errors import ExitCode
from leadml.scoring import CRM_COLUMNS
from leadml.store import Store

ROWS = 2500


def crm_export(ranked: pd.DataFrame, truth: pd.Series, seed: int) -> pd.DataFrame:
    """What a CRM exports for the MQLs sales worked: stage, close date, amount, reason."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC) + timedelta(days=1)
    rows = []
    for lead in ranked[ranked["is_mql"]].itertuples():
        won = bool(truth[lead.lead_id])
        when = start + timedelta(days=int(rng.integers(1, 30)))
        if not won and rng.random() < 0.1:
            rows.append((lead.lead_id, "Disqualified", when, "Bad Fit", None))
            continue
        rows.append((lead.lead_id, "Qualified", when, None, None))
        stage = "Closed Won" if won else "Closed Lost"
        rows.append((lead.lead_id, stage, when + timedelta(days=9), None, 900.0 if won else 50.0))
    return pd.DataFrame(
        rows, columns=["Prospect ID", "Stage", "Close Date", "Disqualification Reason", "Amount"]
    )


def test_score_import_monitor(
    trained: TrainedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = demo.generate_leads(ROWS, seed=21, start_id=500_000)
    leads.drop(columns=[demo.TARGET]).to_csv(tmp_path / "leads.csv", index=False)
    db = f"sqlite:///{tmp_path / 'app.db'}"
    model = str(trained.export_dir)
    common = ["--model", model, "--database-url", db]

    code, out, err = run_cli_streams(
        ["score", str(tmp_path / "leads.csv"), "-o", str(tmp_path / "ranked.csv"),
         "--crm-csv", str(tmp_path / "crm.csv"), *common], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert f"{ROWS:,} scores recorded in the ledger" in flat(out)
    assert "creating a new app database" in flat(err)
    ranked = pd.read_csv(tmp_path / "ranked.csv", dtype={"lead_id": str})
    ranked["is_mql"] = ranked["is_mql"].map({"yes": True, "no": False})
    crm = pd.read_csv(tmp_path / "crm.csv", dtype={"lead_id": str})
    assert "reasons_for" not in ranked.columns
    assert list(crm.columns) == list(CRM_COLUMNS)
    assert crm["lead_id"].tolist() == ranked["lead_id"].tolist()
    assert set(crm["is_mql"]) == {True, False}
    assert crm.loc[crm["is_mql"], "top_reasons"].str.contains("raises the chance").all()
    assert (crm["model_version"].astype(str) == trained.version).all()

    code, out, err = run_cli_streams(
        ["score", str(tmp_path / "leads.csv"), "-o", str(tmp_path / "again.csv"), "--no-ledger",
         *common], capsys,
    )  # fmt: skip
    assert code == 0 and "ledger off" in out
    store = Store.from_url(db)
    ledger = store.ledger_frame()
    assert len(ledger) == ROWS and set(ledger["source"]) == {"cli"}
    assert ledger["features"].iloc[0]["lead_id"] == ledger["lead_id"].iloc[0]

    code, out, err = run_cli_streams(["monitor", *common], capsys)
    assert code == 0, err
    assert "promise is not checked yet" in flat(out)  # scores, but no outcome yet

    truth = leads.set_index(demo.ID_COLUMN)[demo.TARGET].astype(bool)
    truth.index = truth.index.astype(str)
    export = crm_export(ranked, truth, seed=21)
    export.to_csv(tmp_path / "export.csv", index=False)
    code, out, err = run_cli_streams(["outcomes", "import", str(tmp_path / "export.csv"),
                                      "--database-url", db], capsys)  # fmt: skip
    assert code == 0, err
    assert f"{len(export):,} stored, 0 already there; 0 lead ids" in flat(out)
    code, out, err = run_cli_streams(["outcomes", "import", str(tmp_path / "export.csv"),
                                      "--database-url", db], capsys)  # fmt: skip
    assert f"0 stored, {len(export):,} already there" in flat(out)
    events = store.outcome_events_frame()
    assert set(events["reason"].dropna()) == {"bad fit"}
    assert events.loc[events["event"] == "lost", "deal_value"].isna().all()

    code, out, err = run_cli_streams(["monitor", *common], capsys)
    assert code == 0, err
    assert "healthy:" in flat(out) and "not checked yet" not in flat(out)

    # Sales stops converting the top channel's MQLs: the next quarter is a different store.
    channel = leads.loc[leads[demo.ID_COLUMN].astype(str).isin(
        ranked.loc[ranked["is_mql"], "lead_id"]), "lead_source"].value_counts().index[0]  # fmt: skip
    dead = leads.set_index(demo.ID_COLUMN)["lead_source"] == channel
    dead.index = dead.index.astype(str)
    shifted_db = f"sqlite:///{tmp_path / 'shifted.db'}"
    shifted = ["--model", model, "--database-url", shifted_db]
    assert run_cli(["score", str(tmp_path / "leads.csv"), "-o", str(tmp_path / "r2.csv"),
                    *shifted], capsys)[0] == 0  # fmt: skip
    crm_export(ranked, truth & ~dead, seed=21).to_csv(tmp_path / "shifted.csv", index=False)
    assert run_cli(["outcomes", "import", str(tmp_path / "shifted.csv"),
                    "--database-url", shifted_db], capsys)[0] == 0  # fmt: skip
    code, out, err = run_cli_streams(
        ["monitor", *shifted, "--report-json", str(tmp_path / "m.json")], capsys
    )
    assert code == ExitCode.MONITOR_ACT == 4
    assert "act: MQLs under the default MQL policy" in flat(out)
    assert (tmp_path / "m.json").exists()
    store.close()


def test_batch_scoring_hands_the_policys_exploration_share_to_sales(
    trained: TrainedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy with an exploration share draws leads below the line in `leadml score` as the
    API does, and the ledger keeps each lead's chance of going to sales (what monitoring and
    retraining weight by)."""
    share = 0.25
    leads = demo.generate_leads(1500, seed=22, start_id=700_000)
    leads.drop(columns=[demo.TARGET]).to_csv(tmp_path / "leads.csv", index=False)
    db = f"sqlite:///{tmp_path / 'app.db'}"
    common = ["--model", str(trained.export_dir), "--database-url", db]
    code, _, err = run_cli_streams(
        ["threshold", *common, "--policy", "fixed", "--cutoff", "0.5", "--apply",
         "--reason", "explore", "--exploration-share", str(share)], capsys,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli_streams(
        ["score", str(tmp_path / "leads.csv"), "-o", str(tmp_path / "ranked.csv"), *common], capsys
    )
    assert code == 0, err
    ranked = pd.read_csv(tmp_path / "ranked.csv", dtype={"lead_id": str})
    explored = ranked["exploration"] == "yes"
    assert f"{int(explored.sum()):,} leads below the line drawn for sales" in flat(out)
    assert not (explored & (ranked["is_mql"] == "yes")).any()
    below = ranked["is_mql"] == "no"
    assert abs(explored[below].mean() - share) < 4 * np.sqrt(share * (1 - share) / below.sum())
    store = Store.from_url(db)
    ledger = store.ledger_frame().set_index("lead_id")
    store.close()
    ranked = ranked.set_index("lead_id")
    assert ledger.loc[ranked.index, "exploration"].tolist() == explored.tolist()
    chance = ledger.loc[ranked.index, "selection_probability"]
    assert chance.tolist() == [1.0 if mql == "yes" else share for mql in ranked["is_mql"]]


def test_outcome_import_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'app.db'}"
    frame = pd.DataFrame({"lead": ["A"], "Stage": ["Negotiation"], "date": ["2026-01-01"]})
    frame.to_csv(tmp_path / "x.csv", index=False)

    code, err = run_cli(["outcomes", "import", str(tmp_path / "x.csv"), "--database-url", db],
                        capsys)  # fmt: skip
    assert_one_line_error(code, err, "--lead-id-column")
    code, err = run_cli(["outcomes", "import", str(tmp_path / "x.csv"), "--lead-id-column", "lead",
                         "--database-url", db], capsys)  # fmt: skip
    assert_one_line_error(code, err, "row 1", "'Negotiation'", "--event-value")
    code, out, err = run_cli_streams(["outcomes", "import", str(tmp_path / "x.csv"),
                                      "--lead-id-column", "lead",
                                      "--event-value", "Negotiation=sql_accepted",
                                      "--database-url", db], capsys)  # fmt: skip
    assert code == 0 and "1 stored" in flat(out) and "1 lead ids the ledger has never" in flat(out)
    code, err = run_cli(["monitor", "--target", "converted"], capsys)
    assert_one_line_error(code, err, "--target goes with --data")
