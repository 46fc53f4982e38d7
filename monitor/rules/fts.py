"""The rule language as a pre-filter for the store's full-text index (FTS5).

`search` runs a query in two steps: SQLite picks candidates with the index, then the rule matcher
(match.py, the code `[[rules]]` and `test-rule` use) decides. So a query means the same everywhere,
and this module only has to select a SUPERSET of what the query matches; it never decides.

- a word, prefix or phrase becomes a quoted FTS5 string (`"kyiv"`, `"negoziat" *`, `"cessate il
  fuoco"`); every token is quoted, so no user text is ever read as FTS5 syntax;
- a phrase may also run from the end of the summary into the body (the matcher reads them as one
  text; the index as two columns): one alternative per split point, the body part at its start;
- `title:` is the index's title column; `a NEAR/5 b` is `a AND b`;
- `NOT` is dropped (a superset of the child says nothing about its absence), except over
  `source:` and `lang:`, which are SQL conditions on the article's row (`source:` as the list of
  stored source names it accepts, evaluated by the matcher itself).

Where the two read text differently. The index uses SQLite's `unicode61 remove_diacritics 2`
tokenizer, the matcher `text.words` (see text.py). Fed the folded query words, the tokenizer
finds exactly the matcher's words in most text: lower case, accents off (`perché` = `perche`),
apostrophes and hyphens split (`l'Ucraina` = `l ucraina`), and a number such as `1.400` is the
phrase `1 400` on both sides. It differs on what `fold` rewrites beyond that: compatibility forms
(ligatures, full-width and superscript letters, `™`), `ß` = `ss`, Greek accents, combining marks,
letters newer than SQLite's Unicode tables, private-use characters, the modifier-letter apostrophe
`ʼ`; and on a number run into letters (`2.4GHz` is `2.4 ghz` to the matcher, `2 4ghz` to the
index). `reads_differently` flags an article containing any of these (tests/test_search.py checks
it against the real tokenizer over every character of the Basic Multilingual Plane); the store
gives those articles to the matcher without the index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from monitor.rules.match import Document, Matcher
from monitor.rules.tree import Bool, Meta, Near, Node, Not, Term
from monitor.text import fold

__all__ = ["COMMON", "Dialect", "Prefilter", "compile_prefilter", "prefilter", "reads_differently"]

_FTS_TABLE = "articles_fts"
_IN_INDEX = f"a.id IN (SELECT rowid FROM {_FTS_TABLE} WHERE {_FTS_TABLE} MATCH ?)"
# The blocks where SQLite's tokenizer lowers case and drops one accent as `fold` does: Latin-1
# Supplement, Latin Extended-A/B, Latin Extended Additional, basic Greek capitals, Cyrillic.
_SAME_FOLD = ((0xC0, 0x24F), (0x1E00, 0x1EFF), (0x391, 0x3A9), (0x400, 0x4FF))
# Characters of common scripts that both read alike, so a text of them needs no closer look
# (tests/test_search.py checks each): Latin-1 but ª ² ³ µ ¹ º ¼ ½ ¾ ß; Latin Extended-A but ĳ, ŀ,
# ŉ, ſ; Greek and Cyrillic letters without accents; Arabic, Hebrew and Devanagari letters;
# general punctuation and currency signs; CJK ideographs, kana and Hangul syllables. PostgreSQL's
# index reads them alike too (rules/tsquery.py).
COMMON = (
    "\u00a0-\u00a9\u00ab-\u00b1\u00b4\u00b6-\u00b8\u00bb\u00bf-\u00de\u00e0-\u0131"
    "\u0134-\u013e\u0141-\u0148\u014a-\u017e\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c1"
    "\u03c3-\u03c9\u0400-\u0482\u048a-\u04ce\u05d0-\u05ea\u0621-\u063a\u0641-\u064a"
    "\u0905-\u0939\u2000-\u2052\u2057\u205f-\u2063\u206a-\u206f\u20a0-\u20a7\u20a9-\u20b1"
    "\u3041-\u3096\u30a1-\u30fa\u4e00-\u9fa5\uac00-\ud7a3"
)
_UNCOMMON = re.compile(f"[^\\x00-\\x7f{COMMON}]")
# A number run into letters, found in the UTF-8 bytes with every digit as "0", "." and "," as
# ".", every letter as "a" (any byte of a character beyond ASCII too) and the rest as " ": as in
# text.py, a bytes translate and a search for a fixed "0.0" cost a third of a regex on the text.
_NUMBER_SHAPES = bytes(
    48 if b in b"0123456789" else 46 if b in b".," else 97 if b > 127 or chr(b).isalpha() else 32
    for b in range(256)
)
_NUMBER_INTO_LETTERS = re.compile(rb"0\.0+a")
# A shorter prefix costs the index a merge of every word it starts (seconds on a big store) and
# narrows little: the matcher alone decides on it.
_SHORTEST_PREFIX = 3
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f]")  # emoji or text style: ignored by both


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Which rows may match: `fts`, an FTS5 MATCH expression (None: the index cannot narrow
    the query), AND `where`, SQL over `articles a` with `params` ("1" when nothing narrows).
    `highlight` is every term OR-ed, for `snippet()`; None when the query has no term."""

    fts: str | None
    where: str
    params: tuple[str, ...]
    highlight: str | None


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one full-text index is written: a term's expression in it (None: the index cannot
    be trusted with the term), its AND and OR, the SQL of "false", the test "the index selects
    the row" (one `?`: the expression), and "the row's language code is beyond ASCII"."""

    term: Callable[[Term], str | None]
    both: str
    either: str
    false: str
    in_index: str
    odd_language: str


@dataclass(frozen=True, slots=True)
class _Cond:
    """A superset of a node's matches: `index` (the index's expression) AND `sql` (None: no
    condition). `exact`: the very set, so that its NOT is a superset too (only SQL on
    metadata is)."""

    index: str | None = None
    sql: str | None = None
    params: tuple[str, ...] = ()
    exact: bool = False


_TRUE = _Cond(exact=True)


def compile_prefilter(
    root: Node, sources: Iterable[str], use_index: bool, dialect: Dialect
) -> tuple[str | None, str | None, tuple[str, ...], list[str]]:
    """(index expression, SQL, params, each term's expression once) of a query for `dialect`
    (see `prefilter`)."""
    cond = _Compiler(tuple(dict.fromkeys(sources)), use_index, dialect).node(root)
    terms = list(_terms(root)) if use_index else []
    found = list(dict.fromkeys(filter(None, map(dialect.term, terms))))
    return cond.index, cond.sql, cond.params, found


def prefilter(root: Node, *, sources: Iterable[str], use_index: bool = True) -> Prefilter:
    """The pre-filter of a query's syntax tree. `sources`: the source names stored, which
    `source:` tests are evaluated on. `use_index=False` leaves only the metadata conditions:
    for the articles that `reads_differently` (the index may miss them)."""
    index, sql, params, terms = compile_prefilter(root, sources, use_index, _FTS5)
    return Prefilter(index, sql or "1", params, " OR ".join(terms) or None)


def reads_differently(*texts: str | None) -> bool:
    """Whether the index may split or fold any of `texts` otherwise than the matcher (see the
    module docstring): such an article must be matched without the index."""
    for text in texts:
        if not text:
            continue
        shapes = text.encode("utf-8", "surrogatepass").translate(_NUMBER_SHAPES)
        if _NUMBER_INTO_LETTERS.search(shapes):
            return True
        if not text.isascii() and any(map(_differs, set(_UNCOMMON.findall(text)))):
            return True
    return False


@lru_cache(maxsize=8192)
def _differs(char: str) -> bool:
    """Whether SQLite's tokenizer may read `char` otherwise than `fold` and `words` do. Both
    take letters, digits (categories L*, N*) as word characters, the index also private-use
    ones (Co), and both split on everything else."""
    if char.isascii():
        return False
    category = unicodedata.category(char)
    if category == "Co" or unicodedata.ucd_3_2_0.category(char) == "Cn":
        return True  # private, or maybe newer than SQLite's tables: it may take it for a letter
    if category[0] == "M":  # marks combine with what they follow
        return not _VARIATION_SELECTOR.match(char)  # which these never do
    if category == "Nd":  # a digit: maybe of a number run into letters (see _NUMBER_SHAPES)
        return True
    folded = fold(char)
    becomes_word = any(c.isalnum() for c in folded)
    if category[0] not in "LN":  # a split to the index: to the matcher too, unless fold says
        return becomes_word  # "™" -> "tm"
    if not becomes_word:  # a letter to the index, a split to the matcher: "ʼ" -> "'"
        return True
    if folded == char:
        return False
    decomposed = unicodedata.normalize("NFD", char)
    simple = (
        len(decomposed) <= 2
        and unicodedata.normalize("NFKD", char) == decomposed
        and char.casefold() == char.lower()
    )
    return not (simple and any(lo <= ord(char) <= hi for lo, hi in _SAME_FOLD))


class _Compiler:
    def __init__(self, sources: tuple[str, ...], use_index: bool, dialect: Dialect) -> None:
        self.sources = sources
        self.use_index = use_index
        self.dialect = dialect
        self.false = _Cond(sql=dialect.false, exact=True)

    def node(self, node: Node) -> _Cond:
        if isinstance(node, Term):
            expr = self.dialect.term(node) if self.use_index else None
            return _Cond(index=expr) if expr else _Cond()
        if isinstance(node, Near):
            return self.all([self.node(Bool("OR", side)) for side in (node.left, node.right)])
        if isinstance(node, Meta):
            return self.meta(node)
        if isinstance(node, Not):
            return self.negate(self.node(node.child))
        conds = [self.node(c) for c in node.children]
        return self.all(conds) if node.op == "AND" else self.any(conds)

    def meta(self, meta: Meta) -> _Cond:
        if meta.field == "source":
            test = Matcher([("source", meta)])
            names = [s for s in self.sources if test.match(Document("", "", source=s))]
            if not names:
                return self.false
            return _Cond(None, f"a.source IN ({', '.join('?' * len(names))})", tuple(names), True)
        # lang: as match.py reads it (folded, "_" as "-", "en" also "en-GB"); a stored code
        # beyond ASCII (which SQL's lower() leaves alone) is left to the matcher
        code = "lower(replace(a.language, '_', '-'))"
        if meta.prefix:
            sql = f"(substr({code}, 1, {len(meta.value)}) = ?"
            params: tuple[str, ...] = (meta.value,)
        else:
            sql = f"({code} = ? OR substr({code}, 1, {len(meta.value) + 1}) = ?"
            params = (meta.value, meta.value + "-")
        return _Cond(None, f"{sql} OR {self.dialect.odd_language})", params, False)

    def is_false(self, cond: _Cond) -> bool:
        return cond.exact and cond.sql == self.dialect.false

    def negate(self, inner: _Cond) -> _Cond:
        if not inner.exact:  # NOT of a superset: anything may match
            return _Cond()
        if inner.sql is None:
            return self.false
        if inner.sql == self.dialect.false:
            return _TRUE
        return _Cond(None, f"NOT ({inner.sql})", inner.params, True)

    def all(self, conds: list[_Cond]) -> _Cond:
        if any(self.is_false(c) for c in conds):
            return self.false
        index = [c.index for c in conds if c.index]
        sql = [c.sql for c in conds if c.sql]
        return _Cond(
            index=self.dialect.both.join(f"({e})" for e in index) if index else None,
            sql=" AND ".join(f"({s})" for s in sql) if sql else None,
            params=tuple(p for c in conds for p in c.params),
            exact=all(c.exact for c in conds),
        )

    def any(self, conds: list[_Cond]) -> _Cond:
        exact = all(c.exact for c in conds)
        kept = [c for c in conds if not self.is_false(c)]  # an exact FALSE adds nothing
        if not kept:
            return self.false
        if any(c.index is None and c.sql is None for c in kept):  # one side may be anything
            return _Cond(exact=exact)
        if all(c.sql is None for c in kept):
            return _Cond(index=self.dialect.either.join(f"({c.index})" for c in kept))
        parts, params = [], []
        for c in kept:
            sql, ps = self.as_sql(c)
            parts.append(f"({sql})")
            params += ps
        return _Cond(sql=" OR ".join(parts), params=tuple(params), exact=exact)

    def as_sql(self, cond: _Cond) -> tuple[str, tuple[str, ...]]:
        """The condition as SQL alone: its index part as a lookup in the index."""
        parts: list[str] = []
        params: tuple[str, ...] = ()
        if cond.index:
            parts.append(self.dialect.in_index)
            params = (cond.index,)
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


def _quote(words: tuple[str, ...], prefix: bool) -> str:
    return '"' + " ".join(words).replace('"', '""') + '"' + (" *" if prefix else "")


def _term_fts(term: Term) -> str | None:
    """The FTS5 expression of one term; None when the index cannot be trusted with its words."""
    words, prefix = term.words, term.prefix
    if prefix and len(re.split("[.,]", words[-1])[-1]) < _SHORTEST_PREFIX:
        words, prefix = words[:-1], False  # the phrase without it: still a superset
    if not words or reads_differently(" ".join(words)):
        return None
    whole = _quote(words, prefix)
    if term.title_only:
        return f"title : {whole}"
    splits = [
        f"(summary : {_quote(words[:k], False)} AND text : ^ {_quote(words[k:], prefix)})"
        for k in range(1, len(words))
    ]
    return " OR ".join([whole, *splits])


_FTS5 = Dialect(
    term=_term_fts,
    both=" AND ",
    either=" OR ",
    false="0",
    in_index=_IN_INDEX,
    odd_language="a.language GLOB '*[^ -~]*'",
)
