"""A throwaway PostgreSQL server for the tests: Debian's postgresql binaries, a cluster made by
`initdb` in a temporary directory, listening on a free 127.0.0.1 port only, owned by an
unprivileged user (`postgres` when the tests run as root: the server refuses root), removed
at the end of the session. Each test that asks gets a database of its own.

Where no server can be started (no initdb on the machine, as on a laptop without PostgreSQL),
`PgServer.start` raises `Unavailable` with the reason, and the tests that need one skip with it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from itertools import count
from pathlib import Path

__all__ = ["PgServer", "Unavailable"]

_SERIAL = count(1)


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def _bin_dir() -> Path:
    """Where initdb and pg_ctl are: Debian keeps them in /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if versions:
        return Path(versions[0]).parent
    raise Unavailable("PostgreSQL is not installed (no initdb): apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One cluster on 127.0.0.1:`port`, superuser `monitor`, trust authentication (loopback)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="nm-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres").pw_name
            except KeyError:
                shutil.rmtree(self.root, ignore_errors=True)
                raise Unavailable(
                    "running as root and no `postgres` user to own the cluster"
                ) from None
            shutil.chown(self.root, self._user)

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def start(self) -> PgServer:
        if not self.data.exists():
            made = self._run(
                "initdb", "-D", str(self.data), "-U", "monitor", "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
            if made.returncode != 0:
                raise Unavailable(f"initdb failed: {made.stderr.strip()[-300:]}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300 -c shared_buffers=64MB"
        )
        started = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-500:]
            raise Unavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://monitor@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"nm_{os.getpid()}_{next(_SERIAL)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the server accepts connections again (after a restart), at most `timeout` s."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
