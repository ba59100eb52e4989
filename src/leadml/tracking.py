"""The one module that writes to MLflow: log a training run, register it, move aliases, export.

Reading (model URIs, aliases, downloading a bundle) is `registry.py`'s job; this module uses it.
"""

from __future__ import annotations

import getpass
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow import MlflowClient

from leadml.bundle import (
    BUNDLE_ARTIFACT,
    copy_bundle,
    library_versions,
    write_trained_bundle,
    written_digest,
)
from leadml.errors import ModelError
from leadml.evaluate import holdout_metrics
from leadml.mlflow_model import LeadScoringModel, input_example, signature_for
from leadml.plots import (
    plot_calibration,
    plot_cumulative_gains,
    plot_precision_recall,
    plot_roc,
    plot_threshold_chart,
)
from leadml.policy import DEFAULT_TOP_SHARE, Holdout, default_preview
from leadml.registry import (
    AUDIT_TAG_PREFIX,
    BUNDLE_DIGEST_TAG,
    AliasMove,
    alias_version,
    load_bundle_from_mlflow,
    mlflow_errors,
    previous_champion,
)
from leadml.report import model_card
from leadml.threshold import threshold_table
from leadml.train import TrainResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    name: str
    version: str
    model_uri: str


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    name: str
    version: str
    previous: str | None
    reason: str


def _save_figure(figure: Figure, path: Path) -> Path:
    # The figures lay themselves out (constrained layout): "tight" would draw each one twice.
    figure.savefig(path, dpi=110)
    return path


def _draw_holdout_figures(
    folder: Path, y_true: np.ndarray, proba: np.ndarray
) -> list[tuple[Path, str | None]]:
    """The threshold table and chart (`write_threshold_artifacts`) and the four holdout curves,
    written into `folder`: (file, MLflow artifact folder) pairs."""
    written = write_threshold_artifacts(folder, y_true, proba)
    for name, plot in (
        ("roc.png", plot_roc),
        ("precision_recall.png", plot_precision_recall),
        ("calibration.png", plot_calibration),
        ("cumulative_gains.png", plot_cumulative_gains),
    ):
        written.append((_save_figure(plot(y_true, proba), folder / name), "plots"))
    return written


def log_training(
    result: TrainResult,
    *,
    model_name: str,
    experiment: str = "leadml",
    data_source: str = "",
) -> LoggedModel:
    """One MLflow run per training: params, metrics, plots, reports, the model; then register."""
    with mlflow_errors("log the training to MLflow"):
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=f"{model_name}-{result.model_kind}") as run:
            mlflow.log_params(
                {
                    **{
                        k: json.dumps(v) if isinstance(v, list) else v
                        for k, v in result.config.params().items()
                    },
                    "model_kind": result.model_kind,
                    "calibration": result.calibration_method,
                    "n_features": len(result.schema.features),
                    "data_source": data_source,
                }
            )
            mlflow.log_metrics({f"holdout_{k}": v for k, v in result.metrics.items()})
            for score in result.selection:
                mlflow.log_metrics(
                    {
                        f"cv_{score.name}_roc_auc": score.roc_auc,
                        f"cv_{score.name}_pr_auc": score.pr_auc,
                        f"cv_{score.name}_log_loss": score.log_loss,
                    }
                )
            mlflow.set_tags(
                {
                    "leadml.model_kind": result.model_kind,
                    "leadml.target": result.schema.target,
                    "leadml.excluded_leakage": ",".join(result.leakage.excluded()),
                }
            )
            card = model_card(result, model_name)
            mlflow.log_dict(result.schema.to_dict(), "schema.json")
            mlflow.log_dict(result.report(), "report.json")
            mlflow.log_dict(_leakage_dict(result), "leakage.json")
            mlflow.log_text(card, "model_card.md")
            with tempfile.TemporaryDirectory() as scratch:
                folder = Path(scratch)
                result.gains.to_csv(folder / "gains.csv", index=False)
                mlflow.log_artifact(str(folder / "gains.csv"))
                result.traits.to_csv(folder / "traits.csv", index=False)
                mlflow.log_artifact(str(folder / "traits.csv"))
                for path, artifact_dir in _draw_holdout_figures(
                    folder, result.holdout_y, result.holdout_proba
                ):
                    mlflow.log_artifact(str(path), artifact_dir)
                bundle_dir = folder / BUNDLE_ARTIFACT
                write_trained_bundle(bundle_dir, result, name=model_name, run_id=run.info.run_id)
                digest = written_digest(bundle_dir)
                logged = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    python_model=LeadScoringModel(),
                    artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                    signature=signature_for(result.schema),
                    input_example=input_example(result.schema, result.holdout),
                    registered_model_name=model_name,
                    pip_requirements=[
                        f"{k}=={v}"
                        for k, v in library_versions().items()
                        if k not in ("python", "leadml")
                    ],
                )
        version = str(logged.registered_model_version)
        client = MlflowClient()
        client.set_model_version_tag(model_name, version, BUNDLE_DIGEST_TAG, digest)
        client.set_registered_model_alias(model_name, CHALLENGER, version)
        client.update_model_version(model_name, version, description=card.split("\n## ")[0])
    return LoggedModel(
        run_id=run.info.run_id,
        name=model_name,
        version=version,
        model_uri=f"models:/{model_name}/{version}",
    )


def write_threshold_artifacts(
    folder: Path, y_true: np.ndarray, proba: np.ndarray
) -> list[tuple[Path, str | None]]:
    """Write the holdout threshold table (CSV) and chart (PNG) into `folder`.

    Returns (file, MLflow artifact folder) pairs: the table goes next to gains.csv, the chart
    under plots/. The chart marks the default MQL line.
    """
    folder.mkdir(parents=True, exist_ok=True)
    table_path = folder / "threshold_table.csv"
    threshold_table(y_true, proba).to_csv(table_path, index=False)
    default_cutoff = default_preview(Holdout(y_true.astype(np.int64), proba), n_boot=1).cutoff
    chart = plot_threshold_chart(
        y_true,
        proba,
        cutoff=default_cutoff,
        cutoff_label=f"default MQL line: top {DEFAULT_TOP_SHARE:.0%}",
    )
    chart_path = _save_figure(chart, folder / "threshold.png")
    return [(table_path, None), (chart_path, "plots")]


def _leakage_dict(result: TrainResult) -> dict[str, object]:
    return {
        "findings": [
            {
                "column": f.column,
                "verdict": f.verdict,
                "reason": f.reason,
                "evidence": dict(f.evidence),
            }
            for f in result.leakage.findings
        ],
        "single_column_auc": result.leakage.single_column_auc,
    }


def promote(
    model_name: str, *, force: bool = False, metric: str = "roc_auc", tolerance: float = 0.0
) -> Promotion:
    """Move `champion` to the challenger if it is at least as good on the champion's holdout."""
    challenger = alias_version(model_name, CHALLENGER)
    if challenger is None:
        raise ModelError(f"{model_name} has no {CHALLENGER}; run leadml train first")
    champion = alias_version(model_name, CHAMPION)
    if champion == challenger:
        return Promotion(
            False, model_name, challenger, champion, "the challenger is already champion"
        )
    if champion is None or force:
        reason = "no champion yet" if champion is None else "forced"
        move_champion(model_name, challenger, action="promote", reason=reason)
        return Promotion(True, model_name, challenger, champion, reason)
    champion_bundle = load_bundle_from_mlflow(f"models:/{model_name}/{champion}")
    challenger_bundle = load_bundle_from_mlflow(f"models:/{model_name}/{challenger}")
    outcome, _, leads = champion_bundle.holdout_parts()
    old = holdout_metrics(outcome, champion_bundle.pipeline.predict_proba(leads)[:, 1])
    new = holdout_metrics(outcome, challenger_bundle.pipeline.predict_proba(leads)[:, 1])
    lower_is_better = metric in ("brier", "log_loss", "ece")
    gain = (old[metric] - new[metric]) if lower_is_better else (new[metric] - old[metric])
    summary = (
        f"on the champion's holdout ({len(outcome):,} leads) {metric} is {new[metric]:.4f} for"
        f" v{challenger} vs {old[metric]:.4f} for v{champion}"
    )
    if gain >= -tolerance:
        move_champion(model_name, challenger, action="promote", reason=summary)
        return Promotion(True, model_name, challenger, champion, f"promoted: {summary}")
    return Promotion(
        False,
        model_name,
        challenger,
        champion,
        f"kept v{champion}: {summary} (use --force to override)",
    )


# --------------------------------------------------------------------------- the audit trail


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def move_champion(
    model_name: str, version: str, *, action: str, reason: str, by: str | None = None
) -> AliasMove:
    """Point `champion` at `version` and append the move to the model's audit trail."""
    now = datetime.now(UTC)
    move = AliasMove(
        at=now.isoformat(timespec="microseconds"),
        action=action,
        alias=CHAMPION,
        from_version=alias_version(model_name, CHAMPION),
        to_version=str(version),
        by=by or _who(),
        reason=reason,
    )
    client = MlflowClient()
    with mlflow_errors("move the champion alias"):
        client.set_registered_model_alias(model_name, CHAMPION, str(version))
        client.set_registered_model_tag(
            model_name,
            AUDIT_TAG_PREFIX + now.strftime("%Y%m%dT%H%M%S.%fZ"),
            json.dumps(move.to_dict()),
        )
    return move


def rollback(
    model_name: str, *, to_version: str | None = None, reason: str = "", by: str | None = None
) -> AliasMove:
    """Move `champion` back to the previous champion (or `to_version`), recorded in the trail."""
    current = alias_version(model_name, CHAMPION)
    target = str(to_version) if to_version else previous_champion(model_name, CHAMPION)
    with mlflow_errors(f"find version {target} of {model_name}"):
        MlflowClient().get_model_version(model_name, target)
    if target == current:
        raise ModelError(f"v{target} of {model_name} is already champion; nothing to roll back")
    return move_champion(
        model_name,
        target,
        action="rollback",
        reason=reason or f"rolled back from v{current}",
        by=by,
    )


def log_retrain_report(run_id: str, report: dict[str, Any], text: str) -> None:
    """Attach a retrain's report (JSON and the one-page text) and gate figures to its run."""
    gate = report.get("gate", {})
    metrics = {
        f"gate_{name}_{part}": float(values[part])
        for name, values in gate.get("metrics", {}).items()
        for part in ("champion", "challenger", "difference", "low", "high")
        if values.get(part) is not None and np.isfinite(values[part])
    }
    with mlflow_errors("log the retrain report to MLflow"):
        client = MlflowClient()
        client.log_dict(run_id, report, "retrain/report.json")
        client.log_text(run_id, text, "retrain/report.txt")
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        client.set_tag(run_id, "leadml.retrain.promoted", str(bool(report.get("promoted"))))
        client.set_tag(run_id, "leadml.retrain.mode", str(report.get("mode")))


def export_model(model_uri: str, models_dir: Path) -> Path:
    """Copy a registered model's bundle to `models_dir/<name>/` for scoring without MLflow."""
    bundle = load_bundle_from_mlflow(model_uri)
    target = models_dir / bundle.info.name
    copy_bundle(bundle, target, name=bundle.info.name, version=bundle.info.version)
    return target
