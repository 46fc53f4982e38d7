"""SQL for same-article detection (copies and similarity sketches); called inside the store's
transactions. The decisions are monitor/stories/copies.py's; this module reads the window's
candidates and writes the outcome, a poll's through its Batch (store/batch.py: the URL, GUID,
copy and fingerprint lookups of all its items in one statement). `signatures` and `sig_keys`
hold the window only."""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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
    """(original id, tier, similarity) when `article` is a copy of one first seen since `since`,
    by fingerprint or sketch alone (one article at a time: bench/eval_dedupe.py; a poll asks
    check_copy)."""
    if article.fingerprint:
        row = conn.execute(
            "SELECT id FROM articles WHERE fingerprint = ? AND first_seen >= ? LIMIT 1",
            (article.fingerprint, ts(since)),
        ).fetchone()
        if row is not None:
            return int(row[0]), "fingerprint", 1.0
    best = find_similar(conn, sig, since)
    return (best[0], "similar", best[1]) if best else None


def find_similar(
    conn: sqlite3.Connection, sig: Sequence[int], since: datetime
) -> tuple[int, float] | None:
    """(id, similarity) of the window's sketch most like `sig`, at or above COPY_JACCARD."""
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
    return copies.best_copy(sig, ((int(r[0]), _unpack(r[1])) for r in rows))


class PollWindow(Protocol):
    """What check_copy asks of a poll's window: store/batch.py's Batch."""

    conn: sqlite3.Connection
    since: datetime

    def copy_of(self, article: Article) -> int | None: ...
    def same_fingerprint(self, fingerprint: str) -> int | None: ...
    def record_copy(
        self, original: int, article: Article, tier: str, similarity: float
    ) -> bool: ...
    def flush(self) -> None: ...


def check_copy(batch: PollWindow, candidate: Candidate, known: Known | None) -> CopyOf | None:
    """The original the candidate is a copy of (recorded now, or by an earlier poll), else None.

    `known` is the stored article with the candidate's URL or GUID, if any: from another
    source it is the original of a copy; from the same source it is the same article. Every
    other candidate is checked by recorded copy and fingerprint; by similarity only when a rule
    matched it (a copy nobody is alerted about costs nothing if it is stored as an article of
    its own), which is also when its sketch is compared.
    """
    article = candidate.article
    if known is not None:
        if known.source == article.source:
            return None
        return CopyOf(known.id, new=batch.record_copy(known.id, article, "url", 1.0))
    if (original := batch.copy_of(article)) is not None:
        return CopyOf(original, new=False)
    original = batch.same_fingerprint(article.fingerprint) if article.fingerprint else None
    if original is not None:
        batch.record_copy(original, article, "fingerprint", 1.0)
        return CopyOf(original, new=True)
    if not candidate.matches or not copies.index_keys(candidate.sketch):
        return None
    batch.flush()  # the sketches this poll filed before are candidates too
    found = find_similar(batch.conn, candidate.sketch, batch.since)
    if found is None:
        return None
    batch.record_copy(found[0], article, "similar", found[1])
    return CopyOf(found[0], new=True)


def insert_copies(conn: sqlite3.Connection, values: Sequence[tuple]) -> None:
    """Remember copies: (original id, source, url, guid, title, seen_at, tier, similarity)."""
    conn.executemany(
        "INSERT INTO copies (article_id, source, url, guid, title, seen_at, tier, "
        "similarity) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        values,
    )


def file_signature(
    conn: sqlite3.Connection, article_id: int, sig: Sequence[int], now: datetime
) -> None:
    """File one sketch (bench/eval_dedupe.py fills a window so; a poll files them together)."""
    file_signatures(conn, [(article_id, sig)], now)


def file_signatures(
    conn: sqlite3.Connection, sigs: Sequence[tuple[int, Sequence[int]]], now: datetime
) -> None:
    """File (article id, sketch) pairs in the window, under their index keys."""
    at = ts(now)
    conn.executemany(
        "INSERT INTO signatures (article_id, at, sig) VALUES (?, ?, ?) ON CONFLICT (article_id) "
        "DO UPDATE SET at = excluded.at, sig = excluded.sig",
        [(article_id, at, _pack(sig)) for article_id, sig in sigs],
    )
    conn.executemany(
        "INSERT INTO sig_keys (key, article_id, at) VALUES (?, ?, ?)",
        [(k, article_id, at) for article_id, sig in sigs for k in copies.index_keys(sig)],
    )


def prune_window(conn: sqlite3.Connection, since: datetime) -> None:
    """Forget sketches older than `since` (indexed deletes: cheap every poll)."""
    for table in ("signatures", "sig_keys"):
        conn.execute(f"DELETE FROM {table} WHERE at < ?", (ts(since),))
