"""The MLflow face of a leadml model: a pyfunc that returns the conversion probability.

A registered version is a standard MLflow model, so `mlflow.pyfunc.load_model(...)` and
`mlflow models serve` work on it; inside, it carries the same bundle that `Scorer` loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types.schema import ColSpec, Schema

from leadml.bundle import Bundle, read_bundle
from leadml.schema import ColumnSpec, LeadSchema, Role

BUNDLE_ARTIFACT = "bundle"

_MLFLOW_TYPES = {
    Role.NUMERIC: "double",
    Role.BOOLEAN: "string",
    Role.CATEGORICAL: "string",
    Role.DATETIME: "string",
}


def _mlflow_type(spec: ColumnSpec) -> str:
    # MLflow refuses int64 input for a double column, and float input (a blank) for a long one:
    # a column of whole numbers that was never blank is read back as int64, so it is a long.
    if spec.role is Role.NUMERIC and spec.integer and spec.required:
        return "long"
    return _MLFLOW_TYPES[spec.role]


def signature_for(schema: LeadSchema) -> ModelSignature:
    """The MLflow signature, derived from the lead schema: features in, probability out."""
    inputs = [
        ColSpec(_mlflow_type(spec), spec.name, required=spec.required)  # type: ignore[arg-type]
        for spec in schema.features
    ]
    outputs = [ColSpec("double", "probability")]  # type: ignore[arg-type]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))  # type: ignore[arg-type]


def input_example(schema: LeadSchema, leads: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few real leads, typed as the signature says (text for anything not numeric)."""
    example = leads.reindex(columns=schema.feature_names).head(rows).copy()
    for spec in schema.features:
        if spec.role is Role.NUMERIC:
            numbers = pd.to_numeric(example[spec.name], errors="coerce")
            example[spec.name] = numbers.astype("int64" if _mlflow_type(spec) == "long" else float)
        else:
            example[spec.name] = (
                example[spec.name].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
            )
    return example


class LeadScoringModel(PythonModel):
    """pyfunc wrapper: a frame of leads in, calibrated conversion probabilities out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.bundle: Bundle = read_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        proba = self.bundle.pipeline.predict_proba(frame)[:, 1]
        return pd.DataFrame({"probability": np.asarray(proba, dtype=float)})
