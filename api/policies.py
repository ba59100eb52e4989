"""The MQL policy in force, kept at hand for every score.

`PolicyBook.active` reads the store and, for the default policy, rebuilds its figures (about a
millisecond): too slow to call per lead. `PolicyCache` keeps the active policy of the served model
and asks the book again after `refresh_seconds`, or at once after a policy is set through
`ServingPolicyBook` (what the API's policy routes use). Other worker processes see a new policy
after at most `refresh_seconds`; every score names the policy version that decided it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from leadml.errors import LeadmlError
from leadml.policy import ActivePolicy, Holdout, PolicyBook, load_holdout, model_key
from leadml.scoring import Scorer
from leadml.store import Store

log = logging.getLogger("leadml.api")


class PolicyUnavailable(LeadmlError):
    """No MQL policy can be read for the model (the store is down and nothing is cached)."""


class ServingPolicyBook(PolicyBook):
    """A PolicyBook that tells the API's cache when a policy is stored, and knows the holdouts
    of the models the API has loaded (no second download from the registry)."""

    def __init__(self, store: Store, *, on_change: Callable[[], None], **options: Any) -> None:
        super().__init__(store, holdout_loader=self._holdout_of, **options)
        self._on_change = on_change
        self._known: dict[tuple[str, str, str], Holdout] = {}

    def remember_holdout(self, scorer: Scorer, holdout: Holdout) -> None:
        self._known[model_key(scorer)] = holdout

    def _holdout_of(self, scorer: Scorer) -> Holdout:
        known = self._known.get(model_key(scorer))
        return known if known is not None else load_holdout(scorer)

    def set(self, scorer: Scorer, policy: Any, **options: Any) -> Any:
        record = super().set(scorer, policy, **options)
        self._on_change()
        return record


class PolicyCache:
    """The active policy per loaded model, refreshed from the book every `refresh_seconds`."""

    def __init__(self, book: PolicyBook, refresh_seconds: float) -> None:
        self.book = book
        self.refresh_seconds = refresh_seconds
        self._entries: dict[tuple[str, str, str], tuple[float, ActivePolicy]] = {}
        self._lock = asyncio.Lock()
        self._last_error: str | None = None

    def invalidate(self) -> None:
        """Forget every cached policy: the next score reads the book again."""
        self._entries = {}

    def warm(self, scorer: Scorer) -> ActivePolicy:
        """Read the policy now (blocking; call from a worker thread while loading a model)."""
        policy = self.book.active(scorer)
        self._entries[model_key(scorer)] = (time.monotonic(), policy)
        return policy

    def forget(self, scorer: Scorer) -> None:
        self._entries.pop(model_key(scorer), None)

    def cached(self, scorer: Scorer) -> ActivePolicy | None:
        entry = self._entries.get(model_key(scorer))
        return entry[1] if entry is not None else None

    async def active(self, scorer: Scorer) -> ActivePolicy:
        entry = self._entries.get(model_key(scorer))
        if entry is not None and time.monotonic() - entry[0] < self.refresh_seconds:
            return entry[1]
        if entry is not None and self._lock.locked():
            return entry[1]  # another request is refreshing it; do not queue behind it
        async with self._lock:
            fresh = self._entries.get(model_key(scorer))
            if fresh is not None and time.monotonic() - fresh[0] < self.refresh_seconds:
                return fresh[1]
            try:
                policy = await anyio.to_thread.run_sync(self.book.active, scorer)
            except LeadmlError as error:
                return self._stale_or_fail(scorer, entry, error)
            self._entries[model_key(scorer)] = (time.monotonic(), policy)
            if self._last_error is not None:
                log.info("MQL policy store readable again; serving policy v%s", policy.version)
                self._last_error = None
            return policy

    def _stale_or_fail(
        self, scorer: Scorer, entry: tuple[float, ActivePolicy] | None, error: LeadmlError
    ) -> ActivePolicy:
        message = str(error)
        if message != self._last_error:
            log.error("cannot read the MQL policy: %s", message)
            self._last_error = message
        if entry is None:
            raise PolicyUnavailable(
                f"the MQL policy cannot be read ({message}); check LEADML_DATABASE_URL"
            )
        # Keep deciding with the policy last read; try the store again after a while.
        self._entries[model_key(scorer)] = (time.monotonic(), entry[1])
        return entry[1]
