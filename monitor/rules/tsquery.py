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

from monitor.rules.fts import COMMON, Dialect, Prefilter, compile_prefilter
from monitor.rules.tree import Node, Term

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


def prefilter(root: Node, *, sources: Iterable[str], use_index: bool = True) -> Prefilter:
    """The pre-filter of a query's syntax tree, as fts.prefilter's but in PostgreSQL's terms:
    `fts` is a tsquery text for `to_tsquery('news_monitor', …)`, `where` is PostgreSQL's SQL over
    `articles a` ("TRUE" when nothing narrows). `use_index=False` leaves only the metadata
    conditions: for the articles that `reads_differently` (the index may miss them)."""
    index, sql, params, terms = compile_prefilter(root, sources, use_index, _TSQUERY)
    highlight = " | ".join(f"({t})" for t in terms) or None
    return Prefilter(index, sql or "TRUE", params, highlight)


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


def _quote(word: str) -> str:
    """A tsquery operand that is only ever a word: quoted, its quotes and backslashes escaped."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


_TSQUERY = Dialect(
    term=term_tsquery,
    both=" & ",
    either=" | ",
    false="FALSE",
    in_index=IN_INDEX,
    odd_language="a.language ~ '[^ -~]'",
)
