"""The daemon's tick on a real `Monitor`: how many polls one tick may start.

A loopback server serves the feeds, the database is a real SQLite file; time is the test clock,
so every source stays due until it has been polled.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from monitor.config.loader import load
from monitor.service.monitor import INFLIGHT_PER_SLOT, Monitor
from tests.conftest import Clock
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

SOURCES = 30
SLOTS = 2  # `concurrency`


def write_config(tmp_path: Path, server: LoopbackServer) -> Path:
    body = rss([Item("a1", "Weather: sunny spells over Rome")])
    lines = [
        "[monitor]",
        f"database = {json.dumps(str(tmp_path / 'monitor.db'))}",
        f"concurrency = {SLOTS}",
        f"per_host = {SLOTS}",
    ]
    for i in range(SOURCES):
        server.route(f"/f{i}.xml", Reply(200, body, {"Content-Type": "application/rss+xml"}))
        url = server.url(f"/f{i}.xml")
        lines += ["[[sources]]", f'name = "s{i:02}"', f'url = "{url}"', "allow_private = true"]
    path = tmp_path / "monitor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_a_tick_starts_no_more_polls_than_the_fetch_slots_can_serve(
    server: LoopbackServer, tmp_path: Path, clock: Clock
) -> None:
    monitor = Monitor(load(write_config(tmp_path, server)), clock=clock)
    cap = INFLIGHT_PER_SLOT * SLOTS
    try:
        assert monitor.start_due_polls() == cap  # all 30 are due; the rest stay unclaimed
        assert monitor.start_due_polls() == 0  # no room until a poll ends
        polled: set[str] = set()
        while len(polled) < SOURCES:
            running = list(monitor.inflight)
            assert len(running) <= cap
            polled.update(running)
            await asyncio.wait(list(monitor.inflight.values()))
            await asyncio.sleep(0)  # the done callbacks leave `inflight`
            monitor.start_due_polls()
        assert monitor.start_due_polls() == 0  # nothing due: each polled once
        assert all(len(server.hits(f"/f{i}.xml")) == 1 for i in range(SOURCES))
    finally:
        for task in monitor.inflight.values():
            task.cancel()
        await monitor.close()
