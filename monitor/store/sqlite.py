"""The SQLite store: every SQL statement of news-monitor lives here.

Why one module: a second backend (PostgreSQL with `FOR UPDATE SKIP LOCKED`) must be able to
implement the same small interface, and the pipeline must stay free of SQLite specifics.

Writes that belong together (one poll's articles, matches, alerts and source state) happen in
one `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so concurrent writers wait
(busy timeout) instead of failing with "database is locked" on a read-then-write upgrade.
Times are stored as ISO-8601 UTC text with a fixed format, so they sort as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from monitor import secrets
from monitor.errors import StorageError
from monitor.models import (
    Alert,
    Article,
    Candidate,
    Known,
    Match,
    Saved,
    Source,
    SourceState,
)
from monitor.store import copies as copies
from monitor.store import file as store_file
from monitor.store import stories as stories
from monitor.store import story_views as story_views
from monitor.store.rows import (  # noqa: F401 - ts, from_ts, insert_alerts are re-exported
    _ARTICLE_COLUMNS,
    _ARTICLE_COLUMNS_A,
    _article,
    from_ts,
    insert_alerts,
    insert_article,
    item_hashes,
    known_rows,
    prune_unlisted,
    save_item_hashes,
    touch_listed,
    ts,
    update_article,
)
from monitor.stories.developments import StoryContext


class Store:
    """One connection to the monitor's SQLite file. Use from one thread only."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0, read_only: bool = False) -> None:
        """Open the file (store_file.open_database); `read_only` never creates or writes it."""
        self.path = Path(path)
        self.db, self._identity = store_file.open_database(self.path, timeout, read_only)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and schema ---------------------------------------------------------

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
        """Why the file at `path` is no longer the one opened (store_file.lost), or None."""
        return store_file.lost(self.path, self._identity)

    # -- sources -------------------------------------------------------------------------

    def sync_sources(self, sources: Sequence[Source], now: datetime) -> None:
        """Make the sources table follow the config; keep state of sources that stay."""
        with self.immediate() as conn:
            for source in sources:
                conn.execute(
                    "INSERT INTO sources (name, url, kind, enabled, next_poll) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                    "url = excluded.url, kind = excluded.kind, enabled = excluded.enabled",
                    (source.name, source.shown_url, source.kind, int(source.enabled), ts(now)),
                )
                # a changed URL is a new feed: forget the old conditional-GET state
                conn.execute(
                    "UPDATE sources SET etag = NULL, last_modified = NULL, body_hash = NULL "
                    "WHERE name = ? AND state_url IS NOT ? ",
                    (source.name, source.shown_url),
                )
            names = [s.name for s in sources]
            marks = ",".join("?" * len(names))
            conn.execute(f"UPDATE sources SET enabled = 0 WHERE name NOT IN ({marks})", names)

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
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_poll LIMIT ?",
            (ts(now), ts(now), limit),
        ).fetchall()
        return [r[0] for r in rows]

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

    def record_unchanged(
        self,
        name: str,
        now: datetime,
        next_poll: datetime,
        *,
        url: str,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        warning: str | None = None,
    ) -> None:
        """A good poll that stored nothing new; `warning` as in _record_success."""
        with self.immediate() as conn:
            self._record_success(
                conn, name, now, next_poll, url, etag, last_modified, body_hash, 0, warning=warning
            )

    def _record_success(
        self,
        conn: sqlite3.Connection,
        name: str,
        now: datetime,
        next_poll: datetime,
        url: str,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        new_items: int,
        skipped: Sequence[tuple[str, int]] | None = None,
        warning: str | None = None,
    ) -> None:
        """`skipped`: (reason, count) of the items this poll read and left out; None (nothing was
        read: same body, 304) keeps the last poll's, since the feed still holds those items.
        `warning`: what was wrong with the body read ("malformed: ...", "" for nothing); None
        (nothing was read) keeps the last one, since the body is the same. `last_clean` moves
        only when the body stands without a warning."""
        reasons = None if skipped is None else json.dumps(dict(skipped))
        total = None if skipped is None else sum(n for _, n in skipped)
        conn.execute(
            "UPDATE sources SET etag = ?, last_modified = ?, body_hash = COALESCE(?, body_hash), "
            "last_success = ?, last_poll = ?, consecutive_errors = 0, polls_ok = polls_ok + 1, "
            "next_poll = ?, lease_until = NULL, state_url = ?, last_new = ?, "
            "items_seen = items_seen + ?, last_skipped = COALESCE(?, last_skipped), "
            "skipped_reasons = COALESCE(?, skipped_reasons), "
            "last_warning = CASE WHEN ? IS NULL THEN last_warning ELSE NULLIF(?, '') END, "
            "last_clean = CASE WHEN COALESCE(?, last_warning, '') = '' THEN ? ELSE last_clean END "
            "WHERE name = ?",
            (
                *(etag, last_modified, body_hash, ts(now), ts(now), ts(next_poll), url),
                *(new_items, new_items, total, reasons, warning, warning, warning, ts(now), name),
            ),
        )

    def last_poll(self) -> datetime | None:
        row = self.db.execute("SELECT MAX(last_poll) FROM sources WHERE enabled = 1").fetchone()
        return from_ts(row[0])

    def sources_health(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT s.name, s.url, s.kind, s.enabled, s.last_success, s.last_poll, s.last_error, "
            "s.last_error_at, s.consecutive_errors, s.next_poll, s.items_seen, s.polls_ok, "
            "s.polls_failed, (SELECT COUNT(*) FROM articles a WHERE a.source = s.name), "
            "s.last_skipped, s.skipped_reasons, s.last_warning, s.last_clean "
            "FROM sources s ORDER BY s.name"
        ).fetchall()
        keys = (
            *("name", "url", "kind", "enabled", "last_success", "last_poll", "last_error"),
            *("last_error_at", "consecutive_errors", "next_poll", "items_seen", "polls_ok"),
            *("polls_failed", "articles", "last_skipped", "skipped_reasons", "last_warning"),
            "last_clean",
        )
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for row in found:
            row["skipped_reasons"] = json.loads(row["skipped_reasons"] or "{}")
        return found

    # -- articles ------------------------------------------------------------------------

    def known(self, articles: Iterable[Article]) -> dict[str, Known]:
        """Stored articles (or recorded copies) with the same canonical URL or GUID, keyed by the
        candidate's URL; a few batched queries per poll (store_rows.known_rows)."""
        return {url: Known(*row) for url, row in known_rows(self.db.conn, list(articles)).items()}

    def still_listed(self, source: str, keys: Sequence[str], now: datetime) -> None:
        """A changed body whose items are all unchanged still lists them (see touch_listed)."""
        with self.immediate() as conn:
            touch_listed(conn, source, keys, now)

    def item_hashes(self, source: str) -> dict[str, str]:
        """Item key -> hash of each feed item of `source` as last processed."""
        return item_hashes(self.db.conn, source)

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these GUIDs-or-links are stored already (for the pre-scan fast path)."""
        ids = list(ids)
        hits: set[str] = set()
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            marks = ",".join("?" * len(chunk))
            for (value,) in self.db.execute(
                f"SELECT guid FROM articles WHERE guid IN ({marks}) "
                f"UNION SELECT url FROM articles WHERE url IN ({marks})",
                chunk + chunk,
            ):
                hits.add(value)
        return hits

    @staticmethod
    def _find(conn: sqlite3.Connection, article: Article) -> Known | None:
        row = conn.execute(
            "SELECT id, source, title, fingerprint FROM articles WHERE url = ?", (article.url,)
        ).fetchone()
        if row is None and article.guid and article.guid != article.url:
            # A GUID is trusted across sources only when it looks globally unique (URL, URN,
            # tag:); a bare number is only unique within its own source.
            if ":" in article.guid or "/" in article.guid:
                row = conn.execute(
                    "SELECT id, source, title, fingerprint FROM articles WHERE guid = ? LIMIT 1",
                    (article.guid,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id, source, title, fingerprint FROM articles "
                    "WHERE guid = ? AND source = ? LIMIT 1",
                    (article.guid, article.source),
                ).fetchone()
        return Known(*row) if row else None

    def save_poll(
        self,
        source: str,
        candidates: Sequence[Candidate],
        now: datetime,
        next_poll: datetime,
        *,
        url: str,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        plan: Callable[..., Sequence[Alert]] | None = None,
        window: float = 72 * 3600.0,
        items: Sequence[tuple[str, str]] = (),
        listed: Sequence[str] = (),
        skipped: Sequence[tuple[str, int]] = (),
        warning: str = "",
    ) -> Saved:
        """Store one poll's articles, copies, stories, matches and source state in one transaction.

        Existing articles are looked up again under the write lock, so a concurrent poll of
        another feed of the same outlet cannot create a second row for the same item. A new item
        that is a copy of an article of the last `window` seconds (same URL or GUID from another
        source, same fingerprint, or a similar title + lead) is recorded as a copy and never
        matched again. `plan(article_id, article, match, story)` turns each new match into
        alerts, queued in the same transaction (the outbox). `items`: (key, hash) of the feed
        items this poll processed (see item_hashes); `skipped`: (reason, count) of those it
        left out (normalize.to_articles), shown by `sources`; `warning`: what was wrong with the
        body ("malformed: ...") though its items could be read.
        """
        new_ids: list[int] = []
        edited_ids: list[int] = []
        new_matches: list[tuple[int, Match]] = []
        copied: list[tuple[str, int]] = []
        since = now - timedelta(seconds=window)
        with self.immediate() as conn:
            copies.prune_window(conn, since)
            stories.prune_window(conn, since)
            for candidate in candidates:
                article = candidate.article
                known = self._find(conn, article)
                original = copies.check_copy(conn, candidate, known, now, since)
                if original is not None:
                    if original > 0:
                        copied.append((article.url, original))
                    continue
                if known is None:
                    article_id = insert_article(conn, article)
                    new_ids.append(article_id)
                    if candidate.sketch:
                        copies.file_signature(conn, article_id, candidate.sketch, now)
                    # every new article counts in the window's word frequencies
                    stories.count_terms(conn, [candidate.terms] if candidate.terms else [], now)
                    stories.place_story(conn, article_id, candidate, now, since)
                else:
                    article_id = known.id
                    if known.fingerprint != article.fingerprint or known.title != article.title:
                        update_article(conn, article_id, article, now)
                        edited_ids.append(article_id)
                    stories.place_story(conn, article_id, candidate, now, since)
                for match in candidate.matches:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO matches (article_id, rule, terms, matched_at) "
                        "VALUES (?, ?, ?, ?)",
                        (article_id, match.rule, json.dumps(list(match.terms)), ts(now)),
                    )
                    if cur.rowcount == 1:
                        new_matches.append((article_id, match))
                        if plan is not None:
                            planned = stories.plan_match(
                                conn, plan, article_id, article, match, now
                            )
                            insert_alerts(conn, planned, now)
            save_item_hashes(conn, source, items, now)
            touch_listed(conn, source, listed, now)
            self._record_success(
                conn, source, now, next_poll, url, etag, last_modified, body_hash, len(new_ids),
                skipped, warning,
            )  # fmt: skip
        return Saved(tuple(new_ids), tuple(edited_ids), tuple(new_matches), tuple(copied))

    def story_context(self, article_id: int, rule: str) -> StoryContext | None:
        """A stored article's story as alert planning sees it (for replays and tools)."""
        return stories.story_context(self.db.conn, article_id, rule)

    def story_outlets(self, story_id: int) -> tuple[str, ...]:
        """Every source that carried the story so far (its articles' and their copies')."""
        return stories.story_outlets(self.db.conn, story_id)

    def recent_stories(self, limit: int = 20) -> list[story_views.StoryRow]:
        return story_views.recent_stories(self.db.conn, limit)

    def story_timeline(self, story_id: int) -> list[story_views.TimelineEntry]:
        return story_views.timeline(self.db.conn, story_id)

    def article(self, article_id: int) -> Article | None:
        row = self.db.execute(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        return _article(row) if row else None

    def articles(self, *, limit: int | None = None) -> Iterator[tuple[int, Article]]:
        sql = f"SELECT id, {_ARTICLE_COLUMNS} FROM articles ORDER BY id DESC"
        params: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        for row in self.db.execute(sql, params):
            yield row[0], _article(row[1:])

    def count_articles(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def matches(self, *, limit: int = 50) -> list[tuple[int, Article, Match]]:
        rows = self.db.execute(
            f"SELECT m.article_id, m.rule, m.terms, {_ARTICLE_COLUMNS} FROM matches m "
            "JOIN articles a ON a.id = m.article_id ORDER BY m.rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            (row[0], _article(row[3:]), Match(row[1], tuple(json.loads(row[2])))) for row in rows
        ]

    def match_for(self, article_id: int, rule: str) -> Match | None:
        row = self.db.execute(
            "SELECT terms FROM matches WHERE article_id = ? AND rule = ?", (article_id, rule)
        ).fetchone()
        return Match(rule, tuple(json.loads(row[0]))) if row else None

    def prune(self, before: datetime, history_before: datetime | None = None) -> int:
        """Retention; returns how many article rows were deleted. Articles first seen before
        `before` go, except those of a story, match or alert: they only lose summary and text.
        Stories, sent/dead alerts (and then their articles) go after `history_before`. A
        pending alert keeps its article whole. `store_health.compact` shrinks the file."""
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

    def writable(self) -> bool:
        """Can we take the write lock right now? (for /healthz)"""
        try:
            with self.immediate():
                pass
        except StorageError:
            return False
        return True

    def search(self, query: str, *, limit: int = 20) -> list[tuple[int, Article, str]]:
        """Full-text search (FTS5, diacritics removed); returns id, article and a snippet."""
        try:
            rows = self.db.execute(
                f"SELECT a.id, {_ARTICLE_COLUMNS_A}, "
                "snippet(articles_fts, -1, '[', ']', '…', 12) FROM articles_fts "
                "JOIN articles a ON a.id = articles_fts.rowid WHERE articles_fts MATCH ? "
                "ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StorageError(f"search query {query!r} is not valid: {exc}") from exc
        return [(row[0], _article(row[1:-1]), row[-1]) for row in rows]

    # -- source health (more in monitor/store_health.py) -------------------------------------

    def has_articles(self, source: str) -> bool:
        """Has this source any stored article? (a poll of only new items may mean a gap)"""
        row = self.db.execute("SELECT 1 FROM articles WHERE source = ? LIMIT 1", (source,))
        return row.fetchone() is not None
