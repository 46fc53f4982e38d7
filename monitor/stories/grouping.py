"""Which story an article joins: TF-IDF cosine similarity against the stories of the window.

Online, one pass: each new article is compared with the stories that share one of its most
telling terms (an inverted index the store keeps for the window) and joins the most similar one
when the similarity reaches `JOIN`, else opens a story of its own. A term's weight is its count
(title words count double, see `terms`) times its inverse document frequency over the articles
of the window, so what every story says ("Ukraine" in a Ukraine-watching window, "Covid" in
2021) weighs little without any list. A story is compared through its centroid: the sum of
its articles' weighted terms, each weighed as it was when the article joined, kept to its
`CENTROID_TERMS` heaviest terms, so comparing costs one small vector per candidate story
however big the story grows.

Across languages only names, numbers and lexicon concepts can meet, so an article is held to
`JOIN_CROSS` against a story none of whose articles is in its language.

An article close to several young stories bridges them: they were one event whose first
reports happened to share too little (`bridged` lists them; the store merges them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.models import StoryView
from monitor.stories.terms import NUMBER

JOIN = 0.30  # cosine similarity to a story at which an article joins it
JOIN_CROSS = 0.20  # ... when the article's language is not among the story's
CENTROID_TERMS = 80  # a story's centroid keeps its heaviest terms
BRIDGE = 1.6  # another story this close (1.0 = JOIN) is the same event: merge it
NUMBERS_APART = 0.6  # similarity kept when an article's numbers are all new to the story
QUERY_TERMS = 12  # an article looks up candidate stories by its heaviest terms
INDEX_TERMS = 12  # ... and is filed in the index under as many
COMMON = 0.10  # terms in more than this share of the window find too many stories to look up


def idf(df: int, n: int) -> float:
    """Smoothed inverse document frequency of a term in `df` of `n` window articles."""
    return math.log((n + 1) / (df + 1)) + 1.0


def weighted(terms: Mapping[str, float], df: Mapping[str, int], n: int) -> dict[str, float]:
    """Term counts times their idf in the window."""
    return {t: w * idf(df.get(t, 0), n) for t, w in terms.items()}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    if not dot:
        return 0.0
    norm = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(sum(w * w for w in b.values()))
    return dot / norm


def heaviest(vector: Mapping[str, float], k: int) -> list[str]:
    """The k terms that say most about an article (for the candidate index)."""
    ranked = sorted(vector.items(), key=lambda tw: (-tw[1], tw[0]))
    return [t for t, _ in ranked[:k]]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an article goes: `story` (None = a new one), its similarity, and the other stories
    it is as close to (to merge into `story`)."""

    story: int | None
    score: float = 0.0
    bridged: tuple[int, ...] = ()


def lookup_terms(vector: Mapping[str, float], df: Mapping[str, int], n: int) -> list[str]:
    """The terms to find candidate stories by: the heaviest ones that another article of the
    window has too, leaving out those so common that they would find most stories."""
    useful = {t: w for t, w in vector.items() if 2 <= df.get(t, 0) <= max(3, COMMON * n)}
    return heaviest(useful, QUERY_TERMS)


def similarity(vector: Mapping[str, float], language: str | None, story: StoryView) -> float:
    """How close an article (its weighted terms) is to a story, scaled so that 1.0 means 'at
    the join threshold'; across languages the cosine is judged against JOIN_CROSS."""
    score = cosine(vector, story.centroid)
    if NUMBERS_APART and _numbers_apart(vector, story.centroid):
        score *= NUMBERS_APART
    cross = bool(language and story.languages and language not in story.languages)
    return score / (JOIN_CROSS if cross else JOIN)


def add(centroid: Mapping[str, float], vector: Mapping[str, float]) -> dict[str, float]:
    """The centroid with one more article (or another story's centroid) added, capped."""
    total = dict(centroid)
    for term, weight in vector.items():
        total[term] = total.get(term, 0.0) + weight
    if len(total) <= CENTROID_TERMS:
        return total
    return dict(sorted(total.items(), key=lambda tw: (-tw[1], tw[0]))[:CENTROID_TERMS])


def _numbers(vector: Mapping[str, float]) -> set[str]:
    return {t for t in vector if t.startswith(NUMBER) and len(t) > 2}


def _numbers_apart(vector: Mapping[str, float], centroid: Mapping[str, float]) -> bool:
    """Two or more numbers, none of them the story's: another day's figures, another result."""
    mine = _numbers(vector)
    return len(mine) >= 2 and bool(_numbers(centroid)) and not mine & centroid.keys()


def place(
    vector: Mapping[str, float], language: str | None, stories: Iterable[StoryView]
) -> Placement:
    """The story this article joins (the most similar at or above the threshold), if any."""
    scored = sorted(
        ((similarity(vector, language, s), s.id) for s in stories),
        key=lambda pair: (-pair[0], pair[1]),
    )
    above = [(score, sid) for score, sid in scored if score >= 1.0]
    if not above:
        return Placement(None, scored[0][0] if scored else 0.0)
    (score, best), rest = above[0], above[1:]
    return Placement(best, score, tuple(sid for s, sid in rest if s >= BRIDGE))
