"""The articles part of the store: what the pipeline asks before a poll's transaction (known
articles, item hashes), and the reads of the CLI and the delivery (articles, matches, search).
Articles are written by one poll's transaction (polls.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from monitor.errors import StorageError
from monitor.models import Article, Known, Match, SearchHit
from monitor.rules import fts
from monitor.rules.match import Document
from monitor.rules.query import Query
from monitor.rules.tree import Node
from monitor.store import rows
from monitor.store.connection import SqliteBase
from monitor.store.rows import ARTICLE_COLUMNS, ARTICLE_COLUMNS_A, article_from_row
from monitor.store.times import ts


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

    def search(
        self,
        query: Query,
        *,
        limit: int = 20,
        since: datetime | None = None,
        sources: Sequence[str] = (),
    ) -> list[SearchHit]:
        """The newest `limit` stored articles `query` matches, published at or after `since`,
        of `sources` when given. The index picks candidates (rules/fts.py) and the rule matcher
        decides, so a query finds here what it alerts on as a rule; articles the index reads
        differently from the matcher (fts.reads_differently) are matched without it."""
        names = [row[0] for row in self.db.execute("SELECT DISTINCT source FROM articles")]
        scope = _scope(since, sources)
        pre = self._prefilter(query.root, names)
        where, params = f"({pre.where}) AND {scope[0]}", (*pre.params, *scope[1])
        try:
            if pre.fts is None:  # nothing the index can narrow: every row, newest first
                return self._snippets(_confirm(query, self._rows(where, params), limit), None)
            found = _confirm(query, self._indexed(pre.fts, where, params), limit)
            rescue = self._prefilter(query.root, names, use_index=False)
            found += self._unindexed(query, rescue, scope, found, limit)
            found.sort(key=_newest, reverse=True)
            return self._snippets(found[:limit], pre.highlight)
        except sqlite3.OperationalError as exc:
            raise StorageError(f"search {query.text!r} failed: {exc}") from exc

    def _prefilter(
        self, root: Node, sources: Sequence[str], *, use_index: bool = True
    ) -> fts.Prefilter:
        """The index's pre-filter of a query (fts.prefilter; PostgreSQL's: pg/search.py)."""
        return fts.prefilter(root, sources=sources, use_index=use_index)

    def _unindexed(
        self,
        query: Query,
        pre: fts.Prefilter,
        scope: tuple[str, tuple],
        found: list[_Hit],
        limit: int,
    ) -> list[_Hit]:
        """The hits among the articles the index may read otherwise than the matcher: of the
        rows `pre` (metadata only) and `scope` select, newer than the last of `limit` hits
        found, those `_read_otherwise` finds."""
        where, params = f"({pre.where}) AND {scope[0]}", (*pre.params, *scope[1])
        if len(found) >= limit:
            where, params = _newer(where, params, found[-1])
        seen = {hit[1] for hit in found}
        odd = [id_ for id_ in self._read_otherwise(where, params) if id_ not in seen]
        return _confirm(query, self._by_ids(odd), limit)

    def _read_otherwise(self, where: str, params: tuple) -> list[int]:
        """The ids of the rows `where` selects that `fts.reads_differently` flags, newest first
        (checked here, row by row)."""
        rows = self.db.execute(
            f"SELECT a.id, a.title, a.summary, a.text FROM articles a WHERE {where} "
            f"ORDER BY {_ORDER}",
            params,
        )
        return [row[0] for row in rows if fts.reads_differently(*row[1:])]

    def _rows(self, where: str, params: tuple) -> Iterator[_Row]:
        """(published, id, article) of the rows `where` selects, newest first, read lazily."""
        cursor = self.db.execute(
            f"SELECT a.published, a.id, {ARTICLE_COLUMNS_A} FROM articles a WHERE {where} "
            f"ORDER BY {_ORDER}",
            params,
        )
        while batch := cursor.fetchmany(_BATCH):
            for row in batch:
                yield row[0], row[1], article_from_row(row[2:])

    def _indexed(self, expression: str, where: str, params: tuple) -> Iterator[_Row]:
        """The rows the index finds for `expression` and `where` selects, newest first."""
        return self._by_ids(
            self._ids(
                f"a.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?) AND {where}",
                (expression, *params),
            )
        )

    def _ids(self, where: str, params: tuple) -> list[int]:
        """The ids of the rows `where` selects, newest first."""
        found = self.db.execute(
            f"SELECT a.id FROM articles a WHERE {where} ORDER BY {_ORDER}", params
        )
        return [row[0] for row in found]

    def _by_ids(self, ids: Sequence[int]) -> Iterator[_Row]:
        """The rows of `ids`, in that order, read a batch at a time (most searches stop at the
        first)."""
        for at in range(0, len(ids), _BATCH):
            batch = ids[at : at + _BATCH]
            marks = ", ".join("?" * len(batch))
            yield from self._rows(f"a.id IN ({marks})", tuple(batch))

    def _snippets(self, found: list[_Hit], highlight: str | None) -> list[SearchHit]:
        """The hits with the index's snippet of the matched words, else the text's start."""
        snippets: dict[int, str] = {}
        for at in range(0, len(found) if highlight else 0, _BATCH):
            ids = [hit[1] for hit in found[at : at + _BATCH]]
            snippets.update(self._snippet_texts(ids, highlight))  # type: ignore[arg-type]
        return [
            SearchHit(id_, article, match.terms, snippets.get(id_) or _opening(article))
            for _, id_, article, match in found
        ]

    def _snippet_texts(self, ids: Sequence[int], highlight: str) -> dict[int, str]:
        """Article id -> the index's snippet of the words of `highlight`, '[' ']' around them."""
        return dict(
            self.db.execute(
                "SELECT rowid, snippet(articles_fts, -1, '[', ']', '…', 12) FROM articles_fts "
                f"WHERE articles_fts MATCH ? AND rowid IN ({', '.join('?' * len(ids))})",
                (highlight, *ids),
            )
        )


_BATCH = 200
# the `published` index, with the rowid it ends in (NULLS LAST: SQLite's order, PostgreSQL's too)
_ORDER = "a.published DESC NULLS LAST, a.id DESC"
_Row = tuple[str | None, int, Article]  # published as stored, id, article
_Hit = tuple[str | None, int, Article, Match]


def _scope(since: datetime | None, sources: Sequence[str]) -> tuple[str, tuple]:
    """SQL for --since and --source."""
    parts, params = ["TRUE"], []
    if since is not None:
        parts.append("a.published >= ?")
        params.append(ts(since))
    if sources:
        parts.append(f"a.source IN ({', '.join('?' * len(sources))})")
        params += sources
    return " AND ".join(parts), tuple(params)


def _newer(where: str, params: tuple, hit: _Hit) -> tuple[str, tuple]:
    """`where`, narrowed to the rows that sort before `hit` (newest first)."""
    published, id_ = hit[0], hit[1]
    if published is None:
        return f"{where} AND (a.published IS NOT NULL OR a.id > ?)", (*params, id_)
    newer = "a.published >= ? AND (a.published > ? OR a.id > ?)"  # the index narrows it
    return f"{where} AND {newer}", (*params, published, published, id_)


def _newest(hit: _Hit) -> tuple[str, int]:
    return hit[0] or "", hit[1]


def _confirm(query: Query, rows: Iterable[_Row], limit: int) -> list[_Hit]:
    """The first `limit` rows the rule matcher says `query` matches."""
    found: list[_Hit] = []
    if limit <= 0:
        return found
    for published, id_, article in rows:
        match = query.match(Document.from_article(article))
        if match is not None:
            found.append((published, id_, article, match))
            if len(found) >= limit:
                break
    return found


def _opening(article: Article, words: int = 24) -> str:
    """A snippet where the index has none: the summary's (or text's) first words."""
    text = (article.summary or article.text or "").split()
    return " ".join(text[:words]) + (" …" if len(text) > words else "")
