"""Is leadml's calibrator off on the final model? Measured on `train_model`'s own folds and holdout.

    python bench/calibration_rule.py                      # every export x seed, resumable
    python bench/calibration_rule.py --datasets xeducation --fresh

leadml fits its final LightGBM model on every non-holdout lead and calibrates it with a centred
isotonic regression fitted on the out-of-fold margins of the cross-validation's fold models. The
fold models learnt from 80 % of those leads with the same number of trees, so the final model may
be more confident than the margins the calibrator learnt from. `train_model` runs with its
defaults (trait importance skipped: it does not change the model) and is watched, not changed:
the fold models of its last LightGBM cross-validation (the chosen shape and encoding, matched by
their out-of-fold margins) and its final model are kept. On its holdout these rules are scored:

  chosen        what leadml ships: final margin, centred isotonic on the out-of-fold margins
                (checked: equals `train_model`'s holdout probabilities to 1e-9)
  sigmoid       final margin, Platt's sigmoid on the out-of-fold margins
  isotonic_raw  final margin, plain (step) isotonic regression on the out-of-fold margins
  by_oof        centred isotonic or sigmoid, whichever has the lower cross-fitted log loss on the
                out-of-fold margins (each fold's calibrator learnt from the other folds' margins)
  fold_mean     the fold models' mean margin instead of the final model's, centred isotonic on the
                out-of-fold margins (five boosters: not shippable as one, a reference)
  fold_calibrators  final margin, the mean of five centred isotonic calibrators, each fitted on
                the out-of-fold margins of four folds (a smoother map, as CalibratedClassifierCV's
                ensemble of calibrated fold models is)
  isotonic_sigmoid  final margin, the mean of the centred isotonic and the sigmoid probabilities
  matched       final margin scaled by (mean spread of the fold models' holdout margins) / (spread
                of the final model's), then as `chosen`: tests the hypothesis directly (it uses
                the holdout's inputs, not its outcomes; a reference, not a rule)

A margin temperature fitted on the out-of-fold margins is not a candidate before isotonic
regression: isotonic regression is invariant to a monotone rescaling of its input.

Also recorded: `spread_ratio` = standard deviation of the final model's holdout margins / mean of
the fold models', the mean holdout margins of both, and each rule's holdout log-loss gain over
the shipped probabilities with its paired z (`train.paired_log_loss_gain`, lead by lead). Rows go to
bench/results/calibration_rule.csv; the summary (mean and spread over seeds) is printed.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import quality  # bench/ is on the path when this file is run as a script
from default_rule import no_traits
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss

from leadml import train
from leadml.models import head_output, one_hot_matrix
from leadml.train import TrainConfig, train_model

RESULTS = Path(__file__).resolve().parent / "results" / "calibration_rule.csv"
SEEDS = (0, 1, 2)


class Watch:
    """Records every LightGBM cross-validation's fold models (with their matrix and folds)."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, list[Any], list[Any], int, np.ndarray, np.ndarray]] = []
        self._outputs = train._lightgbm_outputs
        self._cv = train.cross_validate_candidates
        self.y = np.empty(0)

    def __enter__(self) -> Watch:
        def cross_validate(X: np.ndarray, y: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            self.y = y
            return self._cv(X, y, *args, **kwargs)

        def outputs(X: np.ndarray, fitted: Any, pairs: Any) -> Any:
            result = self._outputs(X, fitted, pairs)
            margins = np.concatenate([margin for margin, _ in result[0]])
            tested = np.concatenate([test for _, test in pairs])
            heads = [head for head, _, _ in fitted]
            self.calls.append((X, heads, list(pairs), result[1], margins, self.y[tested]))
            return result

        train._lightgbm_outputs = outputs  # type: ignore[assignment]
        train.cross_validate_candidates = cross_validate  # type: ignore[assignment]
        train.trait_importance = no_traits  # type: ignore[assignment]
        return self

    def __exit__(self, *_: Any) -> None:
        train._lightgbm_outputs = self._outputs  # type: ignore[assignment]
        train.cross_validate_candidates = self._cv  # type: ignore[assignment]


def cross_fitted_log_loss(
    margins: np.ndarray, y: np.ndarray, sizes: list[int], method: str
) -> float:
    """Log loss of `method`'s calibrator on each fold's out-of-fold margins, fitted on the rest."""
    bounds = np.cumsum([0, *sizes])
    proba = np.empty(len(y))
    for start, stop in itertools.pairwise(bounds):
        rest = np.r_[0:start, stop : len(y)]
        if len(np.unique(y[rest])) < 2:
            proba[start:stop] = y[rest].mean() if len(rest) else 0.5
            continue
        calibrator = train.fit_calibrator(margins[rest], y[rest], method)
        proba[start:stop] = calibrator.predict(margins[start:stop])
    return float(log_loss(y, np.clip(proba, 1e-6, 1 - 1e-6)))


def run_one(frame: pd.DataFrame, config: TrainConfig) -> list[dict[str, Any]]:
    with Watch() as watch:
        result = train_model(frame, config)
    if result.model_kind != "lightgbm":
        return []
    preparer = result.pipeline.named_steps["prepare"]
    calibrated = result.pipeline.named_steps["model"].calibrated_classifiers_[0]
    final = calibrated.estimator.estimator  # FrozenEstimator(head)
    H = preparer.transform(result.holdout)
    final_h = head_output(final, H)[0]
    y_h = result.holdout_y

    # The calibrator's inputs: the fold models whose out-of-fold margins reproduce the shipped
    # probabilities (the chosen shape and encoding among every LightGBM cross-validation).
    shipped = calibrated.calibrators[0]
    method_shipped = train.calibration_method(watch.calls[-1][5])
    matching = [
        call
        for call in reversed(watch.calls)
        if np.allclose(
            train.fit_calibrator(call[4], call[5], method_shipped).predict(final_h),
            shipped.predict(final_h),
            atol=1e-12,
        )
    ]
    assert matching, "the shipped calibrator was not reproduced"
    X_cv, heads, pairs, n_trees, oof, y_oof = matching[0]
    one_hot = X_cv.shape[1] != H.shape[1]
    H_folds = one_hot_matrix(preparer, H) if one_hot else H
    fold_h = np.array([head_output(h, H_folds, num_iteration=n_trees)[0] for h in heads])
    sizes = [len(test) for _, test in pairs]

    spread_final = float(final_h.std())
    spread_folds = float(fold_h.std(axis=1).mean())

    def scored(rule: str, margins_h: np.ndarray, method: str = "isotonic") -> dict[str, Any]:
        if method == "fold_calibrators":
            bounds = np.cumsum([0, *sizes])
            rests = [np.r_[0:a, b : len(y_oof)] for a, b in itertools.pairwise(bounds)]
            fitted = [train.fit_calibrator(oof[r], y_oof[r], method_shipped) for r in rests]
            proba = np.mean([c.predict(margins_h) for c in fitted], axis=0)
        elif method == "isotonic_sigmoid":
            proba = np.mean(
                [
                    train.fit_calibrator(oof, y_oof, m).predict(margins_h)
                    for m in ("isotonic", "sigmoid")
                ],
                axis=0,
            )
        elif method == "isotonic_raw":
            proba = IsotonicRegression(out_of_bounds="clip").fit(oof, y_oof).predict(margins_h)
        else:
            proba = train.fit_calibrator(oof, y_oof, method).predict(margins_h)
        # Paired against the shipped probabilities, lead by lead: holdout log-loss gain and z.
        gain, error = train.paired_log_loss_gain(y_h, proba, result.holdout_proba)
        return {
            "rule": rule,
            "method": method,
            "matches_train_model": bool(np.allclose(proba, result.holdout_proba, atol=1e-9)),
            **quality.scores(y_h, proba),
            "holdout_log_loss_gain": gain,
            "holdout_gain_z": gain / error if error > 0 else 0.0,
        }

    chosen = scored("chosen", final_h, method_shipped)
    assert chosen["matches_train_model"], "the watched run was not reproduced"
    loss_iso = cross_fitted_log_loss(oof, y_oof, sizes, "isotonic")
    loss_sig = cross_fitted_log_loss(oof, y_oof, sizes, "sigmoid")
    rows = [
        chosen,
        scored("sigmoid", final_h, "sigmoid"),
        scored("isotonic_raw", final_h, "isotonic_raw"),
        scored("by_oof", final_h, "isotonic" if loss_iso <= loss_sig else "sigmoid"),
        scored("fold_mean", fold_h.mean(axis=0), method_shipped),
        scored("fold_calibrators", final_h, "fold_calibrators"),
        scored("isotonic_sigmoid", final_h, "isotonic_sigmoid"),
        scored("matched", final_h * spread_folds / spread_final, method_shipped),
    ]
    common = {
        "one_hot": one_hot,
        "trees": n_trees,
        "oof_leads": len(y_oof),
        "spread_ratio": spread_final / spread_folds,
        "mean_margin_final": float(final_h.mean()),
        "mean_margin_folds": float(fold_h.mean()),
        "cross_fitted_log_loss_isotonic": loss_iso,
        "cross_fitted_log_loss_sigmoid": loss_sig,
    }
    return [{**common, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    datasets = list(quality.DATASETS)
    parser.add_argument("--datasets", nargs="+", default=datasets, choices=datasets)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    if args.fresh and RESULTS.exists():
        RESULTS.unlink()
    jobs = [(e, quality.DATASETS[e], args.seeds) for e in args.datasets]
    quality.run_per_seed(RESULTS, jobs, run_one)
    summary()


def summary() -> None:
    table = pd.read_csv(RESULTS)
    metrics = ["roc_auc", "pr_auc", "ece", "brier", "log_loss"]
    lines = ["| export | rule | " + " | ".join(metrics) + " |", "|" + " --- |" * 7]
    for (export, rule), group in table.groupby(["export", "rule"], sort=False):
        cells = [f"{group[m].mean():.4f} ± {group[m].std(ddof=0):.4f}" for m in metrics]
        lines.append(f"| {export} | {rule} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(
        table.groupby("export")[["spread_ratio", "mean_margin_final", "mean_margin_folds"]].mean()
    )


if __name__ == "__main__":
    main()
