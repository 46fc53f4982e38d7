"""The stories part of the store, as readers see it: the list, one story's timeline, its
outlets. Stories are written inside a poll's transaction (polls.py, stories.py)."""

from __future__ import annotations

import json

from monitor.models import StoryRow, TimelineEntry
from monitor.store import stories
from monitor.store.connection import SqliteBase
from monitor.store.rows import fact
from monitor.store.times import from_ts


class StoriesMixin(SqliteBase):
    def story_outlets(self, story_id: int) -> tuple[str, ...]:
        """Every source that carried the story so far (its articles' and their copies')."""
        return stories.story_outlets(self.db.conn, story_id)

    def recent_stories(self, limit: int = 20) -> list[StoryRow]:
        conn = self.db.conn
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
            alerts = conn.execute(  # developments: one message each, whichever rules found it
                "SELECT COUNT(DISTINCT article_id) FROM story_alerts WHERE story_id = ?", (sid,)
            ).fetchone()[0]
            outlets = stories.story_outlets(conn, sid)
            out.append(
                StoryRow(sid, from_ts(first), from_ts(last), headline, size, outlets, languages,
                         int(alerts))
            )  # fmt: skip
        return out

    def story_timeline(self, story_id: int) -> list[TimelineEntry]:
        """The story's articles and their copies, oldest first, with the alerts they sent."""
        conn = self.db.conn
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
            facts = tuple(fact(term) for term in sorted(json.loads(fresh or "{}")))
            entries.append(
                TimelineEntry(aid, from_ts(at), source, title, url, facts, None,
                              tuple(alerted.get(aid, ())), language)
            )  # fmt: skip
            for source_c, title_c, url_c, seen in conn.execute(
                "SELECT source, title, url, seen_at FROM copies WHERE article_id = ?", (aid,)
            ):
                entries.append(TimelineEntry(aid, from_ts(seen), source_c, title_c, url_c, (), aid))
        return sorted(entries, key=lambda e: (e.at or stories.EPOCH, e.copy_of is not None))
