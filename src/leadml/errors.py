"""Errors a user can fix, and the exit codes the CLI answers with.

The CLI prints a `LeadmlError` as one line on stderr and exits with `ExitCode.BAD_INPUT`.
"""

from __future__ import annotations

from enum import IntEnum


class LeadmlError(Exception):
    """Something the user can fix: the message says what is wrong and how to fix it."""


class DataError(LeadmlError):
    """The input data cannot be used as it is."""


class ModelError(LeadmlError):
    """A model cannot be found, loaded or trusted."""


class PolicyError(LeadmlError):
    """An MQL policy cannot be resolved or stored."""


class ExitCode(IntEnum):
    """What the `leadml` command's exit status tells a scheduler."""

    OK = 0
    FAILED = 1  # unexpected: a bug or an outage, with a traceback
    BAD_INPUT = 2  # one line on stderr says what to fix
    GATE_REFUSED = 3  # promote / retrain: the gate kept the champion
    MONITOR_ACT = 4  # monitor: the verdict is "act"


class SettingsError(LeadmlError):
    """A LEADML_* setting (environment or .env) has a value leadml cannot use."""
