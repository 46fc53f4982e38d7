"""The mutes part of the store: rules and sources muted until a time, and what they held.

Why in the database: `news-monitor mute` runs in its own process while the daemon runs; every
poll reads the active mutes (`active_mutes`), so a mute holds from the daemon's next poll on,
with no restart or reload, and ends by itself at its `until`. A muted match is still recorded,
with `held = 'muted'` (alerts/held.py), which is how `unmute` shows what the mute held.
"""

from __future__ import annotations

import json
from datetime import datetime

from monitor.models import Article, Match, Mute, MuteKind
from monitor.store.connection import SqliteBase
from monitor.store.rows import ARTICLE_COLUMNS_A, article_from_row
from monitor.store.times import from_ts, ts


class MutesMixin(SqliteBase):
    def active_mutes(self, now: datetime) -> list[Mute]:
        """The mutes still running at `now`, the soonest to end first (read at every poll)."""
        found = self.db.execute(
            "SELECT kind, name, since, until FROM mutes WHERE until > ? ORDER BY until, kind, name",
            (ts(now),),
        ).fetchall()
        return [_mute(row) for row in found]

    def mute(self, kind: MuteKind, name: str, until: datetime, now: datetime) -> Mute:
        """Mute a rule or source until `until`; muting one already muted moves its end and
        keeps its start (what it held so far stays its own). Ended mutes are forgotten here."""
        with self.immediate() as conn:
            conn.execute("DELETE FROM mutes WHERE until <= ?", (ts(now),))
            conn.execute(
                "INSERT INTO mutes (kind, name, since, until) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET until = excluded.until",
                (kind, name, ts(now), ts(until)),
            )
            row = conn.execute(
                "SELECT kind, name, since, until FROM mutes WHERE kind = ? AND name = ?",
                (kind, name),
            ).fetchone()
        return _mute(row)

    def unmute(self, kind: MuteKind, name: str, now: datetime) -> Mute | None:
        """End a running mute now; the mute as it was, or None if it was not muted."""
        with self.immediate() as conn:
            row = conn.execute(
                "SELECT kind, name, since, until FROM mutes WHERE kind = ? AND name = ? "
                "AND until > ?",
                (kind, name, ts(now)),
            ).fetchone()
            conn.execute(
                "DELETE FROM mutes WHERE (kind = ? AND name = ?) OR until <= ?",
                (kind, name, ts(now)),
            )
        return _mute(row) if row else None

    def held_by(
        self, mute: Mute, until: datetime, *, limit: int = 10
    ) -> tuple[int, list[tuple[int, Article, Match]]]:
        """How many matches `mute` held between its start and `until`, and the newest `limit`
        of them (article id, article, match)."""
        column = "m.rule" if mute.kind == "rule" else "a.source"
        where = (
            f"FROM matches m JOIN articles a ON a.id = m.article_id WHERE m.held = 'muted' "
            f"AND m.matched_at >= ? AND m.matched_at <= ? AND {column} = ?"
        )
        params = (ts(mute.since), ts(until), mute.name)
        count = int(self.db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0])
        found = self.db.execute(
            f"SELECT m.article_id, m.rule, m.terms, {ARTICLE_COLUMNS_A} {where} "
            "ORDER BY m.matched_at DESC, m.article_id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        held = [
            (row[0], article_from_row(row[3:]), Match(row[1], tuple(json.loads(row[2]))))
            for row in found
        ]
        return count, held


def _mute(row: tuple) -> Mute:
    kind, name, since, until = row
    return Mute(kind, name, from_ts(since), from_ts(until))  # type: ignore[arg-type]
