"""SQL for stories; called inside the store's transactions (polls.py) and by its story reads.

The decisions (which story, is it news) are monitor/stories' pure functions; this module reads
what they need from the window and writes the outcome. Window tables stay small and indexed:

- `term_df` / `window_docs`: how many articles of each `BUCKET` (6 h) contained a term, and how
  many articles there were, so document frequency over the window is a sum of at most
  window / BUCKET rows per term, however long the history;
- `story_index`: (term, story) for the heaviest terms of each story's articles, with the time
  it was last filed, for candidate lookup;
- `stories.centroid`: the sum of the story's article vectors (capped), compared with each new
  article; `story_articles.vector`: one article's idf-weighted terms, kept while it is in the
  window (to tell whether a later article says something new).

All of it is pruned as the window moves; `stories`, `story_articles` and `story_alerts` stay as
history until `history_retention`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from monitor.models import (
    Alert,
    Article,
    Candidate,
    Fact,
    Match,
    SentAlert,
    StoryContext,
    StoryView,
)
from monitor.store.rows import fact, most_shared
from monitor.store.times import from_ts, ts
from monitor.stories import developments, grouping
from monitor.stories.terms import is_fact

BUCKET = timedelta(hours=6)  # granularity of the window's document frequencies
CANDIDATES = 15  # stories compared with each article, the most term-sharing first
PER_TERM = 40  # stories one term can bring to the comparison, the most recently filed first
FACTS_CAP = 200  # facts a story remembers (the rarest kept)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every stored time


def _bucket(at: datetime) -> int:
    return int((at - EPOCH) / BUCKET)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


# --- the window's document frequencies ---------------------------------------------------------


def count_terms(
    conn: sqlite3.Connection, bags: Sequence[Mapping[str, float]], now: datetime
) -> None:
    """Add a poll's new articles to the window's document frequencies (one statement each)."""
    if not bags:
        return
    bucket = _bucket(now)
    counts = Counter(term for bag in bags for term in bag)
    conn.executemany(
        "INSERT INTO term_df (term, bucket, n) VALUES (?, ?, ?) "
        "ON CONFLICT (term, bucket) DO UPDATE SET n = term_df.n + excluded.n",
        [(term, bucket, n) for term, n in counts.items()],
    )
    conn.execute(
        "INSERT INTO window_docs (bucket, n) VALUES (?, ?) "
        "ON CONFLICT (bucket) DO UPDATE SET n = window_docs.n + excluded.n",
        (bucket, len(bags)),
    )


def window_df(
    conn: sqlite3.Connection, terms: Iterable[str], since: datetime
) -> tuple[dict[str, int], int]:
    """(document frequency of each term, number of articles) over the window since `since`."""
    terms = list(terms)
    first = _bucket(since)
    df: dict[str, int] = {}
    for start in range(0, len(terms), 500):
        chunk = terms[start : start + 500]
        df.update(
            conn.execute(
                f"SELECT term, SUM(n) FROM term_df WHERE term IN ({_marks(chunk)}) "
                "AND bucket >= ? GROUP BY term",
                (*chunk, first),
            ).fetchall()
        )
    row = conn.execute("SELECT SUM(n) FROM window_docs WHERE bucket >= ?", (first,)).fetchone()
    return df, int(row[0] or 0)


def prune_window(conn: sqlite3.Connection, since: datetime) -> None:
    """Forget window data older than `since` (indexed deletes: cheap every poll)."""
    first = _bucket(since)
    conn.execute("DELETE FROM term_df WHERE bucket < ?", (first,))
    conn.execute("DELETE FROM window_docs WHERE bucket < ?", (first,))
    conn.execute("DELETE FROM story_index WHERE at < ?", (ts(since),))
    # members older than the window are never compared again: their vectors can go
    conn.execute(
        "UPDATE story_articles SET vector = NULL WHERE at < ? AND vector IS NOT NULL", (ts(since),)
    )


# --- placing an article -------------------------------------------------------------------------


def _candidates(conn: sqlite3.Connection, query: Sequence[str], since: datetime) -> list[StoryView]:
    """The window's stories filed under `query`'s terms, most terms shared first. Each term
    brings at most its PER_TERM most recently filed stories, so the lookup reads a bounded
    number of index rows however many stories the window holds."""
    if not query:
        return []
    shared, params = most_shared(
        "story_index", "term", "story_id", query, since, PER_TERM, CANDIDATES
    )
    rows = conn.execute(
        f"SELECT s.id, s.centroid, s.languages FROM stories s JOIN ({shared}) c "
        "ON c.story_id = s.id ORDER BY c.shared DESC, c.latest DESC",
        params,
    ).fetchall()
    return [
        StoryView(int(sid), json.loads(centroid or "{}"), _languages(languages))
        for sid, centroid, languages in rows
    ]


def _languages(text: str | None) -> frozenset[str]:
    return frozenset(text.split(",")) if text else frozenset()


def assign_story(
    conn: sqlite3.Connection, article_id: int, candidate: Candidate, now: datetime, since: datetime
) -> int:
    """Put the article in the story of the window it is most like (or a new one); its id."""
    row = conn.execute(
        "SELECT story_id FROM story_articles WHERE article_id = ?", (article_id,)
    ).fetchone()
    if row is not None:  # already placed (a replay, or an edit)
        return int(row[0])
    article = candidate.article
    language = candidate.language or article.language
    df, n = window_df(conn, candidate.terms, since)
    vector = _rounded(grouping.weighted(candidate.terms, df, n))
    views = _candidates(conn, grouping.lookup_terms(vector, df, n), since)
    placed = grouping.place(vector, language, views)
    if placed.story is None:
        story_id = _open_story(conn, article, now)
        story = StoryView(story_id, {})
    else:
        story_id = placed.story
        story = next(v for v in views if v.id == story_id)
        if placed.bridged:
            story = merge_stories(conn, story, [v for v in views if v.id in placed.bridged])
    known = _facts(conn, story_id)
    new = {t for t in candidate.terms if is_fact(t)} - known  # what its title and lead bring
    fresh = {} if placed.story is None else _weigh_facts(new, df, n)
    told = known | new | set(candidate.facts)
    _update_story(conn, story, vector, language, told if told != known else None, now, df, n)
    conn.execute(
        "INSERT INTO story_articles (article_id, story_id, at, fresh, vector, language, score) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (article_id, story_id, ts(now), _dump(fresh), _dump(vector), language,
         placed.score if placed.story is not None else 0.0),
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO story_index (term, story_id, at) VALUES (?, ?, ?) "
        "ON CONFLICT (term, story_id) DO UPDATE SET at = excluded.at",
        [(t, story_id, ts(now)) for t in grouping.heaviest(vector, grouping.INDEX_TERMS)],
    )
    return story_id


def _open_story(conn: sqlite3.Connection, article: Article, now: datetime) -> int:
    row = conn.execute(
        "INSERT INTO stories (first_seen, last_seen, headline, size, facts, centroid) "
        "VALUES (?, ?, ?, 0, '[]', '{}') RETURNING id",
        (ts(now), ts(now), article.title),
    ).fetchone()
    return int(row[0])


def _update_story(
    conn: sqlite3.Connection,
    story: StoryView,
    vector: Mapping[str, float],
    language: str | None,
    facts: set[str] | None,
    now: datetime,
    df: Mapping[str, int],
    n: int,
) -> None:
    """One more article in the story: its centroid, languages, size, last time, and its facts
    when the article told new ones (`facts` None: most reports tell nothing new)."""
    languages = story.languages | ({language} if language else set())
    conn.execute(
        "UPDATE stories SET last_seen = ?, size = size + 1, centroid = ?, languages = ? "
        "WHERE id = ?",
        (ts(now), _dump(_rounded(grouping.add(story.centroid, vector))),
         ",".join(sorted(languages)), story.id),
    )  # fmt: skip
    if facts is not None:
        conn.execute(
            "UPDATE stories SET facts = ? WHERE id = ?", (_dump(_cap(facts, df, n)), story.id)
        )


def _rounded(vector: Mapping[str, float]) -> dict[str, float]:
    return {t: round(w, 3) for t, w in vector.items()}


def _dump(value: object) -> str:
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _facts(conn: sqlite3.Connection, story_id: int) -> set[str]:
    row = conn.execute("SELECT facts FROM stories WHERE id = ?", (story_id,)).fetchone()
    return set(json.loads(row[0] or "[]")) if row else set()


def _weigh_facts(facts: Iterable[str], df: Mapping[str, int], n: int) -> dict[str, float]:
    # a young window cannot tell common names from rare ones yet: presume them rare
    n = max(n, developments.MIN_WINDOW)
    weighed = {f: developments.fact_weight(grouping.idf(df.get(f, 0), n)) for f in facts}
    return {f: round(w, 3) for f, w in weighed.items() if w > 0}


def _cap(facts: set[str], df: Mapping[str, int], n: int) -> set[str]:
    if len(facts) <= FACTS_CAP:
        return facts
    return set(sorted(facts, key=lambda f: (df.get(f, 0), f))[:FACTS_CAP])


def merge_stories(
    conn: sqlite3.Connection, into: StoryView, others: Sequence[StoryView]
) -> StoryView:
    """Fold `others` into story `into`: one event whose first reports shared too little.

    Their articles, index entries and alerts move over (alerts renumbered after `into`'s, so a
    rule's next follow-up counts on from all of them); the emptied stories are deleted.
    """
    facts, centroid, languages = _facts(conn, into.id), dict(into.centroid), set(into.languages)
    for other in others:
        facts |= _facts(conn, other.id)
        centroid = grouping.add(centroid, other.centroid)
        languages |= other.languages
        conn.execute(
            "UPDATE story_articles SET story_id = ? WHERE story_id = ?", (into.id, other.id)
        )
        conn.execute(
            "INSERT INTO story_index (term, story_id, at) SELECT term, ?, at FROM story_index "
            "WHERE story_id = ? ON CONFLICT (term, story_id) DO UPDATE SET "
            "at = MAX(story_index.at, excluded.at)",
            (into.id, other.id),
        )
        conn.execute("DELETE FROM story_index WHERE story_id = ?", (other.id,))
        _move_alerts(conn, into.id, other.id)
        conn.execute(
            "UPDATE stories SET size = size + (SELECT size FROM stories WHERE id = ?), "
            "first_seen = MIN(first_seen, (SELECT first_seen FROM stories WHERE id = ?)), "
            "last_seen = MAX(last_seen, (SELECT last_seen FROM stories WHERE id = ?)) "
            "WHERE id = ?",
            (other.id, other.id, other.id, into.id),
        )
        conn.execute("DELETE FROM stories WHERE id = ?", (other.id,))
    conn.execute("UPDATE stories SET facts = ? WHERE id = ?", (_dump(facts), into.id))
    return StoryView(into.id, centroid, frozenset(languages))


def _move_alerts(conn: sqlite3.Connection, into: int, other: int) -> None:
    moved = conn.execute(
        "SELECT rule, article_id, at, reason FROM story_alerts WHERE story_id = ? ORDER BY at",
        (other,),
    ).fetchall()
    conn.execute("DELETE FROM story_alerts WHERE story_id = ?", (other,))
    for rule, article_id, at, reason in moved:
        conn.execute(
            "INSERT INTO story_alerts (story_id, rule, n, article_id, at, reason) VALUES "
            "(?, ?, (SELECT COALESCE(MAX(n), -1) + 1 FROM story_alerts WHERE story_id = ? "
            "AND rule = ?), ?, ?, ?)",
            (into, rule, into, rule, article_id, at, reason),
        )


# --- alert planning ------------------------------------------------------------------------------


def place_story(
    conn: sqlite3.Connection, article_id: int, candidate: Candidate, now: datetime, since: datetime
) -> None:
    """Put an article some rule matched in a story (also an edit that matches only now)."""
    if candidate.matches:  # even with no terms: then it is a story of its own
        assign_story(conn, article_id, candidate, now, since)


def plan_match(
    conn: sqlite3.Connection,
    plan: Callable[..., Sequence[Alert]],
    article_id: int,
    article: Article,
    match: Match,
    now: datetime,
) -> Sequence[Alert]:
    """Ask `plan` for a new match's alerts with its story, and note a story alert it sends."""
    story = story_context(conn, article_id, match.rule)
    planned = plan(article_id, article, match, story)
    if story is not None and any(a.story_id for a in planned):
        record_story_alert(conn, story, match.rule, article_id, now)
    return planned


def story_context(conn: sqlite3.Connection, article_id: int, rule: str) -> StoryContext | None:
    """The story of a stored article as alert planning needs it, or None if it has none."""
    row = conn.execute(
        "SELECT story_id, score, vector FROM story_articles WHERE article_id = ?", (article_id,)
    ).fetchone()
    if row is None:
        return None
    story_id, score, vector = int(row[0]), float(row[1] or 0.0), json.loads(row[2] or "{}")
    sent = tuple(
        SentAlert(int(n), int(by), from_ts(at) or EPOCH)
        for n, by, at in conn.execute(
            "SELECT n, article_id, at FROM story_alerts WHERE story_id = ? AND rule = ? ORDER BY n",
            (story_id, rule),
        )
    )
    return StoryContext(
        story_id=story_id,
        sent=sent,
        fresh=_untold(conn, story_id, article_id, sent),
        novelty=_novelty(conn, vector, sent) if sent else 0.0,
        score=score,
        outlets=_outlets(conn, story_id, article_id),
    )


def _outlets(conn: sqlite3.Connection, story_id: int, article_id: int) -> tuple[str, ...]:
    own = conn.execute("SELECT source FROM articles WHERE id = ?", (article_id,)).fetchone()
    return tuple(o for o in story_outlets(conn, story_id) if not own or o != own[0])


def story_outlets(conn: sqlite3.Connection, story_id: int) -> tuple[str, ...]:
    """Every source that carried the story: its articles' and their copies'."""
    return tuple(
        r[0]
        for r in conn.execute(
            "SELECT a.source FROM story_articles sa JOIN articles a ON a.id = sa.article_id "
            "WHERE sa.story_id = ? UNION SELECT c.source FROM copies c JOIN story_articles sa "
            "ON sa.article_id = c.article_id WHERE sa.story_id = ? ORDER BY 1",
            (story_id, story_id),
        )
    )


def _untold(
    conn: sqlite3.Connection, story_id: int, article_id: int, sent: tuple[SentAlert, ...]
) -> dict[Fact, float]:
    """New facts since the rule's last alert of the story: a development held back by the
    cooldown is still news for the next article after it."""
    after = ts(max((s.at for s in sent), default=EPOCH))
    untold: dict[str, float] = {}
    for (fresh,) in conn.execute(
        "SELECT fresh FROM story_articles WHERE story_id = ? AND (at > ? OR article_id = ?)",
        (story_id, after, article_id),
    ):
        for term, weight in json.loads(fresh or "{}").items():
            untold[term] = max(weight, untold.get(term, 0.0))
    return {fact(term): weight for term, weight in untold.items()}


def _novelty(
    conn: sqlite3.Connection, vector: Mapping[str, float], sent: Sequence[SentAlert]
) -> float:
    """1 - the best cosine between this article and the ones that already alerted."""
    ids = [s.article_id for s in sent]
    told = [
        json.loads(v)
        for (v,) in conn.execute(
            f"SELECT vector FROM story_articles WHERE article_id IN ({_marks(ids)}) "
            "AND vector IS NOT NULL",
            ids,
        )
    ]
    if not told or not vector:
        return 0.0
    return 1.0 - max(grouping.cosine(vector, v) for v in told)


def record_story_alert(
    conn: sqlite3.Connection,
    ctx: StoryContext,
    rule: str,
    article_id: int,
    now: datetime,
) -> None:
    """Note that this article triggered an alert of the story, and why (replays change nothing)."""
    if any(s.article_id == article_id for s in ctx.sent):
        return
    n = max((s.n for s in ctx.sent), default=-1) + 1
    reason = developments.OPENING if n == 0 else developments.development(ctx) or ""
    conn.execute(
        "INSERT INTO story_alerts (story_id, rule, n, article_id, at, reason) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (ctx.story_id, rule, n, article_id, ts(now), reason),
    )


def delete_articles(conn: sqlite3.Connection, doomed_sql: str, params: tuple) -> None:
    """Drop story/copy rows of articles that retention is about to delete."""
    for table in ("copies", "signatures", "sig_keys", "story_articles"):
        conn.execute(f"DELETE FROM {table} WHERE article_id IN ({doomed_sql})", params)
