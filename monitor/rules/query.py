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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from monitor.errors import RuleSyntaxError
from monitor.models import Match
from monitor.rules.match import Document, Matcher
from monitor.rules.tree import Bool, Meta, Near, Node, Not, Term, leaves
from monitor.text import fold, words

__all__ = ["Document", "Query", "RuleSet", "parse_query"]

_FIELDS = ("title", "source", "lang")
_MAX_NEAR = 1000
_MAX_DEPTH = 50  # nested ( ), NOT and field: -- far beyond any real query, far within the stack
_QUOTES = str.maketrans({c: '"' for c in "\u201c\u201d\u201e\u00ab\u00bb"})
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*\Z")

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
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    @contextmanager
    def nested(self, tok: _Tok) -> Iterator[None]:
        """One level deeper; too deep is a syntax error, not a RecursionError traceback."""
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            msg = f"nested more than {_MAX_DEPTH} deep (parentheses, NOT, field:)"
            raise RuleSyntaxError(msg, tok.pos)
        yield
        self.depth -= 1

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
            with self.nested(tok):
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
            with self.nested(tok):
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
            with self.nested(tok):
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


class Query:
    """A parsed query; `str(q)` shows it fully parenthesised, as the matcher reads it."""

    __slots__ = ("text", "root", "_single")

    def __init__(self, text: str, root: Node) -> None:
        self.text = text
        self.root = root
        self._single: RuleSet | None = None

    def terms(self) -> tuple[str, ...]:
        """The positive terms and phrases as written, in query order, without duplicates."""
        found = (t.text for t, neg in leaves(self.root) if isinstance(t, Term) and not neg)
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


def parse_query(query: str, *, only_not: bool = False) -> Query:
    """Parse `query`; raise RuleSyntaxError(message, 0-based position) when it is malformed.
    A rule needs a term outside NOT, or it would match nearly every article; `search` passes
    `only_not=True` to allow `NOT kiev`, bounded by its --since and --limit."""
    root = _Parser(query).parse()
    if not only_not and all(negated for _, negated in leaves(root)):
        raise RuleSyntaxError("a query needs at least one term that is not under NOT", 0)
    return Query(query, root)


class RuleSet(Matcher):
    """Many named queries compiled into one automaton; `match` reports every rule that matches."""

    def __init__(self, rules: Iterable[tuple[str, str | Query]]) -> None:
        self.rules: list[tuple[str, Query]] = [
            (name, q if isinstance(q, Query) else parse_query(q)) for name, q in rules
        ]
        super().__init__((name, q.root) for name, q in self.rules)
