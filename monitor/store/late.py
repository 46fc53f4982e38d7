"""Writes the database could not take while it was away, done once it answers again.

Why: a PostgreSQL server that restarts (or a network that drops it) fails whatever was being
recorded at that moment: the failure of a poll in flight, the sending of an alert that already
reached its channel. Left unrecorded, the poll's source waits out its lease before anyone polls
it again, and the alert goes out a second time once its lease expires. The process still knows
what happened, so it keeps these writes and does them first thing when the database is back,
each only while the lease it stands on still runs: after that, another worker may own the row
(the poll is simply done again, the send is the at-least-once case of the README).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

__all__ = ["LateWrites"]


class LateWrites:
    """Writes to redo, oldest first, each with the end of the lease it relies on."""

    def __init__(self) -> None:
        self._writes: list[tuple[datetime, Callable[[], object]]] = []

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, until: datetime, write: Callable[[], object]) -> None:
        """Keep `write` (a store call) to redo before `until`."""
        self._writes.append((until, write))

    def drop_first(self) -> None:
        """Give up the oldest write (it fails for a reason waiting will not mend)."""
        if self._writes:
            del self._writes[0]

    def flush(self, now: datetime) -> int:
        """Do the writes still in time; how many were done. StorageError (still away) stops
        at the first that fails and keeps it and the rest for the next try."""
        done = 0
        while self._writes:
            until, write = self._writes[0]
            if until > now:
                write()
                done += 1
            del self._writes[0]
        return done
