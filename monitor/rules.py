"""The rule query language: parse once, match many rules against an article in one pass.

Language (case- and accent-insensitive, always on whole words; see DESIGN.md "Rule language"):

    ukraine                 a word: matches "Ukraine", "UKRAINE"; not "ukrainian"
    negoziat*               a prefix: "negoziati", "negoziato", "negoziatore"
    "cessate il fuoco"      a phrase: those words in that order, whatever punctuation/case between
    "garanzie di sic*"      a phrase whose last word is a prefix
    a AND b, a b            both (a bare sequence means AND)
    a OR b                  either
    NOT a                   a is absent
    a NEAR/5 b              a and b with at most 5 words between them, either order; each side is a
                            word, phrase or prefix, or a parenthesised OR of them: (kyiv OR kiev)
    title:kyiv              scoped to the headline; also title:"..." and title:(a OR b)
    source:corriere-esteri  the article's source name (folded; `*` allowed at the end)
    lang:it                 the article's language ("en" also matches "en-GB")

Precedence: NEAR > NOT > AND > OR; use parentheses for anything else. Unscoped terms search the
title and the text; a phrase or NEAR never spans the title and the text.

Operators are upper-case only. A lower-case `and`, `or` or `not` is rejected (quote it to search
for the word): `ukraine or ucraina` read as three AND-ed words would silently never match Italian
text, which is the worst way for a monitor to fail. Likewise `-word` is rejected in favour of
`NOT word`. A query must contain at least one term that is not negated.

Words are split as `monitor.text.words` splits them, so `l'Ucraina` in a query is the phrase
"l ucraina" and `Mosca-Kiev` is the phrase "mosca kiev".

Matching many rules: every distinct term/phrase/prefix of every rule goes into one Aho-Corasick
automaton over the folded, space-joined words of the article (patterns are space-padded, so hits
fall on word boundaries; prefixes have no trailing pad). One pass collects the hit offsets; then
only the rules that one of their required terms could trigger evaluate their boolean tree.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple

import ahocorasick

from monitor.errors import RuleSyntaxError
from monitor.models import Article, Match
from monitor.text import fold, words

__all__ = ["Document", "Query", "RuleSet", "parse_query"]

_FIELDS = ("title", "source", "lang")
_MAX_NEAR = 1000
_GAP = 1_000_000  # word-index gap between title and text, so NEAR never spans both
_SEP = "\x01"  # a token no pattern can match, between title and text
_QUOTES = str.maketrans({c: '"' for c in "\u201c\u201d\u201e\u00ab\u00bb"})
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*\Z")


@dataclass(frozen=True, slots=True)
class Document:
    """What rules see of an article: `text` is the summary and body as plain text."""

    title: str
    text: str
    source: str = ""
    language: str | None = None

    @classmethod
    def from_article(cls, article: Article) -> Document:
        text = f"{article.summary}\n{article.text}" if article.text else article.summary
        return cls(article.title, text, article.source, article.language)


# ---- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A word, prefix or phrase; `text` is how the user wrote it (reported in matches)."""

    text: str
    words: tuple[str, ...]
    prefix: bool
    title_only: bool
    pattern: str = ""  # what the automaton looks for: " w1 w2 " (no trailing pad for a prefix)

    def __post_init__(self) -> None:
        pattern = " " + " ".join(self.words) + ("" if self.prefix else " ")
        object.__setattr__(self, "pattern", pattern)

    def __str__(self) -> str:
        return ("title:" if self.title_only else "") + self.text


@dataclass(frozen=True, slots=True)
class Meta:
    """A `source:` or `lang:` test on the article's metadata."""

    field: str
    value: str
    prefix: bool

    def __str__(self) -> str:
        value = self.value + ("*" if self.prefix else "")
        return f'{self.field}:"{value}"' if " " in value else f"{self.field}:{value}"


@dataclass(frozen=True, slots=True)
class Not:
    child: Node

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # "AND" or "OR"
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.children)) + ")"


@dataclass(frozen=True, slots=True)
class Near:
    left: tuple[Term, ...]
    right: tuple[Term, ...]
    distance: int

    def __str__(self) -> str:
        def side(ts: tuple[Term, ...]) -> str:
            return str(ts[0]) if len(ts) == 1 else "(" + " OR ".join(map(str, ts)) + ")"

        return f"({side(self.left)} NEAR/{self.distance} {side(self.right)})"


Node = Term | Meta | Not | Bool | Near


# ---- parser ------------------------------------------------------------------------------------


class _Tok(NamedTuple):
    kind: str  # ( ) AND OR NOT NEAR FIELD WORD PHRASE END
    value: Any
    pos: int


_TOKEN = re.compile(r'\s+|[()]|"[^"]*"?|([A-Za-z]+):|[^\s()"]+')


def _tokenize(query: str) -> list[_Tok]:
    """Split the query into tokens, rejecting malformed ones where they stand."""
    toks: list[_Tok] = []
    for m in _TOKEN.finditer(query.translate(_QUOTES)):
        raw, i = m.group(), m.start()
        if raw.isspace():
            continue
        if raw in ("(", ")"):
            toks.append(_Tok(raw, raw, i))
        elif raw[0] == '"':
            if len(raw) == 1 or raw[-1] != '"':
                raise RuleSyntaxError("unclosed quote", i)
            toks.append(_Tok("PHRASE", raw[1:-1], i))
        elif m.group(1):
            if m.group(1).lower() not in _FIELDS:
                msg = f"unknown field {m.group(1)!r}: use title:, source: or lang:"
                raise RuleSyntaxError(msg, i)
            toks.append(_Tok("FIELD", m.group(1).lower(), i))
        elif raw in ("AND", "OR", "NOT"):
            toks.append(_Tok(raw, raw, i))
        elif raw.upper().startswith("NEAR/") or raw == "NEAR":
            digits = raw[5:]
            if raw != raw.upper() and digits.isdigit():
                raise RuleSyntaxError("operators are upper-case: write NEAR/" + digits, i)
            if not (digits.isascii() and digits.isdigit()) or int(digits) > _MAX_NEAR:
                msg = f"NEAR needs a distance in words from 0 to {_MAX_NEAR}, e.g. NEAR/5"
                raise RuleSyntaxError(msg, i)
            toks.append(_Tok("NEAR", int(digits), i))
        elif raw.lower() in ("and", "or", "not"):
            msg = f'operators are upper-case: write {raw.upper()}, or "{raw}" for the word'
            raise RuleSyntaxError(msg, i)
        elif raw.startswith("-") and len(raw) > 1 and not raw[1].isdigit():
            raise RuleSyntaxError(f"write NOT {raw[1:]} to exclude a term", i)
        else:
            toks.append(_Tok("WORD", raw, i))
    toks.append(_Tok("END", None, len(query)))
    return toks


_STARTS = ("(", "NOT", "FIELD", "WORD", "PHRASE")


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not ([AND] not)*; not := NOT not | near."""

    def __init__(self, query: str) -> None:
        self.toks = _tokenize(query)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def need_operand(self, op: _Tok) -> None:
        if self.peek().kind not in _STARTS:
            name = f"NEAR/{op.value}" if op.kind == "NEAR" else op.kind
            raise RuleSyntaxError(f"{name} needs a term after it", op.pos)

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise RuleSyntaxError("empty query", 0)
        node = self.or_expr(None)
        tok = self.peek()
        if tok.kind == ")":
            raise RuleSyntaxError("unmatched closing parenthesis", tok.pos)
        assert tok.kind == "END", tok
        return node

    def or_expr(self, scope: str | None) -> Node:
        parts = [self.and_expr(scope)]
        while self.peek().kind == "OR":
            self.need_operand(self.take())
            parts.append(self.and_expr(scope))
        return parts[0] if len(parts) == 1 else Bool("OR", tuple(parts))

    def and_expr(self, scope: str | None) -> Node:
        parts = [self.not_expr(scope)]
        while self.peek().kind in ("AND", *_STARTS):
            if self.peek().kind == "AND":
                self.need_operand(self.take())
            parts.append(self.not_expr(scope))
        return parts[0] if len(parts) == 1 else Bool("AND", tuple(parts))

    def not_expr(self, scope: str | None) -> Node:
        tok = self.peek()
        if tok.kind == "NOT":
            self.take()
            self.need_operand(tok)
            return Not(self.not_expr(scope))
        if tok.kind in ("AND", "OR", "NEAR"):
            name = f"NEAR/{tok.value}" if tok.kind == "NEAR" else tok.kind
            raise RuleSyntaxError(f"{name} needs a term before it", tok.pos)
        if tok.kind == ")":
            raise RuleSyntaxError("unmatched closing parenthesis", tok.pos)
        left = self.primary(scope)
        if self.peek().kind != "NEAR":
            return left
        near = self.take()
        if scope in ("source", "lang"):
            raise RuleSyntaxError(f"NEAR cannot be used inside {scope}:", near.pos)
        self.need_operand(near)
        right_tok = self.peek()
        right = self.primary(scope)
        if self.peek().kind == "NEAR":
            raise RuleSyntaxError("NEAR joins two terms; combine several with AND", self.peek().pos)
        return Near(self.near_side(left, tok), self.near_side(right, right_tok), near.value)

    @staticmethod
    def near_side(node: Node, tok: _Tok) -> tuple[Term, ...]:
        if isinstance(node, Term):
            return (node,)
        if (
            isinstance(node, Bool)
            and node.op == "OR"
            and all(isinstance(c, Term) for c in node.children)
        ):
            return tuple(c for c in node.children if isinstance(c, Term))
        raise RuleSyntaxError(
            "NEAR joins words or phrases, or a (group) of them joined by OR", tok.pos
        )

    def primary(self, scope: str | None) -> Node:
        tok = self.take()
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise RuleSyntaxError("empty parentheses", tok.pos)
            node = self.or_expr(scope)
            close = self.take()
            if close.kind != ")":
                raise RuleSyntaxError("unclosed parenthesis", tok.pos)
            return node
        if tok.kind == "FIELD":
            if scope is not None and scope != tok.value:
                raise RuleSyntaxError(f"{tok.value}: cannot be used inside {scope}:", tok.pos)
            if self.peek().kind not in ("(", "WORD", "PHRASE", "FIELD"):
                raise RuleSyntaxError(f"{tok.value}: needs a term, a phrase or a (group)", tok.pos)
            return self.primary(tok.value)
        if tok.kind == "WORD":
            return self.leaf(tok.value, tok.pos, scope, quoted=False)
        if tok.kind == "PHRASE":
            return self.leaf(tok.value, tok.pos + 1, scope, quoted=True)
        raise RuleSyntaxError("expected a term here", tok.pos)

    @staticmethod
    def leaf(raw: str, pos: int, scope: str | None, quoted: bool) -> Node:
        body = raw.rstrip()
        prefix = body.endswith("*")
        body = body[:-1] if prefix else body
        star = body.find("*")
        if star >= 0:
            raise RuleSyntaxError("'*' is only allowed at the end of a word", pos + star)
        ws = tuple(words(body))
        start = pos - 1 if quoted else pos
        if not ws:
            what = "empty phrase" if quoted else f"{raw!r} has no letters or digits"
            raise RuleSyntaxError(what, start)
        if prefix and body[-1:].isspace() or (prefix and not body):
            raise RuleSyntaxError("'*' must follow a word directly", pos + len(body))
        if scope in ("source", "lang"):
            value = " ".join(ws) if scope == "source" else fold(body.strip())
            if scope == "lang" and (prefix or not _LANG.match(value)):
                raise RuleSyntaxError("lang: expects a language code such as it or en", start)
            return Meta(scope, value, prefix)
        text = '"' + " ".join(raw.split()) + '"' if quoted else raw
        return Term(text, ws, prefix, scope == "title")


# ---- the query object --------------------------------------------------------------------------


def _leaves(node: Node, negated: bool = False) -> Iterator[tuple[Term | Meta, bool]]:
    """Every term and metadata test in query order, with whether it sits under a NOT."""
    if isinstance(node, Term | Meta):
        yield node, negated
    elif isinstance(node, Not):
        yield from _leaves(node.child, True)
    elif isinstance(node, Bool):
        for child in node.children:
            yield from _leaves(child, negated)
    elif isinstance(node, Near):
        yield from ((t, negated) for t in node.left + node.right)


class Query:
    """A parsed query; `str(q)` shows it fully parenthesised, as the matcher reads it."""

    __slots__ = ("text", "root", "_single")

    def __init__(self, text: str, root: Node) -> None:
        self.text = text
        self.root = root
        self._single: RuleSet | None = None

    def terms(self) -> tuple[str, ...]:
        """The positive terms and phrases as written, in query order, without duplicates."""
        found = (t.text for t, neg in _leaves(self.root) if isinstance(t, Term) and not neg)
        return tuple(dict.fromkeys(found))

    def match(self, doc: Document) -> Match | None:
        """Match this query alone (for `test-rule`); use a RuleSet for many rules."""
        if self._single is None:
            self._single = RuleSet([("query", self)])
        found = self._single.match(doc)
        return found[0] if found else None

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def parse_query(query: str) -> Query:
    """Parse `query`; raise RuleSyntaxError(message, 0-based position) when it is malformed."""
    root = _Parser(query).parse()
    if all(negated for _, negated in _leaves(root)):
        raise RuleSyntaxError("a query needs at least one term that is not under NOT", 0)
    return Query(query, root)


# ---- matching ----------------------------------------------------------------------------------


class _Hits:
    """One document's automaton hits: pattern -> sorted char offsets of the leading pad."""

    __slots__ = ("by_pattern", "found", "sep", "tokens", "_starts", "source", "lang", "title_len")

    def __init__(self, doc: Document, automaton: Any) -> None:
        title = words(doc.title)
        self.tokens = title + [_SEP] + words(doc.text)
        self.title_len = len(title)
        hay = " " + " ".join(self.tokens) + " "
        self.sep = hay.index(_SEP)
        self._starts: list[int] | None = None
        by: dict[str, list[int]] = {}
        for end, (pattern, size) in automaton.iter(hay):
            start = end - size + 1  # offset of the pattern's leading space
            by.setdefault(pattern, []).append(start)
        self.by_pattern = by
        self.found = set(by)
        self.source = " ".join(words(doc.source))
        self.lang = fold(doc.language or "").replace("_", "-")

    def term(self, t: Term) -> bool:
        got = self.by_pattern.get(t.pattern)
        return bool(got) and (not t.title_only or got[0] < self.sep)  # type: ignore[index]

    def spans(self, t: Term) -> list[tuple[int, int]]:
        """Word-index spans of a term's hits; text words sit _GAP past the title."""
        if self._starts is None:
            self._starts = list(accumulate((len(tok) + 1 for tok in self.tokens), initial=1))
        out = []
        for start in self.by_pattern.get(t.pattern, ()):
            if t.title_only and start > self.sep:
                break
            w = bisect_left(self._starts, start + 1)
            if w > self.title_len:
                w += _GAP
            out.append((w, w + len(t.words) - 1))
        return out

    def near(self, node: Near) -> tuple[list[Term], list[Term]]:
        """The left and right terms that have a hit within the distance of the other side."""
        left = [(t, self.spans(t)) for t in node.left if self.term(t)]
        right = [(t, self.spans(t)) for t in node.right if self.term(t)] if left else []
        lo: list[Term] = []
        ro: list[Term] = []
        for lt, ls in left:
            for rt, rs in right:
                if any(
                    max(b0 - a1, a0 - b1) - 1 <= node.distance for a0, a1 in ls for b0, b1 in rs
                ):
                    if lt not in lo:
                        lo.append(lt)
                    if rt not in ro:
                        ro.append(rt)
        return lo, ro

    def meta(self, m: Meta) -> bool:
        have = self.source if m.field == "source" else self.lang
        if m.prefix:
            return have.startswith(m.value)
        return have == m.value or (m.field == "lang" and have.startswith(m.value + "-"))


def _eval(node: Node, h: _Hits) -> bool:
    if isinstance(node, Term):
        return h.term(node)
    if isinstance(node, Bool):
        if node.op == "OR":
            return any(_eval(c, h) for c in node.children)
        return all(_eval(c, h) for c in node.children)
    if isinstance(node, Not):
        return not _eval(node.child, h)
    if isinstance(node, Near):
        return bool(h.near(node)[0])
    return h.meta(node)


def _compile(node: Node) -> Callable[[_Hits], bool]:
    """The node as a closure: evaluating 1,000 rules per article is the hot path."""
    if isinstance(node, Term) and not node.title_only:
        return lambda h, p=node.pattern: p in h.by_pattern  # type: ignore[misc]
    if isinstance(node, Term):
        return lambda h, p=node.pattern: (got := h.by_pattern.get(p)) is not None and got[0] < h.sep  # type: ignore[misc]
    if isinstance(node, Near | Meta):
        return lambda h: _eval(node, h)
    if isinstance(node, Not):
        inner = _compile(node.child)
        return lambda h: not inner(h)
    plain = [c.pattern for c in node.children if isinstance(c, Term) and not c.title_only]
    others = [_compile(c) for c in node.children if not (isinstance(c, Term) and not c.title_only)]
    if node.op == "OR":
        pats = frozenset(plain)
        return lambda h: not pats.isdisjoint(h.found) or any(f(h) for f in others)
    return lambda h: all(p in h.by_pattern for p in plain) and all(f(h) for f in others)


def _collect(node: Node, h: _Hits, out: list[str]) -> None:
    """Append the terms that made a true node true (never those under NOT)."""
    if isinstance(node, Term):
        out.append(node.text)
    elif isinstance(node, Bool):
        for child in node.children:
            if _eval(child, h):
                _collect(child, h, out)
    elif isinstance(node, Near):
        lo, ro = h.near(node)
        out.extend(t.text for t in lo + ro)


def _required(node: Node) -> set[str] | None:
    """Patterns of which at least one must hit for `node` to be true; None when none is needed."""
    if isinstance(node, Term):
        return {node.pattern}
    if isinstance(node, Near):
        return {t.pattern for t in node.left}
    if isinstance(node, Bool) and node.op == "OR":
        sets = [_required(c) for c in node.children]
        return None if any(s is None for s in sets) else set().union(*sets)  # type: ignore[arg-type]
    if isinstance(node, Bool):
        sets = [s for s in map(_required, node.children) if s is not None]
        return min(sets, key=len) if sets else None
    return None


class RuleSet:
    """Many named queries compiled into one automaton; `match` reports every rule that matches."""

    def __init__(self, rules: Iterable[tuple[str, str | Query]]) -> None:
        self.rules: list[tuple[str, Query]] = [
            (name, q if isinstance(q, Query) else parse_query(q)) for name, q in rules
        ]
        self._eval = [_compile(q.root) for _, q in self.rules]
        self._always: list[int] = []
        self._by_pattern: dict[str, list[int]] = {}
        patterns: set[str] = set()
        for index, (_, query) in enumerate(self.rules):
            patterns.update(t.pattern for t, _ in _leaves(query.root) if isinstance(t, Term))
            need = _required(query.root)
            if need is None:
                self._always.append(index)
            else:
                for pattern in need:
                    self._by_pattern.setdefault(pattern, []).append(index)
        self._automaton: Any = ahocorasick.Automaton()
        for pattern in patterns:
            self._automaton.add_word(pattern, (pattern, len(pattern)))
        self._automaton.add_word(_SEP * 2, (_SEP * 2, 2))  # never found; keeps it non-empty
        self._automaton.make_automaton()

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, doc: Document) -> list[Match]:
        """One Match per matching rule, in rule order, with the terms that were found."""
        hits = _Hits(doc, self._automaton)
        candidates = set(self._always)
        for pattern in hits.by_pattern:
            candidates.update(self._by_pattern.get(pattern, ()))
        out = []
        for index in sorted(candidates):
            name, query = self.rules[index]
            if self._eval[index](hits):
                terms: list[str] = []
                _collect(query.root, hits, terms)
                out.append(Match(name, tuple(dict.fromkeys(terms))))
        return out
