"""The read side of models: model URIs, the MLflow registry and model folders.

Everything that opens a trained model goes through here: the `Scorer`, the MQL policy book (for a
model's holdout), the API (at start and on every reload) and the CLI. `tracking` is the write
side (log a training, register, promote, export) and reads through this module too.

A model source is either a folder (`models/<name>/`, written by `leadml promote`) or an MLflow
URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/...`). Either way the bundle inside is
opened only after its signature verified (`bundle.read_bundle`, `leadml.signing`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from leadml.bundle import BUNDLE_ARTIFACT, Bundle, folder_fingerprint, read_bundle, read_info
from leadml.errors import ModelError, SettingsError
from leadml.settings import (
    TRACKING_SETTING,
    bound_mlflow_http_waits,
    check_local_store,
    local_store_path,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

# mlflow is imported in the functions that talk to it: it is about 800 modules and a second or
# more of start-up, which an API worker or a CLI command reading a model folder never needs.

REGISTRY_PREFIX = "models:/"
#: Model version tag pinning the bundle's digest (its signed files), compared before opening it:
#: another validly signed bundle (an older version, say) put in place of this version's artifacts
#: is refused.
BUNDLE_DIGEST_TAG = "leadml.bundle_digest"
#: How long a first training waits for another process that is creating the same SQLite store.
STORE_LOCK_TIMEOUT_S = 300.0


def use_tracking(tracking_uri: str) -> None:
    """Point MLflow's tracking and registry clients at one server (or SQLite file)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def open_tracking_store(tracking_uri: str, *, create: bool = False) -> Path | None:
    """Point MLflow at `tracking_uri` after checking it is the store the user meant.

    A local store (sqlite:///FILE, file:///FOLDER) must be in a folder that exists, and must
    exist already unless `create` (only `leadml train` starts a store): MLflow would otherwise
    make a new, empty one out of a typo. A new SQLite store is created under a file lock, so two
    first trainings started at once do not both run MLflow's migrations on it. A server is asked
    once, with bounded waits, so one that is down is one line before any work. Returns the path
    of a store this call created.
    """
    from mlflow import MlflowClient

    created = check_local_store(
        tracking_uri, what="MLflow tracking store", setting=TRACKING_SETTING, create=create
    )
    bound_mlflow_http_waits()
    use_tracking(tracking_uri)
    local = local_store_path(tracking_uri)
    database = local[0] if local is not None and local[1] else None
    lock = FileLock(f"{database}.lock", timeout=STORE_LOCK_TIMEOUT_S) if database else None
    try:
        with (
            lock or nullcontext(),
            mlflow_errors(f"open the MLflow tracking store {shown_uri(tracking_uri)}"),
        ):
            # The first look at a new SQLite store creates it (MLflow's migrations).
            client = MlflowClient(tracking_uri, tracking_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except Timeout:
        raise SettingsError(
            f"another leadml has held {database}.lock for"
            f" {STORE_LOCK_TIMEOUT_S:.0f} s; wait for it to finish, or delete the lock file if"
            " no leadml is running"
        ) from None
    return created if created is not None and created.exists() else None


def shown_uri(uri: str) -> str:
    """A URI fit for a message: without a password."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _unanswered(message: str) -> str | None:
    """Why an HTTP request to the tracking server failed, in a few words (None: it answered)."""
    if not message.startswith("API request to") and "Max retries exceeded" not in message:
        return None
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("timed out", "no answer in time"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
    ):
        if needle in message:
            return words
    return "no answer"


def _server_down(action: str, reason: str) -> ModelError:
    return ModelError(
        f"cannot {action}: the MLflow tracking server did not answer ({reason}, after"
        f" {os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '?')} retries); check"
        f" {TRACKING_SETTING} and that the server is up"
    )


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn an MLflow failure into a one-line `ModelError` saying what could not be done; a
    tracking server that does not answer is said so, without the retry story."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        message = str(error.message or error)
        reason = _unanswered(message)
        if reason is not None:
            raise _server_down(action, reason) from None
        raise ModelError(f"cannot {action}: {message.splitlines()[0]}") from None
    except requests.RequestException as error:
        raise _server_down(action, _unanswered(str(error)) or type(error).__name__) from None


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def is_mlflow_uri(source: str) -> bool:
    """True for an MLflow URI (`models:/...`, `runs:/...`, any `scheme://`), False for a folder."""
    return "://" in source or source.startswith((REGISTRY_PREFIX, "runs:/"))


def is_registry_uri(source: str) -> bool:
    """True for a model registry URI (`models:/NAME@ALIAS` or `models:/NAME/VERSION`)."""
    return source.startswith(REGISTRY_PREFIX)


def alias_of(source: str) -> str | None:
    """The alias a `models:/NAME@ALIAS` URI follows, else None."""
    if is_registry_uri(source) and "@" in source:
        return source.rsplit("@", 1)[1]
    return None


def resolve_version(model_uri: str) -> tuple[str, str]:
    """(name, version) of a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI."""
    if not is_registry_uri(model_uri):
        raise ModelError(f"{model_uri} is not a registry URI; use models:/NAME@ALIAS")
    reference = model_uri[len(REGISTRY_PREFIX) :]
    client = _client()
    with mlflow_errors(f"find {model_uri} in the registry"):
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
            return name, str(version.version)
        name, _, number = reference.partition("/")
        return name, str(client.get_model_version(name, number).version)


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        with mlflow_errors(f"read the {alias} of {name}"):  # a server that is down, say
            raise


def pinned_digest(name: str, version: str) -> str:
    """The bundle digest the registry pins for a version; refuses a version without one."""
    with mlflow_errors(f"read {name} v{version} in the registry"):
        tags = _client().get_model_version(name, version).tags or {}
    pinned = tags.get(BUNDLE_DIGEST_TAG)
    if not pinned:
        raise ModelError(
            f"{name} v{version} has no {BUNDLE_DIGEST_TAG} tag, so its files cannot be matched to"
            f" it; register models with `leadml train`, or tag this version with the digest of a"
            f" bundle you trust"
        )
    return str(pinned)


def load_bundle_from_mlflow(model_uri: str, tracking_uri: str | None = None) -> Bundle:
    """Download a registered model and open the leadml bundle inside it: its signature is
    checked with the signing key and (for a registered version) its digest against the tag the
    registry pins, before anything in it is parsed."""
    import mlflow

    if tracking_uri:
        use_tracking(tracking_uri)
    name, version = resolve_version(model_uri) if is_registry_uri(model_uri) else ("", "")
    with mlflow_errors(f"download {model_uri}"):
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{REGISTRY_PREFIX}{name}/{version}" if name else model_uri
            )
        )
    pinned = pinned_digest(name, version) if name else None
    bundle = read_bundle(
        local / "artifacts" / BUNDLE_ARTIFACT,
        expected_digest=pinned,
        pinned_by=f"{name} v{version}",
    )
    if name:
        bundle = replace(bundle, info=replace(bundle.info, name=name, version=version))
    return bundle


def open_bundle(source: str | Path, tracking_uri: str | None = None) -> Bundle:
    """Open the bundle a folder or an MLflow URI points to."""
    text = str(source)
    if is_mlflow_uri(text):
        return load_bundle_from_mlflow(text, tracking_uri=tracking_uri)
    return read_bundle(Path(text))


def exact_source(source: str, name: str, version: str | None) -> str:
    """The source of one model version: an alias may move, `models:/NAME/VERSION` does not."""
    if is_mlflow_uri(source) and version:
        return f"{REGISTRY_PREFIX}{name}/{version}"
    return source


def source_fingerprint(source: str, tracking_uri: str | None = None) -> str:
    """What a model source points to now: registry name/version, or a folder's
    name/version/sha256. Changes when the alias moves or the folder is replaced."""
    if is_registry_uri(source):
        if tracking_uri:
            use_tracking(tracking_uri)
        name, version = resolve_version(source)
        return f"{name}/{version}"
    if is_mlflow_uri(source):
        return source
    # A folder: the files as they are on disk now, so an edited model.json or a damaged
    # pipeline file counts as a change, is loaded, fails verification and is reported.
    folder = Path(source)
    try:
        info = read_info(folder)  # unverified: only names the version in messages
        claimed = f"{info.name}/{info.version}"
    except ModelError:
        claimed = "?/?"
    return f"{claimed}/{folder_fingerprint(folder)}"


def bundle_fingerprint(source: str, bundle: Bundle) -> str:
    """The fingerprint `source_fingerprint` gives for the source while it points to `bundle`."""
    if is_registry_uri(source):
        return f"{bundle.info.name}/{bundle.info.version}"
    if is_mlflow_uri(source):
        return source
    return f"{bundle.info.name}/{bundle.info.version}/{bundle.digest}"


def version_of(fingerprint: str) -> str | None:
    """The model version inside a fingerprint, if it names one."""
    parts = fingerprint.split("/")
    return parts[1] if len(parts) >= 2 and not is_mlflow_uri(fingerprint) else None


# --------------------------------------------------------------------------- the audit trail (read side)

#: Every move of the champion alias made by leadml is a tag of the registered model under this
#: prefix (one tag a move, named by its time, never rewritten): the audit trail that `rollback`
#: reads to find the previous champion.
AUDIT_TAG_PREFIX = "leadml.audit."


@dataclass(frozen=True)
class AliasMove:
    at: str
    action: str
    alias: str
    from_version: str | None
    to_version: str
    by: str
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return {
            "at": self.at,
            "action": self.action,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "by": self.by,
            "reason": self.reason,
        }


def audit_trail(model_name: str) -> list[AliasMove]:
    """The champion moves leadml recorded for `model_name`, oldest first."""
    with mlflow_errors(f"read the audit trail of {model_name}"):
        tags = _client().get_registered_model(model_name).tags
    moves = []
    for key, value in sorted(tags.items()):
        if key.startswith(AUDIT_TAG_PREFIX):
            try:
                moves.append(AliasMove(**json.loads(value)))
            except (TypeError, ValueError):
                continue
    return moves


def previous_champion(model_name: str, alias: str = "champion") -> str:
    """The version `alias` pointed at before the current one, from the audit trail."""
    current = alias_version(model_name, alias)
    if current is None:
        raise ModelError(f"{model_name} has no champion to roll back; promote a model first")
    for move in reversed(audit_trail(model_name)):
        if (
            move.alias == alias
            and move.to_version == current
            and move.from_version
            and move.from_version != current
        ):
            return move.from_version
    raise ModelError(
        f"the audit trail of {model_name} records no champion before v{current}; name the"
        " version to go back to with --to VERSION"
    )


# --------------------------------------------------------------------------- version history


@dataclass(frozen=True)
class VersionSummary:
    """One registered version as the model page compares them: aliases, when, on what, metrics."""

    version: str
    aliases: tuple[str, ...]
    created_at: str | None
    model_kind: str | None
    data_source: str | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "aliases": list(self.aliases),
            "created_at": self.created_at,
            "model_kind": self.model_kind,
            "data_source": self.data_source,
            "metrics": self.metrics,
        }


#: The run metrics of a training that hold the holdout figures (`holdout_roc_auc`, ...).
HOLDOUT_METRIC_PREFIX = "holdout_"


def model_versions(
    model_name: str, tracking_uri: str | None = None, limit: int = 50
) -> list[VersionSummary]:
    """The registered versions of `model_name`, newest first, with their holdout metrics."""
    if tracking_uri:
        use_tracking(tracking_uri)
    with mlflow_errors(f"list the versions of {model_name}"):
        client = _client()
        found = client.search_model_versions(f"name='{model_name}'")
        # Version search leaves aliases out in some MLflow releases; the model has them all.
        aliases_of: dict[str, list[str]] = {}
        for alias, number in (client.get_registered_model(model_name).aliases or {}).items():
            aliases_of.setdefault(str(number), []).append(alias)
        newest = sorted(found, key=lambda v: int(v.version), reverse=True)[:limit]
        summaries = []
        for version in newest:
            run = client.get_run(version.run_id) if version.run_id else None
            metrics = run.data.metrics if run is not None else {}
            params = run.data.params if run is not None else {}
            created = version.creation_timestamp
            summaries.append(
                VersionSummary(
                    version=str(version.version),
                    aliases=tuple(sorted(aliases_of.get(str(version.version), []))),
                    created_at=(
                        datetime.fromtimestamp(created / 1000, UTC).isoformat() if created else None
                    ),
                    model_kind=params.get("model_kind"),
                    data_source=params.get("data_source"),
                    metrics={
                        name.removeprefix(HOLDOUT_METRIC_PREFIX): float(value)
                        for name, value in metrics.items()
                        if name.startswith(HOLDOUT_METRIC_PREFIX)
                    },
                )
            )
    return summaries
