"""The worker processes of one `leadml serve --workers N`: what one changes, the others follow.

uvicorn gives each worker its own copy of the app; a request reaches one of them. `leadml serve`
with several workers makes a private folder for them (`LEADML_WORKERS_DIR`) holding:

```
reload.generation   one byte appended per admin reload: its size is the reload generation
policy.generation   the same for MQL policy changes
workers/<pid>.json  what each worker serves now (model version, fingerprint, loaded at)
prometheus/         prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR)
```

An append of one byte is atomic on a local file system, so bumping a generation needs no lock.
Every worker looks at both sizes every `LEADML_WORKER_SYNC_SECONDS` (1 s): a new reload generation
makes it load and verify the source again (as the admin call did), a new policy generation makes
it read the MQL policy from the app database at its next score. So an admin reload reaches every
worker within the sync interval plus one model load, and a policy change within the interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

Kind = Literal["reload", "policy"]
WORKERS_DIR_ENV = "LEADML_WORKERS_DIR"
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def worker_environment(workers: int) -> Iterator[Path | None]:
    """For `leadml serve --workers N` (N > 1): a fresh shared folder, announced to the workers
    through the environment they inherit, removed when the server stops."""
    if workers <= 1:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="leadml-workers-"))
    (folder / "prometheus").mkdir()
    (folder / "workers").mkdir()
    saved = {name: os.environ.get(name) for name in (WORKERS_DIR_ENV, PROMETHEUS_DIR_ENV)}
    os.environ[WORKERS_DIR_ENV] = str(folder)
    os.environ[PROMETHEUS_DIR_ENV] = str(folder / "prometheus")
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerSync:
    """One worker's view of the shared folder."""

    def __init__(self, folder: Path, pid: int | None = None) -> None:
        self.folder = folder
        self.pid = pid or os.getpid()
        (folder / "workers").mkdir(parents=True, exist_ok=True)
        self._seen = {kind: self.generation(kind) for kind in ("reload", "policy")}

    def _path(self, kind: Kind) -> Path:
        return self.folder / f"{kind}.generation"

    def generation(self, kind: Kind) -> int:
        try:
            return self._path(kind).stat().st_size
        except FileNotFoundError:
            return 0

    def bump(self, kind: Kind) -> None:
        """Tell the other workers; this worker has already done it."""
        descriptor = os.open(self._path(kind), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(descriptor, b".")
        finally:
            os.close(descriptor)
        self._seen[kind] = self.generation(kind)

    def changed(self, kind: Kind) -> bool:
        """Whether another worker bumped `kind` since this one last looked (then it has now)."""
        now = self.generation(kind)
        if now == self._seen[kind]:
            return False
        self._seen[kind] = now
        return True

    def publish(self, state: dict[str, Any]) -> None:
        target = self.folder / "workers" / f"{self.pid}.json"
        staging = target.with_suffix(".tmp")
        staging.write_text(json.dumps({"pid": self.pid, **state}))
        os.replace(staging, target)

    def workers(self) -> list[dict[str, Any]]:
        """What every live worker said it serves, by pid."""
        found = []
        for path in sorted((self.folder / "workers").glob("*.json")):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(state, dict) and _alive(int(state.get("pid", 0))):
                found.append(state)
        return found

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            (self.folder / "workers" / f"{self.pid}.json").unlink()


class WorkerHeader:
    """Pure ASGI middleware: `X-Leadml-Worker: <pid>` on every answer, so a caller (or a test)
    can tell which worker answered."""

    def __init__(self, app: Any, pid: int | None = None) -> None:
        self.app = app
        self.value = str(pid or os.getpid()).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_worker(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-leadml-worker", self.value)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_worker)
