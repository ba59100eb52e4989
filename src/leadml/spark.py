"""Score a lead file on Apache Spark: the same per-chunk scoring as the pandas path, spread out.

`score_with_spark` reads Parquet or CSV from any URI Spark reads (a local path, `hdfs://`,
`s3a://`, ...), scores it with `mapInPandas` and writes Parquet: one row a lead with its id,
probability, score, percentile, grade, `is_mql`, and the model and policy versions.

Each Arrow batch Spark hands a Python worker goes through `leadml.batch.score_chunk`, the
function the pandas path runs on each chunk of a file, so both engines give the same numbers for the same leads. The
model and the MQL policy travel as one broadcast variable: Spark ships it once to each executor,
and each Python worker unpickles it once and keeps the loaded scorer for its later batches.
bench/README.md says why this, and not MLflow's `spark_udf`, is how leadml scores on Spark.

pyspark is the optional extra `spark` and needs a Java runtime; a missing one is a `SparkMissing`
error naming how to install it. So pyspark is imported in the functions that need it, never at
module level: the CLI imports this module, and every other command must work without pyspark
(and without paying the import). This is an edge module: it reads and writes through Spark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from leadml.batch import score_chunk
from leadml.data import PARQUET_SUFFIXES, detect_separator
from leadml.errors import DataError, LeadmlError
from leadml.policy import ActivePolicy
from leadml.scoring import Scorer
from leadml.validation import LeadValidationError, validate_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

# pyspark warns on every mapInPandas that it is not tested with pandas 3; leadml's Spark test
# checks the results against the pandas path instead, so the warning says nothing to a user.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

DEFAULT_MASTER = "local[*]"
INSTALL_PYSPARK = "pip install 'leadml[spark]' (or: pip install pyspark)"
INSTALL_JAVA = (
    "install a Java 17+ runtime (Debian/Ubuntu: sudo apt-get install default-jre-headless)"
    " or set JAVA_HOME"
)

#: What a Spark worker hands back for each lead, after the lead id.
SCORED_OUTPUTS = ("probability", "score", "percentile", "grade", "is_mql")
#: Added under a policy with an exploration share (see `batch.score_chunk`).
HANDOVER_OUTPUTS = ("exploration", "selection_probability")
#: What the Spark engine writes for each lead, after the lead id (and the handover columns
#: under exploration).
SCORED_COLUMNS = (*SCORED_OUTPUTS, "model_version", "policy_version")

#: Leads per insert into the score ledger: one statement per list, not one per lead.
LEDGER_BATCH_ROWS = 10_000

#: Settings leadml gives its own Spark session; `--conf` / spark-submit settings win over them.
SESSION_DEFAULTS: Mapping[str, str] = {
    # The demo and most CRM exports keep dates as text, but a Parquet timestamp is turned into
    # pandas in the session's time zone; UTC keeps hour and weekday as the pandas path sees them.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Leads a Python worker scores at a time: big enough that the model's arithmetic, not the
    # per-batch overhead, dominates; small enough to keep a worker's memory flat.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
    "spark.ui.showConsoleProgress": "false",
    # A failed job reaches the user as one line (the lead and field at fault, or the first line
    # of Spark's message); Spark's own log would repeat it as pages of stack traces on stderr.
    # `--conf spark.log.level=WARN` brings the log back.
    "spark.log.level": "OFF",
}


class SparkMissing(LeadmlError):
    """pyspark or a Java runtime is not installed."""


@dataclass(frozen=True)
class SparkScoring:
    """What a Spark scoring run wrote."""

    output: str
    leads: int
    mqls: int
    model_name: str
    model_version: str | None
    policy_version: int | None
    master: str


# --------------------------------------------------------------------------- the session


def _pyspark() -> Any:
    # pyspark is an optional extra (and starts a JVM); importing it at module level would make
    # every `leadml` command need it. It is imported here, once a Spark run is asked for.
    try:
        import pyspark
    except ImportError:
        raise SparkMissing(
            f"--engine spark needs pyspark, which is not installed; {INSTALL_PYSPARK}"
        ) from None
    return pyspark


def java_missing() -> str | None:
    """Why no Java runtime can be started here, or None when one can."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        if (Path(java_home) / "bin" / "java").exists():
            return None
        return f"JAVA_HOME={java_home} has no bin/java"
    if shutil.which("java"):
        return None
    return "no Java runtime (java is not on PATH and JAVA_HOME is not set)"


def require_spark() -> None:
    """Raise `SparkMissing`, naming how to install it, unless pyspark and Java are both here."""
    _pyspark()
    why = java_missing()
    if why is not None:
        raise SparkMissing(f"--engine spark needs Java: {why}; {INSTALL_JAVA}")


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The active Spark session (under spark-submit: the one it configured), else a new one on
    `master` (default `local[*]`). `conf` adds Spark settings (`spark.executor.memory`, ...)."""
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    require_spark()
    builder = SparkSession.builder.appName("leadml score")
    # Under spark-submit the master comes from its --master; alone, leadml's default.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is not None or not submitted:
        builder = builder.master(master or DEFAULT_MASTER)
    # Python workers must run the interpreter that has leadml installed, not whichever `python3`
    # is first on PATH; pyspark reads only this variable for it when it starts the context.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if (master or DEFAULT_MASTER).startswith("local"):
        # Everything runs on this machine: bind to loopback rather than look the hostname up.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {**SESSION_DEFAULTS, **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as error:  # the JVM did not start: Java is there but unusable
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SparkMissing(f"Spark could not start: {first}; {INSTALL_JAVA}") from None


# --------------------------------------------------------------------------- reading


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def input_format(uri: str) -> str:
    """`csv` or `parquet`, from the name (a folder of part files is read as its files are)."""
    name = uri.rstrip("/").lower()
    if name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        return "csv"
    if _is_local(uri) and _local_path(uri).is_dir():
        files = [
            p.name.lower() for p in _local_path(uri).iterdir() if not p.name.startswith(("_", "."))
        ]
        if files and all(f.endswith((".csv", ".csv.gz")) for f in files):
            return "csv"
    return "parquet"


def read_leads(spark: SparkSession, uri: str) -> SparkFrame:
    """Leads from a Parquet or CSV file or folder at `uri`.

    CSV columns are read as text, as written: leadml's preparation reads each value as the
    schema says, exactly as it does for what pandas reads, and no inference pass over the file
    is needed.
    """
    if _is_local(uri) and not _local_path(uri).exists():
        raise DataError(f"cannot read {uri}: no such file; check the path")
    from pyspark.errors import AnalysisException

    try:
        if input_format(uri) == "parquet":
            return spark.read.parquet(uri)
        header = spark.read.text(uri).limit(1).collect()
        if not header:
            raise DataError(f"cannot read {uri}: the file is empty; export the leads again")
        return (
            spark.read.option("header", "true")
            .option("sep", detect_separator(header[0][0]))
            .option("quote", '"')
            .option("escape", '"')
            .option("multiLine", "true")
            .option("inferSchema", "false")
            .csv(uri)
        )
    except AnalysisException as error:
        first = str(error).strip().splitlines()[0]
        raise DataError(f"cannot read {uri}: {first}; check the path and format") from None


# --------------------------------------------------------------------------- scoring


#: Per Python worker: the scorer and policy of each broadcast, unpickled once and kept.
_LOADED: dict[str, tuple[Scorer, ActivePolicy]] = {}


def _loaded(key: str, shared: Any) -> tuple[Scorer, ActivePolicy]:
    """The scorer and policy a broadcast carries, built once per worker process. Module-level,
    so that Spark's pickling of the batch function refers to this module's cache, not a copy."""
    if key not in _LOADED:
        pipeline, info, policy = shared.value
        _LOADED[key] = (Scorer(pipeline, info), policy)
    return _LOADED[key]


def _chunk_error(error: LeadValidationError, ids: pd.Series | None) -> str:
    """The pandas path's message, with each row named by its lead id (Spark's batches have no
    file row numbers)."""
    parts = []
    for field_error in error.errors[:3]:
        where = ""
        if field_error.row is not None and ids is not None:
            where = f"lead {ids.iloc[field_error.row]!r}, "
        parts.append(f"{where}field {field_error.field!r}: {field_error.message}")
    more = f" (+{len(error.errors) - 3} more)" if len(error.errors) > 3 else ""
    return f"{'; '.join(parts)}{more}; fix these fields and score again"


_WORKER_ERROR = re.compile(r"leadml\.errors\.DataError: (.+)")


def _scored_schema(
    spark_frame: SparkFrame, id_column: str, with_features: bool, explores: bool
) -> Any:
    from pyspark.sql import types as T

    id_field = spark_frame.schema[id_column]
    fields = [
        T.StructField(id_column, id_field.dataType, True),
        T.StructField("probability", T.DoubleType(), False),
        T.StructField("score", T.LongType(), False),
        T.StructField("percentile", T.DoubleType(), False),
        T.StructField("grade", T.StringType(), False),
        T.StructField("is_mql", T.BooleanType(), False),
    ]
    if explores:
        fields.append(T.StructField("exploration", T.BooleanType(), False))
        fields.append(T.StructField("selection_probability", T.DoubleType(), False))
    if with_features:
        fields.append(T.StructField("features", T.StringType(), False))
    return T.StructType(fields)


def scored_frame(
    spark: SparkSession,
    leads: SparkFrame,
    scorer: Scorer,
    policy: ActivePolicy,
    *,
    with_features: bool = False,
) -> SparkFrame:
    """The leads scored (lazily): the lead id and every column of `SCORED_COLUMNS`; with
    `with_features`, also `features`: each lead's feature values as scored, as JSON (what the
    score ledger keeps)."""
    from pyspark.sql import functions as F

    id_column = scorer.id_column
    if id_column is None:
        raise DataError(
            f"model {scorer.info.name} has no lead id column, and Spark's output has no row order"
            " to tie scores to leads; train it with --id-column, or score with --engine pandas"
        )
    if id_column not in leads.columns:
        raise DataError(
            f"the leads have no {id_column!r} column (the model's lead id); add it, or score"
            " with --engine pandas to number the leads by row"
        )
    # A missing feature column is found here, before any work, with the pandas path's words.
    validate_frame(pd.DataFrame(columns=leads.columns), scorer.schema)
    features = [name for name in scorer.schema.feature_names if name in leads.columns]
    needed = leads.select(*dict.fromkeys([id_column, *features]))
    shared = spark.sparkContext.broadcast((scorer.pipeline, scorer.info, policy))
    key = uuid.uuid4().hex
    explores = policy.exploration_share > 0

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker_scorer, active = _loaded(key, shared)
        for batch in batches:
            try:
                scored = score_chunk(batch, worker_scorer, active)
            except LeadValidationError as error:
                ids = batch[id_column] if id_column in batch.columns else None
                raise DataError(_chunk_error(error, ids)) from None
            out = scored[[id_column, *SCORED_OUTPUTS, *(HANDOVER_OUTPUTS if explores else ())]]
            if with_features:
                lines = batch[features].to_json(orient="records", lines=True, date_format="iso")
                out = out.assign(features=lines.splitlines())
            yield out

    schema = _scored_schema(leads, id_column, with_features, explores)
    scored = needed.mapInPandas(score_batches, schema=schema)
    return scored.withColumn("model_version", F.lit(scorer.info.version).cast("string")).withColumn(
        "policy_version", F.lit(policy.version).cast("long")
    )


def check_paths(source: str, output: str) -> None:
    """Refuse, before Spark starts, a local input that is not there and an output Spark would
    refuse, write over someone's files, or put in a folder that does not exist (Spark would
    create the folders, so a typo would leave the scores somewhere unexpected)."""
    if _is_local(source) and not _local_path(source).exists():
        raise DataError(f"cannot read {source}: no such file; check the path")
    _check_output(output)
    if _is_local(output):
        folder = _local_path(output).absolute().parent
        if not folder.is_dir():
            raise DataError(
                f"cannot write {output}: the folder {folder} does not exist;"
                " create it first or choose another path"
            )


def _check_output(output: str) -> None:
    name = output.rstrip("/").lower()
    if name.endswith((".csv", ".json", ".xlsx")):
        raise DataError(
            f"cannot write {output}: the Spark engine writes Parquet; give a name such as"
            " scored.parquet (a folder of part files)"
        )
    if _is_local(output):
        path = _local_path(output)
        if path.is_file():
            raise DataError(
                f"cannot write {output}: it is a file; Spark writes a folder, give a new name"
            )
        if path.is_dir():
            foreign = [
                p.name
                for p in path.iterdir()
                if not (p.name.startswith(("part-", "_", ".")) or p.suffix in PARQUET_SUFFIXES)
            ]
            if foreign:
                raise DataError(
                    f"will not replace {output}: it holds files Spark did not write"
                    f" (e.g. {foreign[0]}); give a new output folder"
                )


def score_with_spark(
    source: str,
    output: str,
    scorer: Scorer,
    policy: ActivePolicy,
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    spark: SparkSession | None = None,
    with_features: bool = False,
    on_ledger_batch: Callable[[list[dict[str, Any]]], object] | None = None,
    ledger_rows: int = LEDGER_BATCH_ROWS,
) -> SparkScoring:
    """Score the leads at `source` on Spark and write them as Parquet to `output` (replaced if
    it holds an earlier Spark output); `with_features` adds each lead's features as scored
    (JSON), for the score ledger.

    With `on_ledger_batch`, the leads are also handed back to the driver for the score ledger,
    in lists of at most `ledger_rows` (each lead a dict with its features as scored, parsed),
    one partition in memory at a time. They are scored once: the scored leads are kept on the
    executors' disks while the output is written without the features, then streamed back.
    """
    _check_output(output)
    session = spark or spark_session(master, conf)
    leads = read_leads(session, source)
    keep_features = with_features or on_ledger_batch is not None
    try:
        scored = scored_frame(session, leads, scorer, policy, with_features=keep_features)
    except LeadValidationError as error:
        raise DataError(f"{source}: {error}") from None
    from pyspark import StorageLevel
    from pyspark.errors import PySparkException

    if on_ledger_batch is not None:
        scored = scored.persist(StorageLevel.DISK_ONLY)
    try:
        written_frame = scored if with_features else scored.drop("features")
        written_frame.write.mode("overwrite").parquet(output)
        written = session.read.parquet(output)
        counts = written.agg({"is_mql": "count"}).collect()[0][0], written.where("is_mql").count()
        if on_ledger_batch is not None:
            for batch in _driver_batches(scored, ledger_rows):
                on_ledger_batch(batch)
    except PySparkException as error:
        raise _plain_error(error, source) from None
    except Exception as error:  # py4j's wrapper of a failed job carries the worker's error text
        if _WORKER_ERROR.search(str(error)):
            raise _plain_error(error, source) from None
        raise
    finally:
        if on_ledger_batch is not None:
            scored.unpersist()
    leads_scored, mqls = int(counts[0]), int(counts[1])
    if leads_scored == 0:
        raise DataError(f"{source} has no leads to score")
    return SparkScoring(
        output=output,
        leads=leads_scored,
        mqls=mqls,
        model_name=scorer.info.name,
        model_version=scorer.info.version,
        policy_version=policy.version,
        master=str(session.sparkContext.master),
    )


def iter_ledger_batches(
    spark: SparkSession, output: str, rows: int = LEDGER_BATCH_ROWS
) -> Iterator[list[dict[str, Any]]]:
    """A Spark output written `with_features`, back on the driver in lists of at most `rows`
    leads (one dict each, `features` parsed), one partition in memory at a time: what the score
    ledger takes in bulk, one insert per list rather than one per lead."""
    return _driver_batches(spark.read.parquet(output), rows)


def _driver_batches(frame: SparkFrame, rows: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in frame.toLocalIterator(prefetchPartitions=False):
        lead = row.asDict()
        lead["features"] = json.loads(lead["features"])
        batch.append(lead)
        if len(batch) >= rows:
            yield batch
            batch = []
    if batch:
        yield batch


def _plain_error(error: Exception, source: str) -> LeadmlError:
    """A failed Spark job as one line: a lead's bad field in the pandas path's words, or the
    first line of Spark's own message."""
    found = _WORKER_ERROR.search(str(error))
    if found:
        return DataError(f"{source}: {found.group(1).strip()}")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return LeadmlError(
        f"Spark failed scoring {source}: {lines[0] if lines else type(error).__name__}"
    )


__all__ = [
    "DEFAULT_MASTER",
    "SCORED_COLUMNS",
    "SparkMissing",
    "SparkScoring",
    "iter_ledger_batches",
    "java_missing",
    "read_leads",
    "require_spark",
    "score_with_spark",
    "scored_frame",
    "spark_session",
]
