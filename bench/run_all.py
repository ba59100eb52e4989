"""`make bench`: the quality table against peers, then the training scaling table.

Usage: python bench/run_all.py [--quick]   (--quick: one seed, no FLAML, 10k and 100k leads)

Both steps append to bench/results/ and skip what is already there (bench/quality.py resumes),
so an interrupted `make bench` continues where it stopped; delete bench/results/ to start over.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    quality = [sys.executable, str(HERE / "quality.py")]
    scaling = [sys.executable, str(HERE / "scaling.py")]
    if quick:
        quality += ["--seeds", "0", "--peers", "lightgbm", "hgb", "hgb_isotonic", "logistic"]
        scaling += ["--rows", "10000", "100000"]
    subprocess.run(quality, check=True)
    subprocess.run(scaling, check=True)


if __name__ == "__main__":
    main()
