"""Batch scoring on Spark against the pandas path: leads per second and peak memory.

Usage:
    .venv/bin/python bench/spark_vs_pandas.py --rows 1000000 10000000 [--engines pandas spark udf]
        [--ledger]

Scoring alone by default (`--no-ledger`); `--ledger` records every score in the ledger on both
engines, as `leadml score` does by default.

Works in bench/.work/ (shared with score_large_file.py): writes the demo leads once (Parquet,
chunked), trains and exports a model on 20,000 other demo leads once, then for each size runs

- pandas: `leadml score BIG -o ranked.parquet` (chunks of 100,000, the ranked list in memory);
- spark:  `leadml score BIG -o scored.parquet --engine spark --master local[2]`
          (mapInPandas over the pandas path's per-chunk scoring);
- udf:    the same leads through MLflow's `spark_udf` on the registered model (local[2]),
          probability only, written as Parquet (the alternative to leadml's mapInPandas).

Each run is a child process; its peak memory is the largest sum of the resident memory of it and
all its descendants (the JVM and Spark's Python workers), sampled every 0.2 s. Wall time includes
starting Python, loading the model, and for Spark starting the JVM. Every Spark result is checked
against the pandas path's on the same leads: the largest difference in probability is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

WORK = Path(__file__).resolve().parent / ".work"
MASTER = "local[2]"
UDF_SCRIPT = """
import sys, mlflow
from pyspark.sql import SparkSession
from leadml.scoring import Scorer
source, output, master = sys.argv[1:4]
spark = (SparkSession.builder.master(master).config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC").config("spark.log.level", "OFF")
         .getOrCreate())
schema = Scorer.load("models/lead-scoring").schema
leads = spark.read.parquet(source)
predict = mlflow.pyfunc.spark_udf(spark, "models:/lead-scoring@champion", result_type="double",
                                  env_manager="local")
scored = leads.select(schema.id_column, predict(*schema.feature_names).alias("probability"))
scored.write.mode("overwrite").parquet(output)
"""


def run(args: list[str]) -> tuple[float, float]:
    """Run a child process in WORK; its wall seconds and the peak RSS (MiB) of its process tree."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{WORK / 'mlflow.db'}",
        "LEADML_DATABASE_URL": f"sqlite:///{WORK / 'leadml.db'}",
        "PYSPARK_PYTHON": sys.executable,
    }
    started = time.perf_counter()
    child = subprocess.Popen(args, cwd=WORK, env=env)
    parent = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        total = 0
        try:
            for process in [parent, *parent.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed with exit code {child.returncode}")
    return seconds, peak / 2**20


def leadml(*args: str) -> tuple[float, float]:
    return run([sys.executable, "-m", "leadml.cli", *args])


def prepare(rows: int) -> Path:
    WORK.mkdir(exist_ok=True)
    big = WORK / f"leads_{rows}.parquet"
    if not big.exists():
        leadml("demo-data", "--rows", str(rows), "-o", big.name)
    if not (WORK / "models" / "lead-scoring").exists():
        leadml("demo-data", "--rows", "20000", "--seed", "3", "-o", "train.csv")
        leadml("train", "--data", "train.csv", "--target", "converted", "--id-column", "lead_id")
        leadml("promote")
    return big


def _probabilities(name: str) -> pa.Table:
    table = ds.dataset(WORK / name).to_table(columns=["lead_id", "probability"])
    return table.set_column(0, "lead_id", pc.cast(table["lead_id"], pa.large_string()))


def compare(reference_name: str, name: str) -> float:
    """Largest |probability difference| between two outputs, lead by lead."""
    reference, other = _probabilities(reference_name), _probabilities(name)
    joined = reference.join(other, "lead_id", right_suffix="_other")
    if joined.num_rows != reference.num_rows or other.num_rows != reference.num_rows:
        raise SystemExit(f"{name}: {other.num_rows:,} leads against {reference.num_rows:,}")
    difference = pc.abs(pc.subtract(joined["probability"], joined["probability_other"]))
    return float(pc.max(difference).as_py())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["pandas", "spark", "udf"])
    parser.add_argument(
        "--ledger",
        action="store_true",
        help="record every score in the ledger (SQLite in bench/.work) on both engines",
    )
    args = parser.parse_args()
    model = ["--model", "models/lead-scoring", "--ledger" if args.ledger else "--no-ledger"]
    print(f"{os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    for rows in args.rows:
        big = prepare(rows)
        outputs = {
            "pandas": f"ranked_{rows}.parquet",
            "spark": f"scored_{rows}.parquet",
            "udf": f"udf_{rows}.parquet",
        }
        for engine in args.engines:
            output = outputs[engine]
            if engine == "pandas":
                seconds, peak = leadml("score", big.name, "-o", output, *model)
            elif engine == "spark":
                spark = ["--engine", "spark", "--master", MASTER]
                seconds, peak = leadml("score", big.name, "-o", output, *model, *spark)
            else:
                seconds, peak = run([sys.executable, "-c", UDF_SCRIPT, big.name, output, MASTER])
            print(
                f"{rows:,} leads, {engine}: {seconds:.1f} s, {rows / seconds:,.0f} leads/s,"
                f" peak RSS {peak:,.0f} MiB (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        # After every engine ran, whatever the order they were asked in.
        for engine in args.engines:
            if engine != "pandas" and (WORK / outputs["pandas"]).exists():
                difference = compare(outputs["pandas"], outputs[engine])
                print(
                    f"  {engine}: largest difference to the pandas path: {difference:.3g}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
