"""store: everything news-monitor keeps, and every SQL statement it runs.

Owns the database: the `Store` protocol the rest of the code types against (base.py) and its
SQLite implementation `SqliteStore` (sqlite.py), built from one part per domain: sources,
articles, polls (one poll's transaction), stories, outbox, mutes, maintenance; plus the schema
and its migrations, the file's troubles (file.py), the stored time format (times.py) and the
writer thread. Callers open it with `open_store` and call its methods; they never see SQL.

May import models, errors, text, secrets, and the pure `stories` core, which it calls inside
its transactions (is it a copy, which story, is it news), and the `rules` matcher with its FTS5
pre-filter, which `search` runs. Nothing above it (service, delivery, cli, runtime) and no other
domain package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    "open_store",
]


def open_store(database: str | Path, **options: Any) -> Store:
    """The store at `database` (`timeout=`, `read_only=`). The one constructor the service and
    the CLI call: a PostgreSQL URL will pick that backend here; today it is a SQLite file."""
    return SqliteStore(database, **options)
