"""Reasons in-process: one lead at a time and 1,000 at once, compiled TreeSHAP against LightGBM's.

Usage: python bench/reasons_speed.py [--rows 20000 | --xeducation]

Trains leadml's default on demo leads (as `make demo` does), then times
`Explainer.explain_records` (prepare + contributions + the plain-words reasons) for 500 single
leads and for one batch of 1,000, with the compiled TreeSHAP (leadml.treeshap) and, back to back,
with LightGBM's own `pred_contrib`. Then the API's own path: `explain_matrix_dicts` on the lead
the fast path already prepared (the reasons as the answer carries them), one lead at a time and
1,000 at once, and the compiled TreeSHAP contributions alone. Both wall and CPU time are shown: on a shared machine the
wall time includes waiting for a core. Scoring alone (`Scorer.score_records`) is shown for scale.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from quality import X_EDUCATION  # bench/ is on the path when this file is run as a script

from leadml import demo
from leadml.explain import Explainer, _calibrated_head
from leadml.train import TrainConfig, train_model


def clock(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Mean wall and CPU milliseconds per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        action()
    return (
        (time.perf_counter() - wall) * 1e3 / repeat,
        (time.process_time() - cpu) * 1e3 / repeat,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument(
        "--xeducation",
        action="store_true",
        help="the X Education export's model instead (next to the checkout, ../shared/data/)",
    )
    args = parser.parse_args()
    if args.xeducation:
        frame = pd.read_csv(X_EDUCATION, low_memory=False)  # read in place, never copied
        config = TrainConfig(target="Converted")
    else:
        frame = demo.generate_leads(args.rows, seed=42)
        config = TrainConfig(
            target=demo.TARGET, id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN
        )
    result = train_model(frame, config)
    head = _calibrated_head(result.pipeline)
    compiled = Explainer(result.pipeline.named_steps["prepare"], head)
    lightgbm = Explainer(result.pipeline.named_steps["prepare"], head)
    lightgbm._treeshap = None
    records = result.holdout.head(1000).to_dict("records")
    trees = head.booster_.num_trees()
    print(f"model: {result.model_kind}, {trees} trees, {len(compiled.fields)} fields")
    for name, explainer in (("compiled TreeSHAP", compiled), ("LightGBM pred_contrib", lightgbm)):
        explainer.explain_records(records[:5])  # warm up
        single = [clock(lambda r=r, e=explainer: e.explain_records([r]), 1) for r in records[:500]]
        wall_1, cpu_1 = np.mean([s[0] for s in single]), np.mean([s[1] for s in single])
        wall_k, cpu_k = clock(lambda e=explainer: e.explain_records(records), 3)
        print(
            f"{name:>22}: one lead {wall_1:.3f} ms wall / {cpu_1:.3f} ms CPU;"
            f" 1,000 leads {wall_k:.0f} ms wall / {cpu_k:.0f} ms CPU"
        )
    prepared = compiled.preparer.transform_records(records)
    singles = [prepared[i : i + 1] for i in range(500)]

    def value(row: int, name: str) -> object:
        return records[row].get(name)

    for label, action in (
        ("API path (explain_matrix_dicts)", compiled.explain_matrix_dicts),
        ("TreeSHAP contributions alone", lambda m, _v: compiled.contributions(m)),
    ):
        # Best of 5 passes over the 500 leads: the pass least disturbed by other processes.
        passes = [clock(lambda a=action: [a(m, value) for m in singles], 1) for _ in range(5)]
        cpu_1 = min(cpu for _, cpu in passes) / len(singles)
        wall_1 = min(wall for wall, _ in passes) / len(singles)
        batches = [clock(lambda a=action: a(prepared, value), 1) for _ in range(5)]
        cpu_k = min(cpu for _, cpu in batches)
        print(
            f"{label:>32}: one lead {wall_1:.3f} ms wall / {cpu_1:.3f} ms CPU;"
            f" 1,000 leads {min(w for w, _ in batches):.0f} ms wall / {cpu_k:.0f} ms CPU"
            " (best of 5)"
        )
    worst = np.abs(compiled.contributions(prepared) - lightgbm.contributions(prepared)).max()
    print(f"largest difference between the two: {worst:.2e} (log-odds)")


if __name__ == "__main__":
    main()
