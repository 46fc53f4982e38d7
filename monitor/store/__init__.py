"""store: everything news-monitor keeps, and every SQL statement it runs.

Owns the database: the `Store` protocol the rest of the code types against (base.py) and its
SQLite implementation `SqliteStore` (sqlite.py), built from one part per domain: sources,
articles, polls (one poll's transaction), stories, outbox, mutes, maintenance; plus the schema
and its migrations, the file's troubles (file.py), the stored time format (times.py), the
writer thread, the writes a server that went away missed (late.py), and the copy of a SQLite
database into PostgreSQL (transfer.py: `migrate`).
Callers open it with `open_store` and call its methods; they never see SQL.

May import models, errors, text, secrets, and the pure `stories` core, which it calls inside
its transactions (is it a copy, which story, is it news), and the `rules` matcher with its FTS5
pre-filter, which `search` runs. Nothing above it (service, delivery, cli, runtime) and no other
domain package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.errors import StorageError
from monitor.store.base import (
    ArticleStore,
    MaintenanceStore,
    MuteStore,
    OutboxStore,
    SourceStore,
    Store,
    StoryStore,
)
from monitor.store.sqlite import SqliteStore

__all__ = [
    "ArticleStore",
    "MaintenanceStore",
    "MuteStore",
    "OutboxStore",
    "SourceStore",
    "SqliteStore",
    "Store",
    "StoryStore",
    "describe",
    "exists",
    "is_server",
    "open_store",
]


def open_store(database: str | Path, **options: Any) -> Store:
    """The store at `database` (`timeout=`, `read_only=`): a SQLite file, or the PostgreSQL
    database of a `postgresql://` URL (store/pg/, psycopg loaded only then). The one
    constructor the service and the CLI call."""
    if is_server(database):
        try:
            from monitor.store.pg import PgStore
        except ImportError as exc:  # psycopg is the [postgresql] extra
            raise StorageError(
                f"a postgresql:// database needs psycopg: pip install 'news-monitor[postgresql]' "
                f"({exc})"
            ) from None
        return PgStore(str(database), **options)
    return SqliteStore(database, **options)


def is_server(database: str | Path) -> bool:
    """Is `database` a server's URL (config gives those as str, files as Path)?"""
    return isinstance(database, str) and database.startswith(("postgresql://", "postgres://"))


def exists(database: str | Path) -> bool:
    """Is there a database to read yet? A server always is (its schema is made on opening)."""
    return is_server(database) or Path(database).is_file()


def describe(database: str | Path) -> str:
    """`database` for messages and logs: a URL without its password."""
    if is_server(database):
        from monitor.store.pg.connection import shown

        return shown(str(database))
    return str(database)
