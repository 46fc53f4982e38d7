"""The articles part of the store: what the pipeline asks before a poll's transaction (known
articles, item hashes), and the reads of the CLI and the delivery (articles, matches, search).
Articles are written by one poll's transaction (polls.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from monitor.errors import StorageError
from monitor.models import Article, Known, Match
from monitor.store import rows
from monitor.store.connection import SqliteBase
from monitor.store.rows import ARTICLE_COLUMNS, ARTICLE_COLUMNS_A, article_from_row


class ArticlesMixin(SqliteBase):
    def known(self, articles: Iterable[Article]) -> dict[str, Known]:
        """Stored articles (or recorded copies) with the same canonical URL or GUID, keyed by the
        candidate's URL; a few batched queries per poll (rows.known_rows)."""
        return rows.known_rows(self.db.conn, list(articles))

    def still_listed(self, source: str, keys: Sequence[str], now: datetime) -> None:
        """A changed body whose items are all unchanged still lists them (see touch_listed)."""
        with self.immediate() as conn:
            rows.touch_listed(conn, source, keys, now)

    def item_hashes(self, source: str) -> dict[str, str]:
        """Item key -> hash of each feed item of `source` as last processed."""
        return rows.item_hashes(self.db.conn, source)

    def has_articles(self, source: str) -> bool:
        """Has this source any stored article? (a poll of only new items may mean a gap)"""
        row = self.db.execute("SELECT 1 FROM articles WHERE source = ? LIMIT 1", (source,))
        return row.fetchone() is not None

    def article(self, article_id: int) -> Article | None:
        row = self.db.execute(
            f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        return article_from_row(row) if row else None

    def articles(self, *, limit: int | None = None) -> Iterator[tuple[int, Article]]:
        sql = f"SELECT id, {ARTICLE_COLUMNS} FROM articles ORDER BY id DESC"
        params: tuple = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        for row in self.db.execute(sql, params):
            yield row[0], article_from_row(row[1:])

    def count_articles(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def matches(self, *, limit: int = 50) -> list[tuple[int, Article, Match]]:
        found = self.db.execute(
            f"SELECT m.article_id, m.rule, m.terms, {ARTICLE_COLUMNS} FROM matches m "
            "JOIN articles a ON a.id = m.article_id ORDER BY m.rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            (row[0], article_from_row(row[3:]), Match(row[1], tuple(json.loads(row[2]))))
            for row in found
        ]

    def match_for(self, article_id: int, rule: str) -> Match | None:
        row = self.db.execute(
            "SELECT terms FROM matches WHERE article_id = ? AND rule = ?", (article_id, rule)
        ).fetchone()
        return Match(rule, tuple(json.loads(row[0]))) if row else None

    def search(self, query: str, *, limit: int = 20) -> list[tuple[int, Article, str]]:
        """Full-text search (FTS5, diacritics removed); returns id, article and a snippet."""
        try:
            found = self.db.execute(
                f"SELECT a.id, {ARTICLE_COLUMNS_A}, "
                "snippet(articles_fts, -1, '[', ']', '…', 12) FROM articles_fts "
                "JOIN articles a ON a.id = articles_fts.rowid WHERE articles_fts MATCH ? "
                "ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StorageError(f"search query {query!r} is not valid: {exc}") from exc
        return [(row[0], article_from_row(row[1:-1]), row[-1]) for row in found]
