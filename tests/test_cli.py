"""The `leadml` command as a user meets it: one-line errors with exit code 2, and the happy path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, free_port, run_cli


@pytest.fixture()
def leads_csv(tmp_path: Path, demo_frame: pd.DataFrame) -> Path:
    path = tmp_path / "leads.csv"
    demo_frame.head(1500).to_csv(path, index=False)
    return path


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(["train", "--data", str(tmp_path / "no.csv"), "--target", "y"], capsys)
    assert_one_line_error(code, err, "no such file", alone=False)


def test_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    code, err = run_cli(["train", "--data", str(tmp_path / "empty.csv"), "--target", "y"], capsys)
    assert_one_line_error(code, err, "empty", alone=False)


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--target", "won"], ["target column 'won' not found", "columns are:"]),
        (["--target", "lead_source"], ["exactly two values"]),
        (["--target", "converted", "--id-column", "nope"], ["--id-column 'nope' not found"]),
        (["--target", "converted", "--exclude", "nope"], ["column 'nope' not found"]),
        (["--target", "converted", "--positive", "maybe"], ["--positive 'maybe' is not a value"]),
        (["--target", "converted", "--id-column", "industry"], ["share an id in 'industry'"]),
    ],
)
def test_bad_training_input(
    capsys: pytest.CaptureFixture[str], leads_csv: Path, extra: list[str], fragments: list[str]
) -> None:
    code, err = run_cli(["train", "--data", str(leads_csv), *extra], capsys)
    assert_one_line_error(code, err, *fragments, alone=False)


def test_too_few_positives(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, demo_frame: pd.DataFrame
) -> None:
    few = pd.concat(
        [
            demo_frame[demo_frame.converted == 1].head(12),
            demo_frame[demo_frame.converted == 0].head(300),
        ]
    )
    few.to_csv(tmp_path / "few.csv", index=False)
    code, err = run_cli(
        ["train", "--data", str(tmp_path / "few.csv"), "--target", "converted"], capsys
    )
    assert_one_line_error(code, err, "12 converted", "at least 40 of each", alone=False)


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["train", "--data", "x.csv"], capsys)
    assert_one_line_error(
        code, err, "Missing option '--target'", "leadml train --help", alone=False
    )
    code, err = run_cli(["demo-data", "-o", "x.csv", "--rows", "many"], capsys)
    assert_one_line_error(code, err, "Invalid value for '--rows'", alone=False)


def test_demo_data_size_is_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(["demo-data", "-o", str(tmp_path / "x.csv"), "--rows", "5"], capsys)
    assert_one_line_error(code, err, "100", alone=False)


def test_score_refuses_an_unknown_output_format(
    capsys: pytest.CaptureFixture[str], leads_csv: Path
) -> None:
    code, err = run_cli(["score", str(leads_csv), "-o", "out.xlsx"], capsys)
    assert_one_line_error(code, err, ".csv or .parquet", alone=False)


def test_the_whole_path_from_a_shell(tmp_path: Path) -> None:
    """demo-data -> train -> promote -> score, as separate processes, in a fresh folder."""
    leadml = [sys.executable, "-m", "leadml.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*leadml, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done

    run("demo-data", "--rows", "3000", "--seed", "5", "-o", "leads.parquet")
    run(
        "train",
        "--data",
        "leads.parquet",
        "--target",
        "converted",
        "--id-column",
        "lead_id",
        "--time-column",
        "created_at",
        "--report-json",
        "report.json",
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model_version"] == "1"
    assert "sales_status" in {
        c["column"] for c in report["columns_excluded"] if c["reason"] == "leakage"
    }
    assert (tmp_path / "mlflow.db").exists()
    promoted = run("promote")
    assert "promoted" in promoted.stdout
    assert (tmp_path / "models" / "lead-scoring" / "model.json").exists()
    run("score", "leads.parquet", "-o", "ranked.csv", "--chunk-rows", "700", "--reasons")
    ranked = pd.read_csv(tmp_path / "ranked.csv")
    assert len(ranked) == 3000
    assert set(ranked["grade"]) <= set("ABCD")
    assert set(ranked["is_mql"]) == {"yes", "no"}  # as the ranked-leads page writes it
    assert (ranked["probability"] == ranked["probability"].round(4)).all()
    mql = ranked["is_mql"] == "yes"
    assert ranked.loc[mql, "probability"].min() >= ranked.loc[~mql, "probability"].max()
    assert ranked["policy_version"].isna().all()  # no policy stored yet: the default
    assert ranked["reasons_for"].str.contains("raises the chance").any()
    assert ranked["probability"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, 3001))
    assert ranked["lead_id"].is_unique
    second = run("promote")  # nothing to do is not a refusal: exit code 0
    assert "already champion" in second.stdout


def test_serve_refuses_to_start_open_or_without_a_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("LEADML_API_KEYS", "LEADML_ALLOW_ANONYMOUS", "LEADML_MODEL_URI"):
        monkeypatch.delenv(name, raising=False)
    port = str(free_port())
    code, err = run_cli(["serve", "--port", port], capsys)
    assert_one_line_error(
        code, err, "no API keys are configured", "LEADML_ALLOW_ANONYMOUS", alone=False
    )
    monkeypatch.setenv("LEADML_ALLOW_ANONYMOUS", "true")
    monkeypatch.setenv("LEADML_MODEL_URI", str(tmp_path / "models" / "none"))
    code, err = run_cli(["serve", "--port", port], capsys)
    assert_one_line_error(code, err, "no model at", "LEADML_MODEL_URI", alone=False)
