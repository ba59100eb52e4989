"""Prometheus metrics: requests and latency by route, scores by grade, the model served.

Each app has its own registry (apps made in tests do not collide). With several uvicorn workers
(`leadml serve --workers N` sets PROMETHEUS_MULTIPROC_DIR for them) prometheus-client's
multiprocess mode keeps every worker's figures in shared files and a scrape of any worker
answers for all of them: counters and histograms summed, `leadml_model_info` once per live
worker with a `pid` label.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets (seconds): a scored lead takes well under a millisecond, a batch up to seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "leadml_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadml_http_request_duration_seconds",
            "Time from request to the end of the response, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "leadml_scores",
            "Leads scored, by grade under the MQL policy in force.",
            ["grade"],
            registry=self.registry,
        )
        self.mqls = Counter(
            "leadml_mqls", "Leads scored at or above the MQL line.", registry=self.registry
        )
        self.model_info = Gauge(
            "leadml_model_info",
            "The model being served (1) with its name, version and alias.",
            ["name", "version", "alias", "kind", "fast_path"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._info_labels: tuple[str, ...] | None = None
        self._grades: dict[str, Any] = {}
        self.reloads = Counter(
            "leadml_model_reloads",
            "Model reload attempts by outcome (reloaded, refused).",
            ["outcome"],
            registry=self.registry,
        )

        self.ledger_rows = Counter(
            "leadml_ledger_rows",
            "Scores for the ledger by outcome: written; dropped_queue_full (the queue was full, the"
            " score was answered but not recorded); dropped_write_error (the database refused).",
            ["outcome"],
            registry=self.registry,
        )
        self._ledger_children = {
            outcome: self.ledger_rows.labels(outcome)
            for outcome in ("written", "dropped_queue_full", "dropped_write_error")
        }
        self.ledger_waiting = Gauge(
            "leadml_ledger_queue_rows",
            "Scores waiting in memory for the ledger writer.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.ledger_waited = Counter(
            "leadml_ledger_wait_seconds",
            "Time scoring requests waited for room in the ledger's full queue (back-pressure:"
            " the database was slower than the scoring).",
            registry=self.registry,
        )
        self.ledger_enabled = Gauge(
            "leadml_ledger_enabled",
            "1 when every score goes to the ledger (LEADML_LEDGER), else 0.",
            registry=self.registry,
            multiprocess_mode="liveall",
        )

    def count_ledger(self, outcome: str, rows: int) -> None:
        self._ledger_children[outcome].inc(rows)

    def count_scores(self, grades: Iterable[str], mqls: int) -> None:
        counts: dict[str, int] = {}
        for grade in grades:
            counts[grade] = counts.get(grade, 0) + 1
        for grade, count in counts.items():
            child = self._grades.get(grade)
            if child is None:  # labels() validates and locks; its children can be kept
                child = self._grades[grade] = self.scores.labels(grade)
            child.inc(count)
        if mqls:
            self.mqls.inc(mqls)

    def serving(
        self, name: str, version: str | None, alias: str | None, kind: str, fast: str
    ) -> None:
        """Point the info gauge at the model now served (and only at it)."""
        if multiprocess_dir() is None:
            self.model_info.clear()
        elif self._info_labels is not None:
            # Shared files keep every series (clear() cannot): say this one is no longer served.
            self.model_info.labels(*self._info_labels).set(0)
        self._info_labels = (name, version or "", alias or "", kind, fast)
        self.model_info.labels(*self._info_labels).set(1)

    def exposition_registry(self) -> CollectorRegistry:
        """What a scrape reads: every worker's figures in multiprocess mode, else this app's."""
        folder = multiprocess_dir()
        if folder is None:
            return self.registry
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=folder)
        return combined

    def leave(self) -> None:
        """This worker stops: its live gauges leave the shared figures."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body copy) that counts and times requests."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "")
            method = method if method in _METHODS else "OTHER"
            count, latency = self._series(method, template, status)
            count.inc()
            latency.observe(time.perf_counter() - started)

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        # labels() validates and locks on every call; the children themselves are reusable.
        key = (method, route, status)
        series = self._children.get(key)
        if series is None:
            series = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            self._children[key] = series
        return series
