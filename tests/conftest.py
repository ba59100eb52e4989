"""Shared fixtures: demo data, a trained and registered model, PostgreSQL (see pg.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Models are signed and verified with a key kept outside every model folder: one for the whole
# session, in a private temporary folder (never the user's own ~/.config/leadml key).
os.environ.setdefault(
    "LEADML_MODEL_SIGNING_KEY_FILE",
    str(Path(tempfile.mkdtemp(prefix="leadml-signing-")) / "model-signing.key"),
)

from leadml import demo
from leadml.train import TrainConfig, TrainResult, train_model
from pg import postgres_url, store_url  # noqa: F401

DEMO_ROWS = 6000


@dataclass(frozen=True)
class TrainedModel:
    """A demo model trained, registered as champion, and exported, in a throwaway MLflow store."""

    result: TrainResult
    tracking_uri: str
    model_name: str
    version: str
    models_dir: Path

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@champion"

    @property
    def export_dir(self) -> Path:
        return self.models_dir / self.model_name


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    return demo.generate_leads(DEMO_ROWS, seed=1)


def demo_config(**changes: object) -> TrainConfig:
    base = TrainConfig(
        target=demo.TARGET, id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN, cv_folds=3
    )
    return TrainConfig(**{**vars(base), **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def demo_result(demo_frame: pd.DataFrame) -> TrainResult:
    return train_model(demo_frame, demo_config())


@pytest.fixture(scope="session")
def trained(
    demo_result: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrainedModel]:
    from leadml.registry import use_tracking
    from leadml.tracking import CHAMPION, export_model, log_training, promote

    folder = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    use_tracking(tracking_uri)
    logged = log_training(demo_result, model_name="test-leads", experiment="tests")
    promote("test-leads")
    models_dir = folder / "models"
    export_model(f"models:/test-leads@{CHAMPION}", models_dir)
    yield TrainedModel(
        result=demo_result,
        tracking_uri=tracking_uri,
        model_name="test-leads",
        version=logged.version,
        models_dir=models_dir,
    )
