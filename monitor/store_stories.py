"""SQL for copies, similarity sketches and stories; called by store.py inside its transactions.

The decisions (is it a copy, which story, is it new) are dedupe.py's; this module only reads the
window's candidates and writes the outcome. Window tables (`signatures`, `sig_keys`, `story_keys`)
are pruned as the window moves, so lookups stay indexed and bounded however long the history.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor import dedupe
from monitor.models import Alert, Article, Match
from monitor.store_rows import from_ts, ts

if TYPE_CHECKING:
    from monitor.store import Candidate, Known

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _pack(sig: Sequence[int]) -> bytes:
    return array("q", sig).tobytes()


def _unpack(blob: bytes) -> tuple[int, ...]:
    out = array("q")
    out.frombytes(blob)
    return tuple(out)


# --- copies -----------------------------------------------------------------------------------


def find_copy(
    conn: sqlite3.Connection, article: Article, sig: Sequence[int], since: datetime
) -> tuple[int, str, float] | None:
    """(original id, tier, similarity) when `article` is a copy of one first seen since `since`."""
    if article.fingerprint:
        row = conn.execute(
            "SELECT id FROM articles WHERE fingerprint = ? AND first_seen >= ? LIMIT 1",
            (article.fingerprint, ts(since)),
        ).fetchone()
        if row is not None:
            return int(row[0]), "fingerprint", 1.0
    keys = dedupe.index_keys(sig)
    if not keys:
        return None
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT s.article_id, s.sig FROM signatures s WHERE s.article_id IN "
        f"(SELECT article_id FROM sig_keys WHERE key IN ({marks}) AND at >= ? "
        "ORDER BY at DESC LIMIT 500)",
        (*keys, ts(since)),
    ).fetchall()
    best = dedupe.best_copy(sig, ((int(r[0]), _unpack(r[1])) for r in rows))
    return (best[0], "similar", best[1]) if best else None


def record_copy(
    conn: sqlite3.Connection,
    original_id: int,
    article: Article,
    tier: str,
    similarity: float,
    now: datetime,
) -> bool:
    """Remember that `article` (from its own source and URL) is a copy; True if it is new."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO copies (article_id, source, url, guid, title, seen_at, tier, "
        "similarity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            original_id,
            article.source,
            article.url,
            article.guid,
            article.title,
            ts(now),
            tier,
            similarity,
        ),
    )
    return cur.rowcount == 1


def check_copy(
    conn: sqlite3.Connection,
    candidate: Candidate,
    known: Known | None,
    now: datetime,
    since: datetime,
) -> int | None:
    """The original's id if the candidate is a copy (recorded now: > 0; earlier: 0), else None.

    `known` is the stored article with the candidate's URL or GUID, if any: from another
    source it is the original of a copy; from the same source it is the same article.
    """
    article = candidate.article
    if known is not None:
        if known.source == article.source:
            return None
        return known.id if record_copy(conn, known.id, article, "url", 1.0, now) else 0
    if copy_of(conn, article) is not None:
        return 0
    # the similarity lookup only pays for articles some rule matched: a copy nobody is alerted
    # about costs nothing if it is stored as an article of its own
    found = find_copy(conn, article, candidate.sketch if candidate.matches else (), since)
    if found is None:
        return None
    record_copy(conn, found[0], article, found[1], found[2], now)
    return found[0]


def place(
    conn: sqlite3.Connection, article_id: int, candidate: Candidate, now: datetime, since: datetime
) -> None:
    """File a new article's sketch, and put it in a story if a rule matched it."""
    if candidate.sketch:
        file_signature(conn, article_id, candidate.sketch, now)
    place_story(conn, article_id, candidate, now, since)


def place_story(
    conn: sqlite3.Connection, article_id: int, candidate: Candidate, now: datetime, since: datetime
) -> None:
    """Put an article some rule matched in a story (also an edit that matches only now)."""
    if candidate.matches:
        assign_story(conn, article_id, candidate.article, candidate.facts, now, since)


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


def copy_of(conn: sqlite3.Connection, article: Article) -> int | None:
    """The original of an already recorded copy (same source and URL), if any."""
    row = conn.execute(
        "SELECT article_id FROM copies WHERE source = ? AND url = ?", (article.source, article.url)
    ).fetchone()
    return int(row[0]) if row else None


def file_signature(
    conn: sqlite3.Connection, article_id: int, sig: Sequence[int], now: datetime
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO signatures (article_id, at, sig) VALUES (?, ?, ?)",
        (article_id, ts(now), _pack(sig)),
    )
    conn.executemany(
        "INSERT INTO sig_keys (key, article_id, at) VALUES (?, ?, ?)",
        [(k, article_id, ts(now)) for k in dedupe.index_keys(sig)],
    )


def prune_window(conn: sqlite3.Connection, since: datetime) -> None:
    """Forget window data older than `since` (indexed deletes: cheap every poll)."""
    for table in ("signatures", "sig_keys", "story_keys"):
        conn.execute(f"DELETE FROM {table} WHERE at < ?", (ts(since),))


# --- stories ----------------------------------------------------------------------------------


def assign_story(
    conn: sqlite3.Connection,
    article_id: int,
    article: Article,
    facts: frozenset[str],
    now: datetime,
    since: datetime,
) -> tuple[int, frozenset[str]]:
    """Put the article in a story of the window (or a new one); returns (story id, new facts)."""
    row = conn.execute(
        "SELECT story_id, fresh FROM story_articles WHERE article_id = ?", (article_id,)
    ).fetchone()
    if row is not None:  # already placed (a replay)
        return int(row[0]), frozenset(json.loads(row[1] or "[]"))
    keys = dedupe.keys(facts)
    views: list[dedupe.StoryView] = []
    df: dict[str, int] = {}
    if keys:
        marks = ",".join("?" * len(keys))
        for key, count in conn.execute(
            f"SELECT key, COUNT(DISTINCT story_id) FROM story_keys WHERE key IN ({marks}) "
            "AND at >= ? GROUP BY key",
            (*keys, ts(since)),
        ):
            df[key] = int(count)
        for sid, story_facts in conn.execute(
            f"SELECT id, facts FROM stories WHERE id IN (SELECT story_id FROM story_keys "
            f"WHERE key IN ({marks}) AND at >= ? GROUP BY story_id "
            "ORDER BY COUNT(*) DESC LIMIT 50)",
            (*keys, ts(since)),
        ):
            views.append(dedupe.StoryView(int(sid), frozenset(json.loads(story_facts or "[]"))))
    chosen = dedupe.choose_story(facts, views, df)
    if chosen is None:
        cur = conn.execute(
            "INSERT INTO stories (first_seen, last_seen, headline, size, facts) "
            "VALUES (?, ?, ?, 0, '[]')",
            (ts(now), ts(now), article.title),
        )
        story_id, known = int(cur.lastrowid), frozenset()
        fresh: frozenset[str] = frozenset()  # the opening article is news by definition
    else:
        story_id = chosen
        known = next(v.facts for v in views if v.id == chosen)
        fresh = dedupe.new_facts(facts, known)
    merged = dedupe.merge(known, facts)
    conn.execute(
        "UPDATE stories SET last_seen = ?, size = size + 1, facts = ? WHERE id = ?",
        (ts(now), json.dumps(sorted(merged), ensure_ascii=False), story_id),
    )
    conn.execute(
        "INSERT INTO story_articles (article_id, story_id, at, fresh) VALUES (?, ?, ?, ?)",
        (article_id, story_id, ts(now), json.dumps(sorted(fresh), ensure_ascii=False)),
    )
    conn.executemany(
        "INSERT INTO story_keys (key, story_id, at) VALUES (?, ?, ?)",
        [(k, story_id, ts(now)) for k in keys],
    )
    return story_id, fresh


def story_context(
    conn: sqlite3.Connection, article_id: int, rule: str
) -> dedupe.StoryContext | None:
    """The story of a stored article as alert planning needs it, or None if it has none."""
    row = conn.execute(
        "SELECT story_id, fresh FROM story_articles WHERE article_id = ?", (article_id,)
    ).fetchone()
    if row is None:
        return None
    story_id = int(row[0])
    sent = tuple(
        (int(n), int(by), from_ts(at) or _EPOCH)
        for n, by, at in conn.execute(
            "SELECT n, article_id, at FROM story_alerts WHERE story_id = ? AND rule = ? ORDER BY n",
            (story_id, rule),
        )
    )
    own = conn.execute("SELECT source FROM articles WHERE id = ?", (article_id,)).fetchone()
    outlets = [
        r[0]
        for r in conn.execute(
            "SELECT a.source FROM story_articles sa JOIN articles a ON a.id = sa.article_id "
            "WHERE sa.story_id = ? UNION SELECT c.source FROM copies c JOIN story_articles sa "
            "ON sa.article_id = c.article_id WHERE sa.story_id = ?",
            (story_id, story_id),
        )
        if not own or r[0] != own[0]
    ]
    return dedupe.StoryContext(
        story_id=story_id,
        sent=sent,
        fresh=_untold(conn, story_id, sent, frozenset(json.loads(row[1] or "[]"))),
        outlets=tuple(sorted(outlets)),
    )


def _untold(
    conn: sqlite3.Connection,
    story_id: int,
    sent: tuple[tuple[int, int, datetime], ...],
    own: frozenset[str],
) -> frozenset[str]:
    """New facts since the rule's last alert of the story: a development held back by the
    cooldown is still news for the next article after it."""
    if not sent:
        return own
    last = max(at for _n, _by, at in sent)
    untold = set(own)
    for (fresh,) in conn.execute(
        "SELECT fresh FROM story_articles WHERE story_id = ? AND at > ?", (story_id, ts(last))
    ):
        untold.update(json.loads(fresh or "[]"))
    return frozenset(untold)


def record_story_alert(
    conn: sqlite3.Connection, ctx: dedupe.StoryContext, rule: str, article_id: int, now: datetime
) -> None:
    """Note that this article triggered an alert of the story (replays change nothing)."""
    if any(by == article_id for _n, by, _at in ctx.sent):
        return
    n = max((n for n, _by, _at in ctx.sent), default=-1) + 1
    conn.execute(
        "INSERT OR IGNORE INTO story_alerts (story_id, rule, n, article_id, at) "
        "VALUES (?, ?, ?, ?, ?)",
        (ctx.story_id, rule, n, article_id, ts(now)),
    )


def delete_articles(conn: sqlite3.Connection, doomed_sql: str, params: tuple) -> None:
    """Drop story/copy rows of articles that retention is about to delete."""
    for table in ("copies", "signatures", "sig_keys", "story_articles"):
        conn.execute(f"DELETE FROM {table} WHERE article_id IN ({doomed_sql})", params)


# --- read side (CLI) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoryRow:
    id: int
    first_seen: datetime | None
    last_seen: datetime | None
    headline: str
    size: int
    outlets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One article of a story, or a copy of one (`copy_of` = the original's id)."""

    article_id: int
    at: datetime | None
    source: str
    title: str
    url: str
    fresh: tuple[str, ...] = ()
    copy_of: int | None = None


def recent_stories(conn: sqlite3.Connection, limit: int = 20) -> list[StoryRow]:
    out = []
    for sid, first, last, headline, size in conn.execute(
        "SELECT id, first_seen, last_seen, headline, size FROM stories "
        "ORDER BY last_seen DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall():
        outlets = tuple(
            r[0]
            for r in conn.execute(
                "SELECT a.source FROM story_articles sa JOIN articles a ON a.id = sa.article_id "
                "WHERE sa.story_id = ? UNION SELECT c.source FROM copies c JOIN story_articles sa "
                "ON sa.article_id = c.article_id WHERE sa.story_id = ? ORDER BY 1",
                (sid, sid),
            )
        )
        out.append(StoryRow(sid, from_ts(first), from_ts(last), headline, size, outlets))
    return out


def timeline(conn: sqlite3.Connection, story_id: int) -> list[TimelineEntry]:
    """The story's articles and their copies, oldest first."""
    entries = []
    for aid, at, source, title, url, fresh in conn.execute(
        "SELECT a.id, sa.at, a.source, a.title, a.url, sa.fresh FROM story_articles sa "
        "JOIN articles a ON a.id = sa.article_id WHERE sa.story_id = ?",
        (story_id,),
    ).fetchall():
        entries.append(
            TimelineEntry(aid, from_ts(at), source, title, url, tuple(json.loads(fresh or "[]")))
        )
        for source_c, title_c, url_c, seen in conn.execute(
            "SELECT source, title, url, seen_at FROM copies WHERE article_id = ?", (aid,)
        ):
            entries.append(TimelineEntry(aid, from_ts(seen), source_c, title_c, url_c, (), aid))
    return sorted(entries, key=lambda e: (e.at or _EPOCH, e.copy_of is not None))
