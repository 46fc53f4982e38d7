"""The transactional outbox: alerts written with the poll that found them, sent later.

Why an outbox: the poll's transaction writes the article and its alerts together, so a crash
can delay an alert but never lose it; the unique key makes replaying a poll harmless. Sending
claims rows with a lease in a `BEGIN IMMEDIATE` transaction, so two workers never take the same
row, and a worker killed mid-send leaves a lease that simply expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Alert, Delivery, Message
from monitor.store.sqlite import Store, from_ts, insert_alerts, ts


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed outbox row, ready to be sent."""

    id: int
    key: str
    rule: str
    channel: str
    message: Message
    due_at: datetime
    attempts: int
    article_id: int | None
    story_id: int | None
    digest: bool


_PENDING = (
    "id, key, rule, channel, title, text, markdown, html, due_at, attempts, article_id, "
    "story_id, digest"
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


class Outbox:
    """Claims, attempts and reports over the outbox table of one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, alerts: Sequence[Alert], now: datetime) -> int:
        with self.store.immediate() as conn:
            return insert_alerts(conn, alerts, now)

    def claim(self, now: datetime, lease_until: datetime, limit: int = 100) -> list[Pending]:
        """Take due rows (lease expired or none) so no other worker sends them meanwhile.

        A digest is taken whole even past `limit`: split, it would go out as two messages.
        """
        free = "status = 'pending' AND (lease_until IS NULL OR lease_until <= ?)"
        with self.store.immediate() as conn:
            rows = conn.execute(
                f"SELECT {_PENDING} FROM outbox WHERE {free} AND due_at <= ? "
                "ORDER BY due_at, id LIMIT ?",
                (ts(now), ts(now), limit),
            ).fetchall()
            taken = {row[0] for row in rows}
            for rule, channel, due_at in dict.fromkeys((r[2], r[3], r[8]) for r in rows if r[12]):
                rest = conn.execute(
                    f"SELECT {_PENDING} FROM outbox WHERE {free} AND digest = 1 AND rule = ? "
                    "AND channel = ? AND due_at = ? ORDER BY id",
                    (ts(now), rule, channel, due_at),
                ).fetchall()
                rows += [row for row in rest if row[0] not in taken]
            conn.executemany(
                "UPDATE outbox SET lease_until = ? WHERE id = ?",
                [(ts(lease_until), row[0]) for row in rows],
            )
        return [_pending(row) for row in rows]

    def record(
        self,
        ids: Sequence[int],
        delivery: Delivery,
        now: datetime,
        *,
        retry_at: datetime | None = None,
    ) -> None:
        """Record one attempt for these rows: sent, retry at `retry_at`, or dead when None."""
        with self.store.immediate() as conn:
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
                        (
                            "pending" if retry_at else "dead",
                            ts(retry_at),
                            ts(now),
                            delivery.error,
                            outbox_id,
                        ),
                    )

    def postpone(self, ids: Sequence[int], until: datetime) -> None:
        """Hold rows without counting an attempt (rate limit, quiet hours)."""
        with self.store.immediate() as conn:
            conn.executemany(
                "UPDATE outbox SET due_at = ?, lease_until = NULL WHERE id = ?",
                [(ts(until), i) for i in ids],
            )

    def release(self, ids: Sequence[int]) -> None:
        """Give claimed rows back untouched (shutdown before sending them)."""
        with self.store.immediate() as conn:
            conn.executemany(
                "UPDATE outbox SET lease_until = NULL WHERE id = ?", [(i,) for i in ids]
            )

    def sent_since(self, channel: str, since: datetime) -> list[datetime]:
        """When each message went to `channel` (for the rate limit): a digest counts once."""
        rows = self.store.db.execute(
            "SELECT sent_at FROM outbox WHERE channel = ? AND status = 'sent' AND sent_at >= ? "
            "AND digest = 0 UNION ALL SELECT MIN(sent_at) FROM outbox WHERE channel = ? "
            "AND status = 'sent' AND sent_at >= ? AND digest = 1 GROUP BY rule, sent_at "
            "ORDER BY 1",
            (channel, ts(since), channel, ts(since)),
        ).fetchall()
        return [from_ts(r[0]) for r in rows]  # type: ignore[misc]

    def unsent_story_alerts(
        self, now: datetime
    ) -> list[tuple[int, int, str, int, str | None, str]]:
        """(outbox id, article id, rule, story id, why it alerted, its text) of the story
        alerts due by `now` and never tried yet: their text may still change before it goes
        out (one held by quiet hours is looked at once it is due)."""
        return [
            (int(r[0]), int(r[1]), r[2], int(r[3]), r[4], r[5] or "")
            for r in self.store.db.execute(
                "SELECT o.id, o.article_id, o.rule, o.story_id, sa.reason, o.text FROM outbox o "
                "LEFT JOIN story_alerts sa ON sa.story_id = o.story_id AND sa.rule = o.rule "
                "AND sa.article_id = o.article_id WHERE o.status = 'pending' AND o.attempts = 0 "
                "AND o.digest = 0 AND o.story_id IS NOT NULL AND o.article_id IS NOT NULL "
                "AND o.due_at <= ?",
                (ts(now),),
            ).fetchall()
        ]

    def rewrite(self, outbox_id: int, message: Message) -> None:
        """Replace an unsent alert's text (never one already tried: what went out stays)."""
        with self.store.immediate() as conn:
            conn.execute(
                "UPDATE outbox SET title = ?, text = ?, markdown = ?, html = ? "
                "WHERE id = ? AND status = 'pending' AND attempts = 0",
                (message.title, message.text, message.markdown, message.html, outbox_id),
            )

    def depth(self) -> int:
        row = self.store.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        return int(row.fetchone()[0])

    def next_due(self) -> datetime | None:
        row = self.store.db.execute(
            "SELECT MIN(due_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return from_ts(row[0])

    def recent(self, *, limit: int = 30, status: str | None = None) -> list[dict]:
        """Newest alerts first, with their delivery state, for `news-monitor alerts`."""
        sql = (
            "SELECT id, rule, channel, title, status, attempts, created_at, due_at, sent_at, "
            "last_error, digest FROM outbox"
        )
        params: list = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        keys = [
            "id",
            "rule",
            "channel",
            "title",
            "status",
            "attempts",
            "created_at",
            "due_at",
            "sent_at",
            "last_error",
            "digest",
        ]
        return [dict(zip(keys, row, strict=True)) for row in self.store.db.execute(sql, params)]


def release_leases(store: Store) -> tuple[int, int]:
    """Hand back every source and outbox lease: (sources, alerts).

    Only for a process that knows it is alone on the database (`process.alone()`): then every
    lease was left by a dead process."""
    with store.immediate() as conn:
        sources = conn.execute(
            "UPDATE sources SET lease_until = NULL WHERE lease_until IS NOT NULL"
        ).rowcount
        alerts_ = conn.execute(
            "UPDATE outbox SET lease_until = NULL WHERE lease_until IS NOT NULL "
            "AND status = 'pending'"
        ).rowcount
    return sources, alerts_
