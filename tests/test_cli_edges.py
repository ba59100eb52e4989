"""The CLI at its edges: exit codes a scheduler reads, MLflow stores that are new, shared or
down, the app database only made by a command that stores something, and bugs kept to one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from cli_testkit import run_cli_streams
from fresh_python import assert_runs

from conftest import TrainedModel, demo_config
from leadml import cli, demo
from leadml.errors import ExitCode
from leadml.registry import open_tracking_store
from leadml.tracking import log_training
from leadml.tracking import promote as promote_model
from leadml.train import TrainResult, train_model


@pytest.fixture()
def mlflow_restored() -> Iterator[None]:
    """MLflow pointed back at the shared test store afterwards."""
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


@pytest.fixture()
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if (name.startswith("LEADML_") and not name.startswith("LEADML_MODEL_SIGNING_KEY")) or (
            name == "MLFLOW_TRACKING_URI"
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def worse_result(demo_frame: pd.DataFrame) -> TrainResult:
    """A model trained on shuffled outcomes: no better than chance on any holdout."""
    frame = demo_frame.head(1500).copy()
    frame[demo.TARGET] = np.random.default_rng(3).permutation(frame[demo.TARGET].to_numpy())
    return train_model(frame, demo_config(candidates=("logistic",), cv_folds=2))


def test_a_refused_promotion_exits_3_and_keeps_the_champion(
    capsys: pytest.CaptureFixture[str],
    in_tmp: Path,
    mlflow_restored: None,
    demo_result: TrainResult,
    worse_result: TrainResult,
) -> None:
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    open_tracking_store(uri, create=True)
    log_training(demo_result, model_name="gate", experiment="gate")
    assert promote_model("gate").promoted
    log_training(worse_result, model_name="gate", experiment="gate")
    argv = ["promote", "--tracking-uri", uri, "--model-name", "gate", "--models-dir", "exported"]
    code, out, err = run_cli_streams(argv, capsys)
    assert code == ExitCode.GATE_REFUSED == 3, err
    assert "gate v2 not promoted: kept v1" in " ".join(out.split())
    assert not err.strip()
    assert not (in_tmp / "exported").exists()
    code, out, err = run_cli_streams([*argv, "--force"], capsys)
    assert code == 0, err
    assert "gate v2 promoted: forced" in out
    code, out, err = run_cli_streams(argv, capsys)  # nothing left to do is not a refusal
    assert code == 0, err
    assert "already champion" in out


def test_two_first_trainings_at_once_on_a_new_sqlite_store(tmp_path: Path) -> None:
    """Two `leadml train` processes started together on a store that does not exist yet: both
    used to race through MLflow's migrations and one failed; the file lock makes both succeed."""
    demo.write_demo_leads(tmp_path / "leads.csv", 800, seed=2)
    store = tmp_path / "mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADML_"))}
    argv = [sys.executable, "-m", "leadml.cli", "train", "--data", "leads.csv"]
    argv += ["--target", demo.TARGET, "--id-column", demo.ID_COLUMN]
    argv += ["--tracking-uri", f"sqlite:///{store}"]
    runs = [
        subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err
        assert "Traceback" not in err
    registered = sorted(
        "v1" if "lead-scoring v1 as challenger" in " ".join(out.split()) else "v2"
        for out, _ in results
    )
    assert registered == ["v1", "v2"]
    versions = mlflow.MlflowClient(f"sqlite:///{store}", f"sqlite:///{store}")
    found = versions.search_model_versions("name = 'lead-scoring'")
    assert sorted(str(v.version) for v in found) == ["1", "2"]


def test_a_tracking_server_that_never_answers_fails_in_bounded_time(
    capsys: pytest.CaptureFixture[str],
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_restored: None,
) -> None:
    """The server accepts the connection and never replies: MLflow's own defaults would wait
    120 s a try, 8 tries. The command ends with one line after the timeout and retries set."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        code, _, err = run_cli_streams(
            ["promote", "--tracking-uri", f"http://127.0.0.1:{port}"], capsys
        )
        elapsed = time.monotonic() - started
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "tracking server did not answer" in lines[0]
    assert elapsed < 60  # two tries of 2 s and a back-off, with room for a loaded machine


def test_only_commands_that_store_something_create_the_app_database(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, trained: TrainedModel
) -> None:
    demo.generate_leads(300, seed=4).to_csv(in_tmp / "leads.csv", index=False)
    (in_tmp / "broken.csv").write_text("")
    model = ["--model", str(trained.export_dir)]
    database = in_tmp / "leadml.db"
    score = ["score", "leads.csv", "-o", "ranked.csv", *model]
    code, out, err = run_cli_streams([*score, "--no-ledger"], capsys)
    assert code == 0, err
    assert "the default MQL policy" in " ".join(out.split())
    assert not database.exists()
    code, out, err = run_cli_streams(
        ["threshold", "--policy", "fixed", "--cutoff", "0.5", *model], capsys
    )
    assert code == 0, err
    assert not database.exists()
    # A refused input creates nothing, although the ledger is on.
    code, _, err = run_cli_streams(["score", "broken.csv", "-o", "ranked.csv", *model], capsys)
    assert code == 2, err
    assert not database.exists()
    code, out, err = run_cli_streams(score, capsys)
    assert code == 0, err
    assert "creating a new app database" in " ".join(err.split())
    assert "300 scores recorded in the ledger" in " ".join(out.split())
    argv = ["threshold", "--policy", "fixed", "--cutoff", "0.5", "--apply", *model]
    code, out, err = run_cli_streams(argv, capsys)
    assert code == 0, err
    assert "creating a new app database" not in err
    assert "stored as MQL policy version 1" in " ".join(out.split())
    code, out, err = run_cli_streams(score, capsys)
    assert code == 0, err
    assert "MQL policy v1" in " ".join(out.split())


def test_a_bug_is_one_line_and_exit_1_with_the_traceback_on_request(
    capsys: pytest.CaptureFixture[str], in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the generator fell over")

    monkeypatch.setattr(cli, "write_demo_leads", broken)
    code, _, err = run_cli_streams(["demo-data", "-o", "leads.csv"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == ExitCode.FAILED == 1
    assert len(lines) == 1 and "Traceback" not in err
    assert "unexpected RuntimeError: the generator fell over" in lines[0]
    assert "LEADML_DEBUG=1" in lines[0]
    monkeypatch.setenv("LEADML_DEBUG", "1")
    code, _, err = run_cli_streams(["demo-data", "-o", "leads.csv"], capsys)
    assert code == 1
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("leadml: error:")


def test_the_cli_freezes_the_libraries_and_keeps_collecting() -> None:
    """`import leadml.cli` imports its libraries with the collector off and freezes what they
    leave (out of every full collection, at exit too); the collector is on again and still
    frees the cycles a command leaves behind."""
    code = (
        "import gc, weakref, leadml.cli\n"
        "assert gc.isenabled()\n"
        "assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()\n"
        "class Node: pass\n"
        "node = Node(); node.itself = node; gone = weakref.ref(node); del node\n"
        "gc.collect()\n"
        "assert gone() is None\n"
        # What a command imports later lives long too: not walked again and again in full.
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: full.append(info) if phase == 'start'"
        " and info['generation'] == 2 else None)\n"
        "kept = [[n] for n in range(200_000)]\n"
        "assert not full, len(full)\n"
    )
    assert_runs(code)


def test_the_cli_leaves_a_collector_switched_off_off() -> None:
    code = "import gc\ngc.disable()\nimport leadml.cli\nassert not gc.isenabled()\n"
    assert_runs(code)
