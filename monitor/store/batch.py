"""One poll's reads and writes, batched: a few statements per poll instead of several per item.

Why: a cold `once` of 1,000 feeds x 20 items ran 93,000 separate `execute` calls (2.3 s of
8.2 s CPU, issue 13): every item looked itself up (URL, GUID, recorded copy, fingerprint) and
wrote its article, sketch and word counts on its own. Now one statement (one per 200 items)
reads what the decisions may need about every item of the poll (rows.poll_rows), the decisions
run in Python, and the rows they make wait here to be written with `executemany`.

The decisions stay exactly those of one item at a time, in order. `Batch` lays what the poll
itself wrote (articles, edits, copies) over what it read, so a later item of the poll sees an
earlier one as before; every read of SQL that stays per item (the similarity lookup and story
placement, for matched items only; a fingerprint that an edit of this poll moved) comes after
`flush`, which writes what is queued.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor.models import Article, Candidate, Known
from monitor.store import copies, rows, stories
from monitor.store.rows import global_guid
from monitor.store.times import ts


class Batch:
    """The window as one poll's decisions see it, and the rows they made, not yet written.

    Built under the poll's write lock (`BEGIN IMMEDIATE`): nobody else writes until commit, so
    the ids of new articles can be numbered here (as SQLite would: the highest id + 1).
    """

    def __init__(
        self, conn: sqlite3.Connection, articles: Sequence[Article], now: datetime, since: datetime
    ) -> None:
        self.conn, self.now, self.since = conn, now, since
        self.at, self.since_at = ts(now), ts(since) or ""
        read = rows.poll_rows(conn, articles, since)
        self.by_url, self.by_guid, self.copies = read.by_url, read.by_guid, read.copies
        self.fingerprints, self.next_id = read.fingerprints, read.max_id + 1
        self.edited: dict[int, tuple[str, str]] = {}  # id -> (title, fingerprint) after an edit
        self.moved: set[str] = set()  # fingerprints an edit of this poll took or gave up
        self.articles: list[tuple] = []
        self.updates: list[tuple] = []
        self.signatures: list[tuple[int, Sequence[int]]] = []
        self.copy_rows: list[tuple] = []
        self.bags: list[Mapping[str, float]] = []

    # --- what the window holds -------------------------------------------------------------

    def known(self, article: Article) -> Known | None:
        """The stored article with this article's URL, else its GUID (the lowest id; a GUID
        that is not globally unique only within its source: see global_guid)."""
        row = self.by_url.get(article.url)
        if row is None and article.guid and article.guid != article.url:
            found = self.by_guid.get(article.guid, [])
            if not global_guid(article.guid):
                found = [r for r in found if r.source == article.source]
            row = found[0] if found else None
        if row is not None and row.id in self.edited:
            row = Known(row.id, row.source, *self.edited[row.id])
        return row

    def copy_of(self, article: Article) -> int | None:
        """The original of an already recorded copy (same source and URL), if any."""
        return self.copies.get((article.source, article.url))

    def same_fingerprint(self, fingerprint: str) -> int | None:
        """The first article with this fingerprint first seen in the window, if any."""
        if fingerprint in self.moved:  # an edit of this poll changed who has it: ask SQL
            self.flush()
            row = self.conn.execute(
                "SELECT id FROM articles WHERE fingerprint = ? AND first_seen >= ? LIMIT 1",
                (fingerprint, self.since_at),
            ).fetchone()
            return int(row[0]) if row else None
        return self.fingerprints.get(fingerprint)

    # --- what the poll writes --------------------------------------------------------------

    def add_article(self, candidate: Candidate) -> int:
        """Queue a new article with its sketch and word counts (every new article counts in
        the window's document frequencies); its id."""
        article = candidate.article
        article_id, self.next_id = self.next_id, self.next_id + 1
        first_seen = self.at if article.first_seen == self.now else ts(article.first_seen)
        self.articles.append(
            (article_id, article.source, article.guid, article.url, article.title,
             article.summary, article.text, article.language, ts(article.published),
             first_seen, first_seen, article.author, article.fingerprint)
        )  # fmt: skip
        known = Known(article_id, article.source, article.title, article.fingerprint)
        self.by_url[article.url] = known
        if article.guid:
            self.by_guid.setdefault(article.guid, []).append(known)
        if article.fingerprint and first_seen is not None and first_seen >= self.since_at:
            self.fingerprints.setdefault(article.fingerprint, article_id)
        if candidate.sketch:
            self.signatures.append((article_id, candidate.sketch))
        if candidate.terms:
            self.bags.append(candidate.terms)
        return article_id

    def edit_article(self, known: Known, article: Article) -> bool:
        """Queue the edit of an article stored before; True if it changed."""
        if known.fingerprint == article.fingerprint and known.title == article.title:
            return False
        self.updates.append(
            (article.title, article.summary, article.text, article.fingerprint, self.at, known.id)
        )
        self.edited[known.id] = (article.title, article.fingerprint)
        if known.fingerprint != article.fingerprint:
            self.moved |= {known.fingerprint, article.fingerprint}
        return True

    def record_copy(self, original: int, article: Article, tier: str, similarity: float) -> bool:
        """Queue that `article` (from its own source and URL) is a copy; True if it is new."""
        key = (article.source, article.url)
        if key in self.copies:
            return False
        self.copies[key] = original
        self.copy_rows.append(
            (original, article.source, article.url, article.guid, article.title, self.at, tier,
             similarity)
        )  # fmt: skip
        return True

    def flush(self) -> None:
        """Write what is queued (articles before what refers to them)."""
        if self.articles:
            rows.insert_articles(self.conn, self.articles)
        if self.updates:
            rows.update_articles(self.conn, self.updates)
        if self.signatures:
            copies.file_signatures(self.conn, self.signatures, self.now)
        if self.copy_rows:
            copies.insert_copies(self.conn, self.copy_rows)
        if self.bags:
            stories.count_terms(self.conn, self.bags, self.now)
        self.articles, self.updates, self.signatures, self.copy_rows, self.bags = [], [], [], [], []
