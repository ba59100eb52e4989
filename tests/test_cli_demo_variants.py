"""`leadml demo-data --variant` and `leadml train --date-order / --day-first`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, flat, run_cli, run_cli_streams

from leadml.demo import columns_of


def test_demo_data_writes_the_variants_asked_for(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "leads.csv"
    argv = ["demo-data", "-o", str(target), "--rows", "200"]
    code, out, err = run_cli_streams(
        [*argv, "--variant", "post-contact", "--variant", "day-first"], capsys
    )
    assert code == 0, err
    assert "(post-contact, day-first)" in flat(out)
    back = pd.read_csv(target)
    assert list(back.columns) == list(columns_of(("post-contact", "day-first")))
    assert back["created_at"].str.fullmatch(r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}").all()


def test_an_unknown_variant_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "leads.csv"
    code, err = run_cli(["demo-data", "-o", str(target), "--variant", "post-call"], capsys)
    assert_one_line_error(code, err, "unknown demo variant 'post-call'", "post-contact")
    assert not target.exists()


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--date-order", "sideways"], ("--date-order 'sideways' is unknown", "day-first")),
        (["--date-order", "month-first", "--day-first"], ("contradicts",)),
    ],
)
def test_a_bad_date_order_is_one_line(
    capsys: pytest.CaptureFixture[str], options: list[str], fragments: tuple[str, ...]
) -> None:
    code, err = run_cli(["train", "--data", "x.csv", "--target", "converted", *options], capsys)
    assert_one_line_error(code, err, *fragments)
