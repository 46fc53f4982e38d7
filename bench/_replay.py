"""Replaying saved feed snapshots through the real monitor, each at its own time."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from datetime import datetime

from monitor.runtime.daemon import Monitor
from tests.loopback import LoopbackServer, Reply


async def serve_and_poll(
    monitor: Monitor,
    server: LoopbackServer,
    shots: Sequence[tuple[datetime, str, bytes]],
    clock: MutableMapping[str, datetime],
) -> None:
    """Serve each (time, feed, body) snapshot at /<feed>.xml and poll that feed at its time."""
    for when, feed, body in shots:
        clock["now"] = when
        server.route(f"/{feed}.xml", Reply(200, body, {"Content-Type": "text/xml"}))
        await monitor.poll(feed)
