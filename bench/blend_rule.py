"""Would a blend of leadml's logistic and LightGBM candidates score better? Measured, not shipped.

    python bench/blend_rule.py                          # every export, resumable
    python bench/blend_rule.py --exports xeducation --fresh

For each export and seed (those of bench/default_rule.py: X Education stratified, seeds 0 1 2;
the 20,000-lead demo data and three of its variants, time split), `train_model` runs with its
defaults (trait importance skipped: it does not change the model). The run is watched, not
changed: the last cross-validation it runs is on the columns the final model uses, and the last
head it fits is the final model. On those same folds and columns the other candidate (logistic
regression when LightGBM was chosen) is cross-validated too, and fitted on the same leads. Then
each rule below turns the two candidates' out-of-fold margins (log-odds) into one margin, the
calibrator leadml would fit (`train.calibration_method`, `train.fit_calibrator`) is fitted on the
out-of-fold blended margin, and the holdout is scored with the final models' blended margin:

  chosen        what leadml ships (checked: equals `train_model`'s own holdout probabilities)
  blend         margin = (1 - a) * LightGBM + a * logistic, a in 0, 0.05, ..., 1 with the lowest
                out-of-fold log loss of sigmoid(margin)
  blend_z2      the same a, kept only when it lowers the out-of-fold log loss against the chosen
                candidate by more than 2 standard errors of the per-lead difference (the paired
                test leadml's questioned features pass, `train.paired_log_loss_gain`); else the
                chosen candidate
  stack         logistic regression on the two out-of-fold margins (weights and intercept free),
                fitted out of fold itself (same folds), then its margin as above
  fixed_a       a fixed share a of logistic (0.2, 0.5), as a reference only: not a rule
  bag_3         LightGBM only: the mean margin of the chosen shape grown with 3 seeds (the fold
                models too: out-of-fold margins are the 3 fold models' mean), variance reduction
  shapes        LightGBM only: margin = (1 - b) * chosen shape + b * the other shape (both are
                cross-validated by leadml already), b by out-of-fold log loss as for `blend`
  onehot        LightGBM only, the chosen shape on the same leads and folds, but every category
                of a text column is a 0/1 column of its own (its codes 0..n, "other" and
                missing) instead of LightGBM's native categorical splits
  encoding      the rule: `onehot` when its out-of-fold log loss is lower than the chosen
                model's, else the chosen model

Rows go to bench/results/blend_rule.csv (resumable; `--fresh` starts over); the summary table
(mean over seeds) is printed at the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import quality  # bench/ is on the path when this file is run as a script
from default_rule import EXPORTS, no_traits
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from leadml import models, train
from leadml.models import TREE_SHAPES, fit_head, head_output, make_head
from leadml.train import TrainConfig, cv_folds, train_model

RESULTS = Path(__file__).resolve().parent / "results" / "blend_rule.csv"
WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)
FIXED = (0.2, 0.5)
MIN_Z = train.FEATURE_MIN_Z


class Watch:
    """Records the last cross-validation call and the last head fit of one `train_model` run."""

    def __init__(self) -> None:
        self.cv: tuple[tuple[Any, ...], dict[str, Any], list[Any]] | None = None
        self.fit: tuple[Any, np.ndarray, np.ndarray, Any] | None = None
        self._cv = train.cross_validate_candidates
        self._fit = train.fit_head

    def __enter__(self) -> Watch:
        def cross_validate(*args: Any, **kwargs: Any) -> Any:
            result = self._cv(*args, **kwargs)
            self.cv = (args, kwargs, result)
            return result

        def fit(head: Any, X: np.ndarray, y: np.ndarray, preparer: Any, **kwargs: Any) -> Any:
            fitted = self._fit(head, X, y, preparer, **kwargs)
            self.fit = (fitted, X, y, preparer)
            return fitted

        train.cross_validate_candidates = cross_validate  # type: ignore[assignment]
        train.fit_head = fit  # type: ignore[assignment]
        train.trait_importance = no_traits  # type: ignore[assignment]
        return self

    def __exit__(self, *_: Any) -> None:
        train.cross_validate_candidates = self._cv  # type: ignore[assignment]
        train.fit_head = self._fit  # type: ignore[assignment]


def per_lead_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def with_seed(seed: int) -> Callable[..., Any]:
    shipped = models.lightgbm_head

    def head(*args: Any, **kwargs: Any) -> Any:
        return shipped(*args, **kwargs).set_params(random_state=seed)

    return head


def one_hot(preparer: Any, matrix: np.ndarray) -> np.ndarray:
    """The prepared matrix with each categorical column spread into one 0/1 column per code the
    preparer can give (its categories, "other", missing)."""
    categorical = set(preparer.categorical_indices_)
    names = list(preparer.feature_names_out_)
    parts = [matrix[:, [i for i in range(matrix.shape[1]) if i not in categorical]]]
    for column in sorted(categorical):
        spec = next(f for f in preparer.schema.features if f.name == names[column])
        codes = matrix[:, column]
        levels = np.arange(len(spec.categories) + 1, dtype=float)
        parts.append((codes[:, None] == levels[None, :]).astype(float))
        parts.append(np.isnan(codes)[:, None].astype(float))
    return np.hstack(parts)


def best_weight(y: np.ndarray, tree: np.ndarray, linear: np.ndarray) -> float:
    losses = [per_lead_loss(y, expit((1 - a) * tree + a * linear)).mean() for a in WEIGHTS]
    return float(WEIGHTS[int(np.argmin(losses))])


def run_one(frame: pd.DataFrame, config: TrainConfig) -> list[dict[str, Any]]:
    with Watch() as watch:
        result = train_model(frame, config)
    assert watch.cv is not None and watch.fit is not None
    (X_cv, y_cv, preparer, _), kwargs, cv_result = watch.cv
    [chosen_folds] = [f for f in cv_result if f.score.name == result.model_kind]
    other = "logistic" if result.model_kind == "lightgbm" else "lightgbm"
    [other_folds] = train.cross_validate_candidates(
        X_cv, y_cv, preparer, (other,), **{k: v for k, v in kwargs.items() if k != "candidates"}
    )
    assert np.array_equal(chosen_folds.tested, other_folds.tested)
    assert kwargs.get("sample_weight") is None, "weighted exports are not part of this bench"
    by_name = {result.model_kind: chosen_folds, other: other_folds}
    tested = chosen_folds.tested
    y_oof = y_cv[tested]
    tree_oof, linear_oof = by_name["lightgbm"].output, by_name["logistic"].output

    head, X_learn, y_learn, final_preparer = watch.fit
    other_head = fit_head(
        make_head(
            other,  # type: ignore[arg-type]
            final_preparer,
            config.seed,
            len(y_learn),
            n_estimators=other_folds.n_estimators or 1000,
            shape=other_folds.score.tree_shape or train.DEFAULT_TREE_SHAPE,
        ),
        X_learn,
        y_learn,
        final_preparer,
    )
    H = final_preparer.transform(result.holdout)
    heads = {result.model_kind: head, other: other_head}
    tree_h = head_output(heads["lightgbm"], H)[0]
    linear_h = head_output(heads["logistic"], H)[0]
    method = train.calibration_method(y_oof)

    def scored(rule: str, oof: np.ndarray, hold: np.ndarray, **detail: Any) -> dict[str, Any]:
        calibrator = train.fit_calibrator(oof, y_oof, method)
        proba = calibrator.predict(hold)
        return {
            "rule": rule,
            "matches_train_model": bool(np.allclose(proba, result.holdout_proba, atol=1e-9)),
            **quality.scores(result.holdout_y, proba),
            "oof_raw_log_loss": float(log_loss(y_oof, np.clip(expit(oof), 1e-6, 1 - 1e-6))),
            **detail,
        }

    def mix(a: float, tree: np.ndarray, linear: np.ndarray) -> np.ndarray:
        return (1 - a) * tree + a * linear

    chosen_oof = tree_oof if result.model_kind == "lightgbm" else linear_oof
    chosen_h = tree_h if result.model_kind == "lightgbm" else linear_h
    rows = [scored("chosen", chosen_oof, chosen_h, weight=np.nan)]
    assert rows[0]["matches_train_model"], "the watched run was not reproduced"

    a = best_weight(y_oof, tree_oof, linear_oof)
    blended_oof = mix(a, tree_oof, linear_oof)
    gain, error = train.paired_log_loss_gain(y_oof, expit(blended_oof), expit(chosen_oof))
    z = gain / error if error > 0 else 0.0
    rows.append(scored("blend", blended_oof, mix(a, tree_h, linear_h), weight=a, z=z, gain=gain))
    if z > MIN_Z:
        rows.append(
            scored("blend_z2", blended_oof, mix(a, tree_h, linear_h), weight=a, z=z, gain=gain)
        )
    else:
        rows.append(scored("blend_z2", chosen_oof, chosen_h, weight=0.0, z=z, gain=gain))

    # Stacking, out of fold itself: each fold's stacker learns from the other folds' leads.
    margins_oof = np.column_stack([tree_oof, linear_oof])
    stacked_oof = np.empty(len(y_oof))
    position = {row: i for i, row in enumerate(tested)}
    for train_rows, test_rows in cv_folds(
        y_cv, kwargs["folds"], kwargs["seed"], kwargs.get("time_order")
    ):
        learn = [position[r] for r in train_rows if r in position]
        test = [position[r] for r in test_rows]
        if len(np.unique(y_oof[learn])) < 2:  # the first time-ordered fold: nothing before it
            stacked_oof[test] = chosen_oof[test]
            continue
        stacker = LogisticRegression(C=1e6).fit(margins_oof[learn], y_oof[learn])
        stacked_oof[test] = stacker.decision_function(margins_oof[test])
    stacker = LogisticRegression(C=1e6).fit(margins_oof, y_oof)
    stacked_h = stacker.decision_function(np.column_stack([tree_h, linear_h]))
    rows.append(
        scored(
            "stack",
            stacked_oof,
            stacked_h,
            weight=float(stacker.coef_[0][1] / stacker.coef_[0].sum()),
        )
    )
    for fixed in FIXED:
        rows.append(
            scored(
                f"fixed_{fixed}",
                mix(fixed, tree_oof, linear_oof),
                mix(fixed, tree_h, linear_h),
                weight=fixed,
            )
        )
    if result.model_kind == "lightgbm":
        shape = str(chosen_folds.score.tree_shape)

        def grown(shape: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
            """(out-of-fold margins, holdout margins) of LightGBM in `shape` with `seed`."""
            shipped = models.lightgbm_head
            models.lightgbm_head = with_seed(seed)  # type: ignore[assignment]
            try:
                options = {
                    k: v for k, v in kwargs.items() if k not in ("candidates", "tree_shapes")
                }
                [folds] = train.cross_validate_candidates(
                    X_cv, y_cv, preparer, ("lightgbm",), tree_shapes=(shape,), **options
                )
                final = fit_head(
                    make_head(
                        "lightgbm",
                        final_preparer,
                        config.seed,
                        len(y_learn),
                        n_estimators=folds.n_estimators or 1000,
                        shape=shape,
                    ),
                    X_learn,
                    y_learn,
                    final_preparer,
                )
            finally:
                models.lightgbm_head = shipped  # type: ignore[assignment]
            assert np.array_equal(folds.tested, tested)
            return folds.output, head_output(final, H)[0]

        bag = [(tree_oof, tree_h)] + [grown(shape, config.seed + k) for k in (1000, 2000)]
        rows.append(
            scored(
                "bag_3",
                np.mean([oof for oof, _ in bag], axis=0),
                np.mean([hold for _, hold in bag], axis=0),
            )
        )
        no_categories = SimpleNamespace(categorical_indices_=[])
        options = {k: v for k, v in kwargs.items() if k not in ("candidates", "tree_shapes")}
        [hot] = train.cross_validate_candidates(
            one_hot(preparer, X_cv),
            y_cv,
            no_categories,
            ("lightgbm",),
            tree_shapes=(shape,),
            **options,
        )
        assert np.array_equal(hot.tested, tested)
        hot_head = fit_head(
            make_head(
                "lightgbm",
                final_preparer,
                config.seed,
                len(y_learn),
                n_estimators=hot.n_estimators or 1000,
                shape=shape,
            ),
            one_hot(final_preparer, X_learn),
            y_learn,
            no_categories,
        )
        hot_h = head_output(hot_head, one_hot(final_preparer, H))[0]
        rows.append(scored("onehot", hot.output, hot_h, cv_log_loss=hot.score.log_loss))
        if hot.score.log_loss < chosen_folds.score.log_loss:
            rows.append(scored("encoding", hot.output, hot_h, cv_log_loss=hot.score.log_loss))
        else:
            rows.append(
                scored("encoding", chosen_oof, chosen_h, cv_log_loss=chosen_folds.score.log_loss)
            )
        [other_shape] = [s for s in TREE_SHAPES if s != shape]
        other_oof, other_h = grown(other_shape, config.seed)
        b = best_weight(y_oof, tree_oof, other_oof)
        rows.append(
            scored("shapes", mix(b, tree_oof, other_oof), mix(b, tree_h, other_h), weight=b)
        )
    common = {
        "model": result.model_kind,
        "shape": by_name["lightgbm"].score.tree_shape,
        "trees": by_name["lightgbm"].n_estimators,
        "cv_log_loss_lightgbm": by_name["lightgbm"].score.log_loss,
        "cv_log_loss_logistic": by_name["logistic"].score.log_loss,
    }
    return [{**common, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exports", nargs="+", default=list(EXPORTS), choices=list(EXPORTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    if args.fresh and RESULTS.exists():
        RESULTS.unlink()
    jobs = [(e, EXPORTS[e][0], args.seeds or EXPORTS[e][1]) for e in args.exports]
    quality.run_per_seed(RESULTS, jobs, run_one)
    summary()


def summary() -> None:
    table = pd.read_csv(RESULTS)
    exports = list(dict.fromkeys(table.export))
    header = ["rule"] + [f"{e} ROC / PR / ECE (weight)" for e in exports]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    means = table.groupby(["rule", "export"])[["roc_auc", "pr_auc", "ece", "weight"]].mean()
    for rule in dict.fromkeys(table.rule):
        cells = []
        for export in exports:
            row = means.loc[(rule, export)]
            weight = "" if np.isnan(row.weight) else f" ({row.weight:.2f})"
            cells.append(f"{row.roc_auc:.4f} / {row.pr_auc:.4f} / {row.ece:.3f}{weight}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
