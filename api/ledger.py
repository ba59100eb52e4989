"""The API's score ledger writer: scores go to the app database without slowing the scoring.

A scoring request hands its rows to `LedgerWriter.submit`, which appends them to a bounded
in-memory queue and returns at once; it never blocks and never fails the score. One writer
thread per process takes the queue in groups and commits each group in one transaction
(`Store.record_scores`): when `batch_rows` scores wait, or when the oldest has waited
`flush_seconds` (500 rows / 50 ms by default), whichever comes first.

When the queue is full because the database is slower than the scoring, a request hands its
scores over with `submit_or_wait`: it waits (asynchronously: the event loop keeps answering)
until the writer has made room, for up to `wait_seconds`. That is back-pressure: under a burst
the scoring slows to what the database can record instead of losing scores. Only when the
writer is failing (its last commit was refused), the rows can never fit, or the wait ran out,
are the scores dropped: counted (`leadml_ledger_rows_total{outcome="dropped_queue_full"}`) and
logged (at most one line every `LOG_EVERY_SECONDS`). A group the database refuses is retried
`WRITE_ATTEMPTS` times, then dropped and counted as `dropped_write_error`.

The loss window: scores live only in memory until their group commits. A process killed with
SIGKILL loses the scores of at most the last `flush_seconds` (plus the time one commit takes)
while the database keeps up; while it does not, at most the `queue_rows` scores waiting. A
normal shutdown (SIGTERM, the lifespan's end) flushes the queue first, for up to
`CLOSE_TIMEOUT_SECONDS`. Outcomes are not written through here: `POST /v1/outcomes` commits
before it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio

from leadml.errors import LeadmlError
from leadml.store import ScoreAnswer, Store

log = logging.getLogger("leadml.api.ledger")

WRITE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2
LOG_EVERY_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 10.0
#: How often a request waiting for room looks again: a commit of 500 rows takes longer.
WAIT_POLL_SECONDS = 0.005

#: outcome label -> how many rows; called from the writer thread and from requests.
Counter = Callable[[str, int], None]


def _no_count(outcome: str, rows: int) -> None:
    return None


class LedgerWriter:
    """A bounded queue of scores and the thread that commits them in groups."""

    def __init__(
        self,
        store: Store,
        *,
        queue_rows: int = 50_000,
        batch_rows: int = 500,
        flush_seconds: float = 0.05,
        wait_seconds: float = 10.0,
        count: Counter = _no_count,
        on_waiting: Callable[[int], None] | None = None,
        on_waited: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.queue_rows = queue_rows
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.wait_seconds = wait_seconds
        self._count = count
        # Told how long a request waited for room (back-pressure shows in /metrics).
        self._on_waited = on_waited
        # Told the queue length at every wake-up (a gauge; set_function has no multiprocess mode).
        self._on_waiting = on_waiting
        # deque.append and popleft are atomic: the scoring side takes no lock.
        self._queue: deque[ScoreAnswer] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0
        self._dropped_since_log = 0
        self._busy = False
        # False from a refused commit until the next one succeeds: then waiting would only
        # slow the scoring, so a full queue drops (and counts) at once.
        self._committing = True

    @property
    def waiting(self) -> int:
        """Scores in the queue, not yet committed."""
        return len(self._queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadml-ledger", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[ScoreAnswer]) -> bool:
        """Queue `rows` for the ledger; False (and counted, logged) when the queue is full."""
        queue = self._queue
        if len(queue) + len(rows) > self.queue_rows:
            self._dropped(len(rows))
            return False
        queue.extend(rows)
        if len(queue) >= self.batch_rows:
            self._wake.set()
        return True

    async def submit_or_wait(self, rows: Sequence[ScoreAnswer]) -> bool:
        """`submit`, but while the queue is full and the writer keeps committing, wait (without
        blocking the event loop) for room, up to `wait_seconds`; False when the rows were
        dropped after all (counted and logged by `submit`)."""
        if not self._has_room(len(rows)) and self._worth_waiting(len(rows)):
            started = time.monotonic()
            deadline = started + self.wait_seconds
            self._wake.set()
            while (
                not self._has_room(len(rows)) and self._committing and time.monotonic() < deadline
            ):
                await anyio.sleep(WAIT_POLL_SECONDS)
            if self._on_waited is not None:
                self._on_waited(time.monotonic() - started)
        return self.submit(rows)

    def _has_room(self, rows: int) -> bool:
        return len(self._queue) + rows <= self.queue_rows

    def _worth_waiting(self, rows: int) -> bool:
        alive = self._thread is not None and self._thread.is_alive()
        return (
            alive
            and self._committing
            and self.wait_seconds > 0
            and rows <= self.queue_rows
            and not self._stopping.is_set()
        )

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Commit what waits (for up to `timeout` seconds) and stop the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error(
                    "the ledger writer did not finish within %.0f s; %d scores are not in the"
                    " ledger",
                    timeout,
                    len(self._queue),
                )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (for tests and shutdown); True when it is."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline:
            if not self._queue and not self._busy:
                return True
            time.sleep(0.005)
        return False

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._on_waiting is not None:
                self._on_waiting(len(self._queue))
            while self._queue:
                self._busy = True
                self._write(self._take())
            self._busy = False
            if self._stopping.is_set() and not self._queue:
                return

    def _take(self) -> list[ScoreAnswer]:
        group: list[ScoreAnswer] = []
        queue = self._queue
        while queue and len(group) < self.batch_rows:
            group.append(queue.popleft())
        return group

    def _write(self, group: list[ScoreAnswer]) -> None:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self.store.record_score_answers(group)
            except LeadmlError as error:
                self._committing = False
                if attempt == WRITE_ATTEMPTS:
                    log.error(
                        "the ledger lost %d scores: the database refused them %d times (%s)",
                        len(group),
                        WRITE_ATTEMPTS,
                        error,
                    )
                    self._count("dropped_write_error", len(group))
                    return
                time.sleep(RETRY_PAUSE_SECONDS * attempt)
            else:
                self._committing = True
                self._count("written", len(group))
                return

    def _dropped(self, rows: int) -> None:
        self._count("dropped_queue_full", rows)
        self._dropped_since_log += rows
        now = time.monotonic()
        if now - self._last_drop_log >= LOG_EVERY_SECONDS:
            log.warning(
                "the score ledger's queue is full (%d scores waiting): %d scores were not recorded"
                " since the last warning; the database is too slow or unreachable",
                len(self._queue),
                self._dropped_since_log,
            )
            self._last_drop_log = now
            self._dropped_since_log = 0


#: A page's scripts send this header so their scores are told apart in the ledger.
SOURCE_HEADER = "X-LeadML-Source"
PAGE_SOURCE = "page"


def score_source(headers: Mapping[str, str], default: str) -> str:
    """Where a score came from: "page" when the pages' scripts say so, else the route's own."""
    return PAGE_SOURCE if headers.get(SOURCE_HEADER) == PAGE_SOURCE else default


def ledger_rows(
    model_name: str,
    records: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    source: str,
) -> list[ScoreAnswer]:
    """Ledger entries for scores as answered: the lead as validated (the features as scored) and
    the response given for it. Kept cheap: this runs in the request."""
    now = datetime.now(UTC)
    return [
        ScoreAnswer(model_name, record, result, source, now)
        for record, result in zip(records, results, strict=True)
    ]
