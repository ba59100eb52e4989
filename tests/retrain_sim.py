"""A simulated quarter of the loop, in memory: leads scored by a champion under an MQL line with
an optional exploration share, sales working only the leads handed to them, outcomes arriving.

The truth is known: each lead's outcome is drawn from the demo's ground truth (optionally with a
channel that stopped converting, or the whole world less likely to convert), whether or not
sales ever call it, so estimates below the line can be checked against what really happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadml import demo
from leadml.threshold import choose_exploration

#: When the simulated ledger starts; the champion is taken to be trained just before.
LEDGER_START = pd.Timestamp("2025-01-01", tz="UTC")


@dataclass(frozen=True)
class Quarter:
    leads: pd.DataFrame  # the leads with their true outcome in `converted`
    ledger: pd.DataFrame
    outcomes: pd.DataFrame
    as_of: pd.Timestamp
    cutoff: float


def new_world(
    n: int,
    seed: int,
    *,
    dead_channel: str | None = None,
    log_odds_shift: float = 0.0,
    days: int = 90,
) -> pd.DataFrame:
    """Demo leads created over `days` from LEDGER_START, outcomes drawn from the (shifted) truth."""
    leads = demo.generate_leads(n, seed=seed, start_id=1_000_000 + seed * n)
    rng = np.random.default_rng(seed)
    created = LEDGER_START + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D")
    leads["created_at"] = created.strftime("%Y-%m-%dT%H:%M:%S")
    log_odds = demo.true_log_odds(leads) + log_odds_shift
    chance = 1.0 / (1.0 + np.exp(-log_odds))
    if dead_channel is not None:
        chance = np.where(leads["lead_source"].to_numpy() == dead_channel, 0.0, chance)
    leads["converted"] = (rng.random(n) < chance).astype(np.int64)
    return leads


def score_quarter(
    leads: pd.DataFrame,
    proba: np.ndarray,
    cutoff: float,
    *,
    exploration_share: float = 0.0,
    seed: int = 0,
    outcome_delay_days: float = 30.0,
) -> Quarter:
    """Ledger rows for `leads` scored with `proba`, and outcomes for the leads sales worked."""
    rng = np.random.default_rng(seed + 17)
    is_mql = proba >= cutoff
    explored, chance = choose_exploration(is_mql, exploration_share, rng.random(len(leads)))
    scored_at = pd.to_datetime(leads["created_at"], utc=True)
    fields = leads.drop(columns=[demo.TARGET, *demo.LEAKY_COLUMNS])
    ledger = pd.DataFrame(
        {
            "id": np.arange(len(leads)),
            "lead_id": leads[demo.ID_COLUMN].to_numpy(),
            "scored_at": scored_at.to_numpy(),
            "features": fields.to_dict(orient="records"),
            "probability": proba,
            "is_mql": is_mql,
            "exploration": explored,
            "selection_probability": chance,
        }
    )
    worked = is_mql | explored
    delay = pd.to_timedelta(rng.uniform(1, 2 * outcome_delay_days, len(leads)), unit="D")
    outcome_at = scored_at + delay
    outcomes = pd.DataFrame(
        {
            "lead_id": leads[demo.ID_COLUMN].to_numpy()[worked],
            "converted": leads[demo.TARGET].to_numpy()[worked].astype(bool),
            "outcome_at": outcome_at.to_numpy()[worked],
            "recorded_at": (outcome_at + pd.Timedelta(hours=6)).to_numpy()[worked],
        }
    )
    as_of = scored_at.max() + pd.Timedelta(days=120)
    return Quarter(leads, ledger, outcomes, as_of, cutoff)
