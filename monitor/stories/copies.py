"""Same article: pure functions on plain data (no I/O, no clock, no sqlite).

Tiers, cheapest first (the store runs them in this order, each over a bounded time window):

1. same GUID or canonical URL (an edit in place, or the same link under another feed);
2. same `Article.fingerprint` (exact hash of the normalized title + text);
3. a similarity sketch of title + lead only: a *bottom-k* sketch (k = 64 smallest 64-bit hashes
   of the word-bigram shingles), compared by the bottom-k Jaccard estimator. One hash per
   shingle instead of one per shingle *per permutation* (MinHash-128 hashes 128 times); for a
   title + lead of 40-80 words k = 64 keeps almost every shingle, so the estimate is near exact.
   Candidates come from an index on the `KEYS` smallest hashes (two texts with Jaccard >= 0.5
   share one of them with probability > 0.99), kept in SQLite for the window only: memory stays
   flat as history grows and a restart loses nothing. Measured in bench/eval_dedupe.py.

The shingle hash is xxh3-64 (xxhash): on the bench's real item texts it costs a fifth of
blake2b's per shingle (~115 ns against ~610 ns), which makes a whole sketch ~1.45x cheaper
(issue 13). The hashes are stored (the window's sketches and index keys): a change of the hash
(`sketch`) needs a schema migration that refiles them (store/schema.py `_v10_sketch_hash`),
or a stored sketch would silently never match a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import xxhash

from monitor.stories.language import stop_words
from monitor.stories.terms import lead_text
from monitor.text import words

K = 64  # sketch size (smallest shingle hashes kept)
KEYS = 8  # smallest hashes indexed for candidate lookup
COPY_JACCARD = 0.5  # estimated Jaccard of title+lead bigrams at or above which it is a copy
LEAD_WORDS = 60  # words of summary/text taken as the "lead"

# --- tier 3: the sketch -----------------------------------------------------------------------


def lead(title: str, summary: str, text: str) -> str:
    """Title plus the first LEAD_WORDS words of the summary (else the text)."""
    return f"{title}\n{lead_text(summary, text, LEAD_WORDS)}"


_XXH3 = xxhash.xxh3_64_intdigest  # the shingle hash: its values are stored (module docstring)


def sketch(text: str, language: str | None = None, k: int = K) -> tuple[int, ...]:
    """Bottom-k sketch of the word-bigram shingles of `text`, ascending."""
    # function words out first: "of the" is in nearly every text and would file every
    # sketch under the same keys, turning each lookup into a scan of the window
    stop = stop_words(language)
    toks = [w for w in words(text) if w not in stop]
    if len(toks) < 2:
        grams = set(toks)
    else:
        grams = {f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)}
    # a stable hash (Python's hash() is salted per process), 63 bits so it fits SQLite INTEGER
    return tuple(sorted(_XXH3(g.encode()) >> 1 for g in grams)[:k])


def index_keys(sig: Sequence[int]) -> tuple[int, ...]:
    """The hashes a sketch is filed under for candidate lookup."""
    return tuple(sig[:KEYS])


def jaccard(a: Sequence[int], b: Sequence[int], k: int = K) -> float:
    """Bottom-k estimate of the Jaccard similarity of the two shingle sets."""
    if not a or not b:
        return 0.0
    sa, sb = set(a), set(b)
    union = sorted(sa | sb)[:k]
    both = sum(1 for h in union if h in sa and h in sb)
    return both / len(union)


def best_copy(
    sig: Sequence[int], others: Iterable[tuple[int, Sequence[int]]]
) -> tuple[int, float] | None:
    """The (id, similarity) of the most similar sketch at or above COPY_JACCARD, if any."""
    best: tuple[int, float] | None = None
    for other_id, other in others:
        score = jaccard(sig, other)
        if score >= COPY_JACCARD and (best is None or score > best[1]):
            best = (other_id, score)
    return best
