"""Candidate estimators. Each is a pipeline whose first step is the schema's `LeadPreparer`."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from lightgbm import Booster, LGBMClassifier
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
        # One-hot columns (`one_hot_matrix`) are plain numbers: then the caller says "auto".
        lightgbm_fit.setdefault("categorical_feature", preparer.categorical_indices_ or "auto")
        return head.fit(X, y, sample_weight=sample_weight, **lightgbm_fit)
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


# -- categories as one-hot columns, written back as native categorical splits ------------------
#: A one-hot column's source: (prepared column, category code), code None for a column that is
#: not a category (kept as it is) and MISSING_CODE for the "no value" indicator.
OneHotLayout = list[tuple[int, int | None]]
MISSING_CODE = -1
#: LightGBM's decision_type of a categorical split: the category flag, missing values to the right.
_CATEGORICAL_DECISION = 1 | (2 << 2)


def one_hot_layout(preparer: LeadPreparer) -> OneHotLayout:
    """Which prepared column and category code each one-hot column holds, in column order: a
    category column becomes one 0/1 column per code the preparer gives (its categories, then
    "other") and one for "no value"."""
    categorical = set(preparer.categorical_indices_)
    names = [str(name) for name in preparer.feature_names_out_]
    layout: OneHotLayout = []
    for column, name in enumerate(names):
        if column not in categorical:
            layout.append((column, None))
            continue
        codes = len(preparer.category_maps_[name]) + 1  # the known categories and "other"
        layout.extend((column, code) for code in range(codes))
        layout.append((column, MISSING_CODE))
    return layout


def one_hot_matrix(preparer: LeadPreparer, X: np.ndarray) -> np.ndarray:
    """The prepared matrix with every category column spread out as `one_hot_layout` says."""
    layout = one_hot_layout(preparer)
    out = np.empty((X.shape[0], len(layout)), dtype=float)
    for index, (column, code) in enumerate(layout):
        values = X[:, column]
        if code is None:
            out[:, index] = values
        elif code == MISSING_CODE:
            out[:, index] = np.isnan(values)
        else:
            out[:, index] = values == code
    return out


def _zero_and_one_children(tree: dict[str, list[str]], node: int) -> tuple[str, str]:
    """Where a 0 and a 1 go at a numerical split of a 0/1 column, as LightGBM decides."""
    decision = int(tree["decision_type"][node])
    threshold = float(tree["threshold"][node])
    left, right = tree["left_child"][node], tree["right_child"][node]
    zero_is_missing = (decision >> 2) & 3 == 1
    default_left = bool(decision & 2)
    if zero_is_missing:
        zero = left if default_left else right
    else:
        zero = left if threshold >= 0.0 else right
    one = left if threshold >= 1.0 else right
    return zero, one


def _bitset(codes: list[int]) -> list[int]:
    words = [0] * (max(codes) // 32 + 1)
    for code in codes:
        words[code // 32] |= 1 << (code % 32)
    return words


def _native_tree(block: str, layout: OneHotLayout, codes_per_column: dict[int, int]) -> str:
    """One tree of a model grown on one-hot columns, its splits rewritten onto the prepared
    columns: "category k" as the category set {k} (children swapped: a 0 is every other code and
    no value, which LightGBM sends right), "no value" as the set of every code (no value right)."""
    lines = block.strip("\n").split("\n")
    keys = [line.split("=", 1)[0] for line in lines]
    tree = {key: line.split("=", 1)[1].split(" ") for key, line in zip(keys, lines, strict=True)}
    boundaries, words = [0], []
    if int(tree["num_leaves"][0]) > 1:
        for node, feature in enumerate(tree["split_feature"]):
            column, code = layout[int(feature)]
            tree["split_feature"][node] = str(column)
            if code is None:
                continue
            zero, one = _zero_and_one_children(tree, node)
            if zero == one:
                raise ValueError("a split of a one-hot column sends 0 and 1 the same way")
            if code == MISSING_CODE:
                codes, left, right = list(range(codes_per_column[column])), zero, one
            else:
                codes, left, right = [code], one, zero
            tree["left_child"][node], tree["right_child"][node] = left, right
            tree["decision_type"][node] = str(_CATEGORICAL_DECISION)
            tree["threshold"][node] = str(len(boundaries) - 1)
            words.extend(_bitset(codes))
            boundaries.append(len(words))
    tree["num_cat"] = [str(len(boundaries) - 1)]
    out = []
    for key in keys:
        if key in ("cat_boundaries", "cat_threshold"):
            continue
        if key == "is_linear" and len(boundaries) > 1:
            out.append("cat_boundaries=" + " ".join(map(str, boundaries)))
            out.append("cat_threshold=" + " ".join(map(str, words)))
        out.append(f"{key}=" + " ".join(tree[key]))
    return "\n".join(out)


def native_from_one_hot(
    hot: LGBMClassifier, preparer: LeadPreparer, X: np.ndarray, y: np.ndarray
) -> LGBMClassifier:
    """The LightGBM model grown on `one_hot_matrix(preparer, X)`, as an LGBMClassifier on the
    prepared columns themselves with the same margins: one ordinary booster with native
    categorical splits, which the fast path, the compiled TreeSHAP, the reasons and every saved
    format read as they read any leadml model. Checked on `X`; ValueError if it differs."""
    layout = one_hot_layout(preparer)
    codes_per_column = {
        c: len(preparer.category_maps_[str(n)]) + 1 for c, n in _category_names(preparer)
    }
    # A one-tree model on the prepared columns gives the header (feature count, names, category
    # infos) and a fitted LGBMClassifier to hold the rewritten booster.
    rows = np.r_[np.flatnonzero(y == 1)[:2000], np.flatnonzero(y == 0)[:2000]]
    shell = LGBMClassifier(**{**hot.get_params(), "n_estimators": 1})
    shell.fit(X[rows], y[rows], categorical_feature=preparer.categorical_indices_ or "auto")
    header = shell.booster_.model_to_string()
    header = header[: header.index("Tree=0")]
    header = "".join(line for line in header.splitlines(True) if not line.startswith("tree_sizes="))
    grown = hot.booster_.model_to_string()
    trees = grown[grown.index("Tree=0") : grown.index("end of trees")]
    blocks = ["Tree=" + block for block in trees.split("Tree=")[1:]]
    native_trees = "\n\n".join(_native_tree(b, layout, codes_per_column) for b in blocks)
    tail = shell.booster_.model_to_string()
    tail = tail[tail.index("end of trees") :]
    shell._Booster = Booster(model_str=header + native_trees + "\n\n\n" + tail)
    shell.set_params(n_estimators=hot.booster_.num_trees())
    margin = shell.booster_.predict(X, raw_score=True)
    expected = hot.booster_.predict(one_hot_matrix(preparer, X), raw_score=True)
    if not np.allclose(margin, expected, rtol=0.0, atol=1e-9):
        raise ValueError("the rewritten LightGBM model does not give the one-hot model's margins")
    return shell


def _category_names(preparer: LeadPreparer) -> list[tuple[int, str]]:
    names = preparer.feature_names_out_
    return [(column, str(names[column])) for column in preparer.categorical_indices_]
