"""Candidate estimators. Each is a pipeline whose first step is the schema's `LeadPreparer`."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from lightgbm import LGBMClassifier
from scipy import interpolate
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

from leadml.features import LeadPreparer

CandidateName = Literal["logistic", "lightgbm"]
CANDIDATES: tuple[CandidateName, ...] = ("logistic", "lightgbm")

#: Threads pay off for LightGBM only on large data; on small data they contend and slow it down.
PARALLEL_FROM_ROWS = 100_000

#: The most trees a LightGBM candidate may grow; cross-validation picks how many it keeps.
MAX_TREES = 1000
#: LightGBM's learning rate: high enough that early stopping settles within a few hundred trees
#: (fewer trees make reasons faster), low enough not to overshoot on small exports.
LEARNING_RATE = 0.05
#: The tree shapes cross-validation chooses between, by out-of-fold log loss: deeper trees where
#: the outcome hangs on combinations of traits, shallow ones where it adds up trait by trait
#: (fewer interactions to fit noise with). Both are shallow enough that exact reasons stay fast:
#: a lead costs about one step per leaf and split, and the shallow shape needs about twice the
#: trees. Measured against other settings on every benchmark export in bench/README.md.
#: name -> (leaves, depth)
TREE_SHAPES: dict[str, tuple[int, int]] = {
    "15 leaves, depth 5": (15, 5),
    "7 leaves, depth 3": (7, 3),
}
DEFAULT_TREE_SHAPE = "15 leaves, depth 5"

DESCRIPTIONS: dict[str, str] = {
    "logistic": "regularised logistic regression (one-hot categories, quantile-scaled numbers)",
    "lightgbm": "gradient boosting (LightGBM) with native categorical splits",
}


def logistic_head(preparer: LeadPreparer, seed: int) -> Pipeline:
    """One-hot categories and quantile-scaled numbers into an L2 logistic regression."""
    categorical = preparer.categorical_indices_
    numeric = [i for i in range(preparer.n_features_out_) if i not in set(categorical)]
    encode = ColumnTransformer(
        [
            (
                "numbers",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                        (
                            "scale",
                            QuantileTransformer(
                                n_quantiles=100, output_distribution="normal", random_state=seed
                            ),
                        ),
                    ]
                ),
                numeric,
            ),
            (
                "categories",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value=-1.0)),
                        ("one_hot", OneHotEncoder(handle_unknown="ignore", min_frequency=5)),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )
    return Pipeline(
        [
            ("encode", encode),
            (
                "classify",
                LogisticRegression(C=0.5, solver="newton-cholesky", max_iter=200),
            ),
        ]
    )


def lightgbm_head(
    preparer: LeadPreparer,
    seed: int,
    n_rows: int = 0,
    n_estimators: int = MAX_TREES,
    shape: str = DEFAULT_TREE_SHAPE,
) -> LGBMClassifier:
    """Shallow trees (`TREE_SHAPES`), as many as cross-validation found useful: robust for a few
    thousand to millions of leads. No class weights: they distort the probabilities, which
    calibration then has to undo, and measured they cost ranking quality too (bench/README.md)."""
    leaves, depth = TREE_SHAPES[shape]
    return LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=LEARNING_RATE,
        num_leaves=leaves,
        # At most 5 splits from root to leaf: as good as unlimited depth on the benchmarks, and
        # it bounds what exact TreeSHAP costs per lead (see explain.py and treeshap.py).
        max_depth=depth,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        cat_smooth=10.0,
        min_data_per_group=20,
        random_state=seed,
        n_jobs=2 if n_rows >= PARALLEL_FROM_ROWS else 1,
        verbose=-1,
    )


def make_head(
    name: CandidateName,
    preparer: LeadPreparer,
    seed: int = 0,
    n_rows: int = 0,
    n_estimators: int = MAX_TREES,
    shape: str = DEFAULT_TREE_SHAPE,
) -> Any:
    """The estimator that follows the preparer for candidate `name` (`shape`: LightGBM's)."""
    if name == "logistic":
        return logistic_head(preparer, seed)
    if name == "lightgbm":
        return lightgbm_head(preparer, seed, n_rows, n_estimators, shape)
    raise ValueError(f"unknown candidate {name!r}; choose one of {', '.join(CANDIDATES)}")


def fit_head(
    head: Any,
    X: np.ndarray,
    y: np.ndarray,
    preparer: LeadPreparer,
    sample_weight: np.ndarray | None = None,
    **lightgbm_fit: Any,
) -> Any:
    """Fit a head on prepared features, telling LightGBM which columns are categories
    (`lightgbm_fit`: further `LGBMClassifier.fit` arguments, e.g. an eval set)."""
    if isinstance(head, LGBMClassifier):
        return head.fit(
            X,
            y,
            sample_weight=sample_weight,
            categorical_feature=preparer.categorical_indices_ or "auto",
            **lightgbm_fit,
        )
    if sample_weight is None:
        return head.fit(X, y)
    return head.fit(X, y, classify__sample_weight=sample_weight)


def head_output(head: Any, X: np.ndarray, **predict: Any) -> tuple[np.ndarray, np.ndarray]:
    """(what the calibrator maps to a probability, the head's own P(converted)).

    The first is what `CalibratedClassifierCV` picks: the decision function if the head has one
    (log-odds: logistic regression, LightGBM from 4.7), else P(converted). `predict`: further
    arguments for LightGBM's prediction (e.g. `num_iteration`).
    """
    proba = np.asarray(head.predict_proba(X, **predict)[:, 1], dtype=float)
    if getattr(head, "decision_function", None) is not None:
        return np.asarray(head.decision_function(X, **predict), dtype=float), proba
    return proba, proba


def center_isotonic(calibrator: IsotonicRegression) -> IsotonicRegression:
    """Centered isotonic regression (Oron & Flournoy, 2017) from a fitted isotonic calibrator.

    Isotonic regression is a step function: every lead in a step gets the same probability, so
    the top 5 % of leads can share one value and a capacity policy cannot draw its line inside
    them. Interpolating between the centres of the steps keeps each step's average (the
    calibration) and makes the map strictly increasing, so the model's ranking survives. Below
    the first and above the last centre the line continues with half the neighbouring slope.
    """
    xs = np.asarray(calibrator.X_thresholds_, dtype=float)
    ys = np.asarray(calibrator.y_thresholds_, dtype=float)
    if len(np.unique(ys)) < 2:
        return calibrator
    starts = np.flatnonzero(np.r_[True, np.diff(ys) != 0])
    ends = np.r_[starts[1:], len(ys)] - 1
    centres = (xs[starts] + xs[ends]) / 2.0
    levels = ys[starts]
    low, high = float(calibrator.X_min_), float(calibrator.X_max_)
    first_slope = (levels[1] - levels[0]) / max(centres[1] - centres[0], 1e-12)
    last_slope = (levels[-1] - levels[-2]) / max(centres[-1] - centres[-2], 1e-12)
    start = levels[0] - first_slope * (centres[0] - low) / 2.0
    end = levels[-1] + last_slope * (high - centres[-1]) / 2.0
    # A step at exactly 0 % or 100 % cannot be extended past it without ties; run the line from
    # the neighbouring centre to the edge instead (such a step is overconfident anyway).
    if levels[-1] >= 1.0 and len(levels) > 2:
        centres, levels, end = centres[:-1], levels[:-1], 1.0
    if levels[0] <= 0.0 and len(levels) > 2:
        centres, levels, start = centres[1:], levels[1:], 0.0
    new_x = np.r_[low, centres, high]
    new_y = np.r_[start, levels, end]
    keep = np.r_[new_x[1:] > new_x[:-1], True]
    calibrator.X_thresholds_ = new_x[keep]
    calibrator.y_thresholds_ = np.clip(new_y[keep], 0.0, 1.0)
    calibrator.f_ = interpolate.interp1d(
        calibrator.X_thresholds_, calibrator.y_thresholds_, kind="linear", bounds_error=False
    )
    return calibrator
