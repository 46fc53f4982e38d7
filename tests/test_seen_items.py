"""An item never alerts twice while it stays in its feed, whatever the retention.

Retention deletes old articles and their history; a feed may keep listing an old item for
months. The store keeps a compact "seen" key per item of each source's latest listing, so an
item that is still listed (even edited) is never taken for a new one after its row is gone.
Real feeds on 127.0.0.1, the real `Monitor`, a real database (conftest's `database`: a SQLite
file, then PostgreSQL), the clock moved by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import loader as config_mod
from monitor.service.monitor import Monitor
from monitor.store.times import ts
from tests.conftest import Clock, toml_database
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OLD = [
    Item(f"old{i}", f"Ceasefire talks, day {i}", f"Delegations met for the {i}th time.")
    for i in range(1, 4)
]
NEW = Item("new1", "Ceasefire signed in Geneva", "The delegations signed a ceasefire today.")


def _config(tmp_path: Path, url: str, database: str | Path) -> config_mod.Config:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"[monitor]\ndatabase = {toml_database(database)}\n"
        'retention = "1d"\nhistory_retention = "1d"\n'
        f'[[sources]]\nname = "wire"\nurl = {json.dumps(url)}\n'
        '[[rules]]\nname = "ceasefire"\nquery = "ceasefire"\nalert = "article"\n',
        encoding="utf-8",
    )
    return config_mod.load(path, env={})


def _alerts(monitor: Monitor, since: datetime | None = None) -> list[str]:
    """Titles of the alerts queued at or after `since` (retention deletes older rows)."""
    rows = monitor.store.db.execute(
        "SELECT title FROM outbox WHERE created_at >= ? ORDER BY id", (ts(since or EPOCH),)
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("etag", [False, True], ids=["changing-body", "304-for-days"])
def test_items_still_listed_never_alert_again_after_retention(
    tmp_path: Path, server: LoopbackServer, clock: Clock, etag: bool, database: str | Path
) -> None:
    headers = {"Content-Type": "application/rss+xml", **({"ETag": '"v1"'} if etag else {})}
    server.route("/rss", Reply(200, rss(OLD, language="en"), headers))
    cfg = _config(tmp_path, server.url("/rss"), database)

    async def scenario() -> tuple[list[str], list[str], int]:
        monitor = Monitor(cfg, clock=clock)
        try:
            await monitor.poll("wire")
            await monitor.drain()  # sent (to standard output): history from now on
            first = _alerts(monitor)
            for _ in range(3):  # three days: the old items stay listed, retention runs
                clock.advance(days=1)
                await monitor.poll("wire")
                monitor.prune()
            pruned = monitor.store.count_articles()
            # the feed changes: one new item, one old item edited
            edited = Item("old1", "Ceasefire talks, day 1 (updated)", OLD[0].description)
            new = dataclasses.replace(NEW, published=clock.now())  # within max_age (2 days)
            body = rss([new, edited, *OLD[1:]], language="en")
            server.route("/rss", Reply(200, body, {**headers, "ETag": '"v2"'}))
            clock.advance(hours=1)
            await monitor.poll("wire")
            return first, _alerts(monitor, clock.now()), pruned
        finally:
            await monitor.close()

    first, after, pruned = asyncio.run(scenario())
    assert len(first) == 3
    assert pruned < 3  # retention did delete the old articles' rows
    assert after == ["[ceasefire] Ceasefire signed in Geneva"]  # only the new item alerts
