"""Holdout ROC AUC of `leadml train` against a default LightGBM on the same leak-free columns.

Usage: .venv/bin/python bench/train_vs_lightgbm.py [--data ../shared/data/x_education_leads.csv]
       [--target Converted] [--seeds 0 1 2]

Both models see the same holdout (leadml's split). The default LightGBM is fitted on all of
leadml's non-holdout rows (fit + calibration parts), with leadml's leak-free feature columns,
text columns as pandas categories, and LightGBM's default parameters.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.metrics import roc_auc_score

from leadml.data import split_leads, target_vector
from leadml.schema import Role, blank_placeholders, normalise_placeholders
from leadml.train import TrainConfig, train_model

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "x_education_leads.csv"
)


def lightgbm_frame(frame: pd.DataFrame, result_schema) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    placeholders = normalise_placeholders(result_schema.placeholders)
    columns = {}
    for spec in result_schema.features:
        raw = blank_placeholders(frame[spec.name], placeholders)
        if spec.role is Role.NUMERIC:
            columns[spec.name] = pd.to_numeric(raw, errors="coerce")
        else:
            columns[spec.name] = raw.astype("category")
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--target", default="Converted")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    frame = pd.read_csv(args.data, low_memory=False)
    print(f"{args.data}: {len(frame):,} leads")
    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        result = train_model(frame, TrainConfig(target=args.target, seed=seed))
        seconds = time.perf_counter() - started
        y, _ = target_vector(frame[args.target], None)
        split = split_leads(frame, y, seed=seed)
        learn = np.sort(np.concatenate([split.fit, split.calibrate]))
        features = lightgbm_frame(frame, result.schema)
        baseline = LGBMClassifier(verbose=-1, random_state=seed, n_jobs=1)
        baseline.fit(features.iloc[learn], y[learn])
        baseline_auc = roc_auc_score(
            y[split.holdout], baseline.predict_proba(features.iloc[split.holdout])[:, 1]
        )
        rows.append(
            {
                "seed": seed,
                "leadml_model": result.model_kind,
                "leadml_roc_auc": round(result.metrics["roc_auc"], 4),
                "default_lightgbm_roc_auc": round(float(baseline_auc), 4),
                "difference": round(result.metrics["roc_auc"] - float(baseline_auc), 4),
                "leadml_ece": round(result.metrics["ece"], 4),
                "train_seconds": round(seconds, 1),
                "excluded_as_leakage": ", ".join(result.leakage.excluded()),
            }
        )
        print(rows[-1])
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(f"mean difference {table.difference.mean():+.4f}")


if __name__ == "__main__":
    main()
