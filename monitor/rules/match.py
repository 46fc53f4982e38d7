"""Rule matching: one Aho-Corasick pass for all rules over an article's words.

Every distinct term/phrase/prefix of every rule goes into one automaton over the folded, space-
joined words of the article (patterns are space-padded, so hits fall on word boundaries; prefixes
have no trailing pad). One pass collects the hits; then only the rules that one of their required
terms could trigger evaluate their boolean tree.

The cost, per bench/bench_rules.py (1,000 rules made from 3,000 real feed items of 145 words):
folding and splitting the words is about half of it (`text.word_line`, with bytes fast paths for
ASCII and Latin-1 text), the automaton's pass a fifth. The rest is kept out of Python loops: the
found patterns are sets built in C from the automaton's own list of hits (offsets are worked out
only for NEAR), and each rule is compiled once into set tests that run in C (`_test`) plus a
collector of its terms that runs only when it matched. Against the per-word lists, the loop per
hit and the closure per node that came before, that is 2x less CPU an article.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import ahocorasick

from monitor.models import Article, Match
from monitor.rules.tree import Bool, Meta, Near, Node, Not, Term, leaves
from monitor.text import fold, word_line

__all__ = ["Document", "Matcher"]

_GAP = 1_000_000  # word-index gap between title and text, so NEAR never spans both
_SEP = "\x01"  # a token no pattern can match, between title and text
_END = itemgetter(0)
_PATTERN = itemgetter(1)


@dataclass(frozen=True, slots=True)
class Document:
    """What rules see of an article: `text` is the summary and body as plain text."""

    title: str
    text: str
    source: str = ""
    language: str | None = None

    @classmethod
    def from_article(cls, article: Article) -> Document:
        """What the rules see of an article: the title, and the summary plus the body (once,
        when the body is only the summary again)."""
        summary, body = article.summary, article.text
        text = summary if not body or body == summary else f"{summary}\n{body}"
        return cls(article.title, text, article.source, article.language)


# ---- matching ----------------------------------------------------------------------------------


class _Hits:
    """One document's automaton hits over " title words \\x01 text words ".

    `found` and `title_found` are the patterns hit anywhere and in the title; the hits' offsets
    (`hits`: the automaton's (end offset, pattern) pairs, in order) only matter to NEAR.
    """

    __slots__ = ("doc", "found", "hay", "hits", "sep", "title_found", "_starts", "_meta")

    def __init__(self, doc: Document, automaton: Any) -> None:
        title, text = word_line(doc.title), word_line(doc.text)
        head = f" {title} " if title else " "
        self.sep = len(head)  # the offset of _SEP
        self.hay = head + _SEP + (f" {text} " if text else " ")
        self.hits: list[tuple[int, str]] = list(automaton.iter(self.hay))
        self.found = set(map(_PATTERN, self.hits))
        in_title = bisect_left(self.hits, self.sep, key=_END)  # no pattern spans _SEP
        self.title_found = set(map(_PATTERN, islice(self.hits, in_title)))
        self.doc = doc
        self._starts: dict[str, list[int]] | None = None
        self._meta: tuple[str, str] | None = None

    def spans(self, t: Term) -> list[tuple[int, int]]:
        """Word-index spans of a term's hits; text words sit _GAP past the title."""
        if self._starts is None:
            self._starts = {}
            for end, pattern in self.hits:
                self._starts.setdefault(pattern, []).append(end - len(pattern) + 1)
        title_len = self.hay.count(" ", 0, self.sep) - 1
        out = []
        w, at = 0, 0
        for start in self._starts.get(t.pattern, ()):
            if t.title_only and start > self.sep:
                break
            w, at = w + self.hay.count(" ", at, start), start  # a word's index: spaces before it
            index = w + _GAP if w > title_len else w
            out.append((index, index + len(t.words) - 1))
        return out

    def near(self, node: Near) -> tuple[list[Term], list[Term]]:
        """The left and right terms that have a hit within the distance of the other side."""
        found = [t for t in node.left if self.term(t)]
        if not found or not any(map(self.term, node.right)):
            return [], []
        left = [(t, self.spans(t)) for t in found]
        right = [(t, self.spans(t)) for t in node.right if self.term(t)]
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

    def term(self, t: Term) -> bool:
        return t.pattern in (self.title_found if t.title_only else self.found)

    def meta(self, m: Meta) -> bool:
        if self._meta is None:
            lang = fold(self.doc.language or "").replace("_", "-")
            self._meta = (word_line(self.doc.source), lang)
        have = self._meta[0] if m.field == "source" else self._meta[1]
        if m.prefix:
            return have.startswith(m.value)
        return have == m.value or (m.field == "lang" and have.startswith(m.value + "-"))


Eval = Callable[[_Hits], bool]
Collect = Callable[[_Hits, list[str]], None]
ANY, ALL, NONE = "any", "all", "none"  # some / every / none of the patterns was found


class _Test(NamedTuple):
    """A node that is one test of a set of patterns against those found (in the title)."""

    kind: str  # ANY, ALL or NONE; a single pattern is ANY, which is also ALL
    patterns: frozenset[str]
    title: bool


def _test(node: Node) -> _Test | None:
    """The node as one set test, when it is one.

    Most of a real rule is terms under AND, OR and NOT: `(a OR b) AND NOT (c OR d)` is two such
    tests; set methods run them in C (0.5 against 1.8 us a candidate rule as one closure per
    node, bench/bench_rules.py).
    """
    if isinstance(node, Term):
        return _Test(ANY, frozenset((node.pattern,)), node.title_only)
    if isinstance(node, Not):
        inner = _test(node.child)
        if inner is None or inner.kind == ALL:
            return None
        return inner._replace(kind=NONE if inner.kind == ANY else ANY)
    if not isinstance(node, Bool):
        return None
    tests = [_test(c) for c in node.children]
    kind = ANY if node.op == "OR" else ALL
    first = tests[0]
    if first and all(
        t
        and t.title == first.title
        and (t.kind == kind or (t.kind != NONE and len(t.patterns) == 1))
        for t in tests
    ):
        return _Test(kind, frozenset().union(*(t.patterns for t in tests if t)), first.title)
    return None


def _set_test(test: _Test) -> Eval:
    patterns, kind = test.patterns, test.kind
    if test.title:
        if kind == ANY:
            return lambda h: not patterns.isdisjoint(h.title_found)
        if kind == ALL:
            return lambda h: patterns <= h.title_found
        return lambda h: patterns.isdisjoint(h.title_found)
    if kind == ANY:
        return lambda h: not patterns.isdisjoint(h.found)
    if kind == ALL:
        return lambda h: patterns <= h.found
    return lambda h: patterns.isdisjoint(h.found)


def _evaluator(node: Node) -> Eval:
    """Whether the node is true for a document, compiled once per rule."""
    test = _test(node)
    if test is not None:
        return _set_test(test)
    if isinstance(node, Near):
        near = node
        return lambda h: bool(h.near(near)[0])
    if isinstance(node, Meta):
        meta = node
        return lambda h: h.meta(meta)
    if isinstance(node, Not):
        inner = _evaluator(node.child)
        return lambda h: not inner(h)
    assert isinstance(node, Bool)
    return _bool_evaluator(node)


def _bool_evaluator(node: Bool) -> Eval:
    """AND/OR of a mix: the children that are set tests on the same set merge where the logic
    allows (for AND: all of A, none of B; for OR: any of A), the others stay functions;
    everything is pure, so the order is free: set tests first."""
    merge = ANY if node.op == "OR" else ALL
    other = ALL if node.op == "OR" else ANY
    merged: dict[tuple[str, bool], set[str]] = {}
    groups: dict[tuple[str, bool], list[frozenset[str]]] = {}
    parts: list[Eval] = []
    for child in node.children:
        test = _test(child)
        if test is None:
            parts.append(_evaluator(child))
        elif test.kind == merge or (test.kind == other and len(test.patterns) == 1):
            merged.setdefault((merge, test.title), set()).update(test.patterns)
        elif test.kind == NONE and node.op == "AND":
            merged.setdefault((NONE, test.title), set()).update(test.patterns)
        else:
            groups.setdefault((test.kind, test.title), []).append(test.patterns)
    tests = [_set_test(_Test(kind, frozenset(ps), title)) for (kind, title), ps in merged.items()]
    for (kind, title), sets in groups.items():
        if len(sets) == 1:
            tests.append(_set_test(_Test(kind, sets[0], title)))
        else:
            tests.append(_group_test(kind, title, sets))
    return _combine(node.op, tests + parts)


def _group_test(kind: str, title: bool, groups: list[frozenset[str]]) -> Eval:
    """Under AND, several ANY tests; under OR, several ALL or NONE tests: one pass in C."""
    found = attrgetter("title_found" if title else "found")
    if kind == ANY:  # under AND: every group has a pattern found
        return lambda h: not any(map(found(h).isdisjoint, groups))
    if kind == ALL:  # under OR: some group was found whole
        return lambda h: any(map(found(h).issuperset, groups))
    return lambda h: any(map(found(h).isdisjoint, groups))  # under OR: some group is absent


def _combine(op: str, parts: list[Eval]) -> Eval:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return (lambda h: a(h) or b(h)) if op == "OR" else (lambda h: a(h) and b(h))
    if op == "OR":
        return lambda h: any(f(h) for f in parts)
    return lambda h: all(f(h) for f in parts)


def _plain_terms(node: Node, under_or: bool = False) -> list[Term] | None:
    """The unscoped terms under `node`, outside NOT, source: and lang:, when what a true `node`
    collects is exactly those of them that were found: so with no NEAR, no title: and no AND
    under an OR (`(a AND b) OR c` collects only c when b is missing, even if a was found)."""
    if isinstance(node, Term):
        return None if node.title_only else [node]
    if isinstance(node, Not | Meta):
        return []
    if not isinstance(node, Bool) or (under_or and node.op == "AND"):
        return None
    out: list[Term] = []
    for child in node.children:
        terms = _plain_terms(child, under_or or node.op == "OR")
        if terms is None:
            return None
        out += terms
    return out


def _collector(node: Node) -> Collect | None:
    """Appends the terms that made the (true) node true, never those under NOT; None when that
    is nothing (NOT, source:, lang:). Called only for the few rules that match: most (the shapes
    of `_plain_terms`) pick their found terms in one pass in C."""
    plain = _plain_terms(node)
    if plain is not None:
        texts = [t.text for t in plain]
        patterns = [t.pattern for t in plain]
        if not plain:
            return None
        return lambda h, out: out.extend(compress(texts, map(h.found.__contains__, patterns)))
    if isinstance(node, Term):  # title-scoped
        text = node.text
        return lambda h, out: out.append(text)
    if isinstance(node, Near):
        near = node

        def collect_near(h: _Hits, out: list[str]) -> None:
            lo, ro = h.near(near)
            out.extend(t.text for t in lo + ro)

        return collect_near
    assert isinstance(node, Bool)  # NOT, source: and lang: have no terms to collect
    kids = [(_evaluator(c), co) for c in node.children if (co := _collector(c)) is not None]
    if node.op == "AND":  # a true AND: every child is true

        def collect_and(h: _Hits, out: list[str]) -> None:
            for _, co in kids:
                co(h, out)

        return collect_and

    def collect_or(h: _Hits, out: list[str]) -> None:
        for true, co in kids:
            if true(h):
                co(h, out)

    return collect_or


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


class Matcher:
    """Many named syntax trees compiled into one automaton; `match` reports every match."""

    def __init__(self, roots: Iterable[tuple[str, Node]]) -> None:
        self._roots: list[tuple[str, Node]] = list(roots)
        self._compiled = [(_evaluator(root), _collector(root)) for _, root in self._roots]
        self._always: list[int] = []
        by_pattern: dict[str, list[int]] = {}
        patterns: set[str] = set()
        for index, (_, root) in enumerate(self._roots):
            patterns.update(t.pattern for t, _ in leaves(root) if isinstance(t, Term))
            need = _required(root)
            if need is None:
                self._always.append(index)
            else:
                for pattern in need:
                    by_pattern.setdefault(pattern, []).append(index)
        self._by_pattern = {p: tuple(rules) for p, rules in by_pattern.items()}
        self._automaton: Any = ahocorasick.Automaton()
        for pattern in patterns:
            self._automaton.add_word(pattern, pattern)
        self._automaton.add_word(_SEP * 2, _SEP * 2)  # never found; keeps it non-empty
        self._automaton.make_automaton()

    def __len__(self) -> int:
        return len(self._roots)

    def match(self, doc: Document) -> list[Match]:
        """One Match per matching rule, in rule order, with the terms that were found.

        Only the rules one of whose required patterns was found are evaluated (about 10 of
        1,000 per article in the bench), and only the matching ones collect their terms.
        """
        hits = _Hits(doc, self._automaton)
        candidates = set(self._always).union(
            *map(self._by_pattern.get, hits.found, repeat(()))  # type: ignore[arg-type]
        )
        out = []
        for index in sorted(candidates):
            matches, collect = self._compiled[index]
            if matches(hits):
                terms: list[str] = []
                if collect is not None:
                    collect(hits, terms)
                out.append(Match(self._roots[index][0], tuple(dict.fromkeys(terms))))
        return out
