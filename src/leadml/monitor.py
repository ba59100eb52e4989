"""Close the loop: compare recent sales outcomes with what the model promised.

Given recent leads whose outcome is now known (0/1), the probabilities the model gives them, the
grade and MQL decision of the policy in force, and the model's own holdout (outcomes and
probabilities saved at training time), `monitor_outcomes` answers three questions:

1. realised against expected: for each grade and for MQLs against the other leads, does the
   share that converted match the mean predicted probability? The realised rate comes with a
   Wilson interval (90 % by default); a group is flagged when the expected rate lies outside it.
2. calibration and ranking on recent outcomes: expected calibration error (ECE), Brier score and
   ROC AUC, next to the same numbers on the holdout.
3. drift of the score distribution: the population stability index (PSI) of the recent
   probabilities against the holdout probabilities, over the holdout's deciles.

and sums them up in a verdict, `healthy`, `watch` or `act`, with a reason in plain words for
every finding. The rules, with their thresholds (module constants below):

- act (retrain, or move the line) when
  - PSI > `PSI_SIGNIFICANT` (0.25): the leads coming in are scored very differently from the
    leads the model was evaluated on;
  - recent ROC AUC is more than `AUC_DROP_ACT` (0.05) below the holdout's: the model ranks
    leads worse than it did;
  - the MQLs' realised conversion rate is significantly below expectation (the expected rate is
    above the interval) and materially so, by more than `MATERIAL_GAP` (5 percentage points):
    sales get worse MQLs than the policy promised;
- watch when
  - PSI > `PSI_MODERATE` (0.10);
  - recent ROC AUC is more than `AUC_DROP_WATCH` (0.02) below the holdout's;
  - recent ECE is more than `ECE_RISE_WATCH` (0.05) above the holdout's and above what chance
    alone gives a perfectly calibrated model on as many leads (the `ECE_CHANCE_QUANTILE` of the
    ECE of outcomes drawn from the probabilities themselves, `ECE_CHANCE_DRAWS` seeded draws);
  - any grade, the MQLs or the other leads convert significantly (outside the interval) and
    materially (by more than `MATERIAL_GAP`) above or below expectation.
- healthy otherwise.

Significant alone is not enough for a group: with a 90 % interval on each of about six groups,
a healthy model shows some flag in many samples, so a flag changes the verdict only when the
expected rate also lies outside the Bonferroni-widened interval (level 1 - 0.1 / groups) and
the gap is material. The ROC AUC rules apply only when the recent leads have at least `AUC_MIN_PER_OUTCOME` of each
outcome; with fewer, the AUC is too noisy to judge and a reason says so. Everything here is a
pure function of in-memory arrays: no files, no database, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadml.errors import DataError
from leadml.evaluate import check_scores, expected_calibration_error, holdout_metrics
from leadml.schema import blank_placeholders, boolean_series, numeric_series

#: Fewest recent leads with an outcome that monitoring works on.
MIN_LEADS = 30
#: Confidence level of the Wilson intervals on realised conversion rates.
INTERVAL_LEVEL = 0.90
#: Score-distribution drift: PSI below 0.10 is stable, 0.10-0.25 a moderate shift, above 0.25 a
#: significant shift (the usual reading of the population stability index).
PSI_MODERATE = 0.10
PSI_SIGNIFICANT = 0.25
#: PSI bins: the holdout probabilities' deciles.
PSI_BINS = 10
#: Share floor in each PSI bin, so an empty bin counts as large but finite.
PSI_FLOOR = 1e-4
#: Recent ROC AUC this far below the holdout's means watch / act.
AUC_DROP_WATCH = 0.02
AUC_DROP_ACT = 0.05
#: Fewest leads of each outcome for the recent ROC AUC to be judged.
AUC_MIN_PER_OUTCOME = 10
#: Recent ECE this far above the holdout's (and above chance, see below) means watch.
ECE_RISE_WATCH = 0.05
#: ECE a perfectly calibrated model reaches by chance: this quantile over that many draws.
ECE_CHANCE_QUANTILE = 0.95
ECE_CHANCE_DRAWS = 200
#: A group's realised rate this far (absolute) from the expected one is material: a watch for any
#: group, a act for MQLs converting below expectation.
MATERIAL_GAP = 0.05

HEALTHY = "healthy"
WATCH = "watch"
ACT = "act"

MQL_GROUP = "MQL"
OTHER_GROUP = "not MQL"


def wilson_interval(successes: int, n: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """Wilson score interval for a conversion rate of `successes` out of `n` leads."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    rate = successes / n
    denominator = 1 + z * z / n
    center = (rate + z * z / (2 * n)) / denominator
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, float(center - half)), min(1.0, float(center + half))


def psi_reading(psi: float) -> str:
    """The usual reading of a PSI value: stable, moderate shift or significant shift."""
    if psi > PSI_SIGNIFICANT:
        return "significant shift"
    if psi > PSI_MODERATE:
        return "moderate shift"
    return "stable"


@dataclass(frozen=True)
class Drift:
    """PSI of recent probabilities against the holdout's, bin by bin (lowest bin first)."""

    psi: float
    reading: str
    edges: tuple[float, ...]
    holdout_shares: tuple[float, ...]
    recent_shares: tuple[float, ...]


def population_stability_index(
    reference: npt.ArrayLike, recent: npt.ArrayLike, n_bins: int = PSI_BINS
) -> Drift:
    """PSI = sum over bins of (recent share - reference share) * ln(recent / reference share).

    Bins are cut at the reference's quantiles (deciles by default); tied quantiles merge, so
    heavily tied probabilities give fewer bins. Bins are [lower, upper), the first and last open.
    Shares are floored at `PSI_FLOOR` so an empty bin adds a large but finite term.
    """
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(recent, dtype=np.float64)
    if ref.size == 0 or new.size == 0:
        raise DataError("cannot compute the PSI of an empty set of probabilities")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, n_bins + 1))[1:-1])
    k = len(edges) + 1
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size
    new_share = np.bincount(np.searchsorted(edges, new, side="right"), minlength=k) / new.size
    a = np.maximum(new_share, PSI_FLOOR)
    e = np.maximum(ref_share, PSI_FLOOR)
    psi = float(np.sum((a - e) * np.log(a / e)))
    return Drift(
        psi=psi,
        reading=psi_reading(psi),
        edges=tuple(float(x) for x in edges),
        holdout_shares=tuple(float(x) for x in ref_share),
        recent_shares=tuple(float(x) for x in new_share),
    )


@dataclass(frozen=True)
class GroupCheck:
    """Realised against expected conversion in one group of recent leads.

    `flag` is "below" when the expected rate is above the interval (fewer converted than
    promised), "above" when it is below the interval, None when it lies inside; `material` is
    True when it is flagged and the gap is more than `MATERIAL_GAP`.
    """

    group: str
    n: int
    conversions: int
    realised_rate: float
    low: float
    high: float
    expected_rate: float
    flag: str | None
    material: bool


def check_group(
    group: str,
    y: npt.NDArray[np.int64],
    p: npt.NDArray[np.float64],
    level: float,
    n_groups: int = 1,
) -> GroupCheck:
    """`n_groups`: how many groups are checked together; a flag is material only outside the
    Bonferroni-widened interval (level 1 - (1 - level) / n_groups), so that checking six groups
    does not raise six times the false alarms."""
    n, conversions = len(y), int(y.sum())
    low, high = wilson_interval(conversions, n, level)
    expected = float(p.mean())
    flag = "below" if expected > high else "above" if expected < low else None
    rate = conversions / n
    wide_low, wide_high = wilson_interval(conversions, n, 1.0 - (1.0 - level) / max(n_groups, 1))
    outside_wide = not wide_low <= expected <= wide_high
    material = flag is not None and outside_wide and abs(rate - expected) > MATERIAL_GAP
    return GroupCheck(group, n, conversions, rate, low, high, expected, flag, material)


@dataclass(frozen=True)
class Calibration:
    """ECE, Brier and ROC AUC on recent outcomes, next to the holdout's.

    `recent_roc_auc` is None when the recent leads have only one outcome; `recent_ece_chance`
    is the ECE a perfectly calibrated model would stay below on these leads
    (`ECE_CHANCE_QUANTILE` of the ECE of outcomes drawn from the recent probabilities).
    """

    recent_ece: float
    recent_ece_chance: float
    recent_brier: float
    recent_roc_auc: float | None
    recent_base_rate: float
    recent_mean_proba: float
    holdout_ece: float
    holdout_brier: float
    holdout_roc_auc: float
    holdout_base_rate: float


@dataclass(frozen=True)
class MonitorReport:
    """What recent outcomes say about the model and the MQL policy, and what to do."""

    n: int
    level: float
    grades: tuple[GroupCheck, ...]
    mql: tuple[GroupCheck, ...]
    calibration: Calibration
    drift: Drift
    verdict: str
    reasons: tuple[str, ...]

    @property
    def sentence(self) -> str:
        """The verdict and its reasons in one sentence."""
        return f"{self.verdict}: {'; '.join(self.reasons)}."

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (None, never NaN, for what could not be computed)."""
        return {
            "n": self.n,
            "level": self.level,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "sentence": self.sentence,
            "grades": [asdict(g) for g in self.grades],
            "mql": [asdict(g) for g in self.mql],
            "calibration": asdict(self.calibration),
            "drift": {
                "psi": self.drift.psi,
                "reading": self.drift.reading,
                "edges": list(self.drift.edges),
                "holdout_shares": list(self.drift.holdout_shares),
                "recent_shares": list(self.drift.recent_shares),
            },
            "thresholds": {
                "psi_moderate": PSI_MODERATE,
                "psi_significant": PSI_SIGNIFICANT,
                "auc_drop_watch": AUC_DROP_WATCH,
                "auc_drop_act": AUC_DROP_ACT,
                "auc_min_per_outcome": AUC_MIN_PER_OUTCOME,
                "ece_rise_watch": ECE_RISE_WATCH,
                "material_gap": MATERIAL_GAP,
            },
        }


def chance_ece(
    proba: npt.ArrayLike,
    quantile: float = ECE_CHANCE_QUANTILE,
    draws: int = ECE_CHANCE_DRAWS,
    seed: int = 0,
) -> float:
    """The ECE a perfectly calibrated model stays below with probability `quantile` on these
    leads: outcomes are drawn from the probabilities themselves `draws` times (seeded)."""
    p = np.asarray(proba, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = [
        expected_calibration_error((rng.random(p.size) < p).astype(np.int64), p)
        for _ in range(draws)
    ]
    return float(np.quantile(values, quantile))


def _calibration(
    y: npt.NDArray[np.int64], p: npt.NDArray[np.float64], holdout: dict[str, float]
) -> Calibration:
    both = 0 < y.sum() < len(y)
    return Calibration(
        recent_ece=expected_calibration_error(y, p),
        recent_ece_chance=chance_ece(p),
        recent_brier=float(brier_score_loss(y, p, labels=[0, 1])),
        recent_roc_auc=float(roc_auc_score(y, p)) if both else None,
        recent_base_rate=float(y.mean()),
        recent_mean_proba=float(p.mean()),
        holdout_ece=holdout["ece"],
        holdout_brier=holdout["brier"],
        holdout_roc_auc=holdout["roc_auc"],
        holdout_base_rate=holdout["base_rate"],
    )


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _group_text(check: GroupCheck, what: str) -> str:
    direction = "below" if check.flag == "below" else "above"
    return (
        f"{what} converted at {_pct(check.realised_rate)} ({check.conversions} of {check.n},"
        f" interval {_pct(check.low)}-{_pct(check.high)}), {direction} the expected"
        f" {_pct(check.expected_rate)}"
    )


def _verdict(
    y: npt.NDArray[np.int64],
    grades: Sequence[GroupCheck],
    mql: Sequence[GroupCheck],
    cal: Calibration,
    drift: Drift,
) -> tuple[str, tuple[str, ...]]:
    act: list[str] = []
    watch: list[str] = []
    if drift.psi > PSI_SIGNIFICANT:
        act.append(
            f"the score distribution shifted significantly (PSI {drift.psi:.3f} >"
            f" {PSI_SIGNIFICANT}): recent leads are unlike those the model was evaluated on"
        )
    elif drift.psi > PSI_MODERATE:
        watch.append(f"the score distribution shifted moderately (PSI {drift.psi:.3f})")
    positives = int(y.sum())
    if min(positives, len(y) - positives) < AUC_MIN_PER_OUTCOME:
        watch.append(
            f"too few converted or lost leads ({positives} and {len(y) - positives}) to judge"
            f" the ranking; at least {AUC_MIN_PER_OUTCOME} of each are needed"
        )
    elif cal.recent_roc_auc is not None:
        drop = cal.holdout_roc_auc - cal.recent_roc_auc
        text = (
            f"ROC AUC fell to {cal.recent_roc_auc:.3f} from {cal.holdout_roc_auc:.3f} on the"
            f" holdout: the model ranks recent leads worse"
        )
        if drop > AUC_DROP_ACT:
            act.append(text)
        elif drop > AUC_DROP_WATCH:
            watch.append(text)
    if cal.recent_ece - cal.holdout_ece > ECE_RISE_WATCH and cal.recent_ece > cal.recent_ece_chance:
        watch.append(
            f"probabilities are less well calibrated (ECE {cal.recent_ece:.3f} against"
            f" {cal.holdout_ece:.3f} on the holdout; chance alone gives up to"
            f" {cal.recent_ece_chance:.3f})"
        )
    for check in mql:
        if not check.material:
            continue
        what = "MQLs" if check.group == MQL_GROUP else "leads below the MQL line"
        if check.group == MQL_GROUP and check.flag == "below":
            act.append(_group_text(check, what))
        else:
            watch.append(_group_text(check, what))
    for check in grades:
        if check.material:
            watch.append(_group_text(check, f"grade {check.group}"))
    if act:
        return ACT, tuple(act + watch)
    if watch:
        return WATCH, tuple(watch)
    auc = f"ROC AUC {cal.recent_roc_auc:.3f}" if cal.recent_roc_auc is not None else "ranking"
    return HEALTHY, (
        f"recent outcomes match the model: stable scores (PSI {drift.psi:.3f}), {auc} against"
        f" {cal.holdout_roc_auc:.3f} on the holdout, and no grade converts materially off"
        " expectation",
    )


def monitor_outcomes(
    y: npt.ArrayLike,
    proba: npt.ArrayLike,
    grades: npt.ArrayLike,
    is_mql: npt.ArrayLike,
    holdout_y: npt.ArrayLike,
    holdout_proba: npt.ArrayLike,
    *,
    grade_labels: Sequence[str] | None = None,
    level: float = INTERVAL_LEVEL,
) -> MonitorReport:
    """Recent outcomes `y` (0/1) against the model's probabilities `proba`, grades and MQL
    decisions, and against the model's holdout; see the module docstring for the verdict rules.

    `grade_labels` orders the grades (best first, as the policy's bands do; grades not in it
    follow in sorted order); grades no recent lead falls in are left out.
    """
    y_arr, p = check_scores(y, proba)
    hy, hp = check_scores(holdout_y, holdout_proba)
    grade_arr = np.asarray(grades).astype(str)
    mql_arr = np.asarray(is_mql, dtype=bool)
    if not len(grade_arr) == len(mql_arr) == len(y_arr):
        raise DataError(
            f"outcomes, probabilities, grades and MQL flags differ in length ({len(y_arr)},"
            f" {len(p)}, {len(grade_arr)}, {len(mql_arr)}); pass one value per lead"
        )
    if len(y_arr) < MIN_LEADS:
        raise DataError(
            f"only {len(y_arr)} leads with an outcome; monitoring needs at least {MIN_LEADS},"
            " wait for more outcomes"
        )
    order = list(dict.fromkeys(grade_labels or ()))
    present = set(grade_arr.tolist())
    labels = [g for g in order if g in present] + sorted(present - set(order))
    groups = [(MQL_GROUP, mql_arr), (OTHER_GROUP, ~mql_arr)]
    n_groups = len(labels) + sum(1 for _, mask in groups if mask.any())
    grade_checks = tuple(
        check_group(g, y_arr[grade_arr == g], p[grade_arr == g], level, n_groups) for g in labels
    )
    mql_checks = tuple(
        check_group(name, y_arr[mask], p[mask], level, n_groups)
        for name, mask in groups
        if mask.any()
    )
    calibration = _calibration(y_arr, p, holdout_metrics(hy, hp))
    drift = population_stability_index(hp, p)
    verdict, reasons = _verdict(y_arr, grade_checks, mql_checks, calibration, drift)
    return MonitorReport(
        n=len(y_arr),
        level=level,
        grades=grade_checks,
        mql=mql_checks,
        calibration=calibration,
        drift=drift,
        verdict=verdict,
        reasons=reasons,
    )


# ==================================================================================================
# The MQL line as a contract: what each policy version promised against what the ledger shows
#
# `mql_contract` takes the score ledger (every score in a period), the ledger joined to sales
# outcomes (one row per lead, see leadml.store.attach_outcomes), the promise each policy version
# made when it was set (its stored `expected` figures), and the serving model's holdout. Per
# policy version and model version it reports:
#
# - realised conversion of MQLs (Wilson interval) against the promised precision and its interval;
# - realised conversion per grade against the grade's conversion on the holdout;
# - the SQL acceptance rate of MQLs and the rejection reasons;
# - MQL volume per week, and the MQL share against the promised one;
# - calibration (ECE, Brier) on the leads with an outcome against the holdout's;
# - how many MQLs still have no outcome: too recent to have closed, or overdue;
#
# and over the whole period the PSI of the scores and of each feature against the holdout (the
# usual bands: 0.10 a moderate shift, 0.25 a significant one). Every figure ends in a finding:
# healthy / watch / act with one sentence a marketer can read; a group's verdict is its worst
# finding, the report's the worst of all. The rules:
#
# - act: MQLs convert materially (> MATERIAL_GAP) below the promise, and their interval lies
#   wholly below the promised interval; the score distribution shifted significantly (PSI > 0.25).
# - watch: MQLs convert outside the promised interval otherwise (above it too: the line could go
#   lower); a grade converts materially off its holdout rate, the two Bonferroni-widened intervals
#   apart; sales accepts fewer than ACCEPTANCE_WATCH of the MQLs (interval wholly below);
#   the MQL share is materially off the promise; calibration rule as in `monitor_outcomes`;
#   score PSI > 0.10; a feature's PSI > 0.25; more than MISSING_WATCH of the MQLs older than the
#   outcome window have no outcome (the contract cannot be checked).
# - a figure with fewer than MIN_JUDGED leads behind it is reported but not judged (healthy, and
#   its sentence says so).
#
# Conversion below the line is rarely observed (sales works MQLs); ranking (ROC AUC) on leads with
# an outcome is therefore left out here: on MQLs alone it is low by construction. Date features are
# left out of feature drift: time moves on by design.

#: Fewest leads behind a figure for it to be judged.
MIN_JUDGED = 30
#: Sales accepting fewer than this share of MQLs (interval wholly below) is a watch.
ACCEPTANCE_WATCH = 0.5
#: More than this share of the MQLs older than the outcome window without an outcome is a watch.
MISSING_WATCH = 0.5
_SEVERITY = {HEALTHY: 0, WATCH: 1, ACT: 2}
MISSING_BIN = "(missing)"
OTHER_BIN = "(other)"


# --------------------------------------------------------------------------- below the line


@dataclass(frozen=True)
class BelowLineEstimate:
    """Realised conversion of the leads below the MQL line, from the exploration leads."""

    observed: bool
    n_below: int
    n_explored: int
    n_labelled: int
    rate: float | None
    low: float | None
    high: float | None
    effective_n: float
    level: float
    naive_rate: float | None
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wilson(rate: float, n: float, level: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    denominator = 1 + z * z / n
    center = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def below_line_conversion(
    is_mql: npt.ArrayLike,
    exploration: npt.ArrayLike,
    selection_probability: npt.ArrayLike,
    label: npt.ArrayLike,
    *,
    level: float = INTERVAL_LEVEL,
) -> BelowLineEstimate:
    """Conversion below the line, estimated from the exploration leads by inverse propensity.

    One value per lead scored below or above the line: `label` is 1/0 when known, NaN when open
    or never observed. The estimate is the Hajek (self-normalised) inverse-propensity mean over
    the labelled exploration leads; its interval is Wilson's on the effective number of leads
    (Kish: (sum w)^2 / sum w^2). `naive_rate` is what a retraining that takes every lead below
    the line without a win as lost would believe. Without labelled exploration leads the estimate
    is unobserved, and the sentence says so.
    """
    mql = np.asarray(is_mql, dtype=bool)
    explored = np.asarray(exploration, dtype=bool) & ~mql
    chance = np.asarray(selection_probability, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    below = ~mql
    n_below = int(below.sum())
    known = explored & ~np.isnan(y) & (chance > 0)
    wins_below = np.nan_to_num(y[below], nan=0.0)
    naive = float(wins_below.mean()) if n_below else None
    if not known.any():
        reason = (
            "no exploration leads were handed to sales"
            if not explored.any()
            else f"none of the {int(explored.sum()):,} exploration leads has an outcome yet"
        )
        return BelowLineEstimate(
            False,
            n_below,
            int(explored.sum()),
            0,
            None,
            None,
            None,
            0.0,
            level,
            naive,
            f"conversion below the MQL line is unobserved: {reason}, so nothing below the line"
            " has an honest outcome (leads nobody called show no win, which is not a loss); set"
            " an exploration share (e.g. 5 %) in the MQL policy to measure it",
        )
    w = 1.0 / chance[known]
    rate = float(np.sum(w * y[known]) / np.sum(w))
    n_eff = float(w.sum() ** 2 / (w**2).sum())
    low, high = _wilson(rate, n_eff, level)
    return BelowLineEstimate(
        True,
        n_below,
        int(explored.sum()),
        int(known.sum()),
        rate,
        low,
        high,
        n_eff,
        level,
        naive,
        f"leads below the MQL line convert at about {_pct(rate)} ({_pct(low)}-{_pct(high)},"
        f" {level * 100:.0f} % interval) by {int(known.sum()):,} exploration leads with an outcome"
        + (
            f"; counting unworked leads as lost would say {_pct(naive)}"
            if naive is not None
            else ""
        ),
    )


def below_line_of(joined: pd.DataFrame, level: float = INTERVAL_LEVEL) -> BelowLineEstimate:
    """`below_line_conversion` over leads with their outcomes (`Store.ledger_with_outcomes`):
    a lead's label is its outcome once closed, unknown while open."""
    n = len(joined)
    exploration = (
        joined["exploration"].fillna(False).astype(bool).to_numpy()
        if "exploration" in joined.columns
        else np.zeros(n, dtype=bool)
    )
    chance = (
        pd.to_numeric(joined["selection_probability"], errors="coerce").to_numpy(np.float64)
        if "selection_probability" in joined.columns
        else np.full(n, np.nan)
    )
    label = joined["converted"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    return below_line_conversion(
        joined["is_mql"].astype(bool).to_numpy(), exploration, chance, label, level=level
    )


def below_line_finding(estimate: BelowLineEstimate) -> Finding:
    """What the leads below the line really do: reported, not judged (no promise covers them)."""
    return Finding("below_line_conversion", HEALTHY, estimate.sentence, False)


@dataclass(frozen=True)
class Finding:
    """One figure's verdict and the sentence that explains it."""

    figure: str
    verdict: str
    reason: str
    judged: bool = True


@dataclass(frozen=True)
class Rate:
    """A realised share with its Wilson interval (None when nothing was observed)."""

    n: int
    successes: int
    rate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, successes: int, n: int, level: float) -> Rate:
        if n == 0:
            return cls(0, 0, None, None, None)
        low, high = wilson_interval(successes, n, level)
        return cls(n, successes, successes / n, low, high)


@dataclass(frozen=True)
class GradeFigure:
    grade: str
    scored: int
    realised: Rate
    #: The grade's conversion on the holdout when the policy was set, with its interval.
    promised: Rate | None
    #: The mean probability of the grade's leads with an outcome.
    scores_said: float | None
    finding: Finding


@dataclass(frozen=True)
class ContractGroup:
    """The contract of one policy version served with one model version."""

    policy_version: int | None
    model_version: str
    promise: dict[str, Any]
    scored: int
    mqls: int
    mql_conversion: Rate
    grades: tuple[GradeFigure, ...]
    sql_acceptance: Rate
    rejection_reasons: dict[str, int]
    mqls_per_week: dict[str, int]
    mql_share: Rate
    calibration: dict[str, float | None]
    missing: dict[str, int]
    findings: tuple[Finding, ...]
    #: Realised conversion below the line, from the exploration leads (or "unobserved").
    below_line: BelowLineEstimate | None = None

    @property
    def verdict(self) -> str:
        return worst(self.findings).verdict

    @property
    def reason(self) -> str:
        return worst(self.findings).reason


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    reading: str


@dataclass(frozen=True)
class ContractReport:
    """The MQL line's contract over a period: per policy and model version, plus drift."""

    since: str | None
    until: str
    scored: int
    groups: tuple[ContractGroup, ...]
    score_drift: Drift | None
    feature_drift: tuple[FeatureDrift, ...]
    findings: tuple[Finding, ...]
    level: float
    #: Over every group: each lead carries its own chance of being handed over.
    below_line: BelowLineEstimate | None = None

    @property
    def all_findings(self) -> tuple[Finding, ...]:
        return tuple(f for g in self.groups for f in g.findings) + self.findings

    @property
    def verdict(self) -> str:
        return worst(self.all_findings).verdict

    @property
    def reason(self) -> str:
        return worst(self.all_findings).reason

    @property
    def promise_checked(self) -> bool:
        """Whether enough MQLs have an outcome for some group's promised conversion to be judged.

        Until then a healthy verdict rests on MQL volume and drift alone."""
        return any(
            f.judged for g in self.groups for f in g.findings if f.figure == "mql_conversion"
        )

    def to_dict(self) -> dict[str, Any]:
        def rate(r: Rate) -> dict[str, Any]:
            return asdict(r)

        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "promise_checked": self.promise_checked,
            "since": self.since,
            "until": self.until,
            "scored": self.scored,
            "level": self.level,
            "findings": [asdict(f) for f in self.all_findings],
            "groups": [
                {
                    "policy_version": g.policy_version,
                    "model_version": g.model_version,
                    "verdict": g.verdict,
                    "reason": g.reason,
                    "promise": g.promise,
                    "scored": g.scored,
                    "mqls": g.mqls,
                    "mql_conversion": rate(g.mql_conversion),
                    "grades": [
                        {
                            "grade": x.grade,
                            "scored": x.scored,
                            "realised": rate(x.realised),
                            "promised": None if x.promised is None else rate(x.promised),
                            "scores_said": x.scores_said,
                            "verdict": x.finding.verdict,
                            "reason": x.finding.reason,
                        }
                        for x in g.grades
                    ],
                    "sql_acceptance": rate(g.sql_acceptance),
                    "rejection_reasons": g.rejection_reasons,
                    "mqls_per_week": g.mqls_per_week,
                    "mql_share": rate(g.mql_share),
                    "calibration": g.calibration,
                    "missing_outcomes": g.missing,
                    "below_line": None if g.below_line is None else g.below_line.to_dict(),
                    "findings": [asdict(f) for f in g.findings],
                }
                for g in self.groups
            ],
            "score_drift": None
            if self.score_drift is None
            else {
                "psi": self.score_drift.psi,
                "reading": self.score_drift.reading,
                "edges": list(self.score_drift.edges),
                "holdout_shares": list(self.score_drift.holdout_shares),
                "recent_shares": list(self.score_drift.recent_shares),
            },
            "feature_drift": [asdict(f) for f in self.feature_drift],
            "below_line": None if self.below_line is None else self.below_line.to_dict(),
            "thresholds": {
                "psi_moderate": PSI_MODERATE,
                "psi_significant": PSI_SIGNIFICANT,
                "material_gap": MATERIAL_GAP,
                "min_judged": MIN_JUDGED,
                "acceptance_watch": ACCEPTANCE_WATCH,
                "missing_watch": MISSING_WATCH,
            },
        }


def worst(findings: Sequence[Finding]) -> Finding:
    """The most severe finding (the first of equals); healthy when there are none."""
    if not findings:
        return Finding("ledger", HEALTHY, "nothing was scored in this period")
    return max(findings, key=lambda f: _SEVERITY[f.verdict])


def _range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{low * 100:.0f}-{high * 100:.0f} %"


def _promised_interval(promise: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    bounds = (promise.get("intervals") or {}).get(name)
    if not bounds or len(bounds) != 2 or bounds[0] is None or bounds[1] is None:
        return None
    return float(bounds[0]), float(bounds[1])


def _policy_label(version: int | None) -> str:
    return "the default MQL policy" if version is None else f"MQL policy v{version}"


def mql_conversion_finding(
    realised: Rate, promise: Mapping[str, Any], label: str = "MQLs"
) -> Finding:
    """Realised MQL conversion against the promised precision (see the rules above)."""
    promised = promise.get("precision")
    interval = _promised_interval(promise, "precision")
    if promised is None:
        return Finding("mql_conversion", HEALTHY, f"{label}: no promised conversion", False)
    low, high = interval if interval is not None else (float(promised), float(promised))
    told = f"{label} promised {_range(low, high)} conversion"
    if realised.n < MIN_JUDGED or realised.rate is None:
        return Finding(
            "mql_conversion",
            HEALTHY,
            f"{told}; only {realised.n} have an outcome yet, at least {MIN_JUDGED} are needed"
            " to judge",
            False,
        )
    assert realised.low is not None and realised.high is not None
    got = (
        f"the last {realised.n:,} with outcomes converted {realised.rate * 100:.0f} %"
        f" ({_range(realised.low, realised.high)})"
    )
    gap = float(promised) - realised.rate
    if realised.high < low and gap > MATERIAL_GAP:
        return Finding(
            "mql_conversion", ACT, f"{told}; {got}: the line is too low for this model now"
        )
    if realised.high < low:
        return Finding("mql_conversion", WATCH, f"{told}; {got}: somewhat below the promise")
    if realised.low > high:
        return Finding(
            "mql_conversion",
            WATCH,
            f"{told}; {got}: better than promised, so the line could move down to reach more leads",
        )
    return Finding("mql_conversion", HEALTHY, f"{told}; {got}, as promised")


def _grade_figures(
    rows: pd.DataFrame, closed: pd.DataFrame, promise: Mapping[str, Any], level: float
) -> tuple[GradeFigure, ...]:
    """Per grade: realised conversion against the grade's conversion on the holdout when the
    policy was set (the promise), each with its interval: both are samples."""
    promised = {str(g.get("grade")): g for g in promise.get("grades") or []}
    order = [g for g in promised if g in set(rows["grade"])]
    order += sorted(set(rows["grade"]) - set(order))
    judged = [g for g in order if int((closed["grade"] == g).sum()) >= MIN_JUDGED]
    figures = []
    for grade in order:
        mine = closed[closed["grade"] == grade]
        outcomes = mine["converted"].astype(bool)
        realised = Rate.of(int(outcomes.sum()), len(outcomes), level)
        held = promised.get(grade) or {}
        n_held, won_held = int(held.get("n") or 0), int(held.get("conversions") or 0)
        holdout = Rate.of(won_held, n_held, level) if n_held else None
        figures.append(
            GradeFigure(
                grade=grade,
                scored=int((rows["grade"] == grade).sum()),
                realised=realised,
                promised=holdout,
                scores_said=float(mine["probability"].mean()) if len(mine) else None,
                finding=_grade_finding(grade, realised, holdout, level, max(len(judged), 1)),
            )
        )
    return tuple(figures)


def _grade_finding(
    grade: str, realised: Rate, promised: Rate | None, level: float, n_groups: int
) -> Finding:
    """Watch when the two Bonferroni-widened intervals do not even overlap and the gap is
    material."""
    figure = f"grade_{grade}"
    if realised.n < MIN_JUDGED or realised.rate is None:
        text = f"grade {grade}: {realised.n} leads with an outcome, too few to judge"
        return Finding(figure, HEALTHY, text, False)
    if promised is None or promised.rate is None:
        return Finding(figure, HEALTHY, f"grade {grade}: no holdout rate to compare with", False)
    wide = 1.0 - (1.0 - level) / n_groups
    low, high = wilson_interval(realised.successes, realised.n, wide)
    held_low, held_high = wilson_interval(promised.successes, promised.n, wide)
    text = (
        f"grade {grade} converted {realised.rate * 100:.0f} % ({realised.successes} of"
        f" {realised.n}) against {promised.rate * 100:.0f} % on the holdout"
    )
    apart = high < held_low or low > held_high
    if apart and abs(realised.rate - promised.rate) > MATERIAL_GAP:
        return Finding(figure, WATCH, text)
    return Finding(figure, HEALTHY, text)


def _acceptance_finding(acceptance: Rate, reasons: Mapping[str, int]) -> Finding:
    if acceptance.n < MIN_JUDGED or acceptance.rate is None:
        text = f"sales decided on {acceptance.n} MQLs so far, too few to judge acceptance"
        return Finding("sql_acceptance", HEALTHY, text, False)
    text = (
        f"sales accepted {acceptance.rate * 100:.0f} % of {acceptance.n:,} MQLs as SQLs"
        f" ({_range(acceptance.low, acceptance.high)})"
    )
    if acceptance.high is not None and acceptance.high < ACCEPTANCE_WATCH:
        top = max(reasons.items(), key=lambda item: item[1]) if reasons else None
        why = f"; the top rejection reason is '{top[0]}' ({top[1]:,} MQLs)" if top else ""
        return Finding("sql_acceptance", WATCH, f"{text}: sales rejects most MQLs{why}")
    return Finding("sql_acceptance", HEALTHY, text)


def _share_finding(share: Rate, promise: Mapping[str, Any]) -> Finding:
    promised = promise.get("mql_share")
    interval = _promised_interval(promise, "mql_share")
    if promised is None or share.rate is None or share.n < MIN_JUDGED:
        return Finding("mql_volume", HEALTHY, "too few leads scored to judge the MQL volume", False)
    low, high = interval if interval is not None else (float(promised), float(promised))
    text = (
        f"{share.rate * 100:.0f} % of {share.n:,} leads scored became MQLs"
        f" ({_range(share.low, share.high)}) against the promised {_range(low, high)}"
    )
    assert share.low is not None and share.high is not None
    outside = share.high < low or share.low > high
    if outside and abs(share.rate - float(promised)) > MATERIAL_GAP:
        more = "more" if share.rate > float(promised) else "fewer"
        return Finding("mql_volume", WATCH, f"{text}: sales gets {more} MQLs than agreed")
    return Finding("mql_volume", HEALTHY, text)


def _calibration_figures(
    closed: pd.DataFrame, holdout_ece: float, holdout_brier: float
) -> tuple[dict[str, float | None], Finding]:
    if len(closed) < MIN_JUDGED:
        figures = {"n": float(len(closed)), "ece": None, "ece_chance": None, "brier": None}
        figures |= {"holdout_ece": holdout_ece, "holdout_brier": holdout_brier}
        text = f"calibration: {len(closed)} leads with an outcome, too few to judge"
        return figures, Finding("calibration", HEALTHY, text, False)
    y = closed["converted"].astype(bool).to_numpy().astype(np.int64)
    p = closed["probability"].to_numpy(dtype=np.float64)
    ece = expected_calibration_error(y, p)
    chance = chance_ece(p)
    brier = float(brier_score_loss(y, p, labels=[0, 1]))
    figures = {
        "n": float(len(closed)),
        "ece": ece,
        "ece_chance": chance,
        "brier": brier,
        "holdout_ece": holdout_ece,
        "holdout_brier": holdout_brier,
        "mean_probability": float(p.mean()),
        "conversion_rate": float(y.mean()),
    }
    text = (
        f"leads with an outcome converted {y.mean() * 100:.0f} % where their scores said"
        f" {p.mean() * 100:.0f} % (ECE {ece:.3f}, holdout {holdout_ece:.3f})"
    )
    if ece - holdout_ece > ECE_RISE_WATCH and ece > chance:
        return figures, Finding("calibration", WATCH, f"{text}: the probabilities drifted")
    return figures, Finding("calibration", HEALTHY, text)


def _missing_figures(
    mqls: pd.DataFrame, now: datetime, window: timedelta
) -> tuple[dict[str, int], Finding]:
    open_ = mqls["converted"].isna()
    old = mqls["scored_at"] < pd.Timestamp(now - window)
    counts = {
        "mqls": len(mqls),
        "with_outcome": int((~open_).sum()),
        "too_recent": int((open_ & ~old).sum()),
        "overdue": int((open_ & old).sum()),
        "window_days": int(window.total_seconds() // 86400),
    }
    older = int(old.sum())
    text = (
        f"{counts['too_recent']:,} MQLs are too recent to have closed and {counts['overdue']:,}"
        f" of {older:,} older than {counts['window_days']} days have no outcome"
    )
    if older >= MIN_JUDGED and counts["overdue"] / older > MISSING_WATCH:
        return counts, Finding(
            "missing_outcomes", WATCH, f"{text}: sales is not reporting, so the line is unchecked"
        )
    return counts, Finding("missing_outcomes", HEALTHY, text)


def _weekly_mqls(rows: pd.DataFrame) -> dict[str, int]:
    mqls = rows[rows["is_mql"]]
    if mqls.empty:
        return {}
    weeks = mqls["scored_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("W-SUN")
    counted = mqls.assign(week=weeks.dt.start_time.dt.date.astype(str))
    # A lead scored twice in a week is one MQL; scores without an id count one each.
    with_id = counted[counted["lead_id"].notna()].drop_duplicates(["week", "lead_id"])
    without = counted[counted["lead_id"].isna()]
    both = pd.concat([with_id, without])
    return {str(k): int(v) for k, v in both.groupby("week").size().sort_index().items()}


def contract_group(
    rows: pd.DataFrame,
    joined: pd.DataFrame,
    promise: Mapping[str, Any],
    *,
    policy_version: int | None,
    model_version: str,
    holdout_ece: float,
    holdout_brier: float,
    now: datetime,
    outcome_window: timedelta,
    level: float = INTERVAL_LEVEL,
) -> ContractGroup:
    """The contract of one (policy version, model version): `rows` are its ledger rows, `joined`
    its leads with outcomes (leadml.store.attach_outcomes)."""
    closed = joined[joined["converted"].notna()]
    mql_leads = joined[joined["is_mql"].astype(bool)]
    mql_closed = closed[closed["is_mql"].astype(bool)]
    conversion = Rate.of(int(mql_closed["converted"].astype(bool).sum()), len(mql_closed), level)
    decided = mql_leads[mql_leads["sql_status"].notna()]
    accepted = int((decided["sql_status"] == "accepted").sum())
    acceptance = Rate.of(accepted, len(decided), level)
    rejected = decided[decided["sql_status"] == "rejected"]["rejection_reason"].fillna("(none)")
    reasons = {str(k): int(v) for k, v in rejected.value_counts().items()}
    share = Rate.of(int(rows["is_mql"].sum()), len(rows), level)
    grades = _grade_figures(rows, closed, promise, level)
    calibration, calibration_finding = _calibration_figures(closed, holdout_ece, holdout_brier)
    missing, missing_finding = _missing_figures(mql_leads, now, outcome_window)
    below = below_line_of(joined, level)
    label = f"MQLs under {_policy_label(policy_version)} (model v{model_version})"
    findings = (
        mql_conversion_finding(conversion, promise, label),
        *(g.finding for g in grades),
        _acceptance_finding(acceptance, reasons),
        _share_finding(share, promise),
        calibration_finding,
        missing_finding,
        below_line_finding(below),
    )
    return ContractGroup(
        policy_version=policy_version,
        model_version=model_version,
        promise=dict(promise),
        scored=len(rows),
        mqls=int(rows["is_mql"].sum()),
        mql_conversion=conversion,
        grades=grades,
        sql_acceptance=acceptance,
        rejection_reasons=reasons,
        mqls_per_week=_weekly_mqls(rows),
        mql_share=share,
        calibration=calibration,
        missing=missing,
        findings=findings,
        below_line=below,
    )


def feature_psi(reference: pd.Series, recent: pd.Series, kind: str) -> float:
    """PSI of one feature: numeric over the reference's deciles plus a missing bin; categorical
    (and yes/no) over the reference's values, the rest as "other", missing its own bin."""
    if kind == "numeric":
        ref = pd.to_numeric(reference, errors="coerce")
        new = pd.to_numeric(recent, errors="coerce")
        present = ref.dropna().to_numpy(dtype=np.float64)
        edges = (
            np.unique(np.quantile(present, np.linspace(0, 1, PSI_BINS + 1))[1:-1])
            if present.size
            else np.array([])
        )

        def bins(values: pd.Series) -> pd.Series:
            out = pd.Series(MISSING_BIN, index=values.index, dtype=object)
            known = values.notna()
            out[known] = np.searchsorted(edges, values[known].to_numpy(), side="right").astype(str)
            return out

        ref_bins, new_bins = bins(ref), bins(new)
    else:
        ref_bins = reference.map(_category)
        known = set(ref_bins)
        new_bins = recent.map(_category).map(lambda v: v if v in known else OTHER_BIN)
    labels = sorted(set(ref_bins) | set(new_bins))
    e = ref_bins.value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
    a = new_bins.value_counts(normalize=True).reindex(labels, fill_value=0).to_numpy()
    a, e = np.maximum(a, PSI_FLOOR), np.maximum(e, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _category(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING_BIN
    return str(value)


def normalised_features(
    frame: pd.DataFrame, kinds: Mapping[str, str], placeholders: frozenset[str]
) -> pd.DataFrame:
    """Features read the same way on both sides of a drift check: placeholders as missing,
    yes/no words and booleans as 1/0, numbers as numbers, categories as trimmed text."""
    out = {}
    for name, kind in kinds.items():
        column = frame[name] if name in frame.columns else pd.Series(None, index=frame.index)
        column = blank_placeholders(column.astype(object), placeholders)
        if kind == "numeric":
            out[name] = numeric_series(column)
        elif kind == "boolean":
            out[name] = boolean_series(column)
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def mql_contract(
    ledger: pd.DataFrame,
    joined: pd.DataFrame,
    promises: Mapping[int | None, Mapping[str, Any]],
    holdout_y: npt.ArrayLike,
    holdout_proba: npt.ArrayLike,
    *,
    now: datetime,
    outcome_window: timedelta = timedelta(days=90),
    since: datetime | None = None,
    holdout_features: pd.DataFrame | None = None,
    feature_kinds: Mapping[str, str] | None = None,
    placeholders: frozenset[str] = frozenset(),
    level: float = INTERVAL_LEVEL,
) -> ContractReport:
    """The MQL line's contract over the ledger rows given (see the rules above).

    `ledger`: rows as `Store.ledger_frame` gives them; `joined`: `Store.ledger_with_outcomes` for
    the same period; `promises`: policy version (None: the default policy) -> its `expected`
    figures; the holdout outcomes and probabilities of the serving model, and optionally its
    holdout leads with `feature_kinds` (name -> numeric / boolean / categorical) for feature drift.
    """
    hy, hp = check_scores(holdout_y, holdout_proba)
    holdout = holdout_metrics(hy, hp)
    groups = []
    keys = ledger[["policy_version", "model_version"]].astype(object).drop_duplicates()
    for policy_version, model_version in keys.itertuples(index=False):
        version = None if pd.isna(policy_version) else int(policy_version)

        def mine(frame: pd.DataFrame, v: int | None = version, m: str = model_version) -> Any:
            same_policy = (
                frame["policy_version"].isna() if v is None else (frame["policy_version"] == v)
            )
            return frame[same_policy.fillna(False).astype(bool) & (frame["model_version"] == m)]

        groups.append(
            contract_group(
                mine(ledger),
                mine(joined),
                promises.get(version) or {},
                policy_version=version,
                model_version=str(model_version),
                holdout_ece=holdout["ece"],
                holdout_brier=holdout["brier"],
                now=now,
                outcome_window=outcome_window,
                level=level,
            )
        )
    findings: list[Finding] = []
    drift = None
    if len(ledger):
        drift = population_stability_index(hp, ledger["probability"].to_numpy(dtype=np.float64))
        text = (
            f"scores of the {len(ledger):,} leads scored: PSI {drift.psi:.3f} against the"
            f" holdout ({drift.reading})"
        )
        if drift.psi > PSI_SIGNIFICANT:
            findings.append(
                Finding(
                    "score_drift",
                    ACT,
                    f"{text}: the leads coming in are unlike those the model was checked on",
                )
            )
        elif drift.psi > PSI_MODERATE:
            findings.append(Finding("score_drift", WATCH, text))
        else:
            findings.append(Finding("score_drift", HEALTHY, text))
    features: list[FeatureDrift] = []
    if holdout_features is not None and feature_kinds and len(ledger) >= MIN_JUDGED:
        recent = pd.DataFrame(list(ledger["features"]), index=ledger.index)
        ref = normalised_features(holdout_features, feature_kinds, placeholders)
        new = normalised_features(recent, feature_kinds, placeholders)
        for name, kind in feature_kinds.items():
            psi = feature_psi(ref[name], new[name], "numeric" if kind == "numeric" else "cat")
            features.append(FeatureDrift(name, psi, psi_reading(psi)))
        features.sort(key=lambda f: -f.psi)
        shifted = [f for f in features if f.psi > PSI_SIGNIFICANT]
        if shifted:
            names = ", ".join(f"{f.feature} (PSI {f.psi:.2f})" for f in shifted[:3])
            findings.append(
                Finding(
                    "feature_drift",
                    WATCH,
                    f"the leads' {names} shifted significantly against the holdout; watch the"
                    " MQL conversion",
                )
            )
        elif features:
            top = features[0]
            findings.append(
                Finding(
                    "feature_drift",
                    HEALTHY,
                    f"no feature shifted significantly (largest: {top.feature}, PSI {top.psi:.3f})",
                )
            )
    return ContractReport(
        since=None if since is None else since.isoformat(),
        until=now.isoformat(),
        scored=len(ledger),
        groups=tuple(groups),
        score_drift=drift,
        feature_drift=tuple(features),
        findings=tuple(findings),
        level=level,
        below_line=below_line_of(joined, level),
    )
