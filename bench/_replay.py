"""Replaying saved feed snapshots through the real monitor, each at its own time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.service.monitor import Monitor
from tests.conftest import Clock
from tests.loopback import LoopbackServer, Reply


async def serve_and_poll(
    monitor: Monitor,
    server: LoopbackServer,
    shots: Sequence[tuple[datetime, str, bytes]],
    clock: Clock,
) -> None:
    """Serve each (time, feed, body) snapshot at /<feed>.xml and poll that feed at its time
    (`clock` is the monitor's own: it is set to each snapshot's time)."""
    for when, feed, body in shots:
        clock.set(when)
        server.route(f"/{feed}.xml", Reply(200, body, {"Content-Type": "text/xml"}))
        await monitor.poll(feed)
