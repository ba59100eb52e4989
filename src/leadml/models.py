"""Candidate estimators. Each is a pipeline whose first step is the schema's `LeadPreparer`."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

from leadml.features import LeadPreparer
from leadml.schema import LeadSchema

CandidateName = Literal["logistic", "lightgbm"]
CANDIDATES: tuple[CandidateName, ...] = ("logistic", "lightgbm")

#: Threads pay off for LightGBM only on large data; on small data they contend and slow it down.
PARALLEL_FROM_ROWS = 100_000

#: Below this share of converted leads the minority class is re-weighted during fitting.
#: Calibration afterwards restores honest probabilities either way.
IMBALANCED_BELOW = 0.15

DESCRIPTIONS: dict[str, str] = {
    "logistic": "regularised logistic regression (one-hot categories, quantile-scaled numbers)",
    "lightgbm": "gradient boosting (LightGBM) with native categorical splits",
}


def _class_weight(positive_rate: float) -> str | None:
    return "balanced" if positive_rate < IMBALANCED_BELOW else None


def logistic_head(preparer: LeadPreparer, positive_rate: float, seed: int) -> Pipeline:
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
                LogisticRegression(C=0.5, max_iter=3000, class_weight=_class_weight(positive_rate)),
            ),
        ]
    )


def lightgbm_head(
    preparer: LeadPreparer, positive_rate: float, seed: int, n_rows: int = 0
) -> LGBMClassifier:
    """Shallow, slowly learning trees: robust defaults for a few thousand to millions of leads."""
    return LGBMClassifier(
        n_estimators=300,
        learning_rate=0.04,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        cat_smooth=10.0,
        min_data_per_group=20,
        class_weight=_class_weight(positive_rate),
        random_state=seed,
        n_jobs=2 if n_rows >= PARALLEL_FROM_ROWS else 1,
        verbose=-1,
    )


def make_head(
    name: CandidateName,
    preparer: LeadPreparer,
    positive_rate: float,
    seed: int = 0,
    n_rows: int = 0,
) -> Any:
    """The estimator that follows the preparer for candidate `name`."""
    if name == "logistic":
        return logistic_head(preparer, positive_rate, seed)
    if name == "lightgbm":
        return lightgbm_head(preparer, positive_rate, seed, n_rows)
    raise ValueError(f"unknown candidate {name!r}; choose one of {', '.join(CANDIDATES)}")


def fit_head(head: Any, X: np.ndarray, y: np.ndarray, preparer: LeadPreparer) -> Any:
    """Fit a head on prepared features, telling LightGBM which columns are categories."""
    if isinstance(head, LGBMClassifier):
        return head.fit(X, y, categorical_feature=preparer.categorical_indices_ or "auto")
    return head.fit(X, y)


def fitted_preparer(schema: LeadSchema) -> LeadPreparer:
    return LeadPreparer(schema).fit()
