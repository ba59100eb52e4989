"""Synthetic leads with a known, documented ground truth, any size, seeded.

The demo data looks like a CRM export of B2B/B2C leads: one row a lead, traits captured when the
lead came in, two columns sales fill in *after* the outcome (a leak), and the outcome `converted`.

How a lead converts (the ground truth)
--------------------------------------
The chance that a lead converts is ``sigmoid(true_log_odds(frame))``; the log-odds is a sum of
effects of the columns the model can see, in plain words:

* **job_level x company_size** (strong, an interaction): Directors, VPs and C-Levels at
  companies of 51 people or more get +3.2 on top of their own effects. On their own, these
  titles (-0.6 to -0.7) and these company sizes (-0.4 to -0.6) slightly *lower* the odds, so
  neither column tells much without the other. Students convert badly (-1.6) whatever the
  company; a missing job level costs -0.4, an "Unknown" or missing company size -0.2.
* **requested_demo** (strong, fading): asking for a demo adds +2.7, fading as the lead goes
  quiet: ``2.7 * exp(-days_since_last_activity / 45)``.
* **time_on_site_sec** (strong, saturating with a hinge): the first minute on the site counts for
  nothing (bounces); after that each extra minute helps less than the one before, close to the
  full +1.8 after about seven minutes: ``1.8 * (1 - exp(-max(t - 60, 0) / 120))``.
* **days_since_last_activity** (moderate, decaying): besides fading a demo request, a lead gone
  quiet loses fast at first and then levels off, down to -0.8:
  ``-0.8 * (1 - exp(-days / 8))``.
* **lead_source** (moderate): Referral +0.6, Partner +0.5, Webinar +0.4, Trade Show +0.3,
  Organic Search +0.1, Direct 0, Email Campaign -0.1, Paid Search -0.2, Social -0.5.
* **email_clicks** (weak, a threshold): nothing for no click, +0.3 for 1-2 clicks, +0.9 for 3
  or more.
* **form_fills** (weak): +0.25 a form, counted up to two forms.
* **industry**, **country** (weak): e.g. Software +0.35, Education -0.5; United States +0.15,
  India -0.3; a placeholder ("Select") or missing answer costs -0.25 / -0.2.
* **No effect** on conversion: ``newsletter_opt_in``, ``campaign`` (beyond its channel),
  ``web_visits``, ``pages_per_visit``, ``email_opens`` and ``created_at``. Some of them are
  correlated with the traits above (through a lead's hidden engagement), so they show a
  marginal association without causing anything.

The effects are defined on the values as they appear in the frame, placeholders included, so
`true_log_odds` is the exact log-odds of every generated row and the best any model can do.
The base log-odds (-2.45) puts the conversion rate near 25 %. The four columns of the first
three items above are `STRONGEST_TRAITS`: shuffling any one of them moves the true log-odds at
least one and a half times, and costs it ROC AUC at least three times, as much as shuffling any
other column. The interaction, the fading, the hinge and the saturation are what a gradient
boosting model finds and a logistic regression on the columns as they are misses.

Post-outcome columns (leaks): ``sales_status`` is the tag sales set after the outcome ("Closed -
Won" almost only on converted leads, "Ringing" and "Not interested" mostly on lost ones);
``lead_quality`` is sales' rating, given mostly to the leads that converted, so that whether it is
there at all gives the outcome away. Neither is used by the mechanism: they are consequences of
the outcome, not causes.

Variants
--------
`VARIANTS` is one table of named variations of the export, each exercising one trap of real
exports; `generate_leads(..., variants=("post-contact",))` applies them in the order given. The
mechanism above never changes, except in ``time-shift``: a variant adds columns the outcome does
not depend on, or changes how values are written.

* ``post-contact``: two columns only known once sales has worked the lead, as in telemarketing and
  CRM exports. ``call_duration_sec`` is the length of the sales call, 0 for the leads sales never
  reached; ``sales_touches`` counts calls and emails by sales, 0 likewise. Almost every converted
  lead was reached (`CONTACTED_WHEN_CONVERTED`) against about half of the others, and calls with
  leads that convert run longer and need more follow-ups. The leakage guard must find both.
* ``day-first``: ``created_at`` is written day first, ``DD-MM-YYYY HH:MM:SS``, as European CRMs
  export it, so that 01-02-2023 (1 February) sits next to 26-02-2023; the leads are the same.
* ``time-shift``: the world changes on `SHIFT_DATE` (about two thirds into the 18 months): a new
  webinar programme makes Webinar leads created from then on convert far better, their log-odds
  raised by `SHIFT_WEBINAR_EFFECT`; their outcome is drawn again from the shifted odds (the
  post-outcome columns keep the old draw, so they are a little less leaky for those leads). A
  model that never learns from the recent leads cannot know it.
* ``landing-page``: ``landing_page_id``, the page the lead signed up on, an opaque id
  (``lp-3f2a9c01``). Each channel (the campaign, or the lead source for leads without one) has
  `PAGES_PER_CHANNEL_QUARTER` pages a quarter, new ones every quarter, a few popular and most
  rare (Zipf); 20,000 leads land on a few thousand pages, most of them seen a handful of times,
  and a time-split holdout largely on pages training never saw. The outcome does not depend on the page
  beyond its channel: a model has nothing to learn from it that the campaign and the source do
  not already say, and much to overfit.

Reproducibility
---------------
Leads form one endless seeded stream: row ``r`` (its id is ``r + 1``) is drawn in block
``r // BLOCK_ROWS`` from a random generator seeded with ``(seed, block)``. Any window of the
stream is therefore the same however it is cut: ``generate_leads(n, seed, start_id=k)`` equals
rows ``k .. k + n - 1`` of ``generate_leads(k + n, seed)``, and `write_demo_leads` gives the same
file whatever its chunk size. A variant's own draws come from generators seeded with
``(seed, block, its salt)``, so the same holds with variants.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import erfinv

from leadml.data import PARQUET_SUFFIXES
from leadml.errors import DataError

TARGET = "converted"
ID_COLUMN = "lead_id"
TIME_COLUMN = "created_at"
LEAKY_COLUMNS: tuple[str, ...] = ("sales_status", "lead_quality")
#: The traits with the largest true effect, strongest first (by the ROC AUC lost when shuffled).
STRONGEST_TRAITS: tuple[str, ...] = (
    "job_level",
    "requested_demo",
    "company_size",
    "time_on_site_sec",
)

MIN_ROWS = 100
MAX_ROWS = 10_000_000
#: Rows drawn from one seeded generator; a property of the stream, not of memory use.
BLOCK_ROWS = 50_000

STRING_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "created_at",
    "lead_source",
    "campaign",
    "country",
    "industry",
    "company_size",
    "job_level",
    "requested_demo",
    "newsletter_opt_in",
    "sales_status",
    "lead_quality",
)
FLOAT_COLUMNS: tuple[str, ...] = ("web_visits", "pages_per_visit")
INT_COLUMNS: tuple[str, ...] = (
    "time_on_site_sec",
    "email_opens",
    "email_clicks",
    "form_fills",
    "days_since_last_activity",
    "converted",
)
COLUMNS: tuple[str, ...] = (
    "lead_id",
    "created_at",
    "lead_source",
    "campaign",
    "country",
    "industry",
    "company_size",
    "job_level",
    "web_visits",
    "time_on_site_sec",
    "pages_per_visit",
    "email_opens",
    "email_clicks",
    "form_fills",
    "requested_demo",
    "days_since_last_activity",
    "newsletter_opt_in",
    "sales_status",
    "lead_quality",
    "converted",
)

# -- the mechanism -----------------------------------------------------------------------------
BASE_LOG_ODDS = -2.45

SOURCE_EFFECT: Mapping[str, float] = {
    "Organic Search": 0.1,
    "Paid Search": -0.2,
    "Direct": 0.0,
    "Referral": 0.6,
    "Webinar": 0.4,
    "Trade Show": 0.3,
    "Social": -0.5,
    "Email Campaign": -0.1,
    "Partner": 0.5,
}
DEMO_EFFECT = 2.7
#: A demo request fades as the lead goes quiet: after this many idle days it keeps 1/e of its effect.
DEMO_FADE_DAYS = 45.0
TIME_ON_SITE_MAX_EFFECT = 1.8
TIME_ON_SITE_HINGE_SEC = 60.0
TIME_ON_SITE_SCALE_SEC = 120.0
INACTIVITY_MAX_EFFECT = -0.8
INACTIVITY_SCALE_DAYS = 8.0
JOB_LEVEL_EFFECT: Mapping[str, float] = {
    "Student": -1.6,
    "Individual Contributor": -0.2,
    "Manager": 0.1,
    "Director": -0.7,
    "VP": -0.7,
    "C-Level": -0.6,
}
JOB_LEVEL_MISSING_EFFECT = -0.4
COMPANY_SIZE_EFFECT: Mapping[str, float] = {
    "1-10": 0.1,
    "11-50": 0.1,
    "51-200": -0.4,
    "201-1000": -0.5,
    "1000+": -0.6,
    "Unknown": -0.2,
}
COMPANY_SIZE_MISSING_EFFECT = -0.2
SENIOR_LEVELS = frozenset({"Director", "VP", "C-Level"})
SIZES_WITH_BUDGET = frozenset({"51-200", "201-1000", "1000+"})
SENIOR_WITH_BUDGET_EFFECT = 3.2
EMAIL_CLICKS_SOME_EFFECT = 0.3
EMAIL_CLICKS_MANY_EFFECT = 0.9
EMAIL_CLICKS_MANY = 3
FORM_FILL_EFFECT = 0.25
FORM_FILLS_COUNTED = 2
INDUSTRY_EFFECT: Mapping[str, float] = {
    "Software": 0.35,
    "Financial Services": 0.25,
    "Healthcare": 0.1,
    "Manufacturing": 0.0,
    "Retail": -0.15,
    "Education": -0.5,
    "Consulting": 0.1,
    "Government": -0.3,
    "Media": -0.1,
    "Other": -0.1,
    "Select": -0.25,
}
INDUSTRY_MISSING_EFFECT = -0.25
COUNTRY_EFFECT: Mapping[str, float] = {
    "United States": 0.15,
    "United Kingdom": 0.1,
    "Germany": 0.1,
    "Canada": 0.1,
    "Australia": 0.05,
    "France": 0.0,
    "India": -0.3,
    "Brazil": -0.2,
    "Singapore": 0.05,
    "Netherlands": 0.05,
    "Spain": -0.05,
    "Select": -0.2,
}
COUNTRY_MISSING_EFFECT = -0.2


def _category_effect(
    frame: pd.DataFrame, column: str, effects: Mapping[str, float], missing_effect: float
) -> np.ndarray:
    """Effect of each value; missing values get `missing_effect`, unseen values none."""
    values = frame[column].astype("string").str.strip()
    mapped = values.map(dict(effects)).astype(float)
    mapped = mapped.where(values.notna(), missing_effect)
    return mapped.fillna(0.0).to_numpy(dtype=float)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The column as floats, missing values as 0 (no effect)."""
    return pd.to_numeric(frame[column], errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _is_one_of(frame: pd.DataFrame, column: str, values: frozenset[str]) -> np.ndarray:
    text = frame[column].astype("string").str.strip()
    return text.isin(values).fillna(False).to_numpy(dtype=bool)


def true_log_odds(frame: pd.DataFrame) -> np.ndarray:
    """The true conversion log-odds of each lead (see the module docstring for the mechanism).

    Works on a generated frame, and on one read back from CSV or Parquet: placeholders and
    missing values have their own documented effects, unseen categories have none.
    """
    demo = _is_one_of(frame, "requested_demo", frozenset({"Yes"}))
    time_on_site = _numbers(frame, "time_on_site_sec")
    engaged_time = np.maximum(time_on_site - TIME_ON_SITE_HINGE_SEC, 0.0)
    idle_days = np.maximum(_numbers(frame, "days_since_last_activity"), 0.0)
    clicks = _numbers(frame, "email_clicks")
    forms = np.clip(_numbers(frame, "form_fills"), 0.0, FORM_FILLS_COUNTED)
    senior_with_budget = _is_one_of(frame, "job_level", SENIOR_LEVELS) & _is_one_of(
        frame, "company_size", SIZES_WITH_BUDGET
    )
    click_effect = np.where(
        clicks >= EMAIL_CLICKS_MANY,
        EMAIL_CLICKS_MANY_EFFECT,
        np.where(clicks >= 1, EMAIL_CLICKS_SOME_EFFECT, 0.0),
    )
    return (
        BASE_LOG_ODDS
        + _category_effect(frame, "lead_source", SOURCE_EFFECT, 0.0)
        + DEMO_EFFECT * demo * np.exp(-idle_days / DEMO_FADE_DAYS)
        + TIME_ON_SITE_MAX_EFFECT * (1.0 - np.exp(-engaged_time / TIME_ON_SITE_SCALE_SEC))
        + INACTIVITY_MAX_EFFECT * (1.0 - np.exp(-idle_days / INACTIVITY_SCALE_DAYS))
        + _category_effect(frame, "job_level", JOB_LEVEL_EFFECT, JOB_LEVEL_MISSING_EFFECT)
        + _category_effect(frame, "company_size", COMPANY_SIZE_EFFECT, COMPANY_SIZE_MISSING_EFFECT)
        + SENIOR_WITH_BUDGET_EFFECT * senior_with_budget
        + click_effect
        + FORM_FILL_EFFECT * forms
        + _category_effect(frame, "industry", INDUSTRY_EFFECT, INDUSTRY_MISSING_EFFECT)
        + _category_effect(frame, "country", COUNTRY_EFFECT, COUNTRY_MISSING_EFFECT)
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- how traits are drawn (not part of the mechanism) ------------------------------------------
#: (value, share); None is a missing answer.
LEAD_SOURCES: tuple[tuple[str, float], ...] = (
    ("Organic Search", 0.20),
    ("Paid Search", 0.18),
    ("Direct", 0.14),
    ("Referral", 0.08),
    ("Webinar", 0.08),
    ("Trade Show", 0.05),
    ("Social", 0.10),
    ("Email Campaign", 0.12),
    ("Partner", 0.05),
)
#: Hidden engagement shift by source: webinar and referral leads come in warmer.
SOURCE_ENGAGEMENT = np.array([0.0, -0.1, 0.0, 0.3, 0.4, 0.2, -0.3, 0.0, 0.2])
#: Each channel's campaigns with their shares; the last column of a row is "no campaign".
CAMPAIGNS: tuple[str, ...] = (
    "Brand Search",
    "Competitor Keywords",
    "Generic Keywords",
    "LinkedIn Sponsored",
    "Facebook Lookalike",
    "Spring Newsletter",
    "Product Launch 2024",
    "Re-engagement Drip",
    "Webinar: Pipeline Analytics",
    "Webinar: AI for Sales",
    "SaaStr Booth",
    "Regional Roadshow",
    "Partner Co-marketing",
    "Customer Referral Program",
    "Holiday Promo",
    "Beta Invite",
)
_CAMPAIGN_SHARES_BY_SOURCE: tuple[Mapping[str, float], ...] = (
    {"Holiday Promo": 0.01},  # Organic Search
    {
        "Brand Search": 0.45,
        "Competitor Keywords": 0.15,
        "Generic Keywords": 0.37,
        "Holiday Promo": 0.03,
    },  # Paid Search
    {"Beta Invite": 0.005},  # Direct
    {"Customer Referral Program": 0.7, "Beta Invite": 0.02},  # Referral
    {"Webinar: Pipeline Analytics": 0.6, "Webinar: AI for Sales": 0.4},  # Webinar
    {"SaaStr Booth": 0.55, "Regional Roadshow": 0.45},  # Trade Show
    {"LinkedIn Sponsored": 0.55, "Facebook Lookalike": 0.42, "Holiday Promo": 0.03},  # Social
    {
        "Spring Newsletter": 0.4,
        "Product Launch 2024": 0.35,
        "Re-engagement Drip": 0.23,
        "Beta Invite": 0.02,
    },  # Email Campaign
    {"Partner Co-marketing": 0.9},  # Partner
)
COUNTRIES: tuple[tuple[str | None, float], ...] = (
    ("United States", 0.33),
    ("United Kingdom", 0.10),
    ("India", 0.11),
    ("Germany", 0.07),
    ("Canada", 0.06),
    ("Australia", 0.04),
    ("France", 0.04),
    ("Brazil", 0.03),
    ("Singapore", 0.025),
    ("Netherlands", 0.025),
    ("Spain", 0.02),
    ("Select", 0.05),
    (None, 0.08),
)
INDUSTRIES: tuple[tuple[str | None, float], ...] = (
    ("Software", 0.20),
    ("Financial Services", 0.11),
    ("Healthcare", 0.09),
    ("Manufacturing", 0.09),
    ("Retail", 0.08),
    ("Education", 0.08),
    ("Consulting", 0.06),
    ("Government", 0.04),
    ("Media", 0.04),
    ("Other", 0.07),
    ("Select", 0.08),
    (None, 0.06),
)
JOB_LEVELS: tuple[tuple[str | None, float], ...] = (
    ("Student", 0.10),
    ("Individual Contributor", 0.30),
    ("Manager", 0.23),
    ("Director", 0.12),
    ("VP", 0.06),
    ("C-Level", 0.08),
    (None, 0.11),
)
#: Students browse a lot; senior people less.
JOB_ENGAGEMENT = np.array([0.3, 0.0, 0.0, -0.1, -0.1, -0.1, -0.2])
COMPANY_SIZES: tuple[str | None, ...] = ("1-10", "11-50", "51-200", "201-1000", "1000+", "Unknown")
#: Company size shares by job level (rows follow JOB_LEVELS): students rarely say, C-Levels are
#: often founders of small companies.
_SIZE_SHARES_BY_JOB = np.array(
    [
        [0.30, 0.08, 0.05, 0.03, 0.04, 0.50],
        [0.14, 0.22, 0.22, 0.18, 0.16, 0.08],
        [0.12, 0.22, 0.24, 0.20, 0.15, 0.07],
        [0.12, 0.20, 0.25, 0.20, 0.17, 0.06],
        [0.14, 0.20, 0.24, 0.20, 0.16, 0.06],
        [0.38, 0.24, 0.16, 0.09, 0.07, 0.06],
        [0.18, 0.18, 0.16, 0.12, 0.10, 0.26],
    ]
)
YES_NO: tuple[str, str] = ("No", "Yes")
NEWSLETTER_SHARE = 0.35
TRACKING_GAP_SHARE = 0.015

#: Sales tags by outcome: (tag, share among lost leads, share among converted leads).
SALES_STATUSES: tuple[tuple[str | None, float, float], ...] = (
    ("Closed - Won", 0.003, 0.55),
    ("Will revert after reading email", 0.04, 0.22),
    ("Busy", 0.05, 0.04),
    ("Interested in other product", 0.10, 0.02),
    ("Ringing", 0.20, 0.02),
    ("Not interested", 0.15, 0.005),
    ("Lost to competitor", 0.07, 0.005),
    ("Switched off", 0.06, 0.005),
    ("Wrong number", 0.04, 0.0),
    ("Already a student", 0.03, 0.0),
    (None, 0.257, 0.135),
)
#: Sales rate the leads they worked, and mostly the ones that went somewhere: the rating is
#: missing for most lost leads, and whether it is there at all gives the outcome away.
LEAD_QUALITIES: tuple[tuple[str | None, float, float], ...] = (
    ("High", 0.03, 0.38),
    ("Medium", 0.10, 0.30),
    ("Low", 0.10, 0.03),
    ("Not Sure", 0.07, 0.12),
    (None, 0.70, 0.17),
)

START_DATE = np.datetime64("2023-01-01", "D")
N_DAYS = 548  # about 18 months
WEEKEND_WEIGHT = 0.35
#: Leads arrive mostly in office hours.
HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 9, 8, 6, 5, 4, 3, 2, 2, 1], dtype=float
)


def _shares(pairs: Sequence[tuple[object, float]]) -> np.ndarray:
    weights = np.array([share for _, share in pairs], dtype=float)
    return weights / weights.sum()


def _code(pairs: Sequence[tuple[object, float]], value: str) -> int:
    return [name for name, _ in pairs].index(value)


def _campaign_shares() -> np.ndarray:
    """Row per source: shares of each campaign, then of "no campaign"."""
    table = np.zeros((len(_CAMPAIGN_SHARES_BY_SOURCE), len(CAMPAIGNS) + 1))
    for row, shares in enumerate(_CAMPAIGN_SHARES_BY_SOURCE):
        for name, share in shares.items():
            table[row, CAMPAIGNS.index(name)] = share
        table[row, -1] = 1.0 - table[row, :-1].sum()
    return table


def _conditional_choice(shares_by_row: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn per row from the share table row of its group (inverse CDF of uniform u)."""
    cumulative = np.cumsum(shares_by_row, axis=1)
    cumulative[:, -1] = 1.0
    return (u[:, None] >= cumulative[group]).sum(axis=1)


def _day_weights() -> np.ndarray:
    days = START_DATE + np.arange(N_DAYS)
    # 1970-01-01 was a Thursday, so (days + 3) % 7 is 0 on Mondays.
    weekday = (days.astype("int64") + 3) % 7
    weights = np.where(weekday >= 5, WEEKEND_WEIGHT, 1.0)
    return weights / weights.sum()


def _draw_block(seed: int, block: int) -> dict[str, np.ndarray]:
    """Every random draw for the BLOCK_ROWS rows of one block, as codes and numbers."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
    m = BLOCK_ROWS
    source = rng.choice(len(LEAD_SOURCES), size=m, p=_shares(LEAD_SOURCES))
    campaign = _conditional_choice(_campaign_shares(), source, rng.random(m))
    country = rng.choice(len(COUNTRIES), size=m, p=_shares(COUNTRIES))
    industry = rng.choice(len(INDUSTRIES), size=m, p=_shares(INDUSTRIES))
    job = rng.choice(len(JOB_LEVELS), size=m, p=_shares(JOB_LEVELS))
    size = _conditional_choice(_SIZE_SHARES_BY_JOB, job, rng.random(m))

    # A hidden engagement drives the behaviour columns, so they are correlated as in real life.
    engagement = rng.standard_normal(m) + SOURCE_ENGAGEMENT[source] + JOB_ENGAGEMENT[job]
    senior = np.isin(job, [_code(JOB_LEVELS, level) for level in SENIOR_LEVELS])
    student = job == _code(JOB_LEVELS, "Student")
    demo = rng.random(m) < _sigmoid(-1.7 + 0.9 * engagement + 0.4 * senior - 1.0 * student)

    no_visit = rng.random(m) < _sigmoid(-2.6 - 0.6 * engagement)
    visits = np.where(no_visit, 0, 1 + rng.poisson(np.exp(0.8 + 0.45 * engagement)))
    time_on_site = np.exp(
        4.6 + 0.55 * engagement + 0.35 * np.log1p(visits) + 0.8 * rng.standard_normal(m)
    )
    time_on_site = np.where(visits > 0, np.round(time_on_site), 0).astype(np.int64)
    pages = 1.0 + rng.gamma(2.0, 0.6 + 0.15 * np.clip(engagement, -2.0, 2.0))
    pages = np.where(visits > 0, np.round(pages, 2), 0.0)
    tracking_gap = rng.random(m) < TRACKING_GAP_SHARE

    email_source = source == _code(LEAD_SOURCES, "Email Campaign")
    opens = rng.poisson(np.exp(0.5 + 0.4 * engagement + 0.5 * email_source))
    clicks = rng.binomial(opens, _sigmoid(-1.3 + 0.6 * engagement))
    webinar = source == _code(LEAD_SOURCES, "Webinar")
    forms = demo + webinar + rng.poisson(np.exp(-1.2 + 0.4 * engagement))
    idle_days = np.exp(2.3 - 0.45 * engagement + 0.9 * rng.standard_normal(m))
    idle_days = np.clip(np.round(idle_days), 0, 400).astype(np.int64)
    newsletter = rng.random(m) < NEWSLETTER_SHARE

    day = rng.choice(N_DAYS, size=m, p=_day_weights())
    hour = rng.choice(24, size=m, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    second_of_hour = rng.integers(0, 3600, size=m)
    return {
        "source": source,
        "campaign": campaign,
        "country": country,
        "industry": industry,
        "job": job,
        "size": size,
        "visits": np.where(tracking_gap, np.nan, visits.astype(float)),
        "time_on_site": time_on_site,
        "pages": np.where(tracking_gap, np.nan, pages),
        "opens": opens.astype(np.int64),
        "clicks": clicks.astype(np.int64),
        "forms": forms.astype(np.int64),
        "demo": demo.astype(np.int64),
        "idle_days": idle_days,
        "newsletter": newsletter.astype(np.int64),
        "seconds": day.astype(np.int64) * 86_400 + hour * 3600 + second_of_hour,
        "u_outcome": rng.random(m),
        "u_status": rng.random(m),
        "u_quality": rng.random(m),
    }


def _draws(n_rows: int, seed: int, start_id: int) -> dict[str, np.ndarray]:
    """The draws of rows start_id .. start_id + n_rows - 1 of the stream."""
    first_block = start_id // BLOCK_ROWS
    last_block = (start_id + n_rows - 1) // BLOCK_ROWS
    blocks = [_draw_block(seed, b) for b in range(first_block, last_block + 1)]
    offset = start_id - first_block * BLOCK_ROWS
    return {
        key: np.concatenate([block[key] for block in blocks])[offset : offset + n_rows]
        for key in blocks[0]
    }


def _labels(values: Sequence[str | None], codes: np.ndarray) -> pd.Series:
    """Text column from codes; None entries become missing values."""
    # Left to pandas' default text dtype ("str" on pandas 3), as a CSV read would give.
    return pd.Series(np.array(values, dtype=object)[codes])


def _lead_ids(start_id: int, n_rows: int) -> pd.Series:
    numbers = np.arange(start_id + 1, start_id + n_rows + 1).astype(str)
    return pd.Series(np.char.add("L", np.char.zfill(numbers, 7)))


def _timestamps(seconds: np.ndarray) -> pd.Series:
    moments = START_DATE.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    return pd.Series(np.datetime_as_string(moments, unit="s"))


def _validate_generation(n_rows: int, seed: int, start_id: int) -> None:
    if int(n_rows) != n_rows or n_rows < 1:
        raise DataError(f"n_rows must be a positive whole number, got {n_rows!r}; pass 1 or more")
    if int(seed) != seed or seed < 0:
        raise DataError(f"seed must be a non-negative whole number, got {seed!r}; pass e.g. 0")
    if int(start_id) != start_id or start_id < 0:
        raise DataError(
            f"start_id must be a non-negative whole number, got {start_id!r}; pass e.g. 0"
        )


def generate_leads(
    n_rows: int, seed: int = 0, start_id: int = 0, variants: Sequence[str] = ()
) -> pd.DataFrame:
    """`n_rows` synthetic leads with ids L{start_id + 1:07d} onwards (see module docstring).

    The result depends only on (n_rows, seed, start_id, variants); it is rows start_id ..
    start_id + n_rows - 1 of the seeded stream, so consecutive calls continue each other exactly.
    `variants` names entries of `VARIANTS`, applied in that order.
    """
    _validate_generation(n_rows, seed, start_id)
    check_variants(variants)
    draws = _draws(int(n_rows), int(seed), int(start_id))
    frame = pd.DataFrame(
        {
            "lead_id": _lead_ids(int(start_id), int(n_rows)),
            "created_at": _timestamps(draws["seconds"]),
            "lead_source": _labels([s for s, _ in LEAD_SOURCES], draws["source"]),
            "campaign": _labels([*CAMPAIGNS, None], draws["campaign"]),
            "country": _labels([c for c, _ in COUNTRIES], draws["country"]),
            "industry": _labels([i for i, _ in INDUSTRIES], draws["industry"]),
            "company_size": _labels(COMPANY_SIZES, draws["size"]),
            "job_level": _labels([j for j, _ in JOB_LEVELS], draws["job"]),
            "web_visits": draws["visits"],
            "time_on_site_sec": draws["time_on_site"],
            "pages_per_visit": draws["pages"],
            "email_opens": draws["opens"],
            "email_clicks": draws["clicks"],
            "form_fills": draws["forms"],
            "requested_demo": _labels(YES_NO, draws["demo"]),
            "days_since_last_activity": draws["idle_days"],
            "newsletter_opt_in": _labels(YES_NO, draws["newsletter"]),
        }
    )
    converted = draws["u_outcome"] < _sigmoid(true_log_odds(frame))
    frame["sales_status"] = _post_outcome(SALES_STATUSES, converted, draws["u_status"])
    frame["lead_quality"] = _post_outcome(LEAD_QUALITIES, converted, draws["u_quality"])
    frame[TARGET] = converted.astype(np.int64)
    for name in variants:
        variant = VARIANTS[name]
        frame = variant.apply(
            frame, _variant_uniforms(int(seed), int(start_id), int(n_rows), variant.salt)
        )
    return frame


def _post_outcome(
    table: Sequence[tuple[str | None, float, float]], converted: np.ndarray, u: np.ndarray
) -> pd.Series:
    """What sales write after the outcome: a tag drawn from the outcome's distribution."""
    shares = np.array([[lost for _, lost, _ in table], [won for _, _, won in table]])
    shares = shares / shares.sum(axis=1, keepdims=True)
    codes = _conditional_choice(shares, converted.astype(np.int64), u)
    return _labels([tag for tag, _, _ in table], codes)


# -- variants ----------------------------------------------------------------------------------
ColumnType = Literal["string", "int", "float"]
#: A variant's extra draws for rows start .. start + n - 1: (n, k) uniforms from (seed, salt).
Uniforms = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class DemoVariant:
    """One named variation of the demo export (see the module docstring)."""

    name: str
    description: str
    #: Columns the variant adds (before the target), with their types in a Parquet file.
    added_columns: tuple[tuple[str, ColumnType], ...]
    #: Columns known only after the outcome or the sales contact: the leakage guard must find them.
    leaky_columns: tuple[str, ...]
    #: Seeds the variant's own random draws, apart from every other variant's.
    salt: int
    #: frame (with the outcome) and a source of uniforms -> the variant's frame.
    apply: Callable[[pd.DataFrame, Uniforms], pd.DataFrame]


#: Share of converted leads sales reached (a lead can hardly buy without a call).
CONTACTED_WHEN_CONVERTED = 0.98
#: Share of the other leads sales reached; hotter leads are called first.
CONTACTED_OTHERWISE = 0.6
#: Median call length in seconds, for leads that did not and did convert.
CALL_MEDIAN_SEC = (150.0, 270.0)
CALL_SPREAD = 0.8
#: Mean follow-ups (geometric) after the first touch, for leads that did not and did convert.
FOLLOW_UPS_MEAN = (1.0, 2.0)


def _post_contact(frame: pd.DataFrame, uniforms: Uniforms) -> pd.DataFrame:
    u = uniforms(3)
    converted = frame[TARGET].to_numpy(dtype=bool)
    contacted = u[:, 0] < np.where(converted, CONTACTED_WHEN_CONVERTED, CONTACTED_OTHERWISE)
    median = np.where(converted, CALL_MEDIAN_SEC[1], CALL_MEDIAN_SEC[0])
    normal = np.sqrt(2.0) * erfinv(2.0 * u[:, 1] - 1.0)
    duration = np.maximum(np.round(median * np.exp(CALL_SPREAD * normal)), 1).astype(np.int64)
    # Geometric follow-ups with the given mean, by the inverse of its distribution function.
    mean = np.where(converted, FOLLOW_UPS_MEAN[1], FOLLOW_UPS_MEAN[0])
    follow_ups = np.floor(np.log1p(-u[:, 2]) / np.log(mean / (1.0 + mean))).astype(np.int64)
    frame = frame.copy()
    frame.insert(len(frame.columns) - 1, "call_duration_sec", np.where(contacted, duration, 0))
    frame.insert(len(frame.columns) - 1, "sales_touches", np.where(contacted, 1 + follow_ups, 0))
    return frame


DAY_FIRST_FORMAT = "%d-%m-%Y %H:%M:%S"


def _day_first(frame: pd.DataFrame, uniforms: Uniforms) -> pd.DataFrame:
    frame = frame.copy()
    frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN]).dt.strftime(DAY_FIRST_FORMAT)
    return frame


#: From this day Webinar leads convert far better (the ``time-shift`` variant).
SHIFT_DATE = np.datetime64("2024-01-01")
SHIFT_WEBINAR_EFFECT = 2.5


def _time_shift(frame: pd.DataFrame, uniforms: Uniforms) -> pd.DataFrame:
    u = uniforms(1)[:, 0]
    moments = _moments(frame[TIME_COLUMN])
    shifted = (moments >= SHIFT_DATE) & (frame["lead_source"] == "Webinar").to_numpy()
    chance = _sigmoid(true_log_odds(frame) + SHIFT_WEBINAR_EFFECT)
    frame = frame.copy()
    outcome = frame[TARGET].to_numpy()
    frame[TARGET] = np.where(shifted, (u < chance).astype(outcome.dtype), outcome)
    return frame


#: Pages per channel (campaign, or lead source without one) and quarter: new pages each quarter.
PAGES_PER_CHANNEL_QUARTER = 100
#: Zipf exponent of a page's share of its channel's leads: a few pages take most of them.
PAGE_POPULARITY_EXPONENT = 1.1


def _moments(created_at: pd.Series) -> np.ndarray:
    """`created_at` as datetimes, whichever variant wrote it (ISO, or day first)."""
    iso = pd.to_datetime(created_at, format="ISO8601", errors="coerce")
    day_first = pd.to_datetime(created_at, format=DAY_FIRST_FORMAT, errors="coerce")
    return iso.fillna(day_first).to_numpy(dtype="datetime64[s]")


def _landing_page(frame: pd.DataFrame, uniforms: Uniforms) -> pd.DataFrame:
    u = uniforms(1)[:, 0]
    channel = frame["campaign"].fillna(frame["lead_source"]).to_numpy(dtype=str)
    _, channel_code = np.unique(channel, return_inverse=True)
    quarter = _moments(frame[TIME_COLUMN]).astype("datetime64[M]").astype(np.int64) // 3
    weights = 1.0 / np.arange(1, PAGES_PER_CHANNEL_QUARTER + 1) ** PAGE_POPULARITY_EXPONENT
    rank = np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right")
    rank = np.minimum(rank, PAGES_PER_CHANNEL_QUARTER - 1)
    page = (channel_code * 10_000 + quarter % 10_000) * PAGES_PER_CHANNEL_QUARTER + rank
    # An opaque id, as CMSs write them: the number scrambled (a bijection mod a prime).
    opaque = (page * 2_654_435_761) % 4_294_967_291
    frame = frame.copy()
    frame.insert(
        len(frame.columns) - 1,
        "landing_page_id",
        pd.Series(np.char.add("lp-", np.char.zfill(np.char.mod("%x", opaque), 8))),
    )
    return frame


VARIANTS: Mapping[str, DemoVariant] = {
    variant.name: variant
    for variant in (
        DemoVariant(
            name="post-contact",
            description="adds a sales call's length (0: never reached) and a sales touches count",
            added_columns=(("call_duration_sec", "int"), ("sales_touches", "int")),
            leaky_columns=("call_duration_sec", "sales_touches"),
            salt=1,
            apply=_post_contact,
        ),
        DemoVariant(
            name="day-first",
            description="writes created_at day first (26-02-2023 10:00:00)",
            added_columns=(),
            leaky_columns=(),
            salt=2,
            apply=_day_first,
        ),
        DemoVariant(
            name="time-shift",
            description="from 2024-01-01 Webinar leads convert far better (a changing world)",
            added_columns=(),
            leaky_columns=(),
            salt=3,
            apply=_time_shift,
        ),
        DemoVariant(
            name="landing-page",
            description="adds the landing page's id: thousands of pages, new ones every quarter",
            added_columns=(("landing_page_id", "string"),),
            leaky_columns=(),
            salt=4,
            apply=_landing_page,
        ),
    )
}


def check_variants(names: Sequence[str]) -> tuple[str, ...]:
    """The variant names, refused with a one-line reason when unknown or repeated."""
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise DataError(f"unknown demo variant {unknown[0]!r}; use one of {', '.join(VARIANTS)}")
    if len(set(names)) != len(names):
        raise DataError("a demo variant is named twice; name each variant once")
    return tuple(names)


def _variant_uniforms(seed: int, start_id: int, n_rows: int, salt: int) -> Uniforms:
    def draw(k: int) -> np.ndarray:
        first_block = start_id // BLOCK_ROWS
        last_block = (start_id + n_rows - 1) // BLOCK_ROWS
        blocks = [
            np.random.default_rng(np.random.SeedSequence([seed, block, salt])).random(
                (BLOCK_ROWS, k)
            )
            for block in range(first_block, last_block + 1)
        ]
        offset = start_id - first_block * BLOCK_ROWS
        return np.concatenate(blocks)[offset : offset + n_rows]

    return draw


def columns_of(variants: Sequence[str] = ()) -> tuple[str, ...]:
    """The columns of a demo export with these variants, in order."""
    added = [name for v in variants for name, _ in VARIANTS[v].added_columns]
    return (*COLUMNS[:-1], *added, COLUMNS[-1])


def leaky_columns_of(variants: Sequence[str] = ()) -> tuple[str, ...]:
    """Every column of the export known only after the outcome or the sales contact."""
    return (*LEAKY_COLUMNS, *(c for v in variants for c in VARIANTS[v].leaky_columns))


# -- writing -----------------------------------------------------------------------------------
CSV_SUFFIXES = frozenset({".csv"})


_ARROW_TYPES: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
}


def _arrow_schema(variants: Sequence[str] = ()) -> pa.Schema:
    added = {name: kind for v in variants for name, kind in VARIANTS[v].added_columns}

    def arrow_type(column: str) -> pa.DataType:
        if column in added:
            return _ARROW_TYPES[added[column]]
        if column in STRING_COLUMNS:
            return pa.string()
        if column in FLOAT_COLUMNS:
            return pa.float64()
        assert column in INT_COLUMNS, column
        return pa.int64()

    return pa.schema([(column, arrow_type(column)) for column in columns_of(variants)])


def _chunks(
    n_rows: int, seed: int, chunk_rows: int, variants: Sequence[str]
) -> Iterator[pd.DataFrame]:
    for start in range(0, n_rows, chunk_rows):
        yield generate_leads(
            min(chunk_rows, n_rows - start), seed=seed, start_id=start, variants=variants
        )


def _validate_writing(path: Path, n_rows: int, chunk_rows: int) -> str:
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | PARQUET_SUFFIXES:
        raise DataError(
            f"cannot write demo leads to {path.name!r}: unknown file type {path.suffix!r}; "
            "use a path ending in .csv, .parquet or .pq"
        )
    if int(n_rows) != n_rows or not MIN_ROWS <= n_rows <= MAX_ROWS:
        raise DataError(
            f"n_rows must be between {MIN_ROWS:,} and {MAX_ROWS:,}, got {n_rows!r}; "
            "pick a size in that range"
        )
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive whole number, got {chunk_rows!r}")
    return "csv" if suffix in CSV_SUFFIXES else "parquet"


def write_demo_leads(
    path: str | Path,
    n_rows: int,
    seed: int = 0,
    chunk_rows: int = 200_000,
    variants: Sequence[str] = (),
) -> Path:
    """Write `n_rows` demo leads to a CSV or Parquet file (by suffix), `chunk_rows` at a time.

    The content does not depend on `chunk_rows`. The file appears complete or not at all: rows
    go to a side file that replaces `path` at the end.
    """
    target = Path(path)
    file_format = _validate_writing(target, n_rows, chunk_rows)
    _validate_generation(n_rows, seed, 0)
    variants = check_variants(variants)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        if file_format == "csv":
            _write_csv(partial, _chunks(int(n_rows), int(seed), int(chunk_rows), variants))
        else:
            _write_parquet(
                partial,
                _chunks(int(n_rows), int(seed), int(chunk_rows), variants),
                _arrow_schema(variants),
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _write_csv(path: Path, chunks: Iterator[pd.DataFrame]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        for index, chunk in enumerate(chunks):
            # "%.10g" writes whole-number floats such as web visits as "3", not "3.0".
            chunk.to_csv(handle, index=False, header=index == 0, float_format="%.10g")


def _write_parquet(path: Path, chunks: Iterator[pd.DataFrame], schema: pa.Schema) -> None:
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in chunks:
            writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
