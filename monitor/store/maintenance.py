"""The housekeeping part of the store: retention, file compaction, the write check of
`/healthz`, and handing back the leases of dead processes.

Why apart: these run hourly, per minute or at start, never inside a poll; what to keep and when
is the service's decision (settings.retention, history_retention, process.alone).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from monitor.errors import StorageError
from monitor.store import stories
from monitor.store.connection import SqliteBase
from monitor.store.rows import prune_unlisted
from monitor.store.times import ts


class MaintenanceMixin(SqliteBase):
    def prune(self, before: datetime, history_before: datetime | None = None) -> int:
        """Retention; returns how many article rows were deleted. Articles first seen before
        `before` go, except those of a story, match or alert: they only lose summary and text.
        Stories, sent/dead alerts (and then their articles) go after `history_before`. A
        pending alert keeps its article whole. `compact` shrinks the file."""
        cut, hist = ts(before), ts(history_before or before)
        with self.immediate() as conn:
            done = "SELECT id FROM outbox WHERE status != 'pending' AND created_at < ?"
            conn.execute(f"DELETE FROM attempts WHERE outbox_id IN ({done})", (hist,))
            conn.execute("DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (hist,))
            old = "SELECT id FROM stories WHERE last_seen < ?"
            for table in ("story_articles", "story_alerts", "story_index"):
                conn.execute(f"DELETE FROM {table} WHERE story_id IN ({old})", (hist,))
            conn.execute("DELETE FROM stories WHERE last_seen < ?", (hist,))
            prune_unlisted(conn, before)
            kept = (
                "SELECT article_id FROM story_articles UNION SELECT article_id FROM outbox "
                "WHERE article_id IS NOT NULL"
            )
            matched = f"SELECT article_id FROM matches WHERE article_id NOT IN ({kept})"
            # a matched article outside any story or alert is history too, until history_before
            doomed = (
                f"SELECT id FROM articles WHERE first_seen < ? AND id NOT IN ({kept}) "
                f"AND (first_seen < ? OR id NOT IN ({matched}))"
            )
            params = (cut, hist)
            conn.execute(f"DELETE FROM matches WHERE article_id IN ({doomed})", params)
            stories.delete_articles(conn, doomed, params)
            cur = conn.execute(f"DELETE FROM articles WHERE id IN ({doomed})", params)
            conn.execute(
                "UPDATE articles SET summary = '', text = '' WHERE first_seen < ? "
                "AND (summary != '' OR text != '') AND id NOT IN (SELECT article_id FROM outbox "
                "WHERE status = 'pending' AND article_id IS NOT NULL)",
                (cut,),
            )
            return cur.rowcount

    def file_size(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        files = (self.path, Path(f"{self.path}-wal"))
        return sum(p.stat().st_size for p in files if p.exists())

    def compact(self, min_free: float = 0.2) -> tuple[int, int]:
        """VACUUM when at least `min_free` of the pages are free (after a prune), then fold the
        log back so the file really shrinks; returns the bytes on disk before and after.

        VACUUM rewrites the whole file (it needs that much free disk for a moment) and holds the
        write lock meanwhile, hence the threshold: it runs after big prunes only.
        """
        before = self.file_size()
        try:
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            if pages and free / pages >= min_free:
                self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StorageError(f"database {self.path}: cannot compact: {exc}") from exc
        return before, self.file_size()

    def writable(self) -> bool:
        """Can we take the write lock right now?"""
        return self.write_problem() is None

    def write_problem(self) -> str | None:
        """Why a write would fail right now (the locked file, the server that does not answer),
        None if it would not: what /healthz says of the database."""
        try:
            with self.immediate():
                pass
        except StorageError as exc:
            return str(exc)
        return None

    def claim_job(self, name: str, now: datetime, next_run: datetime) -> bool:
        """Is it this process's turn to run housekeeping job `name`? True once per period across
        every process on the database: the one whose upsert moves `next_run` from the past to
        `next_run` (one atomic statement on either backend)."""
        with self.immediate() as conn:
            won = conn.execute(
                "INSERT INTO jobs (name, next_run) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET next_run = excluded.next_run WHERE jobs.next_run <= ? RETURNING name",
                (name, ts(next_run), ts(now)),
            ).fetchall()
        return bool(won)

    def release_leases(self) -> tuple[int, int]:
        """Hand back every source and outbox lease: (sources, alerts).

        Only for a process that knows it is alone on the database (`process.alone()`): then
        every lease was left by a dead process."""
        with self.immediate() as conn:
            sources = conn.execute(
                "UPDATE sources SET lease_until = NULL WHERE lease_until IS NOT NULL"
            ).rowcount
            alerts = conn.execute(
                "UPDATE outbox SET lease_until = NULL WHERE lease_until IS NOT NULL "
                "AND status = 'pending'"
            ).rowcount
        return sources, alerts
