"""The base every part of the SQLite store builds on: one connection, and write transactions.

Writes that belong together (one poll's articles, matches, alerts and source state) happen in
one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so concurrent writers wait
(busy timeout) instead of failing with "database is locked" on a read-then-write upgrade.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from monitor.errors import StorageError
from monitor.store import file as store_file


class SqliteBase:
    """One connection to the monitor's SQLite file. Use from one thread only."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0, read_only: bool = False) -> None:
        """Open the file (file.open_database); `read_only` never creates or writes it."""
        self.path = Path(path)
        self.db, self._identity = store_file.open_database(self.path, timeout, read_only)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def immediate(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock first (`BEGIN IMMEDIATE`)."""
        if (lost := self.lost()) is not None:
            raise StorageError(lost)
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"database {self.path}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"database {self.path}: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def lost(self) -> str | None:
        """Why the file at `path` is no longer the one opened (file.lost), or None."""
        return store_file.lost(self.path, self._identity)
