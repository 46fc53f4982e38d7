"""SQL of source health and file compaction, beside `store.py` like `store_outbox.py`.

Why apart: `store.py` holds the poll's transaction; these are housekeeping reads and writes of
the daemon's once-a-minute health check and hourly retention (monitor/source_health.py decides).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from monitor.errors import StorageError
from monitor.store.sqlite import Store, from_ts, ts

_HEALTH = ("name", "url", "enabled", "last_success", "last_error", "last_error_at")
_HEALTH += ("consecutive_errors", "added_at", "down_since", "last_warning", "last_clean")


def health_rows(store: Store) -> list[dict]:
    """Every source with what `source_health.assess` needs, times parsed."""
    rows = store.db.execute(f"SELECT {', '.join(_HEALTH)} FROM sources ORDER BY name")
    out = []
    for row in rows.fetchall():
        item = dict(zip(_HEALTH, row, strict=True))
        for key in ("last_success", "last_error_at", "added_at", "down_since", "last_clean"):
            item[key] = from_ts(item[key])
        out.append(item)
    return out


def set_down_since(store: Store, name: str, since: datetime | None) -> None:
    """Remember the down episode already announced (None: none)."""
    with store.immediate() as conn:
        conn.execute("UPDATE sources SET down_since = ? WHERE name = ?", (ts(since), name))


def file_size(store: Store) -> int:
    """Bytes on disk: the database file plus its write-ahead log."""
    files = (store.path, Path(f"{store.path}-wal"))
    return sum(p.stat().st_size for p in files if p.exists())


def compact(store: Store, min_free: float = 0.2) -> tuple[int, int]:
    """VACUUM when at least `min_free` of the pages are free (after a prune), then fold the log
    back so the file really shrinks; returns the bytes on disk before and after.

    VACUUM rewrites the whole file (it needs that much free disk for a moment) and holds the
    write lock meanwhile, hence the threshold: it runs after big prunes only.
    """
    before = file_size(store)
    try:
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        free = store.db.execute("PRAGMA freelist_count").fetchone()[0]
        if pages and free / pages >= min_free:
            store.db.execute("VACUUM")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise StorageError(f"database {store.path}: cannot compact: {exc}") from exc
    return before, file_size(store)
