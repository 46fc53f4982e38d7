"""`search` on PostgreSQL: the same flow as the SQLite store's (store/articles.py: the index
picks candidates, the rule matcher decides, newest first, `--since`, `--source`), asking
PostgreSQL's index instead of FTS5.

- the pre-filter is rules/tsquery.py's (a tsquery read with `to_tsquery('news_monitor', …)`,
  so accents fold alike on both sides: `citta` finds `città`, `città` finds `citta`);
- the articles the index may read otherwise than the matcher are found by the server, with the
  same regular expression `tsquery.reads_differently` uses (not row by row in Python: the texts
  never cross the network);
- the rows a query without index terms reads (`NOT kiev`) come a page at a time, as SQLite's
  cursor reads them lazily (a psycopg result is read whole): most searches stop at the first;
- snippets are `ts_headline` of the title, summary or text with the most marked words (as FTS5's
  `snippet` picks its best column), `[` `]` around the words and `…` where the text goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from monitor.errors import StorageError
from monitor.models import Article, SearchHit
from monitor.rules import tsquery
from monitor.rules.fts import Prefilter
from monitor.rules.query import Query
from monitor.rules.tree import Node
from monitor.store.articles import ArticlesMixin
from monitor.store.rows import ARTICLE_COLUMNS_A, article_from_row

# ts_headline's markers: characters news text does not hold, made `[` `]` once the fragment is
# placed in its text (a bracket of the text itself is then no marker)
_OPEN, _CLOSE = "\u27e6", "\u27e7"
_HEADLINE = (
    f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords=12, MinWords=5, ShortWord=0, MaxFragments=1"
)
_TEXT = "coalesce(a.title, '') || ' ' || coalesce(a.summary, '') || ' ' || coalesce(a.text, '')"


class PgSearch(ArticlesMixin):
    """What `search` asks PostgreSQL otherwise than SQLite (see the module doc); before
    ArticlesMixin among PgStore's bases."""

    _odd: str | None = None  # the pattern of `_read_otherwise`, once the database's is known

    def search(
        self,
        query: Query,
        *,
        limit: int = 20,
        since: datetime | None = None,
        sources: Sequence[str] = (),
    ) -> list[SearchHit]:
        try:
            return super().search(query, limit=limit, since=since, sources=sources)
        except StorageError as exc:
            raise StorageError(f"search {query.text!r} failed: {exc}") from exc

    def _prefilter(
        self, root: Node, sources: Sequence[str], *, use_index: bool = True
    ) -> Prefilter:
        return tsquery.prefilter(root, sources=sources, use_index=use_index)

    def _indexed(self, expression: str, where: str, params: tuple) -> Iterator:
        return self._by_ids(self._ids(f"{tsquery.IN_INDEX} AND ({where})", (expression, *params)))

    def _rows(self, where: str, params: tuple) -> Iterator[tuple[str | None, int, Article]]:
        """(published, id, article) of the rows `where` selects, newest first, a page at a
        time: each page starts after the last row of the one before."""
        after, after_params = "TRUE", ()
        while True:
            page = self.db.execute(
                f"SELECT a.published, a.id, {ARTICLE_COLUMNS_A} FROM articles a "
                f"WHERE ({where}) AND {after} "
                f"ORDER BY a.published DESC NULLS LAST, a.id DESC LIMIT {_PAGE}",
                (*params, *after_params),
            ).fetchall()
            for row in page:
                yield row[0], row[1], article_from_row(row[2:])
            if len(page) < _PAGE:
                return
            after, after_params = _after(page[-1][0], page[-1][1])

    def _read_otherwise(self, where: str, params: tuple) -> list[int]:
        """The ids of the rows `where` selects whose text the index may read otherwise than
        the matcher, newest first: the server looks, with tsquery's pattern."""
        if self._odd is None:
            ctype = self.db.execute(
                "SELECT datctype FROM pg_database WHERE datname = current_database()"
            ).fetchone()
            plain = ctype is not None and ctype[0] in ("C", "POSIX")
            self._odd = tsquery.BEYOND_ASCII if plain else tsquery.READS_DIFFERENTLY
        return self._ids(f"({where}) AND ({_TEXT}) ~ ?", (*params, self._odd))

    def _snippet_texts(self, ids: Sequence[int], highlight: str) -> dict[int, str]:
        """Article id -> the headline of its column with the most marked words (the first of
        equals: title, summary, text); none where no word is marked."""
        rows = self.db.execute(
            f"SELECT a.id, h.body, ts_headline('{tsquery.CONFIG}', h.body, q, ?) "
            f"FROM articles a, to_tsquery('{tsquery.CONFIG}', ?) q, "
            "LATERAL (VALUES (1, a.title), (2, a.summary), (3, a.text)) h (col, body) "
            f"WHERE a.id IN ({', '.join('?' * len(ids))}) AND h.body <> '' ORDER BY a.id, h.col",
            (_HEADLINE, highlight, *ids),
        )
        best: dict[int, tuple[int, str]] = {}
        for id_, body, headline in rows:
            marked = headline.count(_OPEN)
            if marked > best.get(id_, (0, ""))[0]:
                best[id_] = (marked, _placed(headline, body))
        return {id_: snippet for id_, (_, snippet) in best.items()}


_PAGE = 200


def _after(published: str | None, id_: int) -> tuple[str, tuple]:
    """SQL for the rows after (published, id_) newest first, NULL `published` last."""
    if published is None:
        return "(a.published IS NULL AND a.id < ?)", (id_,)
    later = "(a.published < ? OR (a.published = ? AND a.id < ?) OR a.published IS NULL)"
    return later, (published, published, id_)


def _placed(headline: str, body: str) -> str:
    """The headline with `[` `]` for its markers and, as FTS5's snippet, `…` where its text
    goes on before or after it (else the punctuation that ends the text)."""
    plain = headline.replace(_OPEN, "").replace(_CLOSE, "")
    marked = headline.replace(_OPEN, "[").replace(_CLOSE, "]")
    at = body.find(plain) if plain and _OPEN not in body and _CLOSE not in body else -1
    if at < 0:
        return marked
    before, after = body[:at], body[at + len(plain) :]
    head = "…" if any(c.isalnum() for c in before) else ""
    tail = "…" if any(c.isalnum() for c in after) else after.rstrip()
    return head + marked + tail
