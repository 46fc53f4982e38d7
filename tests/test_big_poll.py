"""A poll with thousands of new matches never blocks health or the stop.

Storing such a poll (copies, stories, alerts: one transaction) takes seconds; it runs on the
store's writer thread, so the real daemon (a subprocess) keeps answering `/healthz` and stops
within the README's 10 s on SIGTERM, and the cut-short poll is there whole or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver
from tests.test_daemon import Daemon, config, free_port, get, polled

N = 4000  # new matching items in one poll: seconds of storing on this machine

pytestmark = pytest.mark.slow


def _big_feed(server: LoopbackServer) -> str:
    now = datetime.now(UTC)  # the daemon's clock: older items would be held (max_age)
    items = [
        Item(f"g{i}", f"Ceasefire talks, round {i}", f"Delegation {i} met in town {i % 97}.",
             published=now)
        for i in range(N)
    ]  # fmt: skip
    server.route("/big", Reply(body=rss(items, language="en"),
                               headers={"Content-Type": "application/rss+xml"}))  # fmt: skip
    return server.url("/big")


@pytest.fixture
def setup(tmp_path: Path, server: LoopbackServer):
    hook = WebhookReceiver().up()
    port = free_port()
    daemon = Daemon(tmp_path)
    daemon.write(
        config(
            hook.url(),
            {"big": _big_feed(server)},
            {"talks": "ceasefire"},
            interval="1h",
            extra=f'health_port = {port}\nmax_bytes = "50MB"',
        )  # fmt: skip
    )
    yield daemon, port
    daemon.kill()
    hook.down()


def test_health_answers_while_a_big_poll_is_stored(setup) -> None:
    daemon, port = setup
    daemon.start()
    started = time.monotonic()
    slowest, answers = 0.0, 0
    for _ in range(600):  # bounded: at most ~2 min of probing
        if daemon.count(polled("big")):
            break
        t = time.monotonic()
        status, _body = get(f"http://127.0.0.1:{port}/healthz")
        slowest, answers = max(slowest, time.monotonic() - t), answers + 1
        assert status == 200
        time.sleep(0.2)
    event = daemon.wait_log(polled("big"), 120)
    took = time.monotonic() - started
    assert event["new"] > 0.9 * N and event["matches"] == event["new"]  # a few are copies
    assert took > 2.0 and answers >= 5  # the health check was asked during a long save
    assert slowest < 1.5, f"/healthz took {slowest:.1f} s while the poll was stored"
    assert daemon.stop() == 0


def test_sigterm_during_a_big_poll_stops_in_time_and_keeps_the_poll_whole(
    setup, tmp_path: Path
) -> None:
    daemon, _port = setup
    daemon.start()
    time.sleep(1.5)  # fetched and parsed; now storing
    assert not daemon.count(polled("big")), "the poll ended too soon to test a stop during it"
    t = time.monotonic()
    assert daemon.stop(timeout=15.0) == 0
    assert time.monotonic() - t < 10.0
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        articles = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        alerts = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    # all of the poll, or none of it (a few look-alike items are copies, not articles)
    assert articles == alerts and (articles == 0 or articles > 0.9 * N), (articles, alerts)
