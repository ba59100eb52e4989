from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import TrainedModel
from leadml.scoring import Scorer, percentile_of, to_score
from leadml.validation import LeadValidationError


@pytest.fixture(scope="module")
def scorer(trained: TrainedModel) -> Scorer:
    return Scorer.load(trained.export_dir)


def test_scores_frames_and_dicts_alike(scorer: Scorer, demo_frame: pd.DataFrame) -> None:
    leads = demo_frame.head(200)
    from_frame = scorer.score(leads)
    from_dicts = scorer.score(leads.to_dict("records"))
    pd.testing.assert_frame_equal(from_frame, from_dicts)
    assert list(from_frame.columns) == ["lead_id", "probability", "score", "percentile"]
    assert from_frame["lead_id"].tolist() == leads["lead_id"].tolist()
    assert from_frame["probability"].between(0, 1).all()
    assert from_frame["score"].between(0, 100).all()
    assert from_frame["percentile"].between(0, 100).all()


def test_unknown_categories_and_missing_optional_fields_are_scored(scorer: Scorer) -> None:
    required = {
        spec.name: "2024-05-01T10:00:00" if spec.role.value == "datetime" else None
        for spec in scorer.schema.features
        if spec.required
    }
    lead = {
        "lead_source": "A channel nobody has seen",
        "requested_demo": "Yes",
        "time_on_site_sec": 300,
        "days_since_last_activity": 1,
        "email_opens": 2,
        "email_clicks": 1,
        "form_fills": 1,
        "newsletter_opt_in": "No",
    }
    lead = {**required, **lead}
    result = scorer.score([lead])
    assert 0 < result["probability"].iloc[0] < 1


def test_wrong_types_name_the_field(scorer: Scorer, demo_frame: pd.DataFrame) -> None:
    lead = demo_frame.head(1).to_dict("records")[0]
    with pytest.raises(LeadValidationError, match="'time_on_site_sec': must be a number") as caught:
        scorer.score([{**lead, "time_on_site_sec": "a lot"}])
    assert caught.value.errors[0].field == "time_on_site_sec"
    with pytest.raises(LeadValidationError, match="requested_demo"):
        scorer.score([{**lead, "requested_demo": "perhaps"}])
    frame = demo_frame.head(5).copy()
    frame["email_clicks"] = frame["email_clicks"].astype(object)
    frame.loc[frame.index[2], "email_clicks"] = "many"
    with pytest.raises(LeadValidationError, match="row 3, field 'email_clicks'"):
        scorer.score(frame)


def test_missing_required_fields_are_refused(scorer: Scorer, demo_frame: pd.DataFrame) -> None:
    required = [s.name for s in scorer.schema.features if s.required]
    assert required
    with pytest.raises(LeadValidationError, match=f"'{required[0]}': column is required"):
        scorer.score(demo_frame.head(3).drop(columns=[required[0]]))


def test_percentiles_follow_the_reference_distribution() -> None:
    quantiles = np.linspace(0, 1, 101)
    assert percentile_of(np.array([0.0, 0.5, 1.0]), quantiles).tolist() == pytest.approx(
        [100 / 101, 5100 / 101, 100.0]
    )
    assert to_score(np.array([0.004, 0.376, 0.999])).tolist() == [0, 38, 100]


def test_higher_probability_never_gets_a_lower_percentile(
    scorer: Scorer, demo_frame: pd.DataFrame
) -> None:
    scored = scorer.score(demo_frame.head(500)).sort_values("probability")
    assert scored["percentile"].is_monotonic_increasing
