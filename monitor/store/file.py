"""The database file itself: opening it to write or only to read, migrating it when several
processes start at once, and noticing when it is deleted or replaced under a running process.

Why apart from the store's parts: these are the file's troubles (permissions, concurrent
creation, an operator moving files), not the data's; the parts keep the SQL and ask here.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import sqlite_utils

from monitor.errors import StorageError
from monitor.store.schema import MIGRATIONS

Identity = tuple[int, int]  # (st_dev, st_ino) of the file as opened
# what SQLite says when it cannot make a WAL file's `-shm` index (a directory this user cannot
# write, a read-only file system)
_NO_SHM = ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN")


def open_database(
    path: Path, timeout: float, read_only: bool
) -> tuple[sqlite_utils.Database, Identity | None]:
    """The file, and its identity for `lost`. To write: created if missing, in WAL mode and
    migrated. `read_only` (the commands that only read) never creates or writes it, so they work
    on a file this user cannot write and never leave an empty one behind."""
    if read_only and not path.is_file():
        raise StorageError(f"no database at {path} yet: run `news-monitor once` or `run` first")
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect_read_only(path, timeout) if read_only else _connect(path, timeout)
        opened = None if str(path) == ":memory:" else _identity(os.stat(path))
        db = sqlite_utils.Database(conn)
        if not read_only:
            migrate(db)
        return db, opened
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        raise StorageError(f"cannot open database {path}: {exc}") from exc


def migrate(db: sqlite_utils.Database) -> None:
    """Apply every migration past the file's `user_version`, each in its own transaction.

    The version is read again under the write lock (`BEGIN IMMEDIATE`), in the transaction that
    migrates and bumps it: processes opening a new file at once apply each migration once.
    """
    conn = db.conn
    for version, migration in enumerate(MIGRATIONS, start=1):
        if version <= _version(conn):  # up to date: no need to wait for the lock
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version > _version(conn):  # else another process got there first
                migration(db)
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def lost(path: Path, opened: Identity | None) -> str | None:
    """Why the file at `path` is no longer the one opened, or None.

    SQLite writes on into a deleted or replaced file (it holds it open): nobody would ever read
    that, and the next start makes or takes another file. The Store asks before every write
    transaction, the daemon at every tick and in its health check.
    """
    if opened is None:
        return None
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return f"database file {path} was deleted"
    except OSError as exc:
        return f"database file {path} cannot be checked: {exc.strerror}"
    return None if _identity(now) == opened else f"database file {path} was replaced"


def _identity(stat: os.stat_result) -> Identity:
    return (stat.st_dev, stat.st_ino)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    _use_wal(conn, timeout)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL. Processes that create a file at once race for this, and SQLite
    answers "database is locked" at once instead of waiting (busy timeout): try again."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A `mode=ro` connection; an older file is migrated first (that needs write access)."""
    conn = open_read_only(path, timeout)
    if _version(conn) < len(MIGRATIONS):
        conn.close()
        upgrade = _connect(path, timeout)
        try:
            migrate(sqlite_utils.Database(upgrade))
        finally:
            upgrade.close()
        conn = open_read_only(path, timeout)
    return conn


def open_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """SQLite reads a WAL file through its `-shm` index, which it cannot create in a directory
    this user cannot write. With no `-wal` file no writer has the file open, so it is read
    `immutable` then (a writer starting meanwhile may leave this reader a stale view)."""
    uri = path.absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        _version(conn)
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        no_index = getattr(exc, "sqlite_errorname", "") in _NO_SHM
        if not no_index or path.with_name(path.name + "-wal").exists():
            raise
    return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None)
