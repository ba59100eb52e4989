"""`leadml threshold`: the table around the MQL line, intervals, grades, and `--apply`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_testkit import assert_one_line_error, flat, run_cli, run_cli_streams

from conftest import TrainedModel
from leadml.store import Store
from leadml.threshold import CapacityPolicy, MinPrecisionPolicy, resolve_policy


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")


def test_capacity_prints_the_table_intervals_grades_and_sentence(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel
) -> None:
    argv = ["threshold", "--policy", "capacity", "--per-week", "200", "--leads-per-week", "1500"]
    code, out, err = run_cli_streams([*argv, "--model", str(trained.export_dir)], capsys)
    assert code == 0, err
    assert not err.strip()  # the results are on stdout, so `leadml threshold ... > file` keeps them
    y, p = trained.result.holdout_y, trained.result.holdout_proba
    expected = resolve_policy(CapacityPolicy(per_week=200, leads_per_week=1500), y, p)
    text = flat(out)
    chosen = [line for line in out.splitlines() if line.startswith("│ > ")]
    assert len(chosen) == 1 and f"{expected.cutoff:.4f}" in chosen[0]  # the chosen row is marked
    assert f"at the cut-off {expected.cutoff:.4f}" in text
    low, high = expected.intervals["recall"]
    assert f"recall {expected.recall * 100:.1f} % ({low * 100:.1f} % to {high * 100:.1f} %)" in (
        text
    )
    assert "grades (holdout)" in text and " A " in text and " D " in text
    assert flat(expected.sentence) in text
    assert "nothing stored" in text


def test_the_champion_is_the_default_model(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path
) -> None:
    argv = [
        "threshold",
        "--policy",
        "min_precision",
        "--min-precision",
        "0.6",
        "--tracking-uri",
        trained.tracking_uri,
        "--model-name",
        trained.model_name,
    ]
    code, out, err = run_cli_streams(argv, capsys)  # no models/ here: the registry's champion
    assert code == 0, err
    y, p = trained.result.holdout_y, trained.result.holdout_proba
    expected = resolve_policy(MinPrecisionPolicy(min_precision=0.6), y, p)
    assert f"{trained.model_name} v{trained.version}" in out
    assert flat(expected.sentence) in flat(out)


def test_apply_stores_a_new_version_each_time(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, store_url: str
) -> None:
    base = ["threshold", "--model", str(trained.export_dir), "--database-url", store_url]
    code, out, err = run_cli_streams(
        [*base, "--policy", "fixed", "--cutoff", "0.5", "--apply", "--set-by", "ana"], capsys
    )
    assert code == 0, err
    assert "stored as MQL policy version 1" in flat(out)
    code, out, err = run_cli_streams(
        [*base, "--policy", "min_recall", "--min-recall", "0.8", "--apply", "--reason", "more"],
        capsys,
    )
    assert code == 0, err
    assert "stored as MQL policy version 2" in flat(out)
    store = Store.from_url(store_url)
    try:
        history = store.policy_history(trained.model_name)
    finally:
        store.close()
    assert [(h.version, h.kind) for h in history] == [(2, "min_recall"), (1, "fixed")]
    assert history[1].set_by == "ana" and history[1].cutoff == 0.5
    assert history[0].reason == "more" and history[0].set_by  # the OS user
    assert history[0].expected["recall"] >= 0.8
    p = trained.result.holdout_proba
    assert history[1].expected["mql_share"] == pytest.approx(np.mean(p >= 0.5))


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (
            ["--policy", "capacity", "--per-week", "200"],
            ["--policy capacity needs", "--leads-per-week"],
        ),
        (["--policy", "sometimes"], ["--policy 'sometimes' is unknown", "capacity"]),
        (["--policy", "fixed", "--cutoff", "1.5"], ["cutoff must be a probability"]),
        (["--policy", "min_precision", "--min-precision", "60"], ["write 60 % as 0.6"]),
        (
            ["--policy", "fixed", "--cutoff", "0.5", "--min-recall", "0.8"],
            ["--min-recall does not apply"],
        ),
        (
            ["--policy", "capacity", "--per-week", "2000", "--leads-per-week", "1500"],
            ["cannot exceed leads_per_week"],
        ),
        (
            ["--policy", "capacity", "--per-week", "1", "--leads-per-week", "1000000"],
            ["tied at the highest probability"],
        ),
        (
            ["--policy", "max_value", "--deal-value", "100", "--cost-per-contact", "100"],
            ["lower than"],
        ),
        (["--per-week", "3"], ["--policy"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    trained: TrainedModel,
    options: list[str],
    fragments: list[str],
) -> None:
    code, err = run_cli(["threshold", "--model", str(trained.export_dir), *options], capsys)
    assert_one_line_error(code, err, *fragments)


def test_bad_database_is_one_line(
    capsys: pytest.CaptureFixture[str], trained: TrainedModel, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'leadml.db'}"
    argv = ["threshold", "--model", str(trained.export_dir), "--policy", "fixed", "--cutoff", "0.5"]
    code, err = run_cli([*argv, "--apply", "--database-url", url], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("leadml: error:")
    assert "does not exist" in err.strip().splitlines()[-1]
