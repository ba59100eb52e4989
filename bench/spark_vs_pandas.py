"""Batch scoring on Spark against the pandas path: leads per second and peak memory.

Usage:
    .venv/bin/python bench/spark_vs_pandas.py --rows 1000000 10000000 [--engines pandas spark udf]

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


def compare(name: str) -> float:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    reference = ds.dataset(WORK / "ranked.parquet").to_table(columns=["lead_id", "probability"])
    other = ds.dataset(WORK / name).to_table(columns=["lead_id", "probability"])
    joined = reference.join(other, "lead_id", right_suffix="_other")
    if joined.num_rows != reference.num_rows or other.num_rows != reference.num_rows:
        raise SystemExit(f"{name}: {other.num_rows:,} leads against {reference.num_rows:,}")
    difference = pc.abs(pc.subtract(joined["probability"], joined["probability_other"]))
    return float(pc.max(difference).as_py())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["pandas", "spark", "udf"])
    args = parser.parse_args()
    model = ["--model", "models/lead-scoring"]
    print(f"{os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    for rows in args.rows:
        big = prepare(rows)
        results: dict[str, tuple[float, float]] = {}
        for engine in args.engines:
            if engine == "pandas":
                results[engine] = leadml("score", big.name, "-o", "ranked.parquet", *model)
            elif engine == "spark":
                results[engine] = leadml(
                    "score",
                    big.name,
                    "-o",
                    "scored.parquet",
                    *model,
                    "--engine",
                    "spark",
                    "--master",
                    MASTER,
                )
            elif engine == "udf":
                results[engine] = run(
                    [sys.executable, "-c", UDF_SCRIPT, big.name, "udf.parquet", MASTER]
                )
            seconds, peak = results[engine]
            check = ""
            if engine != "pandas" and "pandas" in results:
                output = "scored.parquet" if engine == "spark" else "udf.parquet"
                check = f"; largest difference to pandas {compare(output):.3g}"
            print(
                f"{rows:,} leads, {engine}: {seconds:.1f} s, {rows / seconds:,.0f} leads/s,"
                f" peak RSS {peak:,.0f} MiB (load average {os.getloadavg()[0]:.1f}){check}",
                flush=True,
            )


if __name__ == "__main__":
    main()
