from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import demo
from leadml.features import LeadPreparer
from leadml.schema import infer_schema


@pytest.fixture(scope="module")
def preparer(demo_frame: pd.DataFrame) -> LeadPreparer:
    schema = infer_schema(
        demo_frame, demo.TARGET, "1", id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN
    )
    return LeadPreparer(schema).fit()


def test_frame_and_record_paths_agree(preparer: LeadPreparer, demo_frame: pd.DataFrame) -> None:
    leads = demo_frame.head(300).copy()
    leads.loc[leads.index[:20], "lead_source"] = "A channel never seen"
    leads.loc[leads.index[20:40], "industry"] = "Select"
    leads.loc[leads.index[40:60], "time_on_site_sec"] = np.nan
    leads.loc[leads.index[60:80], "requested_demo"] = None
    from_frame = preparer.transform(leads)
    from_records = preparer.transform_records(leads.to_dict("records"))
    np.testing.assert_array_equal(from_frame, from_records)


def test_codes_for_known_unknown_and_missing(preparer: LeadPreparer) -> None:
    names = list(preparer.get_feature_names_out())
    column = names.index("lead_source")
    known = preparer.category_maps_["lead_source"]
    first = next(iter(known))
    rows = preparer.transform(
        pd.DataFrame({"lead_source": [first, "Carrier pigeon", None, "Select"]})
    )[:, column]
    assert rows[0] == known[first]
    assert rows[1] == len(known)
    assert np.isnan(rows[2]) and np.isnan(rows[3])


def test_datetimes_become_parts(preparer: LeadPreparer) -> None:
    names = list(preparer.get_feature_names_out())
    matrix = preparer.transform(pd.DataFrame({"created_at": ["2024-03-08T14:30:00"]}))
    assert matrix[0, names.index("created_at__weekday")] == 4  # a Friday
    assert matrix[0, names.index("created_at__hour")] == 14
    assert matrix[0, names.index("created_at__month")] == 3
    records = preparer.transform_records([{"created_at": "2024-03-08T15:30:00+01:00"}])
    assert records[0, names.index("created_at__hour")] == 14


def test_missing_columns_are_missing_values(preparer: LeadPreparer) -> None:
    matrix = preparer.transform(pd.DataFrame({"web_visits": [3]}))
    assert matrix.shape == (1, preparer.n_features_out_)
    assert np.isnan(matrix).sum() == preparer.n_features_out_ - 1
