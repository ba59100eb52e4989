"""Reasons per lead: which traits raise or lower its chance, and what would move it past the line.

Reasons are the model's own additive account of one lead's score, in log-odds of the head (the
model before calibration). Calibration is a monotone map applied afterwards, so a trait that
raises the head's log-odds raises the calibrated probability too.

- LightGBM: exact TreeSHAP from the booster itself (`predict(X, pred_contrib=True)`). The base
  value is the model's expected margin over its training data; base + contributions = the raw
  margin of each lead.
- Logistic regression: coef * (encoded lead - encoded baseline) per encoded column, so
  base + contributions = the logit exactly. The baseline is a *typical lead*: every number at its
  training median (the imputer's statistics), every category at its most frequent training value
  (the schema lists categories most frequent first), and a field that was missing in more than
  half of the training leads left missing. A reason then says how this lead differs from a
  typical one, and a lead with the typical value of a field gets no reason from it. Passing
  `background` leads instead uses their mean encoded vector (linear SHAP under independence).

Either way contributions are summed back to the lead's original fields: a datetime's weekday,
hour and month become one reason about the datetime, and one-hot columns (and the missing-value
indicator) one reason about their field.

"What would move this lead": `what_would_move` tries changing one actionable field at a time
(see `actionable_fields`) and returns the smallest change that lifts the calibrated probability
to the MQL cut-off. Candidate values come from the model itself: every known category, the other
yes/no answer, and for numbers the points where the model can change its mind (LightGBM's split
thresholds, or the logistic model's training quantiles), in both directions. A category switch
or a yes/no flip is one step; a numeric move is one step per grid point it passes. The change
with the fewest steps wins, ties going to the higher resulting probability.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from leadml.data import sample_positions
from leadml.errors import ModelError, PolicyError
from leadml.fastpath import LinearHead
from leadml.features import LeadPreparer
from leadml.schema import ColumnSpec, Role, parse_boolean
from leadml.treeshap import TreeShap
from leadml.validation import validate_records

if TYPE_CHECKING:
    from leadml.scoring import Scorer

FloatMatrix = npt.NDArray[np.float64]
Direction = Literal["raises", "lowers"]
ExplainerKind = Literal["lightgbm", "logistic"]

#: Contributions smaller than this (in log-odds: the odds move by less than 5 %) are noise, not
#: something to tell sales; a lead may then have fewer than `top` reasons on a side.
MIN_EFFECT = 0.05
#: LightGBM predictions on fewer leads than this run on one thread.
SINGLE_THREAD_BELOW_ROWS = 1000
#: A field missing in more than this share of training leads is missing in the typical lead.
TYPICAL_MISSING_SHARE = 0.5

#: Words in a field's name that mark a trait marketing cannot change for an existing lead:
#: who or where the lead is, where it came from, consent flags, and scores made by others.
FIXED_TRAIT_WORDS: frozenset[str] = frozenset(
    {
        "country", "city", "region", "state", "location", "address", "zip", "postcode",
        "industry", "company", "size", "employees", "revenue", "job", "title", "level",
        "occupation", "specialization", "specialisation", "profile", "gender", "age",
        "source", "origin", "campaign", "channel", "medium", "hear", "referrer",
        "index", "score", "quality", "tag", "tags", "status", "id",
        "consent", "opt", "agree", "agreed", "unsubscribe", "unsubscribed", "not",
    }
)  # fmt: skip

#: Field-name endings that are units: the label drops them and the value carries them.
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_seconds", "s"),
    ("_secs", "s"),
    ("_sec", "s"),
    ("_minutes", "min"),
    ("_mins", "min"),
    ("_min", "min"),
    ("_hours", "h"),
    ("_hrs", "h"),
    ("_days", "days"),
    ("_pct", "%"),
    ("_percent", "%"),
)


# --------------------------------------------------------------------------- reasons


@dataclass(frozen=True)
class Reason:
    """One field's part in a lead's score, in plain words."""

    field: str
    value: Any
    effect: float  # log-odds of the head; positive raises the chance
    direction: Direction
    text: str

    def to_dict(self) -> dict[str, Any]:
        return _reason_dict(self.field, self.value, self.effect, self.direction, self.text)


@dataclass(frozen=True)
class LeadReasons:
    """The strongest reasons for (raising) and against (lowering) one lead's chance."""

    for_: list[Reason] = field(default_factory=list)
    against: list[Reason] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "for": [r.to_dict() for r in self.for_],
            "against": [r.to_dict() for r in self.against],
        }


@functools.lru_cache(maxsize=4096)  # reasons ask for the same few labels once per lead
def field_label(name: str) -> str:
    """A field name people can read: `time_on_site_sec` -> "Time on site".

    Names already written for people (with spaces or capitals, like "Lead Source") stay as they are.
    """
    if " " in name or any(c.isupper() for c in name):
        return name.strip()
    stem, _ = _split_unit(name)
    words = stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else name


@functools.lru_cache(maxsize=4096)
def _split_unit(name: str) -> tuple[str, str]:
    lowered = name.lower()
    for suffix, unit in _UNIT_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], unit
    return name, ""


def _format_number(number: float) -> str:
    if math.isfinite(number) and number == round(number) and abs(number) < 1e15:
        return f"{round(number):,}" if abs(number) >= 10_000 else str(round(number))
    return f"{number:.3g}" if abs(number) < 1000 else f"{number:,.0f}"


#: The roles as module names: looking a member up on the Enum class costs half a microsecond,
#: and a reason asks up to three times.
_BOOLEAN, _NUMERIC, _DATETIME = Role.BOOLEAN, Role.NUMERIC, Role.DATETIME


def format_value(spec: ColumnSpec, value: Any, known: bool = True) -> str:
    """How a field's value reads in a sentence: "35 s", "yes", "Referral"."""
    role = spec.role
    if role is _BOOLEAN:
        answer = parse_boolean(value)
        return "yes" if answer == 1.0 else "no" if answer == 0.0 else str(value)
    if role is _NUMERIC:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        _, unit = _split_unit(spec.name)
        text = _format_number(number)
        return f"{text} {unit}" if unit and unit != "%" else f"{text}{unit}"
    if role is _DATETIME:
        if isinstance(value, datetime | date | pd.Timestamp):
            return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
        return str(value)
    text = str(value).strip()
    return text if known else f"{text} (a rare value)"


def _by_falling_effect(told: tuple[int, float]) -> float:
    return -told[1]


def _reason_dict(
    name: str, value: Any, effect: float, direction: Direction, text: str
) -> dict[str, Any]:
    """A reason as the API answers it; the API's path builds it from the parts, without the
    `Reason` in between."""
    return {
        "field": name,
        "value": _json_value(value),
        "effect": effect,
        "direction": direction,
        "text": text,
    }


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


# --------------------------------------------------------------------------- the explainer


def _calibrated_head(pipeline: Pipeline) -> Any:
    """The uncalibrated head inside the pipeline's CalibratedClassifierCV(FrozenEstimator(head))."""
    model = pipeline.named_steps.get("model")
    if not isinstance(model, CalibratedClassifierCV) or len(model.calibrated_classifiers_) != 1:
        raise ModelError(
            "cannot explain this model: expected one calibrated head after the preparer;"
            " retrain it with this leadml version"
        )
    estimator = model.calibrated_classifiers_[0].estimator
    return getattr(estimator, "estimator", estimator)  # unwrap FrozenEstimator


def _prepared_fields(preparer: LeadPreparer) -> list[int]:
    """For each prepared column, the index of its field in `schema.features`."""
    owners: list[int] = []
    for index, spec in enumerate(preparer.schema.features):
        width = 3 if spec.role is Role.DATETIME else 1
        owners.extend([index] * width)
    if len(owners) != preparer.n_features_out_:
        raise ModelError("the model's preparer does not match its schema; export the model again")
    return owners


def _sum_matrix(owners: Sequence[int], n_fields: int) -> FloatMatrix:
    """A 0/1 matrix that sums columns into their fields (columns x fields)."""
    matrix = np.zeros((len(owners), n_fields))
    matrix[np.arange(len(owners)), np.asarray(owners, dtype=int)] = 1.0
    return matrix


_ENCODED_SOURCE = re.compile(r"__(?:missingindicator_)?x(\d+)(?:_|$)")


def _encoded_owners(encode: ColumnTransformer, prepared_owner: Sequence[int]) -> list[int]:
    """For each encoded column of the logistic head, the field it came from.

    The ColumnTransformer was fitted on a plain matrix, so its output names are generated from the
    prepared column positions ("numbers__x9", "numbers__missingindicator_x9",
    "categories__x3_2.0", "categories__x3_infrequent_sklearn"): the x<number> is the position.
    """
    owners = []
    for name in encode.get_feature_names_out():
        found = _ENCODED_SOURCE.search(str(name))
        if found is None:
            raise ModelError(f"cannot tell which field the encoded column {name!r} comes from")
        owners.append(prepared_owner[int(found.group(1))])
    return owners


class Explainer:
    """Per-field contributions and plain-words reasons for one model.

    Build it once per loaded model with `Explainer.for_scorer(scorer)`; it is then cheap to call
    per request. `contributions(matrix)` takes prepared leads (`scorer.preparer.transform...`) and
    returns one row per lead and one column per field (`fields`), in log-odds of the head;
    `base_value + contributions.sum(axis=1)` is the head's raw margin (`margin(matrix)`).
    """

    def __init__(
        self,
        preparer: LeadPreparer,
        head: Any,
        *,
        background: FloatMatrix | None = None,
    ) -> None:
        self.preparer = preparer
        self.head = head
        self.specs: tuple[ColumnSpec, ...] = preparer.schema.features
        self.fields: list[str] = [spec.name for spec in self.specs]
        #: For each prepared column, the index of its field in `fields`.
        self.column_fields = _prepared_fields(preparer)
        self._columns_to_fields = _sum_matrix(self.column_fields, len(self.fields))
        # Usually every field is one prepared column (no dates): then a lead's columns are its
        # fields, and summing them into fields would only cost time.
        self._column_per_field = self.column_fields == list(range(len(self.fields)))
        self._labels = [field_label(name) for name in self.fields]
        #: Per field, its prepared columns (a date has three).
        self._field_columns = [
            [c for c, owner in enumerate(self.column_fields) if owner == index]
            for index in range(len(self.fields))
        ]
        #: Per categorical field: its prepared column and how many categories it knows.
        self._category_column = {
            owner: (self.column_fields.index(owner), len(spec.categories))
            for owner, spec in enumerate(self.specs)
            if spec.role is Role.CATEGORICAL and owner in self.column_fields
        }
        self.kind: ExplainerKind
        if isinstance(head, LGBMClassifier):
            self.kind = "lightgbm"
            self._booster = head.booster_
            self._treeshap = _checked_treeshap(self._booster, self.n_columns)
            self._to_fields = self._columns_to_fields
            self.base_value = float(self._tree_contributions(np.zeros((1, self.n_columns)))[0, -1])
        elif isinstance(head, Pipeline) and {"encode", "classify"} <= set(head.named_steps):
            self.kind = "logistic"
            self._encode: ColumnTransformer = head.named_steps["encode"]
            classify = head.named_steps["classify"]
            self._coef = np.asarray(classify.coef_, dtype=float).ravel()
            owners = _encoded_owners(self._encode, self.column_fields)
            self._to_fields = _sum_matrix(owners, len(self.fields))
            if background is not None and len(background):
                reference = self._encode.transform(background).mean(axis=0)
            else:
                reference = self._encode.transform(self.typical_lead()[None, :])[0]
            self._reference = np.asarray(reference, dtype=float)
            self.base_value = float(classify.intercept_[0] + self._coef @ self._reference)
        else:
            raise ModelError(
                f"cannot explain a {type(head).__name__} head; leadml explains LightGBM and"
                " logistic regression models"
            )
        self._grids: dict[int, FloatMatrix] | None = None

    @classmethod
    def for_scorer(
        cls, scorer: Scorer, background: pd.DataFrame | FloatMatrix | None = None
    ) -> Self:
        """The explainer of a loaded model; `background` leads only matter for logistic models."""
        matrix = None
        if isinstance(background, pd.DataFrame):
            matrix = scorer.preparer.transform(background)
        elif background is not None:
            matrix = np.asarray(background, dtype=float)
        return cls(scorer.preparer, _calibrated_head(scorer.pipeline), background=matrix)

    # -- numbers -------------------------------------------------------------------------------

    def typical_lead(self) -> FloatMatrix:
        """The logistic baseline in prepared space (see the module docstring)."""
        if self.kind != "logistic":
            raise ValueError("only logistic models are explained against a typical lead")
        numbers_pipe, numeric_columns = _transformer(self._encode, "numbers")
        # With no numeric field (e.g. the time column only splits), the numbers step is unfitted.
        medians = (
            dict(zip(numeric_columns, numbers_pipe.named_steps["impute"].statistics_, strict=True))
            if numeric_columns
            else {}
        )
        row = np.full(self.preparer.n_features_out_, np.nan)
        for column, owner in enumerate(self.column_fields):
            spec = self.specs[owner]
            if spec.missing_share > TYPICAL_MISSING_SHARE:
                continue
            if spec.role is Role.CATEGORICAL:
                row[column] = 0.0 if spec.categories else np.nan
            else:
                row[column] = medians.get(column, np.nan)
        return row

    def contributions(self, matrix: npt.ArrayLike) -> FloatMatrix:
        """Per-field contributions (leads x fields) in log-odds of the head."""
        X = np.atleast_2d(np.asarray(matrix, dtype=float))
        if self.kind == "lightgbm":
            per_column = self._tree_contributions(X)[:, :-1]
            if self._column_per_field:
                return per_column
        else:
            per_column = (self._encode.transform(X) - self._reference) * self._coef
        return np.asarray(per_column @ self._to_fields, dtype=float)

    def _tree_contributions(self, X: FloatMatrix) -> FloatMatrix:
        """Exact TreeSHAP per prepared column, with the expected margin as the last column
        (compiled, see `leadml.treeshap`, else LightGBM's own)."""
        if self._treeshap is not None:
            return self._treeshap.contributions(X)
        return np.asarray(
            self._booster.predict(X, pred_contrib=True, num_threads=_threads(len(X))), dtype=float
        )

    @property
    def n_columns(self) -> int:
        return int(self.preparer.n_features_out_)

    def margin(self, matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The head's raw log-odds (before calibration) for prepared leads."""
        X = np.atleast_2d(np.asarray(matrix, dtype=float))
        if self.kind == "lightgbm":
            return np.asarray(
                self._booster.predict(X, raw_score=True, num_threads=_threads(len(X))), dtype=float
            )
        return np.asarray(self.head.decision_function(X), dtype=float)

    # -- reasons -------------------------------------------------------------------------------

    def explain_records(
        self, records: Sequence[Mapping[str, Any]], top: int = 3
    ) -> list[LeadReasons]:
        """Reasons for leads given as dicts (the API's path); validate them with the scorer first.

        Explaining a lead is one pass of the prepared lead through the model; pass the matrix the
        scorer already built to `explain_matrix` instead to skip preparing it twice.
        """
        matrix = self.preparer.transform_records(records)
        return self.explain_matrix(matrix, lambda row, name: records[row].get(name), top=top)

    def explain_frame(self, frame: pd.DataFrame, top: int = 3) -> list[LeadReasons]:
        """Reasons for a batch of leads in a frame, in row order."""
        matrix = self.preparer.transform(frame)
        columns = {name: frame[name].to_numpy() for name in self.fields if name in frame.columns}

        def value(row: int, name: str) -> Any:
            values = columns.get(name)
            return None if values is None else values[row]

        return self.explain_matrix(matrix, value, top=top)

    def explain_matrix(
        self,
        matrix: npt.ArrayLike,
        value_of: Callable[[int, str], Any],
        top: int = 3,
    ) -> list[LeadReasons]:
        """Reasons for prepared leads; `value_of(row, field)` gives the value as the lead has it."""
        return [
            LeadReasons(
                for_=[Reason(*self._told(lead, row, i, e, value_of)) for i, e in raising],
                against=[Reason(*self._told(lead, row, i, e, value_of)) for i, e in lowering],
            )
            for row, lead, raising, lowering in self._strongest(matrix, top)
        ]

    def explain_matrix_dicts(
        self,
        matrix: npt.ArrayLike,
        value_of: Callable[[int, str], Any],
        top: int = 3,
    ) -> list[dict[str, list[dict[str, Any]]]]:
        """`[r.to_dict() for r in explain_matrix(...)]` without the objects in between: the API
        answers these on every score, and making them cost more than the TreeSHAP itself."""
        return [
            {
                "for": [_reason_dict(*self._told(lead, r, i, e, value_of)) for i, e in raising],
                "against": [
                    _reason_dict(*self._told(lead, r, i, e, value_of)) for i, e in lowering
                ],
            }
            for r, lead, raising, lowering in self._strongest(matrix, top)
        ]

    def _strongest(
        self, matrix: npt.ArrayLike, top: int
    ) -> Iterator[tuple[int, list[float], list[tuple[int, float]], list[tuple[int, float]]]]:
        """Per lead: its row, its prepared values, and its strongest (field index, effect) for
        and against, at most `top` each, strongest first."""
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        X = np.atleast_2d(np.asarray(matrix, dtype=float))
        # Python lists from here: a lead has a handful of fields, and numpy's cost per element
        # access (or per call, for one lead) is what a reason would otherwise spend most of its
        # time on. Whether a field is missing or a category unknown is asked of the few fields
        # told only.
        for row, (effects, lead) in enumerate(
            zip(self.contributions(X).tolist(), X.tolist(), strict=True)
        ):
            # The order a stable sort of all fields by falling effect gives (as argsort), found
            # by sorting only the few fields strong enough to be told: ties keep the field order
            # for, and the reverse field order against.
            raising = [(i, effect) for i, effect in enumerate(effects) if effect > MIN_EFFECT]
            raising.sort(key=_by_falling_effect)
            lowering = [(i, effect) for i, effect in enumerate(effects) if effect < -MIN_EFFECT]
            lowering.sort(key=_by_falling_effect)
            yield row, lead, raising[:top], lowering[::-1][:top]

    def _told(
        self,
        lead: list[float],
        row: int,
        index: int,
        effect: float,
        value_of: Callable[[int, str], Any],
    ) -> tuple[str, Any, float, Direction, str]:
        """A reason's field, value (None when missing), effect, direction and text (the order
        of `Reason`'s fields)."""
        spec = self.specs[index]
        if self._column_per_field:
            missing = math.isnan(lead[index])
        else:
            missing = all(math.isnan(lead[c]) for c in self._field_columns[index])
        direction: Direction = "raises" if effect > 0 else "lowers"
        if missing:
            return (
                spec.name,
                None,
                effect,
                direction,
                f"{self._labels[index]} is missing {direction} the chance",
            )
        value = value_of(row, spec.name)
        # A categorical field's value is unknown (rare) when its code is past the categories
        # learnt.
        category = self._category_column.get(index)
        known = category is None or not lead[category[0]] >= category[1]
        text = f"{self._labels[index]} = {format_value(spec, value, known)} {direction} the chance"
        return spec.name, value, effect, direction, text

    # -- the model's own grid of numeric values ------------------------------------------------

    def warm_up(self) -> Self:
        """Read the model's numeric grids now (LightGBM: ~0.1 s for 300 trees), not on the first
        `what_would_move`; returns self."""
        if self._grids is None:
            self._grids = self._split_grids() if self.kind == "lightgbm" else self._quantile_grids()
        return self

    def numeric_moves(self, column: int, current: float) -> list[tuple[float, int]]:
        """Values to try for a prepared numeric column, each with its number of steps.

        LightGBM: one readable value in each interval between split thresholds (within the
        training range), the one closest to `current`; a step is one threshold passed.
        Logistic: the distinct training quantiles; a step is one quantile passed.
        """
        grid = self.warm_up()._grids_or_empty().get(column)
        if grid is None or math.isnan(current):
            return []
        integer = self._is_integer(column)
        if self.kind == "logistic":
            above = grid[grid > current]
            below = grid[grid < current][::-1]
            return [(float(v), rank + 1) for rank, v in enumerate(above)] + [
                (float(v), rank + 1) for rank, v in enumerate(below)
            ]
        low, high, cuts = grid[0], grid[1], grid[2:]
        here = int(np.searchsorted(cuts, current, side="left"))  # thresholds below current
        edges = [
            math.nextafter(low, -math.inf),
            *cuts,
            high,
        ]  # interval j is (edges[j], edges[j+1]]
        moves: list[tuple[float, int]] = []
        for target in range(len(edges) - 1):
            if target == here:
                continue
            lower, upper = edges[target], edges[target + 1]
            value = (
                _lowest_readable(lower, upper, integer)
                if target > here
                else _highest_readable(lower, upper, integer)
            )
            if value is not None:
                moves.append((value, abs(target - here)))
        return moves

    def _grids_or_empty(self) -> dict[int, FloatMatrix]:
        return self._grids or {}

    def _split_grids(self) -> dict[int, FloatMatrix]:
        """Per numeric column: [training min, training max, split thresholds inside, ascending]."""
        dump = self._booster.dump_model()
        thresholds: dict[int, set[float]] = {}
        for tree in dump["tree_info"]:
            _collect_thresholds(tree["tree_structure"], thresholds)
        grids: dict[int, FloatMatrix] = {}
        for column, found in thresholds.items():
            bounds = _feature_range(dump["feature_infos"][dump["feature_names"][column]])
            if bounds is None:
                continue
            low, high = bounds
            cuts = sorted(t for t in found if low <= t < high)
            grids[column] = np.asarray([low, high, *cuts], dtype=float)
        return grids

    def _quantile_grids(self) -> dict[int, FloatMatrix]:
        numbers_pipe, numeric_columns = _transformer(self._encode, "numbers")
        grids: dict[int, FloatMatrix] = {}
        if not numeric_columns:
            return grids
        quantiles = numbers_pipe.named_steps["scale"].quantiles_
        for position, column in enumerate(numeric_columns):
            values = quantiles[:, position]
            if self._is_integer(column):
                values = np.round(values)
            grids[column] = np.unique(values[np.isfinite(values)])
        return grids

    def _is_integer(self, column: int) -> bool:
        spec = self.specs[self.column_fields[column]]
        return spec.role is Role.BOOLEAN or (spec.role is Role.NUMERIC and spec.integer)


#: Largest difference to LightGBM's own TreeSHAP the compiled one may show at load.
TREESHAP_TOLERANCE = 1e-9


def _checked_treeshap(booster: Any, n_columns: int) -> TreeShap | None:
    """The compiled TreeSHAP of `booster` if it agrees with LightGBM's `pred_contrib` on probe
    leads (every column missing, zero, and at each split threshold of the first trees), else
    None: LightGBM's own then serves."""
    compiled = TreeShap.for_booster(booster)
    if compiled is None:
        return None
    rng = np.random.default_rng(0)
    probes = np.vstack(
        [
            np.full((1, n_columns), np.nan),
            np.zeros((1, n_columns)),
            rng.integers(-1, 8, size=(30, n_columns)).astype(float),
            rng.normal(0.0, 100.0, size=(30, n_columns)),
        ]
    )
    expected = np.asarray(booster.predict(probes, pred_contrib=True, num_threads=1), dtype=float)
    if np.max(np.abs(compiled.contributions(probes) - expected)) > TREESHAP_TOLERANCE:
        return None
    return compiled


def _threads(n_rows: int) -> int:
    """OpenMP threads for a LightGBM prediction: one for the API's few leads (starting a team of
    threads costs more than a lead's trees, measured 1 ms against 12 ms on 2 busy cores), the
    library default (0) for batches."""
    return 1 if n_rows < SINGLE_THREAD_BELOW_ROWS else 0


def _transformer(encode: ColumnTransformer, name: str) -> tuple[Pipeline, list[int]]:
    for transformer_name, transformer, columns in encode.transformers_:
        if transformer_name == name:
            return transformer, [int(c) for c in columns]
    raise ModelError(f"the logistic model has no {name!r} step; retrain it with this leadml")


def _collect_thresholds(node: Mapping[str, Any], found: dict[int, set[float]]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if "split_feature" not in current:
            continue
        if current.get("decision_type") == "<=":
            found.setdefault(int(current["split_feature"]), set()).add(float(current["threshold"]))
        stack.extend([current["left_child"], current["right_child"]])


def _feature_range(info: Any) -> tuple[float, float] | None:
    """The training range of a numeric feature from LightGBM's feature infos.

    LightGBM 4 writes {"min_value", "max_value", "values"} (values only for categories); older
    versions wrote "[min:max]". None for categorical or unused features.
    """
    if isinstance(info, Mapping):
        if info.get("values") or "min_value" not in info or "max_value" not in info:
            return None
        return float(info["min_value"]), float(info["max_value"])
    match = re.fullmatch(r"\[(.+):(.+)\]", str(info).strip())
    if match is None:
        return None
    return float(match.group(1)), float(match.group(2))


def _readable_values(lower: float, upper: float, integer: bool) -> Iterable[tuple[float, float]]:
    for decimals in range(0, 1 if integer else 7):
        yield 10.0**-decimals, decimals


def _lowest_readable(lower: float, upper: float, integer: bool) -> float | None:
    """The value with the fewest decimals in (lower, upper], as low as possible."""
    for step, decimals in _readable_values(lower, upper, integer):
        value = round((math.floor(lower / step) + 1) * step, int(decimals))
        if lower < value <= upper:
            return value
    return None if integer else upper


def _highest_readable(lower: float, upper: float, integer: bool) -> float | None:
    """The value with the fewest decimals in (lower, upper], as high as possible."""
    for step, decimals in _readable_values(lower, upper, integer):
        value = round(math.floor(upper / step) * step, int(decimals))
        if lower < value <= upper:
            return value
    return None if integer else upper


# --------------------------------------------------------------------------- what would move


def _name_words(name: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return {word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word}


def actionable_fields(specs: Iterable[ColumnSpec]) -> list[str]:
    """Fields marketing can change for an existing lead: engagement numbers, yes/no answers and
    categories, except datetimes and fixed traits (a name word in `FIXED_TRAIT_WORDS`: where the
    lead is, who they are, where they came from, consent flags, ratings by others)."""
    return [
        spec.name
        for spec in specs
        if spec.role in (Role.NUMERIC, Role.BOOLEAN, Role.CATEGORICAL)
        and not (_name_words(spec.name) & FIXED_TRAIT_WORDS)
    ]


@dataclass(frozen=True)
class Suggestion:
    """One change to one field that would lift a lead past the MQL line."""

    field: str
    from_value: Any
    to_value: Any
    probability_before: float
    probability_after: float
    cutoff: float
    steps: int
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "from_value": _json_value(self.from_value),
            "to_value": _json_value(self.to_value),
            "probability_before": self.probability_before,
            "probability_after": self.probability_after,
            "cutoff": self.cutoff,
            "steps": self.steps,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class _Candidate:
    column: int
    prepared_value: float
    shown_value: Any
    steps: int


def _probabilities_text(before: float, after: float, cutoff: float) -> tuple[str, str, str]:
    """Two decimals, or more when two would show `before` on the line it is below."""
    decimals = next((d for d in (2, 3, 4) if f"{before:.{d}f}" != f"{cutoff:.{d}f}"), 4)
    return f"{before:.{decimals}f}", f"{after:.{decimals}f}", f"{cutoff:.{decimals}f}"


def _move_sentence(
    spec: ColumnSpec, old: Any, missing: bool, new: Any, before: float, after: float, cutoff: float
) -> str:
    label = field_label(spec.name)
    new_text = format_value(spec, new)
    old_text = "missing" if missing else format_value(spec, old)
    if spec.role is Role.NUMERIC and not missing:
        verb = "Raising" if float(new) > float(old) else "Lowering"
        action = f"{verb} {label} from {old_text} to {new_text}"
    else:
        action = f"Changing {label} from {old_text} to {new_text}"
    p_before, p_after, p_cut = _probabilities_text(before, after, cutoff)
    return (
        f"{action} would raise the probability from {p_before} to {p_after},"
        f" past the MQL line at {p_cut}."
    )


def _field_candidates(
    explainer: Explainer, spec: ColumnSpec, column: int, current: float
) -> list[_Candidate]:
    if spec.role is Role.CATEGORICAL:
        return [
            _Candidate(column, float(code), category, 1)
            for code, category in enumerate(spec.categories)
            if code != current
        ]
    if spec.role is Role.BOOLEAN:
        return [
            _Candidate(column, answer, answer == 1.0, 1)
            for answer in (1.0, 0.0)
            if answer != current
        ]
    # An unknown number is not something marketing can move: numeric_moves gives nothing.
    return [
        _Candidate(column, value, int(value) if spec.integer else value, steps)
        for value, steps in explainer.numeric_moves(column, current)
    ]


def candidate_moves(
    scorer: Scorer,
    record: Mapping[str, Any],
    cutoff: float,
    explainer: Explainer | None = None,
    *,
    actionable: Iterable[str] | None = None,
) -> list[Suggestion]:
    """For each actionable field, its smallest change that lifts the lead to `cutoff`, best first.

    Empty when the lead is already at or above the cut-off or no single change reaches it.
    """
    if not 0.0 <= cutoff <= 1.0:
        raise PolicyError(f"cutoff must be a probability between 0 and 1, got {cutoff}")
    explainer = explainer or Explainer.for_scorer(scorer)
    validate_records([record], scorer.schema)  # the same checks as scoring
    prepared = scorer.preparer.transform_records([record])[0]
    allowed = set(actionable_fields(explainer.specs) if actionable is None else actionable)
    candidates: list[_Candidate] = []
    for column, owner in enumerate(explainer.column_fields):
        spec = explainer.specs[owner]
        if spec.name in allowed and spec.role is not Role.DATETIME:
            candidates.extend(_field_candidates(explainer, spec, column, prepared[column]))
    rows = np.vstack([prepared, *([prepared] * len(candidates))])
    for offset, candidate in enumerate(candidates, start=1):
        rows[offset, candidate.column] = candidate.prepared_value
    proba = np.asarray(scorer.model.predict_proba(rows)[:, 1], dtype=float)
    before = float(proba[0])
    if before >= cutoff:
        return []
    best: dict[int, tuple[tuple[int, float], _Candidate, float]] = {}
    for candidate, after in zip(candidates, proba[1:], strict=True):
        if after < cutoff:
            continue
        rank = (candidate.steps, -float(after))
        if candidate.column not in best or rank < best[candidate.column][0]:
            best[candidate.column] = (rank, candidate, float(after))
    suggestions = []
    for _, candidate, after in sorted(best.values(), key=lambda item: item[0]):
        spec = explainer.specs[explainer.column_fields[candidate.column]]
        missing = math.isnan(prepared[candidate.column])
        old = None if missing else record.get(spec.name)
        suggestions.append(
            Suggestion(
                field=spec.name,
                from_value=old,
                to_value=candidate.shown_value,
                probability_before=before,
                probability_after=after,
                cutoff=float(cutoff),
                steps=candidate.steps,
                sentence=_move_sentence(
                    spec, old, missing, candidate.shown_value, before, after, cutoff
                ),
            )
        )
    return suggestions


def what_would_move(
    scorer: Scorer,
    record: Mapping[str, Any],
    cutoff: float,
    explainer: Explainer | None = None,
    *,
    actionable: Iterable[str] | None = None,
) -> Suggestion | None:
    """The smallest change of one actionable field that lifts the lead to `cutoff`, if any.

    None when the lead is already an MQL or no single change gets it there. `actionable` names
    the fields to try (default: `actionable_fields` of the model's schema).
    """
    moves = candidate_moves(scorer, record, cutoff, explainer, actionable=actionable)
    return moves[0] if moves else None


# -- compiled logistic contributions -----------------------------------------------------------
#: Largest difference to `Explainer.contributions` that compiled contributions may show.
COMPILED_TOLERANCE = 1e-9


class CompiledExplainer(Explainer):
    """An Explainer whose logistic contributions come from the compiled head when attached."""

    _compiled: LinearHead | None = None

    def attach(self, head: LinearHead, sample: FloatMatrix) -> float:
        """Use `head` for contributions if it agrees with the Explainer on `sample` (prepared
        leads); returns the largest difference. Raises ValueError when it does not agree."""
        if self.kind != "logistic":
            raise ValueError("only logistic contributions are compiled")
        typical = head.per_column(self.typical_lead()[None, :])[0]
        owners = np.asarray(self.column_fields, dtype=int)
        to_fields = np.zeros((len(owners), len(self.fields)))
        to_fields[np.arange(len(owners)), owners] = 1.0
        expected = super().contributions(sample)
        got = (head.per_column(np.atleast_2d(sample)) - typical) @ to_fields
        worst = float(np.max(np.abs(got - expected), initial=0.0))
        if not worst <= COMPILED_TOLERANCE:
            raise ValueError(f"compiled contributions differ by {worst:.3g}")
        self._compiled, self._typical, self._to_fields_matrix = head, typical, to_fields
        return worst

    def contributions(self, matrix: npt.ArrayLike) -> FloatMatrix:
        if self._compiled is None:
            return super().contributions(matrix)
        X = np.atleast_2d(np.asarray(matrix, dtype=float))
        shares = self._compiled.per_column(X) - self._typical
        return np.asarray(shares @ self._to_fields_matrix, dtype=float)


# -- which traits convert ----------------------------------------------------------------------
#: Values seen on fewer leads than this are not named in a trait summary (too few to trust).
TRAIT_MIN_LEADS = 20
#: Trait importance looks at no more leads than this (a seeded random sample of them): exact
#: TreeSHAP for 20,000 leads costs about 4 s of CPU (LightGBM's own pred_contrib 21 s, measured
#: on the X Education model of 388 trees), for a 200,000-lead holdout ten times that.
TRAIT_MAX_LEADS = 20_000


def trait_importance(
    pipeline: Pipeline, leads: pd.DataFrame, *, max_leads: int = TRAIT_MAX_LEADS, seed: int = 0
) -> pd.DataFrame:
    """Which traits move the predicted chance of converting, over `leads` (e.g. the holdout).

    One row per field, most important first: `importance` is the mean absolute contribution in
    log-odds (TreeSHAP for LightGBM, exact contributions for logistic regression), `share` its
    share of the total, and `summary` says in plain words which values raise or lower the chance:
    for categories and yes/no fields the values with the highest and lowest mean contribution;
    for numbers whether higher values raise or lower it. More than `max_leads` leads are sampled
    down to `max_leads` at random (`seed`), see `TRAIT_MAX_LEADS`.
    """
    if len(leads) > max_leads:
        leads = leads.iloc[sample_positions(len(leads), max_leads, seed)]
    explainer = Explainer(pipeline.named_steps["prepare"], _calibrated_head(pipeline))
    effects = explainer.contributions(explainer.preparer.transform(leads))
    importance = np.abs(effects).mean(axis=0)
    total = float(importance.sum()) or 1.0
    rows = []
    for index, spec in enumerate(explainer.specs):
        values = leads[spec.name] if spec.name in leads.columns else pd.Series(index=leads.index)
        rows.append(
            {
                "field": spec.name,
                "label": field_label(spec.name),
                "role": spec.role.value,
                "importance": float(importance[index]),
                "share": float(importance[index] / total),
                "summary": _trait_summary(spec, values.reset_index(drop=True), effects[:, index]),
            }
        )
    table = pd.DataFrame(rows).sort_values("importance", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def _trait_summary(spec: ColumnSpec, values: pd.Series, effects: FloatMatrix) -> str:
    label = field_label(spec.name)
    if spec.role is Role.NUMERIC:
        numbers = pd.to_numeric(values, errors="coerce")
        known = numbers.notna().to_numpy()
        if known.sum() < TRAIT_MIN_LEADS or numbers[known].nunique() < 2:
            return f"{label}: too few values to say"
        correlation = float(np.corrcoef(numbers[known].rank(), effects[known])[0, 1])
        if not np.isfinite(correlation) or abs(correlation) < 0.3:
            return f"{label}: no simple direction (it depends on the other traits)"
        direction = "raise" if correlation > 0 else "lower"
        return f"{label}: higher values {direction} the chance"
    if spec.role is Role.DATETIME:
        return f"{label}: the time of day, weekday or month the lead came in"
    texts = values.map(lambda v: "missing" if v is None or v != v else format_value(spec, v))
    by_value = pd.DataFrame({"value": texts, "effect": effects}).groupby("value")["effect"]
    means = by_value.mean()[by_value.size() >= TRAIT_MIN_LEADS].sort_values()
    if len(means) < 2:
        return f"{label}: too few leads per value to say"
    best, worst = means.index[-1], means.index[0]
    return (
        f"{label}: {best} raises the chance ({means.iloc[-1]:+.2f}),"
        f" {worst} lowers it ({means.iloc[0]:+.2f})"
    )
