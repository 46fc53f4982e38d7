"""Rows <-> plain data for the store's parts: article rows, matches, outbox inserts, item
hashes, facts, and the shared "most shared keys" lookup.

Every function runs inside the caller's transaction (or read) and holds no state; the parts
(sources.py, articles.py, polls.py, ...) call them so that each statement is written once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.models import Alert, Article, Fact, FactKind, Known, Match
from monitor.store.times import from_ts, ts
from monitor.stories.terms import NAME, NUMBER, QUOTE

_FACT_KINDS: dict[str, FactKind] = {QUOTE: "quote", NUMBER: "number", NAME: "name"}


def fact(term: str) -> Fact:
    """A fact as stored (its term: `@draghi`, `#1400`, `"quoted words`) as the named type; a
    fact of a database older than schema v6 (`e:...`) stays whole."""
    kind = _FACT_KINDS.get(term[:1])
    return Fact(kind, term[1:]) if kind is not None else Fact("legacy", term)


def global_guid(guid: str) -> bool:
    """Does this GUID look globally unique (URL, URN, tag:)? Only then is it trusted across
    sources; a bare number is only unique within its own source."""
    return ":" in guid or "/" in guid


_ARTICLE_ROW = (
    "id, source, guid, url, title, summary, text, language, published, first_seen, updated_at, "
    "author, fingerprint"
)


def insert_articles(conn: sqlite3.Connection, values: Sequence[tuple]) -> None:
    """Insert new articles, ids given (store/batch.py numbers them under the write lock)."""
    conn.executemany(
        f"INSERT INTO articles ({_ARTICLE_ROW}) VALUES ({', '.join('?' * 13)})", values
    )


def update_articles(conn: sqlite3.Connection, values: Sequence[tuple]) -> None:
    """Store edits: (title, summary, text, fingerprint, updated_at, id) each."""
    conn.executemany(
        "UPDATE articles SET title = ?, summary = ?, text = ?, fingerprint = ?, "
        "updated_at = ?, edits = edits + 1 WHERE id = ?",
        values,
    )


def insert_alerts(conn: sqlite3.Connection, alerts: Sequence[Alert], now: datetime) -> int:
    """Queue alerts inside the caller's transaction; returns how many rows are new.

    One row per key, and a key is one article on one channel (alerts/plan.py): an alert whose
    key is queued already joins that row (`merge_alert`) instead of making a second message.
    """
    added = 0
    for alert in alerts:
        cur = conn.execute(
            "INSERT INTO outbox (key, rule, rules, channel, article_id, story_id, "
            "digest, title, text, markdown, html, created_at, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                alert.key,
                alert.rule,
                json.dumps([alert.rule], ensure_ascii=False),
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
        if cur.rowcount:
            added += 1
        else:
            merge_alert(conn, alert, now)
    return added


def merge_alert(conn: sqlite3.Connection, alert: Alert, now: datetime) -> None:
    """Another rule's alert of a queued article and channel: the row names that rule too.

    Only a row that has not gone out yet changes (pending, never tried, not being sent); one
    sent, dead, dropped or in flight stays as it is, and the article is not sent again. The
    row goes at the earliest time any of its rules allows, in the form that rule asks for
    (on its own, or in that rule's digest; at equal times on its own); its text is written
    again, naming every rule, before it is sent (delivery/texts.py).
    """
    row = conn.execute(
        "SELECT id, rules, due_at, digest FROM outbox WHERE key = ? AND status = 'pending' "
        "AND attempts = 0 AND (lease_until IS NULL OR lease_until <= ?)",
        (alert.key, ts(now)),
    ).fetchone()
    if row is None:
        return
    outbox_id, rules, due_at, digest = row
    names = json.loads(rules)
    if alert.rule in names:
        return  # a replay
    earlier = (ts(alert.due_at), int(alert.digest)) < (due_at, digest)
    names = [alert.rule, *names] if earlier else [*names, alert.rule]
    conn.execute(
        "UPDATE outbox SET rules = ?, story_id = COALESCE(story_id, ?) WHERE id = ?",
        (json.dumps(names, ensure_ascii=False), alert.story_id, outbox_id),
    )
    if earlier:
        message = alert.message
        conn.execute(
            "UPDATE outbox SET rule = ?, due_at = ?, digest = ?, title = ?, text = ?, "
            "markdown = ?, html = ? WHERE id = ?",
            (alert.rule, ts(alert.due_at), int(alert.digest), message.title, message.text,
             message.markdown, message.html, outbox_id),
        )  # fmt: skip


def insert_match(
    conn: sqlite3.Connection, article_id: int, match: Match, now: datetime, held: str | None = None
) -> bool:
    """Record that a rule matched an article (`held`: why it alerts nothing, alerts/held.py);
    False if it was recorded before (a replay)."""
    cur = conn.execute(
        "INSERT INTO matches (article_id, rule, terms, matched_at, held) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (article_id, match.rule, json.dumps(list(match.terms)), ts(now), held),
    )
    return cur.rowcount == 1


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
ARTICLE_COLUMNS = ", ".join(_FIELDS)
ARTICLE_COLUMNS_A = ", ".join(f"a.{f}" for f in _FIELDS)  # the same, of `articles a`


def article_from_row(row: Sequence) -> Article:
    """An Article from the ARTICLE_COLUMNS of a row."""
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


@dataclass(slots=True)
class PollRows:
    """What the window holds about one poll's articles (see poll_rows)."""

    by_url: dict[str, Known] = field(default_factory=dict)  # stored article of each URL
    by_guid: dict[str, list[Known]] = field(default_factory=dict)  # ... of each GUID, by id
    copies: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, URL) -> original
    fingerprints: dict[str, int] = field(default_factory=dict)  # lowest id seen since `since`
    max_id: int = 0  # the highest article id


_POLL_CHUNK = 200  # articles per statement: at most 4 parameters each, under SQLite's 999


def poll_rows(conn: sqlite3.Connection, articles: Sequence[Article], since: datetime) -> PollRows:
    """Everything a poll's decisions may ask about its articles, one statement per 200: the
    stored articles with their URLs or GUIDs, their recorded copies, and the first article
    with their fingerprint first seen since `since` (as `LIMIT 1` on the fingerprint index)."""
    found = PollRows()
    wanted = {(a.source, a.url) for a in articles}
    for start in range(0, len(articles), _POLL_CHUNK):
        sql, params = _poll_query(articles[start : start + _POLL_CHUNK], since, first=not start)
        for part, key, row_id, source, title, fingerprint in conn.execute(sql, params):
            if part == 0:
                found.by_url[key] = Known(row_id, source, title, fingerprint)
            elif part == 1:
                found.by_guid.setdefault(key, []).append(Known(row_id, source, title, fingerprint))
            elif part == 2 and (source, key) in wanted:
                found.copies[(source, key)] = int(row_id)
            elif part == 3:
                found.fingerprints[key] = int(row_id)
            elif part == 4:
                found.max_id = int(row_id or 0)
    for same in found.by_guid.values():
        same.sort(key=lambda k: k.id)
    return found


def _poll_query(chunk: Sequence[Article], since: datetime, first: bool) -> tuple[str, list]:
    urls = list(dict.fromkeys(a.url for a in chunk))
    guids = list(dict.fromkeys(a.guid for a in chunk if a.guid and a.guid != a.url))
    prints = list(dict.fromkeys(a.fingerprint for a in chunk if a.fingerprint))
    cols = "id, source, title, fingerprint"
    parts = [f"SELECT 0, url, {cols} FROM articles WHERE url IN ({_marks(urls)})"]
    params: list = [*urls]
    if guids:
        parts.append(f"SELECT 1, guid, {cols} FROM articles WHERE guid IN ({_marks(guids)})")
        params += guids
    parts.append(
        f"SELECT 2, url, article_id, source, NULL, NULL FROM copies WHERE url IN ({_marks(urls)})"
    )
    params += urls
    if prints:
        parts.append(
            "SELECT 3, fingerprint, MIN(id), NULL, NULL, NULL FROM articles WHERE fingerprint IN "
            f"({_marks(prints)}) AND first_seen >= ? GROUP BY fingerprint"
        )
        params += [*prints, ts(since)]
    if first:
        parts.append("SELECT 4, NULL, MAX(id), NULL, NULL, NULL FROM articles")
    return " UNION ALL ".join(parts), params


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def known_rows(conn: sqlite3.Connection, articles: Sequence[Article]) -> dict[str, Known]:
    """The stored article (or recorded copy) each candidate URL is, batched, read before the
    poll's transaction: a recorded copy (reported as unchanged), else the same URL, else the
    same GUID (lowest id, as `LIMIT 1` on the guid index; see global_guid), as Batch.known."""
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
    found: dict[str, Known] = {}
    for article in articles:
        original = copies.get((article.source, article.url))
        if original is not None:
            found[article.url] = Known(original, article.source, article.title, article.fingerprint)
            continue
        row = by_url.get(article.url)
        if row is None and article.guid and article.guid != article.url:
            rows = by_guid.get(article.guid, [])
            if not global_guid(article.guid):
                rows = [r for r in rows if r[1] == article.source]
            row = rows[0] if rows else None
        if row is not None:
            found[article.url] = Known(*row)
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
        at = ts(now)
        conn.executemany(
            "INSERT INTO item_hashes (source, item_key, item_hash, seen_at, listed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, item_key) DO UPDATE SET "
            "item_hash = excluded.item_hash, seen_at = excluded.seen_at, "
            "listed_at = excluded.listed_at",
            [(source, key, digest, at, at) for key, digest in rows],
        )


def touch_listed(conn: sqlite3.Connection, source: str, keys: Sequence[str], now: datetime) -> None:
    """The items a body lists are still there: their "seen" keys must outlive retention (the
    items a poll processed got their `listed_at` from save_item_hashes already)."""
    if keys:
        at = ts(now)
        conn.executemany(
            "UPDATE item_hashes SET listed_at = ? WHERE source = ? AND item_key = ?",
            [(at, source, key) for key in keys],
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
    newest = " UNION ALL ".join(  # PostgreSQL (before 16) wants every subquery named
        f"SELECT * FROM (SELECT {target}, at FROM {table} WHERE {key} = ? AND at >= ? "
        f"ORDER BY at DESC LIMIT ?) k{n}"
        for n in range(len(keys))
    )
    sql = (
        f"SELECT {target}, COUNT(*) AS shared, MAX(at) AS latest FROM ({newest}) newest "
        f"GROUP BY {target} ORDER BY shared DESC, latest DESC LIMIT ?"
    )
    return sql, [*(p for k in keys for p in (k, ts(since), per_key)), limit]
