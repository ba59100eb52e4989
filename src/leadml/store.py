"""The app-state store: MQL policy versions, scored leads and sales outcomes (SQLite or PostgreSQL).

This is the only module that talks to the application database. The schema is owned by the Alembic
migrations shipped in `leadml/migrations`; `Store.migrate()` applies them (idempotent).

Decisions worth knowing:
- Policy versions count 1, 2, 3, ... per model name and are never overwritten; the current policy
  of a model name is its highest version.
- A scored lead may name the policy version that produced it; that (model name, version) must be
  stored already (foreign key), so every score can be traced to its MQL line.
- The score ledger (`scored_leads`) is append-only: every score is a new row, never updated. Each
  row keeps the features as scored, the reasons shown, where it came from (`SCORE_SOURCES`), and
  for retraining with inverse-propensity weights `exploration` and `selection_probability`.
- Sales outcome events (`outcome_events`: sql_accepted, sql_rejected, won, lost) are stored once per
  (lead id, event, time): a retried post is counted as duplicates, never twice.
- `outcomes` is one row per lead id, the lead's closing outcome: recording an outcome again
  replaces it (last write wins) and keeps `first_recorded_at`, the time the first outcome for that
  lead arrived. Closing events (won, lost, sql_rejected) update it in the same transaction, the
  latest by time winning.
- Naive datetimes are taken as UTC; everything read back is timezone-aware UTC.
- JSON columns store NaN/inf as null and numpy scalars as plain numbers.
- Every public write commits before it returns. SQLite runs with WAL, `synchronous=FULL` and foreign
  keys on, and writes take the write lock up front (BEGIN IMMEDIATE) so concurrent API workers wait
  for each other instead of failing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util.exc import CommandError
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from leadml.errors import DataError, LeadmlError, PolicyError
from leadml.threshold import POLICY_TYPES

#: The policy kinds a stored version may have: the registry in threshold.py.
POLICY_KINDS: Final = tuple(POLICY_TYPES)
OUTCOME_SOURCES: Final = ("api", "csv", "import")
#: Where a score came from: the single-lead route, a batch (API batch route), the pages, `leadml
#: score`.
SCORE_SOURCES: Final = ("api", "batch", "page", "cli")
#: What sales says happened to a lead.
OUTCOME_EVENTS: Final = ("sql_accepted", "sql_rejected", "won", "lost")
#: Events that close a lead: it converted (won) or will not (lost, rejected as an SQL).
CLOSING_EVENTS: Final = ("won", "lost", "sql_rejected")
#: Lead ids looked up at a time (SQL parameter lists stay well below every driver's limit).
LOOKUP_CHUNK: Final = 500
SUPPORTED_DIALECTS: Final = ("sqlite", "postgresql")
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
URL_HINT: Final = "check LEADML_DATABASE_URL"
#: How long a SQLite writer waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_S: Final = 30.0
#: Execution option that makes the SQLite `begin` hook take the write lock at once.
_WRITE_OPTION: Final = "leadml_write"


class StoreError(LeadmlError):
    """The application database cannot be opened, migrated, read or written."""


# --------------------------------------------------------------------------------------------------
# Records going in and coming out


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class PolicyRecordIn:
    """An MQL policy to store as a new version for `model_name`."""

    model_name: str
    model_version: str
    kind: str
    params: Mapping[str, Any]
    cutoff: float
    grade_bands: Any
    expected: Mapping[str, Any]
    sentence: str
    set_by: str
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.model_name:
            raise PolicyError("an MQL policy needs a model name; pass the registered model's name")
        if self.kind not in POLICY_KINDS:
            raise PolicyError(
                f"unknown MQL policy kind {self.kind!r}; use one of {', '.join(POLICY_KINDS)}"
            )
        if not math.isfinite(self.cutoff):
            raise PolicyError(f"the MQL cutoff must be a finite number, got {self.cutoff!r}")


@dataclass(frozen=True, kw_only=True)
class PolicyRecord(PolicyRecordIn):
    """A stored MQL policy version."""

    version: int
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ScoredLeadIn:
    """One score as served: the lead as sent and what the model and MQL policy made of it."""

    model_name: str
    model_version: str
    probability: float
    score: float
    grade: str
    is_mql: bool
    features: Mapping[str, Any] = field(default_factory=dict)
    lead_id: str | None = None
    policy_version: int | None = None
    scored_at: datetime | None = None  # None: the time it is recorded
    source: str = "api"
    reasons: Any = None
    exploration: bool = False
    #: The chance this lead was handed to sales under the policy; None: 1.0 for MQLs, else 0.0.
    selection_probability: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise DataError(
                f"a scored lead's probability must be between 0 and 1, got {self.probability!r}"
            )
        if self.source not in SCORE_SOURCES:
            raise DataError(
                f"unknown score source {self.source!r}; use one of {', '.join(SCORE_SOURCES)}"
            )
        chance = self.selection_probability
        if chance is not None and not 0.0 <= chance <= 1.0:
            raise DataError(f"a selection probability must be between 0 and 1, got {chance!r}")

    @property
    def handover_chance(self) -> float:
        if self.selection_probability is not None:
            return float(self.selection_probability)
        return 1.0 if self.is_mql else 0.0


class ScoreAnswer(NamedTuple):
    """One score as the API answered it, for the ledger: cheaper to make per request than a
    ScoredLeadIn (the API's writer turns thousands of them a second into rows).

    `answer` holds lead_id, probability, score, grade, is_mql, reasons, model_version,
    policy_version and optionally exploration and selection_probability, as in the response.
    """

    model_name: str
    features: Mapping[str, Any]
    answer: Mapping[str, Any]
    source: str
    scored_at: datetime


@dataclass(frozen=True, kw_only=True)
class ScoredLead:
    """A stored score."""

    id: int
    lead_id: str | None
    model_name: str
    model_version: str
    policy_version: int | None
    probability: float
    score: float
    grade: str
    is_mql: bool
    scored_at: datetime
    features: Mapping[str, Any]
    source: str
    reasons: Any
    exploration: bool
    selection_probability: float


@dataclass(frozen=True, kw_only=True)
class OutcomeEventIn:
    """One thing sales says happened to a lead, at the time it happened.

    `reason` says why an SQL was rejected (or a deal lost); `deal_value` is what a won deal is
    worth. Naive times are taken as UTC.
    """

    lead_id: str
    event: str
    occurred_at: datetime
    reason: str | None = None
    deal_value: float | None = None
    source: str = "api"

    def __post_init__(self) -> None:
        if not self.lead_id:
            raise DataError("an outcome event needs the lead id it belongs to")
        if self.event not in OUTCOME_EVENTS:
            raise DataError(
                f"unknown outcome event {self.event!r}; use one of {', '.join(OUTCOME_EVENTS)}"
            )
        if self.source not in OUTCOME_SOURCES:
            raise DataError(
                f"unknown outcome source {self.source!r}; use one of {', '.join(OUTCOME_SOURCES)}"
            )
        if self.deal_value is not None and not (
            math.isfinite(self.deal_value) and self.deal_value >= 0
        ):
            raise DataError(f"a deal value must be a number >= 0, got {self.deal_value!r}")


@dataclass(frozen=True)
class OutcomeEventsStored:
    """What became of a batch of outcome events: how many were new, how many were already there
    (same lead id, event and time), and which lead ids the ledger has never scored (kept anyway)."""

    received: int
    stored: int
    duplicates: int
    unseen_lead_ids: tuple[str, ...]

    @property
    def unseen_leads(self) -> int:
        return len(self.unseen_lead_ids)


@dataclass(frozen=True, kw_only=True)
class OutcomeIn:
    """A sales outcome for one lead."""

    lead_id: str
    converted: bool
    source: str = "api"
    outcome_at: datetime | None = None  # None: the time it is recorded

    def __post_init__(self) -> None:
        if not self.lead_id:
            raise DataError("an outcome needs the lead id it belongs to")
        if self.source not in OUTCOME_SOURCES:
            raise DataError(
                f"unknown outcome source {self.source!r}; use one of {', '.join(OUTCOME_SOURCES)}"
            )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The stored outcome of one lead (the latest one recorded)."""

    lead_id: str
    converted: bool
    source: str
    outcome_at: datetime
    recorded_at: datetime
    first_recorded_at: datetime


#: Columns of `Store.outcomes_joined_scores`, in order.
JOINED_COLUMNS: Final = (
    "lead_id",
    "model_version",
    "policy_version",
    "probability",
    "score",
    "grade",
    "is_mql",
    "scored_at",
    "converted",
    "outcome_at",
    "source",
    "features",
)


# --------------------------------------------------------------------------------------------------
# Tables (the migrations in leadml/migrations create exactly these)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; `timestamptz` on PostgreSQL, naive UTC text on SQLite.

    SQLite compares timestamps as text, so every value is stored in UTC with the same layout.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = as_utc(value)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


JSON_TYPE: Final = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

mql_policies = sa.Table(
    "mql_policies",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("params", JSON_TYPE, nullable=False),
    sa.Column("cutoff", sa.Float, nullable=False),
    sa.Column("grade_bands", JSON_TYPE, nullable=False),
    sa.Column("expected", JSON_TYPE, nullable=False),
    sa.Column("sentence", sa.Text, nullable=False),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

scored_leads = sa.Table(
    "scored_leads",
    metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.Text, nullable=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("grade", sa.Text, nullable=False),
    sa.Column("is_mql", sa.Boolean, nullable=False),
    sa.Column("scored_at", UTCDateTime, nullable=False),
    sa.Column("features", JSON_TYPE, nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default="api"),
    sa.Column("reasons", JSON_TYPE, nullable=True),
    sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("selection_probability", sa.Float, nullable=False, server_default="1.0"),
    sa.ForeignKeyConstraint(
        ["model_name", "policy_version"],
        ["mql_policies.model_name", "mql_policies.version"],
    ),
    sa.Index(None, "lead_id"),
    sa.Index(None, "model_name", "scored_at"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("lead_id", sa.Text, primary_key=True),
    sa.Column("converted", sa.Boolean, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("outcome_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("first_recorded_at", UTCDateTime, nullable=False),
)

outcome_events = sa.Table(
    "outcome_events",
    metadata,
    sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("deal_value", sa.Float, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("lead_id", "event", "occurred_at"),
    sa.Index(None, "occurred_at"),
)

#: The ledger columns written for each score, in the order of `_LEDGER_INSERT`.
LEDGER_WRITE_COLUMNS: Final = (
    "lead_id",
    "model_name",
    "model_version",
    "policy_version",
    "probability",
    "score",
    "grade",
    "is_mql",
    "scored_at",
    "features",
    "source",
    "reasons",
    "exploration",
    "selection_probability",
)


# --------------------------------------------------------------------------------------------------
# URLs, engines and error messages


def normalise_url(url: str) -> sa.URL:
    """Parse a database URL; plain PostgreSQL URLs get the psycopg 3 driver."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def to_json_value(value: Any) -> Any:
    """`value` made of plain JSON types: numpy scalars unwrapped, NaN/inf/NA as null."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic | Decimal):
        return to_json_value(value.item() if isinstance(value, np.generic) else float(value))
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_json_value(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    raise DataError(
        f"cannot store {type(value).__name__} value {value!r} as JSON; pass plain values"
    )


def json_dumps(value: Any) -> str:
    return json.dumps(to_json_value(value), allow_nan=False, ensure_ascii=False)


def _configure_sqlite_connection(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # Let the `begin` hook issue BEGIN itself instead of pysqlite's implicit, deferred one.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_store_engine(url: str) -> Engine:
    """An engine for the store's database; raises StoreError for an unusable URL."""
    try:
        parsed = normalise_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"cannot understand the database URL {url!r}; use e.g. sqlite:///leadml.db or "
            f"postgresql://user:password@host/dbname; {URL_HINT}"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"unsupported database {backend!r} in {display_url(parsed)}; "
            f"use SQLite or PostgreSQL; {URL_HINT}"
        )
    options: dict[str, Any] = {"json_serializer": json_dumps, "pool_pre_ping": True}
    if backend == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    try:
        engine = sa.create_engine(parsed, **options)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"no database driver for {display_url(parsed)} ({exc}); "
            f"use sqlite:/// or postgresql:// URLs; {URL_HINT}"
        ) from exc
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")


def driver_reason(exc: BaseException) -> str:
    """The database driver's own words, on one line, without the SQL that failed."""
    original = getattr(exc, "orig", None)
    return _first_line(str(original if original is not None else exc))


def open_failure_reason(exc: BaseException, url: sa.URL) -> str:
    """Why a connection could not be opened, e.g. "connection refused"."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(str(url.database)).expanduser().parent
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
    # libpq prefixes the cause with where it tried: keep only the cause.
    reason = driver_reason(exc).rsplit(": ", 1)[-1].strip()
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", reason)
    return reason[:1].lower() + reason[1:]


def _is_missing_table(exc: sa.exc.SQLAlchemyError) -> bool:
    reason = driver_reason(exc).lower()
    return "no such table" in reason or ("relation" in reason and "does not exist" in reason)


def query_failure_message(exc: sa.exc.SQLAlchemyError, url: sa.URL, action: str) -> str:
    where = display_url(url)
    if _is_missing_table(exc):
        return (
            f"the database at {where} has no leadml tables ({driver_reason(exc)}); "
            "run the store migrations first (Store.migrate())"
        )
    return f"database error at {where} while {action}: {driver_reason(exc)}"


# --------------------------------------------------------------------------------------------------
# Row conversions


def _policy_values(record: PolicyRecordIn, version: int, created_at: datetime) -> dict[str, Any]:
    return {
        "model_name": record.model_name,
        "version": version,
        "model_version": record.model_version,
        "kind": record.kind,
        "params": dict(record.params),
        "cutoff": float(record.cutoff),
        "grade_bands": record.grade_bands,
        "expected": dict(record.expected),
        "sentence": record.sentence,
        "set_by": record.set_by,
        "reason": record.reason,
        "created_at": created_at,
    }


def _policy_from_row(row: sa.RowMapping) -> PolicyRecord:
    return PolicyRecord(**{column.name: row[column.name] for column in mql_policies.columns})


def ledger_json(value: Any) -> str:
    """JSON text for a ledger cell: fast (pydantic-core) for plain values, NaN/inf as null."""
    try:
        return to_json(value, inf_nan_mode="null", fallback=_json_fallback).decode()
    except (PydanticSerializationError, TypeError, ValueError):
        return json_dumps(value)


def _json_fallback(value: Any) -> Any:
    return to_json_value(value)


def _sqlite_moment(moment: datetime) -> str:
    # The layout SQLAlchemy's SQLite DATETIME writes, so text comparison orders by time.
    return as_utc(moment).replace(tzinfo=None).isoformat(" ", "microseconds")


def _ledger_insert_sql(dialect_name: str) -> str:
    columns = ", ".join(LEDGER_WRITE_COLUMNS)
    if dialect_name == "sqlite":
        marks = ", ".join("?" for _ in LEDGER_WRITE_COLUMNS)
    else:
        json_columns = {"features", "reasons"}
        marks = ", ".join(
            "CAST(%s AS JSONB)" if name in json_columns else "%s" for name in LEDGER_WRITE_COLUMNS
        )
    return f"INSERT INTO scored_leads ({columns}) VALUES ({marks})"


def _ledger_params(row: ScoredLeadIn, now: datetime, sqlite_layout: bool) -> tuple[Any, ...]:
    """One ledger row as driver parameters, bypassing SQLAlchemy's per-value processing (the API
    writes thousands of rows a second and the writer shares the interpreter with the scoring)."""
    moment = now if row.scored_at is None else row.scored_at
    return (
        row.lead_id,
        row.model_name,
        row.model_version,
        row.policy_version,
        float(row.probability),
        float(row.score),
        row.grade,
        bool(row.is_mql),
        _sqlite_moment(moment) if sqlite_layout else as_utc(moment),
        ledger_json(dict(row.features)),
        row.source,
        None if row.reasons is None else ledger_json(row.reasons),
        bool(row.exploration),
        row.handover_chance,
    )


def _answer_params(entry: ScoreAnswer, sqlite_layout: bool) -> tuple[Any, ...]:
    """`_ledger_params` for a score as the API answered it."""
    answer = entry.answer
    lead_id = answer["lead_id"]
    is_mql = bool(answer["is_mql"])
    reasons = answer.get("reasons")
    chance = answer.get("selection_probability")
    return (
        None if lead_id is None else str(lead_id),
        entry.model_name,
        answer["model_version"] or "",
        answer["policy_version"],
        float(answer["probability"]),
        float(answer["score"]),
        answer["grade"],
        is_mql,
        _sqlite_moment(entry.scored_at) if sqlite_layout else entry.scored_at,
        ledger_json(entry.features),
        entry.source,
        None if reasons is None else ledger_json(reasons),
        bool(answer.get("exploration", False)),
        (1.0 if is_mql else 0.0) if chance is None else float(chance),
    )


def _score_from_row(row: sa.RowMapping) -> ScoredLead:
    return ScoredLead(**{column.name: row[column.name] for column in scored_leads.columns})


def _latest_outcome_per_lead(rows: Sequence[OutcomeIn]) -> list[OutcomeIn]:
    """One outcome per lead id, the last one given (an upsert cannot touch a row twice)."""
    return list({row.lead_id: row for row in rows}.values())


def _outcome_values(row: OutcomeIn, now: datetime) -> dict[str, Any]:
    return {
        "lead_id": row.lead_id,
        "converted": bool(row.converted),
        "source": row.source,
        "outcome_at": now if row.outcome_at is None else row.outcome_at,
        "recorded_at": now,
        "first_recorded_at": now,
    }


def _outcome_from_row(row: sa.RowMapping) -> Outcome:
    return Outcome(**{column.name: row[column.name] for column in outcomes.columns})


def _upsert_outcomes_statement(dialect_name: str) -> Any:
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(outcomes)
    replaced = ("converted", "source", "outcome_at", "recorded_at")
    return statement.on_conflict_do_update(
        index_elements=[outcomes.c.lead_id],
        set_={name: statement.excluded[name] for name in replaced},
    )


def _joined_scores_statement(model_name: str, since: datetime | None) -> sa.Select[Any]:
    """Per lead with an outcome, its latest score by `model_name` made no later than the outcome."""
    s, o = scored_leads, outcomes
    rank = (
        sa.func.row_number()
        .over(partition_by=s.c.lead_id, order_by=(s.c.scored_at.desc(), s.c.id.desc()))
        .label("score_rank")
    )
    conditions = [s.c.model_name == model_name, s.c.scored_at <= o.c.outcome_at]
    if since is not None:
        conditions.append(s.c.scored_at >= since)
    ranked = (
        sa.select(
            s.c.lead_id,
            s.c.model_version,
            s.c.policy_version,
            s.c.probability,
            s.c.score,
            s.c.grade,
            s.c.is_mql,
            s.c.scored_at,
            o.c.converted,
            o.c.outcome_at,
            o.c.source,
            s.c.features,
            rank,
        )
        .join_from(s, o, s.c.lead_id == o.c.lead_id)
        .where(*conditions)
        .subquery()
    )
    return (
        sa.select(*(ranked.c[name] for name in JOINED_COLUMNS))
        .where(ranked.c.score_rank == 1)
        .order_by(ranked.c.scored_at, ranked.c.lead_id)
    )


def _unique_events(events: Sequence[OutcomeEventIn]) -> list[OutcomeEventIn]:
    """The first of each (lead id, event, time) in the batch: a batch may repeat itself too."""
    unique: dict[tuple[str, str, datetime], OutcomeEventIn] = {}
    for event in events:
        unique.setdefault((event.lead_id, event.event, as_utc(event.occurred_at)), event)
    return list(unique.values())


def _event_values(event: OutcomeEventIn, now: datetime) -> dict[str, Any]:
    return {
        "lead_id": event.lead_id,
        "event": event.event,
        "occurred_at": event.occurred_at,
        "reason": event.reason,
        "deal_value": None if event.deal_value is None else float(event.deal_value),
        "source": event.source,
        "recorded_at": now,
    }


def _closing_outcomes(events: Sequence[OutcomeEventIn]) -> list[OutcomeIn]:
    """Per lead, its latest closing event as the lead's outcome (won = converted)."""
    latest: dict[str, OutcomeEventIn] = {}
    for event in events:
        if event.event not in CLOSING_EVENTS:
            continue
        known = latest.get(event.lead_id)
        if known is None or as_utc(event.occurred_at) >= as_utc(known.occurred_at):
            latest[event.lead_id] = event
    return [
        OutcomeIn(
            lead_id=event.lead_id,
            converted=event.event == "won",
            source=event.source,
            outcome_at=event.occurred_at,
        )
        for event in latest.values()
    ]


def _upsert_later_outcomes_statement(dialect_name: str) -> Any:
    """Like `_upsert_outcomes_statement`, but an outcome replaces only an earlier one."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(outcomes)
    replaced = ("converted", "source", "outcome_at", "recorded_at")
    return statement.on_conflict_do_update(
        index_elements=[outcomes.c.lead_id],
        set_={name: statement.excluded[name] for name in replaced},
        where=statement.excluded.outcome_at >= outcomes.c.outcome_at,
    )


def _insert_new_events_statement(dialect_name: str) -> Any:
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return (
        insert(outcome_events)
        .on_conflict_do_nothing(
            index_elements=[
                outcome_events.c.lead_id,
                outcome_events.c.event,
                outcome_events.c.occurred_at,
            ]
        )
        .returning(outcome_events.c.id)
    )


def _window(
    column: sa.ColumnElement[Any], since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if since is not None:
        conditions.append(column >= as_utc(since))
    if until is not None:
        conditions.append(column < as_utc(until))
    return conditions


#: Columns of `Store.ledger_frame`, in order.
LEDGER_COLUMNS: Final = (
    "ledger_id",
    "lead_id",
    "model_name",
    "model_version",
    "policy_version",
    "probability",
    "score",
    "grade",
    "is_mql",
    "exploration",
    "selection_probability",
    "source",
    "scored_at",
    "features",
    "reasons",
)
#: Columns of `Store.outcome_events_frame`, in order.
EVENT_COLUMNS: Final = (
    "lead_id",
    "event",
    "occurred_at",
    "reason",
    "deal_value",
    "source",
    "recorded_at",
)
#: Columns `attach_outcomes` adds to ledger rows.
OUTCOME_COLUMNS: Final = (
    "converted",
    "outcome",
    "outcome_at",
    "sql_status",
    "rejection_reason",
    "deal_value",
    "first_event_at",
)


def ledger_frame_from_rows(rows: Sequence[sa.RowMapping]) -> pd.DataFrame:
    frame = pd.DataFrame([dict(row) for row in rows], columns=list(LEDGER_COLUMNS))
    return frame.astype(
        {
            "ledger_id": "int64",
            "lead_id": "object",
            "model_name": "str",
            "model_version": "str",
            "policy_version": "Int64",
            "probability": "float64",
            "score": "float64",
            "grade": "str",
            "is_mql": "bool",
            "exploration": "bool",
            "selection_probability": "float64",
            "source": "str",
            "scored_at": "datetime64[us, UTC]",
            "features": "object",
            "reasons": "object",
        }
    )


def events_frame_from_rows(rows: Sequence[sa.RowMapping]) -> pd.DataFrame:
    frame = pd.DataFrame([dict(row) for row in rows], columns=list(EVENT_COLUMNS))
    return frame.astype(
        {
            "lead_id": "str",
            "event": "str",
            "occurred_at": "datetime64[us, UTC]",
            "reason": "object",
            "deal_value": "float64",
            "source": "str",
            "recorded_at": "datetime64[us, UTC]",
        }
    )


def attach_outcomes(ledger: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per lead id: the score that stands for the lead, with what sales said of it.

    The score that stands for a lead is its latest ledger row made at or before the lead's first
    outcome event (later scores could have seen what sales did), or its latest row when no event
    has come yet; a lead scored only after its first event is left out. Rows without a lead id
    cannot be joined and are left out too.

    Added columns (`OUTCOME_COLUMNS`): `converted` (True when won, False when lost or rejected as
    an SQL, <NA> while open), `outcome` (won / lost / sql_rejected, None while open) and
    `outcome_at` (when it closed: the first won, else the first lost or rejection), `sql_status`
    (accepted / rejected: the latest SQL decision, "accepted" when won without one),
    `rejection_reason`, `deal_value` (of the first won event) and `first_event_at`.
    """
    scored = ledger[ledger["lead_id"].notna()].copy()
    scored["lead_id"] = scored["lead_id"].astype(str)
    columns = [*ledger.columns, *OUTCOME_COLUMNS]
    if scored.empty:
        return _typed_joined(pd.DataFrame(columns=columns))
    summary = _summarise_events(events)
    scored = scored.merge(summary, how="left", left_on="lead_id", right_index=True)
    first = scored["first_event_at"]
    usable = first.isna() | (scored["scored_at"] <= first)
    scored = scored[usable].sort_values(["lead_id", "scored_at", "ledger_id"], kind="stable")
    chosen = scored.groupby("lead_id", sort=False).tail(1)
    chosen = chosen.sort_values(["scored_at", "ledger_id"], kind="stable").reset_index(drop=True)
    return _typed_joined(chosen[columns])


def _summarise_events(events: pd.DataFrame) -> pd.DataFrame:
    index = pd.Index([], name="lead_id", dtype="object")
    summary = pd.DataFrame(index=index, columns=[c for c in OUTCOME_COLUMNS])
    if events.empty:
        return summary
    ordered = events.sort_values(["occurred_at", "event"], kind="stable")
    grouped = ordered.groupby("lead_id", sort=False)
    first_event = grouped["occurred_at"].min()
    won = ordered[ordered["event"] == "won"].groupby("lead_id").head(1).set_index("lead_id")
    closed = ordered[ordered["event"].isin(["lost", "sql_rejected"])]
    closed = closed.groupby("lead_id").head(1).set_index("lead_id")
    sql = ordered[ordered["event"].isin(["sql_accepted", "sql_rejected"])]
    last_sql = sql.groupby("lead_id").tail(1).set_index("lead_id")
    rejected = ordered[ordered["event"] == "sql_rejected"].groupby("lead_id").tail(1)
    rejected = rejected.set_index("lead_id")
    summary = pd.DataFrame(index=first_event.index)
    summary["first_event_at"] = first_event
    summary["outcome"] = None
    summary.loc[closed.index, "outcome"] = closed["event"]
    summary.loc[won.index, "outcome"] = "won"
    summary["converted"] = summary["outcome"].map(
        {"won": True, "lost": False, "sql_rejected": False}
    )
    summary["outcome_at"] = pd.Series(pd.NaT, index=summary.index, dtype="datetime64[us, UTC]")
    summary.loc[closed.index, "outcome_at"] = closed["occurred_at"]
    summary.loc[won.index, "outcome_at"] = won["occurred_at"]
    status = last_sql["event"].map({"sql_accepted": "accepted", "sql_rejected": "rejected"})
    summary["sql_status"] = None
    summary.loc[won.index, "sql_status"] = "accepted"
    summary.loc[status.index, "sql_status"] = status
    summary["rejection_reason"] = None
    summary.loc[rejected.index, "rejection_reason"] = rejected["reason"]
    summary["deal_value"] = float("nan")
    summary.loc[won.index, "deal_value"] = won["deal_value"]
    return summary


def _typed_joined(frame: pd.DataFrame) -> pd.DataFrame:
    typed = ledger_frame_from_rows([]) if frame.empty else frame
    if frame.empty:
        for name in OUTCOME_COLUMNS:
            typed[name] = pd.Series(dtype="object")
    typed = typed.astype(
        {
            "converted": "boolean",
            "outcome_at": "datetime64[us, UTC]",
            "first_event_at": "datetime64[us, UTC]",
            "deal_value": "float64",
        }
    )
    for name in ("outcome", "sql_status", "rejection_reason"):
        typed[name] = typed[name].astype(object).where(typed[name].notna(), None)
    return typed


def joined_frame(rows: Sequence[sa.RowMapping]) -> pd.DataFrame:
    frame = pd.DataFrame([dict(row) for row in rows], columns=list(JOINED_COLUMNS))
    return frame.astype(
        {
            "lead_id": "str",
            "model_version": "str",
            "policy_version": "Int64",
            "probability": "float64",
            "score": "float64",
            "grade": "str",
            "is_mql": "bool",
            "scored_at": "datetime64[us, UTC]",
            "converted": "bool",
            "outcome_at": "datetime64[us, UTC]",
            "source": "str",
            "features": "object",
        }
    )


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations inside the package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


# --------------------------------------------------------------------------------------------------
# The store


class Store:
    """Scored leads, outcomes and MQL policy versions in one SQLite or PostgreSQL database."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._known_policies: set[tuple[str, int]] = set()

    @classmethod
    def from_url(cls, url: str) -> Store:
        """A store for `url` (sqlite:///path.db, postgresql://...); connects on first use."""
        return cls(create_store_engine(url))

    def close(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest version; does nothing when it is already there."""
        config = alembic_config()
        with self._transaction("upgrading the schema", write=True) as conn:
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot upgrade the database at {display_url(self.engine.url)}: "
                    f"{_first_line(str(exc))}; was it created by a newer leadml?"
                ) from exc

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None before the first migration."""
        with self._transaction("reading the schema version") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # -- MQL policies -------------------------------------------------------------------------

    def add_policy(self, record: PolicyRecordIn) -> PolicyRecord:
        """Store `record` as the next policy version of its model name; return the stored row."""
        with self._transaction("storing an MQL policy", write=True) as conn:
            return self._insert_policy(conn, record)

    def _insert_policy(self, conn: Connection, record: PolicyRecordIn) -> PolicyRecord:
        if conn.dialect.name == "postgresql":
            # Two writers must not both pick max(version) + 1. Readers and scorers are not blocked;
            # on SQLite, BEGIN IMMEDIATE already serialises writers.
            conn.exec_driver_sql("LOCK TABLE mql_policies IN SHARE ROW EXCLUSIVE MODE")
        latest = sa.select(sa.func.max(mql_policies.c.version)).where(
            mql_policies.c.model_name == record.model_name
        )
        version = (conn.execute(latest).scalar_one_or_none() or 0) + 1
        conn.execute(mql_policies.insert().values(_policy_values(record, version, self._clock())))
        stored = conn.execute(
            sa.select(mql_policies).where(
                mql_policies.c.model_name == record.model_name, mql_policies.c.version == version
            )
        )
        return _policy_from_row(stored.mappings().one())

    def current_policy(self, model_name: str) -> PolicyRecord | None:
        """The newest policy version of `model_name`, or None when it has none."""
        history = self.policy_history(model_name, limit=1)
        return history[0] if history else None

    def policy_history(self, model_name: str, limit: int = 100) -> list[PolicyRecord]:
        """The policy versions of `model_name`, newest first."""
        statement = (
            sa.select(mql_policies)
            .where(mql_policies.c.model_name == model_name)
            .order_by(mql_policies.c.version.desc())
            .limit(limit)
        )
        with self._transaction("reading MQL policies") as conn:
            return [_policy_from_row(row) for row in conn.execute(statement).mappings()]

    # -- scores and outcomes ------------------------------------------------------------------

    def record_scores(self, rows: Sequence[ScoredLeadIn]) -> int:
        """Append scored leads to the ledger in one transaction; returns how many were stored.

        Rows are only ever added. The API's ledger writer calls this with a group of rows at a
        time (group commit); `leadml score` with each chunk.
        """
        if not rows:
            return 0
        now = self._clock()
        with self._transaction("storing scored leads", write=True) as conn:
            self._check_policies_exist(conn, rows)
            name = conn.dialect.name
            params = [_ledger_params(row, now, name == "sqlite") for row in rows]
            conn.exec_driver_sql(_ledger_insert_sql(name), params)
        return len(rows)

    def record_score_answers(self, entries: Sequence[ScoreAnswer]) -> int:
        """`record_scores` for scores as the API answered them (its ledger writer's path)."""
        if not entries:
            return 0
        wanted = {
            (e.model_name, e.answer["policy_version"])
            for e in entries
            if e.answer["policy_version"] is not None
        }
        with self._transaction("storing scored leads", write=True) as conn:
            self._check_policy_versions(conn, wanted)
            name = conn.dialect.name
            params = [_answer_params(entry, name == "sqlite") for entry in entries]
            conn.exec_driver_sql(_ledger_insert_sql(name), params)
        return len(entries)

    def _check_policies_exist(self, conn: Connection, rows: Sequence[ScoredLeadIn]) -> None:
        wanted = {
            (row.model_name, row.policy_version) for row in rows if row.policy_version is not None
        }
        self._check_policy_versions(conn, wanted)

    def _check_policy_versions(self, conn: Connection, wanted: set[tuple[str, int]]) -> None:
        # Policy versions are never deleted: one found stays found.
        for model_name, version in sorted(wanted - self._known_policies):
            found = conn.execute(
                sa.select(mql_policies.c.version).where(
                    mql_policies.c.model_name == model_name, mql_policies.c.version == version
                )
            ).first()
            if found is None:
                raise PolicyError(
                    f"scores refer to MQL policy version {version} of {model_name!r}, which is "
                    "not in the store; store the policy first (add_policy) or leave it out"
                )
            self._known_policies.add((model_name, version))

    def recent_scores(self, model_name: str, limit: int = 100) -> list[ScoredLead]:
        """The latest scores made by `model_name`, newest first."""
        statement = (
            sa.select(scored_leads)
            .where(scored_leads.c.model_name == model_name)
            .order_by(scored_leads.c.scored_at.desc(), scored_leads.c.id.desc())
            .limit(limit)
        )
        with self._transaction("reading scored leads") as conn:
            return [_score_from_row(row) for row in conn.execute(statement).mappings()]

    def record_outcomes(self, rows: Sequence[OutcomeIn]) -> int:
        """Store outcomes, replacing a lead's earlier one; returns how many leads were written."""
        latest = _latest_outcome_per_lead(rows)
        if not latest:
            return 0
        now = self._clock()
        with self._transaction("storing outcomes", write=True) as conn:
            statement = _upsert_outcomes_statement(conn.dialect.name)
            conn.execute(statement, [_outcome_values(row, now) for row in latest])
        return len(latest)

    def record_outcome_events(self, events: Sequence[OutcomeEventIn]) -> OutcomeEventsStored:
        """Store sales outcome events once per (lead id, event, time), committed before it returns.

        An event already stored (a CRM retrying) counts as a duplicate and changes nothing.
        Closing events also update the lead's row in `outcomes` (the latest closing event wins).
        Lead ids the ledger has never scored are stored too and listed in the answer. (The API's
        ledger commits in groups, so a lead scored in the last moment may be listed as unseen.)
        """
        unique = _unique_events(events)
        if not unique:
            return OutcomeEventsStored(len(events), 0, len(events), ())
        now = self._clock()
        with self._transaction("storing outcome events", write=True) as conn:
            name = conn.dialect.name
            inserted = conn.execute(
                _insert_new_events_statement(name), [_event_values(e, now) for e in unique]
            )
            stored = len(inserted.all())
            closing = _closing_outcomes(unique)
            if closing:
                conn.execute(
                    _upsert_later_outcomes_statement(name),
                    [_outcome_values(row, now) for row in closing],
                )
            unseen = self._unseen_lead_ids(conn, sorted({e.lead_id for e in unique}))
        return OutcomeEventsStored(len(events), stored, len(events) - stored, tuple(unseen))

    def _unseen_lead_ids(self, conn: Connection, lead_ids: Sequence[str]) -> list[str]:
        seen: set[str] = set()
        for start in range(0, len(lead_ids), LOOKUP_CHUNK):
            chunk = list(lead_ids[start : start + LOOKUP_CHUNK])
            found = conn.execute(
                sa.select(scored_leads.c.lead_id)
                .where(scored_leads.c.lead_id.in_(chunk))
                .distinct()
            )
            seen.update(str(value) for value in found.scalars())
        return [lead_id for lead_id in lead_ids if lead_id not in seen]

    def ledger_frame(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Every ledger row scored in [since, until) (all when not given), oldest first.

        Columns: LEDGER_COLUMNS (`features` and `reasons` as dicts, times UTC).
        """
        s = scored_leads
        conditions = _window(s.c.scored_at, since, until)
        if model_name is not None:
            conditions.append(s.c.model_name == model_name)
        statement = (
            sa.select(s.c.id.label("ledger_id"), *(s.c[n] for n in LEDGER_COLUMNS[1:]))
            .where(*conditions)
            .order_by(s.c.scored_at, s.c.id)
        )
        with self._transaction("reading the score ledger") as conn:
            rows = list(conn.execute(statement).mappings())
        return ledger_frame_from_rows(rows)

    def outcome_events_frame(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        scored_since: datetime | None = None,
        scored_until: datetime | None = None,
    ) -> pd.DataFrame:
        """Outcome events that occurred in [since, until), of leads scored in [scored_since,
        scored_until) when those are given; oldest first. Columns: EVENT_COLUMNS."""
        e = outcome_events
        conditions = _window(e.c.occurred_at, since, until)
        if scored_since is not None or scored_until is not None:
            scored_ids = sa.select(scored_leads.c.lead_id).where(
                scored_leads.c.lead_id.is_not(None),
                *_window(scored_leads.c.scored_at, scored_since, scored_until),
            )
            conditions.append(e.c.lead_id.in_(scored_ids))
        statement = (
            sa.select(*(e.c[n] for n in EVENT_COLUMNS))
            .where(*conditions)
            .order_by(e.c.occurred_at, e.c.id)
        )
        with self._transaction("reading outcome events") as conn:
            rows = list(conn.execute(statement).mappings())
        return events_frame_from_rows(rows)

    def ledger_with_outcomes(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """The ledger joined to later outcomes, point in time: one row per lead scored in
        [since, until), with the features exactly as they were scored.

        Each lead's row is its latest score made at or before its first outcome event (or its
        latest score while no event has come), so nothing sales did after the score leaks into it;
        see `attach_outcomes` for the outcome columns. Columns: LEDGER_COLUMNS + OUTCOME_COLUMNS.
        `exploration` and `selection_probability` give each lead's chance of being handed to
        sales, for inverse-propensity weights.
        """
        ledger = self.ledger_frame(model_name=model_name, since=since, until=until)
        events = self.outcome_events_frame(scored_since=since, scored_until=until)
        return attach_outcomes(ledger, events)

    def get_outcome(self, lead_id: str) -> Outcome | None:
        """The outcome recorded for `lead_id`, or None."""
        statement = sa.select(outcomes).where(outcomes.c.lead_id == lead_id)
        with self._transaction("reading an outcome") as conn:
            row = conn.execute(statement).mappings().first()
        return None if row is None else _outcome_from_row(row)

    def outcomes_joined_scores(
        self, model_name: str, since: datetime | None = None
    ) -> pd.DataFrame:
        """Leads with an outcome next to the score `model_name` gave them before that outcome.

        One row per lead: its latest score by `model_name` made no later than the outcome (scores
        made after the outcome are left out), only scores made at or after `since` when given.
        Columns: JOINED_COLUMNS; times are UTC.
        """
        statement = _joined_scores_statement(model_name, since)
        with self._transaction("reading outcomes with scores") as conn:
            rows = list(conn.execute(statement).mappings())
        return joined_frame(rows)

    # -- retraining ---------------------------------------------------------------------------

    def outcomes_frame(self) -> pd.DataFrame:
        """Recorded outcomes as `lead_id, converted, outcome_at, recorded_at` (retraining).

        `recorded_at` is when the lead's first outcome arrived: a later correction replaces the
        outcome but not the time it was first known.
        """
        statement = sa.select(
            outcomes.c.lead_id,
            outcomes.c.converted,
            outcomes.c.outcome_at,
            outcomes.c.first_recorded_at.label("recorded_at"),
        )
        with self._transaction("reading outcomes") as conn:
            rows = [dict(row) for row in conn.execute(statement).mappings()]
        frame = pd.DataFrame(rows, columns=["lead_id", "converted", "outcome_at", "recorded_at"])
        for column in ("outcome_at", "recorded_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    # -- connections --------------------------------------------------------------------------

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            reason = open_failure_reason(exc, self.engine.url)
            raise StoreError(
                f"cannot open the database at {display_url(self.engine.url)}: {reason}; {URL_HINT}"
            ) from exc

    @contextmanager
    def _transaction(
        self,
        action: str,
        *,
        write: bool = False,
    ) -> Iterator[Connection]:
        """A connection in a transaction committed on exit; database errors become StoreError."""
        with self._connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            try:
                with conn.begin():
                    yield conn
            except sa.exc.SQLAlchemyError as exc:
                message = query_failure_message(exc, self.engine.url, action)
                raise StoreError(message) from exc
