"""Checks that need a Python process of their own: what an import loads or switches on."""

from __future__ import annotations

import subprocess
import sys


def assert_runs(code: str) -> None:
    """`code` runs without an error in a new Python process (so its assertions hold there)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
