"""The sources part of the store: the config's sources, their polling state, leases and health.

`record_success` is a function of the caller's connection because a poll's success is written
in the same transaction as its articles (polls.py); a failure or an unchanged body is written
on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from monitor import secrets
from monitor.models import GoodPoll, Source, SourceState
from monitor.store.connection import SqliteBase
from monitor.store.times import from_ts, ts

_TABLE = (
    *("name", "url", "kind", "enabled", "last_success", "last_poll", "last_error"),
    *("last_error_at", "consecutive_errors", "next_poll", "items_seen", "polls_ok"),
    *("polls_failed", "articles", "last_skipped", "skipped_reasons", "last_warning"),
    "last_clean",
)
_HEALTH = ("name", "url", "enabled", "last_success", "last_error", "last_error_at")
_HEALTH += ("consecutive_errors", "added_at", "down_since", "last_warning", "last_clean")
_TIMES = ("last_success", "last_poll", "last_error_at", "next_poll", "added_at", "down_since")
_TIMES += ("last_clean",)


def _times_parsed(row: dict) -> dict:
    for key in _TIMES:
        if key in row:
            row[key] = from_ts(row[key])
    return row


class SourcesMixin(SqliteBase):
    def sync_sources(self, sources: Sequence[Source], now: datetime) -> None:
        """Make the sources table follow the config; keep state of sources that stay.

        Batched (executemany; the names as one JSON array): hundreds of thousands of sources
        are past both engines' limit on parameters of one statement."""
        with self.immediate() as conn:
            conn.executemany(
                "INSERT INTO sources (name, url, kind, enabled, next_poll) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "url = excluded.url, kind = excluded.kind, enabled = excluded.enabled",
                [(s.name, s.shown_url, s.kind, int(s.enabled), ts(now)) for s in sources],
            )
            # a changed URL is a new feed: forget the old conditional-GET state
            conn.executemany(
                "UPDATE sources SET etag = NULL, last_modified = NULL, body_hash = NULL "
                "WHERE name = ? AND state_url IS NOT ? ",
                [(s.name, s.shown_url) for s in sources],
            )
            names = json.dumps([s.name for s in sources])
            conn.execute(
                "UPDATE sources SET enabled = 0 WHERE enabled != 0 AND name NOT IN "
                "(SELECT value FROM json_each(?))",
                (names,),
            )

    def source_state(self, name: str) -> SourceState:
        row = self.db.execute(
            "SELECT etag, last_modified, body_hash, last_success, last_error, last_error_at, "
            "consecutive_errors, next_poll FROM sources WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return SourceState()
        return SourceState(
            etag=row[0],
            last_modified=row[1],
            body_hash=row[2],
            last_success=from_ts(row[3]),
            last_error=row[4],
            last_error_at=from_ts(row[5]),
            consecutive_errors=row[6] or 0,
            next_poll=from_ts(row[7]),
        )

    def due_sources(self, now: datetime, limit: int = 1000) -> list[str]:
        """Names of enabled sources whose next poll time has come, oldest first."""
        rows = self.db.execute(
            "SELECT name FROM sources WHERE enabled = 1 AND (next_poll IS NULL OR next_poll <= ?) "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_poll NULLS FIRST LIMIT ?",
            (ts(now), ts(now), limit),
        ).fetchall()  # NULLS FIRST: SQLite's order, said for PostgreSQL (NULLs last otherwise)
        return [r[0] for r in rows]

    def claim_due(self, now: datetime, lease_until: datetime, limit: int = 100) -> list[str]:
        """Lease up to `limit` due sources, oldest first, in one statement: the names leased.
        (PostgreSQL's skips rows other workers are claiming: pg/store.py.)"""
        with self.immediate() as conn:
            rows = conn.execute(
                "UPDATE sources SET lease_until = ? WHERE name IN (SELECT name FROM sources "
                "WHERE enabled = 1 AND (next_poll IS NULL OR next_poll <= ?) "
                "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_poll NULLS FIRST "
                "LIMIT ?) RETURNING name",
                (ts(lease_until), ts(now), ts(now), limit),
            ).fetchall()
        return [row[0] for row in rows]

    def release_source(self, name: str, next_poll: datetime) -> None:
        """Hand a claimed source back unpolled, due at `next_poll` (a poll the database cut)."""
        with self.immediate() as conn:
            conn.execute(
                "UPDATE sources SET lease_until = NULL, next_poll = ? WHERE name = ?",
                (ts(next_poll), name),
            )

    def next_polls(self) -> list[datetime | None]:
        """Each enabled source's next poll time (None: due at once), for "next poll in"."""
        rows = self.db.execute("SELECT next_poll FROM sources WHERE enabled = 1").fetchall()
        return [from_ts(r[0]) for r in rows]

    def claim_source(self, name: str, now: datetime, lease_until: datetime) -> bool:
        """Take a lease on a source so that two polls of it never overlap."""
        with self.immediate() as conn:
            cur = conn.execute(
                "UPDATE sources SET lease_until = ? WHERE name = ? "
                "AND (lease_until IS NULL OR lease_until <= ?)",
                (ts(lease_until), name, ts(now)),
            )
            return cur.rowcount == 1

    def record_failure(
        self, name: str, error: str, now: datetime, next_poll: datetime, url: str
    ) -> None:
        with self.immediate() as conn:
            conn.execute(
                "UPDATE sources SET last_error = ?, last_error_at = ?, last_poll = ?, "
                "consecutive_errors = consecutive_errors + 1, polls_failed = polls_failed + 1, "
                "next_poll = ?, lease_until = NULL, state_url = ? WHERE name = ?",
                (secrets.mask(error), ts(now), ts(now), ts(next_poll), url, name),
            )

    def record_unchanged(self, poll: GoodPoll) -> None:
        """A good poll that stored nothing new."""
        with self.immediate() as conn:
            record_success(conn, poll, 0)

    def sources_health(self) -> list[dict]:
        """Every source with its polling history, for the `sources` table (times parsed)."""
        rows = self.db.execute(
            "SELECT s.name, s.url, s.kind, s.enabled, s.last_success, s.last_poll, s.last_error, "
            "s.last_error_at, s.consecutive_errors, s.next_poll, s.items_seen, s.polls_ok, "
            "s.polls_failed, (SELECT COUNT(*) FROM articles a WHERE a.source = s.name), "
            "s.last_skipped, s.skipped_reasons, s.last_warning, s.last_clean "
            "FROM sources s ORDER BY s.name"
        ).fetchall()
        found = [_times_parsed(dict(zip(_TABLE, row, strict=True))) for row in rows]
        for row in found:
            row["skipped_reasons"] = json.loads(row["skipped_reasons"] or "{}")
        return found

    def health_rows(self) -> list[dict]:
        """Every source with what `source_health.assess` needs, times parsed. Apart from
        sources_health: the daemon reads this every minute, without counting articles."""
        rows = self.db.execute(f"SELECT {', '.join(_HEALTH)} FROM sources ORDER BY name")
        return [_times_parsed(dict(zip(_HEALTH, row, strict=True))) for row in rows.fetchall()]

    def set_down_since(self, name: str, since: datetime | None) -> None:
        """Remember the down episode already announced (None: none)."""
        with self.immediate() as conn:
            conn.execute("UPDATE sources SET down_since = ? WHERE name = ?", (ts(since), name))


def record_success(
    conn: sqlite3.Connection,
    poll: GoodPoll,
    new_items: int,
    skipped: Sequence[tuple[str, int]] | None = None,
) -> None:
    """`skipped`: (reason, count) of the items this poll read and left out; None (nothing was
    read: same body, 304) keeps the last poll's, since the feed still holds those items.
    `poll.warning` None (nothing was read) keeps the last one, since the body is the same.
    `last_clean` moves only when the body stands without a warning."""
    reasons = None if skipped is None else json.dumps(dict(skipped))
    total = None if skipped is None else sum(n for _, n in skipped)
    conn.execute(
        "UPDATE sources SET etag = ?, last_modified = ?, body_hash = COALESCE(?, body_hash), "
        "last_success = ?, last_poll = ?, consecutive_errors = 0, polls_ok = polls_ok + 1, "
        "next_poll = ?, lease_until = NULL, state_url = ?, last_new = ?, "
        "items_seen = items_seen + ?, last_skipped = COALESCE(?, last_skipped), "
        "skipped_reasons = COALESCE(?, skipped_reasons), "
        "last_warning = CASE WHEN CAST(? AS TEXT) IS NULL THEN last_warning "  # typed: PostgreSQL
        "ELSE NULLIF(?, '') END, "
        "last_clean = CASE WHEN COALESCE(?, last_warning, '') = '' THEN ? ELSE last_clean END "
        "WHERE name = ?",
        (
            *(poll.etag, poll.last_modified, poll.body_hash, ts(poll.now), ts(poll.now)),
            *(ts(poll.next_poll), poll.url, new_items, new_items, total, reasons),
            *(poll.warning, poll.warning, poll.warning, ts(poll.now), poll.source),
        ),
    )
