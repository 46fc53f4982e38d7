"""What the polls since the last "poll cycle" log line did, summed for that one line.

Why: each poll's own "polled" line is at debug, because at info a few hundred sources would
fill the log with lines nobody reads. The daemon logs one summary per `[monitor] interval`
instead (sources polled, new articles, matches, alerts queued, errors, elapsed), which says
at a glance whether the monitor is doing its work. The Monitor adds each finished poll to
its `tally`; the daemon swaps in a new one when it writes the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.models import PollResult


@dataclass
class PollTally:
    """Polls finished since the tally began; `elapsed` is from the first start to the last end."""

    polls: int = 0
    sources: set[str] = field(default_factory=set)
    new: int = 0
    matches: int = 0
    queued: int = 0  # new matches that queued alerts; the rest were held (muted, too old)
    errors: int = 0
    first_start: datetime | None = None
    last_end: datetime | None = None

    def add(self, result: PollResult, started: datetime, ended: datetime) -> None:
        self.polls += 1
        self.sources.add(result.source)
        self.new += result.new
        held = sum(n for _, n in result.held)
        self.matches += len(result.found) + held
        self.queued += len(result.found)
        self.errors += result.outcome == "error"
        self.first_start = min(started, self.first_start or started)
        self.last_end = max(ended, self.last_end or ended)

    @property
    def elapsed(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return (self.last_end - self.first_start).total_seconds()

    def fields(self) -> dict[str, int | float]:
        """The summary line's fields."""
        return {
            "sources": len(self.sources),
            "polls": self.polls,
            "new": self.new,
            "matches": self.matches,
            "alerts_queued": self.queued,
            "held": self.matches - self.queued,  # muted, too old, a first poll's backlog
            "errors": self.errors,
            "elapsed": round(self.elapsed, 1),
        }
