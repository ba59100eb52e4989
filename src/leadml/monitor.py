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

and sums them up in a verdict, `healthy`, `watch` or `retrain`, with a reason in plain words for
every finding. The rules, with their thresholds (module constants below):

- retrain when
  - PSI > `PSI_SIGNIFICANT` (0.25): the leads coming in are scored very differently from the
    leads the model was evaluated on;
  - recent ROC AUC is more than `AUC_DROP_RETRAIN` (0.05) below the holdout's: the model ranks
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

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import brier_score_loss, roc_auc_score

from leadml.errors import DataError
from leadml.evaluate import check_scores, expected_calibration_error, holdout_metrics

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
#: Recent ROC AUC this far below the holdout's means watch / retrain.
AUC_DROP_WATCH = 0.02
AUC_DROP_RETRAIN = 0.05
#: Fewest leads of each outcome for the recent ROC AUC to be judged.
AUC_MIN_PER_OUTCOME = 10
#: Recent ECE this far above the holdout's (and above chance, see below) means watch.
ECE_RISE_WATCH = 0.05
#: ECE a perfectly calibrated model reaches by chance: this quantile over that many draws.
ECE_CHANCE_QUANTILE = 0.95
ECE_CHANCE_DRAWS = 200
#: A group's realised rate this far (absolute) from the expected one is material: a watch for any
#: group, a retrain for MQLs converting below expectation.
MATERIAL_GAP = 0.05

HEALTHY = "healthy"
WATCH = "watch"
RETRAIN = "retrain"

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
                "auc_drop_retrain": AUC_DROP_RETRAIN,
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
    retrain: list[str] = []
    watch: list[str] = []
    if drift.psi > PSI_SIGNIFICANT:
        retrain.append(
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
        if drop > AUC_DROP_RETRAIN:
            retrain.append(text)
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
            retrain.append(_group_text(check, what))
        else:
            watch.append(_group_text(check, what))
    for check in grades:
        if check.material:
            watch.append(_group_text(check, f"grade {check.group}"))
    if retrain:
        return RETRAIN, tuple(retrain + watch)
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
