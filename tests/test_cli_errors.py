"""A corpus of bad inputs for every `leadml` command: each is one line on stderr and exit code 2.

Each case runs the real command in-process on real files, a real MLflow store and a real model;
the only thing kept from running is uvicorn itself (a case that got past every check would
otherwise serve forever, so reaching it fails the case). Placeholders such as {leads} name the
files of the `bad` fixture.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from cli_testkit import free_port, run_cli_streams

from conftest import TrainedModel
from leadml.store import Store


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    fragments: list[str]
    env: dict[str, str] = field(default_factory=dict)


def case(id: str, argv: str | list[str], *fragments: str, **env: str) -> Case:
    return Case(id, argv.split() if isinstance(argv, str) else argv, list(fragments), env)


MODEL = "--model {model}"
ANON = {"LEADML_ALLOW_ANONYMOUS": "true"}

CASES = [
    # ---------------------------------------------------------------- train: the input file
    case("train-missing-file", "train --data {missing} --target converted", "no such file"),
    case("train-empty-file", "train --data {empty} --target converted", "the file is empty"),
    case("train-binary-file", "train --data {binary} --target converted", "not a text file"),
    case("train-header-only", "train --data {header_only} --target converted", "has no rows"),
    case("train-folder", "train --data {folder} --target converted", "it is a folder"),
    case(
        "train-duplicate-columns",
        "train --data {dup_columns} --target converted",
        "more than one column named 'industry'",
    ),
    case(
        "train-duplicate-after-trim",
        "train --data {dup_trimmed} --target converted",
        "more than one column named 'industry'",
    ),
    case("train-not-parquet", "train --data {bad_parquet} --target converted", "as Parquet"),
    case("train-unknown-target", "train --data {leads} --target won", "target column 'won'"),
    case(
        "train-one-class-target",
        "train --data {one_class} --target converted",
        "exactly two values, found 1",
    ),
    case(
        "train-many-valued-target",
        "train --data {leads} --target lead_source",
        "exactly two values",
    ),
    case(
        "train-positive-not-a-value",
        "train --data {leads} --target converted --positive maybe",
        "--positive 'maybe'",
    ),
    case(
        "train-unknown-id-column",
        "train --data {leads} --target converted --id-column nope",
        "--id-column 'nope' not found",
    ),
    case(
        "train-time-column-not-dates",
        "train --data {leads} --target converted --time-column industry",
        "is not a date",
    ),
    case(
        "train-unknown-excluded-column",
        "train --data {leads} --target converted --exclude nope",
        "column 'nope' not found",
    ),
    case(
        "train-too-few-positives",
        "train --data {few_positives} --target converted",
        "at least 40 of each",
    ),
    case("train-no-target-option", "train --data {leads}", "Missing option '--target'"),
    case("train-seed-not-a-number", "train --data {leads} --target converted --seed x", "--seed"),
    # ---------------------------------------------------------------- train: outputs and stores
    case(
        "train-report-json-missing-folder",
        "train --data {leads} --target converted --report-json {missing_dir}/report.json",
        "the folder",
        "does not exist",
    ),
    case(
        "train-report-json-is-folder",
        "train --data {leads} --target converted --report-json {folder}",
        "it is a folder",
    ),
    case(
        "train-sqlite-tracking-missing-folder",
        "train --data {leads} --target converted --tracking-uri sqlite:///{missing_dir}/mlflow.db",
        "MLflow tracking store",
        "does not exist",
    ),
    case(
        "train-file-tracking-missing-folder",
        "train --data {leads} --target converted --tracking-uri file://{missing_dir}/mlruns",
        "MLflow tracking store",
        "does not exist",
    ),
    case(
        "train-tracking-env-missing-folder",
        "train --data {leads} --target converted",
        "MLFLOW_TRACKING_URI",
        MLFLOW_TRACKING_URI="sqlite:///{missing_dir}/mlflow.db",
    ),
    # ---------------------------------------------------------------- train: SQL
    case(
        "train-sql-syntax-error",
        [
            "train",
            "--data",
            "sqlite:///{leads_db}",
            "--query",
            "SELEC * FRM leads",
            "--target",
            "x",
        ],
        "cannot run the query",
        "syntax error",
    ),
    case(
        "train-sql-unknown-table",
        [
            "train",
            "--data",
            "sqlite:///{leads_db}",
            "--query",
            "SELECT * FROM nope",
            "--target",
            "x",
        ],
        "no such table: nope",
    ),
    case(
        "train-sql-duplicate-columns",
        [
            "train",
            "--data",
            "sqlite:///{leads_db}",
            "--query",
            "SELECT industry, industry FROM leads",
            "--target",
            "x",
        ],
        "more than one column named 'industry'",
    ),
    case(
        "train-sql-no-rows",
        [
            "train",
            "--data",
            "sqlite:///{leads_db}",
            "--query",
            "SELECT * FROM leads WHERE 1 = 0",
            "--target",
            "converted",
        ],
        "returned no rows",
    ),
    case(
        "train-sql-without-query",
        "train --data sqlite:///{leads_db} --target converted",
        "without a query",
    ),
    case(
        "train-sql-missing-database",
        ["train", "--data", "sqlite:///{missing}.db", "--query", "SELECT 1", "--target", "x"],
        "there is no database",
    ),
    case(
        "train-sql-unknown-dialect",
        ["train", "--data", "nosuchdb://host/x", "--query", "SELECT 1", "--target", "x"],
        "cannot run the query",
    ),
    # ---------------------------------------------------------------- score
    case("score-missing-file", f"score {{missing}} -o {{out}} {MODEL}", "no such file"),
    case("score-folder", f"score {{folder}} -o {{out}} {MODEL}", "it is a folder"),
    case("score-empty-file", f"score {{empty}} -o {{out}} {MODEL}", "the file is empty"),
    case("score-binary-file", f"score {{binary}} -o {{out}} {MODEL}", "not a text file"),
    case("score-not-parquet", f"score {{bad_parquet}} -o {{out}} {MODEL}", "as Parquet"),
    case(
        "score-duplicate-columns",
        f"score {{dup_columns}} -o {{out}} {MODEL}",
        "more than one column named",
    ),
    case("score-header-only", f"score {{header_only}} -o {{out}} {MODEL}", "no leads to score"),
    case(
        "score-without-the-model-columns",
        f"score {{unrelated}} -o {{out}} {MODEL}",
        "column is required but missing",
    ),
    case(
        "score-output-missing-folder",
        f"score {{leads}} -o {{missing_dir}}/ranked.csv {MODEL}",
        "the folder",
        "does not exist",
    ),
    case("score-output-is-folder", f"score {{leads}} -o {{folder}} {MODEL}", "cannot write"),
    case("score-output-format", f"score {{leads}} -o {{tmp}}/ranked.xlsx {MODEL}", ".csv or"),
    case("score-output-is-input", f"score {{leads}} -o {{leads}} {MODEL}", "file being scored"),
    case("score-chunk-rows-zero", f"score {{leads}} -o {{out}} --chunk-rows 0 {MODEL}", "--chunk"),
    case("score-missing-model", "score {leads} -o {out} --model {missing_dir}", "no model folder"),
    case("score-folder-not-a-model", "score {leads} -o {out} --model {folder}", "not a leadml"),
    case("score-tampered-model", "score {leads} -o {out} --model {tampered}", "tampered"),
    case(
        "score-unknown-registered-model",
        "score {leads} -o {out} --model models:/no-such-model@champion --tracking-uri {tracking}",
        "no-such-model",
    ),
    case(
        "score-registry-with-missing-store",
        "score {leads} -o {out} --model models:/x@champion --tracking-uri sqlite:///{tmp}/typo.db",
        "there is no MLflow tracking store",
    ),
    case(
        "score-app-database-missing-folder",
        f"score {{leads}} -o {{out}} {MODEL} --database-url sqlite:///{{missing_dir}}/app.db",
        "app database",
        "does not exist",
    ),
    case(
        "score-app-database-unknown-dialect",
        f"score {{leads}} -o {{out}} {MODEL} --database-url nosuchdb://x",
        "unsupported database",
    ),
    # ---------------------------------------------------------------- promote
    case("promote-negative-tolerance", "promote --tolerance -1", "--tolerance"),
    case("promote-tolerance-not-a-number", "promote --tolerance lots", "--tolerance"),
    case("promote-unknown-metric", "promote --metric accuracy", "--metric 'accuracy' is unknown"),
    case(
        "promote-store-missing-folder",
        "promote --tracking-uri sqlite:///{missing_dir}/mlflow.db",
        "does not exist",
    ),
    case(
        "promote-store-missing-file",
        "promote --tracking-uri sqlite:///{tmp}/typo.db",
        "there is no MLflow tracking store",
    ),
    case(
        "promote-file-store-missing",
        "promote --tracking-uri file://{missing_dir}",
        "there is no MLflow tracking store",
    ),
    case(
        "promote-unknown-model-name",
        "promote --tracking-uri {tracking} --model-name no-such-model",
        "has no challenger",
    ),
    case(
        "promote-tracking-server-refuses",
        "promote --tracking-uri http://127.0.0.1:{closed_port}",
        "tracking server did not answer",
        "connection refused",
    ),
    # ---------------------------------------------------------------- threshold
    case("threshold-unknown-policy", f"threshold --policy best {MODEL}", "best"),
    case("threshold-capacity-without-per-week", f"threshold --policy capacity {MODEL}", "--per"),
    case(
        "threshold-precision-above-one",
        f"threshold --policy min_precision --min-precision 2 {MODEL}",
        "min_precision must be a share",
    ),
    case(
        "threshold-missing-model",
        "threshold --policy fixed --cutoff 0.5 --model {missing_dir}",
        "no model folder",
    ),
    case(
        "threshold-apply-database-missing-folder",
        f"threshold --policy fixed --cutoff 0.5 {MODEL} --apply"
        " --database-url sqlite:///{missing_dir}/app.db",
        "app database",
        "does not exist",
    ),
    # ---------------------------------------------------------------- monitor
    case(
        "monitor-missing-file", f"monitor --data {{missing}} --target converted {MODEL}", "no such"
    ),
    case(
        "monitor-binary-file", f"monitor --data {{binary}} --target converted {MODEL}", "not a text"
    ),
    case(
        "monitor-unknown-target",
        f"monitor --data {{leads}} --target won {MODEL}",
        "no outcome column 'won'",
    ),
    case(
        "monitor-one-outcome",
        f"monitor --data {{one_class}} --target converted {MODEL}",
        "the same outcome",
    ),
    case(
        "monitor-report-json-missing-folder",
        f"monitor --data {{leads}} --target converted {MODEL}"
        " --report-json {missing_dir}/monitor.json",
        "does not exist",
    ),
    # ---------------------------------------------------------------- demo-data
    case("demo-data-too-few-rows", "demo-data -o {out} --rows 5", "100"),
    case("demo-data-rows-not-a-number", "demo-data -o {out} --rows many", "--rows"),
    case("demo-data-missing-folder", "demo-data -o {missing_dir}/leads.csv", "does not exist"),
    case("demo-data-output-is-folder", "demo-data -o {folder}", "it is a folder"),
    case("demo-data-output-format", "demo-data -o {tmp}/leads.xlsx", ".xlsx"),
    # ---------------------------------------------------------------- settings (any command)
    case(
        "setting-anonymous-maybe",
        "serve",
        "LEADML_ALLOW_ANONYMOUS='maybe'",
        "true or false",
        LEADML_ALLOW_ANONYMOUS="maybe",
    ),
    case(
        "setting-body-bytes-not-a-number",
        "serve",
        "LEADML_MAX_BODY_BYTES='abc'",
        "a whole number of at least 1024",
        LEADML_MAX_BODY_BYTES="abc",
    ),
    case(
        "setting-batch-leads-zero",
        "serve",
        "LEADML_MAX_BATCH_LEADS='0'",
        "a whole number of at least 1",
        LEADML_MAX_BATCH_LEADS="0",
    ),
    case(
        "setting-negative-reload-interval",
        f"score {{leads}} -o {{out}} {MODEL}",
        "LEADML_RELOAD_INTERVAL_SECONDS",
        LEADML_RELOAD_INTERVAL_SECONDS="-1",
    ),
    case(
        "setting-negative-ledger-wait",
        f"score {{leads}} -o {{out}} {MODEL}",
        "LEADML_LEDGER_WAIT_SECONDS",
        "at least 0",
        LEADML_LEDGER_WAIT_SECONDS="-1",
    ),
    case(
        "setting-app-database-missing-folder",
        f"score {{leads}} -o {{out}} {MODEL}",
        "LEADML_DATABASE_URL",
        LEADML_DATABASE_URL="sqlite:///{missing_dir}/leadml.db",
    ),
    # ---------------------------------------------------------------- serve
    case("serve-port-too-high", "serve --port 99999", "--port", **ANON),
    case("serve-port-zero", "serve --port 0", "--port", **ANON),
    case("serve-port-not-a-number", "serve --port http", "--port", **ANON),
    case("serve-workers-zero", "serve --workers 0", "--workers", **ANON),
    case("serve-port-in-use", "serve --port {busy_port}", "Address already in use", **ANON),
    case("serve-unknown-host", "serve --host no-such-host.invalid", "--host", **ANON),
    case("serve-without-keys", "serve --port {free_port}", "no API keys are configured"),
    case(
        "serve-bad-keys",
        "serve --port {free_port}",
        "LEADML_API_KEYS",
        LEADML_API_KEYS="scorer",
    ),
    case(
        "serve-missing-model",
        "serve --port {free_port}",
        "no model at",
        LEADML_MODEL_URI="{missing_dir}",
        **ANON,
    ),
    case(
        "serve-tampered-model",
        "serve --port {free_port}",
        "cannot serve",
        "tampered",
        LEADML_MODEL_URI="{tampered}",
        **ANON,
    ),
    case(
        "serve-unknown-registered-model",
        "serve --port {free_port}",
        "cannot serve",
        "no-such-model",
        LEADML_MODEL_URI="models:/no-such-model@champion",
        MLFLOW_TRACKING_URI="{tracking}",
        **ANON,
    ),
    case(
        "serve-database-unknown-dialect",
        "serve --port {free_port}",
        "unsupported database",
        LEADML_DATABASE_URL="nosuchdb://x",
        LEADML_MODEL_URI="{model}",
        **ANON,
    ),
    case(
        "serve-database-missing-folder",
        "serve --port {free_port}",
        "LEADML_DATABASE_URL",
        "does not exist",
        LEADML_DATABASE_URL="sqlite:///{missing_dir}/leadml.db",
        LEADML_MODEL_URI="{model}",
        **ANON,
    ),
    case(
        "serve-database-misspelt-file-name",
        "serve --port {free_port}",
        "there is no app database at {tmp}/leadmll.db",
        "--new-database",
        LEADML_DATABASE_URL="sqlite:///{tmp}/leadmll.db",
        LEADML_MODEL_URI="{model}",
        **ANON,
    ),
    case(
        "serve-database-refuses",
        "serve --port {free_port}",
        "connection refused",
        LEADML_DATABASE_URL="postgresql://leadml:secret@127.0.0.1:{closed_port}/leadml",
        LEADML_MODEL_URI="{model}",
        **ANON,
    ),
    # ---------------------------------------------------------------- misspelt settings
    case(
        "setting-misspelt-api-keys-beside-anonymous",
        "serve --port {free_port}",
        "LEADML_API_KEY (in the environment) is not a leadml setting",
        "did you mean LEADML_API_KEYS?",
        LEADML_API_KEY="scorer:" + "0" * 64,
        **ANON,
    ),
    case(
        "setting-misspelt-database-url",
        f"score {{leads}} -o {{out}} {MODEL}",
        "did you mean LEADML_DATABASE_URL?",
        LEADML_DATABSE_URL="sqlite:///{tmp}/app.db",
    ),
    case(
        "setting-misspelt-lower-case",
        "promote",
        "leadml_alow_anonymous",
        "did you mean LEADML_ALLOW_ANONYMOUS?",
        leadml_alow_anonymous="true",
    ),
    case(
        "setting-unknown-name",
        "demo-data -o {out}",
        "LEADML_TURBO (in the environment) is not a leadml setting; correct or remove it",
        LEADML_TURBO="1",
    ),
    # ---------------------------------------------------------------- outcomes import
    case("outcomes-missing-file", "outcomes import {missing}", "no such file"),
    case("outcomes-folder", "outcomes import {folder}", "it is a folder"),
    case("outcomes-empty-file", "outcomes import {empty}", "the file is empty"),
    case(
        "outcomes-no-lead-id-column",
        "outcomes import {outcomes_unknown_kind}",
        "--lead-id-column",
    ),
    case(
        "outcomes-unknown-lead-id-column",
        "outcomes import {outcomes_unknown_kind} --lead-id-column nope",
        "no column 'nope'",
    ),
    case(
        "outcomes-bad-date",
        "outcomes import {outcomes_bad_date} --lead-id-column lead",
        "'2026-13-45'",
        "is not a date",
    ),
    case(
        "outcomes-unknown-kind",
        "outcomes import {outcomes_unknown_kind} --lead-id-column lead",
        "'Negotiation' is no outcome event",
        "--event-value",
    ),
    case(
        "outcomes-mapped-to-no-event",
        "outcomes import {outcomes_unknown_kind} --lead-id-column lead"
        " --event-value Negotiation=maybe",
        "'maybe' is not an event",
    ),
    case(
        "outcomes-event-value-without-value",
        "outcomes import {outcomes_unknown_kind} --lead-id-column lead --event-value =won",
        "write it as 'CRM value=event'",
    ),
    case(
        "outcomes-database-missing-folder",
        "outcomes import {outcomes_unknown_kind} --lead-id-column lead"
        " --event-value Negotiation=won --database-url sqlite:///{missing_dir}/app.db",
        "app database",
        "does not exist",
    ),
    # ---------------------------------------------------------------- monitor on the ledger
    case("monitor-target-without-data", f"monitor --target converted {MODEL}", "--target goes"),
    case("monitor-data-without-target", f"monitor --data {{leads}} {MODEL}", "needs --target"),
    case("monitor-days-zero", f"monitor --days 0 {MODEL}", "--days"),
    case("monitor-negative-window", f"monitor --outcome-window-days -1 {MODEL}", "--outcome"),
    case(
        "monitor-ledger-database-missing",
        f"monitor {MODEL} --database-url sqlite:///{{tmp}}/typo.db",
        "there is no app database",
    ),
    case(
        "monitor-ledger-database-missing-folder",
        f"monitor {MODEL} --database-url sqlite:///{{missing_dir}}/app.db",
        "does not exist",
    ),
    # ---------------------------------------------------------------- retrain
    case("retrain-bad-as-of", "retrain --as-of yesterday", "--as-of 'yesterday'"),
    case("retrain-window-zero", "retrain --window-days 0", "--window-days"),
    case("retrain-unknown-metric", "retrain --metric brier", "--metric 'brier' is unknown"),
    case("retrain-gate-share-above-one", "retrain --gate-share 2", "--gate-share 2 must be"),
    case("retrain-negative-margin", "retrain --margin -0.1", "--margin -0.1 must be"),
    case(
        "retrain-store-missing",
        "retrain --tracking-uri sqlite:///{tmp}/typo.db --database-url sqlite:///{app_db}",
        "there is no MLflow tracking store",
    ),
    case(
        "retrain-database-missing",
        "retrain --tracking-uri {tracking} --model-name test-leads"
        " --database-url sqlite:///{tmp}/typo.db",
        "there is no app database",
    ),
    case(
        "retrain-without-scores",
        "retrain --tracking-uri {tracking} --model-name test-leads --database-url sqlite:///{app_db}",
        "the ledger has no scores by test-leads",
    ),
    case(
        "retrain-unknown-model",
        "retrain --tracking-uri {tracking} --model-name no-such-model"
        " --database-url sqlite:///{app_db}",
        "no-such-model",
    ),
    case(
        "retrain-missing-export",
        "retrain --data {missing} --tracking-uri {tracking} --database-url sqlite:///{app_db}",
        "no such file",
    ),
    case(
        "retrain-report-json-missing-folder",
        "retrain --report-json {missing_dir}/r.json --database-url sqlite:///{app_db}",
        "does not exist",
    ),
    # ---------------------------------------------------------------- rollback
    case(
        "rollback-store-missing",
        "rollback --tracking-uri sqlite:///{tmp}/typo.db",
        "there is no MLflow tracking store",
    ),
    case(
        "rollback-no-earlier-champion",
        "rollback --tracking-uri {tracking} --model-name test-leads",
        "no champion before v1",
    ),
    case(
        "rollback-unknown-version",
        "rollback --tracking-uri {tracking} --model-name test-leads --to 99",
        "version 99",
    ),
    case(
        "rollback-unknown-model",
        "rollback --tracking-uri {tracking} --model-name no-such-model",
        "no champion to roll back",
    ),
    # ---------------------------------------------------------------- threshold: exploration
    case(
        "threshold-exploration-share-too-high",
        f"threshold --policy fixed --cutoff 0.5 --exploration-share 0.9 {MODEL}",
        "exploration_share must be between 0 and 0.5",
    ),
    case(
        "threshold-exploration-share-negative",
        f"threshold --policy fixed --cutoff 0.5 --exploration-share -0.1 {MODEL}",
        "exploration_share must be between 0 and 0.5",
    ),
    # ---------------------------------------------------------------- score: engines, CRM file
    case("score-unknown-engine", f"score {{leads}} -o {{out}} --engine flink {MODEL}", "flink"),
    case(
        "score-master-without-spark",
        f"score {{leads}} -o {{out}} --master local[2] {MODEL}",
        "add --engine spark",
    ),
    case(
        "score-spark-with-reasons",
        f"score {{leads}} -o {{tmp}}/s.parquet --engine spark --reasons {MODEL}",
        "--reasons is not available with --engine spark",
    ),
    case(
        "score-spark-with-crm-csv",
        f"score {{leads}} -o {{tmp}}/s.parquet --engine spark --crm-csv {{tmp}}/c.csv {MODEL}",
        "--crm-csv is not available with --engine spark",
    ),
    case(
        "score-spark-csv-output",
        f"score {{leads}} -o {{tmp}}/s.csv --engine spark {MODEL}",
        "the Spark engine writes Parquet",
    ),
    case(
        "score-spark-output-missing-folder",
        f"score {{leads}} -o {{missing_dir}}/s.parquet --engine spark {MODEL}",
        "the folder",
        "does not exist",
    ),
    case(
        "score-spark-missing-input",
        f"score {{missing}} -o {{tmp}}/s.parquet --engine spark {MODEL}",
        "no such file",
    ),
    case(
        "score-spark-bad-conf",
        f"score {{leads}} -o {{tmp}}/s.parquet --engine spark --conf nonsense {MODEL}",
        "is not KEY=VALUE",
    ),
    case(
        "score-spark-without-java",
        f"score {{leads}} -o {{tmp}}/s.parquet --engine spark {MODEL}",
        "--engine spark needs Java",
        PATH="{empty_bin}",
        JAVA_HOME="",
    ),
    case(
        "score-crm-csv-not-csv",
        f"score {{leads}} -o {{out}} --crm-csv {{tmp}}/crm.txt {MODEL}",
        "needs a .csv file name",
    ),
    case(
        "score-crm-csv-missing-folder",
        f"score {{leads}} -o {{out}} --crm-csv {{missing_dir}}/crm.csv {MODEL}",
        "--crm-csv",
        "does not exist",
    ),
    case(
        "score-crm-csv-is-output",
        f"score {{leads}} -o {{out}} --crm-csv {{out}} {MODEL}",
        "give the CRM file its own name",
    ),
    # ---------------------------------------------------------------- demo and train options
    case("demo-data-unknown-variant", "demo-data -o {out} --variant nonsense", "'nonsense'"),
    case(
        "train-unknown-date-order",
        "train --data {leads} --target converted --date-order weird",
        "--date-order 'weird' is unknown",
    ),
    case(
        "train-day-first-contradicts-month-first",
        "train --data {leads} --target converted --day-first --date-order month-first",
        "contradicts",
    ),
    # ---------------------------------------------------------------- the command line itself
    case("unknown-command", "retrain-everything", "No such command"),
    case("unknown-option", "score {leads} -o {out} --fast", "No such option"),
]


@pytest.fixture(scope="module")
def busy_socket() -> Iterator[socket.socket]:
    """A port something else listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


@pytest.fixture(scope="module")
def bad(
    tmp_path_factory: pytest.TempPathFactory,
    trained: TrainedModel,
    demo_frame: pd.DataFrame,
    busy_socket: socket.socket,
) -> dict[str, str]:
    """The files and values the cases' placeholders stand for."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    leads = demo_frame.head(300)
    leads.to_csv(tmp / "leads.csv", index=False)
    (tmp / "empty.csv").write_text("")
    (tmp / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (tmp / "header_only.csv").write_text(",".join(leads.columns) + "\n")
    (tmp / "folder").mkdir()
    (tmp / "bad.parquet").write_text("lead_id,converted\n1,0\n")
    with_duplicate = leads[["industry", "lead_source", "converted"]].copy()
    with_duplicate.to_csv(tmp / "dup_columns.csv", index=False)
    text = (tmp / "dup_columns.csv").read_text()
    (tmp / "dup_columns.csv").write_text(text.replace("lead_source", "industry", 1))
    (tmp / "dup_trimmed.csv").write_text(text.replace("lead_source", " industry ", 1))
    leads.assign(converted=0).to_csv(tmp / "one_class.csv", index=False)
    few = pd.concat([leads[leads.converted == 1].head(5), leads[leads.converted == 0]])
    few.to_csv(tmp / "few_positives.csv", index=False)
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_csv(tmp / "unrelated.csv", index=False)
    with sqlite3.connect(tmp / "leads.db") as connection:
        leads.to_sql("leads", connection, index=False)
    outcomes = {"lead": ["A"], "Stage": ["Negotiation"], "date": ["2026-01-01"]}
    pd.DataFrame(outcomes).to_csv(tmp / "outcomes_unknown_kind.csv", index=False)
    bad_date = {"lead": ["A"], "Stage": ["Closed Won"], "date": ["2026-13-45"]}
    pd.DataFrame(bad_date).to_csv(tmp / "outcomes_bad_date.csv", index=False)
    app = Store.from_url(f"sqlite:///{tmp / 'app.db'}")
    app.migrate()
    app.close()
    (tmp / "empty_bin").mkdir()  # a PATH with no java on it
    tampered = tmp / "tampered"
    shutil.copytree(trained.export_dir, tampered)
    with (tampered / "pipeline.joblib").open("ab") as handle:
        handle.write(b"\0")
    return {
        "tmp": str(tmp),
        "leads": str(tmp / "leads.csv"),
        "missing": str(tmp / "no-such-file.csv"),
        "missing_dir": str(tmp / "no-such-folder"),
        "empty": str(tmp / "empty.csv"),
        "binary": str(tmp / "binary.csv"),
        "header_only": str(tmp / "header_only.csv"),
        "folder": str(tmp / "folder"),
        "bad_parquet": str(tmp / "bad.parquet"),
        "dup_columns": str(tmp / "dup_columns.csv"),
        "dup_trimmed": str(tmp / "dup_trimmed.csv"),
        "one_class": str(tmp / "one_class.csv"),
        "few_positives": str(tmp / "few_positives.csv"),
        "unrelated": str(tmp / "unrelated.csv"),
        "leads_db": str(tmp / "leads.db"),
        "outcomes_unknown_kind": str(tmp / "outcomes_unknown_kind.csv"),
        "outcomes_bad_date": str(tmp / "outcomes_bad_date.csv"),
        "app_db": str(tmp / "app.db"),
        "empty_bin": str(tmp / "empty_bin"),
        "out": str(tmp / "out.csv"),
        "model": str(trained.export_dir),
        "tampered": str(tampered),
        "tracking": trained.tracking_uri,
        "busy_port": str(busy_socket.getsockname()[1]),
        "free_port": str(free_port()),
        "closed_port": str(free_port()),
    }


@pytest.fixture()
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[pytest.MonkeyPatch]:
    """No LEADML_*/MLFLOW_TRACKING_URI from the machine, a fresh working folder (no .env, and
    nothing left behind), and MLflow pointed back where it was afterwards."""
    import uvicorn

    def serve_forever(*_: object, **__: object) -> None:
        raise AssertionError("every check passed: the server would have started")

    for name in list(__import__("os").environ):
        if (name.startswith("LEADML_") and not name.startswith("LEADML_MODEL_SIGNING_KEY")) or (
            name == "MLFLOW_TRACKING_URI"
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(uvicorn, "run", serve_forever)
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield monkeypatch
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


@pytest.mark.parametrize("bad_case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    bad_case: Case,
    bad: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name, value in bad_case.env.items():
        clean_environment.setenv(name, value.format(**bad))
    argv = [arg.format(**bad) for arg in bad_case.argv]
    code, out, err = run_cli_streams(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err + out
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("leadml: error: "), err
    for fragment in bad_case.fragments:
        assert fragment.format(**bad) in lines[0], lines[0]
    assert not Path(bad["out"]).exists()  # nothing was written before the refusal
    # No command left a new, empty store behind.
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "leadml.db").exists()


def test_serve_starts_a_new_app_database_only_when_asked(
    bad: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import uvicorn

    served: list[str] = []
    clean_environment.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    clean_environment.setenv("LEADML_ALLOW_ANONYMOUS", "true")
    clean_environment.setenv("LEADML_MODEL_URI", bad["model"])
    database = tmp_path / "new.db"
    clean_environment.setenv("LEADML_DATABASE_URL", f"sqlite:///{database}")
    code, _, err = run_cli_streams(["serve", "--port", bad["free_port"]], capsys)
    assert code == 2 and "--new-database" in err and not database.exists() and not served
    code, _, err = run_cli_streams(["serve", "--port", bad["free_port"], "--new-database"], capsys)
    assert code == 0, err
    assert served == ["api.main:create_app"]
    assert f"creating a new app database at {database}" in " ".join(err.split())
    assert Store.from_url(f"sqlite:///{database}").schema_revision() is not None


def test_the_corpus_covers_every_command() -> None:
    commands = {c.argv[0] for c in CASES}
    every = {"train", "score", "promote", "threshold", "monitor", "demo-data", "serve"}
    assert every | {"outcomes", "retrain", "rollback"} <= commands
    assert len(CASES) >= 140


def test_a_misspelt_setting_in_the_env_file_is_refused(
    bad: dict[str, str],
    clean_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Keys meant, anonymous also asked for: with the key line misspelt, the server would have
    # started open to anonymous callers.
    (tmp_path / ".env").write_text(
        "LEADML_ALLOW_ANONYMOUS=true\nLEADML_APIKEYS=scorer:" + "0" * 64 + "\n"
    )
    code, _, err = run_cli_streams(["serve", "--port", bad["free_port"]], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "LEADML_APIKEYS (in .env) is not a leadml setting" in lines[0]
    assert "did you mean LEADML_API_KEYS?" in lines[0]
    (tmp_path / ".env").write_text("LEADML_API_KEYS=scorer:" + "0" * 64 + "\n")
    _, _, err = run_cli_streams(["serve", "--port", bad["free_port"]], capsys)
    assert "not a leadml setting" not in err  # a name leadml reads passes this check
