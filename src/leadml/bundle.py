"""The model bundle: one folder holding a fitted pipeline and everything needed to trust it.

```
<folder>/
  pipeline.joblib   the calibrated scikit-learn pipeline
  model.json        schema, metrics, library versions, sha256 of pipeline.joblib, reference quantiles
  holdout.parquet   the holdout leads with outcome and probability (threshold tables, promotion)
```

The same folder is logged to MLflow inside the pyfunc model and exported to `models/<name>/`, so
scoring works with or without MLflow at hand. Loading refuses a pipeline whose sha256 differs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import dataclass, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadml.errors import ModelError
from leadml.schema import LeadSchema

if TYPE_CHECKING:
    from leadml.train import TrainResult

FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.joblib"
METADATA_FILE = "model.json"
HOLDOUT_FILE = "holdout.parquet"
#: Columns added to the holdout frame beside the lead's own fields.
OUTCOME_COLUMN = "__outcome"
PROBABILITY_COLUMN = "__probability"
#: The name of the bundle folder inside a logged MLflow model's artifacts.
BUNDLE_ARTIFACT = "bundle"

_LIBRARIES = ("leadml", "scikit-learn", "lightgbm", "pandas", "numpy", "mlflow", "joblib")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """What model.json says about a bundle."""

    name: str
    kind: str
    trained_at: str
    schema: LeadSchema
    metrics: dict[str, float]
    calibration: str
    selection_reason: str
    reference_quantiles: tuple[float, ...]
    libraries: dict[str, str]
    pipeline_sha256: str
    version: str | None = None
    run_id: str | None = None
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "kind": self.kind,
            "trained_at": self.trained_at,
            "calibration": self.calibration,
            "selection_reason": self.selection_reason,
            "metrics": self.metrics,
            "libraries": self.libraries,
            "sha256": {PIPELINE_FILE: self.pipeline_sha256},
            "reference_quantiles": list(self.reference_quantiles),
            "schema": self.schema.to_dict(),
            "extra": self.extra or {},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            name=data["name"],
            kind=data["kind"],
            trained_at=data["trained_at"],
            schema=LeadSchema.from_dict(data["schema"]),
            metrics={k: float(v) for k, v in data["metrics"].items()},
            calibration=data["calibration"],
            selection_reason=data.get("selection_reason", ""),
            reference_quantiles=tuple(float(q) for q in data["reference_quantiles"]),
            libraries=dict(data.get("libraries", {})),
            pipeline_sha256=data["sha256"][PIPELINE_FILE],
            version=data.get("version"),
            run_id=data.get("run_id"),
            extra=data.get("extra") or {},
        )


@dataclass(frozen=True)
class Bundle:
    pipeline: Pipeline
    info: ModelInfo
    folder: Path

    def holdout(self) -> pd.DataFrame:
        """The holdout leads with `__outcome` and `__probability` columns."""
        path = self.folder / HOLDOUT_FILE
        if not path.exists():
            raise ModelError(f"{self.folder} has no {HOLDOUT_FILE}; retrain to get one")
        return pd.read_parquet(path)

    def holdout_parts(self) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Outcomes, probabilities at training time, and the leads of the holdout."""
        holdout = self.holdout()
        return (
            holdout[OUTCOME_COLUMN].to_numpy(dtype=int),
            holdout[PROBABILITY_COLUMN].to_numpy(dtype=float),
            holdout.drop(columns=[OUTCOME_COLUMN, PROBABILITY_COLUMN]),
        )


def write_bundle(
    folder: Path,
    *,
    pipeline: Pipeline,
    info: ModelInfo,
    holdout: pd.DataFrame,
    holdout_y: np.ndarray,
    holdout_proba: np.ndarray,
) -> ModelInfo:
    """Write a bundle; returns the info with the pipeline's sha256 filled in."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline_path = folder / PIPELINE_FILE
    joblib.dump(pipeline, pipeline_path, compress=3)
    info = replace(info, pipeline_sha256=sha256_of(pipeline_path))
    holdout_frame = holdout.copy()
    holdout_frame[OUTCOME_COLUMN] = holdout_y.astype(int)
    holdout_frame[PROBABILITY_COLUMN] = holdout_proba.astype(float)
    # Mixed object columns (numbers and text in one CRM field) do not fit Parquet's typed columns.
    for column in holdout_frame.columns:
        if holdout_frame[column].dtype == object:
            holdout_frame[column] = holdout_frame[column].astype("string")
    holdout_frame.to_parquet(folder / HOLDOUT_FILE, index=False)
    write_info(folder, info)
    return info


def write_trained_bundle(
    folder: Path,
    result: TrainResult,
    *,
    name: str,
    run_id: str | None = None,
    version: str | None = None,
) -> ModelInfo:
    """Write what one training produced as a bundle folder."""
    info = ModelInfo(
        name=name,
        kind=result.model_kind,
        trained_at=result.trained_at,
        schema=result.schema,
        metrics=result.metrics,
        calibration=result.calibration_method,
        selection_reason=result.selection_reason,
        reference_quantiles=tuple(float(q) for q in result.reference_quantiles),
        libraries=library_versions(),
        pipeline_sha256="",
        run_id=run_id,
        version=version,
    )
    return write_bundle(
        folder,
        pipeline=result.pipeline,
        info=info,
        holdout=result.holdout,
        holdout_y=result.holdout_y,
        holdout_proba=result.holdout_proba,
    )


def write_info(folder: Path, info: ModelInfo) -> None:
    (folder / METADATA_FILE).write_text(json.dumps(info.to_dict(), indent=2))


def read_info(folder: Path) -> ModelInfo:
    path = folder / METADATA_FILE
    if not path.exists():
        raise ModelError(f"{folder} is not a leadml model: {METADATA_FILE} is missing")
    try:
        return ModelInfo.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"{path} is damaged ({error}); export the model again") from None


def read_bundle(folder: Path) -> Bundle:
    """Load a bundle, refusing a pipeline file whose sha256 does not match model.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"no model folder at {folder}; train a model or check the path")
    info = read_info(folder)
    pipeline_path = folder / PIPELINE_FILE
    if not pipeline_path.exists():
        raise ModelError(f"{folder} has no {PIPELINE_FILE}; export the model again")
    actual = sha256_of(pipeline_path)
    if actual != info.pipeline_sha256:
        raise ModelError(
            f"{pipeline_path} does not match the sha256 in {METADATA_FILE}"
            f" ({actual[:12]}... != {info.pipeline_sha256[:12]}...); refusing a tampered model"
        )
    pipeline = joblib.load(pipeline_path)
    return Bundle(pipeline=pipeline, info=info, folder=folder)


def copy_bundle(source: Path, target: Path, **changes: Any) -> ModelInfo:
    """Copy a bundle folder (e.g. to `models/<name>/`), updating model.json fields."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    info = replace(read_info(target), **changes)
    write_info(target, info)
    return info
