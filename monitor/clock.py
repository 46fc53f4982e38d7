"""Where "now" comes from: passed in, never read from a module-level function.

The pure core already takes `now` as an argument; the objects that run it (the `Monitor`, the
daemon, the CLI) take a `Clock` instead, so a test or a replay of old snapshots hands them its
own time rather than patching a function. Bottom layer: imports nothing from `monitor`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Tells the time: an aware datetime in UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)
