"""Versioned schema migrations, applied in order; `PRAGMA user_version` is the version.

Never edit a released migration: append a new one. Each runs inside one transaction.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from monitor.store.times import SQL_NOW, ts
from monitor.stories import copies


def _v1_foundation(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "name": str,
            "url": str,
            "kind": str,
            "enabled": int,
            "state_url": str,  # the URL the conditional-GET state belongs to
            "etag": str,
            "last_modified": str,
            "body_hash": str,
            "last_success": str,
            "last_poll": str,
            "last_error": str,
            "last_error_at": str,
            "consecutive_errors": int,
            "next_poll": str,
            "lease_until": str,
            "last_new": int,
            "items_seen": int,
            "polls_ok": int,
            "polls_failed": int,
        },
        pk="name",
        defaults={
            "enabled": 1,
            "consecutive_errors": 0,
            "last_new": 0,
            "items_seen": 0,
            "polls_ok": 0,
            "polls_failed": 0,
        },
        not_null={"url", "kind"},
    )
    db["articles"].create(
        {
            "id": int,
            "source": str,
            "guid": str,
            "url": str,
            "title": str,
            "summary": str,
            "text": str,
            "language": str,
            "published": str,
            "first_seen": str,
            "updated_at": str,
            "edits": int,
            "author": str,
            "fingerprint": str,
        },
        pk="id",
        defaults={"edits": 0},
        not_null={"source", "guid", "url", "title"},
    )
    db["articles"].create_index(["url"], unique=True)
    db["articles"].create_index(["guid"])
    db["articles"].create_index(["fingerprint"])
    db["articles"].create_index(["published"])
    db["matches"].create(
        {"article_id": int, "rule": str, "terms": str, "matched_at": str},
        pk=("article_id", "rule"),
        foreign_keys=[("article_id", "articles", "id")],
    )
    db["articles"].enable_fts(
        ["title", "summary", "text"],
        fts_version="FTS5",
        tokenize="unicode61 remove_diacritics 2",
        create_triggers=True,
    )


def _v2_outbox(db: sqlite_utils.Database) -> None:
    """Alerts waiting to be sent, and every attempt to send them."""
    db["outbox"].create(
        {
            "id": int,
            "key": str,  # idempotency key: one row per (rule, article-or-story, channel)
            "rule": str,
            "channel": str,
            "article_id": int,
            "story_id": int,
            "digest": int,  # 1 = collected into one summary message at due_at
            "title": str,
            "text": str,
            "markdown": str,
            "html": str,
            "created_at": str,
            "due_at": str,
            "status": str,  # pending | sent | dead
            "attempts": int,
            "last_error": str,
            "last_attempt_at": str,
            "sent_at": str,
            "lease_until": str,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0, "digest": 0},
        not_null={"key", "rule", "channel", "title", "status", "due_at"},
    )
    db["outbox"].create_index(["key"], unique=True)
    db["outbox"].create_index(["status", "due_at"])
    db["outbox"].create_index(["channel", "sent_at"])
    db["attempts"].create(
        {"id": int, "outbox_id": int, "at": str, "ok": int, "error": str},
        pk="id",
        foreign_keys=[("outbox_id", "outbox", "id")],
    )
    db["attempts"].create_index(["outbox_id"])


def _v3_stories(db: sqlite_utils.Database) -> None:
    """Copies, similarity sketches and stories (see monitor/stories/ and store/stories.py).

    `signatures`, `sig_keys` and `story_keys` hold the window only (pruned as it moves);
    `copies`, `stories`, `story_articles` and `story_alerts` are history.
    """
    db["signatures"].create({"article_id": int, "at": str, "sig": bytes}, pk="article_id")
    db["signatures"].create_index(["at"])
    db["sig_keys"].create({"key": int, "article_id": int, "at": str})
    db["sig_keys"].create_index(["key"])
    db["sig_keys"].create_index(["at"])
    db["copies"].create(
        {
            "id": int,
            "article_id": int,  # the original
            "source": str,
            "url": str,
            "guid": str,
            "title": str,
            "seen_at": str,
            "tier": str,  # url | fingerprint | similar
            "similarity": float,
        },
        pk="id",
        not_null={"article_id", "source", "url"},
    )
    db["copies"].create_index(["source", "url"], unique=True)
    db["copies"].create_index(["url"])
    db["copies"].create_index(["article_id"])
    db["stories"].create(
        {
            "id": int,
            "first_seen": str,
            "last_seen": str,
            "headline": str,
            "size": int,
            "facts": str,  # JSON list, capped
        },
        pk="id",
        defaults={"size": 0},
    )
    db["stories"].create_index(["last_seen"])
    db["story_articles"].create(
        {"article_id": int, "story_id": int, "at": str, "fresh": str}, pk="article_id"
    )
    db["story_articles"].create_index(["story_id"])
    db["story_keys"].create({"key": str, "story_id": int, "at": str})
    db["story_keys"].create_index(["key"])
    db["story_keys"].create_index(["at"])
    db["story_alerts"].create(
        {"story_id": int, "rule": str, "n": int, "article_id": int, "at": str},
        pk=("story_id", "rule", "n"),
    )


def _v4_source_health(db: sqlite_utils.Database) -> None:
    """When each source was added (a source that never succeeded is down `failing_after` past
    it) and the down episode already announced (see monitor/service/source_health.py)."""
    db["sources"].add_column("added_at", str)
    db["sources"].add_column("down_since", str)
    now = ts(datetime.now(UTC))
    db.execute("UPDATE sources SET added_at = ?", (now,))  # unknown before: count from now
    db.execute(
        "CREATE TRIGGER sources_added AFTER INSERT ON sources WHEN NEW.added_at IS NULL BEGIN "
        f"UPDATE sources SET added_at = COALESCE(NEW.next_poll, {SQL_NOW}) "
        "WHERE name = NEW.name; END"
    )
    db["outbox"].create_index(["created_at"])  # history retention deletes by age


def _v5_item_hashes(db: sqlite_utils.Database) -> None:
    """A hash of each feed item as last processed, per source: an unchanged item in a changed
    body skips normalizing, matching and story work (pipeline.analyse_items). Pruned by age
    with the articles (SqliteStore.prune)."""
    db["item_hashes"].create(
        {"source": str, "item_key": str, "item_hash": str, "seen_at": str},
        pk=("source", "item_key"),
    )
    db["item_hashes"].create_index(["seen_at"])


def _v6_story_terms(db: sqlite_utils.Database) -> None:
    """Stories by text similarity (monitor/stories/grouping.py, store/stories.py).

    Each grouped article keeps its idf-weighted terms, language and join score while it is in the
    window; `term_df` and `window_docs` count the window's articles per term and 6-hour bucket
    (document frequency); `story_index` files each story under its articles' heaviest terms;
    `stories.centroid` sums its articles' vectors. The fact-based `story_keys` of version 3
    go; `story_alerts` says why each alert went.
    """
    for column in ("vector", "language"):
        db["story_articles"].add_column(column, str)
    db["story_articles"].add_column("score", float)
    db["story_articles"].create_index(["at"])
    db["story_alerts"].add_column("reason", str)
    db["stories"].add_column("centroid", str)
    db["stories"].add_column("languages", str)
    db.execute("CREATE INDEX story_articles_vector ON story_articles (at) WHERE vector IS NOT NULL")
    db.execute(
        "CREATE TABLE term_df (term TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (term, bucket)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX term_df_bucket ON term_df (bucket)")
    db.execute("CREATE TABLE window_docs (bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    db.execute(
        "CREATE TABLE story_index (term TEXT NOT NULL, story_id INTEGER NOT NULL, at TEXT, "
        "PRIMARY KEY (term, story_id)) WITHOUT ROWID"
    )
    db["story_index"].create_index(["story_id"])
    db["story_index"].create_index(["term", "at"])
    db["story_index"].create_index(["at"])
    db["story_keys"].drop()


def _v7_skipped_items(db: sqlite_utils.Database) -> None:
    """What the last poll that read a source's items left out, and why: `sources` shows it, so
    a feed whose items are not stored (duplicates, items with nothing to know them by) never
    looks healthy and empty. `skipped_reasons` is JSON: {"duplicate": 2, ...}."""
    db["sources"].add_column("last_skipped", int, not_null_default=0)
    db["sources"].add_column("skipped_reasons", str)


def _v8_source_warning(db: sqlite_utils.Database) -> None:
    """A good poll that read a malformed body (a feed cut off mid-item) keeps what it could read
    but records `last_warning` ("malformed: ..."); `last_clean` is the last good poll without
    one, so a feed that stays malformed past `failing_after` counts as down (source_health)."""
    db["sources"].add_column("last_warning", str)
    db["sources"].add_column("last_clean", str)
    db.execute("UPDATE sources SET last_clean = last_success")  # unknown before: all were clean


def _v9_listed_items(db: sqlite_utils.Database) -> None:
    """When each item was last listed by its source: "seen" keys of items still in their feed
    outlive retention, so such an item never alerts twice (store/rows.py prune_unlisted)."""
    db["item_hashes"].add_column("listed_at", str)
    db.execute("UPDATE item_hashes SET listed_at = seen_at")
    db["item_hashes"].create_index(["source", "listed_at"])
    db["sig_keys"].create_index(["key", "at"])  # copy lookups read a key's newest sketches


def _v10_sketch_hash(db: sqlite_utils.Database) -> None:
    """Similarity sketches are hashed with xxh3 instead of blake2b (stories/copies.py, issue 13):
    old and new hashes never match, so the window's stored sketches are computed again from
    their articles (as pipeline.candidate makes them) and filed under their new keys; an
    article seen before the upgrade is still found as the original of a copy. The copies
    recorded before keep their originals (they hold no hashes).

    Also: an index on `articles.source` (has_articles, asked by every poll whose items are all
    new, scanned the whole table: 4.8 s of CPU in a cold start of 1,000 feeds, 0.03 s with
    it). Two indexes nothing reads go, one less to write per article and per sketch key:
    `articles (published)` (article inserts ~12% cheaper) and `sig_keys (key)`, which
    `(key, at)` (v9) serves.
    """
    conn = db.conn
    filed = conn.execute(
        "SELECT s.article_id, s.at, a.title, a.summary, a.text, a.language FROM signatures s "
        "JOIN articles a ON a.id = s.article_id"
    ).fetchall()
    conn.execute("DELETE FROM signatures")
    conn.execute("DELETE FROM sig_keys")
    for start in range(0, len(filed), 1000):
        sigs = [
            (article_id, at, copies.sketch(copies.lead(title, summary or "", text or ""), lang))
            for article_id, at, title, summary, text, lang in filed[start : start + 1000]
        ]
        conn.executemany(
            "INSERT INTO signatures (article_id, at, sig) VALUES (?, ?, ?)",
            [(article_id, at, array("q", sig).tobytes()) for article_id, at, sig in sigs if sig],
        )
        conn.executemany(
            "INSERT INTO sig_keys (key, article_id, at) VALUES (?, ?, ?)",
            [(k, article_id, at) for article_id, at, sig in sigs for k in copies.index_keys(sig)],
        )
    db["articles"].create_index(["source"])
    conn.execute("DROP INDEX IF EXISTS idx_articles_published")
    conn.execute("DROP INDEX IF EXISTS idx_sig_keys_key")


def _v11_mutes(db: sqlite_utils.Database) -> None:
    """Backlog and noise control (issue 14): `mutes` holds the rules and sources muted until a
    time (`news-monitor mute`), read at every poll; `matches.held` says why a match was
    recorded but not alerted ("muted", "old", "backlog": alerts/held.py), NULL when it alerted
    as usual. The partial index serves `unmute`'s list of what a mute held."""
    db["mutes"].create(
        {"kind": str, "name": str, "since": str, "until": str},
        pk=("kind", "name"),
        not_null={"since", "until"},
    )
    db["matches"].add_column("held", str)
    db.execute("CREATE INDEX idx_matches_held ON matches (held, matched_at) WHERE held IS NOT NULL")


def _v12_alert_rules(db: sqlite_utils.Database) -> None:
    """One message per article and channel (issue 14): an outbox row speaks for every rule
    that matched its article, listed in `rules` (a JSON array; `rule`, its first, is the one
    whose timing it follows). Rows of before name their one rule."""
    db["outbox"].add_column("rules", str)
    db.execute("UPDATE outbox SET rules = json_array(rule)")


def _v13_jobs(db: sqlite_utils.Database) -> None:
    """Housekeeping jobs (retention, source health) run once per period however many workers
    share the database: a worker runs one only when it moves the job's `next_run` past now
    (MaintenanceMixin.claim_job); PostgreSQL's schema has the same table."""
    db.execute("CREATE TABLE jobs (name TEXT PRIMARY KEY, next_run TEXT NOT NULL, holder TEXT)")


Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = [
    _v1_foundation,
    _v2_outbox,
    _v3_stories,
    _v4_source_health,
    _v5_item_hashes,
    _v6_story_terms,
    _v7_skipped_items,
    _v8_source_warning,
    _v9_listed_items,
    _v10_sketch_hash,
    _v11_mutes,
    _v12_alert_rules,
    _v13_jobs,
]
