"""Settings from the environment (prefix LEADML_) or a .env file; the one place that reads them."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MODEL_NAME = "lead-scoring"
DEFAULT_SIGNING_KEY_FILE = Path("~/.config/leadml/model-signing.key")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADML_", env_file=".env", extra="ignore", populate_by_name=True
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
        description="Scores the API holds in memory for the ledger writer; beyond, they are"
        " dropped (counted in /metrics) rather than slowing the scoring.",
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
