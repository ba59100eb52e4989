"""Score leads in chunks and rank them, highest probability first.

`leadml score` scores a file with `score_file`; the API's batch route and `score_chunks` rank
with `rank_order`, so both rank the same way: by probability, ties in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadml.data import iter_lead_chunks
from leadml.errors import DataError
from leadml.explain import Explainer
from leadml.policy import ActivePolicy
from leadml.schema import Role
from leadml.scoring import Scorer

#: Leads read and scored at a time by default: a few hundred MB at most for a wide CRM export.
DEFAULT_CHUNK_ROWS = 100_000
#: Decimals of a probability in a ranked file: finer than any calibration can claim, and a
#: one-lead score (the API's, unrounded) still matches it to the fourth decimal.
PROBABILITY_DECIMALS = 4
#: How a ranked file writes the MQL flag: the words the ranked-leads page's download uses.
MQL_WORDS = {True: "yes", False: "no"}


def id_columns(scorer: Scorer, chunk: pd.DataFrame) -> list[str]:
    """The columns that name a lead, kept next to its score though the model reads none of them:
    the schema's id column and every column training found to be an id (X Education's
    `Prospect ID` and `Lead Number`), those the chunk carries, in the chunk's order."""
    schema = scorer.schema
    ids = {spec.name for spec in schema.dropped if spec.role is Role.ID}
    if schema.id_column:
        ids.add(schema.id_column)
    return [str(name) for name in chunk.columns if name in ids]


def rank_order(probabilities: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Positions of the leads, highest probability first; tied leads keep their input order."""
    return np.argsort(-np.asarray(probabilities, dtype=float), kind="stable")


def score_chunk(
    chunk: pd.DataFrame,
    scorer: Scorer,
    policy: ActivePolicy,
    *,
    first_row: int = 0,
    explainer: Explainer | None = None,
    draws: np.random.Generator | None = None,
) -> pd.DataFrame:
    """One chunk scored: the lead's id columns (or its 1-based row number without any),
    probability, score, percentile, is_mql, grade, with an explainer the reasons for and
    against, and under a policy with an exploration share `exploration` (handed to sales from
    below the line) and `selection_probability` (each lead's chance of going to sales).

    The exploration draws come from `draws`, or from the operating system's entropy: nobody can
    predict, and so game, which leads below the line are explored."""
    scored = scorer.score(chunk).drop(columns=[scorer.id_column or ""], errors="ignore")
    ids = id_columns(scorer, chunk)
    for position, name in enumerate(ids):
        scored.insert(position, name, chunk[name].to_numpy())
    if not ids:
        scored.insert(0, "row", np.arange(first_row + 1, first_row + len(chunk) + 1))
    scored["is_mql"], scored["grade"] = policy.decide(scored["probability"].to_numpy())
    if policy.exploration_share > 0:
        scored["exploration"], scored["selection_probability"] = policy.hand_over(
            scored["is_mql"].to_numpy(), draws or np.random.default_rng()
        )
    if explainer is not None:
        found = explainer.explain_frame(chunk.reset_index(drop=True))
        scored["reasons_for"] = ["; ".join(r.text for r in f.for_) for f in found]
        scored["reasons_against"] = ["; ".join(r.text for r in f.against) for f in found]
    return scored


def score_chunks(
    chunks: Iterable[pd.DataFrame],
    scorer: Scorer,
    policy: ActivePolicy,
    *,
    explainer: Explainer | None = None,
    source: str = "the leads",
    on_chunk: Callable[[int], None] | None = None,
    on_scored: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
    draws: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Score chunk after chunk (only the scores are kept) and rank the leads: `rank` first,
    then the scores, then the model and policy version that produced them.

    `on_chunk` is told how many leads are scored so far, after each chunk; `on_scored` gets
    each chunk as read and its scores (the score ledger's hook).
    """
    parts: list[pd.DataFrame] = []
    first_row = 0
    for chunk in chunks:
        try:
            scored = score_chunk(
                chunk, scorer, policy, first_row=first_row, explainer=explainer, draws=draws
            )
        except DataError as error:
            raise DataError(f"{source}, rows from {first_row + 1}: {error}") from None
        if on_scored is not None:
            on_scored(chunk, scored)
        parts.append(scored)
        first_row += len(chunk)
        if on_chunk is not None:
            on_chunk(first_row)
    if not parts:
        raise DataError(f"{source} has no leads to score")
    scored = pd.concat(parts, ignore_index=True)
    ranked = scored.iloc[rank_order(scored["probability"].to_numpy())].reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked["model_version"] = scorer.info.version
    ranked["policy_version"] = policy.version
    return ranked


def for_people(ranked: pd.DataFrame) -> pd.DataFrame:
    """A ranked frame as a person reads it in a file: probabilities to PROBABILITY_DECIMALS,
    the MQL and exploration flags in words (MQL_WORDS)."""
    shown = ranked.copy()
    shown["probability"] = shown["probability"].round(PROBABILITY_DECIMALS)
    for flag in ("is_mql", "exploration"):
        if flag in shown.columns:
            shown[flag] = shown[flag].map(lambda value: MQL_WORDS[bool(value)])
    return shown


def score_file(
    path: Path,
    scorer: Scorer,
    policy: ActivePolicy,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    explainer: Explainer | None = None,
    on_chunk: Callable[[int], None] | None = None,
    on_scored: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """A CSV or Parquet file of leads scored in chunks of `chunk_rows` and ranked."""
    return score_chunks(
        iter_lead_chunks(path, chunk_rows),
        scorer,
        policy,
        explainer=explainer,
        source=str(path),
        on_chunk=on_chunk,
        on_scored=on_scored,
    )
