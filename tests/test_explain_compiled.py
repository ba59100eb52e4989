"""Compiled reasons for logistic models equal leadml's Explainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import demo_config
from leadml import demo
from leadml.bundle import write_trained_bundle
from leadml.explain import CompiledExplainer, Explainer
from leadml.fastpath import CompiledPredictor, probe_leads
from leadml.scoring import Scorer
from leadml.train import train_model


@pytest.fixture(scope="module")
def logistic_scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    result = train_model(demo.generate_leads(2500, seed=21), demo_config(candidates=("logistic",)))
    return Scorer(
        result.pipeline,
        write_trained_bundle(tmp_path_factory.mktemp("logistic"), result, name="logistic"),
    )


def test_compiled_contributions_equal_the_explainers(logistic_scorer: Scorer) -> None:
    probes = pd.DataFrame(probe_leads(logistic_scorer.schema, 400, seed=9))
    matrix = logistic_scorer.preparer.transform(probes)
    plain = Explainer.for_scorer(logistic_scorer)
    compiled = CompiledExplainer.for_scorer(logistic_scorer)
    head = CompiledPredictor(logistic_scorer.pipeline).linear_head
    assert head is not None
    assert compiled.attach(head, matrix[:50]) <= 1e-9
    np.testing.assert_allclose(
        compiled.contributions(matrix), plain.contributions(matrix), rtol=0, atol=1e-9
    )
    records = probes.to_dict("records")
    value = lambda row, name: records[row].get(name)  # noqa: E731
    got = compiled.explain_matrix(matrix, value)
    want = plain.explain_matrix(matrix, value)
    for mine, theirs in zip(got, want, strict=True):
        for side in ("for_", "against"):
            ours, expected = getattr(mine, side), getattr(theirs, side)
            assert [(r.field, r.text) for r in ours] == [(r.field, r.text) for r in expected]
            assert [r.effect for r in ours] == pytest.approx([r.effect for r in expected], abs=1e-9)


def test_a_tree_explainer_cannot_take_a_linear_head(logistic_scorer: Scorer) -> None:
    compiled = CompiledExplainer.for_scorer(logistic_scorer)
    compiled.kind = "lightgbm"
    head = CompiledPredictor(logistic_scorer.pipeline).linear_head
    assert head is not None
    with pytest.raises(ValueError, match="only logistic"):
        compiled.attach(head, np.zeros((1, logistic_scorer.preparer.n_features_out_)))
