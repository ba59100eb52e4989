"""Score leads with a trained model: probability, score 0-100 and percentile.

`Scorer` is what the CLI, the API and notebooks use. It loads a model bundle from a folder
(`models/<name>/`) or from the MLflow registry (`models:/<name>@champion`), checks leads against
the schema, and has two paths that give the same numbers: frames for batches, dicts for one lead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadml.bundle import Bundle, ModelInfo, read_bundle
from leadml.errors import DataError
from leadml.fastpath import Predictor, build_predictor, probe_leads
from leadml.features import LeadPreparer
from leadml.schema import (
    LeadSchema,
    Role,
    blank_placeholders,
    boolean_series,
    datetime_series,
    is_missing,
    normalise_placeholders,
    parse_boolean,
)

SCORE_COLUMNS = ("probability", "score", "percentile")
#: Random leads the compiled fast path must score exactly as the pipeline before it is used.
FAST_PATH_PROBES = 200


@dataclass(frozen=True)
class FieldError:
    """One bad value: which field, which row, what is wrong."""

    field: str
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row + 1}, " if self.row is not None else ""
        return f"{where}field {self.field!r}: {self.message}"


class LeadValidationError(DataError):
    """Leads that cannot be scored, with every bad field named."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{shown}{more}; fix these fields and score again")


def _record_errors(
    record: Mapping[str, Any], schema: LeadSchema, placeholders: frozenset[str], row: int | None
) -> list[FieldError]:
    errors: list[FieldError] = []
    for spec in schema.features:
        value: Any = record.get(spec.name)
        if is_missing(value, placeholders):
            if spec.required:
                errors.append(FieldError(spec.name, "is required", row))
            continue
        if spec.role is Role.NUMERIC:
            if isinstance(value, bool):
                errors.append(FieldError(spec.name, "must be a number, not true/false", row))
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                errors.append(FieldError(spec.name, f"must be a number, got {value!r}", row))
                continue
            if math.isinf(number):
                errors.append(FieldError(spec.name, "must be a finite number", row))
        elif spec.role is Role.BOOLEAN and math.isnan(parse_boolean(value)):
            errors.append(
                FieldError(spec.name, f"must be yes/no or true/false, got {value!r}", row)
            )
        elif spec.role is Role.DATETIME:
            try:
                pd.Timestamp(value)
            except (TypeError, ValueError):
                errors.append(FieldError(spec.name, f"must be a date, got {value!r}", row))
        elif spec.role is Role.CATEGORICAL and not isinstance(value, str | int | float):
            errors.append(FieldError(spec.name, f"must be text, got {type(value).__name__}", row))
    return errors


def validate_records(records: Sequence[Mapping[str, Any]], schema: LeadSchema) -> None:
    placeholders = normalise_placeholders(schema.placeholders)
    errors: list[FieldError] = []
    for row, record in enumerate(records):
        errors.extend(
            _record_errors(record, schema, placeholders, row if len(records) > 1 else None)
        )
    if errors:
        raise LeadValidationError(errors)


def validate_frame(frame: pd.DataFrame, schema: LeadSchema) -> None:
    """Name every column that is missing or holds values of the wrong type."""
    placeholders = normalise_placeholders(schema.placeholders)
    errors: list[FieldError] = []
    for spec in schema.features:
        if spec.name not in frame.columns:
            if spec.required:
                errors.append(FieldError(spec.name, "column is required but missing"))
            continue
        raw = blank_placeholders(frame[spec.name], placeholders)
        present = raw.notna()
        if spec.role is Role.NUMERIC:
            parsed = pd.to_numeric(raw, errors="coerce")
            bad = present & parsed.isna()
        elif spec.role is Role.BOOLEAN:
            bad = present & boolean_series(raw).isna()
        elif spec.role is Role.DATETIME:
            bad = present & datetime_series(raw).isna()
        else:
            continue
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            errors.append(
                FieldError(
                    spec.name,
                    f"{int(bad.sum())} values of the wrong type, e.g. {raw.iloc[first]!r}"
                    f" ({spec.role.value} expected)",
                    first,
                )
            )
    if errors:
        raise LeadValidationError(errors)


def percentile_of(proba: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Share (0-100) of the reference leads scored at or below each probability."""
    if len(quantiles) < 2:
        return np.full(len(proba), 50.0)
    positions = np.searchsorted(quantiles, proba, side="right")
    return np.clip(100.0 * positions / len(quantiles), 0.0, 100.0)


def to_score(proba: np.ndarray) -> np.ndarray:
    """Score 0-100: the calibrated probability in points, so 37 means about 37 % convert."""
    return np.rint(np.clip(proba, 0.0, 1.0) * 100.0).astype(int)


class Scorer:
    """A loaded model, ready to score frames or single leads."""

    def __init__(self, pipeline: Pipeline, info: ModelInfo, source: str = "") -> None:
        self.pipeline = pipeline
        self.info = info
        self.source = source
        self.schema = info.schema
        self.preparer: LeadPreparer = pipeline.named_steps["prepare"]
        self.model = pipeline.named_steps["model"]
        self._quantiles = np.asarray(info.reference_quantiles, dtype=float)
        self._predictor: Predictor | None = None
        self.fast_path_off: str | None = None

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, bundle: Bundle, source: str = "") -> Scorer:
        return cls(bundle.pipeline, bundle.info, source or str(bundle.folder))

    @classmethod
    def load(cls, uri_or_path: str | Path, tracking_uri: str | None = None) -> Scorer:
        """Load from a folder (`models/lead-scoring`) or an MLflow URI (`models:/NAME@ALIAS`)."""
        text = str(uri_or_path)
        if "://" in text or text.startswith("models:/") or text.startswith("runs:/"):
            from leadml.tracking import load_bundle_from_mlflow

            bundle = load_bundle_from_mlflow(text, tracking_uri=tracking_uri)
            return cls.from_bundle(bundle, source=text)
        return cls.from_bundle(read_bundle(Path(text)), source=text)

    # -- scoring -------------------------------------------------------------------------------
    @property
    def id_column(self) -> str | None:
        return self.schema.id_column

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probabilities for a frame of leads (checked first)."""
        validate_frame(frame, self.schema)
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=float)

    @property
    def predictor(self) -> Predictor:
        """The compiled fast path, checked against the pipeline on probe leads once; the
        pipeline's own dict path if the model does not compile (`fast_path_off` says why)."""
        if self._predictor is None:
            probes = pd.DataFrame(probe_leads(self.schema, FAST_PATH_PROBES, seed=0))
            self._predictor, self.fast_path_off = build_predictor(self.pipeline, [probes])
        return self._predictor

    def predict_proba_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The same probabilities for leads as dicts, without building a DataFrame."""
        validate_records(records, self.schema)
        return np.asarray(self.predictor.predict_proba(records), dtype=float)

    def score(self, leads: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Probability, score and percentile per lead, in input order (with the id if known)."""
        if isinstance(leads, pd.DataFrame):
            proba = self.predict_proba(leads)
            ids = leads[self.id_column] if self.id_column in leads.columns else None
        else:
            records = list(leads)
            proba = self.predict_proba_records(records)
            ids = (
                pd.Series([r.get(self.id_column) for r in records])
                if self.id_column and any(self.id_column in r for r in records)
                else None
            )
        result = pd.DataFrame(
            {
                "probability": proba,
                "score": to_score(proba),
                "percentile": np.round(percentile_of(proba, self._quantiles), 1),
            }
        )
        if ids is not None:
            result.insert(0, self.id_column or "lead_id", ids.to_numpy())
        return result
