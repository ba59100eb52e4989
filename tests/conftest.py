"""Shared fixtures: demo data, a trained model, throwaway MLflow stores and PostgreSQL."""

from __future__ import annotations

from pg import postgres_url, store_url  # noqa: F401
