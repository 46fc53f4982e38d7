"""Which story an article joins: TF-IDF cosine similarity against the stories of the window.

Online, one pass: each new article is compared with the stories that share one of its most
telling terms (an inverted index the store keeps for the window) and joins the most similar one
when the similarity reaches `JOIN`, else opens a story of its own. A term's weight is its count
(title words count double, see `terms`) times its inverse document frequency over the articles
of the window, so what every story says ("Ukraine" in a Ukraine-watching window, "Covid" in
2021) weighs little without any list. A story is compared through the sum of its most recent
`MEMBERS` articles' terms, so a story that drifts over a day (a ceremony, then the reactions)
follows its latest reports, and a big story does not become a vague average of all of them.

Across languages only names, numbers and lexicon concepts can meet, so an article is held to
`JOIN_CROSS` against a story none of whose members is in its language.

An article close to several young stories bridges them: they were one event whose first
reports happened to share too little (`bridged` lists them; the store merges them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monitor.stories.terms import NUMBER

JOIN = 0.30  # cosine similarity to a story at which an article joins it
JOIN_CROSS = 0.20  # ... when the article's language is not among the story's
MEMBERS = 8  # a story is compared through its most recent members
BRIDGE = 1.6  # another story this close (1.0 = JOIN) is the same event: merge it
NUMBERS_APART = 0.6  # similarity kept when an article's numbers are all new to the story
QUERY_TERMS = 12  # an article looks up candidate stories by its heaviest terms
INDEX_TERMS = 12  # ... and is filed in the index under as many


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
class Member:
    """One article of a story as grouping sees it: its terms weighted by idf when it joined
    (so a story costs nothing to re-weigh as the window's frequencies move)."""

    vector: Mapping[str, float]
    language: str | None


@dataclass(frozen=True, slots=True)
class StoryView:
    """A candidate story: its id and its most recent members."""

    id: int
    members: Sequence[Member]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an article goes: `story` (None = a new one), its similarity, and the other stories
    it is as close to (to merge into `story`)."""

    story: int | None
    score: float = 0.0
    bridged: tuple[int, ...] = ()


def similarity(vector: Mapping[str, float], language: str | None, story: StoryView) -> float:
    """How close an article (its weighted terms) is to a story, scaled so that 1.0 means 'at
    the join threshold'.

    The story is the sum of its recent members' vectors (a centroid: one stray member cannot
    pull in articles like itself alone); across languages the cosine is judged against
    JOIN_CROSS instead of JOIN.
    """
    centroid: dict[str, float] = {}
    for member in story.members:
        for term, weight in member.vector.items():
            centroid[term] = centroid.get(term, 0.0) + weight
    score = cosine(vector, centroid)
    if NUMBERS_APART and _numbers_apart(vector, centroid):
        score *= NUMBERS_APART
    languages = {m.language for m in story.members if m.language}
    cross = bool(language and languages and language not in languages)
    return score / (JOIN_CROSS if cross else JOIN)


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
