"""Turn raw leads into the numeric matrix the models learn from, as the schema says.

`LeadPreparer` is the first step of every leadml pipeline. It has two paths that give the same
numbers: `transform` for frames (training, batch scoring) and `transform_records` for a few dicts
(the API's single-lead path), which skips pandas entirely because a one-row DataFrame costs more
than the trees themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.schema import (
    DATETIME_PARTS,
    LeadSchema,
    Role,
    blank_placeholders,
    boolean_series,
    datetime_feature_names,
    datetime_series,
    is_missing,
    normalise_placeholders,
    numeric_series,
    parse_boolean,
)


def _datetime_parts(moment: pd.Timestamp | datetime) -> list[float]:
    values = {"weekday": moment.weekday(), "hour": moment.hour, "month": moment.month}
    return [float(values[part]) for part in DATETIME_PARTS]


def _parse_moment(value: Any) -> pd.Timestamp | None:
    if isinstance(value, datetime):
        return pd.Timestamp(value)
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if moment is pd.NaT:
        return None
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class LeadPreparer(TransformerMixin, BaseEstimator):
    """Clean and encode raw leads into a float matrix.

    Placeholders become missing; booleans become 0/1; datetimes become weekday, hour and month;
    categories become integer codes (known categories 0..k-1, anything else k, missing NaN) so
    that gradient boosting can split on them natively and a one-hot step can expand them.
    """

    def __init__(self, schema: LeadSchema) -> None:
        self.schema = schema

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> LeadPreparer:
        features = self.schema.features
        self.category_maps_: dict[str, dict[str, int]] = {
            spec.name: {category: code for code, category in enumerate(spec.categories)}
            for spec in features
            if spec.role is Role.CATEGORICAL
        }
        names: list[str] = []
        categorical: list[bool] = []
        for spec in features:
            if spec.role is Role.DATETIME:
                parts = datetime_feature_names(spec.name)
                names.extend(parts)
                categorical.extend([False] * len(parts))
            else:
                names.append(spec.name)
                categorical.append(spec.role is Role.CATEGORICAL)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        self.categorical_mask_ = np.asarray(categorical, dtype=bool)
        self.placeholders_ = normalise_placeholders(self.schema.placeholders)
        self.n_features_out_ = len(names)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self.feature_names_out_

    @property
    def categorical_indices_(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.categorical_mask_)]

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        n_rows = len(X)
        blocks: list[np.ndarray] = []
        for spec in self.schema.features:
            if spec.name in X.columns:
                raw = blank_placeholders(X[spec.name], self.placeholders_)
            else:
                raw = pd.Series([None] * n_rows, index=X.index, dtype=object)
            if spec.role is Role.NUMERIC:
                blocks.append(numeric_series(raw).to_numpy(dtype=float)[:, None])
            elif spec.role is Role.BOOLEAN:
                blocks.append(boolean_series(raw).to_numpy(dtype=float)[:, None])
            elif spec.role is Role.CATEGORICAL:
                blocks.append(self._encode_categories(spec.name, raw)[:, None])
            else:
                moments = datetime_series(raw)
                parts = {
                    "weekday": moments.dt.weekday,
                    "hour": moments.dt.hour,
                    "month": moments.dt.month,
                }
                blocks.append(
                    np.column_stack(
                        [parts[p].to_numpy(dtype=float, na_value=np.nan) for p in DATETIME_PARTS]
                    )
                )
        if not blocks:
            return np.empty((n_rows, 0))
        return np.hstack(blocks).astype(float, copy=False)

    def _encode_categories(self, name: str, raw: pd.Series) -> np.ndarray:
        mapping = self.category_maps_[name]
        text = raw.astype("string")
        codes = text.map(mapping, na_action="ignore").astype("Float64")
        other = float(len(mapping))
        codes = codes.mask(text.notna() & codes.isna(), other)
        return codes.to_numpy(dtype=float, na_value=np.nan)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The same numbers as `transform`, for a few leads given as dicts."""
        matrix = np.full((len(records), self.n_features_out_), np.nan)
        for row, record in enumerate(records):
            matrix[row] = self._record_vector(record)
        return matrix

    def _record_vector(self, record: Mapping[str, Any]) -> list[float]:
        vector: list[float] = []
        placeholders = self.placeholders_
        for spec in self.schema.features:
            value = record.get(spec.name)
            missing = is_missing(value, placeholders)
            if spec.role is Role.NUMERIC:
                vector.append(math.nan if missing else _to_float(value))
            elif spec.role is Role.BOOLEAN:
                vector.append(math.nan if missing else parse_boolean(value))
            elif spec.role is Role.CATEGORICAL:
                if missing:
                    vector.append(math.nan)
                else:
                    mapping = self.category_maps_[spec.name]
                    vector.append(float(mapping.get(str(value).strip(), len(mapping))))
            else:
                moment = None if missing else _parse_moment(value)
                if moment is None:
                    vector.extend([math.nan] * len(DATETIME_PARTS))
                else:
                    vector.extend(_datetime_parts(moment))
        return vector
