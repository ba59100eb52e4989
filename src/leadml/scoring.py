"""Score leads with a trained model: probability, score 0-100 and percentile.

`Scorer` is what the CLI, the API and notebooks use. It loads a model bundle from a folder
(`models/<name>/`) or from the MLflow registry (`models:/<name>@champion`), checks leads against
the schema (`validation.py`), and has two paths that give the same numbers: frames for batches, dicts for one lead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadml.bundle import Bundle, ModelInfo
from leadml.fastpath import Predictor, build_predictor, probe_leads
from leadml.features import LeadPreparer
from leadml.registry import open_bundle
from leadml.validation import validate_frame, validate_records

SCORE_COLUMNS = ("probability", "score", "percentile")
#: Random leads the compiled fast path must score exactly as the pipeline before it is used.
FAST_PATH_PROBES = 200


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
        return cls.from_bundle(open_bundle(text, tracking_uri=tracking_uri), source=text)

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


#: Columns of the CRM import file, in order (see `crm_import_frame`).
CRM_COLUMNS = (
    "lead_id",
    "lead_score",
    "lead_grade",
    "is_mql",
    "top_reasons",
    "model_version",
    "policy_version",
)


def crm_import_frame(
    ranked: pd.DataFrame,
    *,
    id_column: str,
    model_version: str | None,
    policy_version: int | None,
) -> pd.DataFrame:
    """The ranked scores shaped for a CRM import: one row per lead, highest first, with the
    lead id, score, grade, MQL flag ("true"/"false"), the top reasons for it as one line of text,
    and the model and policy versions that produced them.

    `ranked` has the id column (or `row`), score, grade, is_mql and optionally `reasons_for`.
    """
    ids = ranked[id_column] if id_column in ranked.columns else ranked.get("row")
    reasons = ranked["reasons_for"] if "reasons_for" in ranked.columns else ""
    return pd.DataFrame(
        {
            "lead_id": ids,
            "lead_score": ranked["score"].astype(int),
            "lead_grade": ranked["grade"].astype(str),
            "is_mql": ranked["is_mql"].map(lambda v: "true" if bool(v) else "false"),
            "top_reasons": reasons,
            "model_version": model_version or "",
            "policy_version": "" if policy_version is None else str(policy_version),
        },
        columns=list(CRM_COLUMNS),
    )
