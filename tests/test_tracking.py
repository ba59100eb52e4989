"""MLflow round trip in a throwaway SQLite tracking store (the `trained` fixture)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import TrainedModel
from leadml.bundle import PIPELINE_FILE, read_bundle, read_info
from leadml.errors import ModelError
from leadml.scoring import Scorer
from leadml.tracking import CHALLENGER, CHAMPION, log_training, promote


def test_run_has_params_metrics_and_artifacts(trained: TrainedModel) -> None:
    client = MlflowClient()
    version = client.get_model_version_by_alias(trained.model_name, CHAMPION)
    run = client.get_run(version.run_id)
    assert run.data.params["model_kind"] == trained.result.model_kind
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(trained.result.metrics["roc_auc"])
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"model_card.md", "schema.json", "report.json", "leakage.json", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(version.run_id, "plots")}
    assert {"plots/calibration.png", "plots/threshold.png"} <= plots
    assert {"threshold_table.csv", "traits.csv"} <= artifacts
    card = mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card.md")
    assert "sales_status" in card
    assert "## What converts" in card


def test_signature_derives_from_the_schema(trained: TrainedModel) -> None:
    info = mlflow.models.get_model_info(trained.champion_uri)
    inputs = {spec.name: spec for spec in info.signature.inputs.inputs}
    assert set(inputs) == set(trained.result.schema.feature_names)
    assert not inputs["industry"].required
    assert inputs["lead_source"].required


def test_mlflow_pyfunc_takes_leads_as_a_csv_gives_them(
    trained: TrainedModel, demo_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """Subsets of a CSV read back with ints, blanks-only and booleans where training had others."""
    leads = demo_frame.sample(60, random_state=3).copy()
    leads["industry"] = None
    leads["requested_demo"] = leads["requested_demo"] == "Yes"
    leads.to_csv(tmp_path / "some.csv", index=False)
    some = pd.read_csv(tmp_path / "some.csv")
    model = mlflow.pyfunc.load_model(trained.champion_uri)
    scorer = Scorer.load(trained.export_dir)
    np.testing.assert_allclose(
        model.predict(some)["probability"], scorer.score(some)["probability"], atol=1e-12
    )


def test_mlflow_pyfunc_gives_the_scorers_probabilities(
    trained: TrainedModel, demo_frame: pd.DataFrame
) -> None:
    model = mlflow.pyfunc.load_model(trained.champion_uri)
    leads = demo_frame.sample(500, random_state=0)
    from_mlflow = model.predict(leads)["probability"].to_numpy()
    for source in (trained.champion_uri, str(trained.export_dir)):
        scorer = Scorer.load(source, tracking_uri=trained.tracking_uri)
        np.testing.assert_allclose(scorer.score(leads)["probability"], from_mlflow, atol=1e-12)
        np.testing.assert_allclose(
            scorer.predict_proba_records(leads.to_dict("records")), from_mlflow, atol=1e-12
        )


def test_export_carries_schema_metrics_versions_and_hash(trained: TrainedModel) -> None:
    info = read_info(trained.export_dir)
    assert info.version == trained.version
    assert info.metrics["roc_auc"] == pytest.approx(trained.result.metrics["roc_auc"])
    assert {"scikit-learn", "lightgbm", "pandas"} <= set(info.libraries)
    assert len(info.pipeline_sha256) == 64
    assert info.schema == trained.result.schema


def test_a_tampered_export_is_refused(trained: TrainedModel, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(trained.export_dir, copy)
    with (copy / PIPELINE_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="tampered"):
        read_bundle(copy)


def test_promotion_compares_on_the_champions_holdout(trained: TrainedModel) -> None:
    from conftest import demo_config
    from leadml import demo
    from leadml.train import train_model

    weaker = train_model(
        demo.generate_leads(3000, seed=7),
        demo_config(exclude=("requested_demo", "time_on_site_sec"), candidates=("logistic",)),
    )
    logged = log_training(weaker, model_name=trained.model_name, experiment="tests")
    client = MlflowClient()
    assert (
        str(client.get_model_version_by_alias(trained.model_name, CHALLENGER).version)
        == logged.version
    )
    decision = promote(trained.model_name)
    assert not decision.promoted
    assert "kept" in decision.reason and "roc_auc" in decision.reason
    assert (
        str(client.get_model_version_by_alias(trained.model_name, CHAMPION).version)
        == trained.version
    )
    forced = promote(trained.model_name, force=True)
    assert forced.promoted
    assert (
        str(client.get_model_version_by_alias(trained.model_name, CHAMPION).version)
        == logged.version
    )
    client.set_registered_model_alias(trained.model_name, CHAMPION, trained.version)
    client.set_registered_model_alias(trained.model_name, CHALLENGER, trained.version)


def test_promote_without_a_challenger_says_what_to_do(trained: TrainedModel) -> None:
    with pytest.raises(ModelError, match="run leadml train first"):
        promote("no-such-model")


def test_mlflow_threshold_table_agrees_with_the_policy_maths(trained: TrainedModel) -> None:
    """The MQL figures in MLflow are the ones the CLI and API resolve (tested there)."""
    from leadml.threshold import CapacityPolicy, resolve_policy

    version = MlflowClient().get_model_version_by_alias(trained.model_name, CHAMPION)
    path = mlflow.artifacts.download_artifacts(f"runs:/{version.run_id}/threshold_table.csv")
    table = pd.read_csv(path)
    y, p = trained.result.holdout_y, trained.result.holdout_proba
    expected = resolve_policy(CapacityPolicy(per_week=300, leads_per_week=1000), y, p)
    row = table[np.isclose(table["cutoff"], expected.cutoff, rtol=0, atol=1e-12)]
    assert len(row) == 1
    assert row["precision"].item() == pytest.approx(expected.precision)
    assert row["recall"].item() == pytest.approx(expected.recall)
    assert row["mql_share"].item() == pytest.approx(expected.mql_share)
