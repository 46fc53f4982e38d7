"""Rule matching: one Aho-Corasick pass for all rules over an article's words.

Every distinct term/phrase/prefix of every rule goes into one automaton over the folded, space-
joined words of the article (patterns are space-padded, so hits fall on word boundaries; prefixes
have no trailing pad). One pass collects the hit offsets; then only the rules that one of their
required terms could trigger evaluate their boolean tree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import ahocorasick

from monitor.models import Article, Match
from monitor.rules.tree import Bool, Meta, Near, Node, Not, Term, leaves
from monitor.text import fold, words

__all__ = ["Document", "Matcher"]

_GAP = 1_000_000  # word-index gap between title and text, so NEAR never spans both
_SEP = "\x01"  # a token no pattern can match, between title and text


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


class Matcher:
    """Many named syntax trees compiled into one automaton; `match` reports every match."""

    def __init__(self, roots: Iterable[tuple[str, Node]]) -> None:
        self._roots: list[tuple[str, Node]] = list(roots)
        self._eval = [_compile(root) for _, root in self._roots]
        self._always: list[int] = []
        self._by_pattern: dict[str, list[int]] = {}
        patterns: set[str] = set()
        for index, (_, root) in enumerate(self._roots):
            patterns.update(t.pattern for t, _ in leaves(root) if isinstance(t, Term))
            need = _required(root)
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
        return len(self._roots)

    def match(self, doc: Document) -> list[Match]:
        """One Match per matching rule, in rule order, with the terms that were found."""
        hits = _Hits(doc, self._automaton)
        candidates = set(self._always)
        for pattern in hits.by_pattern:
            candidates.update(self._by_pattern.get(pattern, ()))
        out = []
        for index in sorted(candidates):
            name, root = self._roots[index]
            if self._eval[index](hits):
                terms: list[str] = []
                _collect(root, hits, terms)
                out.append(Match(name, tuple(dict.fromkeys(terms))))
        return out
