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
from mlflow.types.schema import AnyType, ColSpec, Schema

from leadml.bundle import BUNDLE_ARTIFACT, Bundle, read_bundle
from leadml.schema import LeadSchema


def signature_for(schema: LeadSchema) -> ModelSignature:
    """The MLflow signature, derived from the lead schema: features in, probability out.

    Every input is `AnyType`: MLflow refuses, rather than converts, int64 for a double column,
    floats (a blank) for a long one, booleans or an all-blank column for a string one, which a
    CSV read of any real export produces somewhere. The fields, and which are required, come
    from the schema; their types and categories are in schema.json and the API's request model,
    and leadml's own preparation reads each value as the schema says.
    """
    inputs = [ColSpec(AnyType(), spec.name, required=spec.required) for spec in schema.features]
    outputs = [ColSpec("double", "probability")]  # type: ignore[arg-type]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))  # type: ignore[arg-type]


def input_example(schema: LeadSchema, leads: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few real leads (their feature columns as they were read)."""
    return leads.reindex(columns=schema.feature_names).head(rows).copy()


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
