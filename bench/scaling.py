"""`leadml train` wall time, CPU time and peak memory on X Education and 10k, 100k, 1M demo leads.

Usage: python bench/scaling.py [--rows 10000 100000 1000000] [--xeducation PATH | --no-xeducation]

Each run is `leadml train` as its own process (`python -m leadml.cli train ...`), started in a new
empty folder, as a new user runs it: MLflow logs to the default store (sqlite:///mlflow.db in
that folder), so the time includes starting Python, the imports, creating the store, training,
logging and registering. Timed from start to exit; CPU time is the child's user + system time
and the peak memory its maximum resident set size (both from `os.wait4`). The 1-minute load
average is written before and after each run: on a shared machine wall time grows with it, CPU
time much less.

X Education (read in place from ../shared/data/, never copied into the repo) runs first when
the file is there, with `--target Converted`. The demo leads (`--time-column created_at`) are
generated once per size and kept in bench/.work/ (ignored by git); generating them is not timed.
Results go to bench/results/scaling.csv, one row a run, appended.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from leadml import demo

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scaling.csv"
WORK = HERE / ".work"
XEDUCATION = HERE.parent.parent / "shared" / "data" / "x_education_leads.csv"
DEMO_SEED = 11


def demo_leads(rows: int) -> Path:
    """The demo export of `rows` leads, written once."""
    path = WORK / f"scaling-demo-{rows}-seed{DEMO_SEED}.parquet"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.parquet")
        demo.write_demo_leads(partial, rows, seed=DEMO_SEED)
        partial.rename(path)
    return path


def timed_train(arguments: list[str]) -> dict[str, object]:
    """Run `leadml train ARGUMENTS` in a fresh folder; its time, CPU, memory and report."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "leadml.cli", "train", *arguments,
            "--report-json", f"{folder}/report.json",
        ]  # fmt: skip
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        with open(f"{folder}/stderr.txt", "w") as stderr:
            child = subprocess.Popen(
                command, cwd=folder, stdout=subprocess.DEVNULL, stderr=stderr, env=environment
            )
            _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(Path(f"{folder}/stderr.txt").read_text()[-2000:])
        report = json.loads(Path(f"{folder}/report.json").read_text())
    split = report["split"]
    return {
        "leads": split["fit"] + split["holdout"] + split.get("open_leads_left_out", 0),
        "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "train_model_seconds": report["seconds"],
        "train_model_cpu_seconds": report.get("cpu_seconds"),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "model": report["model"],
        "trees": next(
            (s["n_estimators"] for s in report["cv"] if s["name"] == report["model"]), None
        ),
        "roc_auc": round(report["metrics"]["roc_auc"], 4),
        "pr_auc": round(report["metrics"]["pr_auc"], 4),
        "ece": round(report["metrics"]["ece"], 4),
        "cv_rows": report["split"].get("cross_validated"),
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--xeducation", type=Path, default=XEDUCATION)
    parser.add_argument("--no-xeducation", action="store_true", help="skip the X Education run")
    args = parser.parse_args()
    runs: list[tuple[str, list[str]]] = []
    if not args.no_xeducation and args.xeducation.exists():
        data = str(args.xeducation.resolve())
        runs.append(("xeducation", ["--data", data, "--target", "Converted"]))
    elif not args.no_xeducation:
        print(f"no X Education export at {args.xeducation}: skipped (--xeducation PATH)")
    for rows in sorted(args.rows):
        arguments = [
            "--data", str(demo_leads(rows)), "--target", demo.TARGET,
            "--id-column", demo.ID_COLUMN, "--time-column", demo.TIME_COLUMN,
        ]  # fmt: skip
        runs.append(("demo", arguments))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for export, arguments in runs:
        row = {
            "export": export,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            **timed_train(arguments),
        }
        pd.DataFrame([row]).to_csv(RESULTS, mode="a", header=not RESULTS.exists(), index=False)
        print(row, flush=True)


if __name__ == "__main__":
    main()
