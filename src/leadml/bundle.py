"""The model bundle: one folder holding a fitted pipeline and everything needed to trust it.

```
<folder>/
  pipeline.joblib   the calibrated scikit-learn pipeline
  model.json        schema, metrics, library versions, sha256 of pipeline.joblib, reference quantiles
  holdout.parquet   the holdout leads with outcome and probability (threshold tables, promotion)
  signature.json    sha256 of the three files above and an HMAC over them (leadml.signing)
```

The same folder is logged to MLflow inside the pyfunc model and exported to `models/<name>/`, so
scoring works with or without MLflow at hand. `read_bundle` reads every file into memory once,
checks the signature with the signing key (held outside the folder), and only then parses them:
nothing is unpickled, and nothing is read again from disk, before the whole bundle verified.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadml.errors import ModelError
from leadml.schema import LeadSchema
from leadml.signing import (
    SIGNATURE_FILE,
    SigningKey,
    manifest_digest,
    sha256_hex,
    signature_for,
    signing_key,
    verify,
    verifying_key,
)

if TYPE_CHECKING:
    from leadml.train import TrainResult

FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.joblib"
METADATA_FILE = "model.json"
HOLDOUT_FILE = "holdout.parquet"
#: The files the signature covers; a bundle holds exactly these and signature.json.
SIGNED_FILES = (PIPELINE_FILE, METADATA_FILE, HOLDOUT_FILE)
#: Largest bundle file read into memory for verification (a pipeline of a big LightGBM is MBs).
MAX_FILE_BYTES = 2 * 1024**3
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
    #: The verified contents of the signed files (name -> bytes), as they were checked.
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    #: sha256 over the signed files' digests: one value for the whole bundle.
    digest: str = ""

    def holdout(self) -> pd.DataFrame:
        """The holdout leads with `__outcome` and `__probability` columns (as verified)."""
        content = self.files.get(HOLDOUT_FILE)
        if content is None:
            raise ModelError(f"{self.folder} has no {HOLDOUT_FILE}; retrain to get one")
        return pd.read_parquet(io.BytesIO(content))

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
    key: SigningKey | None = None,
) -> ModelInfo:
    """Write and sign a bundle; returns the info with the pipeline's sha256 filled in."""
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
    sign_folder(folder, key)
    return info


def written_digest(folder: Path) -> str:
    """The digest of a bundle this process has just written and signed (not a verification)."""
    signature = json.loads((folder / SIGNATURE_FILE).read_text())
    return manifest_digest(signature["files"])


def sign_folder(folder: Path, key: SigningKey | None = None) -> str:
    """Write signature.json for the bundle files in `folder`; returns the bundle digest.

    Only for files this process has just written: signing vouches for whatever is there.
    """
    key = key or signing_key()
    files = {name: (folder / name).read_bytes() for name in SIGNED_FILES}
    signature = signature_for(files, key)
    (folder / SIGNATURE_FILE).write_text(json.dumps(signature, indent=2))
    return verify(folder, (folder / SIGNATURE_FILE).read_bytes(), files, key)


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


def _parse_info(content: bytes, where: Path) -> ModelInfo:
    try:
        return ModelInfo.from_dict(json.loads(content))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelError(f"{where} is damaged ({error}); export the model again") from None


def read_info(folder: Path) -> ModelInfo:
    """What model.json says, NOT verified: for listings and change detection only. Anything
    that scores, sets a policy or promotes uses `read_bundle`."""
    path = folder / METADATA_FILE
    if not path.exists():
        raise ModelError(f"{folder} is not a leadml model: {METADATA_FILE} is missing")
    return _parse_info(path.read_bytes(), path)


def _read_small(path: Path) -> bytes | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size > MAX_FILE_BYTES:
        raise ModelError(f"{path} is {size:,} bytes, larger than any leadml model file")
    return path.read_bytes()


def folder_fingerprint(folder: Path) -> str:
    """The bundle digest of the files as they are on disk now (re-hashed on every call, not
    verified): equals `Bundle.digest` of the bundle loaded from them while they are unchanged,
    and differs as soon as one is replaced, edited or damaged."""
    digests = {}
    for name in SIGNED_FILES:
        content = _read_small(folder / name)
        digests[name] = "missing" if content is None else sha256_hex(content)
    return manifest_digest(digests)


def read_bundle(
    folder: Path,
    key: SigningKey | None = None,
    *,
    expected_digest: str | None = None,
    pinned_by: str = "",
) -> Bundle:
    """Load a bundle after verifying its signature with the signing key (default: from the
    settings, see leadml.signing) and, if given, its digest against `expected_digest` (what the
    registry pins for `pinned_by`); refuses a bundle that is unsigned, changed or foreign."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"no model folder at {folder}; train a model or check the path")
    if not (folder / METADATA_FILE).exists():
        raise ModelError(f"{folder} is not a leadml model: {METADATA_FILE} is missing")
    files: dict[str, bytes] = {}
    for name in SIGNED_FILES:
        content = _read_small(folder / name)
        if content is None:
            raise ModelError(f"{folder} has no {name}; export the model again")
        files[name] = content
    key = key or verifying_key()
    digest = verify(folder, _read_small(folder / SIGNATURE_FILE), files, key)
    if expected_digest is not None and digest != expected_digest:
        raise ModelError(
            f"the files at {folder} are not the ones the registry pins for {pinned_by}"
            f" (digest {digest[:12]}... != {expected_digest[:12]}...); refusing a substituted model"
        )
    # Verified: from here on only the bytes that were checked are parsed.
    info = _parse_info(files[METADATA_FILE], folder / METADATA_FILE)
    if sha256_hex(files[PIPELINE_FILE]) != info.pipeline_sha256:
        raise ModelError(f"{folder / METADATA_FILE} names another {PIPELINE_FILE}; refusing it")
    pipeline = joblib.load(io.BytesIO(files[PIPELINE_FILE]))
    return Bundle(pipeline=pipeline, info=info, folder=folder, files=files, digest=digest)


def copy_bundle(
    bundle: Bundle, target: Path, key: SigningKey | None = None, **changes: Any
) -> ModelInfo:
    """Write a verified bundle to `target` (e.g. `models/<name>/`) with model.json fields
    changed, signed again. The folder is replaced whole (a reader sees the old or the new)."""
    info = replace(bundle.info, **changes)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, content in bundle.files.items():
            (staging / name).write_bytes(content)
        write_info(staging, info)
        sign_folder(staging, key)
        staging.chmod(0o755)  # mkdtemp makes it private; the folder is as readable as others
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info
