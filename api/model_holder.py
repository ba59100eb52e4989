"""The model being served, swapped atomically; reloads that refuse a broken model.

A request reads `holder.current` once and keeps that `ServingModel` to the end, so a swap never
changes a model under a request in flight: it finishes on the old one, which is freed after.
Reloads (the alias poll or POST /v1/admin/reload) run one at a time; loading and checking happen
in a worker thread while the old model keeps serving, and only a model that passed every check is
swapped in. A refused version is remembered so the poll does not retry it every interval; the
admin call always retries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import anyio.to_thread

from api.serving import ServingModel
from leadml.registry import version_of

log = logging.getLogger("leadml.api")

Outcome = Literal["reloaded", "unchanged", "refused"]


@dataclass(frozen=True)
class Refusal:
    at: datetime
    source: str
    message: str
    refused_version: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "at": self.at.isoformat(),
            "source": self.source,
            "message": self.message,
            "refused_version": self.refused_version,
        }


@dataclass(frozen=True)
class ReloadResult:
    outcome: Outcome
    model_version: str | None
    previous_version: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {
            "outcome": self.outcome,
            "model_version": self.model_version,
            "previous_version": self.previous_version,
            "message": self.message,
        }


class ModelHolder:
    """The current ServingModel, replaced whole under a lock."""

    def __init__(self) -> None:
        self._current: ServingModel | None = None
        self._lock = threading.Lock()
        self.last_reload_at: datetime | None = None
        self.last_error: Refusal | None = None

    @property
    def current(self) -> ServingModel | None:
        return self._current

    def swap(self, model: ServingModel) -> ServingModel | None:
        with self._lock:
            previous, self._current = self._current, model
            self.last_reload_at = datetime.now(UTC)
            self.last_error = None
        return previous

    def verified(self) -> None:
        """The source was loaded and checked again and is what is served: no error stands."""
        with self._lock:
            self.last_reload_at = datetime.now(UTC)
            self.last_error = None

    def refused(self, error: Refusal) -> None:
        with self._lock:
            self.last_reload_at = error.at
            self.last_error = error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class Reloader:
    """Loads the version the configured source points to, if it changed, and swaps it in."""

    def __init__(
        self,
        holder: ModelHolder,
        *,
        source: str,
        fingerprint: Callable[[], str],
        load: Callable[[], ServingModel],
        on_swap: Callable[[ServingModel, ServingModel | None], None],
        on_refuse: Callable[[Refusal], None] = lambda error: None,
        on_asked: Callable[[], None] = lambda: None,
    ) -> None:
        self.holder = holder
        self.source = source
        self._fingerprint = fingerprint
        self._load = load
        self._on_swap = on_swap
        self._on_refuse = on_refuse
        self._on_asked = on_asked
        self._lock = asyncio.Lock()
        self._refused: str | None = None
        self._poll_error: str | None = None

    async def reload(self, *, poll: bool = False, announce: bool = True) -> ReloadResult:
        """Load the source again. The poll skips what it saw before; an asked-for reload (admin
        call) always loads and verifies, and then, if `announce`, tells the other workers."""
        result = await self._reload(poll)
        if not poll and announce:
            self._on_asked()
        return result

    async def _reload(self, poll: bool) -> ReloadResult:
        async with self._lock:
            current = self.holder.current
            now_version = current.version if current is not None else None
            try:
                target = await anyio.to_thread.run_sync(self._fingerprint)
            except Exception as error:
                message = f"cannot read {self.source}: {_first_line(error)}"
                if poll:
                    self._log_poll_error(message)
                return ReloadResult("refused", now_version, now_version, message)
            self._poll_error = None
            if poll and current is not None and target == current.fingerprint:
                return ReloadResult(
                    "unchanged", now_version, now_version, f"already serving {target}"
                )
            if poll and target == self._refused:
                return ReloadResult(
                    "unchanged", now_version, now_version, f"{target} was refused before"
                )
            # An admin call loads and verifies the files again even when nothing seems to have
            # moved: a damaged or edited file is found now, not at the next restart.
            return await self._load_and_swap(current, target)

    async def _load_and_swap(self, current: ServingModel | None, target: str) -> ReloadResult:
        now_version = current.version if current is not None else None
        try:
            model = await anyio.to_thread.run_sync(self._load)
        except Exception as error:
            self._refused = target
            refusal = Refusal(
                at=datetime.now(UTC),
                source=self.source,
                message=_first_line(error),
                refused_version=version_of(target),
            )
            self.holder.refused(refusal)
            self._on_refuse(refusal)
            log.error(
                "refused %s (%s): %s; still serving version %s",
                target,
                self.source,
                refusal.message,
                now_version,
            )
            return ReloadResult(
                "refused", now_version, now_version, f"refused {target}: {refusal.message}"
            )
        if current is not None and model.fingerprint == current.fingerprint:
            self._refused = None
            self.holder.verified()
            return ReloadResult(
                "unchanged",
                now_version,
                now_version,
                f"verified {target} again; already serving it",
            )
        previous = self.holder.swap(model)
        self._refused = None
        self._on_swap(model, previous)
        log.info(
            "now serving %s version %s (was %s); fast path: %s",
            model.name,
            model.version,
            now_version,
            model.predictor.kind,
        )
        return ReloadResult(
            "reloaded", model.version, now_version, f"now serving {model.fingerprint}"
        )

    def _log_poll_error(self, message: str) -> None:
        if message != self._poll_error:
            log.warning("alias poll: %s; still serving the current model", message)
            self._poll_error = message

    async def poll_forever(self, interval: float) -> None:
        """Check the source every `interval` seconds; never raises (cancel it to stop)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload(poll=True)
            except Exception:  # a bug here must not stop the poll
                log.exception("alias poll failed")
