"""Which LightGBM settings leadml's default uses: configurations x exports, holdout metrics.

    python bench/default_rule.py --configs current cat_regularised --exports xeducation demo

Each configuration pins LightGBM to one tree shape (15 leaves, depth 5: "current", the only
shape before the shape rule) and changes `leadml.models.lightgbm_head`'s parameters (nothing
else), then runs `train_model` exactly as `bench/quality.py` does on each export: X Education (stratified, seeds
0 1 2) and the 20,000-lead demo data and three of its variants (time split, seed 0). Rows are
appended to bench/results/default_rule.csv (resumable; `--fresh` starts over); the summary table
is printed at the end, with the rows the shipped rule gives (of "current" and "leaves_7", the
one with the lower out-of-fold log loss, per export and seed: `train.choose_tree_shape`).
Trait importance is skipped: it does not change the model.
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
    "cat_loose": {"cat_smooth": 1.0, "cat_l2": 1.0, "min_data_per_group": 5},
    "extra_trees": {"extra_trees": True},
    "extra_colsample_05": {"extra_trees": True, "colsample_bytree": 0.5},
    "lambda_10": {"reg_lambda": 10.0},
    "colsample_03": {"colsample_bytree": 0.3},
    "depth_6_l2_3": {"num_leaves": 40, "max_depth": 6, "reg_lambda": 3.0, "min_child_samples": 10},
    "depth_6_lr_003": {
        "num_leaves": 40,
        "max_depth": 6,
        "reg_lambda": 3.0,
        "min_child_samples": 10,
        "learning_rate": 0.03,
    },
    "min_child_10": {"min_child_samples": 10},
    "leaves_4": {"num_leaves": 4, "max_depth": 2},
    "leaves_7_lr_01": {"num_leaves": 7, "max_depth": 3, "learning_rate": 0.1},
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


def no_traits(pipeline: Any, holdout: pd.DataFrame, **_: Any) -> pd.DataFrame:
    return pd.DataFrame(columns=["field", "share", "summary"])


def run_one(frame: pd.DataFrame, config: TrainConfig, changes: dict[str, Any]) -> dict[str, Any]:
    models.lightgbm_head = with_changes(changes)  # type: ignore[assignment]
    train.trait_importance = no_traits  # type: ignore[assignment]
    # One shape per configuration; the rule's choice between shapes is recomputed from the rows.
    defaults = train.cross_validate_candidates.__kwdefaults__
    defaults["tree_shapes"] = (models.DEFAULT_TREE_SHAPE,)
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


#: The shapes `leadml.models.TREE_SHAPES` holds, as configurations of this table.
SHAPE_CONFIGS = ("current", "leaves_7")


def with_the_rule(table: pd.DataFrame) -> pd.DataFrame:
    """Adds the rows the shipped rule gives: per export and seed, whichever of the two tree
    shapes has the lower out-of-fold log loss (what `train.choose_tree_shape` does)."""
    shapes = table[table.config.isin(SHAPE_CONFIGS)]
    complete = shapes.groupby(["export", "seed"]).config.transform("nunique") == len(SHAPE_CONFIGS)
    shapes = shapes[complete]
    picked = shapes.loc[shapes.groupby(["export", "seed"]).cv_log_loss.idxmin()]
    return pd.concat([table, picked.assign(config="rule: shape by CV log loss")])


def summary() -> None:
    table = with_the_rule(pd.read_csv(RESULTS))
    exports = [e for e in EXPORTS if e in set(table.export)]
    header = ["configuration", "changes"] + [f"{e} ROC / PR / ECE" for e in exports] + ["trees"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    means = table.groupby(["config", "export"])[["roc_auc", "pr_auc", "ece", "trees"]].mean()
    seeds = table.groupby(["config", "export"]).seed.nunique()
    for config in dict.fromkeys(table.config):
        cells = []
        for export in exports:
            if (config, export) not in means.index:
                cells.append("not run")
                continue
            row = means.loc[(config, export)]
            n = seeds.loc[(config, export)]
            partial = f" ({n} seeds)" if n < len(EXPORTS[export][1]) else ""
            cells.append(f"{row.roc_auc:.4f} / {row.pr_auc:.4f} / {row.ece:.3f}{partial}")
        trees = "/".join(
            f"{means.loc[(config, e)].trees:.0f}"
            for e in ("xeducation", "demo")
            if (config, e) in means.index
        )
        changes = CONFIGS.get(config, "per export")
        lines.append(f"| {config} | {changes} | " + " | ".join(cells) + f" | {trees} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
