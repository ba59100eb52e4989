"""Score leads given as dicts at little more than the cost of the model's own arithmetic.

scikit-learn's `predict_proba` on one lead spends its time on input checks, pandas and scipy
dispatch, not on the model: measured on the demo model, about 1 ms a lead for LightGBM and 4-5 ms
for the logistic pipeline (its quantile scaling calls scipy once per column), while the trees take
about 0.01 ms. `compile_fast_path` reads a fitted leadml pipeline once and keeps only the
arithmetic:

- leads -> feature matrix: the `LeadPreparer` encoding (placeholders, booleans, category codes,
  datetime parts) with the category maps and column order precompiled, column by column for
  batches;
- LightGBM: the booster's C predictor (single-row fast path for one lead);
- logistic pipeline: median imputation, missing indicators and quantile scaling replayed with
  numpy, and each category's contribution to the decision function read off the fitted one-hot
  encoder into a lookup table;
- calibration (sigmoid or isotonic) replayed as scikit-learn computes it.

A compiled model is checked against the pipeline's own `predict_proba` on sample leads when it is
built (`verify_fast_path`); a pipeline it does not recognise, or any difference above 1e-9, is a
`FastPathUnavailable` and the caller falls back to the pipeline (`PipelinePredictor`).
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
from scipy.special import expit, ndtri
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer

from leadml.features import LeadPreparer, RecordEncoder
from leadml.schema import (
    DATETIME_PARTS,
    ColumnSpec,
    LeadSchema,
    Role,
)

Records = Sequence[Mapping[str, Any]]
FloatArray = np.ndarray

#: Largest difference to the pipeline's probabilities a compiled model may show.
TOLERANCE = 1e-9
_NAN = math.nan
_NAN_PARTS = (_NAN,) * len(DATETIME_PARTS)
# scikit-learn's QuantileTransformer constant: values this close to the ends map to the ends.
_QT_BOUNDS = 1e-7


class FastPathUnavailable(Exception):
    """This pipeline cannot be compiled (or its compiled form disagrees); use the pipeline."""


class Predictor(Protocol):
    """Calibrated conversion probabilities for leads given as dicts."""

    kind: str

    def prepare(self, records: Records) -> FloatArray:
        """The prepared feature matrix (what `LeadPreparer.transform` gives)."""
        ...

    def predict_matrix(self, matrix: FloatArray) -> FloatArray:
        """Probabilities for a prepared matrix."""
        ...

    def predict_proba(self, records: Records) -> FloatArray: ...


# --------------------------------------------------------------------------- heads


def _response_method(estimator: Any) -> str:
    """The output CalibratedClassifierCV calibrates: decision_function if there is one."""
    for name in ("decision_function", "predict_proba"):
        if getattr(estimator, name, None) is not None:
            return name
    raise FastPathUnavailable(f"{type(estimator).__name__} has no decision_function/predict_proba")


def _unfrozen(estimator: Any) -> Any:
    # sklearn.frozen.FrozenEstimator keeps the fitted estimator in `.estimator`.
    while type(estimator).__name__ == "FrozenEstimator":
        estimator = estimator.estimator
    return estimator


class _LightGBMHead:
    """Raw margins (or probabilities) from the booster's C predictor."""

    def __init__(self, model: Any, n_features: int, raw: bool) -> None:
        # Deferred: LightGBM loads only for a LightGBM model, not for a logistic one.
        try:
            from lightgbm import basic
        except ImportError as error:  # pragma: no cover - lightgbm is a dependency
            raise FastPathUnavailable("lightgbm is not importable") from error
        booster = model.booster_
        if booster.params.get("objective", model.objective_) != "binary":
            raise FastPathUnavailable(f"LightGBM objective {model.objective_!r} is not binary")
        if booster.num_feature() != n_features:
            raise FastPathUnavailable("the booster expects a different number of features")
        self.booster = booster
        self.raw = raw
        self.num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        self._lock = threading.Lock()
        self._lib: Any = getattr(basic, "_LIB", None)
        self._fast_config: ctypes.c_void_p | None = None
        try:
            self._init_single_row(basic, n_features)
        except (AttributeError, TypeError, basic.LightGBMError):
            self._fast_config = None  # the batch predictor still works, one call a lead

    def _init_single_row(self, basic: Any, n_features: int) -> None:
        predict_type = basic._C_API_PREDICT_RAW_SCORE if self.raw else basic._C_API_PREDICT_NORMAL
        config = ctypes.c_void_p()
        basic._safe_call(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self.booster._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),
                ctypes.c_int(self.num_iteration),
                ctypes.c_int(basic._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n_features),
                basic._c_str("num_threads=1"),
                ctypes.byref(config),
            )
        )
        self._safe_call = basic._safe_call
        self._fast_config = config
        self._out = np.zeros(1)
        self._out_pointer = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_length = ctypes.c_int64(0)

    def __del__(self) -> None:
        if self._fast_config is not None and self._lib is not None:
            self._lib.LGBM_FastConfigFree(self._fast_config)
            self._fast_config = None

    def __call__(self, matrix: FloatArray) -> FloatArray:
        if len(matrix) == 1 and self._fast_config is not None:
            row = np.ascontiguousarray(matrix[0], dtype=np.float64)
            with self._lock:
                self._safe_call(
                    self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                        self._fast_config,
                        row.ctypes.data_as(ctypes.c_void_p),
                        ctypes.byref(self._out_length),
                        self._out_pointer,
                    )
                )
                return self._out.copy()
        return np.asarray(
            self.booster.predict(matrix, raw_score=self.raw, num_iteration=self.num_iteration),
            dtype=float,
        )


def interp_columns(x: FloatArray, xp: FloatArray, fp: FloatArray) -> FloatArray:
    """`np.interp(x[:, c], xp[:, c], fp)` for every column c at once, with numpy's arithmetic.

    `xp` holds one ascending grid per column (repeats allowed), `fp` the shared values. One call
    replaces a Python loop over columns, which dominates when scoring a single lead.
    """
    n_points = xp.shape[0]
    count = (xp[None, :, :] <= x[:, None, :]).sum(axis=1)  # index of the last grid point <= x, + 1
    lower = np.clip(count - 1, 0, n_points - 2)
    columns = np.arange(x.shape[1])[None, :]
    x0, x1 = xp[lower, columns], xp[lower + 1, columns]
    y0, y1 = fp[lower], fp[lower + 1]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        slope = (y1 - y0) / (x1 - x0)
        result = slope * (x - x0) + y0
        retry = np.isnan(result)
        if retry.any():  # numpy tries from the right end when the left one gives NaN
            again = slope * (x - x1) + y1
            again = np.where(np.isnan(again) & (y0 == y1), y0, again)
            result = np.where(retry, again, result)
    exact = xp[np.clip(count - 1, 0, n_points - 1), columns] == x
    result = np.where(exact, fp[np.clip(count - 1, 0, n_points - 1)], result)
    result = np.where(x < xp[0], fp[0], result)
    return np.where(x > xp[-1], fp[-1], result)


def _quantile_scale(values: FloatArray, qt: QuantileTransformer) -> FloatArray:
    """`QuantileTransformer.transform` for columns without NaN, as scikit-learn computes it."""
    quantiles = qt.quantiles_
    references = qt.references_
    if qt.output_distribution == "normal":
        below = values - _QT_BOUNDS < quantiles[0]
        above = values + _QT_BOUNDS > quantiles[-1]
    else:
        below = values == quantiles[0]
        above = values == quantiles[-1]
    scaled = 0.5 * (
        interp_columns(values, quantiles, references)
        - interp_columns(-values, -quantiles[::-1], -references[::-1])
    )
    scaled = np.where(above, 1.0, scaled)
    scaled = np.where(below, 0.0, scaled)
    if qt.output_distribution == "normal":
        clip_min = ndtri(_QT_BOUNDS - np.spacing(1))
        clip_max = ndtri(1 - (_QT_BOUNDS - np.spacing(1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.clip(ndtri(scaled), clip_min, clip_max)
    return np.asarray(scaled, dtype=float)


class _ImputeAndScale:
    """SimpleImputer (+ missing indicators) then QuantileTransformer, replayed with numpy."""

    def __init__(self, step: Pipeline, coef: FloatArray) -> None:
        parts = [s for _, s in step.steps]
        if (
            len(parts) != 2
            or not isinstance(parts[0], SimpleImputer)
            or not isinstance(parts[1], QuantileTransformer)
        ):
            raise FastPathUnavailable("numeric block is not SimpleImputer -> QuantileTransformer")
        imputer, scaler = parts
        statistics = np.asarray(imputer.statistics_, dtype=float)
        if getattr(imputer, "keep_empty_features", False):
            kept = np.ones(len(statistics), dtype=bool)
        else:
            kept = ~np.isnan(statistics)
        if not (isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)):
            raise FastPathUnavailable("the imputer does not impute NaN")
        self.fill = np.where(np.isnan(statistics), 0.0, statistics)[kept]
        self.kept = np.flatnonzero(kept)
        self.indicated = (
            np.asarray(imputer.indicator_.features_, dtype=int)
            if imputer.add_indicator
            else np.empty(0, dtype=int)
        )
        self.scaler = scaler
        self.coef = coef
        if len(self.kept) + len(self.indicated) != len(coef):
            raise FastPathUnavailable("numeric block width does not match the coefficients")

    offset = 0.0

    def per_column(self, block: FloatArray) -> FloatArray:
        """Each input column's share of the decision function (value and missing indicator)."""
        missing = np.isnan(block)
        values = np.where(missing[:, self.kept], self.fill, block[:, self.kept])
        indicators = missing[:, self.indicated].astype(float)
        weighted = _quantile_scale(np.hstack([values, indicators]), self.scaler) * self.coef
        shares = np.zeros(block.shape)
        shares[:, self.kept] = weighted[:, : len(self.kept)]
        shares[:, self.indicated] += weighted[:, len(self.kept) :]
        return shares


class _CodeTables:
    """A column-separable encoder of category codes, as a contribution table per column.

    Each category code (NaN, 0..k) of each column is sent through the fitted encoder with every
    other column at a baseline; the change in the decision function is that code's contribution.
    """

    def __init__(self, step: Any, coef: FloatArray, sizes: Sequence[int]) -> None:
        baseline = np.full((1, len(sizes)), np.nan)
        base_value = float((_dense(step.transform(baseline)) @ coef)[0])
        self.offset = base_value
        self.tables: list[FloatArray] = []
        for column, size in enumerate(sizes):
            probe = np.repeat(baseline, size + 2, axis=0)
            probe[1:, column] = np.arange(size + 1, dtype=float)  # row 0 keeps NaN
            values = _dense(step.transform(probe)) @ coef
            self.tables.append(np.asarray(values, dtype=float) - base_value)
        # One flat table with each column's block at its start: a lookup is a single take.
        self._flat = np.concatenate(self.tables)
        self._starts = np.cumsum([0] + [len(t) for t in self.tables[:-1]]).astype(np.intp)
        self._last = np.asarray([len(t) - 1 for t in self.tables], dtype=float)

    def per_column(self, block: FloatArray) -> FloatArray:
        """Each column's contribution, relative to the baseline (`offset` holds the rest)."""
        codes = np.where(np.isnan(block), -1.0, block) + 1.0  # NaN -> 0, code c -> c + 1
        index = np.clip(codes, 0, self._last).astype(np.intp) + self._starts
        return self._flat[index]


def _dense(matrix: Any) -> FloatArray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)


class LinearHead:
    """Pipeline([ColumnTransformer(numbers, categories), LogisticRegression]).decision_function."""

    def __init__(self, head: Pipeline, preparer: LeadPreparer) -> None:
        steps = [s for _, s in head.steps]
        if (
            len(steps) != 2
            or not isinstance(steps[0], ColumnTransformer)
            or not isinstance(steps[1], LogisticRegression)
        ):
            raise FastPathUnavailable("not a ColumnTransformer -> LogisticRegression pipeline")
        encode, classify = steps
        if classify.coef_.shape[0] != 1:
            raise FastPathUnavailable("not a binary logistic regression")
        coef = np.asarray(classify.coef_[0], dtype=float)
        self.intercept = float(classify.intercept_[0])
        category_sizes = {name: len(mapping) for name, mapping in preparer.category_maps_.items()}
        names = list(preparer.feature_names_out_)
        self.blocks: list[tuple[np.ndarray, _ImputeAndScale | _CodeTables]] = []
        for name, transformer, columns in encode.transformers_:
            if transformer == "drop" or len(columns) == 0:
                continue
            if transformer == "passthrough":
                raise FastPathUnavailable("passthrough columns are not supported")
            columns = np.asarray(columns, dtype=int)
            block_coef = coef[encode.output_indices_[name]]
            if all(names[c] in category_sizes for c in columns):
                sizes = [category_sizes[names[c]] for c in columns]
                self.blocks.append((columns, _CodeTables(transformer, block_coef, sizes)))
            else:
                self.blocks.append((columns, _ImputeAndScale(transformer, block_coef)))
        self.constant = self.intercept + sum(block.offset for _, block in self.blocks)

    def per_column(self, matrix: FloatArray) -> FloatArray:
        """Each prepared column's additive share of the decision function (minus `constant`)."""
        shares = np.zeros(matrix.shape)
        for columns, block in self.blocks:
            shares[:, columns] += block.per_column(matrix[:, columns])
        return shares

    def __call__(self, matrix: FloatArray) -> FloatArray:
        return np.asarray(self.constant + self.per_column(matrix).sum(axis=1), dtype=float)


def _compile_head(estimator: Any, preparer: LeadPreparer) -> Callable[[FloatArray], FloatArray]:
    method = _response_method(estimator)
    head = _unfrozen(estimator)
    if type(head).__name__ == "LGBMClassifier":
        return _LightGBMHead(head, preparer.n_features_out_, raw=method == "decision_function")
    if isinstance(head, Pipeline) and method == "decision_function":
        return LinearHead(head, preparer)
    raise FastPathUnavailable(f"no compiled form for {type(head).__name__} ({method})")


# --------------------------------------------------------------------------- calibration


def _compile_calibrator(calibrator: Any) -> Callable[[FloatArray], FloatArray]:
    if type(calibrator).__name__ == "_SigmoidCalibration":
        a, b = float(calibrator.a_), float(calibrator.b_)
        return lambda scores: np.asarray(expit(-(a * scores + b)), dtype=float)
    if isinstance(calibrator, IsotonicRegression):
        if calibrator.out_of_bounds != "clip":
            raise FastPathUnavailable("isotonic calibration without clipping")
        xs = np.asarray(calibrator.X_thresholds_, dtype=float)
        ys = np.asarray(calibrator.y_thresholds_, dtype=float)
        low, high = float(calibrator.X_min_), float(calibrator.X_max_)
        if len(ys) == 1:
            return lambda scores: np.full(len(scores), ys[0])
        return lambda scores: np.interp(np.clip(scores, low, high), xs, ys)
    raise FastPathUnavailable(f"no compiled form for calibrator {type(calibrator).__name__}")


class _CalibratedMember:
    def __init__(self, member: Any, preparer: LeadPreparer) -> None:
        if member.method not in ("sigmoid", "isotonic") or len(member.calibrators) != 1:
            raise FastPathUnavailable(f"calibration method {member.method!r} is not supported")
        self.head = _compile_head(member.estimator, preparer)
        self.calibrate = _compile_calibrator(member.calibrators[0])

    def __call__(self, matrix: FloatArray) -> FloatArray:
        proba = self.calibrate(self.head(matrix))
        # scikit-learn rounds probabilities that overshoot 1 by float error down to 1.
        return np.where((proba > 1.0) & (proba <= 1.0 + 1e-5), 1.0, proba)


class CompiledPredictor:
    """The fast path: dicts -> feature matrix -> calibrated probabilities, pandas-free."""

    kind = "compiled"

    def __init__(self, pipeline: Pipeline) -> None:
        steps = dict(pipeline.named_steps)
        preparer, model = steps.get("prepare"), steps.get("model")
        if not isinstance(preparer, LeadPreparer) or not isinstance(model, CalibratedClassifierCV):
            raise FastPathUnavailable("not a LeadPreparer -> CalibratedClassifierCV pipeline")
        if list(model.classes_) != [0, 1]:
            raise FastPathUnavailable(f"classes {list(model.classes_)} are not [0, 1]")
        self.encoder = RecordEncoder(preparer)
        self.members = [_CalibratedMember(m, preparer) for m in model.calibrated_classifiers_]

    @property
    def linear_head(self) -> LinearHead | None:
        """The compiled logistic head, when the model is one (for fast reasons)."""
        if len(self.members) == 1 and isinstance(self.members[0].head, LinearHead):
            return self.members[0].head
        return None

    def prepare(self, records: Records) -> FloatArray:
        return self.encoder.transform(records)

    def predict_proba(self, records: Records) -> FloatArray:
        return self.predict_matrix(self.encoder.transform(records))

    def predict_matrix(self, matrix: FloatArray) -> FloatArray:
        if len(self.members) == 1:
            return self.members[0](matrix)
        total = np.zeros(len(matrix))
        for member in self.members:
            total = total + member(matrix)
        return total / len(self.members)


class PipelinePredictor:
    """The pipeline's own dict path (`LeadPreparer.transform_records` + `predict_proba`)."""

    kind = "pipeline"

    def __init__(self, pipeline: Pipeline) -> None:
        self.preparer: LeadPreparer = pipeline.named_steps["prepare"]
        self.model = pipeline.named_steps["model"]

    def prepare(self, records: Records) -> FloatArray:
        return np.asarray(self.preparer.transform_records(records), dtype=float)

    def predict_matrix(self, matrix: FloatArray) -> FloatArray:
        return np.asarray(self.model.predict_proba(matrix)[:, 1], dtype=float)

    def predict_proba(self, records: Records) -> FloatArray:
        return self.predict_matrix(self.prepare(records))


# --------------------------------------------------------------------------- checks


def probe_leads(schema: LeadSchema, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Random leads that exercise every branch: known and unknown categories, blanks, placeholders,
    numbers out of the training range, yes/no words and booleans, dates with and without a zone."""
    rng = np.random.default_rng(seed)
    placeholders = [p for p in schema.placeholders if p] or ["Select"]
    leads: list[dict[str, Any]] = []
    for _ in range(n):
        lead: dict[str, Any] = {}
        for spec in schema.features:
            lead[spec.name] = _probe_value(spec, rng, placeholders)
        leads.append(lead)
    return leads


def _probe_value(spec: ColumnSpec, rng: np.random.Generator, placeholders: list[str]) -> Any:
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.12:
        return str(rng.choice(placeholders)).title()
    if spec.role is Role.NUMERIC:
        value = float(rng.lognormal(2.0, 1.5)) * (1 if rng.random() < 0.9 else -1)
        return round(value) if spec.integer else value
    if spec.role is Role.BOOLEAN:
        return [True, False, "Yes", "No", "yes", "no"][int(rng.integers(6))]
    if spec.role is Role.CATEGORICAL:
        if spec.categories and rng.random() < 0.8:
            return str(spec.categories[int(rng.integers(len(spec.categories)))])
        return f"unseen value {int(rng.integers(1000))}"
    moment = pd.Timestamp("2020-01-01") + pd.Timedelta(seconds=int(rng.integers(0, 10**8)))
    text = moment.isoformat()
    return text + ("+02:00" if rng.random() < 0.3 else "")


def verify_fast_path(
    predictor: CompiledPredictor, pipeline: Pipeline, leads: pd.DataFrame
) -> float:
    """Largest difference between the compiled path and `pipeline.predict_proba` on `leads`,
    as a batch and one lead at a time; raises `FastPathUnavailable` above `TOLERANCE`."""
    expected = np.asarray(pipeline.predict_proba(leads)[:, 1], dtype=float)
    records = cast(list[dict[str, Any]], leads.to_dict("records"))
    as_batch = predictor.predict_proba(records)
    one_by_one = np.concatenate([predictor.predict_proba([r]) for r in records[:25]])
    worst = max(
        float(np.max(np.abs(as_batch - expected), initial=0.0)),
        float(np.max(np.abs(one_by_one - expected[: len(one_by_one)]), initial=0.0)),
    )
    if not (np.all(np.isfinite(as_batch)) and worst <= TOLERANCE):
        raise FastPathUnavailable(
            f"the compiled path differs from the pipeline by {worst:.3g} (> {TOLERANCE:g})"
        )
    return worst


def build_predictor(
    pipeline: Pipeline, samples: Sequence[pd.DataFrame]
) -> tuple[Predictor, str | None]:
    """The compiled predictor if it compiles and agrees with the pipeline on every sample frame;
    else the pipeline's own path, with the reason."""
    try:
        compiled = CompiledPredictor(pipeline)
        for sample in samples:
            verify_fast_path(compiled, pipeline, sample)
    except FastPathUnavailable as error:
        return PipelinePredictor(pipeline), str(error)
    return compiled, None
