"""The MQL line: from a marketing policy to a probability cut-off, with what it means.

A lead whose calibrated probability is at or above the cut-off is a marketing qualified lead
(MQL). Marketing does not pick the number directly; it picks a policy ("sales can work 200 leads
a week", "at least 60 % of MQLs should convert", ...) and `resolve_policy` turns it into the
cut-off on a model's holdout probabilities, with a sentence to read back and the figures to
expect. Everything here is pure and works on in-memory arrays.

Conventions used throughout:

- Candidate cut-offs are the distinct holdout probabilities, so every cut-off a policy resolves
  to (except `fixed` and the calibrated `max_value`) is a probability some holdout lead has.
- Figures at a cut-off are counted on the holdout: `mql_share` = share of leads with
  probability >= cut-off, `precision` = conversion rate among them, `recall` = share of all
  conversions among them, `lift` = precision / base rate.
- Leads tied at one probability are on the same side of any cut-off. A policy that asks for a
  share of leads can therefore get a little less than it asked for, never more.
- Weekly figures scale holdout shares by the number of new leads a week (`leads_per_week`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from itertools import pairwise
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadml.errors import DataError, PolicyError
from leadml.evaluate import FloatArray, IntArray, check_probabilities, check_scores

#: Above this many distinct holdout probabilities, `threshold_table` shows one cut-off per
#: percentage point of MQL share instead of one per distinct probability.
DEFAULT_MAX_CUTOFFS = 101

#: Default grade bands: "A" is at most this share of all leads (see `default_grade_bands`).
TOP_GRADE_SHARE = 0.10

# Shares and rates are ratios of whole counts; this absorbs float error in comparisons.
_EPS = 1e-9

# --------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class _Counts:
    """Holdout counts at each of a set of cut-offs."""

    cutoffs: FloatArray
    n_mql: IntArray
    true_positives: IntArray
    n: int
    positives: int

    @property
    def mql_share(self) -> FloatArray:
        return self.n_mql / self.n

    @property
    def precision(self) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_mql > 0, self.true_positives / self.n_mql, np.nan)

    @property
    def recall(self) -> FloatArray:
        return self.true_positives / self.positives

    def value_per_lead(self, deal_value: float, cost_per_contact: float) -> FloatArray:
        """Mean over all leads of 1[MQL] * (outcome * deal_value - cost_per_contact)."""
        return (self.true_positives * deal_value - self.n_mql * cost_per_contact) / self.n


def _checked(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    y, p = check_scores(y_true, proba)
    if y.sum() == 0:
        raise DataError(
            "no holdout lead converted, so no MQL line can be drawn; use a holdout with conversions"
        )
    return y, p


def _counts_at(y: IntArray, p: FloatArray, cutoffs: npt.ArrayLike) -> _Counts:
    c = np.atleast_1d(np.asarray(cutoffs, dtype=np.float64))
    order = np.argsort(p, kind="stable")
    p_asc = p[order]
    conversions_below = np.concatenate([[0], np.cumsum(y[order])])
    n_below = np.searchsorted(p_asc, c, side="left")
    positives = int(conversions_below[-1])
    return _Counts(
        cutoffs=c,
        n_mql=(len(p) - n_below).astype(np.int64),
        true_positives=(positives - conversions_below[n_below]).astype(np.int64),
        n=len(p),
        positives=positives,
    )


def _distinct_desc(p: FloatArray) -> FloatArray:
    return np.unique(p)[::-1]


def _cutoffs_for_shares(p: FloatArray, shares: FloatArray) -> FloatArray:
    """For each share, the lowest holdout probability whose MQL share is at most it (NaN if none).

    This is the capacity rule: never more MQLs than the share, and leads tied at the boundary
    probability all stay out.
    """
    distinct = _distinct_desc(p)
    n_mql = len(p) - np.searchsorted(np.sort(p), distinct, side="left")  # increasing
    last_fit = np.searchsorted(n_mql, shares * len(p) + _EPS, side="right") - 1
    return np.where(last_fit >= 0, distinct[np.maximum(last_fit, 0)], np.nan)


def _cutoff_for_share(p: FloatArray, share: float) -> float | None:
    cutoff = float(_cutoffs_for_shares(p, np.array([share]))[0])
    return None if math.isnan(cutoff) else cutoff


def _default_cutoffs(p: FloatArray, max_cutoffs: int) -> FloatArray:
    distinct = _distinct_desc(p)
    if len(distinct) <= max_cutoffs:
        return distinct
    steps = _cutoffs_for_shares(p, np.linspace(0.0, 1.0, max_cutoffs)[1:])
    grid = np.concatenate([[distinct[0]], steps[~np.isnan(steps)]])
    return np.unique(grid)[::-1]


# --------------------------------------------------------------------------- threshold table


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    number = _number(name, value)
    if number <= 0:
        raise PolicyError(f"{name} must be a positive number, got {value}")
    return number


def _value_inputs(
    deal_value: float | None, cost_per_contact: float | None
) -> tuple[float, float] | None:
    if deal_value is None and cost_per_contact is None:
        return None
    if deal_value is None or cost_per_contact is None:
        raise PolicyError(
            "expected value needs both deal_value and cost_per_contact; give both or neither"
        )
    deal = _positive("deal_value", deal_value)
    cost = _number("cost_per_contact", cost_per_contact)
    if cost < 0:
        raise PolicyError(f"cost_per_contact cannot be negative, got {cost_per_contact}")
    assert deal is not None
    return deal, cost


def threshold_table(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    *,
    leads_per_week: float | None = None,
    deal_value: float | None = None,
    cost_per_contact: float | None = None,
    cutoffs: npt.ArrayLike | None = None,
    max_cutoffs: int = DEFAULT_MAX_CUTOFFS,
) -> pd.DataFrame:
    """What each possible MQL cut-off means on the holdout, highest cut-off first.

    Default cut-offs: every distinct holdout probability when there are at most `max_cutoffs`
    (101) of them; otherwise one per percentage point of MQL share (1 %, 2 %, ..., 100 %), each
    the lowest holdout probability whose MQL share does not exceed that step, plus the highest
    probability. Either way every default cut-off is a probability some holdout lead has.

    Columns: `cutoff`, `mql_share`, `mqls_per_week` (mql_share * leads_per_week), `precision`
    (NaN when no lead reaches the cut-off), `recall`, `lift`, `expected_value_per_lead`
    (mql_share * (precision * deal_value - cost_per_contact), which equals the mean over all
    leads of 1[MQL] * (outcome * deal_value - cost_per_contact)), `expected_conversions_per_week`
    (mql_share * precision * leads_per_week), and the raw holdout counts `holdout_mqls` and
    `holdout_conversions`. Weekly and value columns are NaN when their inputs are not given.
    """
    y, p = _checked(y_true, proba)
    weekly = _positive("leads_per_week", leads_per_week)
    value = _value_inputs(deal_value, cost_per_contact)
    if cutoffs is None:
        if max_cutoffs < 2:
            raise ValueError(f"max_cutoffs must be at least 2, got {max_cutoffs}")
        grid = _default_cutoffs(p, max_cutoffs)
    else:
        given = np.atleast_1d(np.asarray(cutoffs, dtype=np.float64))
        if not np.all(np.isfinite(given)) or np.any((given < 0) | (given > 1)):
            raise PolicyError("cut-offs must be probabilities between 0 and 1")
        grid = np.unique(given)[::-1]
    counts = _counts_at(y, p, grid)
    share = counts.mql_share
    precision = counts.precision
    base_rate = counts.positives / counts.n
    conversions_per_lead = counts.true_positives / counts.n
    nan = np.full(len(grid), np.nan)
    return pd.DataFrame(
        {
            "cutoff": grid,
            "mql_share": share,
            "mqls_per_week": share * weekly if weekly is not None else nan,
            "precision": precision,
            "recall": counts.recall,
            "lift": precision / base_rate,
            "expected_value_per_lead": counts.value_per_lead(*value) if value else nan,
            "expected_conversions_per_week": (
                conversions_per_lead * weekly if weekly is not None else nan
            ),
            "holdout_mqls": counts.n_mql,
            "holdout_conversions": counts.true_positives,
        }
    )


# --------------------------------------------------------------------------- policies


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise PolicyError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise PolicyError(f"{name} must be a finite number, got {value!r}")
    return number


def _set_number(policy: object, name: str) -> float:
    number = _number(name, getattr(policy, name))
    object.__setattr__(policy, name, number)
    return number


def _share_in_unit_interval(policy: object, name: str, meaning: str) -> None:
    value = _set_number(policy, name)
    if not 0 < value <= 1:
        raise PolicyError(
            f"{name} must be a share in (0, 1] ({meaning}), got {value}; write 60 % as 0.6"
        )


#: Business figures any policy can be read with: weekly figures, value per lead.
BUSINESS_FIGURES = ("leads_per_week", "deal_value", "cost_per_contact")

#: How an option's value is bounded; the API's request models and the policy page follow it.
Unit: TypeAlias = Literal["count", "amount", "cost", "share", "probability", "choice"]


def option(label: str, unit: Unit, *, default: Any = MISSING, example: Any = None) -> Any:
    """A policy option: its words for people (CLI help, API docs, the policy page) and its unit."""
    metadata = {"label": label, "unit": unit, "example": example}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Policy:
    """An MQL policy kind. A kind is one subclass registered with `@policy_kind`: its options
    (dataclass fields made with `option`), how it resolves to a cut-off, and its sentence.

    Everything else is derived from the registry `POLICY_TYPES`: the kinds the store accepts,
    the CLI's `--policy` choices, the API's request bodies and the policy page's choices
    (tests/test_policy_kinds.py checks each).
    """

    #: The kind's name, as stored and as written in the CLI and the API.
    kind: ClassVar[str]
    #: The kind in words, as the policy page offers it.
    title: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with the `kind` tag first; `policy_from_dict` reads it back."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def own_figures(self) -> dict[str, float]:
        """The business figures this policy sets itself (e.g. a capacity's leads a week)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in BUSINESS_FIGURES}

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        """The cut-off on holdout outcomes `y` and probabilities `p` (checked, same length)."""
        raise NotImplementedError

    def opening(self) -> str:
        """How the policy's sentence starts, e.g. "For at least 60 % of MQLs to convert,"."""
        raise NotImplementedError


#: The registry of policy kinds, in the order people are offered them.
POLICY_TYPES: dict[str, type[Policy]] = {}

_P = TypeVar("_P", bound=type[Policy])


def policy_kind(cls: _P) -> _P:
    """Register a policy kind (class decorator)."""
    if cls.kind in POLICY_TYPES:
        raise TypeError(f"policy kind {cls.kind!r} is registered twice")
    POLICY_TYPES[cls.kind] = cls
    return cls


def policy_options(kind: str) -> tuple[dataclasses.Field[Any], ...]:
    """The options of a policy kind, in order."""
    return fields(POLICY_TYPES[kind])


def required_options(kind: str) -> tuple[str, ...]:
    """The options a policy kind cannot do without."""
    return tuple(f.name for f in policy_options(kind) if f.default is MISSING)


@policy_kind
@dataclass(frozen=True)
class CapacityPolicy(Policy):
    """Sales can work `per_week` of the `leads_per_week` new leads: MQLs are the best of them.

    The cut-off is the lowest holdout probability whose MQL share is at most
    per_week / leads_per_week, so there are never more MQLs than sales can work; leads tied at
    the boundary probability are all left out, so the share can come out a little lower.
    """

    kind: ClassVar[str] = "capacity"
    title: ClassVar[str] = "Capacity: sales can work N leads a week"
    per_week: float = option("Leads sales can work a week", "count", example=200)
    leads_per_week: float = option("New leads a week", "count", example=1500)

    def __post_init__(self) -> None:
        per_week = _set_number(self, "per_week")
        leads = _set_number(self, "leads_per_week")
        if per_week <= 0:
            raise PolicyError(f"per_week must be a positive number of leads, got {per_week:g}")
        if leads <= 0:
            raise PolicyError(f"leads_per_week must be a positive number, got {leads:g}")
        if per_week > leads:
            raise PolicyError(
                f"per_week ({_count(per_week)}) cannot exceed leads_per_week ({_count(leads)}):"
                " sales cannot work more leads than arrive; lower per_week or raise"
                " leads_per_week"
            )

    @property
    def share(self) -> float:
        return self.per_week / self.leads_per_week

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        cutoff = _cutoff_for_share(p, self.share)
        if cutoff is None:
            top = p.max()
            top_share = float(np.mean(p == top))
            raise PolicyError(
                f"a capacity of {_count(self.per_week)} of {_count(self.leads_per_week)} leads"
                f" a week ({_pct(self.share, 1)}) is less than the {_pct(top_share, 1)} of leads"
                f" tied at the highest probability ({_prob(top)}); raise per_week or use a fixed"
                " cut-off"
            )
        return cutoff

    def opening(self) -> str:
        return (
            f"Sales can work {_count(self.per_week)} of {_count(self.leads_per_week)} leads"
            " a week, so"
        )


@policy_kind
@dataclass(frozen=True)
class MinPrecisionPolicy(Policy):
    """At least `min_precision` of MQLs should convert, with as many MQLs as possible.

    The cut-off is the lowest holdout probability whose precision is at least `min_precision`.
    Precision is not monotonic in the cut-off, so some higher cut-offs may fall short of it.
    """

    kind: ClassVar[str] = "min_precision"
    title: ClassVar[str] = "Minimum conversion rate among MQLs"
    min_precision: float = option("At least this share of MQLs convert", "share", example=0.6)

    def __post_init__(self) -> None:
        _share_in_unit_interval(self, "min_precision", "the share of MQLs that should convert")

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        counts = _counts_at(y, p, _distinct_desc(p))
        meets = counts.true_positives >= self.min_precision * counts.n_mql - _EPS
        if not meets.any():
            best = int(np.nanargmax(counts.precision))
            raise PolicyError(
                f"no cut-off reaches a precision of {_pct(self.min_precision)}: the highest on"
                f" the holdout is {_pct(counts.precision[best], 1)} (probability >="
                f" {_prob(counts.cutoffs[best])}, {counts.n_mql[best]:,} leads); lower"
                " min_precision"
            )
        return float(counts.cutoffs[np.flatnonzero(meets)[-1]])

    def opening(self) -> str:
        return f"For at least {_pct(self.min_precision)} of MQLs to convert,"


@policy_kind
@dataclass(frozen=True)
class MinRecallPolicy(Policy):
    """MQLs should capture at least `min_recall` of all conversions, with as few MQLs as possible.

    The cut-off is the highest holdout probability whose recall is at least `min_recall`.
    """

    kind: ClassVar[str] = "min_recall"
    title: ClassVar[str] = "Minimum share of conversions captured"
    min_recall: float = option("Capture at least this share of conversions", "share", example=0.8)

    def __post_init__(self) -> None:
        _share_in_unit_interval(self, "min_recall", "the share of all conversions to capture")

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        counts = _counts_at(y, p, _distinct_desc(p))
        meets = counts.true_positives >= self.min_recall * counts.positives - _EPS
        # Recall only grows as the cut-off falls, and the lowest cut-off has recall 1.
        return float(counts.cutoffs[np.flatnonzero(meets)[0]])

    def opening(self) -> str:
        return f"To capture at least {_pct(self.min_recall)} of all conversions,"


@policy_kind
@dataclass(frozen=True)
class MaxValuePolicy(Policy):
    """Contact the leads that maximise expected value per lead.

    Value per lead at a cut-off c is the mean over leads of
    1[p >= c] * (converted * deal_value - cost_per_contact).

    - `basis="observed"` (default) uses the holdout outcomes: the cut-off is the holdout
      probability with the highest observed value (the highest such cut-off on a tie). It is
      what a person gets by hand from the threshold table and does not trust the calibration,
      but it is optimised on the holdout, so the value it reports is optimistic.
    - `basis="calibrated"` uses the probabilities as the outcome expectation: the value is
      highest when exactly the leads with p * deal_value >= cost_per_contact are contacted, so
      the cut-off is cost_per_contact / deal_value. It does not chase holdout noise and carries
      over to any set of leads, but only as far as the model is well calibrated. The figures
      reported at it are still counted on the holdout.
    """

    kind: ClassVar[str] = "max_value"
    title: ClassVar[str] = "Most expected profit"
    deal_value: float = option("What a won deal is worth", "amount", example=5000)
    cost_per_contact: float = option("What working one lead costs", "cost", example=150)
    basis: Literal["observed", "calibrated"] = option(
        "observed (holdout outcomes) or calibrated (the probabilities)",
        "choice",
        default="observed",
    )

    def __post_init__(self) -> None:
        deal = _set_number(self, "deal_value")
        cost = _set_number(self, "cost_per_contact")
        if deal <= 0:
            raise PolicyError(f"deal_value must be a positive amount, got {deal:g}")
        if cost < 0:
            raise PolicyError(f"cost_per_contact cannot be negative, got {cost:g}")
        if cost >= deal:
            raise PolicyError(
                f"cost_per_contact ({cost:g}) must be lower than deal_value ({deal:g}):"
                " otherwise no lead is worth contacting; check both amounts"
            )
        if self.basis not in ("observed", "calibrated"):
            raise PolicyError(f"basis must be 'observed' or 'calibrated', got {self.basis!r}")

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        deal, cost = self.deal_value, self.cost_per_contact
        if self.basis == "calibrated":
            cutoff = cost / deal
            if not np.any(p >= cutoff):
                raise PolicyError(
                    f"no holdout lead reaches probability {_prob(cutoff)} (cost {_count(cost)} /"
                    f" deal {_count(deal)}; the highest is {_prob(p.max())}), so none is worth"
                    " contacting; check deal_value and cost_per_contact"
                )
            return cutoff
        counts = _counts_at(y, p, _distinct_desc(p))
        value = counts.value_per_lead(deal, cost)
        best = int(np.argmax(value))  # the first maximum is the highest cut-off among equals
        if value[best] <= 0:
            raise PolicyError(
                f"no cut-off has a positive expected value with a deal worth {_count(deal)} and"
                f" a contact costing {_count(cost)}: the best is {value[best]:.3g} per lead at"
                f" probability >= {_prob(counts.cutoffs[best])}; check deal_value and"
                " cost_per_contact"
            )
        return float(counts.cutoffs[best])

    def opening(self) -> str:
        worth = (
            f"With a deal worth {_count(self.deal_value)} and a contact costing"
            f" {_count(self.cost_per_contact)},"
        )
        if self.basis == "calibrated":
            return (
                f"{worth} a lead is worth contacting when its probability is at least"
                f" {_count(self.cost_per_contact)} / {_count(self.deal_value)}, so"
            )
        return f"{worth} expected value on the holdout is highest when"


@policy_kind
@dataclass(frozen=True)
class FixedPolicy(Policy):
    """A cut-off chosen by hand."""

    kind: ClassVar[str] = "fixed"
    title: ClassVar[str] = "A cut-off set by hand"
    cutoff: float = option("MQL at or above this probability", "probability", example=0.4)

    def __post_init__(self) -> None:
        cutoff = _set_number(self, "cutoff")
        if not 0 <= cutoff <= 1:
            raise PolicyError(f"cutoff must be a probability between 0 and 1, got {cutoff:g}")

    def resolve(self, y: IntArray, p: FloatArray) -> float:
        return self.cutoff

    def opening(self) -> str:
        return "With a fixed cut-off,"


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Build a policy from `policy.to_dict()` output (or the same shape from JSON)."""
    if not isinstance(data, Mapping):
        raise PolicyError(f"a policy must be an object with a 'kind', got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in POLICY_TYPES:
        raise PolicyError(f"unknown policy kind {kind!r}; use one of: {', '.join(POLICY_TYPES)}")
    cls = POLICY_TYPES[kind]
    accepted = [f.name for f in fields(cls)]
    required = list(required_options(kind))
    unknown = sorted(set(data) - set(accepted) - {"kind"})
    if unknown:
        raise PolicyError(
            f"{kind} policy does not take {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    missing = [name for name in required if name not in data]
    if missing:
        raise PolicyError(f"{kind} policy needs {', '.join(missing)}")
    return cls(**{name: data[name] for name in accepted if name in data})


# --------------------------------------------------------------------------- exploration

#: Largest share of the leads below the line that may be handed to sales as exploration.
MAX_EXPLORATION_SHARE = 0.5
#: Where a policy's exploration share is kept in its stored parameters (any kind may have one).
EXPLORATION_PARAM = "exploration_share"


def check_exploration_share(share: Any) -> float:
    """An exploration share as a float in [0, MAX_EXPLORATION_SHARE], or `PolicyError`."""
    value = _number("exploration_share", share)
    if not 0 <= value <= MAX_EXPLORATION_SHARE:
        raise PolicyError(
            f"exploration_share must be between 0 and {MAX_EXPLORATION_SHARE} (a share of the"
            f" leads below the line), got {value}; write 5 % as 0.05"
        )
    return value


def choose_exploration(
    is_mql: npt.ArrayLike, share: float, draws: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Which leads below the line go to sales anyway, and each lead's chance of going to sales.

    `draws` are uniform random numbers in [0, 1), one per lead: a lead below the line is an
    exploration lead when its draw is below `share`. The chance of being handed over is 1 for an
    MQL and `share` for every lead below the line (explored or not): that is what the ledger keeps
    so that retraining and monitoring can weight the explored leads by its inverse.
    """
    mql = np.atleast_1d(np.asarray(is_mql, dtype=bool))
    u = np.atleast_1d(np.asarray(draws, dtype=np.float64))
    if len(u) != len(mql):
        raise ValueError(f"{len(u)} draws for {len(mql)} leads; pass one draw per lead")
    share = check_exploration_share(share)
    explored = ~mql & (u < share)
    return explored, np.where(mql, 1.0, share)


def exploration_leads_per_week(
    share: float, mql_share: float, leads_per_week: float | None
) -> float | None:
    """Leads a week handed to sales as exploration: share x the leads below the line."""
    if leads_per_week is None:
        return None
    return check_exploration_share(share) * (1.0 - mql_share) * leads_per_week


def exploration_sentence(share: float, mql_share: float, leads_per_week: float | None) -> str:
    """What an exploration share costs sales, in words."""
    if share <= 0:
        return "No exploration: conversion below the line is not measured."
    extra = exploration_leads_per_week(share, mql_share, leads_per_week)
    below = f"{_pct(share, 1)} of the leads below the line ({_pct(share * (1 - mql_share), 1)}"
    below += " of all leads)"
    cost = f", about {_count(round(extra))} extra leads a week for sales" if extra else ""
    return (
        f"Exploration: {below} go to sales at random anyway, flagged{cost}, so conversion below"
        " the line is measured rather than assumed."
    )


# --------------------------------------------------------------------------- bootstrap


def bootstrap_intervals(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    cutoff: float,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for `precision`, `recall` and `mql_share` at `cutoff`.

    Resampling leads with replacement only matters through four counts (MQL or not, converted
    or not), and those counts of a resample are exactly multinomial with the observed shares,
    so each resample is one multinomial draw: fast at any holdout size. The cut-off is held
    fixed: the intervals do not include the uncertainty of choosing it from the same holdout.
    A statistic undefined in a resample (no MQLs for precision) is left out of that percentile;
    an interval is (nan, nan) when it is undefined in every resample.
    """
    y, p = check_scores(y_true, proba)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    mql = p >= cutoff
    converted = y == 1
    cells = np.array(
        [
            np.sum(mql & converted),
            np.sum(mql & ~converted),
            np.sum(~mql & converted),
            np.sum(~mql & ~converted),
        ],
        dtype=np.float64,
    )
    n = len(y)
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=n_boot)
    tp, fp, fn = draws[:, 0], draws[:, 1], draws[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = {
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "mql_share": (tp + fp) / n,
        }
    tail = (1.0 - level) / 2.0
    return {name: _percentile_interval(values, tail) for name, values in samples.items()}


def _percentile_interval(values: FloatArray, tail: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolution:
    """A policy resolved on a holdout: the cut-off and what to expect at it.

    Figures are holdout estimates; `intervals` holds their bootstrap intervals at `level`
    (precision, recall, mql_share). Weekly figures and value are None when not known.
    """

    policy: Policy
    cutoff: float
    sentence: str
    mql_share: float
    precision: float
    recall: float
    lift: float
    mqls_per_week: float | None
    expected_conversions_per_week: float | None
    expected_value_per_lead: float | None
    intervals: dict[str, tuple[float, float]]
    level: float
    base_rate: float
    n_holdout: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the policy as its dict, intervals as two-element lists."""
        return {
            "policy": self.policy.to_dict(),
            "cutoff": self.cutoff,
            "sentence": self.sentence,
            "mql_share": self.mql_share,
            "precision": self.precision,
            "recall": self.recall,
            "lift": self.lift,
            "mqls_per_week": self.mqls_per_week,
            "expected_conversions_per_week": self.expected_conversions_per_week,
            "expected_value_per_lead": self.expected_value_per_lead,
            "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "level": self.level,
            "base_rate": self.base_rate,
            "n_holdout": self.n_holdout,
        }


def _count(value: float) -> str:
    """1500 -> '1,500'; 12.5 -> '12.5'."""
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:,.1f}"


def _pct(share: float, decimals: int = 0) -> str:
    return f"{share * 100:.{decimals}f} %"


def _prob(cutoff: float) -> str:
    return f"{cutoff:.4g}"


def _same(name: str, given: float | None, policy_value: float) -> None:
    if given is not None and not math.isclose(_number(name, given), policy_value):
        raise PolicyError(
            f"{name} is {_count(policy_value)} in the policy but {given} was also passed;"
            " give one value"
        )


def _sentence(
    policy: Policy,
    cutoff: float,
    counts: _Counts,
    mqls_per_week: float | None,
    value_per_lead: float | None,
) -> str:
    opening = policy.opening()
    if counts.n_mql[0] == 0:
        return (
            f"{opening} no holdout lead reaches probability {_prob(cutoff)}, so there are no MQLs."
        )
    share = float(counts.mql_share[0])
    who = "all leads" if share >= 1 else f"the top {_pct(share, 1)} of leads"
    precision = _pct(float(counts.precision[0]))
    recall = _pct(float(counts.recall[0]))
    if mqls_per_week is not None:
        outcome = (
            f"about {_count(round(mqls_per_week))} MQLs a week, of which about {precision}"
            f" convert, capturing {recall} of all conversions"
        )
    else:
        outcome = f"about {precision} of them convert, capturing {recall} of all conversions"
    if value_per_lead is not None:
        outcome += f", an expected value of {value_per_lead:,.2f} per lead"
    return f"{opening} {who} (probability >= {_prob(cutoff)}) become MQLs: {outcome}."


def resolve_policy(
    policy: Policy,
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    *,
    leads_per_week: float | None = None,
    deal_value: float | None = None,
    cost_per_contact: float | None = None,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> Resolution:
    """Turn a policy into a cut-off on holdout probabilities, with a sentence and the figures.

    `leads_per_week` (for weekly figures) and `deal_value`/`cost_per_contact` (for value per
    lead) are optional context; a capacity or max-value policy brings its own, and passing a
    different value as well is an error. Raises `PolicyError` when the policy cannot be met.
    """
    y, p = _checked(y_true, proba)
    if not isinstance(policy, Policy):
        raise PolicyError(f"unknown policy {policy!r}; use one of: {', '.join(POLICY_TYPES)}")
    given = {
        "leads_per_week": leads_per_week,
        "deal_value": deal_value,
        "cost_per_contact": cost_per_contact,
    }
    for name, own in policy.own_figures().items():
        _same(name, given[name], own)
        given[name] = own
    leads_per_week, deal_value, cost_per_contact = given.values()
    cutoff = policy.resolve(y, p)

    weekly = _positive("leads_per_week", leads_per_week)
    value = _value_inputs(deal_value, cost_per_contact)
    counts = _counts_at(y, p, [cutoff])
    base_rate = counts.positives / counts.n
    share = float(counts.mql_share[0])
    precision = float(counts.precision[0])
    mqls_per_week = share * weekly if weekly is not None else None
    value_per_lead = float(counts.value_per_lead(*value)[0]) if value else None
    return Resolution(
        policy=policy,
        cutoff=cutoff,
        sentence=_sentence(policy, cutoff, counts, mqls_per_week, value_per_lead),
        mql_share=share,
        precision=precision,
        recall=float(counts.recall[0]),
        lift=precision / base_rate,
        mqls_per_week=mqls_per_week,
        expected_conversions_per_week=(
            counts.true_positives[0] / counts.n * weekly if weekly is not None else None
        ),
        expected_value_per_lead=value_per_lead,
        intervals=bootstrap_intervals(y, p, cutoff, n_boot=n_boot, level=level, seed=seed),
        level=level,
        base_rate=base_rate,
        n_holdout=counts.n,
    )


# --------------------------------------------------------------------------- grades


@dataclass(frozen=True)
class GradeBands:
    """Grades as explicit lower probability bounds, best grade first.

    A lead gets the first grade whose lower bound its probability reaches. Bounds are strictly
    decreasing and the last is 0, so every probability gets exactly one grade.
    """

    labels: tuple[str, ...]
    lower_bounds: tuple[float, ...]

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if not labels or len(labels) != len(self.lower_bounds):
            raise PolicyError("grade bands need one lower bound per label, and at least one label")
        if any(not isinstance(label, str) or not label.strip() for label in labels):
            raise PolicyError(f"grade labels must be non-empty text, got {list(labels)}")
        if len(set(labels)) != len(labels):
            raise PolicyError(f"grade labels must be unique, got {list(labels)}")
        bounds = tuple(_number("grade lower bound", b) for b in self.lower_bounds)
        if any(not 0 <= b <= 1 for b in bounds):
            raise PolicyError(f"grade lower bounds must be probabilities in [0, 1], got {bounds}")
        if any(higher <= lower for higher, lower in pairwise(bounds)):
            raise PolicyError(
                f"grade lower bounds must decrease from the best grade to the worst, got {bounds}"
            )
        if bounds[-1] != 0:
            raise PolicyError(
                f"the last grade's lower bound must be 0 so every lead gets a grade,"
                f" got {bounds[-1]:g}"
            )
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "lower_bounds", bounds)

    @property
    def upper_bounds(self) -> tuple[float, ...]:
        """Exclusive upper bound of each band (1.0 for the best, which includes 1.0)."""
        return (1.0, *self.lower_bounds[:-1])

    def to_dict(self) -> dict[str, list[Any]]:
        return {"labels": list(self.labels), "lower_bounds": list(self.lower_bounds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradeBands:
        try:
            return cls(tuple(data["labels"]), tuple(data["lower_bounds"]))
        except (KeyError, TypeError) as exc:
            raise PolicyError("grade bands need 'labels' and 'lower_bounds' lists") from exc


def default_grade_bands(
    proba: npt.ArrayLike, cutoff: float, *, top_share: float = TOP_GRADE_SHARE
) -> GradeBands:
    """A-D grades around the MQL cut-off, placed on the holdout probabilities `proba`.

    - A: the upper half of the MQLs, and at most the top `top_share` (10 %) of all leads;
    - B: the other MQLs (probability >= cutoff), so A and B together are exactly the MQLs;
    - C: the upper half of the leads below the MQL line;
    - D: the rest.

    Each "half" or "top share" is resolved like a capacity policy: the lowest holdout
    probability whose share of leads does not exceed it. A band that would hold no holdout lead
    (too few distinct probabilities) is dropped, so a grade set may be e.g. A, B, D; B (the MQL
    line) is always kept.
    """
    p = check_probabilities(proba)
    cutoff = _number("cutoff", cutoff)
    if not 0 <= cutoff <= 1:
        raise PolicyError(f"cutoff must be a probability between 0 and 1, got {cutoff:g}")
    if not 0 < top_share <= 1:
        raise PolicyError(f"top_share must be a share in (0, 1], got {top_share}")
    mql_share = float(np.mean(p >= cutoff))
    a_bound = _cutoff_for_share(p, min(top_share, mql_share / 2))
    c_bound = _cutoff_for_share(p, mql_share + (1 - mql_share) / 2)
    candidates = [("A", a_bound), ("B", cutoff), ("C", c_bound), ("D", 0.0)]
    labels: list[str] = []
    bounds: list[float] = []
    for label, bound in candidates:
        if bound is None:
            continue
        keep = not bounds or bound < bounds[-1]
        # A must sit above the line and C below it, or they would not be separate bands.
        if label == "A" and bound <= cutoff:
            keep = False
        if label == "C" and (bound >= cutoff or bound <= 0):
            keep = False
        if keep:
            labels.append(label)
            bounds.append(bound)
    return GradeBands(tuple(labels), tuple(bounds))


def _grade_index(p: FloatArray, bands: GradeBands) -> IntArray:
    ascending = np.asarray(bands.lower_bounds[::-1])
    reached = np.searchsorted(ascending, p, side="right")  # >= 1 because the last bound is 0
    return (len(ascending) - reached).astype(np.int64)


def assign_grades(proba: npt.ArrayLike, bands: GradeBands) -> npt.NDArray[np.str_]:
    """The grade of each probability: the first band whose lower bound it reaches."""
    return np.asarray(bands.labels)[_grade_index(check_probabilities(proba), bands)]


def grade_table(y_true: npt.ArrayLike, proba: npt.ArrayLike, bands: GradeBands) -> pd.DataFrame:
    """One row per grade, best first, including grades no holdout lead falls in.

    Columns: `grade`, `lower_bound` (inclusive), `upper_bound` (exclusive; the best grade
    includes 1.0), `n`, `share_of_leads`, `conversions`, `conversion_rate` (NaN for an empty
    grade), `share_of_conversions`, `mean_proba`.
    """
    y, p = check_scores(y_true, proba)
    ids = _grade_index(p, bands)
    k = len(bands.labels)
    n = np.bincount(ids, minlength=k)
    conversions = np.bincount(ids, weights=y.astype(np.float64), minlength=k)
    proba_sum = np.bincount(ids, weights=p, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, conversions / n, np.nan)
        mean_proba = np.where(n > 0, proba_sum / n, np.nan)
    positives = y.sum()
    return pd.DataFrame(
        {
            "grade": list(bands.labels),
            "lower_bound": list(bands.lower_bounds),
            "upper_bound": list(bands.upper_bounds),
            "n": n,
            "share_of_leads": n / len(y),
            "conversions": conversions.astype(np.int64),
            "conversion_rate": rate,
            "share_of_conversions": conversions / positives if positives else np.nan,
            "mean_proba": mean_proba,
        }
    )


# --------------------------------------------------------------------------- what-if


@dataclass(frozen=True)
class ShiftResult:
    """Moving the MQL line by some percentage points of MQL share, and what changes.

    Conversions are counted on the holdout (as in `threshold_table`); weekly figures are None
    when `leads_per_week` was not given.
    """

    current_cutoff: float
    new_cutoff: float
    requested_points: float
    current_mql_share: float
    new_mql_share: float
    current_precision: float
    new_precision: float
    current_recall: float
    new_recall: float
    current_conversions_per_lead: float
    new_conversions_per_lead: float
    current_mqls_per_week: float | None
    new_mqls_per_week: float | None
    current_conversions_per_week: float | None
    new_conversions_per_week: float | None

    @property
    def mql_share_change(self) -> float:
        return self.new_mql_share - self.current_mql_share

    @property
    def mqls_per_week_change(self) -> float | None:
        if self.new_mqls_per_week is None or self.current_mqls_per_week is None:
            return None
        return self.new_mqls_per_week - self.current_mqls_per_week

    @property
    def conversions_per_week_change(self) -> float | None:
        if self.new_conversions_per_week is None or self.current_conversions_per_week is None:
            return None
        return self.new_conversions_per_week - self.current_conversions_per_week

    @property
    def sentence(self) -> str:
        """One sentence to read back, e.g. "Moving the MQL line by +5 points (...) adds ..."."""
        move = (
            f"Moving the MQL line by {self.requested_points:+g} points"
            f" (from {_pct(self.current_mql_share, 1)} to {_pct(self.new_mql_share, 1)} of"
            f" leads, probability >= {_prob(self.new_cutoff)} instead of"
            f" {_prob(self.current_cutoff)})"
        )
        mqls_change = self.mqls_per_week_change
        conversions_change = self.conversions_per_week_change
        if mqls_change is not None and conversions_change is not None:
            return (
                f"{move}: about {_signed(mqls_change)} MQLs and"
                f" {_signed(conversions_change)} expected conversions a week."
            )
        return (
            f"{move}: MQLs would capture {_pct(self.new_recall)} of all conversions instead of"
            f" {_pct(self.current_recall)}."
        )

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["mql_share_change"] = self.mql_share_change
        values["mqls_per_week_change"] = self.mqls_per_week_change
        values["conversions_per_week_change"] = self.conversions_per_week_change
        values["sentence"] = self.sentence
        return values


def simulate_shift(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    current_cutoff: float,
    points: float,
    *,
    leads_per_week: float | None = None,
) -> ShiftResult:
    """What if the MQL share moved by `points` percentage points (+5 = 5 % more of all leads)?

    The target share is the current holdout MQL share + points / 100, capped at 100 %. The new
    cut-off is found like a capacity policy: the lowest holdout probability whose MQL share does
    not exceed the target. With tied probabilities a small move can therefore leave the MQLs
    unchanged. Raises `PolicyError` when the target is at or below 0 % or smaller than the
    group of leads tied at the highest probability.
    """
    y, p = _checked(y_true, proba)
    current = _number("current_cutoff", current_cutoff)
    if not 0 <= current <= 1:
        raise PolicyError(f"current_cutoff must be a probability between 0 and 1, got {current:g}")
    move = _number("points", points)
    weekly = _positive("leads_per_week", leads_per_week)
    now = _counts_at(y, p, [current])
    current_share = float(now.mql_share[0])
    target = min(current_share + move / 100, 1.0)
    if target <= 0:
        raise PolicyError(
            f"moving {move:+g} points from {_pct(current_share, 1)} of leads leaves no MQLs;"
            f" move by more than {-current_share * 100:+.1f} points"
        )
    new_cutoff = _cutoff_for_share(p, target)
    if new_cutoff is None:
        raise PolicyError(
            f"{_pct(target, 1)} of leads is less than the group tied at the highest probability"
            f" ({_pct(float(np.mean(p == p.max())), 1)}); move by fewer points"
        )
    new = _counts_at(y, p, [new_cutoff])

    def per_week(share: float) -> float | None:
        return share * weekly if weekly is not None else None

    current_conversions = float(now.true_positives[0] / now.n)
    new_conversions = float(new.true_positives[0] / new.n)
    new_share = float(new.mql_share[0])
    return ShiftResult(
        current_cutoff=current,
        new_cutoff=new_cutoff,
        requested_points=move,
        current_mql_share=current_share,
        new_mql_share=new_share,
        current_precision=float(now.precision[0]),
        new_precision=float(new.precision[0]),
        current_recall=float(now.recall[0]),
        new_recall=float(new.recall[0]),
        current_conversions_per_lead=current_conversions,
        new_conversions_per_lead=new_conversions,
        current_mqls_per_week=per_week(current_share),
        new_mqls_per_week=per_week(new_share),
        current_conversions_per_week=per_week(current_conversions),
        new_conversions_per_week=per_week(new_conversions),
    )


def _signed(value: float) -> str:
    """+200, -69 (from -68.7), +2.5, 0: whole numbers from 10 up, one decimal below."""
    if abs(value) >= 10 or abs(value - round(value)) < 0.05:
        return f"{round(value):+,}" if round(value) else "0"
    return f"{value:+,.1f}"
