"""Where matched terms stand in the original text, and a short excerpt around them.

Pure: used by alert rendering to emphasise matched terms. Matching folds case and accents
like the rules do, but keeps offsets in the ORIGINAL text so the excerpt shows "perché", not
"perche".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from monitor.text import fold

_W = r"[^\W_]"  # a word character as monitor.text.words sees it


_fold_cluster = lru_cache(maxsize=4096)(fold)


def _folded(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Fold `text` one letter-with-its-accents at a time, remembering where each folded char
    came from, so matches found in the folded text map back to the original characters.
    (fold keeps marks on some scripts, so a lone mark cannot be folded apart from its letter.)
    """
    if text.isascii():  # fast path: folding keeps length
        return fold(text), [(i, i + 1) for i in range(len(text))]
    out: list[str] = []
    where: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and (unicodedata.combining(text[j]) or "\u1160" <= text[j] <= "\u11ff"):
            j += 1  # accents, and Hangul vowel/final jamo that NFC joins to the syllable
        f = _fold_cluster(text[i:j])
        out.append(f)
        where.extend([(i, j)] * len(f))
        i = j
    return "".join(out), where


@lru_cache(maxsize=256)
def _terms_regex(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all terms, longest first so a phrase wins over a word inside it."""
    patterns: set[str] = set()
    for term in terms:
        t = term.strip()
        scope = re.match(r"(title|source|lang):", t, re.IGNORECASE)
        if scope:
            if scope.group(1).lower() != "title":
                continue  # source:/lang: say nothing about the text
            t = t[scope.end() :]
        parts = re.findall(_W + r"+\*?", fold(t))
        if not parts:
            continue
        rx = (re.escape(p.rstrip("*")) + (_W + "*" if p.endswith("*") else "") for p in parts)
        patterns.add(rf"(?<!{_W})" + r"[\W_]+".join(rx) + rf"(?!{_W})")
    if not patterns:
        return None
    return re.compile("|".join(sorted(patterns, key=lambda p: (-len(p), p))))


def find_terms(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) spans in `text` of the matched terms, case- and accent-insensitive."""
    rx = _terms_regex(tuple(terms))
    if rx is None or not text:
        return []
    folded, where = _folded(text)
    spans = []
    for m in rx.finditer(folded):
        if m.end() == m.start():
            continue
        spans.append((where[m.start()][0], where[m.end() - 1][1]))
    return spans


def excerpt(
    text: str, terms: Sequence[str], *, chars: int = 280
) -> tuple[str, list[tuple[int, int]]]:
    """A window of ≤ `chars` characters around the first matched term, cut on word boundaries.

    Whitespace is collapsed first; the excerpt is otherwise a verbatim slice of the text (accents
    kept), with '…' where it was cut. The spans index into the returned excerpt, so
    `excerpt[s:e]` is the original matched word, e.g. "perché" for the term "perche".
    """
    text = " ".join(text.split())
    spans = find_terms(text, terms)
    if len(text) <= chars:
        return text, spans
    room = max(chars - 2, 1)  # leave room for the two ellipses
    first = spans[0] if spans else (0, 0)
    start = max(0, first[0] - room // 3)
    end = min(len(text), start + room)
    start = max(0, min(start, end - room))
    if start > 0:
        space = text.find(" ", start - 1, first[0])
        if space != -1:
            start = space + 1
    if end < len(text):
        space = text.rfind(" ", max(first[1], start), end + 1)
        if space > start:
            end = space
    body = text[start:end]
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(text) else ""
    shift = len(lead) - start
    inside = [(s + shift, e + shift) for s, e in spans if s >= start and e <= end]
    return lead + body + tail, inside
