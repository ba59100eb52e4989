"""Batch scoring of a large file in bounded memory: wall time and peak memory of `leadml score`.

Usage: .venv/bin/python bench/score_large_file.py [--rows 1000000] [--chunk-rows 100000]

Works in bench/.work/: writes demo leads (chunked), trains a model on 20,000 of them, then runs
`leadml score` on the big file in a child process and reads its peak RSS from the OS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"


def leadml(*args: str) -> tuple[float, float]:
    """Run one leadml command; its wall seconds and its own peak RSS in MiB."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "leadml.cli", *args],
        cwd=WORK,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{WORK / 'mlflow.db'}"},
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"leadml {args[0]} failed with exit code {child.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    big = WORK / f"leads_{args.rows}.parquet"
    if not big.exists():
        seconds, peak = leadml("demo-data", "--rows", str(args.rows), "-o", big.name)
        print(f"wrote {args.rows:,} demo leads in {seconds:.1f} s (peak RSS {peak:,.0f} MiB)")
    if not (WORK / "models" / "lead-scoring").exists():
        leadml("demo-data", "--rows", "20000", "--seed", "3", "-o", "train.csv")
        leadml("train", "--data", "train.csv", "--target", "converted", "--id-column", "lead_id")
        leadml("promote")
    seconds, peak = leadml(
        "score",
        big.name,
        "-o",
        "ranked.parquet",
        "--chunk-rows",
        str(args.chunk_rows),
        "--model",
        "models/lead-scoring",
    )
    print(
        f"scored {args.rows:,} leads in {seconds:.1f} s ({args.rows / seconds:,.0f} leads/s),"
        f" chunks of {args.chunk_rows:,}; peak RSS of the scoring process {peak:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
