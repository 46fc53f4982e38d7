"""SQL for same-article detection (copies and similarity sketches); called inside the store's
transactions. The decisions are monitor/stories/copies.py's; this module reads the window's
candidates and writes the outcome. `signatures` and `sig_keys` hold the window only."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from datetime import datetime

from monitor.models import Article, Candidate, CopyOf, Known
from monitor.store.rows import most_shared
from monitor.store.times import ts
from monitor.stories import copies

CANDIDATES = 20  # sketches compared with a new one, those sharing the most index keys first
PER_KEY = 100  # sketches one index key can bring, the newest first


def _pack(sig: Sequence[int]) -> bytes:
    return array("q", sig).tobytes()


def _unpack(blob: bytes) -> tuple[int, ...]:
    out = array("q")
    out.frombytes(blob)
    return tuple(out)


# --- copies -----------------------------------------------------------------------------------


def find_copy(
    conn: sqlite3.Connection, article: Article, sig: Sequence[int], since: datetime
) -> tuple[int, str, float] | None:
    """(original id, tier, similarity) when `article` is a copy of one first seen since `since`."""
    if article.fingerprint:
        row = conn.execute(
            "SELECT id FROM articles WHERE fingerprint = ? AND first_seen >= ? LIMIT 1",
            (article.fingerprint, ts(since)),
        ).fetchone()
        if row is not None:
            return int(row[0]), "fingerprint", 1.0
    keys = copies.index_keys(sig)
    if not keys:
        return None
    # the sketches sharing most index keys first: a copy shares several of the smallest hashes,
    # so a feed of many look-alike items compares each with a few, not with hundreds
    shared, params = most_shared("sig_keys", "key", "article_id", keys, since, PER_KEY, CANDIDATES)
    rows = conn.execute(
        f"SELECT s.article_id, s.sig FROM signatures s JOIN ({shared}) c "
        "ON c.article_id = s.article_id",
        params,
    ).fetchall()
    best = copies.best_copy(sig, ((int(r[0]), _unpack(r[1])) for r in rows))
    return (best[0], "similar", best[1]) if best else None


def record_copy(
    conn: sqlite3.Connection,
    original_id: int,
    article: Article,
    tier: str,
    similarity: float,
    now: datetime,
) -> bool:
    """Remember that `article` (from its own source and URL) is a copy; True if it is new."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO copies (article_id, source, url, guid, title, seen_at, tier, "
        "similarity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            original_id,
            article.source,
            article.url,
            article.guid,
            article.title,
            ts(now),
            tier,
            similarity,
        ),
    )
    return cur.rowcount == 1


def check_copy(
    conn: sqlite3.Connection,
    candidate: Candidate,
    known: Known | None,
    now: datetime,
    since: datetime,
) -> CopyOf | None:
    """The original the candidate is a copy of (recorded now, or by an earlier poll), else None.

    `known` is the stored article with the candidate's URL or GUID, if any: from another
    source it is the original of a copy; from the same source it is the same article.
    """
    article = candidate.article
    if known is not None:
        if known.source == article.source:
            return None
        return CopyOf(known.id, new=record_copy(conn, known.id, article, "url", 1.0, now))
    if (original := copy_of(conn, article)) is not None:
        return CopyOf(original, new=False)
    # the similarity lookup only pays for articles some rule matched: a copy nobody is alerted
    # about costs nothing if it is stored as an article of its own
    found = find_copy(conn, article, candidate.sketch if candidate.matches else (), since)
    if found is None:
        return None
    record_copy(conn, found[0], article, found[1], found[2], now)
    return CopyOf(found[0], new=True)


def copy_of(conn: sqlite3.Connection, article: Article) -> int | None:
    """The original of an already recorded copy (same source and URL), if any."""
    row = conn.execute(
        "SELECT article_id FROM copies WHERE source = ? AND url = ?", (article.source, article.url)
    ).fetchone()
    return int(row[0]) if row else None


def file_signature(
    conn: sqlite3.Connection, article_id: int, sig: Sequence[int], now: datetime
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO signatures (article_id, at, sig) VALUES (?, ?, ?)",
        (article_id, ts(now), _pack(sig)),
    )
    conn.executemany(
        "INSERT INTO sig_keys (key, article_id, at) VALUES (?, ?, ?)",
        [(k, article_id, ts(now)) for k in copies.index_keys(sig)],
    )


def prune_window(conn: sqlite3.Connection, since: datetime) -> None:
    """Forget sketches older than `since` (indexed deletes: cheap every poll)."""
    for table in ("signatures", "sig_keys"):
        conn.execute(f"DELETE FROM {table} WHERE at < ?", (ts(since),))
