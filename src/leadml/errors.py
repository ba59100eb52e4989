"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class LeadmlError(Exception):
    """Something the user can fix: the message says what is wrong and how to fix it."""


class DataError(LeadmlError):
    """The input data cannot be used as it is."""


class ModelError(LeadmlError):
    """A model cannot be found, loaded or trusted."""


class PolicyError(LeadmlError):
    """An MQL policy cannot be resolved or stored."""
