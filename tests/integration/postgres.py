"""A throwaway PostgreSQL server for a test session: ``initdb`` and ``pg_ctl`` in a temporary directory.

The server listens only on a unix socket inside its own directory (``listen_addresses = ''``), so
it needs no free port and nothing outside this machine can reach it. ``initdb`` and ``postgres``
refuse to run as root; when the tests run as root (containers, CI), the server runs as an
unprivileged user instead: ``postgres`` (created by the Debian package) if it exists, else
``nobody``. Durability is switched off (``fsync = off``): the data lives only for the session.

    with PostgresServer.running() as server:
        with server.database() as url:  # a fresh, empty database, dropped afterwards
            ...
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

INSTALL_HINT = (
    "install the Debian package `postgresql` (apt-get install -y postgresql; it provides initdb and pg_ctl "
    "in /usr/lib/postgresql/<version>/bin) or put initdb and pg_ctl on PATH"
)
SUPERUSER = "selauto"
PORT = 5432  # only names the socket file (.s.PGSQL.5432) inside the server's own directory
UNPRIVILEGED_USERS = ("postgres", "nobody")
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")  # <version>/bin
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120

SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL binaries are missing or the server could not be started."""


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account the server runs under when the tests run as root."""

    name: str
    uid: int
    gid: int


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates.extend(sorted(DEBIAN_BINDIRS.glob("*/bin"), key=_major_version, reverse=True))
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(f"PostgreSQL server binaries not found (no initdb/pg_ctl/postgres): {INSTALL_HINT}")


def _major_version(bindir: Path) -> int:
    match = re.fullmatch(r"\d+", bindir.parent.name)
    return int(match.group()) if match else -1


def unprivileged_user() -> RunAs | None:
    """None when not root (the server runs as the current user), else the account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise PostgresUnavailable(
        "the tests run as root and PostgreSQL refuses to; no unprivileged user to run it as "
        f"(tried {', '.join(UNPRIVILEGED_USERS)}): create one, e.g. `useradd --system postgres`"
    )


class PostgresServer:
    """One running server; build it with :meth:`running`."""

    def __init__(self, bindir: Path, base: Path, run_as: RunAs | None) -> None:
        self.bindir = bindir
        self.base = base
        self.run_as = run_as
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.version = ""

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[Self]:
        """Start a server in a new temporary directory; stop it and delete the directory on exit."""
        bindir = find_bindir()
        run_as = unprivileged_user()
        base = Path(tempfile.mkdtemp(prefix="selauto-pg-", dir=_temp_parent(run_as)))
        server = cls(bindir, base, run_as)
        try:
            if run_as is not None:
                os.chown(base, run_as.uid, run_as.gid)
            server.start()
            yield server
        finally:
            try:
                server.stop()
            finally:
                shutil.rmtree(base, ignore_errors=True)

    def start(self) -> None:
        self.version = self._run(["initdb", "--version"]).strip()
        self._run(["initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale", "-N"])
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# selective-autonomy test server\n")
            conf.write(f"unix_socket_directories = '{self.base}'\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SETTINGS.items())
        self._run(["pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT_S)])

    def stop(self) -> None:
        """Stop the server if it runs (``pg_ctl stop -m fast``); safe to call twice."""
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run(["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30"])
        except PostgresUnavailable:
            self._run(["pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30"])

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql+psycopg`` URL reaching ``database`` through the server's socket."""
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            database=database,
            query={"host": str(self.base), "port": str(PORT)},
        ).render_as_string(hide_password=False)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database for one test; dropped afterwards, open connections or not."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def _run(self, argv: Sequence[str]) -> str:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        env = {"PATH": f"{self.bindir}:/usr/bin:/bin", "HOME": str(self.base), "LC_ALL": "C", "LANG": "C"}
        options: dict[str, Any] = {}
        if self.run_as is not None:
            options = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        try:
            done = subprocess.run(
                command,
                cwd=self.base,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
                **options,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PostgresUnavailable(f"{' '.join(command)} failed: {error}{self._log_tail()}") from error
        if done.returncode != 0:
            who = f" (as {self.run_as.name})" if self.run_as else ""
            raise PostgresUnavailable(
                f"{' '.join(command)}{who} exited {done.returncode}:\n{done.stdout}{done.stderr}{self._log_tail()}"
            )
        return str(done.stdout)

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines)


def _temp_parent(run_as: RunAs | None) -> str:
    """The system temp dir if the server's user can reach it, else /tmp (a root-only TMPDIR would not do)."""
    parent = Path(tempfile.gettempdir()).resolve()
    if run_as is None:
        return str(parent)
    for directory in (parent, *parent.parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            return "/tmp"
    return str(parent)
