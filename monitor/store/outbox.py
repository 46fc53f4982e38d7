"""The outbox part of the store: alerts written with the poll that found them, sent later.

Why an outbox: the poll's transaction writes the article and its alerts together, so a crash
can delay an alert but never lose it; the unique key makes replaying a poll harmless. A key is
one article on one channel: a second rule matching the article joins the row (rows.merge_alert),
so a channel gets one message per article. Sending claims rows with a lease in a
`BEGIN IMMEDIATE` transaction, so two workers never take the same row, and a worker killed
mid-send leaves a lease that simply expires.

Statuses: `pending` (waiting, or held), `sent`, `dead` (gave up after `max_attempts`) and
`dropped` (a user's `alerts drop`: kept, so the history says what was never sent and why).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from monitor.models import Alert, Delivery, Dropped, Message, Pending, UnsentAlert
from monitor.store.connection import SqliteBase
from monitor.store.rows import insert_alerts
from monitor.store.times import from_ts, ts

_PENDING = (
    "id, key, rule, channel, title, text, markdown, html, due_at, attempts, article_id, "
    "story_id, digest, rules"
)
_FREE = "status = 'pending' AND (lease_until IS NULL OR lease_until <= ?)"
_LISTED = (
    *("id", "rule", "rules", "channel", "title", "status", "attempts", "created_at", "due_at"),
    *("sent_at", "last_error", "digest", "article_id", "lease_until"),
)
_TIMES = ("created_at", "due_at", "sent_at", "lease_until")
_OF_RULE = "EXISTS (SELECT 1 FROM json_each(rules) WHERE value = ?)"
# unsent_alerts: the row's story, else its article's; the reason of its first rule that has one
_UNSENT = """
SELECT o.id, o.article_id, o.rules, o.rule,
       COALESCE(o.story_id,
                (SELECT story_id FROM story_articles WHERE article_id = o.article_id)),
       (SELECT sa.reason FROM story_alerts sa JOIN json_each(o.rules) j ON j.value = sa.rule
        WHERE sa.story_id = o.story_id AND sa.article_id = o.article_id
        ORDER BY j.key LIMIT 1),
       o.text
FROM outbox o
WHERE o.status = 'pending' AND o.attempts = 0 AND o.digest = 0 AND o.article_id IS NOT NULL
  AND o.due_at <= ? AND (o.story_id IS NOT NULL OR json_array_length(o.rules) > 1)
"""


def _rules(stored: str | None, rule: str) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else (rule,)


def _pending(row: Sequence) -> Pending:
    return Pending(
        id=row[0],
        key=row[1],
        rule=row[2],
        channel=row[3],
        message=Message(row[4], row[5] or "", row[6] or "", row[7] or ""),
        due_at=from_ts(row[8]),  # type: ignore[arg-type]
        attempts=row[9],
        article_id=row[10],
        story_id=row[11],
        digest=bool(row[12]),
        rules=_rules(row[13], row[2]),
    )


def _listed(row: Sequence) -> dict:
    """An outbox row as `alerts` shows it: times parsed, `rules` a list, `digest` a bool."""
    found = dict(zip(_LISTED, row, strict=True))
    for key in _TIMES:
        found[key] = from_ts(found[key])
    found["rules"] = list(_rules(found["rules"], found["rule"]))
    found["digest"] = bool(found["digest"])
    return found


class OutboxMixin(SqliteBase):
    def add_alerts(self, alerts: Sequence[Alert], now: datetime) -> int:
        """Queue alerts; returns how many rows are new (a queued key is left as it is, or
        names one more rule: rows.insert_alerts)."""
        with self.immediate() as conn:
            return insert_alerts(conn, alerts, now)

    def claim_alerts(self, now: datetime, lease_until: datetime, limit: int = 100) -> list[Pending]:
        """Take due rows (lease expired or none) so no other worker sends them meanwhile.

        A digest is taken whole even past `limit`: split, it would go out as two messages.
        """
        with self.immediate() as conn:
            found = conn.execute(
                f"SELECT {_PENDING} FROM outbox WHERE {_FREE} AND due_at <= ? "
                "ORDER BY due_at, id LIMIT ?",
                (ts(now), ts(now), limit),
            ).fetchall()
            taken = {row[0] for row in found}
            for rule, channel, due_at in dict.fromkeys((r[2], r[3], r[8]) for r in found if r[12]):
                rest = conn.execute(
                    f"SELECT {_PENDING} FROM outbox WHERE {_FREE} AND digest = 1 AND rule = ? "
                    "AND channel = ? AND due_at = ? ORDER BY id",
                    (ts(now), rule, channel, due_at),
                ).fetchall()
                found += [row for row in rest if row[0] not in taken]
            conn.executemany(
                "UPDATE outbox SET lease_until = ? WHERE id = ?",
                [(ts(lease_until), row[0]) for row in found],
            )
        return [_pending(row) for row in found]

    def record_attempt(
        self,
        ids: Sequence[int],
        delivery: Delivery,
        now: datetime,
        *,
        retry_at: datetime | None = None,
    ) -> None:
        """Record one attempt for these rows: sent, retry at `retry_at`, or dead when None."""
        with self.immediate() as conn:
            for outbox_id in ids:
                conn.execute(
                    "INSERT INTO attempts (outbox_id, at, ok, error) VALUES (?, ?, ?, ?)",
                    (outbox_id, ts(now), int(delivery.ok), delivery.error),
                )
                if delivery.ok:
                    conn.execute(
                        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                        "last_attempt_at = ?, lease_until = NULL, last_error = NULL WHERE id = ?",
                        (ts(now), ts(now), outbox_id),
                    )
                else:
                    conn.execute(
                        "UPDATE outbox SET status = ?, due_at = COALESCE(?, due_at), "
                        "attempts = attempts + 1, last_attempt_at = ?, last_error = ?, "
                        "lease_until = NULL WHERE id = ?",
                        ("pending" if retry_at else "dead", ts(retry_at), ts(now), delivery.error,
                         outbox_id),
                    )  # fmt: skip

    def postpone_alerts(self, ids: Sequence[int], until: datetime) -> None:
        """Hold rows without counting an attempt (rate limit, quiet hours)."""
        with self.immediate() as conn:
            conn.executemany(
                "UPDATE outbox SET due_at = ?, lease_until = NULL WHERE id = ?",
                [(ts(until), i) for i in ids],
            )

    def release_alerts(self, ids: Sequence[int]) -> None:
        """Give claimed rows back untouched (shutdown before sending them)."""
        with self.immediate() as conn:
            conn.executemany(
                "UPDATE outbox SET lease_until = NULL WHERE id = ?", [(i,) for i in ids]
            )

    def sent_since(self, channel: str, since: datetime) -> list[datetime]:
        """When each message went to `channel` (for the rate limit): a digest counts once."""
        found = self.db.execute(
            "SELECT sent_at FROM outbox WHERE channel = ? AND status = 'sent' AND sent_at >= ? "
            "AND digest = 0 UNION ALL SELECT MIN(sent_at) FROM outbox WHERE channel = ? "
            "AND status = 'sent' AND sent_at >= ? AND digest = 1 GROUP BY rule, sent_at "
            "ORDER BY 1",
            (channel, ts(since), channel, ts(since)),
        ).fetchall()
        return [from_ts(r[0]) for r in found]  # type: ignore[misc]

    def unsent_alerts(self, now: datetime) -> list[UnsentAlert]:
        """The alerts due by `now`, never tried yet, whose text may still change before it
        goes out: story alerts (outlets that joined the story since) and alerts several rules
        matched (the text names them all). A digest is written when it is sent anyway. The
        story is the row's, else its article's (whose outlets an article alert names too);
        the reason is that of the first of the row's rules that recorded one."""
        return [
            UnsentAlert(int(r[0]), int(r[1]), _rules(r[2], r[3]), r[4], r[5], r[6] or "")
            for r in self.db.execute(_UNSENT, (ts(now),)).fetchall()
        ]

    def rewrite_alert(self, outbox_id: int, message: Message) -> None:
        """Replace an unsent alert's text (never one already tried: what went out stays)."""
        with self.immediate() as conn:
            conn.execute(
                "UPDATE outbox SET title = ?, text = ?, markdown = ?, html = ? "
                "WHERE id = ? AND status = 'pending' AND attempts = 0",
                (message.title, message.text, message.markdown, message.html, outbox_id),
            )

    def outbox_depth(self) -> int:
        """How many alerts wait to be sent."""
        row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        return int(row.fetchone()[0])

    def recent_alerts(self, *, limit: int = 30, status: str | None = None) -> list[dict]:
        """Newest alerts first, with their delivery state (times parsed), for `alerts`."""
        sql = f"SELECT {', '.join(_LISTED)} FROM outbox"
        params: list = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_listed(row) for row in self.db.execute(sql, params)]

    def alert_row(self, alert_id: int) -> dict | None:
        """One alert as `recent_alerts` lists it, or None."""
        sql = f"SELECT {', '.join(_LISTED)} FROM outbox WHERE id = ?"
        row = self.db.execute(sql, (alert_id,)).fetchone()
        return _listed(row) if row is not None else None

    def retry_alerts(self, now: datetime, ids: Sequence[int] | None = None) -> list[dict]:
        """Dead alerts pending again, due `now` with their attempts reset (a full retry
        schedule); with `ids`, those of them that are dead or dropped. Returns them."""
        where = "status = 'dead'"
        params: list = []
        if ids is not None and not ids:  # none chosen (and `IN ()` is SQLite's only)
            return []
        if ids is not None:
            where = f"status IN ('dead', 'dropped') AND id IN ({','.join('?' * len(ids))})"
            params = list(ids)
        with self.immediate() as conn:
            found = conn.execute(
                f"SELECT {', '.join(_LISTED)} FROM outbox WHERE {where} ORDER BY id", params
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET status = 'pending', attempts = 0, due_at = ?, "
                "lease_until = NULL WHERE id = ?",
                [(ts(now), row[0]) for row in found],
            )
        return [_listed(row) for row in found]

    def pending_count(self, rule: str) -> int:
        """Pending alerts that speak for `rule` (all of them: a backlog can be any size)."""
        row = self.db.execute(
            f"SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND {_OF_RULE}", (rule,)
        ).fetchone()
        return int(row[0])

    def drop_alerts(
        self,
        now: datetime,
        *,
        ids: Sequence[int] | None = None,
        rule: str | None = None,
        channel: str | None = None,
    ) -> Dropped:
        """Mark pending alerts `dropped`: never sent, kept in the history. Those chosen by id
        (a dead one too), else every pending one of `rule` and/or `channel`. One being sent
        now (its lease runs) is left to finish; one of `rule` that other rules matched too is
        kept, since it is their alert as well (drop it by id)."""
        where, params = ["status = 'pending'"], []
        if ids is not None and not ids:  # none chosen (and `IN ()` is SQLite's only)
            return Dropped(())
        if ids is not None:
            where = [f"status IN ('pending', 'dead') AND id IN ({','.join('?' * len(ids))})"]
            params += list(ids)
        if rule is not None:
            where.append(_OF_RULE)
            params.append(rule)
        if channel is not None:
            where.append("channel = ?")
            params.append(channel)
        with self.immediate() as conn:
            found = [
                _listed(row)
                for row in conn.execute(
                    f"SELECT {', '.join(_LISTED)} FROM outbox WHERE {' AND '.join(where)} "
                    "ORDER BY id",
                    params,
                )
            ]
            sending, shared, doomed = [], [], []
            for r in found:
                if r["lease_until"] is not None and r["lease_until"] > now:
                    sending.append(r)  # being sent right now
                elif rule is not None and r["rules"] != [rule]:
                    shared.append(r)  # another rule matched it too
                else:
                    doomed.append(r)
            conn.executemany(
                "UPDATE outbox SET status = 'dropped', lease_until = NULL WHERE id = ?",
                [(r["id"],) for r in doomed],
            )
        for r in doomed:
            r["status"] = "dropped"
        return Dropped(tuple(doomed), sending=tuple(sending), shared=tuple(shared))
