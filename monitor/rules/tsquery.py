"""The rule language as a pre-filter for PostgreSQL's full-text index (a `tsquery`).

The PostgreSQL twin of fts.py: `search` lets the server pick candidates with the index, then the
rule matcher (match.py) decides. So this module only has to select a SUPERSET of what a query
matches; it never decides.

How the index reads text. `articles.search` (store/pg/schema.py) is `to_tsvector` of the title,
summary and text with every run of ASCII characters but letters and digits as one space, through
the `news_monitor` configuration (`unaccent`, then `simple`: lower case). So the server's parser
sees the matcher's words (text.words) as runs of letters and digits, and none of its compound
tokens: no hyphenated words (which take a position of their own, and would break `<->`), hosts,
e-mail addresses, file paths or signed numbers (which would hide the words inside them). A number
the matcher reads as one word, `1.400`, is the phrase `1 <-> 400` on both sides.

- a word is `'kyiv'`, a prefix `'negoziat':*`, a phrase its words joined by `<->` (the summary,
  the body and the title are one text in the index: a phrase from one into the next is found);
  every operand is quoted, so no user text is ever read as tsquery syntax; the server folds the
  accents of both sides alike: the text made here is read with `to_tsquery('news_monitor', …)`;
- `title:` is the term anywhere (the index has one vector per article); `a NEAR/5 b` is `a & b`;
- `NOT` is dropped (a superset of the child says nothing about its absence), except over
  `source:` and `lang:`, which are SQL conditions on the article's row.

Where the two still read text differently: characters beyond ASCII and `fts.COMMON` (which the
server may fold, or take for a letter, otherwise than `fold`: tests/test_tsquery.py checks every
character of the Basic Multilingual Plane against the real server), and a number run into
letters (`2.4GHz`: `2.4 ghz` to the matcher, `2 4ghz` to the index). `READS_DIFFERENTLY` is a
regular expression, read alike by Python and PostgreSQL, that finds them; the store gives the
articles it finds to the matcher without the index. On a database whose character type is `C`
the server neither lowers nor splits text beyond ASCII: `BEYOND_ASCII` flags all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.rules.fts import COMMON, Prefilter
from monitor.rules.match import Document, Matcher
from monitor.rules.tree import Bool, Meta, Near, Node, Not, Term

__all__ = [
    "BEYOND_ASCII",
    "CONFIG",
    "IN_INDEX",
    "READS_DIFFERENTLY",
    "prefilter",
    "reads_differently",
    "term_tsquery",
]

CONFIG = "news_monitor"  # the text search configuration of `articles.search`
IN_INDEX = f"a.search @@ to_tsquery('{CONFIG}', ?)"


def _escaped(ranges: str) -> str:
    """A character class's ranges as `\\uXXXX` escapes, which both regex engines read."""
    return "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in ranges)


# After a number with a "." or ",", a letter (any character beyond ASCII may be one)
_NUMBER_INTO_LETTERS = "[0-9][.,][0-9]+[^\\u0001-\\u0040\\u005b-\\u0060\\u007b-\\u007f]"
READS_DIFFERENTLY = f"[^\\u0001-\\u007f{_escaped(COMMON)}]|{_NUMBER_INTO_LETTERS}"
BEYOND_ASCII = f"[^\\u0001-\\u007f]|{_NUMBER_INTO_LETTERS}"
_READS_DIFFERENTLY = re.compile(READS_DIFFERENTLY)
# As fts.py: a shorter prefix costs the index a merge of every word it starts and narrows little
_SHORTEST_PREFIX = 3
_NUMBER_PARTS = re.compile("[.,]")


@dataclass(frozen=True, slots=True)
class _Cond:
    """A superset of a node's matches: `tsq` AND `sql` (None: no condition). `exact`: the very
    set (only metadata tests are), so that NOT of it is exact too."""

    tsq: str | None = None
    sql: str | None = None
    params: tuple[str, ...] = ()
    exact: bool = False


_TRUE = _Cond(exact=True)
_FALSE = _Cond(sql="FALSE", exact=True)


def prefilter(root: Node, *, sources: Iterable[str], use_index: bool = True) -> Prefilter:
    """The pre-filter of a query's syntax tree, as fts.prefilter's but in PostgreSQL's terms:
    `fts` is a tsquery text for `to_tsquery('news_monitor', …)`, `where` is PostgreSQL's SQL over
    `articles a` ("TRUE" when nothing narrows). `use_index=False` leaves only the metadata
    conditions: for the articles that `reads_differently` (the index may miss them)."""
    cond = _Compiler(tuple(dict.fromkeys(sources)), use_index).node(root)
    terms = list(_terms(root)) if use_index else []
    found = dict.fromkeys(filter(None, map(term_tsquery, terms)))
    highlight = " | ".join(f"({t})" for t in found) or None
    return Prefilter(cond.tsq, cond.sql or "TRUE", cond.params, highlight)


def reads_differently(*texts: str | None) -> bool:
    """Whether the index may read any of `texts` otherwise than the matcher (see the module
    docstring): such an article must be matched without the index. The store asks the server
    the same question with `READS_DIFFERENTLY`."""
    return any(text and _READS_DIFFERENTLY.search(text) for text in texts)


def term_tsquery(term: Term) -> str | None:
    """The tsquery of one term; None when the index cannot be trusted with its words."""
    words, prefix = term.words, term.prefix
    if prefix and len(_NUMBER_PARTS.split(words[-1])[-1]) < _SHORTEST_PREFIX:
        words, prefix = words[:-1], False  # the phrase without it: still a superset
    if not words or reads_differently(" ".join(words)):
        return None
    parts = [_quote(part) for word in words for part in _NUMBER_PARTS.split(word) if part]
    if not parts:
        return None
    if prefix:
        parts[-1] += ":*"
    return " <-> ".join(parts)


class _Compiler:
    def __init__(self, sources: tuple[str, ...], use_index: bool) -> None:
        self.sources = sources
        self.use_index = use_index

    def node(self, node: Node) -> _Cond:
        if isinstance(node, Term):
            expr = term_tsquery(node) if self.use_index else None
            return _Cond(tsq=expr) if expr else _Cond()
        if isinstance(node, Near):
            return _and([self.node(Bool("OR", side)) for side in (node.left, node.right)])
        if isinstance(node, Meta):
            return self.meta(node)
        if isinstance(node, Not):
            return _negate(self.node(node.child))
        conds = [self.node(c) for c in node.children]
        return _and(conds) if node.op == "AND" else _or(conds)

    def meta(self, meta: Meta) -> _Cond:
        if meta.field == "source":
            test = Matcher([("source", meta)])
            names = [s for s in self.sources if test.match(Document("", "", source=s))]
            if not names:
                return _FALSE
            return _Cond(None, f"a.source IN ({', '.join('?' * len(names))})", tuple(names), True)
        # lang: as match.py reads it (folded, "_" as "-", "en" also "en-GB"); a stored code
        # beyond ASCII is left to the matcher
        code = "lower(replace(a.language, '_', '-'))"
        if meta.prefix:
            sql = f"(substr({code}, 1, {len(meta.value)}) = ?"
            params: tuple[str, ...] = (meta.value,)
        else:
            sql = f"({code} = ? OR substr({code}, 1, {len(meta.value) + 1}) = ?"
            params = (meta.value, meta.value + "-")
        return _Cond(None, sql + " OR a.language ~ '[^ -~]')", params, False)


def _negate(inner: _Cond) -> _Cond:
    if not inner.exact:  # NOT of a superset: anything may match
        return _Cond()
    if inner.sql is None:
        return _FALSE
    if inner.sql == _FALSE.sql:
        return _TRUE
    return _Cond(None, f"NOT ({inner.sql})", inner.params, True)


def _and(conds: list[_Cond]) -> _Cond:
    if any(c.exact and c.sql == _FALSE.sql for c in conds):
        return _FALSE
    tsq = [c.tsq for c in conds if c.tsq]
    sql = [c.sql for c in conds if c.sql]
    return _Cond(
        tsq=" & ".join(f"({e})" for e in tsq) if tsq else None,
        sql=" AND ".join(f"({s})" for s in sql) if sql else None,
        params=tuple(p for c in conds for p in c.params),
        exact=all(c.exact for c in conds),
    )


def _or(conds: list[_Cond]) -> _Cond:
    exact = all(c.exact for c in conds)
    kept = [c for c in conds if not (c.exact and c.sql == _FALSE.sql)]  # FALSE adds nothing
    if not kept:
        return _FALSE
    if any(c.tsq is None and c.sql is None for c in kept):  # one side may be anything
        return _Cond(exact=exact)
    if all(c.sql is None for c in kept):
        return _Cond(tsq=" | ".join(f"({c.tsq})" for c in kept))
    parts, params = [], []
    for c in kept:
        sql, ps = _as_sql(c)
        parts.append(f"({sql})")
        params += ps
    return _Cond(sql=" OR ".join(parts), params=tuple(params), exact=exact)


def _as_sql(cond: _Cond) -> tuple[str, tuple[str, ...]]:
    """The condition as SQL alone: its tsquery part as a test of the index."""
    parts: list[str] = []
    params: tuple[str, ...] = ()
    if cond.tsq:
        parts.append(IN_INDEX)
        params = (cond.tsq,)
    if cond.sql:
        parts.append(f"({cond.sql})")
        params += cond.params
    return " AND ".join(parts), params


def _terms(node: Node) -> Iterable[Term]:
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Near):
        yield from node.left + node.right
    elif isinstance(node, Bool):
        for child in node.children:
            yield from _terms(child)


def _quote(word: str) -> str:
    """A tsquery operand that is only ever a word: quoted, its quotes and backslashes escaped."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
