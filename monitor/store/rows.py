"""Rows <-> plain data for the store modules: time text, article rows, outbox inserts.

Split out of store.py so each store module stays small; every function runs inside the
caller's transaction and holds no state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
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
    # fromisoformat reads our fixed format (Z suffix included) at a tenth of strptime's cost
    return datetime.fromisoformat(value).astimezone(UTC)


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


def _select_in(
    conn: sqlite3.Connection, sql: str, params: tuple, values: Sequence[str]
) -> Iterator[tuple]:
    """Rows of `sql` with its `IN ({})` filled by `values`, 400 at a time (SQLite's limit)."""
    values = list(dict.fromkeys(values))
    for start in range(0, len(values), 400):
        chunk = values[start : start + 400]
        yield from conn.execute(sql.format(",".join("?" * len(chunk))), (*params, *chunk))


def known_rows(conn: sqlite3.Connection, articles: Sequence[Article]) -> dict[str, tuple]:
    """(id, source, title, fingerprint) of the stored article each candidate URL is, batched,
    with Store._find's precedence: a recorded copy (reported as unchanged), else the same URL,
    else the same GUID (lowest id, as `LIMIT 1` on the guid index). A GUID is trusted across
    sources only when it looks globally unique (URL, URN, tag:)."""
    copies: dict[tuple[str, str], int] = {}
    for source in {a.source for a in articles}:
        urls = [a.url for a in articles if a.source == source]
        sql = "SELECT url, article_id FROM copies WHERE source = ? AND url IN ({})"
        for url, original in _select_in(conn, sql, (source,), urls):
            copies[(source, url)] = int(original)
    sql = "SELECT url, id, source, title, fingerprint FROM articles WHERE url IN ({})"
    by_url = {row[0]: row[1:] for row in _select_in(conn, sql, (), [a.url for a in articles])}
    guids = [a.guid for a in articles if a.guid and a.guid != a.url and a.url not in by_url]
    by_guid: dict[str, list[tuple]] = {}
    sql = "SELECT guid, id, source, title, fingerprint FROM articles WHERE guid IN ({}) ORDER BY id"
    for row in _select_in(conn, sql, (), guids):
        by_guid.setdefault(row[0], []).append(row[1:])
    found: dict[str, tuple] = {}
    for article in articles:
        original = copies.get((article.source, article.url))
        if original is not None:
            found[article.url] = (original, article.source, article.title, article.fingerprint)
            continue
        row = by_url.get(article.url)
        if row is None and article.guid and article.guid != article.url:
            rows = by_guid.get(article.guid, [])
            if not (":" in article.guid or "/" in article.guid):
                rows = [r for r in rows if r[1] == article.source]
            row = rows[0] if rows else None
        if row is not None:
            found[article.url] = row
    return found


def item_hashes(conn: sqlite3.Connection, source: str) -> dict[str, str]:
    """item key -> hash of the item as last processed, for one source."""
    rows = conn.execute("SELECT item_key, item_hash FROM item_hashes WHERE source = ?", (source,))
    return dict(rows.fetchall())


def save_item_hashes(
    conn: sqlite3.Connection, source: str, rows: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Record new or changed items' hashes (seen_at = when this content was first processed)."""
    if rows:
        conn.executemany(
            "INSERT OR REPLACE INTO item_hashes (source, item_key, item_hash, seen_at, listed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(source, key, digest, ts(now), ts(now)) for key, digest in rows],
        )


def touch_listed(conn: sqlite3.Connection, source: str, keys: Sequence[str], now: datetime) -> None:
    """The items a body lists are still there: their "seen" keys must outlive retention."""
    if keys:
        conn.executemany(
            "UPDATE item_hashes SET listed_at = ? WHERE source = ? AND item_key = ?",
            [(ts(now), source, key) for key in keys],
        )


def prune_unlisted(conn: sqlite3.Connection, before: datetime) -> None:
    """Forget items that left their feed before `before`; items of a source's latest listing
    stay, however old, so an item still listed is never taken for a new one."""
    conn.execute(
        "DELETE FROM item_hashes WHERE listed_at < ? AND listed_at < (SELECT MAX(h.listed_at) "
        "FROM item_hashes h WHERE h.source = item_hashes.source)",
        (ts(before),),
    )


def most_shared(
    table: str,
    key: str,
    target: str,
    keys: Sequence[object],
    since: datetime,
    per_key: int,
    limit: int,
) -> tuple[str, list[object]]:
    """SQL (and its parameters) for the `limit` `target`s of an index `table` filed under most
    of `keys` since `since`, columns (target, shared, latest). Each key brings at most its
    `per_key` newest rows, so the work stays bounded however common a key is."""
    newest = " UNION ALL ".join(
        f"SELECT * FROM (SELECT {target}, at FROM {table} WHERE {key} = ? AND at >= ? "
        "ORDER BY at DESC LIMIT ?)"
        for _ in keys
    )
    sql = (
        f"SELECT {target}, COUNT(*) AS shared, MAX(at) AS latest FROM ({newest}) "
        f"GROUP BY {target} ORDER BY shared DESC, latest DESC LIMIT ?"
    )
    return sql, [*(p for k in keys for p in (k, ts(since), per_key)), limit]
