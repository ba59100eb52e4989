"""The `leadml` command: parses options, calls the library, prints.

Errors a user can fix are one line on stderr and exit code 2, never a traceback; anything else
is one line and exit code 1 (LEADML_DEBUG=1 shows the traceback). Progress goes to stderr,
results (tables, sentences, the files written) to stdout, so `leadml threshold ... > out.txt`
keeps them. Options and settings that name files are checked before the work starts.
"""

from __future__ import annotations

import atexit
import gc
import os

# LightGBM's OpenMP threads spin while they wait for each other. When the cores are busy with
# other work, a spinning thread holds up the one that has work: on the shared 2-core machine a
# two-thread fit of 200,000 leads took 7 times as long as one thread (17.9 s against 2.4 s), and
# with passive waiting as long as one thread (4.9 s against 4.6 s). The OpenMP runtime reads this
# once, when it is loaded (by the imports below), so it is set first; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The libraries below leave about 550,000 objects that live as long as the process. Python's
# collector walks all of them in every full collection: five of them while importing, more while
# training, and two more at exit, when the interpreter shuts down (3 s after `train` printed its
# last line, measured at load 5). They are imported with the collector off and then frozen, out
# of its way; the collector keeps collecting what the command itself leaves.
_COLLECTING = gc.isenabled()
gc.disable()
# ruff: noqa: E402 (imported after the collector is switched off, on purpose)
import getpass
import importlib
import json
import logging
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.exceptions import TyperException

from leadml.batch import DEFAULT_CHUNK_ROWS, for_people, score_file
from leadml.data import (
    check_output_path,
    is_database_url,
    load_leads,
    outcome_leads,
    readable_file,
    write_leads,
)
from leadml.demo import check_variants, write_demo_leads
from leadml.errors import DataError, ExitCode, LeadmlError, ModelError, SettingsError
from leadml.evaluate import holdout_metrics
from leadml.explain import Explainer
from leadml.monitor import (
    ACT,
    MIN_JUDGED,
    MIN_LEADS,
    ContractReport,
    MonitorReport,
    monitor_outcomes,
)
from leadml.outcomes import ColumnMapping, events_from_frame
from leadml.policy import (
    ActivePolicy,
    BusinessFigures,
    Holdout,
    PolicyBook,
    load_holdout,
    load_holdout_leads,
    policy_from_options,
    preview_policy,
)
from leadml.registry import (
    is_mlflow_uri,
    load_bundle_from_mlflow,
    open_tracking_store,
)
from leadml.retrain import (
    GateConfig,
    RetrainConfig,
    champion_from_bundle,
    retrain_from_ledger,
    retraining_outcomes,
)
from leadml.schema import DATE_ORDERS, DEFAULT_PLACEHOLDERS
from leadml.scoring import Scorer, crm_import_frame
from leadml.settings import (
    TRACKING_SETTING,
    Settings,
    bound_mlflow_http_waits,
    check_local_store,
    check_variable_names,
    describe_settings_error,
    load_settings,
    local_store_path,
)
from leadml.spark import check_paths as check_spark_paths
from leadml.spark import require_spark, score_with_spark
from leadml.spreadsheet import write_csv
from leadml.store import OutcomeEventIn, ScoredLeadIn, Store
from leadml.threshold import POLICY_TYPES, check_exploration_share, exploration_sentence
from leadml.tracking import (
    CHAMPION,
    export_model,
    log_retrain_report,
    log_training,
    move_champion,
)
from leadml.tracking import promote as promote_model
from leadml.tracking import rollback as rollback_champion
from leadml.train import CROSS_VALIDATING, TrainConfig, check_training_input, train_model

gc.freeze()
# Python holds a full collection back until the objects that survived the last one have grown
# by a quarter; frozen objects do not count, so that rule starts from none and the modules a
# command imports later (numba, matplotlib, MLflow's pyfunc: about 580) set off five full
# collections during `train` (0.7-0.9 s of CPU at load 3). One full collection at most every
# 100 collections of the middle generation instead of every 10 leaves none there; the two
# younger generations, which find most of the garbage, are collected as often as before.
FULL_COLLECTION_EVERY = 100
_YOUNGEST, _MIDDLE, _ = gc.get_threshold()
gc.set_threshold(_YOUNGEST, _MIDDLE, FULL_COLLECTION_EVERY)
if _COLLECTING:
    gc.enable()
# At exit, what is left is freed as the modules are torn down, without walking it first. What
# must be written (MLflow's runs, the files, the databases) is written and closed before a
# command returns; the collector finds only cycles, whose finalizers Python does not promise
# to run at exit anyway.
atexit.register(gc.freeze)

app = typer.Typer(
    name="leadml",
    help="Lead scoring that marketing and sales both accept.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
#: Progress and warnings while working.
console = Console(stderr=True, highlight=False)
#: Results: what the command found or did.
out = Console(highlight=False)
DEBUG_VARIABLE = "LEADML_DEBUG"
DATABASE_SETTING = "the app database URL (--database-url or LEADML_DATABASE_URL)"


def _settings(tracking_uri: str | None = None) -> Settings:
    settings = load_settings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
    return settings


def _writable(path: Path, option: str) -> Path:
    """Refuse, before any work, an output path that cannot be written."""
    if path.is_dir():
        raise DataError(f"cannot write {option} {path}: it is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise DataError(
            f"cannot write {option} {path}: the folder {folder} does not exist;"
            " create it first or choose another path"
        )
    if not os.access(folder, os.W_OK):
        raise DataError(f"cannot write {option} {path}: the folder {folder} is not writable")
    return path


def _model_source(settings: Settings, model: str | None) -> str:
    """The model to open; for an MLflow source, the tracking store is checked first (it must
    exist: reading a model never creates a store)."""
    source = model or _default_model(settings)
    if is_mlflow_uri(source):
        open_tracking_store(settings.tracking_uri, create=False)
    return source


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    ),
]
ModelName = Annotated[
    str | None, typer.Option("--model-name", help="Registered model name (default lead-scoring).")
]


@app.command("demo-data")
def demo_data(
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet file to write.")],
    rows: Annotated[
        int, typer.Option("--rows", help="Number of leads (100 to 10,000,000).")
    ] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same leads.")] = 0,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help=(
                "A variation of the export (repeatable): post-contact (a sales call's length"
                " and a touches count, known only after contact), day-first (dates written"
                " 26-02-2023). See leadml.demo.VARIANTS."
            ),
        ),
    ] = None,
) -> None:
    """Write synthetic leads with a known ground truth (see leadml.demo)."""

    variants = check_variants(variant or ())
    _writable(output, "-o")
    with console.status(f"writing {rows:,} demo leads"):
        path = write_demo_leads(output, rows, seed=seed, variants=variants)
    shown = f" ({', '.join(variants)})" if variants else ""
    out.print(f"wrote {rows:,} demo leads{shown} to {path}")


@app.command()
def train(
    data: Annotated[
        str, typer.Option("--data", help="CSV or Parquet file, or an SQLAlchemy database URL.")
    ],
    target: Annotated[str, typer.Option("--target", help="Outcome column, e.g. Converted.")],
    positive: Annotated[
        str | None,
        typer.Option(
            "--positive", help="Value of the target that means converted (e.g. 1, yes, won)."
        ),
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="SQL query to run when --data is a database URL.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Column that identifies a lead (never a feature)."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="Creation date column: hold out the most recent 20 %."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Column never to use (repeatable).")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep", help="Column to keep even if the leakage guard flags it (repeatable)."
        ),
    ] = None,
    placeholder: Annotated[
        list[str] | None,
        typer.Option("--placeholder", help="Extra value meaning 'not answered' (repeatable)."),
    ] = None,
    date_order: Annotated[
        str,
        typer.Option(
            "--date-order",
            help=(
                "How dates such as 01-02-2018 are read, for the whole column: auto (day-first"
                " when some value such as 26-02-2018 can only be day-first), day-first or"
                " month-first. Kept with the model, so scoring reads them the same way."
            ),
        ),
    ] = "auto",
    day_first: Annotated[
        bool, typer.Option("--day-first", help="Same as --date-order day-first.")
    ] = False,
    model_name: ModelName = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write the machine-readable report here.")
    ] = None,
    tracking_uri: TrackingUri = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for splits and models.")] = 0,
) -> None:
    """Learn from historical outcomes; log the run to MLflow and register it as challenger."""

    if date_order not in DATE_ORDERS:
        raise DataError(
            f"--date-order {date_order!r} is unknown; use one of {', '.join(DATE_ORDERS)}"
        )
    if day_first and date_order == "month-first":
        raise DataError("--day-first contradicts --date-order month-first; give one of them")
    if day_first:
        date_order = "day-first"
    settings = _settings(tracking_uri)
    if report_json is not None:
        _writable(report_json, "--report-json")
    check_local_store(
        settings.tracking_uri, what="MLflow tracking store", setting=TRACKING_SETTING, create=True
    )
    name = model_name or settings.model_name
    config = TrainConfig(
        target=target,
        positive=positive,
        id_column=id_column,
        time_column=time_column,
        exclude=tuple(exclude or ()),
        keep=tuple(keep or ()),
        placeholders=(*DEFAULT_PLACEHOLDERS, *(placeholder or ())),
        date_order=date_order,
        seed=seed,
    )
    with console.status("reading leads"):
        frame = load_leads(data, query)
    check_training_input(frame, config)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracking-store") as beside:
        store = _TrainingStore(settings.tracking_uri, beside)
        console.print(f"read {len(frame):,} leads with {frame.shape[1]} columns from {data}")
        with console.status("training") as status:

            def progress(message: str) -> None:
                if message.startswith(CROSS_VALIDATING):
                    store.start()
                store.raise_if_failed()  # a store that cannot be opened stops the training now
                console.print(f"  {message}")
                status.update(message)

            result = train_model(frame, config, progress=progress)
            status.update("opening the MLflow tracking store")
            if store.result() is not None:
                console.print(f"created a new MLflow tracking store for {settings.tracking_uri}")
            status.update("logging to MLflow")
            logged = log_training(
                result, model_name=name, experiment=settings.experiment, data_source=data
            )
    _print_training(result.report(), logged.version, name, settings.tracking_uri)
    if report_json is not None:
        report = result.report() | {
            "model_name": name,
            "model_version": logged.version,
            "run_id": logged.run_id,
        }
        report_json.write_text(json.dumps(report, indent=2, default=float))
        out.print(f"report written to {report_json}")


class _TrainingStore:
    """The tracking store for `train`, opened (a local one created if new) beside the training.

    A server is asked at once, before the long part, so one that is down is one line before any
    work. A new local SQLite store runs MLflow's migrations: seconds of mostly waiting for the
    disk (3 s of CPU, 9 s wall measured), which the training need not wait for; its folder was
    checked already. They start with the cross-validation (`start`), where the training mostly
    waits for LightGBM: beside the schema and the leakage guard their Python took the GIL from
    them (1.2-1.6 s of work took 4.4-5.3 s beside the migrations, measured under load 3.5).
    """

    def __init__(self, tracking_uri: str, beside: ThreadPoolExecutor) -> None:
        self._tracking_uri = tracking_uri
        self._beside = beside
        self._opened: Future[Path | None] | None = None
        if local_store_path(tracking_uri) is None:
            self._opened = Future()
            self._opened.set_result(open_tracking_store(tracking_uri, create=True))

    def start(self) -> None:
        if self._opened is None:
            self._opened = self._beside.submit(open_tracking_store, self._tracking_uri, create=True)

    def raise_if_failed(self) -> None:
        if self._opened is not None and self._opened.done():
            self._opened.result()

    def result(self) -> Path | None:
        """The path of the store this run created, once it is open (started now if not yet)."""
        self.start()
        assert self._opened is not None
        return self._opened.result()


def _print_training(report: dict, version: str, name: str, tracking_uri: str) -> None:
    table = Table(title="holdout", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile"):
        table.add_row(key, f"{report['metrics'][key]:.4f}")
    out.print(table)
    out.print("what converts (share of the model's attention on the holdout):")
    for trait in report["traits"][:5]:
        out.print(f"  {trait['share']:>4.0%}  {trait['summary']}")
    for item in report["columns_excluded"]:
        out.print(f"  excluded {item['column']!r} ({item['reason']}): {item['detail']}")
    for warning in report["warnings"]:
        out.print(f"  warning: {warning}")
    out.print(
        f"registered {name} v{version} as challenger in {tracking_uri};"
        f" `leadml promote` makes it champion"
    )


@app.command()
def promote(
    model_name: ModelName = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even if it is worse.")] = False,
    metric: Annotated[
        str, typer.Option("--metric", help="Metric compared on the champion's holdout.")
    ] = "roc_auc",
    tolerance: Annotated[
        float,
        typer.Option("--tolerance", min=0.0, help="How much worse the challenger may be (>= 0)."),
    ] = 0.0,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="Export the champion here (default models/)."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Make the challenger champion if it is at least as good, and export it to models/.

    Exits with code 3 when the gate keeps the champion, so a scheduler can tell."""

    allowed = set(holdout_metrics(np.array([0, 1]), np.array([0.2, 0.8])))
    if metric not in allowed - {"n", "base_rate"}:
        raise DataError(
            f"--metric {metric!r} is unknown; use one of roc_auc, pr_auc, brier, log_loss, ece"
        )
    settings = _settings(tracking_uri)
    open_tracking_store(settings.tracking_uri, create=False)
    name = model_name or settings.model_name
    decision = promote_model(name, force=force, metric=metric, tolerance=tolerance)
    verb = "promoted" if decision.promoted else "not promoted"
    out.print(f"{name} v{decision.version} {verb}: {decision.reason}")
    if decision.promoted:
        folder = export_model(f"models:/{name}@{CHAMPION}", models_dir or settings.models_dir)
        out.print(f"exported the champion to {folder}")
    elif decision.previous != decision.version:  # the gate kept the champion
        raise typer.Exit(ExitCode.GATE_REFUSED)


@app.command()
def score(
    path: Annotated[
        str,
        typer.Argument(
            help="CSV or Parquet file of leads (with --engine spark: any URI Spark reads)."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Ranked CSV or Parquet to write (Spark: a Parquet folder)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", help="models/<name> folder or MLflow URI (default: the champion)."),
    ] = None,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            min=1,
            help="Leads read and scored at a time (default 100,000; Spark: 20,000 a batch).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="pandas (one machine, ranked CSV or Parquet) or spark (Parquet, any Spark master).",
        ),
    ] = "pandas",
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            help="Spark master URL, e.g. spark://host:7077 or yarn (default local[*];"
            " under spark-submit, its --master).",
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            "--conf",
            help="Spark setting KEY=VALUE, e.g. spark.executor.memory=4g (repeatable).",
        ),
    ] = None,
    reasons: Annotated[
        bool,
        typer.Option("--reasons", help="Add the top reasons for and against each lead (slower)."),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Where the MQL policy and the score ledger are kept (default"
            " $LEADML_DATABASE_URL).",
        ),
    ] = None,
    ledger: Annotated[
        bool | None,
        typer.Option(
            "--ledger/--no-ledger",
            help="Record every score in the ledger (default: on unless LEADML_LEDGER=off).",
        ),
    ] = None,
    crm_csv: Annotated[
        Path | None,
        typer.Option(
            "--crm-csv",
            help="Also write a CSV shaped for a CRM import: lead id, score, grade, MQL flag,"
            " top reasons, model and policy version (computes the reasons).",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score a file of leads and write them ranked, highest probability first, with each lead's
    grade and MQL decision under the MQL policy in force; every score goes to the ledger."""

    if engine not in ("pandas", "spark"):
        raise DataError(f"--engine {engine!r} is unknown; use pandas or spark")
    if engine == "pandas" and (master or spark_conf):
        raise DataError("--master and --conf are Spark settings; add --engine spark")
    if engine == "spark":
        require_spark()
        check_spark_paths(path, output)
    if engine == "spark" and (reasons or crm_csv is not None):
        option = "--reasons" if reasons else "--crm-csv"
        raise DataError(
            f"{option} is not available with --engine spark; score with --engine pandas"
        )
    # Text, not Path: a URI such as s3a://bucket/leads must reach Spark as written.
    output_path = Path(output)
    if engine == "pandas":
        check_output_path(output_path)
        source = readable_file(path)
        _writable(output_path, "-o")
        if output_path.resolve() == source.resolve():
            raise DataError(
                f"-o {output} is the file being scored; write the ranked list elsewhere"
            )
    if crm_csv is not None:
        if crm_csv.suffix.lower() != ".csv":
            raise DataError(f"cannot write {crm_csv}: --crm-csv needs a .csv file name")
        _writable(crm_csv, "--crm-csv")
        if crm_csv.resolve() in (Path(path).resolve(), output_path.resolve()):
            raise DataError(
                f"--crm-csv {crm_csv} is also the input or -o; give the CRM file its own name"
            )
    settings = _settings(tracking_uri)
    keep_ledger = settings.ledger if ledger is None else ledger
    url = database_url or settings.database_url
    scorer = Scorer.load(_model_source(settings, model), tracking_uri=settings.tracking_uri)
    with _policy_book(url) as book:
        policy = book.active(scorer)
    if engine == "spark":
        _score_on_spark(
            path,
            output,
            scorer,
            policy,
            master,
            spark_conf,
            chunk_rows,
            url if keep_ledger else None,
        )
        return
    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    explainer = Explainer.for_scorer(scorer) if reasons or crm_csv is not None else None
    recorder = _LedgerRecorder(url if keep_ledger else None)

    def record(chunk: pd.DataFrame, scored: pd.DataFrame) -> None:
        recorder.record(lambda: _ledger_rows(scorer, policy.version, chunk, scored))

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # a bar left behind would be a second line next to an error
    ) as bar:
        task = bar.add_task("scoring", total=None)
        try:
            ranked = score_file(
                Path(path),
                scorer,
                policy,
                chunk_rows=chunk_rows,
                explainer=explainer,
                on_chunk=lambda done: bar.update(
                    task, completed=done, description=f"scored {done:,} leads"
                ),
                on_scored=record,
            )
        finally:
            recorder.close()
    if crm_csv is not None:
        crm = crm_import_frame(
            ranked,
            id_column=scorer.id_column or "row",
            model_version=scorer.info.version,
            policy_version=policy.version,
        )
        write_csv(crm, crm_csv)  # text cells that a spreadsheet would run are neutralised
    if not reasons:  # computed for the CRM file only
        ranked = ranked.drop(columns=["reasons_for", "reasons_against"], errors="ignore")
    if output_path.suffix.lower() == ".csv":
        # Read by people: rounded probabilities, yes/no; formula-like text cells neutralised.
        write_csv(for_people(ranked), output_path)
    else:
        write_leads(ranked, output_path)
    out.print(
        f"scored {len(ranked):,} leads with {scorer.info.name} v{scorer.info.version or '?'};"
        f" {int(ranked['is_mql'].sum()):,} are MQLs under {_policy_label(policy.version)};"
        f" ranked list written to {output}"
        + (f"; CRM import file written to {crm_csv}" if crm_csv is not None else "")
        + _exploration_summary(ranked, policy)
        + recorder.summary()
    )


def _exploration_summary(ranked: pd.DataFrame, policy: ActivePolicy) -> str:
    if "exploration" not in ranked.columns:
        return ""
    return (
        f"; {int(ranked['exploration'].sum()):,} leads below the line drawn for sales to explore"
        f" ({policy.exploration_share:.0%} of them; column 'exploration')"
    )


def _score_on_spark(
    source: str,
    output: str,
    scorer: Scorer,
    policy: ActivePolicy,
    master: str | None,
    spark_conf: list[str] | None,
    chunk_rows: int | None,
    ledger_url: str | None,
) -> None:
    conf: dict[str, str] = {}
    for item in spark_conf or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(
                f"--conf {item!r} is not KEY=VALUE; e.g. --conf spark.executor.memory=4g"
            )
        conf[key.strip()] = value.strip()
    if chunk_rows is not None:
        conf["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(chunk_rows)
    console.print(f"scoring {source} on Spark ({master or 'default master'})")
    recorder = _LedgerRecorder(ledger_url)

    def record(batch: list[dict[str, Any]]) -> None:
        recorder.record(lambda: _spark_ledger_rows(scorer, batch))

    try:
        done = score_with_spark(
            source,
            output,
            scorer,
            policy,
            master=master,
            conf=conf,
            on_ledger_batch=record if ledger_url is not None else None,
        )
    finally:
        recorder.close()
    out.print(
        f"scored {done.leads:,} leads on Spark ({done.master}) with {scorer.info.name}"
        f" v{scorer.info.version or '?'}; {done.mqls:,} are MQLs under"
        f" {_policy_label(policy.version)}; Parquet written to {output}" + recorder.summary()
    )


class _LedgerRecorder:
    """The score ledger of one `leadml score` run, on either engine.

    The app database is opened at the first scored batch, so an input refused before scoring
    leaves no new database behind; `url` None means the ledger is off.
    """

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.recorded = 0
        self._store: Store | None = None

    def record(self, rows: Callable[[], list[ScoredLeadIn]]) -> None:
        if self.url is None:
            return
        if self._store is None:
            self._store = _open_app_database(self.url)
        self.recorded += self._store.record_scores(rows())

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def summary(self) -> str:
        if self.url is None:
            return "; ledger off"
        return f"; {self.recorded:,} scores recorded in the ledger"


def _spark_ledger_rows(scorer: Scorer, batch: list[dict[str, Any]]) -> list[ScoredLeadIn]:
    """Ledger rows of leads scored on Spark, as `iter_ledger_batches` hands them back."""
    id_column = scorer.id_column or ""
    return [
        _ledger_row(
            scorer,
            lead_id=lead.get(id_column),
            model_version=str(lead["model_version"] or ""),
            policy_version=lead["policy_version"],
            scored=(lead["probability"], lead["score"], lead["grade"], lead["is_mql"]),
            features=lead["features"],
            handover=(lead.get("exploration", False), lead.get("selection_probability")),
        )
        for lead in batch
    ]


def _ledger_row(
    scorer: Scorer,
    *,
    lead_id: Any,
    model_version: str,
    policy_version: int | None,
    scored: tuple[Any, Any, Any, Any],
    features: dict[str, Any],
    reasons: dict[str, Any] | None = None,
    handover: tuple[Any, Any] = (False, None),
) -> ScoredLeadIn:
    """One lead scored by `leadml score`; `scored` is (probability, score, grade, is_mql),
    `handover` (exploration, selection probability; None without exploration)."""
    probability, score, grade, is_mql = scored
    exploration, selection_probability = handover
    return ScoredLeadIn(
        lead_id=None if lead_id is None or pd.isna(lead_id) else str(lead_id),
        model_name=scorer.info.name,
        model_version=model_version,
        policy_version=policy_version,
        probability=float(probability),
        score=float(score),
        grade=str(grade),
        is_mql=bool(is_mql),
        features=features,
        source="cli",
        reasons=reasons,
        exploration=bool(exploration),
        selection_probability=(
            None if selection_probability is None else float(selection_probability)
        ),
    )


def _ledger_rows(
    scorer: Scorer,
    policy_version: int | None,
    chunk: pd.DataFrame,
    scored: pd.DataFrame,
) -> list[ScoredLeadIn]:
    """Ledger rows of one scored chunk: the leads as read (the features as scored), the reasons
    given when they were computed, and the exploration draw under an exploration share."""
    n = len(scored)
    features: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in chunk.reset_index(drop=True).to_dict(orient="records")
    ]
    id_column = scorer.id_column
    ids = scored[id_column].tolist() if id_column and id_column in scored.columns else [None] * n
    outputs = zip(
        scored["probability"], scored["score"], scored["grade"], scored["is_mql"], strict=True
    )
    reasons: list[dict[str, Any] | None] = (
        [
            {"for": for_, "against": against}
            for for_, against in zip(scored["reasons_for"], scored["reasons_against"], strict=True)
        ]
        if "reasons_for" in scored.columns
        else [None] * n
    )
    handovers = (
        list(zip(scored["exploration"], scored["selection_probability"], strict=True))
        if "exploration" in scored.columns
        else [(False, None)] * n
    )
    return [
        _ledger_row(
            scorer,
            lead_id=ids[i],
            model_version=scorer.info.version or "",
            policy_version=policy_version,
            scored=output,
            features=features[i],
            reasons=reasons[i],
            handover=handovers[i],
        )
        for i, output in enumerate(outputs)
    ]


def _policy_label(version: int | None) -> str:
    return f"MQL policy v{version}" if version is not None else "the default MQL policy"


def _open_app_database(database_url: str) -> Store:
    """The app database for writing, migrated; a missing SQLite file (in a folder that exists)
    is created, and said so."""
    missing = check_local_store(
        database_url, what="app database", setting=DATABASE_SETTING, create=True
    )
    if missing is not None:
        console.print(f"creating a new app database at {missing}")
    store = Store.from_url(database_url)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


@contextmanager
def _policy_book(
    database_url: str, holdout: Holdout | None = None, *, create: bool = False
) -> Iterator[PolicyBook]:
    """The MQL policies in the app database (migrated first), closed afterwards; `holdout`
    saves reading the model's holdout again when the caller has it.

    A SQLite database's folder must exist. A missing SQLite file is created only when `create`
    (the command stores something); a reader finds no policy in it, so it reads an empty
    in-memory store instead of leaving an empty file behind."""
    missing = check_local_store(
        database_url, what="app database", setting=DATABASE_SETTING, create=True
    )
    if missing is not None and create:
        console.print(f"creating a new app database at {missing}")
    elif missing is not None:
        database_url = "sqlite://"
    store = Store.from_url(database_url)
    try:
        store.migrate()
        yield PolicyBook(store, holdout_loader=None if holdout is None else lambda _: holdout)
    finally:
        store.close()


def _default_model(settings: Settings) -> str:
    exported = settings.models_dir / settings.model_name
    if settings.model_uri:
        return settings.model_uri
    if exported.is_dir():
        return str(exported)
    return settings.serving_uri


# --------------------------------------------------------------------------- threshold (MQL line)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _share(value: float | None, decimals: int = 1) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return f"{value * 100:.{decimals}f} %"


def _amount(value: float | None, decimals: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{decimals}f}"


def _print_threshold_rows(rows: pd.DataFrame, context: dict) -> None:
    weekly = context["leads_per_week"] is not None
    valued = context["deal_value"] is not None and context["cost_per_contact"] is not None
    table = Table(title="cut-offs around the MQL line (holdout)", show_header=True)
    for name in ("", "cut-off", "MQL share", "precision", "recall", "lift"):
        table.add_column(name, justify="right")
    if weekly:
        table.add_column("MQLs/week", justify="right")
        table.add_column("conv./week", justify="right")
    if valued:
        table.add_column("value/lead", justify="right")
    for row in rows.to_dict(orient="records"):
        cells = [
            ">" if row["chosen"] else "",
            f"{row['cutoff']:.4f}",
            _share(row["mql_share"]),
            _share(row["precision"]),
            _share(row["recall"]),
            _amount(row["lift"], 2),
        ]
        if weekly:
            cells += [_amount(row["mqls_per_week"]), _amount(row["expected_conversions_per_week"])]
        if valued:
            cells.append(_amount(row["expected_value_per_lead"], 2))
        table.add_row(*cells, style="bold" if row["chosen"] else None)
    out.print(table)


def _print_intervals(cutoff: float, expected: dict) -> None:
    """Precision, recall and MQL volume at the cut-off, with their bootstrap intervals."""
    out.print(
        f"at the cut-off {cutoff:.4f}, {expected['level']:.0%} bootstrap intervals"
        f" ({expected['n_holdout']:,} holdout leads, base rate {_share(expected['base_rate'])}):"
    )
    for name, label in (
        ("precision", "precision"),
        ("recall", "recall"),
        ("mql_share", "MQL share"),
    ):
        low, high = expected["intervals"][name]
        out.print(f"  {label:<9} {_share(expected[name])} ({_share(low)} to {_share(high)})")
    weekly = expected["context"]["leads_per_week"]
    if weekly is not None:
        low, high = (share * weekly for share in expected["intervals"]["mql_share"])
        out.print(
            f"  MQLs a week {expected['mqls_per_week']:,.0f} ({low:,.0f} to {high:,.0f})"
            f" of {weekly:,.0f} leads"
        )


def _print_grades(grades: pd.DataFrame) -> None:
    table = Table(title="grades (holdout)", show_header=True)
    for name in ("grade", "probability", "leads", "conversion rate", "of conversions"):
        table.add_column(name, justify="right")
    for row in grades.to_dict(orient="records"):
        table.add_row(
            str(row["grade"]),
            f"{row['lower_bound']:.3f} to {row['upper_bound']:.3f}",
            _share(row["share_of_leads"]),
            _share(row["conversion_rate"]),
            _share(row["share_of_conversions"]),
        )
    out.print(table)


@app.command()
def threshold(
    policy: Annotated[
        str,
        typer.Option("--policy", help=f"One of: {', '.join(POLICY_TYPES)}."),
    ],
    per_week: Annotated[
        float | None, typer.Option("--per-week", help="capacity: leads sales can work a week.")
    ] = None,
    leads_per_week: Annotated[
        float | None,
        typer.Option("--leads-per-week", help="New leads a week (capacity; weekly figures)."),
    ] = None,
    min_precision: Annotated[
        float | None,
        typer.Option("--min-precision", help="min_precision: share of MQLs to convert, e.g. 0.6."),
    ] = None,
    min_recall: Annotated[
        float | None,
        typer.Option("--min-recall", help="min_recall: share of conversions to capture, e.g. 0.8."),
    ] = None,
    deal_value: Annotated[
        float | None, typer.Option("--deal-value", help="max_value: what a won deal is worth.")
    ] = None,
    cost_per_contact: Annotated[
        float | None,
        typer.Option("--cost-per-contact", help="max_value: what working one lead costs."),
    ] = None,
    basis: Annotated[
        str | None,
        typer.Option("--basis", help="max_value: observed (default) or calibrated."),
    ] = None,
    cutoff: Annotated[
        float | None, typer.Option("--cutoff", help="fixed: the probability cut-off.")
    ] = None,
    exploration_share: Annotated[
        float,
        typer.Option(
            "--exploration-share",
            help="Share of the leads below the line handed to sales anyway, at random (e.g. 0.05).",
        ),
    ] = 0.0,
    model: Annotated[
        str | None,
        typer.Option("--model", help="models/<name> folder or MLflow URI (default: the champion)."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Store the policy as the model's new MQL policy.")
    ] = False,
    set_by: Annotated[
        str | None, typer.Option("--set-by", help="Who sets it (default: your OS user).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the history.")] = "",
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="App database (default: $LEADML_DATABASE_URL)."),
    ] = None,
    model_name: ModelName = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Resolve an MQL policy on the model's holdout: the table around it, intervals, grades."""

    given = {
        "per_week": per_week,
        "leads_per_week": leads_per_week,
        "min_precision": min_precision,
        "min_recall": min_recall,
        "deal_value": deal_value,
        "cost_per_contact": cost_per_contact,
        "cutoff": cutoff,
    }
    chosen = policy_from_options(policy, given, basis=basis)
    check_exploration_share(exploration_share)
    settings = _settings(tracking_uri)
    if apply:
        check_local_store(
            database_url or settings.database_url,
            what="app database",
            setting=DATABASE_SETTING,
            create=True,
        )
    if model_name:
        settings = settings.model_copy(update={"model_name": model_name})
    scorer = Scorer.load(_model_source(settings, model), tracking_uri=settings.tracking_uri)
    holdout = load_holdout(scorer, tracking_uri=settings.tracking_uri)
    context = BusinessFigures(leads_per_week, deal_value, cost_per_contact)
    preview = preview_policy(holdout, chosen, context=context)
    out.print(
        f"{scorer.info.name} v{scorer.info.version or '?'}: {chosen.kind} policy"
        f" {json.dumps({k: v for k, v in chosen.to_dict().items() if k != 'kind'})}"
    )
    _print_threshold_rows(preview.rows, preview.context.to_dict())
    _print_intervals(preview.cutoff, preview.expected())
    _print_grades(preview.grades)
    out.print(preview.sentence)
    if exploration_share > 0:
        out.print(
            exploration_sentence(
                exploration_share, preview.resolution.mql_share, preview.context.leads_per_week
            )
        )
    if not apply:
        out.print("nothing stored; add --apply to make it the MQL policy")
        return
    with _policy_book(database_url or settings.database_url, holdout, create=True) as book:
        record = book.set(
            scorer,
            chosen,
            set_by=set_by or _os_user(),
            reason=reason,
            leads_per_week=leads_per_week,
            deal_value=deal_value,
            cost_per_contact=cost_per_contact,
            exploration_share=exploration_share,
        )
    out.print(
        f"stored as MQL policy version {record.version} of {record.model_name}"
        f" (cut-off {record.cutoff:.4f}, set by {record.set_by})"
    )


#: How long uvicorn waits for a worker's health answer before it replaces the worker.
WORKER_HEALTHCHECK_SECONDS = 120


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on (1 to 65535).")
    ] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes; an admin reload or a policy change reaches all within 1 s.",
        ),
    ] = 1,
    new_database: Annotated[
        bool,
        typer.Option(
            "--new-database",
            help="Start on a new, empty SQLite app database where LEADML_DATABASE_URL names a"
            " file that does not exist yet. Without it that is refused: a misspelt file name"
            " would otherwise serve without the policies, ledger and outcomes.",
        ),
    ] = False,
) -> None:
    """Serve the scoring API on the model the settings (LEADML_*) point to."""
    settings = _settings()
    # The api package is found at run time, as uvicorn would: leadml never imports it statically.
    # Its access check and a look for the model run here first, so a wrong setting is one line.
    # Then the address, the app database and the model: what a worker would fail on at start.
    importlib.import_module("api.main").check_serving(settings, host)
    _check_listen_address(host, port)
    missing_database = _check_app_database(settings.database_url)
    _check_model_source(settings)
    if missing_database is not None and not new_database:
        raise SettingsError(
            f"there is no app database at {missing_database}; correct LEADML_DATABASE_URL,"
            " or pass --new-database to start on a new, empty one"
        )
    if missing_database is not None:
        _open_app_database(settings.database_url).close()
    # Several workers share a folder: reloads and policy changes reach all, /metrics counts all.
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving on http://{shown}:{port} (pages at /, API docs at /docs)")
    # uvicorn (with its reloader's file watcher) is imported in the functions that serve: every
    # other command, `--help` included, would pay for it at start.
    import uvicorn

    with importlib.import_module("api.workers").worker_environment(workers):
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            # Not the socket bound by the check (uvicorn's `fd` takes any socket for a Unix one:
            # asyncio then leaves Nagle's algorithm on and every keep-alive answer waits ~40 ms).
            host=host,
            port=port,
            workers=workers,
            # A worker importing the ML libraries and checking its model on a busy machine
            # answers uvicorn's health ping late; the default 5 s restarts it in a loop.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )


def _check_listen_address(host: str, port: int) -> None:
    """The host resolves and the port is free (bound once and let go, as uvicorn will bind it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DataError(
            f"--host {host!r} is not an address this machine can listen on ({reason});"
            " use e.g. 127.0.0.1, 0.0.0.0 or this machine's name"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise DataError(
                f"cannot listen on {host}:{port}: {error.strerror or error};"
                " stop what uses that port or choose another --port"
            ) from None


def _check_app_database(database_url: str) -> Path | None:
    """The app database opens; returns the path of a SQLite file that does not exist yet (in a
    folder that does), which only `--new-database` may create."""
    missing = check_local_store(
        database_url, what="app database", setting="LEADML_DATABASE_URL", create=True
    )
    if missing is not None:
        return missing
    store = Store.from_url(database_url)
    try:
        store.schema_revision()
    finally:
        store.close()
    return None


def _check_model_source(settings: Settings) -> None:
    """The model the API would serve opens and passes its checks, or serving is refused."""
    source = settings.serving_uri
    if not is_mlflow_uri(source) and not (Path(source) / "model.json").exists():
        raise ModelError(
            f"no model at {source}: LEADML_MODEL_URI must be a models/<name> folder"
            " or an MLflow URI such as models:/lead-scoring@champion"
        )
    try:
        Scorer.load(_model_source(settings, source), tracking_uri=settings.tracking_uri)
    except LeadmlError as error:
        raise ModelError(
            f"cannot serve {source}: {error}; train and promote a model first"
            " (leadml train ..., leadml promote) or point LEADML_MODEL_URI at a models/<name>"
            " folder"
        ) from None


@app.command()
def monitor(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="CSV or Parquet file of recent leads with their outcome (default: the score"
            " ledger and the outcomes posted to the app database).",
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="With --data: the outcome column.")
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(
            "--positive", help="Value of the target that means converted (e.g. 1, yes, won)."
        ),
    ] = None,
    days: Annotated[
        float, typer.Option("--days", min=0.01, help="Look at the scores of the last N days.")
    ] = 90.0,
    outcome_window_days: Annotated[
        float | None,
        typer.Option(
            "--outcome-window-days",
            min=0.01,
            help="MQLs older than this without an outcome count as missing (default"
            " $LEADML_OUTCOME_WINDOW_DAYS, 90).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="models/<name> folder or MLflow URI (default: the champion)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="App database: MQL policies, ledger, outcomes (default $LEADML_DATABASE_URL).",
        ),
    ] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write the machine-readable report here.")
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Check the MQL line against what happened: per policy and model version, the promise
    against realised conversion, SQL acceptance, volume, calibration, missing outcomes and drift,
    ending in a verdict (healthy, watch or act). Exits with 4 when the verdict is act."""

    if report_json is not None:
        _writable(report_json, "--report-json")
    settings = _settings(tracking_uri)
    url = database_url or settings.database_url
    if data is None:
        if target is not None:
            raise DataError("--target goes with --data; without --data the ledger is read")
        # An app database that is not there is a typo, not a quiet period to call healthy.
        check_local_store(url, what="app database", setting=DATABASE_SETTING, create=False)
        window = outcome_window_days or settings.outcome_window_days
        verdict = _monitor_ledger(settings, model, url, days, window, report_json)
    else:
        if target is None:
            raise DataError("--data needs --target, the outcome column (e.g. --target converted)")
        verdict = _monitor_file(settings, data, target, positive, model, url, report_json)
    if verdict == ACT:
        raise typer.Exit(int(ExitCode.MONITOR_ACT))


def _monitor_ledger(
    settings: Settings,
    model: str | None,
    url: str,
    days: float,
    outcome_window_days: float,
    report_json: Path | None,
) -> str:

    scorer = Scorer.load(_model_source(settings, model), tracking_uri=settings.tracking_uri)
    holdout = load_holdout(scorer, tracking_uri=settings.tracking_uri)
    leads = load_holdout_leads(scorer, tracking_uri=settings.tracking_uri)
    now = datetime.now(UTC)
    with _policy_book(url, holdout) as book:
        report = book.contract(
            scorer,
            since=now - timedelta(days=days),
            now=now,
            outcome_window=timedelta(days=outcome_window_days),
            holdout_leads=leads,
        )
    out.print(
        f"{report.scored:,} scores by {scorer.info.name} in the ledger over the last {days:g} days"
    )
    _print_contract(report)
    if report_json is not None:
        extra = {"model_name": scorer.info.name, "model_version": scorer.info.version}
        report_json.write_text(json.dumps(report.to_dict() | extra, indent=2))
        out.print(f"report written to {report_json}")
    return report.verdict


def _print_contract(report: ContractReport) -> None:
    for group in report.groups:
        out.print(
            f"{_policy_label(group.policy_version)}, model v{group.model_version}:"
            f" {group.scored:,} scored, {group.mqls:,} MQLs -> {group.verdict}"
        )
        table = Table(show_header=True)
        for name in ("figure", "verdict", "what it says"):
            table.add_column(name)
        for finding in group.findings:
            table.add_row(finding.figure, finding.verdict, finding.reason)
        out.print(table)
        if group.rejection_reasons:
            shown = ", ".join(f"{k} {v:,}" for k, v in group.rejection_reasons.items())
            out.print(f"  rejection reasons: {shown}")
        if group.mqls_per_week:
            weeks = ", ".join(f"{k}: {v:,}" for k, v in list(group.mqls_per_week.items())[-8:])
            out.print(f"  MQLs per week (from Monday): {weeks}")
    for finding in report.findings:
        out.print(f"{finding.figure}: {finding.verdict}: {finding.reason}")
    shifted = [f for f in report.feature_drift if f.psi > 0.1][:5]
    for item in shifted:
        out.print(f"  {item.feature}: PSI {item.psi:.3f} ({item.reading})")
    out.print(f"{report.verdict}: {report.reason}")
    if not report.promise_checked:
        out.print(
            f"the MQL line's promise is not checked yet: fewer than {MIN_JUDGED} MQLs have an"
            " outcome (leadml outcomes import, or POST /v1/outcomes)"
        )


def _monitor_file(
    settings: Settings,
    data: Path,
    target: str,
    positive: str | None,
    model: str | None,
    url: str,
    report_json: Path | None,
) -> str:
    frame, y, n_open = outcome_leads(
        load_leads(data), target, positive, min_leads=MIN_LEADS, source=str(data)
    )
    scorer = Scorer.load(_model_source(settings, model), tracking_uri=settings.tracking_uri)
    holdout = load_holdout(scorer, tracking_uri=settings.tracking_uri)
    with _policy_book(url, holdout) as book:
        policy = book.active(scorer)
    try:
        proba = scorer.score(frame)["probability"].to_numpy()
    except DataError as error:
        raise DataError(f"{data}: {error}") from None
    is_mql, grades = policy.decide(proba)
    report = monitor_outcomes(
        y, proba, grades, is_mql, holdout.y, holdout.proba, grade_labels=policy.bands.labels
    )
    out.print(
        f"{len(frame):,} leads with an outcome in {data}"
        + (f" ({n_open:,} open leads left out)" if n_open else "")
        + f", scored with {scorer.info.name} v{scorer.info.version or '?'}"
        f" under {_policy_label(policy.version)}"
    )
    _print_monitor(report)
    if report_json is not None:
        extra = {
            "data": str(data),
            "open_leads_left_out": n_open,
            "model_name": scorer.info.name,
            "model_version": scorer.info.version,
            "policy_version": policy.version,
        }
        report_json.write_text(json.dumps(report.to_dict() | extra, indent=2))
        out.print(f"report written to {report_json}")
    return report.verdict


def _print_monitor(report: MonitorReport) -> None:
    for title, checks in (
        ("realised vs expected by grade", report.grades),
        ("realised vs expected, MQLs", report.mql),
    ):
        table = Table(title=title, show_header=True)
        for name in (
            "group",
            "leads",
            "converted",
            f"{report.level:.0%} interval",
            "expected",
            "flag",
        ):
            table.add_column(name, justify="right")
        for check in checks:
            table.add_row(
                check.group,
                f"{check.n:,}",
                _share(check.realised_rate),
                f"{_share(check.low)} to {_share(check.high)}",
                _share(check.expected_rate),
                (check.flag or "") + (", material" if check.material else ""),
            )
        out.print(table)
    cal = report.calibration
    table = Table(title="calibration and ranking", show_header=True)
    for name in ("metric", "recent", "holdout"):
        table.add_column(name, justify="right")
    table.add_row("ECE", f"{cal.recent_ece:.4f}", f"{cal.holdout_ece:.4f}")
    table.add_row("Brier", f"{cal.recent_brier:.4f}", f"{cal.holdout_brier:.4f}")
    auc = "-" if cal.recent_roc_auc is None else f"{cal.recent_roc_auc:.4f}"
    table.add_row("ROC AUC", auc, f"{cal.holdout_roc_auc:.4f}")
    table.add_row("conversion rate", _share(cal.recent_base_rate), _share(cal.holdout_base_rate))
    out.print(table)
    drift = report.drift
    table = Table(title="score drift (holdout deciles)", show_header=True)
    for name in ("probability from", "holdout", "recent"):
        table.add_column(name, justify="right")
    for lower, held, recent in zip(
        (0.0, *drift.edges), drift.holdout_shares, drift.recent_shares, strict=True
    ):
        table.add_row(f"{lower:.4f}", _share(held), _share(recent))
    out.print(table)
    out.print(f"PSI {drift.psi:.3f}: {drift.reading}")
    out.print(report.sentence)


# --------------------------------------------------------------------------- retrain, rollback


@app.command()
def retrain(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="The original export (CSV/Parquet/SQL URL) for leads from before the ledger.",
        ),
    ] = None,
    window_days: Annotated[
        int,
        typer.Option(
            "--window-days", min=1, help="A handed-over lead not won within this many days is lost."
        ),
    ] = 90,
    recalibrate_only: Annotated[
        bool,
        typer.Option(
            "--recalibrate-only", help="Refit only the champion's calibrator on recent outcomes."
        ),
    ] = False,
    margin: Annotated[
        float,
        typer.Option("--margin", help="How much better the challenger must rank (ROC AUC)."),
    ] = 0.005,
    metric: Annotated[
        str, typer.Option("--metric", help="Ranking metric the margin applies to: roc_auc, pr_auc.")
    ] = "roc_auc",
    gate_share: Annotated[
        float,
        typer.Option(
            "--gate-share", help="Share of labelled ledger leads, the newest, to judge on."
        ),
    ] = 0.25,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Use only what was known at this ISO time (default: now)."),
    ] = None,
    all_leads_observed: Annotated[
        bool,
        typer.Option(
            "--all-leads-observed",
            help="Every lead's outcome is recorded, worked by sales or not (e.g. self-serve).",
        ),
    ] = False,
    model_name: ModelName = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="The ledger's database (default $LEADML_DATABASE_URL)."
        ),
    ] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write the report as JSON here.")
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="Export a promoted champion here (default models/)."),
    ] = None,
    tracking_uri: TrackingUri = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for splits and models.")] = 0,
) -> None:
    """Retrain from the ledger and its outcomes, gate the challenger against the champion on the
    newest outcomes, print the one-page report; exit 0 promoted, 3 refused, 2 bad input."""
    if metric not in ("roc_auc", "pr_auc"):
        raise DataError(f"--metric {metric!r} is unknown; use roc_auc or pr_auc")
    if not 0 <= margin < 1:
        raise DataError(f"--margin {margin:g} must be at least 0 and below 1, e.g. 0.005")
    if not 0 < gate_share < 1:
        raise DataError(f"--gate-share {gate_share:g} must be above 0 and below 1, e.g. 0.25")
    moment = datetime.now(UTC)
    if as_of is not None:
        try:
            moment = datetime.fromisoformat(as_of)
        except ValueError:
            raise DataError(f"--as-of {as_of!r} is not an ISO date or time") from None
    settings = _settings(tracking_uri)
    if report_json is not None:
        _writable(report_json, "--report-json")
    url = database_url or settings.database_url
    # The ledger is read, never started here: a database that is not there is a typo.
    check_local_store(url, what="app database", setting=DATABASE_SETTING, create=False)
    if data and not is_database_url(data):
        readable_file(data)
    open_tracking_store(settings.tracking_uri, create=False)
    name = model_name or settings.model_name
    with console.status("reading the champion"):
        bundle = load_bundle_from_mlflow(f"models:/{name}@{CHAMPION}")
    scorer = Scorer.from_bundle(bundle, source=f"models:/{name}/{bundle.info.version}")
    holdout_y, holdout_proba, _ = bundle.holdout_parts()
    holdout = Holdout(y=holdout_y.astype(np.int64), proba=holdout_proba.astype(np.float64))
    with (
        console.status("reading the ledger"),
        _policy_book(url, holdout) as book,
    ):
        active = book.active(scorer)
        ledger = book.store.ledger_frame(model_name=name)
        # Outcome events (POST /v1/outcomes, leadml outcomes import) with their arrival times;
        # the per-lead table only for leads from before events existed.
        outcomes = retraining_outcomes(
            book.store.outcome_events_frame(), book.store.outcomes_frame()
        )
    if ledger.empty:
        raise DataError(
            f"the ledger has no scores by {name}; score leads through the API or leadml score"
            " first, and post their outcomes"
        )
    export = load_leads(data) if data else None
    champion = champion_from_bundle(bundle, active)
    config = RetrainConfig(
        window_days=window_days,
        recalibrate_only=recalibrate_only,
        gate_share=gate_share,
        all_leads_observed=all_leads_observed,
        gate=GateConfig(margin=margin, metric=metric, seed=seed),  # type: ignore[arg-type]
        seed=seed,
    )
    with console.status("retraining") as status:
        outcome = retrain_from_ledger(
            ledger,
            outcomes,
            champion,
            model_name=name,
            as_of=moment,
            export=export,
            config=config,
            progress=lambda message: status.update(message),
        )
    report = outcome.report
    if outcome.result is not None:
        with console.status("logging the challenger to MLflow"):
            logged = log_training(
                outcome.result,
                model_name=name,
                experiment=settings.experiment,
                data_source="ledger" + (f" + {data}" if data else ""),
            )
        report = replace(report, challenger_version=logged.version)
        log_retrain_report(logged.run_id, report.to_dict(), report.text())
        if report.gate.promoted:
            move_champion(
                name,
                logged.version,
                action="recalibrate" if recalibrate_only else "retrain",
                reason=report.gate.sentence,
            )
            export_model(f"models:/{name}@{CHAMPION}", models_dir or settings.models_dir)
    print(report.text())
    if report_json is not None:
        report_json.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    raise typer.Exit(ExitCode.OK if report.gate.promoted else ExitCode.GATE_REFUSED)


@app.command()
def rollback(
    model_name: ModelName = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version to go back to (default: the previous champion)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")] = "",
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="Export the champion here (default models/)."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Move `champion` back to the previous champion version, recorded in the audit trail."""
    settings = _settings(tracking_uri)
    open_tracking_store(settings.tracking_uri, create=False)
    name = model_name or settings.model_name
    move = rollback_champion(name, to_version=to, reason=reason)
    folder = export_model(f"models:/{name}@{CHAMPION}", models_dir or settings.models_dir)
    out.print(
        f"{name}: champion moved back from v{move.from_version} to v{move.to_version}"
        f" (recorded in the audit trail, exported to {folder}); the API follows at its next"
        " alias poll, or at once with POST /v1/admin/reload"
    )


outcomes_app = typer.Typer(
    help="Sales outcomes: what became of the leads.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def outcomes_import(
    path: Annotated[Path, typer.Argument(help="CRM export (CSV or Parquet), one event a row.")],
    lead_id_column: Annotated[
        str | None,
        typer.Option(
            "--lead-id-column", help="Lead id column (default: lead_id, Prospect ID, ...)."
        ),
    ] = None,
    event_column: Annotated[
        str | None,
        typer.Option(
            "--event-column", help="Event column (default: event, outcome, stage, status, ...)."
        ),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column", help="When it happened (default: occurred_at, close_date, ...)."
        ),
    ] = None,
    reason_column: Annotated[
        str | None,
        typer.Option(
            "--reason-column", help="Rejection reason (default: reason, lost_reason, ...)."
        ),
    ] = None,
    value_column: Annotated[
        str | None,
        typer.Option("--value-column", help="Deal value of won deals (default: amount, ...)."),
    ] = None,
    event_value: Annotated[
        list[str] | None,
        typer.Option(
            "--event-value",
            help="Map a CRM value to an event, e.g. 'Closed Won=won' (repeatable). Known already:"
            " Closed Won, Closed Lost, Qualified, Disqualified, SQL, won, lost, ...",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="App database (default: $LEADML_DATABASE_URL)."),
    ] = None,
) -> None:
    """Import sales outcomes from a CRM export; an event already stored is not counted twice."""

    extra: dict[str, str] = {}
    for item in event_value or []:
        value, separator, event = item.rpartition("=")
        if not separator or not value.strip():
            raise DataError(f"--event-value {item!r}: write it as 'CRM value=event'")
        extra[value.strip()] = event.strip()
    settings = _settings()
    frame = load_leads(path)
    mapping = ColumnMapping(lead_id_column, event_column, time_column, reason_column, value_column)
    try:
        events = events_from_frame(frame, settings.rejection_reason_list, mapping, extra)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    records: list[dict[Any, Any]] = events.to_dict(orient="records")
    rows = [
        OutcomeEventIn(
            lead_id=str(row["lead_id"]),
            event=str(row["event"]),
            occurred_at=pd.Timestamp(row["occurred_at"]).to_pydatetime(),
            reason=row["reason"],
            deal_value=None if pd.isna(row["deal_value"]) else float(row["deal_value"]),
            source="import",
        )
        for row in records
    ]
    store = _open_app_database(database_url or settings.database_url)
    try:
        result = store.record_outcome_events(rows)
    finally:
        store.close()
    counts = events["event"].value_counts()
    shown = ", ".join(
        f"{counts.get(e, 0):,} {e}" for e in ("sql_accepted", "sql_rejected", "won", "lost")
    )
    out.print(
        f"read {result.received:,} outcome events from {path} ({shown}): {result.stored:,} stored,"
        f" {result.duplicates:,} already there; {result.unseen_leads:,} lead ids the ledger has"
        " never scored (kept)"
    )


def _quiet_libraries() -> None:
    """MLflow's progress bars and INFO lines would bury leadml's own output, and its HTTP
    retries would keep a command waiting for minutes on a tracking server that is down."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    bound_mlflow_http_waits()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # The pyfunc wrapper is pickled on purpose; MLflow warns about every such model.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: a user's mistake is one line and exit code 2, a bug one line and exit 1."""
    _quiet_libraries()
    command = typer.main.get_command(app)
    try:
        # Any command, also one that reads no setting: a misspelt name is found before it matters.
        check_variable_names()
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        code = command.main(args=argv, prog_name="leadml", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except LeadmlError as error:
        _fail(str(error))
    except ValidationError as error:
        # Settings are read through load_settings; a model built elsewhere may still refuse.
        _fail(describe_settings_error(error) if error.title == "Settings" else _first(error))
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", code=130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except TyperException as error:
        # Typer's own parsing errors (missing option, bad value): same one-line form.
        context = getattr(error, "ctx", None)
        name = getattr(context, "command_path", "leadml") or "leadml"
        _fail(f"{error.format_message()} (see '{name} --help')")
    except OSError as error:
        # A file or socket the checks before the work did not foresee (disk full, permissions).
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        _fail(f"{error.strerror or _first(error)}{where}; check the path, space and permissions")
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
            traceback.print_exc()
        _fail(
            f"unexpected {type(error).__name__}: {_first(error)} (a bug in leadml: rerun with"
            f" {DEBUG_VARIABLE}=1 for the traceback and report it)",
            code=ExitCode.FAILED,
        )


def _first(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "no detail")


def _fail(message: str, code: int = ExitCode.BAD_INPUT) -> None:
    one_line = " ".join(message.split())
    print(f"leadml: error: {one_line}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
