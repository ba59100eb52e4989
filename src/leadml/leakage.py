"""The leakage guard: find columns filled in after the outcome or during the sales contact.

A CRM export mixes what was known about a lead when it arrived (source, pages visited, the form
answers) with what sales wrote down afterwards (status tags, a quality rating) and what was
measured while sales worked the lead (the length of the call, the number of touches, days to
close, the last activity). Both later kinds predict the outcome because they *record* it or
what led to it; a model trained on them looks brilliant and cannot exist at scoring time, when
no call has happened yet. Nobody tells leadml which columns are which, so the guard looks for the
fingerprints such columns leave, and shows the numbers behind every verdict. No rule depends on
a particular export; every threshold is a named constant below.

Signals measured for every feature column of the schema (on at most `MAX_ROWS` rows, sampled
with the outcome's proportions kept):

* **Single-column power** -- the out-of-fold ROC AUC of the column alone. Each column is cut into
  levels (categories; yes/no; `NUMERIC_BINS` quantile bins for numbers and dates; missing is always
  a level of its own) and each level is scored by its conversion rate, learnt on the other folds
  and shrunk towards the overall rate (`ENCODING_SMOOTHING` pseudo-leads). *Strong power* means
  an AUC >= `STRONG_AUC` and at least `STRONG_MEDIAN_GAP` above the median AUC of all columns.
* **Next best** -- the best AUC among the *other* columns that are neither near-perfect nor
  already excluded (see rounds below); a column is *far ahead* when its AUC exceeds the next
  best by `STANDOUT_GAP` or more.
* **Outcome-like name** -- words such as status, stage, tag, quality, outcome, won, lost, closed,
  disposition, reason, rating, score, sales, or phrases such as "last activity" (`OUTCOME_WORDS`,
  `OUTCOME_PHRASES`; camelCase and snake_case are split into words).
* **Contact-like name** -- words or units of something measured during or after the sales
  contact: duration, call(s), touches, attempts, meeting(s), contacted, talk, callback,
  appointment, proposal, quote, negotiation (`CONTACT_WORDS`) or phrases such as "days to close",
  "time to convert", "talk time", "number of contacts" (`CONTACT_PHRASES`). Never a contact name:
  a consent flag set by the lead ("do not call", `CONSENT_PHRASES`), or what the lead asked for
  ("requested a call back", `REQUEST_WORDS`); "duration" next to a word of the lead's own
  visits (session, page, video, `SELF_SERVE_WORDS`) does not count. Units that honest web
  behaviour also has (seconds, minutes, visits) are deliberately not on the list.
* **Telling missingness** -- the ROC AUC of "is this field filled in" alone, folded so that 0.5 is
  no signal and 1.0 is a perfect one, for columns missing in `MISSING_MIN_SHARE` to
  `1 - MISSING_MIN_SHARE` of the rows. A field filled in for most converted leads and few others is
  typically written by sales after contact.
* **Pure values** (categories only) -- values holding at least `PURE_MIN_SHARE` of the leads whose
  conversion rate is within `PURE_RATE_MARGIN` of 0 % or 100 % *and* whose odds of converting
  differ from the overall odds by a factor of at least `PURE_ODDS_RATIO` (so that "0 %" still
  counts as a surprise when the overall rate is low). "Closed by Horizzon" or "Lost to EINS" only
  exist once the outcome is known.
* **Extreme values** -- the values a field has when nothing happened yet: empty (any column),
  0 and the smallest number (numbers), each answer (yes/no columns). One that holds at least
  `EXTREME_MIN_SHARE` of the leads and converts within `EXTREME_RATE_MARGIN` of 0 % or 100 %,
  with odds at least `EXTREME_ODDS_RATIO` times apart from the overall odds, almost decides the
  outcome: a call length of 0 means sales never reached the lead, and such leads hardly convert.
* **Dominance** -- the column's share of the total split gain of a quick LightGBM model of all the
  columns not yet excluded (100 rounds, 15 leaves). *Dominant* means a share >=
  `DOMINANCE_SHARE`, or >= `DOMINANCE_MIN_SHARE` and at least `DOMINANCE_RATIO` times the share
  of any other column.

Comparisons with the other columns (far ahead, dominant) need at least
`MIN_COLUMNS_TO_COMPARE` feature columns.

A column is **excluded** when any of these holds:

1. ``near_perfect``: single AUC >= `NEAR_PERFECT_AUC`.
2. ``stands_out``: single AUC >= `STANDOUT_AUC` and far ahead of the next best.
3. ``dominates``: dominant and single AUC >= `STANDOUT_AUC`.
4. ``outcome_name``: an outcome-like name and strong power.
5. ``contact_name``: a contact-like name and strong power.
6. ``pure_values``: pure values covering >= `PURE_EXCLUDE_SHARE` of the leads and strong power.
7. ``extreme_value``: an extreme value covering >= `EXTREME_EXCLUDE_SHARE` of the leads and
   strong power.
8. ``missingness``: missingness AUC >= `MISSING_EXCLUDE_AUC`, or >= `MISSING_WARN_AUC` together with
   an outcome-like or contact-like name.
9. ``two_signs``: none of the above, but single AUC >= `MODERATE_AUC` and at least two independent
   signs among: an outcome- or contact-like name (one sign however many words), extreme values
   covering >= `EXTREME_EXCLUDE_SHARE` of the leads, pure values covering >=
   `PURE_EXCLUDE_SHARE`, a missingness AUC >= `MISSING_WARN_AUC`. ("sales_touches" with AUC 0.74:
   its name, and 0 touches for 30 % of the leads of which 2 % converted.)

A column gets a **warning** (it stays a feature; the report and the schema carry the reason) when
it is not excluded but has a contact-like or outcome-like name, any extreme or pure value, is far
ahead of the next best with a single AUC >= `STRONG_AUC` (``far_ahead``), is dominant, has a
missingness AUC >= `MISSING_WARN_AUC`, or a single AUC >= `STANDOUT_AUC` (``very_strong``).

**Rounds.** Leaks hide each other: next to a status tag with AUC 0.93, a call duration with 0.80
is neither far ahead nor dominant. So after judging all columns, those excluded are set aside
(from the next-best comparison and from the quick model) and the rest are judged again, up to
`MAX_ROUNDS` times, until a round excludes nothing new. An excluded column keeps the evidence of
the round that excluded it; ``judged_without`` in its evidence names the columns set aside then.

Honest strong predictors (time on site, a "requested a demo" flag, the lead source) are strong but
not near-perfect, do not stand out by `STANDOUT_GAP` above 0.85, do not have outcome- or
contact-like names and rarely have values that convert at about 0 % or 100 %; each exclusion
rule needs either near-perfect power or two independent signs, so being the strongest column and
dominating the model (one sign seen twice) is only a warning. `--keep COLUMN` overrides both
verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from leadml.errors import DataError
from leadml.schema import (
    ColumnSpec,
    LeadSchema,
    Role,
    blank_placeholders,
    boolean_series,
    datetime_series,
    normalise_placeholders,
    numeric_series,
)

# -- thresholds --------------------------------------------------------------------------------
#: Larger frames are sampled down to this many rows (stratified on the outcome).
MAX_ROWS = 50_000
#: Folds of the out-of-fold single-column scores.
N_FOLDS = 5
#: Numbers and dates are cut into this many quantile bins (plus one for missing).
NUMERIC_BINS = 20
#: Pseudo-leads at the overall rate added to every level when scoring it.
ENCODING_SMOOTHING = 10.0

NEAR_PERFECT_AUC = 0.95
STANDOUT_AUC = 0.85
STANDOUT_GAP = 0.12
STRONG_AUC = 0.75
MODERATE_AUC = 0.65
STRONG_MEDIAN_GAP = 0.15
DOMINANCE_SHARE = 0.50
MIN_COLUMNS_TO_COMPARE = 3

MISSING_MIN_SHARE = 0.05
MISSING_WARN_AUC = 0.75
MISSING_EXCLUDE_AUC = 0.85

PURE_MIN_SHARE = 0.02
PURE_RATE_MARGIN = 0.05
PURE_ODDS_RATIO = 20.0
PURE_EXCLUDE_SHARE = 0.10

EXTREME_MIN_SHARE = 0.05
EXTREME_RATE_MARGIN = 0.05
EXTREME_ODDS_RATIO = 10.0
EXTREME_EXCLUDE_SHARE = 0.10

DOMINANCE_MIN_SHARE = 0.30
DOMINANCE_RATIO = 3.0
#: Rounds of judging, each without the columns excluded so far (leaks hide each other).
MAX_ROUNDS = 4

#: Words in a column name that suggest sales wrote it after contact with the lead.
OUTCOME_WORDS = frozenset(
    {
        "status",
        "stage",
        "stages",
        "tag",
        "tags",
        "quality",
        "outcome",
        "outcomes",
        "result",
        "results",
        "won",
        "win",
        "lost",
        "loss",
        "closed",
        "close",
        "disposition",
        "reason",
        "reasons",
        "rating",
        "rated",
        "score",
        "scored",
        "grade",
        "qualified",
        "qualification",
        "disqualified",
        "converted",
        "conversion",
        "deal",
        "opportunity",
        "churn",
        "churned",
        "sales",
        "feedback",
        "remark",
        "remarks",
    }
)
#: Words in a column name that suggest it is measured during or after the sales contact.
CONTACT_WORDS = frozenset(
    {
        "duration",
        "call",
        "calls",
        "called",
        "calling",
        "caller",
        "dial",
        "dials",
        "dialed",
        "dialled",
        "touch",
        "touches",
        "touched",
        "touchpoint",
        "touchpoints",
        "attempt",
        "attempts",
        "meeting",
        "meetings",
        "contacted",
        "contacts",
        "talk",
        "talked",
        "conversation",
        "conversations",
        "callback",
        "callbacks",
        "voicemail",
        "voicemails",
        "appointment",
        "appointments",
        "proposal",
        "proposals",
        "negotiation",
        "followup",
        "followups",
        "sdr",
        "bdr",
    }
)
#: Word sequences with the same meaning.
CONTACT_PHRASES = (
    "days to close",
    "time to close",
    "days to convert",
    "time to convert",
    "days since contact",
    "days since last contact",
    "response time",
    "first response",
    "talk time",
    "handle time",
    "sales activity",
    "sales activities",
    "number of contacts",
)
#: A consent flag set by the lead (do not call) is known from the start: never a contact name.
CONSENT_PHRASES = ("do not call", "do not contact", "dont call", "no call", "opt out", "dnc")
#: What the lead asked for on a form ("requested a call back") is known from the start, like a
#: demo request: a name with one of these words is never a contact name.
REQUEST_WORDS = frozenset({"request", "requested", "requests", "asked"})
#: A length measured on the lead's own visits (session duration, video duration) is honest: in a
#: name with one of these words, "duration" does not point to the sales contact.
SELF_SERVE_WORDS = frozenset(
    {
        "site",
        "website",
        "web",
        "page",
        "pages",
        "session",
        "sessions",
        "visit",
        "visits",
        "online",
        "app",
        "video",
        "videos",
        "webinar",
        "watch",
        "watched",
    }
)
#: Contact words that are units rather than acts, dropped next to a `SELF_SERVE_WORDS` word.
CONTACT_UNITS = frozenset({"duration"})
#: Word sequences with the same meaning as `OUTCOME_WORDS` (matched on whole words).
OUTCOME_PHRASES = (
    "last activity",
    "last notable activity",
    "last contact",
    "last contacted",
    "last call",
    "follow up",
    "next step",
    "next steps",
)

MISSING_LABEL = "(missing)"
Verdict = Literal["exclude", "warn"]


# -- public types ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeakageFinding:
    """A column that looks filled in after the outcome, and why."""

    column: str
    verdict: Verdict
    #: One plain sentence a marketer can read.
    reason: str
    #: The numbers behind `reason`.
    evidence: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeakageReport:
    """What the leakage guard found in one training frame."""

    findings: tuple[LeakageFinding, ...]
    #: Out-of-fold ROC AUC of every feature column alone.
    single_column_auc: dict[str, float]
    #: Rows the signals were measured on (after sampling).
    rows_examined: int = 0

    def excluded(self) -> list[str]:
        return [f.column for f in self.findings if f.verdict == "exclude"]

    def warnings(self) -> list[str]:
        return [f.column for f in self.findings if f.verdict == "warn"]

    def finding(self, column: str) -> LeakageFinding | None:
        for found in self.findings:
            if found.column == column:
                return found
        return None

    def apply(self, schema: LeadSchema, keep: Sequence[str] = ()) -> LeadSchema:
        """The schema with excluded columns moved to `Role.LEAKAGE` and warnings added.

        A column named in `keep` stays a feature even when excluded; the schema then carries a
        warning saying the user kept it. Warned columns stay features too; their reason and
        evidence are written on the column and repeated in the schema's warnings.
        """
        known = {c.name for c in schema.columns}
        unknown = [name for name in keep if name not in known]
        if unknown:
            raise DataError(
                f"cannot keep {', '.join(map(repr, unknown))}: not a column of the data; "
                "check the spelling of the column names given to keep"
            )
        changes: dict[str, tuple[Role, str, Mapping[str, Any]]] = {}
        warnings: list[str] = []
        for found in self.findings:
            if found.column not in known:
                continue
            spec = schema.column(found.column)
            if found.verdict == "exclude" and found.column not in keep:
                changes[found.column] = (Role.LEAKAGE, found.reason, found.evidence)
            elif found.verdict == "exclude":
                changes[found.column] = (
                    spec.role,
                    f"kept by the user: {found.reason}",
                    found.evidence,
                )
                warnings.append(
                    f"'{found.column}' was kept as a feature at your request although it looks "
                    f"filled in after the outcome: {found.reason}"
                )
            else:
                changes[found.column] = (spec.role, found.reason, found.evidence)
                warnings.append(
                    f"'{found.column}' may be filled in after the outcome: {found.reason}"
                )
        return schema.with_roles(changes).with_warnings(warnings)


# -- measuring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Levels:
    """A column cut into levels: code 0 is missing, `labels[i]` names code i.

    `extremes` are the values a field takes when nobody filled it in or nothing happened yet
    (missing, 0, the smallest number; each yes/no answer), as (label, mask of rows).
    """

    codes: np.ndarray
    labels: tuple[str, ...]
    extremes: tuple[tuple[str, np.ndarray], ...] = ()


@dataclass(frozen=True)
class _Signals:
    column: str
    role: Role
    auc: float
    missing_share: float
    missing_auc: float
    filled_when_converted: float
    filled_when_not: float
    pure_share: float
    pure_values: tuple[tuple[str, float, float], ...]
    extreme_share: float
    extreme_values: tuple[tuple[str, float, float], ...]
    name_match: str
    contact_match: str
    gain_share: float | None
    #: The largest gain share of any other column.
    other_gain_share: float | None


@dataclass(frozen=True)
class _Context:
    median_auc: float
    next_best: dict[str, tuple[str, float]]
    n_columns: int


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _quantile_levels(values: np.ndarray) -> _Levels:
    present = np.isfinite(values)
    codes = np.zeros(len(values), dtype=np.int64)
    if not present.any():
        return _Levels(codes, (MISSING_LABEL,), ((MISSING_LABEL, ~present),))
    inner = np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(values[present], inner))
    codes[present] = np.searchsorted(edges, values[present], side="right") + 1
    labels = (MISSING_LABEL, *(f"bin {i}" for i in range(1, len(edges) + 2)))
    smallest = float(values[present].min())
    extremes = [(MISSING_LABEL, ~present)]
    if smallest != 0 and (values == 0).any():
        extremes.append(("0", values == 0))
    extremes.append((_number_text(smallest), values == smallest))
    return _Levels(codes, labels, tuple(extremes))


def _column_levels(raw: pd.Series, spec: ColumnSpec, placeholders: frozenset[str]) -> _Levels:
    series = blank_placeholders(raw, placeholders)
    role = spec.role
    if role is Role.CATEGORICAL:
        codes, uniques = pd.factorize(series.astype("string"), use_na_sentinel=True)
        codes = np.asarray(codes, dtype=np.int64) + 1
        return _Levels(
            codes, (MISSING_LABEL, *(str(u) for u in uniques)), ((MISSING_LABEL, codes == 0),)
        )
    if role is Role.BOOLEAN:
        flags = boolean_series(series).to_numpy(dtype=float)
        codes = np.where(np.isnan(flags), 0, np.nan_to_num(flags) + 1).astype(np.int64)
        labels = (MISSING_LABEL, "no", "yes")
        return _Levels(codes, labels, tuple((label, codes == i) for i, label in enumerate(labels)))
    if role is Role.DATETIME:
        stamps = datetime_series(series, spec.date_reading)
        seconds = (stamps - pd.Timestamp("1970-01-01")).dt.total_seconds()
        levels = _quantile_levels(seconds.to_numpy(dtype=float, na_value=np.nan))
        return _Levels(levels.codes, levels.labels, levels.extremes[:1])
    return _quantile_levels(numeric_series(series).to_numpy(dtype=float, na_value=np.nan))


def _out_of_fold_scores(
    codes: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    n_levels = int(codes.max()) + 1
    scores = np.empty(len(y), dtype=float)
    for train, test in folds:
        counts = np.bincount(codes[train], minlength=n_levels)
        positives = np.bincount(codes[train], weights=y[train], minlength=n_levels)
        prior = float(y[train].mean())
        rates = (positives + ENCODING_SMOOTHING * prior) / (counts + ENCODING_SMOOTHING)
        scores[test] = rates[codes[test]]
    return scores


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    if np.all(scores == scores[0]):
        return 0.5
    return float(roc_auc_score(y, scores))


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()
    return re.findall(r"[a-z]+", spaced)


def _matches(words: list[str], vocabulary: frozenset[str], phrases: Sequence[str]) -> str:
    joined = f" {' '.join(words)} "
    found = [phrase for phrase in phrases if f" {phrase} " in joined]
    found += [word for word in words if word in vocabulary and word not in found]
    return ", ".join(dict.fromkeys(found))


def _name_match(name: str) -> str:
    """The outcome-like words and phrases in a column name, comma separated, or ''."""
    return _matches(_name_words(name), OUTCOME_WORDS, OUTCOME_PHRASES)


def _contact_match(name: str) -> str:
    """The words and phrases of a column name that suggest the sales contact, or ''."""
    words = _name_words(name)
    joined = f" {' '.join(words)} "
    if any(f" {phrase} " in joined for phrase in CONSENT_PHRASES) or REQUEST_WORDS & set(words):
        return ""
    vocabulary = CONTACT_WORDS
    if SELF_SERVE_WORDS & set(words):
        vocabulary = CONTACT_WORDS - CONTACT_UNITS
    return _matches(words, vocabulary, CONTACT_PHRASES)


def _pure_values(levels: _Levels, y: np.ndarray) -> tuple[tuple[str, float, float], ...]:
    """(value, share of leads, conversion rate) of values that convert at about 0 % or 100 %."""
    n_rows = len(y)
    counts = np.bincount(levels.codes, minlength=len(levels.labels))
    positives = np.bincount(levels.codes, weights=y, minlength=len(levels.labels))
    base = float(y.mean())
    base_odds = base / (1 - base)
    found = []
    for code in range(1, len(levels.labels)):
        count = counts[code]
        if count < PURE_MIN_SHARE * n_rows:
            continue
        rate = positives[code] / count
        odds = (positives[code] + 0.5) / (count - positives[code] + 0.5)
        ratio = odds / base_odds
        low = rate <= PURE_RATE_MARGIN and ratio <= 1 / PURE_ODDS_RATIO
        high = rate >= 1 - PURE_RATE_MARGIN and ratio >= PURE_ODDS_RATIO
        if low or high:
            found.append((levels.labels[code], float(count / n_rows), float(rate)))
    return tuple(sorted(found, key=lambda item: -item[1]))


def _extreme_values(levels: _Levels, y: np.ndarray) -> tuple[tuple[str, float, float], ...]:
    """(value, share of leads, conversion rate) of extreme values that decide the outcome."""
    base = float(y.mean())
    base_odds = base / (1 - base)
    found = []
    for label, mask in levels.extremes:
        count = int(mask.sum())
        if count < EXTREME_MIN_SHARE * len(y) or count == len(y):
            continue
        positives = float(y[mask].sum())
        rate = positives / count
        ratio = ((positives + 0.5) / (count - positives + 0.5)) / base_odds
        low = rate <= EXTREME_RATE_MARGIN and ratio <= 1 / EXTREME_ODDS_RATIO
        high = rate >= 1 - EXTREME_RATE_MARGIN and ratio >= EXTREME_ODDS_RATIO
        if low or high:
            found.append((label, count / len(y), rate))
    return tuple(sorted(found, key=lambda item: -item[1]))


def _gain_shares(
    levels: Mapping[str, _Levels], roles: Mapping[str, Role], y: np.ndarray, seed: int
) -> dict[str, float]:
    names = list(levels)
    matrix = np.column_stack([levels[name].codes for name in names]).astype(float)
    categorical = [i for i, name in enumerate(names) if roles[name] is Role.CATEGORICAL]
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_child_samples": 20,
        "max_bin": 63,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(matrix, label=y, categorical_feature=categorical, params={"verbosity": -1})
    booster = lgb.train(params, data, num_boost_round=100)
    gain = booster.feature_importance(importance_type="gain").astype(float)
    total = float(gain.sum())
    return {
        name: (float(g / total) if total > 0 else 0.0) for name, g in zip(names, gain, strict=True)
    }


def _column_signals(
    spec: ColumnSpec,
    levels: _Levels,
    y: np.ndarray,
    auc: float,
    gains: Mapping[str, float],
) -> _Signals:
    missing = levels.codes == 0
    missing_share = float(missing.mean())
    missing_auc = 0.5
    filled_converted = filled_not = 1.0 - missing_share
    if MISSING_MIN_SHARE <= missing_share <= 1 - MISSING_MIN_SHARE:
        raw_auc = _auc(y, (~missing).astype(float))
        missing_auc = max(raw_auc, 1 - raw_auc)
        filled_converted = float((~missing[y == 1]).mean())
        filled_not = float((~missing[y == 0]).mean())
    pure = _pure_values(levels, y) if spec.role is Role.CATEGORICAL else ()
    extreme = _extreme_values(levels, y)
    others = [share for name, share in gains.items() if name != spec.name]
    return _Signals(
        column=spec.name,
        role=spec.role,
        auc=auc,
        missing_share=missing_share,
        missing_auc=missing_auc,
        filled_when_converted=filled_converted,
        filled_when_not=filled_not,
        pure_share=float(sum(share for _, share, _ in pure)),
        pure_values=pure,
        # The masks may overlap (missing and the smallest value are apart, 0 within it).
        extreme_share=float(max((share for _, share, _ in extreme), default=0.0)),
        extreme_values=extreme,
        name_match=_name_match(spec.name),
        contact_match=_contact_match(spec.name),
        gain_share=gains.get(spec.name),
        other_gain_share=max(others) if others and spec.name in gains else None,
    )


# -- judging -----------------------------------------------------------------------------------
def _pct(value: float) -> str:
    return f"{value:.0%}"


def _pure_text(signals: _Signals) -> str:
    examples = " and ".join(
        f"'{value}' ({_pct(share)} of leads, {_pct(rate)} converted)"
        for value, share, rate in signals.pure_values[:2]
    )
    more = len(signals.pure_values) - 2
    tail = f" and {more} more" if more > 0 else ""
    return (
        f"values such as {examples}{tail} convert at about 0% or 100% "
        f"({_pct(signals.pure_share)} of leads in all)"
    )


def _extreme_text(signals: _Signals) -> str:
    examples = " and ".join(
        f"{'empty' if value == MISSING_LABEL else repr(value)} ({_pct(share)} of leads, "
        f"{_pct(rate)} converted)"
        for value, share, rate in signals.extreme_values[:2]
    )
    return f"an extreme value almost decides the outcome: {examples}"


def _missing_text(signals: _Signals) -> str:
    return (
        f"whether it is filled in alone predicts the outcome (filled in for "
        f"{_pct(signals.filled_when_converted)} of converted leads vs "
        f"{_pct(signals.filled_when_not)} of the others, ROC AUC {signals.missing_auc:.2f})"
    )


def _is_dominant(signals: _Signals) -> bool:
    share = signals.gain_share
    if share is None:
        return False
    if share >= DOMINANCE_SHARE:
        return True
    other = signals.other_gain_share or 0.0
    return share >= DOMINANCE_MIN_SHARE and share >= DOMINANCE_RATIO * other


def _dominance_text(signals: _Signals) -> str:
    text = (
        f"it carries {_pct(signals.gain_share or 0.0)} of what a quick model of all columns learns"
    )
    if signals.other_gain_share is not None:
        text += f" (the next column {_pct(signals.other_gain_share)})"
    return text


#: Exclusion rules that need strong single-column power besides their own sign.
NEEDS_POWER = frozenset({"pure_values", "extreme_value", "outcome_name", "contact_name"})


def _independent_signs(signals: _Signals) -> list[str]:
    """The signs of a late column that do not merely say "it predicts well"."""
    signs = []
    if signals.contact_match or signals.name_match:
        words = ", ".join(m for m in (signals.contact_match, signals.name_match) if m)
        signs.append(f"its name sounds like sales' work ('{words}')")
    if signals.extreme_share >= EXTREME_EXCLUDE_SHARE:
        signs.append(_extreme_text(signals))
    if signals.pure_share >= PURE_EXCLUDE_SHARE:
        signs.append(_pure_text(signals))
    if signals.missing_auc >= MISSING_WARN_AUC:
        signs.append(_missing_text(signals))
    return signs


def _judge(signals: _Signals, context: _Context) -> LeakageFinding | None:
    auc = signals.auc
    other_name, other_auc = context.next_best[signals.column]
    comparable = context.n_columns >= MIN_COLUMNS_TO_COMPARE
    strong = auc >= STRONG_AUC and auc - context.median_auc >= STRONG_MEDIAN_GAP
    dominant = comparable and _is_dominant(signals)
    far_ahead = comparable and other_name != "" and auc - other_auc >= STANDOUT_GAP
    versus = (
        f"ROC AUC {auc:.2f} vs {other_auc:.2f} for the next best column, '{other_name}'"
        if other_name
        else f"ROC AUC {auc:.2f}"
    )
    power = (
        f"it alone predicts the outcome strongly (ROC AUC {auc:.2f} vs a median of "
        f"{context.median_auc:.2f})"
    )

    exclude: list[tuple[str, str]] = []
    if auc >= NEAR_PERFECT_AUC:
        exclude.append(("near_perfect", f"alone predicts the outcome almost perfectly ({versus})"))
    elif far_ahead and auc >= STANDOUT_AUC:
        exclude.append(
            (
                "stands_out",
                f"alone predicts the outcome far better than any other column ({versus})",
            )
        )
    if signals.pure_share >= PURE_EXCLUDE_SHARE and strong:
        exclude.append(("pure_values", _pure_text(signals)))
    if signals.extreme_share >= EXTREME_EXCLUDE_SHARE and strong:
        exclude.append(("extreme_value", _extreme_text(signals)))
    if signals.name_match and strong:
        exclude.append(
            (
                "outcome_name",
                f"its name sounds like a sales outcome ('{signals.name_match}')",
            )
        )
    if signals.contact_match and strong:
        exclude.append(
            (
                "contact_name",
                "its name sounds measured during or after the sales contact "
                f"('{signals.contact_match}')",
            )
        )
    if signals.missing_auc >= MISSING_EXCLUDE_AUC or (
        signals.missing_auc >= MISSING_WARN_AUC and (signals.name_match or signals.contact_match)
    ):
        exclude.append(("missingness", _missing_text(signals)))
    if dominant and auc >= STANDOUT_AUC:
        exclude.append(
            ("dominates", f"{_dominance_text(signals)} and alone reaches ROC AUC {auc:.2f}")
        )
    signs = _independent_signs(signals)
    if not exclude and len(signs) >= 2 and auc >= MODERATE_AUC:
        exclude.append(
            (
                "two_signs",
                f"{'; '.join(signs)}; and it alone predicts the outcome (ROC AUC {auc:.2f})",
            )
        )

    warn: list[tuple[str, str]] = []
    if signals.contact_match:
        warn.append(
            (
                "contact_name",
                "its name sounds measured during or after the sales contact "
                f"('{signals.contact_match}')",
            )
        )
    if signals.name_match:
        warn.append(
            (
                "outcome_name",
                f"its name sounds like something sales fills in ('{signals.name_match}')",
            )
        )
    if signals.extreme_values:
        warn.append(("extreme_value", _extreme_text(signals)))
    if far_ahead and auc >= STRONG_AUC:
        warn.append(
            ("far_ahead", f"alone predicts the outcome far better than any other column ({versus})")
        )
    if dominant:
        warn.append(("dominates", _dominance_text(signals)))
    if signals.missing_auc >= MISSING_WARN_AUC:
        warn.append(("missingness", _missing_text(signals)))
    if signals.pure_values:
        warn.append(("pure_values", _pure_text(signals)))
    if auc >= STANDOUT_AUC:
        warn.append(("very_strong", f"alone predicts the outcome very strongly ({versus})"))

    if exclude:
        verdict: Verdict = "exclude"
        fired = exclude
        reason = "; ".join(text for _, text in exclude[:2])
        if any(rule in NEEDS_POWER for rule, _ in exclude[:2]):
            reason += f"; and {power}"
    elif warn:
        verdict = "warn"
        fired = warn
        reason = (
            "; ".join(text for _, text in warn[:2])
            + "; check it is known before sales contacts the lead"
        )
    else:
        return None
    return LeakageFinding(
        column=signals.column,
        verdict=verdict,
        reason=reason,
        evidence=_evidence(signals, context, [rule for rule, _ in fired]),
    )


def _evidence(signals: _Signals, context: _Context, rules: list[str]) -> dict[str, float | str]:
    other_name, other_auc = context.next_best[signals.column]
    evidence: dict[str, float | str] = {
        "rules": ", ".join(rules),
        "single_column_auc": round(signals.auc, 4),
        "median_auc": round(context.median_auc, 4),
        "missing_share": round(signals.missing_share, 4),
    }
    if other_name:
        evidence["next_best_column"] = other_name
        evidence["next_best_auc"] = round(other_auc, 4)
    if signals.missing_auc > 0.5:
        evidence["missingness_auc"] = round(signals.missing_auc, 4)
        evidence["filled_in_converted"] = round(signals.filled_when_converted, 4)
        evidence["filled_in_not_converted"] = round(signals.filled_when_not, 4)
    if signals.pure_values:
        evidence["pure_value_share"] = round(signals.pure_share, 4)
        evidence["pure_values"] = "; ".join(
            f"{value}: {share:.1%} of leads, {rate:.1%} converted"
            for value, share, rate in signals.pure_values
        )
    if signals.extreme_values:
        evidence["extreme_value_share"] = round(signals.extreme_share, 4)
        evidence["extreme_values"] = "; ".join(
            f"{value}: {share:.1%} of leads, {rate:.1%} converted"
            for value, share, rate in signals.extreme_values
        )
    if signals.name_match:
        evidence["name_match"] = signals.name_match
    if signals.contact_match:
        evidence["contact_name_match"] = signals.contact_match
    if signals.gain_share is not None:
        evidence["gain_share"] = round(signals.gain_share, 4)
    if signals.other_gain_share is not None:
        evidence["next_gain_share"] = round(signals.other_gain_share, 4)
    return evidence


def _next_best(aucs: Mapping[str, float], left_out: set[str]) -> dict[str, tuple[str, float]]:
    """For each column, the best other column that is neither near-perfect nor left out."""
    ranked = sorted(
        (
            (auc, name)
            for name, auc in aucs.items()
            if auc < NEAR_PERFECT_AUC and name not in left_out
        ),
        reverse=True,
    )
    result = {}
    for name in aucs:
        others = [(auc, other) for auc, other in ranked if other != name]
        result[name] = (others[0][1], others[0][0]) if others else ("", 0.5)
    return result


# -- entry point -------------------------------------------------------------------------------
def _outcome_array(y: np.ndarray | pd.Series, n_rows: int) -> np.ndarray:
    try:
        values = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as error:
        raise DataError(
            "the outcome must be 0 or 1 in every row; map the target to 0/1 first"
        ) from error
    if values.ndim != 1 or len(values) != n_rows:
        raise DataError(
            f"the outcome has {values.size} values for {n_rows} rows; "
            "pass one 0/1 outcome per row of the frame"
        )
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError("the outcome must be 0 or 1 in every row; map the target to 0/1 first")
    if min(values.sum(), len(values) - values.sum()) < 2:
        raise DataError(
            "the outcome has fewer than 2 leads of one class, so nothing can be learnt from it; "
            "train on leads that include both converted and not converted ones"
        )
    return values


def _sample_rows(y: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    positions = np.arange(len(y))
    if len(y) <= max_rows:
        return positions
    kept, _ = train_test_split(positions, train_size=max_rows, stratify=y, random_state=seed)
    return np.sort(kept)


def find_leakage(
    frame: pd.DataFrame,
    y: np.ndarray | pd.Series,
    schema: LeadSchema,
    *,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> LeakageReport:
    """Find feature columns of `schema` that were probably filled in after the outcome.

    `frame` is the raw training frame (placeholders such as "Select" still in it) and `y` its
    0/1 outcome. The rules are described in the module docstring.
    """
    outcome = _outcome_array(y, len(frame))
    rows = _sample_rows(outcome, max_rows, seed)
    outcome = outcome[rows]
    minority = int(min(outcome.sum(), len(outcome) - outcome.sum()))
    if minority < 2:
        raise DataError(
            f"only {minority} lead(s) of one outcome among the {len(rows)} rows examined; "
            "pass a larger max_rows or train on more leads of each outcome"
        )
    features = [spec for spec in schema.features if spec.name in frame.columns]
    if not features:
        return LeakageReport(findings=(), single_column_auc={}, rows_examined=len(rows))

    placeholders = normalise_placeholders(schema.placeholders)
    sample = frame.iloc[rows]
    levels = {spec.name: _column_levels(sample[spec.name], spec, placeholders) for spec in features}
    splitter = StratifiedKFold(n_splits=min(N_FOLDS, minority), shuffle=True, random_state=seed)
    folds = list(splitter.split(np.zeros(len(outcome)), outcome))
    aucs = {
        name: round(_auc(outcome, _out_of_fold_scores(level.codes, outcome, folds)), 4)
        for name, level in levels.items()
    }

    roles = {spec.name: spec.role for spec in features}
    median_auc = float(np.median(list(aucs.values())))
    # Leaks hide each other (a status column makes a call duration look ordinary), so the
    # columns are judged again without the ones excluded so far, until no new one is excluded.
    left_out = {name for name, auc in aucs.items() if auc >= NEAR_PERFECT_AUC}
    first_exclusion: dict[str, LeakageFinding] = {}
    findings: dict[str, LeakageFinding] = {}
    for _ in range(MAX_ROUNDS):
        gains: dict[str, float] = {}
        modelled = {name: level for name, level in levels.items() if name not in left_out}
        if len(features) >= MIN_COLUMNS_TO_COMPARE and len(modelled) >= 2:
            gains = _gain_shares(modelled, roles, outcome, seed)
        context = _Context(
            median_auc=median_auc,
            next_best=_next_best(aucs, left_out),
            n_columns=len(features),
        )
        findings = {}
        for spec in features:
            signals = _column_signals(spec, levels[spec.name], outcome, aucs[spec.name], gains)
            found = _judge(signals, context)
            if found is not None and first_exclusion and found.verdict == "exclude":
                earlier = ", ".join(sorted(first_exclusion))
                found = replace(found, evidence={**found.evidence, "judged_without": earlier})
            if found is not None:
                findings[spec.name] = found
        newly = {
            name
            for name, found in findings.items()
            if found.verdict == "exclude" and name not in first_exclusion
        }
        if not newly:
            break
        for name in newly:
            first_exclusion[name] = findings[name]
        left_out |= newly
    # An excluded column keeps the evidence of the round that excluded it.
    findings.update(first_exclusion)
    ordered = sorted(
        findings.values(), key=lambda f: (f.verdict != "exclude", -aucs[f.column], f.column)
    )
    return LeakageReport(findings=tuple(ordered), single_column_auc=aucs, rows_examined=len(rows))
