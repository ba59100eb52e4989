"""Turn raw leads into the numeric matrix the models learn from, as the schema says.

`LeadPreparer` is the first step of every leadml pipeline. It has two paths that give the same
numbers: `transform` for frames (training, batch scoring) and `transform_records` for a few dicts
(the API's single-lead path), which skips pandas entirely because a one-row DataFrame costs more
than the trees themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadml.schema import (
    DATETIME_PARTS,
    ColumnSpec,
    DateReading,
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
    parse_moment,
)

_NAN = math.nan
_NAN_PARTS = (_NAN,) * len(DATETIME_PARTS)


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
        self.record_encoder_ = RecordEncoder(self)
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
                moments = datetime_series(raw, spec.date_reading)
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
        """The same numbers as `transform`, for leads given as dicts, without pandas."""
        encoder = self.__dict__.get("record_encoder_")
        if encoder is None:  # a preparer pickled before encoders were kept with it
            encoder = self.record_encoder_ = RecordEncoder(self)
        return encoder.transform(records)


def _numeric(value: Any, placeholders: frozenset[str]) -> float:
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    if value is None or is_missing(value, placeholders):
        return _NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


_BOOLEAN_CODES: dict[Any, float] = {True: 1.0, False: 0.0, None: _NAN}


def _boolean(value: Any, placeholders: frozenset[str]) -> float:
    if type(value) is bool or value is None:
        return _BOOLEAN_CODES[value]
    if is_missing(value, placeholders):
        return _NAN
    return parse_boolean(value)


def _moment_parts(
    value: Any, placeholders: frozenset[str], reading: DateReading | None
) -> tuple[float, ...]:
    """Weekday, hour and month in UTC, as the frame path (`datetime_series`) has them."""
    if value is None:
        return _NAN_PARTS
    if not isinstance(value, datetime):
        if is_missing(value, placeholders):
            return _NAN_PARTS
        value = parse_moment(value, reading)
        if value is None:
            return _NAN_PARTS
    moment: datetime | pd.Timestamp = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return (float(moment.weekday()), float(moment.hour), float(moment.month))


class _CategoryColumn:
    """Known category -> code; anything else present -> the 'other' code; missing -> NaN."""

    def __init__(self, spec: ColumnSpec, mapping: Mapping[str, int], placeholders: frozenset[str]):
        self.name = spec.name
        self.codes = {category: float(code) for category, code in mapping.items()}
        self.other = float(len(mapping))
        self.placeholders = placeholders

    def code(self, value: Any) -> float:
        try:
            known = self.codes.get(value)
        except TypeError:  # unhashable
            known = None
        if known is not None:
            return known
        if value is None or is_missing(value, self.placeholders):
            return _NAN
        return self.codes.get(str(value).strip(), self.other)


class RecordEncoder:
    """The `LeadPreparer.transform` matrix for leads given as dicts, without pandas."""

    def __init__(self, preparer: LeadPreparer) -> None:
        schema: LeadSchema = preparer.schema
        self.placeholders = normalise_placeholders(schema.placeholders)
        self.features = schema.features
        self.categories = {
            spec.name: _CategoryColumn(spec, preparer.category_maps_[spec.name], self.placeholders)
            for spec in self.features
            if spec.role is Role.CATEGORICAL
        }
        width = sum(len(DATETIME_PARTS) if s.role is Role.DATETIME else 1 for s in self.features)
        if width != preparer.n_features_out_:
            raise ValueError(
                f"the preparer makes {preparer.n_features_out_} columns, expected {width}"
            )
        self.n_features = width

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not records:
            return np.empty((0, self.n_features))
        if len(records) == 1:
            return np.asarray([self._row(records[0])], dtype=float)
        matrix = np.empty((len(records), self.n_features))
        column = 0
        for spec in self.features:
            values = [record.get(spec.name) for record in records]
            if spec.role is Role.DATETIME:
                parts = [_moment_parts(v, self.placeholders, spec.date_reading) for v in values]
                matrix[:, column : column + len(DATETIME_PARTS)] = parts
                column += len(DATETIME_PARTS)
                continue
            matrix[:, column] = self._column(spec, values)
            column += 1
        return matrix

    def _column(self, spec: ColumnSpec, values: list[Any]) -> np.ndarray | list[float]:
        placeholders = self.placeholders
        if spec.role is Role.NUMERIC:
            if all(type(v) is float or type(v) is int or v is None for v in values):
                return np.asarray(values, dtype=float)  # None -> NaN
            return [_numeric(v, placeholders) for v in values]
        if spec.role is Role.BOOLEAN:
            return [_boolean(v, placeholders) for v in values]
        column = self.categories[spec.name]
        return [column.code(v) for v in values]

    def _row(self, record: Mapping[str, Any]) -> list[float]:
        row: list[float] = []
        placeholders = self.placeholders
        for spec in self.features:
            value = record.get(spec.name)
            role = spec.role
            if role is Role.NUMERIC:
                row.append(_numeric(value, placeholders))
            elif role is Role.CATEGORICAL:
                row.append(self.categories[spec.name].code(value))
            elif role is Role.BOOLEAN:
                row.append(_boolean(value, placeholders))
            else:
                row.extend(_moment_parts(value, placeholders, spec.date_reading))
        return row
