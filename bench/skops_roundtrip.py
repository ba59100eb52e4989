"""Would skops (no arbitrary code on load) do instead of a signed joblib pickle? Measure it.

Trains leadml on demo leads with each candidate kind, stores the fitted pipeline with
`skops.io.dumps`, lists the types skops does not trust by default, loads with exactly those
trusted, and compares the holdout probabilities with the original pipeline's.

    .venv/bin/python bench/skops_roundtrip.py
"""

from __future__ import annotations

import numpy as np
import skops.io as sio

from leadml import demo
from leadml.train import TrainConfig, train_model


def main() -> None:
    frame = demo.generate_leads(3000, seed=1)
    for kind in ("lightgbm", "logistic"):
        config = TrainConfig(
            target=demo.TARGET,
            id_column=demo.ID_COLUMN,
            time_column=demo.TIME_COLUMN,
            cv_folds=3,
            candidates=(kind,),
        )
        result = train_model(frame, config)
        data = sio.dumps(result.pipeline)
        untrusted = sio.get_untrusted_types(data=data)
        print(f"{kind} ({result.calibration_method}): {len(untrusted)} types to trust")
        for name in untrusted:
            print(f"    {name}")
        expected = result.pipeline.predict_proba(result.holdout)[:, 1]
        try:
            loaded = sio.loads(data, trusted=untrusted)
            got = loaded.predict_proba(result.holdout)[:, 1]
            print(f"    round trip: largest difference {float(np.max(np.abs(got - expected))):.3g}")
        except Exception as error:  # the finding is that it fails: say how
            print(f"    round trip fails: {type(error).__name__}: {str(error)[:200]}")


if __name__ == "__main__":
    main()
