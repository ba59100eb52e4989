"""The compiled fast path gives the MLflow model's probabilities (1e-9), pandas-free."""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from api.lead_model import build_lead_model
from conftest import TrainedModel, demo_config
from leadml import demo
from leadml.fastpath import (
    CompiledPredictor,
    PipelinePredictor,
    RecordEncoder,
    build_predictor,
    interp_columns,
    probe_leads,
    verify_fast_path,
)
from leadml.registry import load_bundle_from_mlflow
from leadml.schema import ColumnSpec, LeadSchema, Role
from leadml.scoring import Scorer
from leadml.train import TrainResult, train_model

N_RANDOM_LEADS = 3000


@pytest.fixture(scope="module")
def champion(trained: TrainedModel) -> Scorer:
    bundle = load_bundle_from_mlflow(trained.champion_uri, tracking_uri=trained.tracking_uri)
    return Scorer.from_bundle(bundle, source=trained.champion_uri)


@pytest.fixture(scope="module")
def logistic() -> TrainResult:
    frame = demo.generate_leads(2500, seed=11)
    return train_model(frame, demo_config(candidates=("logistic",)))


def random_leads(schema: LeadSchema, n: int, seed: int) -> list[dict[str, Any]]:
    """Leads as a CRM would send them: known and unknown categories, blanks, placeholders."""
    rng = np.random.default_rng(seed)
    return [
        {"lead_id": f"r{i}", **{s.name: _random_value(s, rng) for s in schema.features}}
        for i in range(n)
    ]


def _random_value(spec: ColumnSpec, rng: np.random.Generator) -> Any:
    roll = rng.random()
    if not spec.required and roll < 0.15:
        return [None, "Select", "", " n/a ", "Not provided"][int(rng.integers(5))]
    if spec.role is Role.NUMERIC:
        magnitude = float(rng.lognormal(1.5, 2.0))
        if spec.integer:
            return round(magnitude)
        return magnitude if rng.random() < 0.9 else -magnitude
    if spec.role is Role.BOOLEAN:
        return [True, False, "Yes", "No", "yes", "NO"][int(rng.integers(6))]
    if spec.role is Role.CATEGORICAL:
        if spec.categories and rng.random() < 0.75:
            return spec.categories[int(rng.integers(len(spec.categories)))]
        return f"never seen {int(rng.integers(50))}"
    moment = pd.Timestamp("2019-06-01") + pd.Timedelta(minutes=int(rng.integers(0, 4_000_000)))
    offset = ["", "Z", "+05:30", "-08:00"][int(rng.integers(4))]
    return moment.isoformat() + offset


def mlflow_frame(schema: LeadSchema, leads: list[dict[str, Any]]) -> pd.DataFrame:
    """The same leads typed as the MLflow signature wants them (numbers, or text)."""
    columns: dict[str, Any] = {}
    for spec in schema.features:
        values = [lead.get(spec.name) for lead in leads]
        if spec.role is Role.NUMERIC:
            numbers = [v if isinstance(v, int | float) else np.nan for v in values]
            whole = spec.integer and spec.required
            columns[spec.name] = pd.Series(numbers, dtype="int64" if whole else float)
        else:
            columns[spec.name] = pd.Series([_as_text(v) for v in values], dtype=object)
    return pd.DataFrame(columns)


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return None if value is None else str(value)


def test_the_fast_path_gives_the_mlflow_models_probabilities(
    trained: TrainedModel, champion: Scorer
) -> None:
    leads = random_leads(champion.schema, N_RANDOM_LEADS, seed=3)
    lead_model = build_lead_model(champion.schema)
    records = lead_model.parse_many(leads)  # what the API hands to the fast path
    predictor = CompiledPredictor(champion.pipeline)
    fast = predictor.predict_proba(records)
    pyfunc = mlflow.pyfunc.load_model(trained.champion_uri)
    expected = pyfunc.predict(mlflow_frame(champion.schema, leads))["probability"].to_numpy()
    assert len(fast) == len(expected) == N_RANDOM_LEADS
    assert np.max(np.abs(fast - expected)) <= 1e-9
    one_at_a_time = np.concatenate([predictor.predict_proba([r]) for r in records[:300]])
    assert np.max(np.abs(one_at_a_time - expected[:300])) <= 1e-9
    # The leads cover what the fast path must get right, not only the easy cases.
    values = [v for lead in leads for v in lead.values()]
    assert any(isinstance(v, str) and v.startswith("never seen") for v in values)
    assert any(v in ("Select", "", " n/a ") for v in values)
    assert any(v is None for v in values)


def test_the_encoder_matches_the_preparers_frame_path(champion: Scorer) -> None:
    probes = pd.DataFrame(probe_leads(champion.schema, 500, seed=5))
    encoder = RecordEncoder(champion.preparer)
    expected = champion.preparer.transform(probes)
    records: list[dict[str, Any]] = probes.to_dict("records")  # type: ignore[assignment]
    np.testing.assert_array_equal(encoder.transform(records), expected)
    np.testing.assert_array_equal(encoder.transform(records[:1]), expected[:1])


def test_a_logistic_pipeline_compiles_to_the_same_probabilities(logistic: TrainResult) -> None:
    predictor = CompiledPredictor(logistic.pipeline)
    assert predictor.linear_head is not None
    probes = pd.DataFrame(probe_leads(logistic.schema, 1000, seed=1))
    assert verify_fast_path(predictor, logistic.pipeline, probes) <= 1e-9
    assert verify_fast_path(predictor, logistic.pipeline, logistic.holdout) <= 1e-9


def test_isotonic_calibration_compiles_too(logistic: TrainResult) -> None:
    preparer = logistic.pipeline.named_steps["prepare"]
    head = logistic.pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    frame = demo.generate_leads(3000, seed=12)
    isotonic = CalibratedClassifierCV(head, method="isotonic")  # head is frozen already
    isotonic.fit(preparer.transform(frame), frame[demo.TARGET].to_numpy())
    pipeline = Pipeline([("prepare", preparer), ("model", isotonic)])
    predictor = CompiledPredictor(pipeline)
    probes = pd.DataFrame(probe_leads(logistic.schema, 1000, seed=2))
    assert verify_fast_path(predictor, pipeline, probes) <= 1e-9


def test_the_linear_shares_add_up_to_the_decision_function(logistic: TrainResult) -> None:
    predictor = CompiledPredictor(logistic.pipeline)
    head = predictor.linear_head
    assert head is not None
    matrix = predictor.prepare(logistic.holdout.to_dict("records"))
    model_head = logistic.pipeline.named_steps["model"].calibrated_classifiers_[0].estimator
    expected = model_head.decision_function(matrix)
    np.testing.assert_allclose(
        head.constant + head.per_column(matrix).sum(axis=1), expected, rtol=0, atol=1e-12
    )


def test_an_unknown_pipeline_keeps_the_pipelines_own_path(champion: Scorer) -> None:
    preparer = champion.preparer
    frame = demo.generate_leads(1500, seed=4)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    tree.fit(preparer.transform(frame), frame[demo.TARGET])
    model = CalibratedClassifierCV(FrozenEstimator(tree), method="sigmoid")
    model.fit(preparer.transform(frame), frame[demo.TARGET])
    pipeline = Pipeline([("prepare", preparer), ("model", model)])
    predictor, reason = build_predictor(pipeline, [frame.head(50)])
    assert isinstance(predictor, PipelinePredictor)
    assert reason is not None and "DecisionTreeClassifier" in reason
    records = frame.head(50).to_dict("records")
    expected = pipeline.predict_proba(frame.head(50))[:, 1]
    np.testing.assert_allclose(predictor.predict_proba(records), expected, rtol=0, atol=1e-12)


def test_the_champion_compiles(champion: Scorer) -> None:
    predictor, reason = build_predictor(
        champion.pipeline, [pd.DataFrame(probe_leads(champion.schema, 100))]
    )
    assert reason is None
    assert predictor.kind == "compiled"


def test_columnwise_interpolation_is_numpys(champion: Scorer) -> None:
    rng = np.random.default_rng(0)
    grid = np.sort(np.round(rng.normal(size=(40, 5)) * 3), axis=0)  # many repeated points
    values = np.linspace(0, 1, 40)
    x = np.round(rng.normal(size=(300, 5)) * 4, 1)
    x[:3] = grid[[0, -1, 7]]  # exact hits, both ends
    got = interp_columns(x, grid, values)
    expected = np.column_stack([np.interp(x[:, c], grid[:, c], values) for c in range(5)])
    np.testing.assert_array_equal(got, expected)
