"""Rows <-> plain data for the store modules: time text, article rows, outbox inserts.

Split out of store.py so each store module stays small; every function runs inside the
caller's transaction and holds no state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from monitor.models import Alert, Article


def ts(value: datetime | None) -> str | None:
    """A datetime as fixed-format UTC text (sortable); None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def insert_article(conn: sqlite3.Connection, article: Article) -> int:
    cur = conn.execute(
        "INSERT INTO articles (source, guid, url, title, summary, text, language, published, "
        "first_seen, updated_at, author, fingerprint) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            article.source,
            article.guid,
            article.url,
            article.title,
            article.summary,
            article.text,
            article.language,
            ts(article.published),
            ts(article.first_seen),
            ts(article.first_seen),
            article.author,
            article.fingerprint,
        ),
    )
    return int(cur.lastrowid)


def update_article(
    conn: sqlite3.Connection, article_id: int, article: Article, now: datetime
) -> None:
    conn.execute(
        "UPDATE articles SET title = ?, summary = ?, text = ?, fingerprint = ?, "
        "updated_at = ?, edits = edits + 1 WHERE id = ?",
        (
            article.title,
            article.summary,
            article.text,
            article.fingerprint,
            ts(now),
            article_id,
        ),
    )


def insert_alerts(conn: sqlite3.Connection, alerts: Sequence[Alert], now: datetime) -> int:
    """Queue alerts inside the caller's transaction; an existing key is left as it is."""
    added = 0
    for alert in alerts:
        cur = conn.execute(
            "INSERT OR IGNORE INTO outbox (key, rule, channel, article_id, story_id, digest, "
            "title, text, markdown, html, created_at, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alert.key,
                alert.rule,
                alert.channel,
                alert.article_id,
                alert.story_id,
                int(alert.digest),
                alert.message.title,
                alert.message.text,
                alert.message.markdown,
                alert.message.html,
                ts(now),
                ts(alert.due_at),
            ),
        )
        added += cur.rowcount
    return added


_FIELDS = [
    "source",
    "guid",
    "url",
    "title",
    "summary",
    "text",
    "language",
    "published",
    "first_seen",
    "author",
    "fingerprint",
]
_ARTICLE_COLUMNS = ", ".join(_FIELDS)
_ARTICLE_COLUMNS_A = ", ".join(f"a.{f}" for f in _FIELDS)


def _article(row: Sequence) -> Article:
    values = dict(zip(_FIELDS, row, strict=True))
    values["published"] = from_ts(values["published"])
    values["first_seen"] = from_ts(values["first_seen"])
    return Article(**values)
