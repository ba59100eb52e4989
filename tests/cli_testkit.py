"""Running `leadml` in-process in tests, and what its one-line errors must look like."""

from __future__ import annotations

import socket

import pytest

from leadml.cli import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `leadml ARGV`."""
    code, _, err = run_cli_streams(argv, capsys)
    return code, err


def run_cli_streams(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout (the results) and stderr (progress and errors) of `leadml ARGV`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def free_port() -> int:
    """A port nothing listens on now: tests of `leadml serve` must not depend on 8000 being free
    (`make demo` serves there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def assert_one_line_error(code: int, err: str, *fragments: str, alone: bool = True) -> None:
    """Exit code 2, no traceback, one `leadml: error:` line holding every fragment. With
    `alone`, nothing else was printed (commands that report progress first pass False)."""
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("leadml: error:")]
    assert len(errors) == 1, err
    if alone:
        assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
