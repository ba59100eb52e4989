"""A model ready to serve: loaded, checked, compiled, with its request model, reasons and policy.

`load_serving_model` is the only way a model gets into the API, at start and on every reload, and
it refuses a model that cannot be trusted: a bundle whose signature does not verify with the
signing key (tampered, foreign or unsigned; checked before anything in it is opened), a pipeline that no longer reproduces the probabilities it gave its own holdout leads
at training time, or one that fails to score the example lead end to end (request model ->
probability -> policy -> reasons). The checks run in a worker thread while the old model serves.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from api.lead_model import LeadModel, build_lead_model
from api.policies import PolicyCache, ServingPolicyBook
from leadml.errors import ModelError
from leadml.explain import CompiledExplainer, Explainer
from leadml.fastpath import CompiledPredictor, Predictor, build_predictor, probe_leads
from leadml.policy import ActivePolicy, Holdout
from leadml.registry import alias_of, bundle_fingerprint, open_bundle
from leadml.schema import Role
from leadml.scoring import Scorer, percentile_of, to_score
from leadml.settings import Settings
from leadml.store import StoreError
from leadml.threshold import GradeBands

log = logging.getLogger("leadml.api")

#: Holdout leads whose stored training-time probabilities the loaded pipeline must reproduce.
SMOKE_ROWS = 200
#: Largest difference to the training-time probabilities (same libraries: exactly 0).
REPRODUCE_TOLERANCE = 1e-6
#: Random leads (unknown categories, blanks, placeholders) the fast path is checked on.
PROBE_ROWS = 200
#: Reasons given for and against each lead.
TOP_REASONS = 3


@dataclass(frozen=True, eq=False)
class ServingModel:
    """Everything a request needs from one loaded model; replaced whole on reload."""

    scorer: Scorer
    name: str
    version: str | None
    alias: str | None
    source: str
    fingerprint: str
    predictor: Predictor
    fast_path_note: str | None
    explainer: Explainer | None
    lead_model: LeadModel
    loaded_at: datetime
    quantiles: np.ndarray = field(repr=False)
    #: The model's holdout leads (features as at training): the reference for feature drift.
    holdout_leads: pd.DataFrame | None = field(default=None, repr=False)
    quantile_list: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantile_list", [float(q) for q in self.quantiles])

    def score(
        self, records: Sequence[Mapping[str, Any]], policy: ActivePolicy, reasons: bool
    ) -> list[dict[str, Any]]:
        """One response dict per lead, in request order."""
        if not records:
            return []
        matrix = self.predictor.prepare(records)
        proba = np.clip(self.predictor.predict_matrix(matrix), 0.0, 1.0)
        if len(records) == 1:  # plain floats: numpy's per-call cost exceeds the arithmetic
            figures = [single_lead_figures(float(proba[0]), policy, self.quantile_list)]
        else:
            figures = batch_figures(proba, policy, self.quantiles)
        explained: list[Any] = [None] * len(records)
        if reasons and self.explainer is not None:
            explained = self.explainer.explain_matrix_dicts(
                matrix, lambda row, name: records[row].get(name), top=TOP_REASONS
            )
        elif reasons:
            explained = [{"for": [], "against": []}] * len(records)
        id_field = self.lead_model.id_field
        explored, chance = handover(policy, [f[2] for f in figures])
        return [
            {
                "lead_id": records[i].get(id_field),
                "probability": float(proba[i]),
                "score": score,
                "grade": grade,
                "is_mql": is_mql,
                "exploration": explored[i],
                "selection_probability": chance[i],
                "percentile": percentile,
                "reasons": explained[i],
                "model_version": self.version,
                "policy_version": policy.version,
            }
            for i, (score, grade, is_mql, percentile) in enumerate(figures)
        ]


Figures = tuple[int, str, bool, float]

#: Exploration draws: unpredictable per process (seeded by the OS), so nobody can game them.
_EXPLORATION_DRAWS = np.random.default_rng()


def handover(policy: ActivePolicy, is_mql: Sequence[bool]) -> tuple[list[bool], list[float]]:
    """Which leads below the line go to sales anyway (the policy's exploration share), and each
    lead's chance of going to sales: 1 for MQLs, the share (0 without exploration) below the line.
    """
    explored, chance = policy.hand_over(is_mql, _EXPLORATION_DRAWS)
    return explored.tolist(), chance.tolist()


def batch_figures(proba: np.ndarray, policy: ActivePolicy, quantiles: np.ndarray) -> list[Figures]:
    """Score, grade, MQL decision and percentile of each probability (leadml's own functions)."""
    is_mql, grades = policy.decide(proba)
    scores = to_score(proba)
    percentiles = np.round(percentile_of(proba, quantiles), 1)
    return [
        (int(scores[i]), str(grades[i]), bool(is_mql[i]), float(percentiles[i]))
        for i in range(len(proba))
    ]


def single_lead_figures(p: float, policy: ActivePolicy, quantiles: list[float]) -> Figures:
    """`batch_figures` for one probability in plain Python: the same numbers, a tenth the time.

    Mirrors `to_score` (round half to even, like np.rint), `ActivePolicy.decide` (the first grade
    whose lower bound the probability reaches) and `percentile_of` (share of reference quantiles
    at or below, in %).
    """
    grade = policy.bands.labels[-1]
    for label, bound in zip(policy.bands.labels, policy.bands.lower_bounds, strict=True):
        if p >= bound:
            grade = label
            break
    if len(quantiles) < 2:
        percentile = 50.0
    else:
        percentile = min(max(100.0 * bisect_right(quantiles, p) / len(quantiles), 0.0), 100.0)
    return round(p * 100.0), grade, p >= policy.cutoff, float(np.round(percentile, 1))


def load_serving_model(
    settings: Settings, book: ServingPolicyBook, policies: PolicyCache
) -> ServingModel:
    """Load the model the settings point to and check it; raises on anything untrustworthy."""
    bundle = open_bundle(settings.serving_uri, tracking_uri=settings.tracking_uri)
    scorer = Scorer.from_bundle(bundle, source=settings.serving_uri)
    outcomes, trained_proba, leads = bundle.holdout_parts()
    leads = leads.reset_index(drop=True)
    _check_reproduces(scorer, leads.head(SMOKE_ROWS), trained_proba[:SMOKE_ROWS])
    probes = pd.DataFrame(probe_leads(scorer.schema, PROBE_ROWS, seed=0))
    predictor, fallback = build_predictor(scorer.pipeline, [leads.head(SMOKE_ROWS), probes])
    if fallback:
        log.warning(
            "fast path off for %s: %s; scoring with the pipeline", bundle.info.name, fallback
        )
    explainer = _explainer(scorer, predictor, leads.head(SMOKE_ROWS))
    book.remember_holdout(scorer, Holdout(outcomes.astype(np.int64), trained_proba))
    model = ServingModel(
        scorer=scorer,
        name=bundle.info.name,
        version=bundle.info.version,
        alias=alias_of(settings.serving_uri),
        source=settings.serving_uri,
        fingerprint=bundle_fingerprint(settings.serving_uri, bundle),
        predictor=predictor,
        fast_path_note=fallback,
        explainer=explainer,
        lead_model=build_lead_model(scorer.schema, leads),
        loaded_at=datetime.now(UTC),
        quantiles=np.asarray(bundle.info.reference_quantiles, dtype=float),
        holdout_leads=leads,
    )
    _smoke_score(model, policies)
    return model


def _check_reproduces(scorer: Scorer, leads: pd.DataFrame, trained: np.ndarray) -> None:
    if leads.empty:
        raise ModelError("the model's holdout is empty; retrain it")
    now = np.asarray(scorer.pipeline.predict_proba(leads)[:, 1], dtype=float)
    worst = float(np.max(np.abs(now - trained)))
    if not (np.all(np.isfinite(now)) and worst <= REPRODUCE_TOLERANCE):
        raise ModelError(
            f"the model no longer gives its holdout leads the probabilities it gave at training"
            f" (largest difference {worst:.3g}); check the library versions or retrain it"
        )


def _explainer(scorer: Scorer, predictor: Predictor, sample: pd.DataFrame) -> Explainer | None:
    try:
        explainer = CompiledExplainer.for_scorer(scorer)
    except ModelError as error:
        log.warning("reasons off for %s: %s", scorer.info.name, error)
        return None
    head = predictor.linear_head if isinstance(predictor, CompiledPredictor) else None
    if head is not None and explainer.kind == "logistic":
        try:
            explainer.attach(head, scorer.preparer.transform(sample))
        except ValueError as error:
            log.warning("compiled reasons off for %s: %s", scorer.info.name, error)
    return explainer


def _smoke_score(model: ServingModel, policies: PolicyCache) -> None:
    """Score the example lead through every step a request takes."""
    record = model.lead_model.parse_one(json.dumps(model.lead_model.example).encode())
    try:
        policy = policies.warm(model.scorer)
    except StoreError as error:  # the store is not the model's fault: requests will retry
        log.error("cannot read the MQL policy while loading the model: %s", error)
        policy = ActivePolicy(None, 0.5, GradeBands(("-",), (0.0,)), "smoke test", "smoke")
    [result] = model.score([record], policy, reasons=True)
    if not 0.0 <= result["probability"] <= 1.0:
        raise ModelError(f"the example lead scored {result['probability']!r}; refusing the model")


def describe_fields(model: ServingModel) -> list[dict[str, Any]]:
    types = {Role.NUMERIC: "number", Role.BOOLEAN: "boolean", Role.CATEGORICAL: "string"}
    fields = []
    for spec in model.scorer.schema.features:
        kind = types.get(spec.role, "date-time")
        if spec.role is Role.NUMERIC and spec.integer:
            kind = "integer"
        fields.append(
            {
                "name": spec.name,
                "role": spec.role.value,
                "type": kind,
                "required": spec.required,
                "known_categories": list(spec.categories),
                "missing_share": spec.missing_share,
            }
        )
    return fields
