"""Pytest fixtures for a real, throwaway PostgreSQL server started by the test session.

Import them in tests/conftest.py (tests/ has no __init__.py, so pytest puts it on sys.path):

    from pg import postgres_url, store_url  # noqa: F401

`postgres_url` starts one server for the whole session (initdb in a temporary folder, a free port on
127.0.0.1, trust authentication) and stops it at the end. `store_url` gives each test a fresh empty
database: a SQLite file, and a new PostgreSQL database (the `postgres` parameter is marked
`pytest.mark.postgres`, so `-m "not postgres"` skips it).

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user (or
`nobody`), through `runuser`, `setpriv` or `su`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

SERVER_USER_CANDIDATES = ("postgres", "nobody")
SERVER_START_ATTEMPTS = 3
SERVER_START_TIMEOUT_S = 60
SUPERUSER = "postgres"
SESSION_DATABASE = "leadml_test"

_database_counter = itertools.count(1)


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    pg_ctl: Path


@dataclass(frozen=True)
class RunningServer:
    binaries: PostgresBinaries
    base_dir: Path
    port: int
    run_as: list[str]

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _version_key(bin_dir: str) -> tuple[int, ...]:
    version = Path(bin_dir).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_postgres_binaries() -> PostgresBinaries | None:
    """The newest Debian-installed PostgreSQL, else the one on PATH."""
    debian_dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for bin_dir in debian_dirs:
        initdb, pg_ctl = Path(bin_dir, "initdb"), Path(bin_dir, "pg_ctl")
        if initdb.is_file() and pg_ctl.is_file():
            return PostgresBinaries(initdb=initdb, pg_ctl=pg_ctl)
    initdb_path, pg_ctl_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb_path and pg_ctl_path:
        return PostgresBinaries(initdb=Path(initdb_path), pg_ctl=Path(pg_ctl_path))
    return None


def _unprivileged_user() -> pwd.struct_passwd:
    for name in SERVER_USER_CANDIDATES:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        f"running as root but none of the users {SERVER_USER_CANDIDATES} exists to run PostgreSQL"
    )


def _run_as_prefix(user: pwd.struct_passwd) -> list[str]:
    """A command prefix that runs the rest of the command as `user` (we are root)."""
    runuser, setpriv = shutil.which("runuser"), shutil.which("setpriv")
    if runuser:
        return [runuser, "-u", user.pw_name, "--"]
    if setpriv:
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
        ]
    su = shutil.which("su")
    if su:
        # su takes one shell string; _run joins the command for it.
        return [su, "-s", "/bin/sh", user.pw_name, "-c"]
    raise RuntimeError("running as root but neither runuser, setpriv nor su is available")


def _run(prefix: list[str], command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = [*prefix, shlex.join(command)] if prefix[-1:] == ["-c"] else [*prefix, *command]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    return subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _world_traversable(path: Path) -> bool:
    """Whether every folder on the way to `path` lets other users through."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [path, *path.parents])


def _make_base_dir(owner: pwd.struct_passwd | None) -> Path:
    parent = Path(tempfile.gettempdir())
    if owner is not None and not _world_traversable(parent):
        # The server user must reach its data folder; /tmp is open to everyone on Debian.
        parent = Path("/tmp")
    base_dir = Path(tempfile.mkdtemp(prefix="leadml-pg-", dir=parent))
    if owner is not None:
        os.chown(base_dir, owner.pw_uid, owner.pw_gid)
    return base_dir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log_file: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _init_cluster(binaries: PostgresBinaries, base_dir: Path, prefix: list[str]) -> None:
    command = [
        str(binaries.initdb),
        "-D",
        str(base_dir / "data"),
        "-A",
        "trust",
        "-U",
        SUPERUSER,
        "--no-sync",
        "--no-locale",
        "-E",
        "UTF8",
    ]
    result = _run(prefix, command, cwd=base_dir)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _start_server(binaries: PostgresBinaries, base_dir: Path, prefix: list[str]) -> int:
    """Start the server on a free port; retry when another process took the port first."""
    log_file = base_dir / "server.log"
    failure = ""
    for _ in range(SERVER_START_ATTEMPTS):
        port = _free_port()
        server_options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base_dir}"
        )
        command = [
            str(binaries.pg_ctl),
            "-D",
            str(base_dir / "data"),
            "-l",
            str(log_file),
            "-o",
            server_options,
            "-w",
            "-t",
            str(SERVER_START_TIMEOUT_S),
            "start",
        ]
        result = _run(prefix, command, cwd=base_dir)
        if result.returncode == 0:
            return port
        failure = f"{result.stdout}{result.stderr}\n{_log_tail(log_file)}"
    raise RuntimeError(f"pg_ctl start failed {SERVER_START_ATTEMPTS} times:\n{failure}")


def _stop_server(server: RunningServer) -> None:
    command = [str(server.binaries.pg_ctl), "-D", str(server.data_dir), "-m", "immediate", "stop"]
    _run(server.run_as, command, cwd=server.base_dir)


def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server behind `server_url`; return its SQLAlchemy URL."""
    with psycopg.connect(_libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _missing_binaries_outcome() -> NoReturn:
    reason = (
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
        "or on PATH; install them with `sudo apt-get install postgresql` (or `make system-deps`)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty database on a PostgreSQL server that lives for the test session."""
    binaries = find_postgres_binaries()
    if binaries is None:
        _missing_binaries_outcome()
    owner = _unprivileged_user() if os.geteuid() == 0 else None
    prefix = _run_as_prefix(owner) if owner is not None else []
    base_dir = _make_base_dir(owner)
    server: RunningServer | None = None
    try:
        _init_cluster(binaries, base_dir, prefix)
        port = _start_server(binaries, base_dir, prefix)
        server = RunningServer(binaries=binaries, base_dir=base_dir, port=port, run_as=prefix)
        yield create_database(server.url("postgres"), SESSION_DATABASE)
    finally:
        if server is not None:
            _stop_server(server)
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadml.db'}"
    server_url: str = request.getfixturevalue("postgres_url")
    return create_database(server_url, f"leadml_test_{next(_database_counter)}")
