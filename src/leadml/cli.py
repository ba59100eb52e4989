"""The `leadml` command: parses options, calls the library, prints.

Errors a user can fix are one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.exceptions import TyperException

from leadml.errors import DataError, LeadmlError
from leadml.settings import Settings

app = typer.Typer(
    name="leadml",
    help="Lead scoring that marketing and sales both accept.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=True, highlight=False)
EXIT_USAGE = 2


def _settings(tracking_uri: str | None = None) -> Settings:
    settings = Settings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
    return settings


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    ),
]
ModelName = Annotated[
    str | None, typer.Option("--model-name", help="Registered model name (default lead-scoring).")
]


@app.command("demo-data")
def demo_data(
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV or Parquet file to write.")],
    rows: Annotated[
        int, typer.Option("--rows", help="Number of leads (100 to 10,000,000).")
    ] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same leads.")] = 0,
) -> None:
    """Write synthetic leads with a known ground truth (see leadml.demo)."""
    from leadml.demo import write_demo_leads

    with console.status(f"writing {rows:,} demo leads"):
        path = write_demo_leads(output, rows, seed=seed)
    console.print(f"wrote {rows:,} demo leads to {path}")


@app.command()
def train(
    data: Annotated[
        str, typer.Option("--data", help="CSV or Parquet file, or an SQLAlchemy database URL.")
    ],
    target: Annotated[str, typer.Option("--target", help="Outcome column, e.g. Converted.")],
    positive: Annotated[
        str | None,
        typer.Option(
            "--positive", help="Value of the target that means converted (e.g. 1, yes, won)."
        ),
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="SQL query to run when --data is a database URL.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Column that identifies a lead (never a feature)."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="Creation date column: hold out the most recent 20 %."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Column never to use (repeatable).")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep", help="Column to keep even if the leakage guard flags it (repeatable)."
        ),
    ] = None,
    placeholder: Annotated[
        list[str] | None,
        typer.Option("--placeholder", help="Extra value meaning 'not answered' (repeatable)."),
    ] = None,
    model_name: ModelName = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write the machine-readable report here.")
    ] = None,
    tracking_uri: TrackingUri = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for splits and models.")] = 0,
) -> None:
    """Learn from historical outcomes; log the run to MLflow and register it as challenger."""
    from leadml.data import load_leads
    from leadml.schema import DEFAULT_PLACEHOLDERS
    from leadml.tracking import log_training, use_tracking
    from leadml.train import TrainConfig, train_model

    settings = _settings(tracking_uri)
    name = model_name or settings.model_name
    config = TrainConfig(
        target=target,
        positive=positive,
        id_column=id_column,
        time_column=time_column,
        exclude=tuple(exclude or ()),
        keep=tuple(keep or ()),
        placeholders=(*DEFAULT_PLACEHOLDERS, *(placeholder or ())),
        seed=seed,
    )
    with console.status("reading leads"):
        frame = load_leads(data, query)
    console.print(f"read {len(frame):,} leads with {frame.shape[1]} columns from {data}")
    with console.status("training") as status:

        def progress(message: str) -> None:
            console.print(f"  {message}")
            status.update(message)

        result = train_model(frame, config, progress=progress)
        status.update("logging to MLflow")
        use_tracking(settings.tracking_uri)
        logged = log_training(
            result, model_name=name, experiment=settings.experiment, data_source=data
        )
    _print_training(result.report(), logged.version, name, settings.tracking_uri)
    if report_json is not None:
        report = result.report() | {
            "model_name": name,
            "model_version": logged.version,
            "run_id": logged.run_id,
        }
        report_json.write_text(json.dumps(report, indent=2, default=float))
        console.print(f"report written to {report_json}")


def _print_training(report: dict, version: str, name: str, tracking_uri: str) -> None:
    table = Table(title="holdout", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile"):
        table.add_row(key, f"{report['metrics'][key]:.4f}")
    console.print(table)
    for item in report["columns_excluded"]:
        console.print(f"  excluded {item['column']!r} ({item['reason']}): {item['detail']}")
    for warning in report["warnings"]:
        console.print(f"  warning: {warning}")
    console.print(
        f"registered {name} v{version} as challenger in {tracking_uri};"
        f" `leadml promote` makes it champion"
    )


@app.command()
def promote(
    model_name: ModelName = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even if it is worse.")] = False,
    metric: Annotated[
        str, typer.Option("--metric", help="Metric compared on the champion's holdout.")
    ] = "roc_auc",
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="How much worse the challenger may be.")
    ] = 0.0,
    models_dir: Annotated[
        Path | None,
        typer.Option("--models-dir", help="Export the champion here (default models/)."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Make the challenger champion if it is at least as good, and export it to models/."""
    from leadml.evaluate import holdout_metrics
    from leadml.tracking import CHAMPION, export_model, use_tracking
    from leadml.tracking import promote as promote_model

    allowed = set(holdout_metrics(np.array([0, 1]), np.array([0.2, 0.8])))
    if metric not in allowed - {"n", "base_rate"}:
        raise DataError(
            f"--metric {metric!r} is unknown; use one of roc_auc, pr_auc, brier, log_loss, ece"
        )
    settings = _settings(tracking_uri)
    use_tracking(settings.tracking_uri)
    name = model_name or settings.model_name
    decision = promote_model(name, force=force, metric=metric, tolerance=tolerance)
    verb = "promoted" if decision.promoted else "not promoted"
    console.print(f"{name} v{decision.version} {verb}: {decision.reason}")
    if decision.promoted:
        folder = export_model(f"models:/{name}@{CHAMPION}", models_dir or settings.models_dir)
        console.print(f"exported the champion to {folder}")


@app.command()
def score(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file of leads to score.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Ranked CSV or Parquet to write.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="models/<name> folder or MLflow URI (default: the champion)."),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Leads read and scored at a time.")
    ] = 100_000,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score a file of leads and write them ranked, highest probability first."""
    from leadml.data import PARQUET_SUFFIXES, iter_lead_chunks
    from leadml.scoring import Scorer

    if output.suffix.lower() not in (".csv", *PARQUET_SUFFIXES):
        raise DataError(f"cannot write {output}: use a .csv or .parquet file name")
    settings = _settings(tracking_uri)
    scorer = Scorer.load(model or _default_model(settings), tracking_uri=settings.tracking_uri)
    parts: list[pd.DataFrame] = []
    first_row = 0
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("scoring", total=None)
        for chunk in iter_lead_chunks(path, chunk_rows):
            try:
                scored = scorer.score(chunk)
            except DataError as error:
                raise DataError(f"{path}, rows from {first_row + 1}: {error}") from None
            if scorer.id_column not in scored.columns:
                scored.insert(0, "row", np.arange(first_row + 1, first_row + len(chunk) + 1))
            parts.append(scored)
            first_row += len(chunk)
            bar.update(task, advance=len(chunk), description=f"scored {first_row:,} leads")
    if not parts:
        raise DataError(f"{path} has no leads to score")
    ranked = pd.concat(parts, ignore_index=True).sort_values(
        "probability", ascending=False, kind="stable"
    )
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    if output.suffix.lower() in PARQUET_SUFFIXES:
        ranked.to_parquet(output, index=False)
    else:
        ranked.to_csv(output, index=False)
    console.print(
        f"scored {len(ranked):,} leads with {scorer.info.name} v{scorer.info.version or '?'};"
        f" ranked list written to {output}"
    )


def _default_model(settings: Settings) -> str:
    exported = settings.models_dir / settings.model_name
    if settings.model_uri:
        return settings.model_uri
    if exported.is_dir():
        return str(exported)
    return settings.serving_uri


def _quiet_libraries() -> None:
    """MLflow's progress bars and INFO lines would bury leadml's own output."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # The pyfunc wrapper is pickled on purpose; MLflow warns about every such model.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a user's mistake is one line and exit code 2."""
    _quiet_libraries()
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="leadml", standalone_mode=False)
    except LeadmlError as error:
        _fail(str(error))
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", code=130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except TyperException as error:
        # Typer's own parsing errors (missing option, bad value): same one-line form.
        context = getattr(error, "ctx", None)
        name = getattr(context, "command_path", "leadml") or "leadml"
        _fail(f"{error.format_message()} (see '{name} --help')")


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    one_line = " ".join(message.split())
    print(f"leadml: error: {one_line}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
