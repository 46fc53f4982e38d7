"""Read-only views of stories for the CLI: the list, and one story's timeline."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from monitor.store.rows import from_ts
from monitor.store.stories import _EPOCH, story_outlets


@dataclass(frozen=True, slots=True)
class StoryRow:
    """One story as `news-monitor stories` lists it."""

    id: int
    first_seen: datetime | None
    last_seen: datetime | None
    headline: str
    size: int
    outlets: tuple[str, ...]
    languages: tuple[str, ...] = ()
    alerts: int = 0


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One article of a story, or a copy of one (`copy_of` = the original's id). `alerted`
    names the rules it alerted for, with why (`rule: new: Hamilton, 100`)."""

    article_id: int
    at: datetime | None
    source: str
    title: str
    url: str
    fresh: tuple[str, ...] = ()
    copy_of: int | None = None
    alerted: tuple[str, ...] = ()
    language: str | None = None


def recent_stories(conn: sqlite3.Connection, limit: int = 20) -> list[StoryRow]:
    out = []
    for sid, first, last, headline, size in conn.execute(
        "SELECT id, first_seen, last_seen, headline, size FROM stories "
        "ORDER BY last_seen DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall():
        languages = tuple(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT language FROM story_articles WHERE story_id = ? "
                "AND language IS NOT NULL ORDER BY 1",
                (sid,),
            )
        )
        alerts = conn.execute(
            "SELECT COUNT(*) FROM story_alerts WHERE story_id = ?", (sid,)
        ).fetchone()[0]
        out.append(
            StoryRow(
                sid,
                from_ts(first),
                from_ts(last),
                headline,
                size,
                story_outlets(conn, sid),
                languages,
                int(alerts),
            )  # fmt: skip
        )
    return out


def timeline(conn: sqlite3.Connection, story_id: int) -> list[TimelineEntry]:
    """The story's articles and their copies, oldest first, with the alerts they sent."""
    alerted: dict[int, list[str]] = {}
    for rule, article_id, reason in conn.execute(
        "SELECT rule, article_id, reason FROM story_alerts WHERE story_id = ? ORDER BY n",
        (story_id,),
    ):
        alerted.setdefault(int(article_id), []).append(f"{rule}: {reason}" if reason else rule)
    entries = []
    for aid, at, source, title, url, fresh, language in conn.execute(
        "SELECT a.id, sa.at, a.source, a.title, a.url, sa.fresh, sa.language "
        "FROM story_articles sa JOIN articles a ON a.id = sa.article_id WHERE sa.story_id = ?",
        (story_id,),
    ).fetchall():
        facts = tuple(sorted(json.loads(fresh or "{}")))
        entries.append(
            TimelineEntry(
                aid,
                from_ts(at),
                source,
                title,
                url,
                facts,
                None,
                tuple(alerted.get(aid, ())),
                language,
            )  # fmt: skip
        )
        for source_c, title_c, url_c, seen in conn.execute(
            "SELECT source, title, url, seen_at FROM copies WHERE article_id = ?", (aid,)
        ):
            entries.append(TimelineEntry(aid, from_ts(seen), source_c, title_c, url_c, (), aid))
    return sorted(entries, key=lambda e: (e.at or _EPOCH, e.copy_of is not None))
