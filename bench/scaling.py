"""`leadml train` wall time and peak memory on 10k, 100k and 1M demo leads.

Usage: python bench/scaling.py [--rows 10000 100000 1000000]

Each size: the demo leads are written to a Parquet file first (not timed), then `leadml train`
runs as its own process (`python -m leadml.cli train ...`, MLflow in a throwaway SQLite store)
and is timed from start to exit; the peak memory is that process's maximum resident set size
(`ru_maxrss` of the child). Results go to bench/results/scaling.csv (one row a run, appended).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from leadml import demo

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scaling.csv"


def run(rows: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "leads.parquet"
        demo.write_demo_leads(data, rows, seed=11)
        command = [
            sys.executable, "-m", "leadml.cli", "train", "--data", str(data),
            "--target", demo.TARGET, "--id-column", demo.ID_COLUMN,
            "--time-column", demo.TIME_COLUMN,
            "--tracking-uri", f"sqlite:///{folder}/mlflow.db",
            "--report-json", f"{folder}/report.json",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=os.environ)
        seconds = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        report = pd.read_json(f"{folder}/report.json", typ="series")
    return {
        "rows": rows,
        "wall_seconds": round(seconds, 1),
        "train_model_seconds": report["seconds"],
        # ru_maxrss of children is the largest child so far; each size runs in a fresh process.
        "peak_rss_mib": round(max(peak_kib, before) / 1024),
        "model": report["model"],
        "roc_auc": round(report["metrics"]["roc_auc"], 4),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for rows in sorted(args.rows):
        row = run(rows)
        pd.DataFrame([row]).to_csv(RESULTS, mode="a", header=not RESULTS.exists(), index=False)
        print(row, flush=True)


if __name__ == "__main__":
    main()
