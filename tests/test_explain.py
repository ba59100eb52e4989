"""Reasons per lead agree with the model's own arithmetic; suggested moves really cross the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shap

from conftest import demo_config
from leadml import demo
from leadml.bundle import write_trained_bundle
from leadml.errors import PolicyError
from leadml.explain import (
    MIN_EFFECT,
    Explainer,
    actionable_fields,
    candidate_moves,
    field_label,
    format_value,
    what_would_move,
)
from leadml.schema import ColumnSpec, Role
from leadml.scoring import Scorer
from leadml.train import TrainResult, train_model
from leadml.treeshap import compile_kernels

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning"),
]

CATEGORICAL_DEMO_COLUMNS = (
    "lead_source",
    "campaign",
    "country",
    "industry",
    "company_size",
    "job_level",
)


def scorer_from(result: TrainResult, folder: Path) -> Scorer:
    """Write a trained model as a bundle folder and load it the way the API does."""
    write_trained_bundle(folder, result, name="explain-test", version="1")
    return Scorer.load(folder)


@pytest.fixture(scope="module")
def models_by_kind(
    demo_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Scorer, TrainResult]]:
    """One LightGBM and one logistic model on the demo leads, trained once for the module.

    Without a time column, so that created_at stays a (datetime) feature: with one, time-ordered
    validation finds that its parts do not help on the demo data and leaves them out."""
    models = {}
    for kind in ("lightgbm", "logistic"):
        result = train_model(demo_frame, demo_config(candidates=(kind,), time_column=None))
        assert result.model_kind == kind
        models[kind] = scorer_from(result, tmp_path_factory.mktemp(kind)), result
    return models


@pytest.fixture(scope="module", params=["lightgbm", "logistic"])
def model(
    request: pytest.FixtureRequest, models_by_kind: dict[str, tuple[Scorer, TrainResult]]
) -> tuple[Scorer, TrainResult]:
    return models_by_kind[request.param]


@pytest.fixture(scope="module")
def lightgbm_model(
    models_by_kind: dict[str, tuple[Scorer, TrainResult]],
) -> tuple[Scorer, TrainResult]:
    return models_by_kind["lightgbm"]


@pytest.fixture(scope="module")
def logistic_model(
    models_by_kind: dict[str, tuple[Scorer, TrainResult]],
) -> tuple[Scorer, TrainResult]:
    return models_by_kind["logistic"]


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def head_of(scorer: Scorer) -> Any:
    return scorer.model.calibrated_classifiers_[0].estimator.estimator


# --------------------------------------------------------------------------- contributions


def test_logistic_contributions_sum_to_the_logit(
    logistic_model: tuple[Scorer, TrainResult],
) -> None:
    scorer, result = logistic_model
    explainer = Explainer.for_scorer(scorer)
    X = scorer.preparer.transform(result.holdout)
    logit = head_of(scorer).decision_function(X)
    contributions = explainer.contributions(X)
    assert contributions.shape == (len(X), len(result.schema.features))
    np.testing.assert_allclose(explainer.base_value + contributions.sum(axis=1), logit, atol=1e-6)
    # The typical lead (the baseline itself) has no reasons at all.
    typical = explainer.contributions(explainer.typical_lead()[None, :])
    np.testing.assert_allclose(typical, 0.0, atol=1e-12)


def test_logistic_background_baseline_is_linear_shap(
    logistic_model: tuple[Scorer, TrainResult],
) -> None:
    scorer, result = logistic_model
    explainer = Explainer.for_scorer(scorer, background=result.holdout)
    X = scorer.preparer.transform(result.holdout)
    contributions = explainer.contributions(X)
    np.testing.assert_allclose(
        explainer.base_value + contributions.sum(axis=1),
        head_of(scorer).decision_function(X),
        atol=1e-6,
    )
    # With the mean of the same leads as baseline, every field's contribution averages to zero.
    np.testing.assert_allclose(contributions.mean(axis=0), 0.0, atol=1e-9)


def test_lightgbm_contributions_agree_with_shap(
    lightgbm_model: tuple[Scorer, TrainResult],
) -> None:
    scorer, result = lightgbm_model
    explainer = Explainer.for_scorer(scorer)
    X = scorer.preparer.transform(result.holdout)
    booster = head_of(scorer).booster_
    tree_explainer = shap.TreeExplainer(booster)
    per_column = np.asarray(tree_explainer.shap_values(X))
    assert per_column.shape == X.shape
    # Sum shap's per-column values into fields by name: a datetime's parts into the datetime.
    names = list(scorer.preparer.feature_names_out_)
    expected = np.column_stack(
        [
            per_column[:, [i for i, n in enumerate(names) if n.split("__")[0] == field]].sum(axis=1)
            for field in explainer.fields
        ]
    )
    contributions = explainer.contributions(X)
    np.testing.assert_allclose(contributions, expected, atol=1e-6)
    assert explainer.base_value == pytest.approx(float(np.ravel(tree_explainer.expected_value)[0]))
    raw_margin = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(
        explainer.base_value + contributions.sum(axis=1), raw_margin, atol=1e-6
    )
    np.testing.assert_allclose(explainer.margin(X), raw_margin, atol=1e-12)


def test_lightgbm_contributions_match_shaps_own_tree_shap(
    demo_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """An independent check: shap's own TreeSHAP implementation, not LightGBM's.

    shap parses LightGBM trees into its own structure only for numeric splits, so this model
    leaves out the categorical columns.
    """
    excluded = (*CATEGORICAL_DEMO_COLUMNS, *demo.LEAKY_COLUMNS)
    result = train_model(demo_frame, demo_config(candidates=("lightgbm",), exclude=excluded))
    scorer = scorer_from(result, tmp_path / "numeric")
    explainer = Explainer.for_scorer(scorer)
    X = scorer.preparer.transform(result.holdout)
    tree_explainer = shap.TreeExplainer(head_of(scorer).booster_)
    tree_explainer.model.model_type = "internal"  # use shap's algorithm, not LightGBM's shortcut
    per_column = np.asarray(tree_explainer.shap_values(X))
    names = list(scorer.preparer.feature_names_out_)
    expected = np.column_stack(
        [
            per_column[:, [i for i, n in enumerate(names) if n.split("__")[0] == field]].sum(axis=1)
            for field in explainer.fields
        ]
    )
    np.testing.assert_allclose(explainer.contributions(X), expected, atol=1e-6)


def test_datetime_parts_become_one_field(model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = model
    explainer = Explainer.for_scorer(scorer)
    assert explainer.fields == result.schema.feature_names
    assert explainer.fields.count(demo.TIME_COLUMN) == 1
    assert len(scorer.preparer.feature_names_out_) == len(explainer.fields) + 2


# --------------------------------------------------------------------------- reasons


def test_reasons_follow_the_signs_of_the_contributions(model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = model
    explainer = Explainer.for_scorer(scorer)
    leads = result.holdout.head(40)
    records = records_of(leads)
    effects = explainer.contributions(scorer.preparer.transform_records(records))
    explained = explainer.explain_records(records, top=3)
    assert len(explained) == len(records)
    for row, reasons in enumerate(explained):
        assert len(reasons.for_) <= 3 and len(reasons.against) <= 3
        by_field = dict(zip(explainer.fields, effects[row], strict=True))
        for reason in reasons.for_:
            assert reason.effect > 0 and reason.direction == "raises"
            assert reason.text.endswith("raises the chance")
            assert reason.effect == pytest.approx(by_field[reason.field])
        for reason in reasons.against:
            assert reason.effect < 0 and reason.direction == "lowers"
            assert reason.text.endswith("lowers the chance")
            assert reason.effect == pytest.approx(by_field[reason.field])
        # The strongest reasons, strongest first; negligible effects are no reason.
        positive = sorted((e for e in effects[row] if e > MIN_EFFECT), reverse=True)[:3]
        assert [r.effect for r in reasons.for_] == pytest.approx(positive)
        negative = sorted(e for e in effects[row] if e < -MIN_EFFECT)[:3]
        assert [r.effect for r in reasons.against] == pytest.approx(negative)
    # The batch path gives the same reasons as the single-lead path.
    batch = explainer.explain_frame(leads, top=3)
    assert [r.to_dict() for r in batch] == [r.to_dict() for r in explained]


def test_reason_texts_read_as_plain_words(
    lightgbm_model: tuple[Scorer, TrainResult],
) -> None:
    scorer, result = lightgbm_model
    explainer = Explainer.for_scorer(scorer)
    lead = records_of(result.holdout.head(1))[0]
    lead["job_level"] = None
    reasons = explainer.explain_records([lead], top=len(explainer.fields))[0]
    texts = {r.field: r.text for r in [*reasons.for_, *reasons.against]}
    if "job_level" in texts:
        assert texts["job_level"].startswith("Job level is missing ")
    if "time_on_site_sec" in texts:
        seconds = int(lead["time_on_site_sec"])
        assert texts["time_on_site_sec"].startswith(f"Time on site = {seconds} s ")
    assert texts, "a real lead has at least one reason"
    assert all(" = " in t or " is missing " in t for t in texts.values())


def test_labels_and_values() -> None:
    assert field_label("time_on_site_sec") == "Time on site"
    assert field_label("requested_demo") == "Requested demo"
    assert field_label("Lead Source") == "Lead Source"
    seconds = ColumnSpec("time_on_site_sec", Role.NUMERIC, integer=True)
    assert format_value(seconds, 35) == "35 s"
    assert format_value(ColumnSpec("pages_per_visit", Role.NUMERIC), 2.3456) == "2.35"
    assert format_value(ColumnSpec("requested_demo", Role.BOOLEAN), "Yes") == "yes"
    source = ColumnSpec("lead_source", Role.CATEGORICAL, categories=("Referral",))
    assert format_value(source, "Referral") == "Referral"
    assert format_value(source, "Carrier pigeon", known=False) == "Carrier pigeon (a rare value)"


def test_unknown_category_is_named_as_rare(lightgbm_model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = lightgbm_model
    explainer = Explainer.for_scorer(scorer)
    lead = records_of(result.holdout.head(1))[0] | {"lead_source": "Carrier pigeon"}
    reasons = explainer.explain_records([lead], top=len(explainer.fields))[0]
    texts = [r.text for r in [*reasons.for_, *reasons.against] if r.field == "lead_source"]
    assert all("Carrier pigeon (a rare value)" in t for t in texts)


def test_top_must_be_positive(lightgbm_model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = lightgbm_model
    with pytest.raises(ValueError, match="top"):
        Explainer.for_scorer(scorer).explain_frame(result.holdout.head(1), top=0)


# --------------------------------------------------------------------------- what would move


def test_actionable_fields_leave_out_fixed_traits(
    lightgbm_model: tuple[Scorer, TrainResult],
) -> None:
    _, result = lightgbm_model
    fields = actionable_fields(result.schema.features)
    for fixed in (*CATEGORICAL_DEMO_COLUMNS, demo.TIME_COLUMN, "newsletter_opt_in"):
        assert fixed not in fields
    for engagement in ("time_on_site_sec", "requested_demo", "email_clicks", "form_fills"):
        assert engagement in fields


def test_what_would_move_really_crosses_the_line(model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = model
    explainer = Explainer.for_scorer(scorer)
    cutoff = float(np.quantile(result.holdout_proba, 0.7))
    records = records_of(result.holdout.head(60))
    proba = scorer.predict_proba_records(records)
    allowed = set(actionable_fields(explainer.specs))
    found = 0
    for record, before in zip(records, proba, strict=True):
        suggestion = what_would_move(scorer, record, cutoff, explainer)
        if before >= cutoff:
            assert suggestion is None
            continue
        if suggestion is None:
            continue
        found += 1
        assert suggestion.field in allowed
        assert suggestion.probability_before == pytest.approx(before)
        moved = record | {suggestion.field: suggestion.to_value}
        after = scorer.predict_proba_records([moved])[0]
        assert after >= cutoff
        assert after == pytest.approx(suggestion.probability_after)
        assert "would raise the probability from" in suggestion.sentence
        assert "past the MQL line at" in suggestion.sentence
    assert found >= 5


def test_moves_are_the_smallest_per_field_best_first(
    lightgbm_model: tuple[Scorer, TrainResult],
) -> None:
    scorer, result = lightgbm_model
    explainer = Explainer.for_scorer(scorer)
    cutoff = float(np.quantile(result.holdout_proba, 0.7))
    records = records_of(result.holdout)
    proba = scorer.predict_proba_records(records)
    low = [r for r, p in zip(records, proba, strict=True) if p < cutoff][:20]
    for record in low:
        moves = candidate_moves(scorer, record, cutoff, explainer)
        ranks = [(m.steps, -m.probability_after) for m in moves]
        assert ranks == sorted(ranks)
        assert len({m.field for m in moves}) == len(moves)
        for move in moves:
            if move.steps > 1 and isinstance(move.to_value, int | float):
                # One step less in the same direction does not cross the line.
                spec = result.schema.column(move.field)
                column = explainer.fields.index(spec.name)
                prepared_column = explainer.column_fields.index(column)
                current = scorer.preparer.transform_records([record])[0, prepared_column]
                options = explainer.numeric_moves(prepared_column, current)
                up = float(move.to_value) > current
                nearer = [v for v, s in options if s == move.steps - 1 and (v > current) == up]
                for value in nearer:
                    shifted = record | {move.field: value}
                    assert scorer.predict_proba_records([shifted])[0] < cutoff


def test_moves_only_try_the_fields_asked_for(lightgbm_model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = lightgbm_model
    cutoff = float(np.quantile(result.holdout_proba, 0.7))
    records = records_of(result.holdout)
    proba = scorer.predict_proba_records(records)
    record = next(r for r, p in zip(records, proba, strict=True) if p < cutoff)
    moves = candidate_moves(scorer, record, cutoff, actionable=["requested_demo"])
    assert {m.field for m in moves} <= {"requested_demo"}
    assert candidate_moves(scorer, record, cutoff, actionable=[]) == []


def test_what_would_move_rejects_a_bad_cutoff(lightgbm_model: tuple[Scorer, TrainResult]) -> None:
    scorer, result = lightgbm_model
    with pytest.raises(PolicyError):
        what_would_move(scorer, records_of(result.holdout.head(1))[0], 1.5)


def test_time_column_used_only_to_split_trains_and_explains(
    demo_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """`--time-column C --exclude C` with only categories left: the logistic model has no
    numeric block, and explaining it once ended in a traceback in `typical_lead`."""
    columns = [demo.ID_COLUMN, demo.TIME_COLUMN, *CATEGORICAL_DEMO_COLUMNS, demo.TARGET]
    leads = demo_frame[columns].head(3000)
    result = train_model(leads, demo_config(candidates=("logistic",), exclude=(demo.TIME_COLUMN,)))
    assert result.split_by_time
    assert demo.TIME_COLUMN not in result.schema.feature_names
    assert {spec.role for spec in result.schema.features} == {Role.CATEGORICAL}
    scorer = scorer_from(result, tmp_path / "model")
    explainer = Explainer.for_scorer(scorer)
    records = leads.head(50).to_dict("records")
    prepared = scorer.preparer.transform_records(records)
    assert np.allclose(
        explainer.base_value + explainer.contributions(prepared).sum(axis=1),
        explainer.margin(prepared),
    )
    reasons = explainer.explain_records(records)
    assert any(r.for_ or r.against for r in reasons)
    assert explainer.numeric_moves(0, 1.0) == []


def test_compiled_treeshap_is_lightgbms_treeshap(
    models_by_kind: dict[str, tuple[Scorer, TrainResult]],
) -> None:
    """The compiled TreeSHAP (leadml.treeshap) serves the reasons, and gives LightGBM's own
    pred_contrib numbers on real leads, missing values and unseen categories included."""
    scorer, result = models_by_kind["lightgbm"]
    explainer = Explainer.for_scorer(scorer)
    assert explainer._treeshap is not None
    X = scorer.preparer.transform(result.holdout)
    X[:40, :] = np.nan
    X[40:80, scorer.preparer.categorical_indices_] = 99.0  # codes the trees never saw
    expected = explainer._booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(explainer._tree_contributions(X), expected, rtol=0, atol=1e-9)
    for row in range(5):  # one lead at a time, as the API explains
        np.testing.assert_allclose(
            explainer._tree_contributions(X[row : row + 1]), expected[row : row + 1], atol=1e-9
        )


def test_the_compiled_treeshap_never_compiles_after_its_start(
    models_by_kind: dict[str, tuple[Scorer, TrainResult]],
) -> None:
    """The kernels are compiled for fixed argument types once (the API does it at start), so a
    model loaded later, and leads in any array a caller hands over (read-only, a slice), are
    explained by the same machine code: nothing is compiled on a request's path."""
    contributions_kernel, tabulate_kernel = compile_kernels()
    scorer, result = models_by_kind["lightgbm"]
    X = scorer.preparer.transform(result.holdout)
    explainer = Explainer.for_scorer(scorer)  # a model loaded after the start
    read_only = X.copy()
    read_only.setflags(write=False)
    expected = explainer._booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(explainer._tree_contributions(read_only), expected, atol=1e-9)
    np.testing.assert_allclose(explainer._tree_contributions(X[3:4]), expected[3:4], atol=1e-9)
    assert len(contributions_kernel.signatures) == len(tabulate_kernel.signatures) == 1
    with pytest.raises(TypeError):  # other types are refused, not compiled
        contributions_kernel(X.astype(np.float32), *[None] * 23)


def without_effects(reasons: dict[str, list[dict[str, Any]]]) -> Any:
    return {side: [{**r, "effect": None} for r in told] for side, told in reasons.items()}


def effects_of(reasons: dict[str, list[dict[str, Any]]]) -> list[float]:
    return [r["effect"] for told in reasons.values() for r in told]


@pytest.mark.parametrize("with_dates", [True, False])
def test_the_apis_reason_dicts_are_the_reasons_as_dicts(
    models_by_kind: dict[str, tuple[Scorer, TrainResult]],
    demo_frame: pd.DataFrame,
    tmp_path: Path,
    with_dates: bool,
) -> None:
    """The API answers `explain_matrix_dicts` (no Reason objects in between): the same reasons,
    one lead at a time and in a batch, with the effects LightGBM's own pred_contrib gives, for a
    model whose date is three prepared columns and one whose every field is one column."""
    if with_dates:
        scorer, result = models_by_kind["lightgbm"]
    else:
        leads = demo_frame.drop(columns=[demo.TIME_COLUMN]).head(3000)
        result = train_model(leads, demo_config(candidates=("lightgbm",), time_column=None))
        scorer = scorer_from(result, tmp_path / "model")
    explainer = Explainer.for_scorer(scorer)
    assert explainer._column_per_field is not with_dates
    records = records_of(result.holdout.head(60))
    records[0] = {name: None for name in records[0]}
    records[1] = records[1] | {"lead_source": "Carrier pigeon", "job_level": None}
    matrix = scorer.preparer.transform_records(records)
    expected = explainer._booster.predict(matrix, pred_contrib=True)[:, :-1] @ (
        explainer._columns_to_fields
    )

    def value(row: int, name: str) -> Any:
        return records[row].get(name)

    batch = explainer.explain_matrix_dicts(matrix, value, top=4)
    assert batch == [r.to_dict() for r in explainer.explain_matrix(matrix, value, top=4)]
    for row in range(len(records)):
        lead = records[row]
        [one] = explainer.explain_matrix_dicts(
            matrix[row : row + 1], lambda _, n, r=lead: r.get(n), 4
        )
        # Summing a date's three columns may round differently in a batch (BLAS): 1e-12.
        assert without_effects(one) == without_effects(batch[row])
        assert effects_of(one) == pytest.approx(effects_of(batch[row]), abs=1e-12)
        by_field = dict(zip(explainer.fields, expected[row], strict=True))
        for reason in [*batch[row]["for"], *batch[row]["against"]]:
            assert reason["effect"] == pytest.approx(by_field[reason["field"]], abs=1e-9)
