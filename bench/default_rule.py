"""Which LightGBM settings leadml's default uses: configurations x exports, holdout metrics.

    python bench/default_rule.py --configs current cat_regularised --exports xeducation demo

Each configuration changes `leadml.models.lightgbm_head`'s parameters (nothing else), then runs
`train_model` exactly as `bench/quality.py` does on each export: X Education (stratified, seeds
0 1 2) and the 20,000-lead demo data and three of its variants (time split, seed 0). Rows are
appended to bench/results/default_rule.csv (resumable; `--fresh` starts over); the summary table
is printed at the end. Trait importance is skipped: it does not change the model.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import quality  # bench/ is on the path when this file is run as a script

from leadml import models, train
from leadml.train import TrainConfig, train_model

RESULTS = Path(__file__).resolve().parent / "results" / "default_rule.csv"

#: Parameter changes against the shipped `lightgbm_head`; "current" is the shipped default.
CONFIGS: dict[str, dict[str, Any]] = {
    "current": {},
    "cat_regularised": {"cat_smooth": 50.0, "cat_l2": 30.0, "min_data_per_group": 50},
    "cat_onehot8": {"max_cat_to_onehot": 8},
    "min_child_50": {"min_child_samples": 50, "reg_lambda": 5.0},
    "colsample_05": {"colsample_bytree": 0.5},
    "lr_003": {"learning_rate": 0.03},
    "leaves_7": {"num_leaves": 7, "max_depth": 3},
    "path_smooth": {"path_smooth": 10.0, "min_child_samples": 30},
}

#: export name -> (loader, seeds)
EXPORTS: dict[str, tuple[Callable[[], tuple[pd.DataFrame, TrainConfig]], tuple[int, ...]]] = {
    "xeducation": (quality.x_education, (0, 1, 2)),
    "demo": (quality.demo_export(), (0,)),
    "time-shift": (quality.demo_export("time-shift"), (0,)),
    "landing-page": (quality.demo_export("landing-page"), (0,)),
    "post-contact": (quality.demo_export("post-contact"), (0,)),
}

SHIPPED_HEAD = models.lightgbm_head


def with_changes(changes: dict[str, Any]) -> Callable[..., Any]:
    def head(*args: Any, **kwargs: Any) -> Any:
        return SHIPPED_HEAD(*args, **kwargs).set_params(**changes)

    return head


def no_traits(pipeline: Any, holdout: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(columns=["field", "share", "summary"])


def run_one(frame: pd.DataFrame, config: TrainConfig, changes: dict[str, Any]) -> dict[str, Any]:
    models.lightgbm_head = with_changes(changes)  # type: ignore[assignment]
    train.trait_importance = no_traits  # type: ignore[assignment]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = train_model(frame, config)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        models.lightgbm_head = SHIPPED_HEAD
    chosen = next(s for s in result.selection if s.name == result.model_kind)
    return {
        **quality.scores(result.holdout_y, result.holdout_proba),
        "model": result.model_kind,
        "trees": chosen.n_estimators,
        "cv_log_loss": chosen.log_loss,
        "cv_pr_auc": chosen.pr_auc,
        "features": len(result.schema.feature_names),
        "wall_s": wall,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--exports", nargs="+", default=list(EXPORTS), choices=list(EXPORTS))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    if args.fresh and RESULTS.exists():
        RESULTS.unlink()
    done = set()
    if RESULTS.exists():
        table = pd.read_csv(RESULTS)
        done = set(zip(table.config, table.export, table.seed, strict=True))
    for export in args.exports:
        load, seeds = EXPORTS[export]
        frame, base = load()
        for seed in seeds:
            for name in args.configs:
                if (name, export, seed) in done:
                    continue
                config = TrainConfig(**{**vars(base), "seed": seed})  # type: ignore[arg-type]
                row = {"config": name, "export": export, "seed": seed}
                row |= run_one(frame, config, CONFIGS[name])
                pd.DataFrame([row]).to_csv(
                    RESULTS, mode="a", header=not RESULTS.exists(), index=False
                )
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    summary()


def summary() -> None:
    table = pd.read_csv(RESULTS)
    means = table.groupby(["config", "export"])[["roc_auc", "pr_auc", "ece", "log_loss"]].mean()
    print(means.unstack("export").round(4).to_string())


if __name__ == "__main__":
    main()
