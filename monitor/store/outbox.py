"""The outbox part of the store: alerts written with the poll that found them, sent later.

Why an outbox: the poll's transaction writes the article and its alerts together, so a crash
can delay an alert but never lose it; the unique key makes replaying a poll harmless. Sending
claims rows with a lease in a `BEGIN IMMEDIATE` transaction, so two workers never take the same
row, and a worker killed mid-send leaves a lease that simply expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.models import Alert, Delivery, Message, Pending, UnsentStoryAlert
from monitor.store.connection import SqliteBase
from monitor.store.rows import insert_alerts
from monitor.store.times import from_ts, ts

_PENDING = (
    "id, key, rule, channel, title, text, markdown, html, due_at, attempts, article_id, "
    "story_id, digest"
)
_FREE = "status = 'pending' AND (lease_until IS NULL OR lease_until <= ?)"
_RECENT = (
    *("id", "rule", "channel", "title", "status", "attempts", "created_at", "due_at"),
    *("sent_at", "last_error", "digest"),
)


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
    )


class OutboxMixin(SqliteBase):
    def add_alerts(self, alerts: Sequence[Alert], now: datetime) -> int:
        """Queue alerts; returns how many were new (an existing key is left as it is)."""
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

    def unsent_story_alerts(self, now: datetime) -> list[UnsentStoryAlert]:
        """The story alerts due by `now` and never tried yet: their text may still change
        before it goes out (one held by quiet hours is looked at once it is due)."""
        return [
            UnsentStoryAlert(int(r[0]), int(r[1]), r[2], int(r[3]), r[4], r[5] or "")
            for r in self.db.execute(
                "SELECT o.id, o.article_id, o.rule, o.story_id, sa.reason, o.text FROM outbox o "
                "LEFT JOIN story_alerts sa ON sa.story_id = o.story_id AND sa.rule = o.rule "
                "AND sa.article_id = o.article_id WHERE o.status = 'pending' AND o.attempts = 0 "
                "AND o.digest = 0 AND o.story_id IS NOT NULL AND o.article_id IS NOT NULL "
                "AND o.due_at <= ?",
                (ts(now),),
            ).fetchall()
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
        sql = f"SELECT {', '.join(_RECENT)} FROM outbox"
        params: list = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        found = [dict(zip(_RECENT, row, strict=True)) for row in self.db.execute(sql, params)]
        for row in found:
            for key in ("created_at", "due_at", "sent_at"):
                row[key] = from_ts(row[key])
        return found
