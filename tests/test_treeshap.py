"""The compiled TreeSHAP (leadml.treeshap) gives LightGBM's own pred_contrib numbers, for one lead
and for many, on trees with categorical splits, every kind of missing-value handling, features
split on twice along a path, leaf pairs and lone leaves."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from leadml.treeshap import CHUNK_ROWS, TreeShap

TOLERANCE = 1e-9


def synthetic_leads(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three numeric columns (one with NaNs, one with many zeros) and two categorical codes
    (one with NaNs), with an outcome that depends on all of them and on their interactions."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n_rows),
            rng.normal(size=n_rows),
            np.where(rng.random(n_rows) < 0.3, 0.0, rng.exponential(size=n_rows)),
            rng.integers(0, 12, size=n_rows).astype(float),
            rng.integers(0, 5, size=n_rows).astype(float),
        ]
    )
    X[rng.random(n_rows) < 0.15, 1] = np.nan
    X[rng.random(n_rows) < 0.1, 4] = np.nan
    logit = (
        X[:, 0]
        - np.nan_to_num(X[:, 1]) * X[:, 0]
        + np.sin(3 * X[:, 0])
        + 0.8 * (X[:, 2] > 0.5)
        + np.isin(X[:, 3], [1, 4, 7, 9]) * 1.5
        - (X[:, 4] == 2) * 1.2
        - np.isnan(X[:, 1])
    )
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def booster(zero_as_missing: bool, max_depth: int, seed: int = 0) -> lgb.Booster:
    X, y = synthetic_leads(2000, seed)
    params = {
        "objective": "binary",
        "max_depth": max_depth,
        "num_leaves": min(max(2, 2**max_depth - 1), 40),
        "min_data_in_leaf": 5,
        "zero_as_missing": zero_as_missing,
        "max_cat_to_onehot": 2,
        "verbose": -1,
        "seed": seed,
    }
    data = lgb.Dataset(X, y, categorical_feature=[3, 4], free_raw_data=False)
    return lgb.train(params, data, num_boost_round=30)


def probe_leads(seed: int) -> np.ndarray:
    """Leads as the explainer meets them: ordinary, missing everywhere, missing in part, exact
    zeros, unseen, negative and fractional category codes, values on the far sides of every
    split."""
    X, _ = synthetic_leads(300, seed + 100)
    X[:20] = np.nan
    X[20:40, [1, 4]] = np.nan
    X[40:60, 2] = 0.0
    X[60:80, 3] = 40.0  # a code past every category the trees saw
    X[80:90, 4] = -3.0
    X[90:100] *= 1e6
    X[100:105, 3] = -0.5  # LightGBM casts to int first: code 0
    X[105:110, 3] = 4.7  # code 4
    X[110:115, 3] = np.inf
    return X


@pytest.fixture(scope="module", params=[(False, 5), (True, 5), (False, 6), (False, 1)])
def model(request: pytest.FixtureRequest) -> tuple[lgb.Booster, TreeShap]:
    zero_as_missing, depth = request.param
    trained = booster(zero_as_missing, depth)
    compiled = TreeShap.for_booster(trained)
    assert compiled is not None
    return trained, compiled


def test_the_trees_have_what_the_kernel_has_to_get_right(
    model: tuple[lgb.Booster, TreeShap],
) -> None:
    """The models really have categorical splits, the missing-value kinds asked for, leaf
    pairs and lone leaves, and (deep ones) a feature split on twice on a path."""
    trained, compiled = model
    dump = trained.dump_model()
    kinds: set[str] = set()
    repeated = False

    def walk(node: dict, features: list[int]) -> None:
        nonlocal repeated
        if "split_index" not in node:
            repeated |= len(set(features)) < len(features)
            return
        kinds.add("categorical" if node["decision_type"] == "==" else node["missing_type"])
        for child in ("left_child", "right_child"):
            walk(node[child], [*features, node["split_feature"]])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"], [])
    block_parent = compiled._blocks[1]
    n_leaves = sum(tree["num_leaves"] for tree in dump["tree_info"])
    assert "categorical" in kinds
    if len(block_parent) > 40:  # deeper than one split
        assert len(block_parent) < n_leaves  # some pairs...
        assert len(block_parent) > n_leaves / 2  # ...and some lone leaves
        assert repeated
        assert ("Zero" if trained.params["zero_as_missing"] else "NaN") in kinds


def test_many_leads_agree_with_lightgbm(model: tuple[lgb.Booster, TreeShap]) -> None:
    trained, compiled = model
    X = probe_leads(0)
    expected = trained.predict(X, pred_contrib=True)
    np.testing.assert_allclose(compiled.contributions(X), expected, rtol=0, atol=TOLERANCE)


def test_one_lead_agrees_with_lightgbm_and_with_its_batch(
    model: tuple[lgb.Booster, TreeShap],
) -> None:
    """The one-lead kernel path gives LightGBM's numbers, and exactly (to the bit) what the
    many-leads path gives for the same lead: the blocks are added in the same order."""
    trained, compiled = model
    X = probe_leads(1)
    expected = trained.predict(X, pred_contrib=True)
    batch = compiled.contributions(X)
    for row in range(len(X)):
        one = compiled.contributions(X[row])
        np.testing.assert_allclose(one, expected[row : row + 1], rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(one, batch[row : row + 1])


def test_batches_longer_than_a_chunk_are_whole(model: tuple[lgb.Booster, TreeShap]) -> None:
    trained, compiled = model
    X = np.vstack([probe_leads(2)] * (CHUNK_ROWS // 300 + 2))
    assert len(X) > CHUNK_ROWS
    expected = trained.predict(X, pred_contrib=True)
    np.testing.assert_allclose(compiled.contributions(X), expected, rtol=0, atol=TOLERANCE)


def test_contributions_sum_to_the_margin(model: tuple[lgb.Booster, TreeShap]) -> None:
    trained, compiled = model
    X = probe_leads(3)
    np.testing.assert_allclose(
        compiled.contributions(X).sum(axis=1), trained.predict(X, raw_score=True), atol=1e-9
    )


def test_trees_too_deep_to_tabulate_are_left_to_lightgbm() -> None:
    X, y = synthetic_leads(3000, 4)
    X = np.column_stack([X, *(np.random.default_rng(s).normal(size=len(X)) for s in range(8))])
    params = {
        "objective": "binary",
        "max_depth": 12,
        "num_leaves": 400,
        "min_data_in_leaf": 2,
        "verbose": -1,
    }
    trained = lgb.train(params, lgb.Dataset(X, y), num_boost_round=2)
    assert TreeShap.for_booster(trained) is None


def test_a_wrong_number_of_columns_is_refused(model: tuple[lgb.Booster, TreeShap]) -> None:
    _, compiled = model
    with pytest.raises(ValueError, match="expected 5 features"):
        compiled.contributions(np.zeros((2, 4)))
