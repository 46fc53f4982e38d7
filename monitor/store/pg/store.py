"""The PostgreSQL store: the `Store` protocol on a PostgreSQL database shared by workers.

The same parts as the SQLite store (sources, articles, polls, stories, outbox, mutes,
maintenance) run their shared SQL here through pg/connection.py; this module holds what a
server shared by many workers does otherwise than one file:

- claims: due sources and due alerts are taken with `FOR UPDATE SKIP LOCKED` (a row another
  worker is claiming is skipped, not waited for); a claim is a lease that expires, so a worker
  killed mid-poll or mid-send has its work taken over once its lease runs out;
- a poll that stores articles, and retention, run under the cluster-wide write lock
  (`serialized`), so story placement sees every other worker's stories (one story, one alert);
- maintenance: the database's size instead of a file's; no VACUUM (autovacuum's work); leases
  are never handed back wholesale at start (other workers' are real: they expire).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.models import Candidate, GoodPoll, Pending, Saved
from monitor.store.articles import ArticlesMixin
from monitor.store.maintenance import MaintenanceMixin
from monitor.store.mutes import MutesMixin
from monitor.store.outbox import OutboxMixin
from monitor.store.pg.connection import CLAIM_LOCK, WRITE_LOCK, PgBase
from monitor.store.pg.search import PgSearch
from monitor.store.polls import Planner, PollsMixin
from monitor.store.sources import SourcesMixin, record_success
from monitor.store.story_views import StoriesMixin
from monitor.store.times import ts


class PgParts(PgBase):
    """The methods PostgreSQL runs otherwise than SQLite (see the module doc)."""

    def save_poll(  # the protocol's signature, as test_storage checks
        self,
        poll: GoodPoll,
        candidates: Sequence[Candidate],
        *,
        plan: Planner | None = None,
        window: float = 72 * 3600.0,
        items: Sequence[tuple[str, str]] = (),
        listed: Sequence[str] = (),
        skipped: Sequence[tuple[str, int]] = (),
    ) -> Saved:
        with self.serialized(WRITE_LOCK if candidates else None):
            return super().save_poll(  # type: ignore[misc]
                poll, candidates, plan=plan, window=window, items=items, listed=listed,
                skipped=skipped,
            )  # fmt: skip

    def prune(self, before: datetime, history_before: datetime | None = None) -> int:
        with self.serialized():
            return super().prune(before, history_before)  # type: ignore[misc]

    def record_unchanged(self, poll: GoodPoll) -> None:
        """One statement, atomic by itself: no BEGIN/COMMIT around it, two round trips fewer
        on the most common poll there is (304, or the same body)."""
        record_success(self.db, poll, 0)

    def claim_due(self, now: datetime, lease_until: datetime, limit: int = 100) -> list[str]:
        rows = self.db.execute(
            "UPDATE sources SET lease_until = ? WHERE name IN (SELECT name FROM sources "
            "WHERE enabled = 1 AND (next_poll IS NULL OR next_poll <= ?) "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_poll NULLS FIRST LIMIT ? "
            "FOR UPDATE SKIP LOCKED) RETURNING name",
            (ts(lease_until), ts(now), ts(now), limit),
        )
        return [row[0] for row in rows]

    def claim_alerts(self, now: datetime, lease_until: datetime, limit: int = 100) -> list[Pending]:
        """As SQLite's, one claimer at a time: a digest is taken whole, never split between
        two workers (a claim is a few milliseconds; sending happens after it)."""
        with self.serialized(CLAIM_LOCK):
            return super().claim_alerts(now, lease_until, limit)  # type: ignore[misc]

    def file_size(self) -> int:
        """Bytes the database takes on the server."""
        return int(self.db.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def compact(self, min_free: float = 0.2) -> tuple[int, int]:
        """Nothing to do: autovacuum reuses the space of deleted rows."""
        size = self.file_size()
        return size, size

    def release_leases(self) -> tuple[int, int]:
        """None: other workers' leases are real; a dead worker's expire (see module doc)."""
        return 0, 0


class PgStore(
    PgParts, PgSearch, SourcesMixin, ArticlesMixin, PollsMixin, StoriesMixin, OutboxMixin,
    MutesMixin, MaintenanceMixin,
):  # fmt: skip
    """One process's handle on the monitor's PostgreSQL database (its pool is shared by the
    process's handles: see pg/connection.py). Use each handle from one thread."""
