"""Settings from the environment (prefix LEADML_) or a .env file; the one place that reads them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from annotated_types import Ge, Gt, Le, Lt
from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadml.errors import SettingsError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MODEL_NAME = "lead-scoring"
DEFAULT_SIGNING_KEY_FILE = Path("~/.config/leadml/model-signing.key")
TRACKING_SETTING = "the tracking URI (--tracking-uri or MLFLOW_TRACKING_URI)"
#: MLflow's own defaults (120 s a request, 7 retries with a doubling back-off) keep a command
#: waiting for minutes on a tracking server that does not answer; these bound one MLflow call to
#: about 10 s x 3 tries + 1 s + 2 s of back-off. MLflow's variables, when set, win.
#: LEADML_ variables that are not settings, read where they are used.
OTHER_VARIABLES = {
    "LEADML_DEBUG": "the CLI prints the traceback of a bug",
    "LEADML_PAGE_SCREENSHOTS": "the page tests' screenshot folder",
}
ENV_FILE = Path(".env")
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADML_", env_file=ENV_FILE, extra="ignore", populate_by_name=True
    )

    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LEADML_TRACKING_URI"),
        description="MLflow tracking and registry URI.",
    )
    experiment: str = Field(default="leadml", description="MLflow experiment name.")
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")
    model_alias: str = Field(default="champion", description="Registry alias the API serves.")
    model_uri: str | None = Field(
        default=None,
        description="Serve this model instead (a models/<name> folder or an MLflow URI).",
    )
    models_dir: Path = Field(default=Path("models"), description="Where exported models live.")
    database_url: str = Field(
        default="sqlite:///leadml.db", description="App state: SQLite file or PostgreSQL URL."
    )
    api_keys: str = Field(
        default="",
        description="Comma-separated 'role:sha256hex' entries (roles: scorer, sales, admin).",
    )
    allow_anonymous: bool = Field(
        default=False, description="Serve without API keys (local demos only, loopback only)."
    )
    anonymous_role: str = Field(
        default="scorer",
        description="What an anonymous caller may do: scorer (default), or admin for a local demo.",
    )
    public_docs: bool = Field(
        default=False,
        description="Serve /docs and /openapi.json without a key even when keys are configured.",
    )
    model_signing_key: SecretStr | None = Field(
        default=None, description="Key that signs and verifies model bundles (32+ characters)."
    )
    model_signing_key_file: Path = Field(
        default=DEFAULT_SIGNING_KEY_FILE,
        description="Key file used when LEADML_MODEL_SIGNING_KEY is unset (made by training).",
    )
    workers_dir: Path | None = Field(
        default=None,
        description="Shared folder of the workers of one `leadml serve --workers N` (set by it).",
    )
    worker_sync_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Workers look for a reload or policy change made by another worker this often.",
    )
    max_batch_leads: int = Field(default=1000, ge=1, description="Most leads in one batch call.")
    max_body_bytes: int = Field(default=5_000_000, ge=1024, description="Largest request body.")
    reload_interval_seconds: float = Field(
        default=30.0, ge=0, description="Poll the registry alias this often (0 = never)."
    )
    policy_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="The API re-reads the MQL policy this often (0 = on every request).",
    )

    ledger: bool = Field(
        default=True,
        description="Keep every score in the app database's ledger (LEADML_LEDGER=off: don't).",
    )
    ledger_queue_rows: int = Field(
        default=50_000,
        ge=1,
        description="Scores the API holds in memory for the ledger writer; beyond, a request"
        " waits for room (LEADML_LEDGER_WAIT_SECONDS), then its scores are dropped (counted in"
        " /metrics).",
    )
    ledger_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a request waits for room in the ledger's full queue while the"
        " database keeps committing (back-pressure) before its scores are dropped and counted;"
        " 0 = never wait. No wait while the database refuses the writes.",
    )
    ledger_batch_rows: int = Field(
        default=500, ge=1, description="The ledger writer commits when this many scores wait..."
    )
    ledger_flush_seconds: float = Field(
        default=0.05, gt=0, description="...or when the oldest has waited this long."
    )
    rejection_reasons: str = Field(
        default="bad fit,no budget,already a customer,no answer,no authority,bad timing,other",
        description="Comma-separated reasons sales may give for rejecting an SQL.",
    )
    max_outcome_events: int = Field(
        default=5000, ge=1, description="Most outcome events in one POST /v1/outcomes."
    )
    outcome_window_days: float = Field(
        default=90.0,
        gt=0,
        description="A lead normally closes within this many days; MQLs older than this without"
        " an outcome count as missing, younger ones as too recent to have closed.",
    )

    @property
    def rejection_reason_list(self) -> tuple[str, ...]:
        return tuple(r.strip().lower() for r in self.rejection_reasons.split(",") if r.strip())

    @property
    def serving_uri(self) -> str:
        return self.model_uri or f"models:/{self.model_name}@{self.model_alias}"


def bound_mlflow_http_waits() -> None:
    """Bound MLflow's HTTP timeout and retries (MLFLOW_HTTP_DEFAULTS) unless the user set them."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment and .env; a value that does not fit is a one-line
    `SettingsError` naming the variable and what it accepts, not pydantic's report, and so is
    a LEADML_ variable that is no setting (`check_variable_names`)."""
    check_variable_names()
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_settings_error(error)) from None


def known_variables() -> set[str]:
    """Every variable name leadml reads, upper case (names are read case-insensitively)."""
    names = {name for field in Settings.model_fields for name in env_names(field)}
    return {name.upper() for name in names | set(OTHER_VARIABLES)}


def check_variable_names(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> None:
    """Refuse a LEADML_ variable, in the environment or the .env file, that leadml does not read.

    A misspelt setting is otherwise ignored and its default stays in force without a word: no
    API keys where keys were meant (so anonymous access, if it is also asked for), a new empty
    database instead of the one named, the default signing key file.
    """
    environ = os.environ if environ is None else environ
    env_file = ENV_FILE if env_file is None else env_file
    found = [(name, "the environment") for name in environ]
    if env_file.is_file():
        found += [(name, str(env_file)) for name in dotenv_values(env_file)]
    known = known_variables()
    for name, where in found:
        upper = name.upper()
        if not upper.startswith("LEADML_") or upper in known:
            continue
        # Compared without the prefix every name shares, which would make all names look close.
        suffixes = {name.removeprefix("LEADML_"): name for name in known}
        close = difflib.get_close_matches(upper.removeprefix("LEADML_"), suffixes, 1, 0.7)
        hint = f"did you mean {suffixes[close[0]]}? " if close else ""
        raise SettingsError(
            f"{name} (in {where}) is not a leadml setting; {hint}correct or remove it"
            " (a misspelt setting would leave its default in force; the settings are listed in"
            " the README)"
        )


def describe_settings_error(error: ValidationError) -> str:
    """One sentence for the first bad setting in `error` (and how many more there are)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    field = Settings.model_fields.get(name)
    variable = env_names(name)[0] if field is not None else name
    given = first.get("input")
    shown = f"={given!r}" if isinstance(given, str | int | float) else ""
    accepted = f"; it accepts {accepted_values(field)}" if field is not None else ""
    more = f" (and {len(problems) - 1} more bad settings)" if len(problems) > 1 else ""
    return (
        f"{variable}{shown} is not a valid setting: {first['msg'].lower()}{accepted};"
        f" fix it in the environment or .env{more}"
    )


def env_names(field_name: str) -> list[str]:
    """The environment variables that set a field, in the order they are looked up."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"LEADML_{field_name.upper()}"]


def accepted_values(field: FieldInfo) -> str:
    """What a field accepts, in words: "true or false", "a whole number of at least 1"."""
    annotation = field.annotation
    words = {
        bool: "true or false (also 1/0, yes/no, on/off)",
        int: "a whole number",
        float: "a number",
        Path: "a file or folder path",
    }.get(annotation, "text")  # type: ignore[call-overload,arg-type]
    for bound in field.metadata:
        if isinstance(bound, Ge):
            words += f" of at least {bound.ge}"
        elif isinstance(bound, Gt):
            words += f" above {bound.gt}"
        elif isinstance(bound, Le):
            words += f" of at most {bound.le}"
        elif isinstance(bound, Lt):
            words += f" below {bound.lt}"
    return words


def local_store_path(url: str) -> tuple[Path, bool] | None:
    """Where a local store lives: (the SQLite file, True) for sqlite:///FILE, (the folder, False)
    for file:///FOLDER or a bare path (MLflow's file store); None for servers and in-memory."""
    if url.startswith("sqlite:"):
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy reads them.
        rest = url[len("sqlite:") :]
        if not rest.startswith("//"):
            return None
        database = unquote(rest[2:].split("?", 1)[0])
        database = database[1:] if database.startswith("/") else database
        if database in ("", ":memory:"):
            return None
        return Path(database).expanduser(), True
    if url.startswith("file:"):
        return Path(unquote(urlparse(url).path)).expanduser(), False
    if "://" in url:
        return None
    return Path(url).expanduser(), False


def check_local_store(url: str, *, what: str, setting: str, create: bool) -> Path | None:
    """Refuse a local store URL a typo would turn into a new, empty store.

    Its folder must exist, always. The store itself must exist unless `create` (the command is
    one that may start a new store). Returns the path of a store that will be created, if any.
    """
    local = local_store_path(url)
    if local is None:
        return None
    path, is_file = local
    path = path.absolute()
    folder = path.parent if is_file else path
    if is_file and not folder.is_dir():
        raise SettingsError(
            f"cannot open the {what} {path}: the folder {folder} does not exist;"
            f" create the folder or correct {setting}"
        )
    if path.exists():
        if is_file and path.is_dir():
            raise SettingsError(
                f"cannot open the {what} {path}: it is a folder, not a file; correct {setting}"
            )
        return None
    if not create:
        raise SettingsError(f"there is no {what} at {path}; correct {setting}, or create it first")
    if not is_file and not path.parent.is_dir():
        raise SettingsError(
            f"cannot create the {what} {path}: the folder {path.parent} does not exist;"
            f" create the folder or correct {setting}"
        )
    return path
