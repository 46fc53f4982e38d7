"""Same article and same story: pure functions on plain data (no I/O, no clock, no sqlite).

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

Stories group *different* articles about one event. An article's facts are the names (capitalised
word runs, accents folded, a small Italian/English alias map so `Kiev` = `Kyiv`), numbers
(`1.400` = `1,400`) and quoted phrases in its title and lead. It joins the story whose facts it
shares most, when the shared weight reaches `JOIN_SCORE` with at least two distinct facts; names
every outlet repeats (Ukraine, Russia, Trump, ...) weigh little, and a fact found in many stories
of the window weighs less. A "new development" is an article bringing facts the story did not have.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.text import fold, words

K = 64  # sketch size (smallest shingle hashes kept)
KEYS = 8  # smallest hashes indexed for candidate lookup
COPY_JACCARD = 0.5  # estimated Jaccard of title+lead bigrams at or above which it is a copy
LEAD_WORDS = 60  # words of summary/text taken as the "lead"
STORY_CHARS = 3000  # characters of summary/text scanned for story facts
JOIN_SCORE = 4.0  # shared fact weight needed to join a story
MIN_SHARED = 2  # ... from at least this many distinct non-common facts
NEW_FACTS = 2.0  # weight of unseen facts that makes a "new development"
FACTS_CAP = 400  # a story remembers at most this many facts

# --- tier 3: the sketch -----------------------------------------------------------------------


def lead(title: str, summary: str, text: str) -> str:
    """Title plus the first LEAD_WORDS words of the summary (else the text)."""
    body = summary or text
    return f"{title}\n{' '.join(body.split()[:LEAD_WORDS])}"


def _h64(data: str) -> int:
    # a stable hash (Python's hash() is salted per process); 63 bits so it fits SQLite INTEGER
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big") >> 1


def sketch(text: str, k: int = K) -> tuple[int, ...]:
    """Bottom-k sketch of the word-bigram shingles of `text`, ascending."""
    # function words out first: "of the" is in nearly every text and would file every
    # sketch under the same keys, turning each lookup into a scan of the window
    toks = [w for w in words(text) if w not in _STOP]
    if len(toks) < 2:
        grams = set(toks)
    else:
        grams = {f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)}
    return tuple(sorted(_h64(g) for g in grams)[:k])


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


# --- story facts ------------------------------------------------------------------------------

# Italian (and spelling) variants -> one English key. Small on purpose: the names that carry the
# stories this monitor is configured for, and the ones whose spelling differs most across outlets.
ALIASES = {
    "kiev": "kyiv",
    "kyjiv": "kyiv",
    "mosca": "moscow",
    "ucraina": "ukraine",
    "ukrainian": "ukraine",
    "ucraini": "ukraine",
    "russian": "russia",
    "russians": "russia",
    "usa": "us",
    "u.s": "us",
    "stati uniti": "us",
    "united states": "us",
    "american": "us",
    "americans": "us",
    "ue": "eu",
    "unione europea": "eu",
    "european union": "eu",
    "europa": "europe",
    "european": "europe",
    "zelenskyy": "zelensky",
    "zelenski": "zelensky",
    "volodymyr zelenskyy": "volodymyr zelensky",
    "cremlino": "kremlin",
    "casa bianca": "white house",
    "londra": "london",
    "parigi": "paris",
    "bruxelles": "brussels",
    "pechino": "beijing",
    "cina": "china",
    "germania": "germany",
    "francia": "france",
    "gran bretagna": "uk",
    "regno unito": "uk",
    "britain": "uk",
    "u.k": "uk",
    "bielorussia": "belarus",
    "turchia": "turkey",
    "siria": "syria",
    "israele": "israel",
    "onu": "un",
    "nazioni unite": "un",
    "united nations": "un",
    "kharkov": "kharkiv",
    "charkiv": "kharkiv",
    "zaporizhia": "zaporizhzhia",
    "zaporozhye": "zaporizhzhia",
    "donbass": "donbas",
    "crimea": "crimea",
    "nato": "nato",
    "otan": "nato",
}
# Names nearly every story of this beat repeats: shared, they say little about the event.
COMMON = frozenset(
    (  # noqa: SIM905 - a word list reads better as text
        "ukraine russia us eu europe nato trump putin zelensky kyiv moscow china israel gaza "
        "iran uk un kremlin washington london paris"
    ).split()
) | {"donald trump", "vladimir putin", "volodymyr zelensky", "white house"}

# Capitalised words that start sentences or headlines without naming anything.
_STOP = frozenset(
    (  # noqa: SIM905
        "a al alla alle agli ai il lo la le gli i un una uno e ed o ma se per con da di dal dalla "
        "del della dei delle in nel nella nei su sul sulla tra fra che chi come dove quando "
        "perche non piu anche ecco oggi ieri domani ora dopo prima mentre poi cosi questo questa "
        "quello quella secondo nuovo nuova nuovi nuove the an and or but if of to in on at by "
        "for from with as is are was were be been it its this that these those he she they we "
        "you i his her their our new after before when where what why how who while live latest "
        "update updates breaking video photos opinion analysis exclusive watch read here there "
        "today yesterday tomorrow monday tuesday wednesday thursday friday saturday sunday lunedi "
        "martedi mercoledi giovedi venerdi sabato domenica key"
    ).split()
)
_KNOWN = frozenset(ALIASES) | frozenset(ALIASES.values()) | COMMON
_CONNECT = frozenset(("von", "van", "der", "de", "di", "da", "del", "della", "al", "bin", "ben"))
_TOKEN = re.compile(r"(?:[A-Z]\.){2,}|[^\W\d_]+|\d+(?:[.,]\d+)*")  # "l'Ucraina": l, Ucraina
_QUOTE = re.compile(r"[\"«“]([^\"«»“”]{12,200})[\"»”]")
_SENT_END = re.compile(r"[.!?:;(\n\[*_#>]\s*$")
_BREAK = re.compile(r"[,;:.!?()\[\]\"«»“”\-–—/]")


def _plain(text: str) -> str:
    """Accents removed, case kept (fold() lower-cases, and names need their capitals)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _alias(name: str) -> str:
    return ALIASES.get(name, name)


def _names(text: str) -> set[str]:
    """Capitalised word runs (`Mark Rutte`, `Abu Dhabi`, `Ursula von der Leyen`), folded."""
    out: set[str] = set()
    run: list[str] = []
    tokens = list(_TOKEN.finditer(text))
    # A title-cased headline capitalises every word: take nothing from it as a name run.
    caps = [t.group()[0].isupper() for t in tokens if t.group()[0].isalpha()]
    if len(caps) >= 4 and sum(caps) / len(caps) > 0.7:
        return out

    def flush() -> None:
        while run and run[-1].lower() in _CONNECT:
            run.pop()
        if run:
            full = _alias(fold(" ".join(run)).rstrip("."))
            if full not in _STOP and len(full) > 1:
                out.add(full)
                last = _alias(fold(run[-1]).rstrip("."))
                if len(run) > 1 and len(last) > 2 and last not in _STOP:
                    out.add(last)
        run.clear()

    starts = [
        i == 0 or bool(_SENT_END.search(text[tokens[i - 1].end() : m.start()]))
        for i, m in enumerate(tokens)
    ]
    inside = {m.group() for m, s in zip(tokens, starts, strict=True) if not s}
    for i, m in enumerate(tokens):
        tok = m.group()
        if tok[0].isupper():
            if starts[i] and not run:
                # a sentence's first word is a name only if it is known, used as a name
                # elsewhere, or starts a run of capitalised words
                nxt = tokens[i + 1].group() if i + 1 < len(tokens) else ""
                named = tok in inside or fold(tok).rstrip(".") in _KNOWN or nxt[:1].isupper()
                if fold(tok) in _STOP or not named:
                    continue
            run.append(tok)
        elif run and tok in _CONNECT and tok.islower():
            run.append(tok)
        else:
            flush()
        if i + 1 < len(tokens) and _BREAK.search(text[m.end() : tokens[i + 1].start()]):
            flush()
    flush()
    return out


def facts(title: str, body: str) -> frozenset[str]:
    """The checkable facts of an article: `e:` names, `n:` numbers, `q:` quoted phrases."""
    text = _plain(f"{title}.\n{body[:STORY_CHARS]}")
    found = {f"e:{n}" for n in _names(text)}
    for m in re.finditer(r"(?<![\w.,])\d+(?:[.,]\d{3})*(?:[.,]\d+)?(?![\w])", text):
        found.add("n:" + re.sub(r"[.,](?=\d{3}\b)", "", m.group()).replace(",", "."))
    for m in _QUOTE.finditer(text):
        q = " ".join(words(m.group(1)))
        if len(q.split()) >= 3:
            found.add(f"q:{q}")
    return frozenset(found)


def weight(fact: str, df: int = 1) -> float:
    """How much sharing this fact says two articles are about the same event.

    `df` is how many stories of the window already have it: a fact in many weighs less.
    """
    kind, value = fact[:2], fact[2:]
    if kind == "q:":
        w = 3.0
    elif kind == "n:":
        digits = value.replace(".", "")
        year = len(digits) == 4 and digits[:2] in ("19", "20")
        w = 0.5 if len(digits) == 1 or year else 1.5
    elif value in COMMON:
        w = 0.3
    else:
        w = 1.5 if " " in value else 1.0
    return w * min(1.0, 4.0 / max(df, 1))


def keys(fact_set: Iterable[str]) -> list[str]:
    """The facts a story is filed under for lookup: all but the ubiquitous ones."""
    return sorted(f for f in fact_set if weight(f) >= 1.0)


@dataclass(frozen=True, slots=True)
class StoryView:
    """What the store knows of one story of the window: its id and the facts seen so far."""

    id: int
    facts: frozenset[str]


def story_score(
    article_facts: frozenset[str], story: StoryView, df: Mapping[str, int]
) -> tuple[float, int]:
    """(weight of shared facts, number of shared facts that are not ubiquitous)."""
    shared = article_facts & story.facts
    score = sum(weight(f, df.get(f, 1)) for f in shared)
    return score, sum(1 for f in shared if weight(f) >= 1.0)


def choose_story(
    article_facts: frozenset[str], stories: Sequence[StoryView], df: Mapping[str, int]
) -> int | None:
    """The id of the story this article joins, or None to open a new one."""
    best: tuple[float, int] | None = None
    for story in stories:
        score, distinct = story_score(article_facts, story, df)
        if score >= JOIN_SCORE and distinct >= MIN_SHARED and (best is None or score > best[0]):
            best = (score, story.id)
    return best[1] if best else None


def new_facts(article_facts: frozenset[str], story_facts: frozenset[str]) -> frozenset[str]:
    """Facts this article brings that the story did not have.

    A longer name for someone already known ("NATO Secretary General Mark Rutte" when the story
    has "rutte") is not news: a name counts only if its last word is new too.
    """
    fresh = article_facts - story_facts
    return frozenset(
        f for f in fresh if not (f[:2] == "e:" and f"e:{f.rsplit(' ', 1)[-1]}" in story_facts)
    )


def merge(story_facts: frozenset[str], article_facts: frozenset[str]) -> frozenset[str]:
    """The story's facts after this article, capped (heaviest kept) so rows stay small."""
    merged = story_facts | article_facts
    if len(merged) <= FACTS_CAP:
        return merged
    return frozenset(sorted(merged, key=lambda f: (-weight(f), f))[:FACTS_CAP])


def is_development(fresh: Iterable[str]) -> bool:
    """Enough new names, numbers or quotes to be worth telling the reader again."""
    return sum(weight(f) for f in fresh) >= NEW_FACTS


# --- story alerts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryContext:
    """An article's story as alert planning needs it (built by the store inside the poll).

    `sent` lists the story's earlier alerts for this rule: (n, article id, time); n = 0 is the
    opening alert. `fresh` are the facts the article added; `outlets` the story's other sources
    and copies ("also reported by").
    """

    story_id: int
    sent: tuple[tuple[int, int, datetime], ...] = ()
    fresh: frozenset[str] = field(default_factory=frozenset)
    outlets: tuple[str, ...] = ()


def story_alert(
    ctx: StoryContext, article_id: int, *, cooldown: float, now: datetime
) -> int | None:
    """Which alert of the story this article triggers: 0 opens, n > 0 is the n-th follow-up,
    None is silence (nothing new, or within the cooldown). Replaying an article that already
    triggered one gives the same n, so its outbox key is the same.
    """
    for n, by, _at in ctx.sent:
        if by == article_id:
            return n
    if not ctx.sent:
        return 0
    if not is_development(ctx.fresh):
        return None
    last = max(at for _n, _by, at in ctx.sent)
    if now - last < timedelta(seconds=cooldown):
        return None
    return max(n for n, _by, _at in ctx.sent) + 1
