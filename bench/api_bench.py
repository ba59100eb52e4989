"""Throughput and latency of leadml's API against `mlflow models serve` and a trivial endpoint.

Usage: .venv/bin/python bench/api_bench.py [--rows 20000] [--connections 20] [--rounds 3]
       [--requests 500] [--seconds 15] [--batches 3] [--batch-leads 1000]

In one run, in bench/.work/api/: trains the demo model (as `make demo` does) and registers it as
champion, then starts four servers on 127.0.0.1, each uvicorn with one worker:

- leadml: `leadml serve` (anonymous access, no alias polling), the full response per lead;
- leadml, ledger off: the same with `LEADML_LEDGER=off`, to measure what the score ledger costs
  (`--ledger-only` runs just these two);
- MLflow: `mlflow models serve -m models:/NAME@champion --env-manager local` on the same model;
- trivial: a FastAPI endpoint that parses the JSON body and returns a constant.

Load: `--connections` keep-alive connections at once, each sending `--requests` single-lead
requests one after the other (or until `--seconds` pass); `--rounds` such rounds per server, the
servers taking turns so that a busy moment of the machine does not favour one of them (the
report gives the median round). Then `--batches` 1,000-lead batches per connection. The client is a minimal asyncio HTTP/1.1 client (no httpx overhead) in this process, so on a
2-core machine it takes one core and the server the other. All loopback, bounded in count and time.

Also times 1,000 leads scored in-process (validation, fast path, policy; with and without
reasons). Prints a markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WORK = Path(__file__).resolve().parent / ".work" / "api"
BIN = Path(sys.executable).parent
MODEL_NAME = "lead-scoring"
TRIVIAL_APP = """
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.post("/score")
async def score(request: Request) -> dict:
    await request.json()
    return {"probability": 0.5}
"""


# --------------------------------------------------------------------------- the model


def train_and_register(rows: int) -> tuple[str, Any]:
    """Demo leads -> train -> register -> champion, as `make demo` does; (tracking URI, result)."""
    from leadml import demo
    from leadml.registry import use_tracking
    from leadml.tracking import log_training, promote
    from leadml.train import TrainConfig, train_model

    WORK.mkdir(parents=True, exist_ok=True)
    for stale in ("mlflow.db", "app.db", "app-off.db"):
        (WORK / stale).unlink(missing_ok=True)
    tracking_uri = f"sqlite:///{WORK / 'mlflow.db'}"
    use_tracking(tracking_uri)
    frame = demo.generate_leads(rows, seed=42)
    config = TrainConfig(target=demo.TARGET, id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN)
    result = train_model(frame, config)
    log_training(result, model_name=MODEL_NAME, experiment="bench")
    promote(MODEL_NAME)
    return tracking_uri, result


def new_leads(schema: Any, n: int) -> list[dict[str, Any]]:
    """Fresh demo leads as a CRM sends them (JSON values), the id and the model's features."""
    from leadml import demo

    frame = demo.generate_leads(n, seed=7)
    columns = [demo.ID_COLUMN, *schema.feature_names]
    return list(json.loads(frame[columns].to_json(orient="records", date_format="iso")))


def mlflow_record(lead: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The lead typed as the MLflow signature wants it: numbers, or text."""
    from leadml.schema import Role

    record: dict[str, Any] = {}
    for spec in schema.features:
        value = lead.get(spec.name)
        if spec.role is Role.NUMERIC:
            record[spec.name] = value
        else:
            record[spec.name] = None if value is None else str(value)
    return record


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(name: str, command: list[str], env: dict[str, str], port: int) -> Server:
    log = WORK / f"{name}.log"
    process = subprocess.Popen(
        command,
        cwd=WORK,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() ends it and its workers only
    )
    return Server(name, port, process, log)


def wait_ready(server: Server, path: str, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s; see {server.log}")


@contextmanager
def servers(tracking_uri: str, ledger_only: bool = False) -> Iterator[dict[str, Server]]:
    (WORK / "trivial_app.py").write_text(TRIVIAL_APP)
    ports = {name: free_port() for name in ("leadml", "leadml-off", "mlflow", "trivial")}
    common = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # mlflow serve runs `uvicorn` by name: the venv's must come first.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started: dict[str, Server] = {}
    try:
        started["leadml"] = start(
            "leadml",
            [str(BIN / "leadml"), "serve", "--new-database", "--port", str(ports["leadml"])],
            {
                **common,
                "LEADML_ALLOW_ANONYMOUS": "true",
                "LEADML_MODEL_NAME": MODEL_NAME,
                "LEADML_DATABASE_URL": f"sqlite:///{WORK / 'app.db'}",
                "LEADML_RELOAD_INTERVAL_SECONDS": "0",
                "LEADML_MAX_BODY_BYTES": "20000000",
            },
            ports["leadml"],
        )
        # The same server with the score ledger off, measured in the same rounds.
        started["leadml-off"] = start(
            "leadml-off",
            [str(BIN / "leadml"), "serve", "--new-database", "--port", str(ports["leadml-off"])],
            {
                **common,
                "LEADML_ALLOW_ANONYMOUS": "true",
                "LEADML_MODEL_NAME": MODEL_NAME,
                "LEADML_DATABASE_URL": f"sqlite:///{WORK / 'app-off.db'}",
                "LEADML_RELOAD_INTERVAL_SECONDS": "0",
                "LEADML_MAX_BODY_BYTES": "20000000",
                "LEADML_LEDGER": "off",
            },
            ports["leadml-off"],
        )
        wait_ready(started["leadml"], "/readyz")
        wait_ready(started["leadml-off"], "/readyz")
        if ledger_only:
            yield started
            return
        started["mlflow"] = start(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{MODEL_NAME}@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(ports["mlflow"]),
            ],
            common,
            ports["mlflow"],
        )
        started["trivial"] = start(
            "trivial",
            [
                str(BIN / "uvicorn"),
                "trivial_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["trivial"]),
            ],
            common,
            ports["trivial"],
        )
        wait_ready(started["mlflow"], "/ping")
        wait_ready(started["trivial"], "/health")
        yield started
    finally:
        for server in started.values():
            server.stop()


# --------------------------------------------------------------------------- load


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def http_post(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if length is not None:
        return status, await reader.readexactly(length)
    if not chunked:
        raise RuntimeError("response without Content-Length or chunked encoding")
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def connection(
    port: int, requests: list[bytes], count: int, deadline: float, run: Run
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status, body = await read_response(reader)
            if status == 200:
                run.latencies.append(time.perf_counter() - started)
            else:
                run.errors += 1
                run.first_error = run.first_error or f"{status}: {body[:200]!r}"
    finally:
        writer.close()


async def load(
    name: str,
    port: int,
    requests: list[bytes],
    connections: int,
    each: int,
    seconds: float,
) -> Run:
    run = Run(name)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(connection(port, requests[c:] + requests[:c], each, deadline, run)
          for c in range(connections))
    )  # fmt: skip
    run.seconds = time.perf_counter() - started
    return run


# --------------------------------------------------------------------------- in-process


def time_in_process(tracking_uri: str, leads: list[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds for 1,000 leads through the API's own steps, in this process."""
    from api.policies import PolicyCache, ServingPolicyBook
    from api.serving import load_serving_model
    from leadml.settings import Settings
    from leadml.store import Store

    settings = Settings(
        tracking_uri=tracking_uri,
        model_name=MODEL_NAME,
        database_url=f"sqlite:///{WORK / 'app.db'}",
        allow_anonymous=True,
    )
    store = Store.from_url(settings.database_url)
    store.migrate()
    book = ServingPolicyBook(store, on_change=lambda: None)
    cache = PolicyCache(book, 5.0)
    model = load_serving_model(settings, book, cache)
    policy = cache.warm(model.scorer)
    body = json.dumps(leads).encode()
    records = model.lead_model.parse_many(json.loads(body))

    def median_ms(step: Any, repeat: int = 15) -> float:
        step()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    frame = pd.DataFrame(leads)
    figures = {
        "probabilities only (compiled fast path)": median_ms(
            lambda: model.predictor.predict_proba(records)
        ),
        "validate JSON + score + grade + percentile (no reasons)": median_ms(
            lambda: model.score(model.lead_model.parse_many(json.loads(body)), policy, False)
        ),
        "... with reasons (3 for, 3 against)": median_ms(
            lambda: model.score(model.lead_model.parse_many(json.loads(body)), policy, True),
            repeat=5,
        ),
        "for comparison: scikit-learn pipeline.predict_proba on a DataFrame": median_ms(
            lambda: model.scorer.pipeline.predict_proba(frame)
        ),
    }
    one = records[:1]
    figures["one lead, probabilities only (ms)"] = median_ms(
        lambda: model.predictor.predict_proba(one), repeat=200
    )
    figures["one lead, full score with reasons (ms)"] = median_ms(
        lambda: model.score(one, policy, True), repeat=200
    )
    store.close()
    return figures


# --------------------------------------------------------------------------- report


def row(run: Run) -> str:
    return (
        f"| {run.name} | {run.count:,} | {run.errors} | {run.per_second:,.1f} |"
        f" {run.percentile(50):.1f} | {run.percentile(99):.1f} |"
    )


def median_rate(runs: list[Run]) -> float:
    return statistics.median(run.per_second for run in runs)


def rounds_row(runs: list[Run]) -> str:
    merged = Run(runs[0].name, [t for run in runs for t in run.latencies])
    rates = ", ".join(f"{run.per_second:,.0f}" for run in runs)
    return (
        f"| {merged.name} | {merged.count:,} | {sum(run.errors for run in runs)} |"
        f" {median_rate(runs):,.1f} | {rates} | {merged.percentile(50):.1f} |"
        f" {merged.percentile(99):.1f} |"
    )


def count_ledger_rows(database: Path) -> int:
    """Rows in the score ledger of a bench server's SQLite database (after it stopped)."""
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM scored_leads").fetchone()[0])


#: The runs whose scores go to the server with the ledger on (the others: ledger off, MLflow,
#: the trivial endpoint, which keep no ledger).
LEDGER_ON_RUNS = ("leadml", "leadml, reasons=false")


def ledger_metrics(port: int) -> dict[str, float]:
    """The ledger's counters from a running server's /metrics: rows by outcome, seconds waited."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    figures: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("leadml_ledger_rows_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            figures[outcome] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("leadml_ledger_wait_seconds_total "):
            figures["wait_seconds"] = float(line.rsplit(" ", 1)[1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="demo leads to train on")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="single-lead rounds per server")
    parser.add_argument(
        "--requests",
        type=int,
        default=500,
        help="single leads per connection and round",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="time cap per load phase")
    parser.add_argument("--batches", type=int, default=3, help="batches per connection")
    parser.add_argument("--batch-leads", type=int, default=1000)
    parser.add_argument(
        "--ledger-only",
        action="store_true",
        help="only leadml with the score ledger on and off (no MLflow, no trivial endpoint)",
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    print(f"training the demo model on {args.rows:,} leads ...", flush=True)
    tracking_uri, result = train_and_register(args.rows)
    schema = result.schema
    leads = new_leads(schema, max(args.batch_leads, 200))
    singles = leads[:200]
    batch = leads[: args.batch_leads]
    single = [http_post("/v1/leads/score", json.dumps(lead).encode()) for lead in singles]
    fast = [
        http_post("/v1/leads/score?reasons=false", json.dumps(lead).encode()) for lead in singles
    ]
    requests = {
        "leadml": single,
        "leadml, ledger off": single,
        "leadml, reasons=false": fast,
        "leadml, reasons=false, ledger off": fast,
        "mlflow": [
            http_post(
                "/invocations",
                json.dumps({"dataframe_records": [mlflow_record(lead, schema)]}).encode(),
            )
            for lead in singles
        ],
        "trivial": [http_post("/score", json.dumps(lead).encode()) for lead in singles],
    }
    whole = [http_post("/v1/leads/score-batch", json.dumps(batch).encode())]
    whole_fast = [http_post("/v1/leads/score-batch?reasons=false", json.dumps(batch).encode())]
    batches = {
        "leadml": whole,
        "leadml, ledger off": whole,
        "leadml, reasons=false": whole_fast,
        "leadml, reasons=false, ledger off": whole_fast,
        "mlflow": [
            http_post(
                "/invocations",
                json.dumps(
                    {"dataframe_records": [mlflow_record(x, schema) for x in batch]}
                ).encode(),
            )
        ],
        "trivial": [http_post("/score", json.dumps(batch).encode())],
    }
    ports_of = {
        "leadml": "leadml",
        "leadml, reasons=false": "leadml",
        "leadml, ledger off": "leadml-off",
        "leadml, reasons=false, ledger off": "leadml-off",
        "mlflow": "mlflow",
    }
    ledger_pairs = (
        "leadml",
        "leadml, ledger off",
        "leadml, reasons=false",
        "leadml, reasons=false, ledger off",
    )
    names = ledger_pairs if args.ledger_only else ("trivial", *ledger_pairs, "mlflow")
    single_runs: dict[str, list[Run]] = {name: [] for name in names}
    batch_runs: dict[str, Run] = {}
    warm_up: dict[str, Run] = {}
    with servers(tracking_uri, args.ledger_only) as running:
        for name in names:  # warm up: first requests load lazily imported code
            port = running[ports_of.get(name, name)].port
            warm_up[name] = asyncio.run(load(name, port, requests[name], args.connections, 3, 10))
        # Rounds alternate the servers, so a busy moment of the machine hits all of them.
        for round_number in range(1, args.rounds + 1):
            for name in names:
                port = running[ports_of.get(name, name)].port
                print(f"round {round_number}: single leads -> {name} ...", flush=True)
                single_runs[name].append(
                    asyncio.run(
                        load(
                            name, port, requests[name], args.connections, args.requests,
                            args.seconds,
                        )
                    )
                )  # fmt: skip
        for name in names:
            port = running[ports_of.get(name, name)].port
            print(f"{args.batch_leads:,}-lead batches -> {name} ...", flush=True)
            batch_runs[name] = asyncio.run(
                load(
                    name,
                    port,
                    batches[name],
                    args.connections,
                    args.batches,
                    args.seconds,
                )
            )
        ledger_counts = ledger_metrics(running["leadml"].port)
    ledger_rows = count_ledger_rows(WORK / "app.db")  # the servers stopped: queue flushed
    # Every score the server with the ledger on answered, warm-up included: what it must hold.
    answered = sum(warm_up[n].count + sum(r.count for r in single_runs[n]) for n in LEDGER_ON_RUNS)
    answered += sum(batch_runs[n].count * args.batch_leads for n in LEDGER_ON_RUNS)
    dropped = ledger_counts.get("dropped_queue_full", 0.0) + ledger_counts.get(
        "dropped_write_error", 0.0
    )
    print("timing in-process scoring ...", flush=True)
    in_process = time_in_process(tracking_uri, batch)

    print()
    print(
        f"Model: {result.model_kind} ({result.calibration_method} calibration),"
        f" {len(schema.features)} features, trained on {args.rows:,} demo leads."
        f" Machine: {os.cpu_count()} cores, Python {platform.python_version()}."
    )
    print(
        f"\nSingle leads: {args.rounds} rounds; in each, {args.connections} connections x up to"
        f" {args.requests} requests (cap {args.seconds:.0f} s)\n"
    )
    print(
        "| server | requests | errors | requests/s (median of rounds) | rounds | p50 ms | p99 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for runs in single_runs.values():
        print(rounds_row(runs))
    print(
        f"\n{args.batch_leads:,}-lead batches: {args.connections} connections x up to"
        f" {args.batches} batches (cap {args.seconds:.0f} s)\n"
    )
    print("| server | batches | errors | batches/s | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in batch_runs.values():
        print(row(run))
    rate = {name: median_rate(runs) or float("nan") for name, runs in single_runs.items()}
    leadml_rate, fast_rate = rate["leadml"], rate["leadml, reasons=false"]
    print("\nThe score ledger (single-lead requests/s, ledger on / off, same rounds):\n")
    print(f"- with reasons: {leadml_rate / rate['leadml, ledger off']:.0%}"
          f"; reasons=false: {fast_rate / rate['leadml, reasons=false, ledger off']:.0%}"
          " (goal >= 90 %)")  # fmt: skip
    print(f"- ledger rows written by the server with the ledger on: {ledger_rows:,}; scores it"
          f" answered (warm-up, rounds and batches): {answered:,}; dropped by its writer"
          f" (/metrics): {dropped:,.0f}; requests waited for room {ledger_counts.get('wait_seconds', 0):,.1f} s"
          " in all")  # fmt: skip
    if ledger_rows != answered:
        print(f"- **LEDGER MISMATCH: {answered - ledger_rows:,} answered scores are not in the"
              " ledger**")  # fmt: skip
    if args.ledger_only:
        return
    mlflow_rate, trivial_rate = rate["mlflow"], rate["trivial"]
    print("\nRatios (single-lead requests/s):\n")
    print(f"- leadml / mlflow serve: {leadml_rate / mlflow_rate:,.0f}x"
          f" (reasons=false: {fast_rate / mlflow_rate:,.0f}x; goal >= 50x)")  # fmt: skip
    print(f"- leadml / trivial endpoint: {leadml_rate / trivial_rate:.0%}"
          f" (reasons=false: {fast_rate / trivial_rate:.0%}; goal >= 70 %)")  # fmt: skip
    print(f"\nIn-process, {args.batch_leads:,} leads (median ms):\n")
    for label, ms in in_process.items():
        print(f"- {label}: {ms:.2f}")
    for run in [
        *(r for runs in single_runs.values() for r in runs),
        *batch_runs.values(),
    ]:
        if run.errors:
            print(f"\n{run.name}: {run.errors} errors, first: {run.first_error}")


if __name__ == "__main__":
    main()
