"""The real daemon on a real PostgreSQL server that restarts under load.

`news-monitor run` (a subprocess) polls loopback feeds that keep publishing matching items and
sends alerts to a real webhook, on the session's throwaway PostgreSQL server (tests/pg.py). The
server is stopped mid-run and started again: the daemon must stay up, say so on `/healthz`
(red while the database is away, green once it is back), carry on polling, and alert every item
published before, during and after the outage exactly once.
"""

from __future__ import annotations

import json
import random
import string
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import StorageError
from monitor.models import Source
from monitor.store import open_store
from tests.feeds import Item
from tests.loopback import LoopbackServer
from tests.pg import PgServer
from tests.receivers import WebhookReceiver
from tests.test_daemon import Daemon, Feed, config, free_port, get, wait_until

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-Pg-pass"  # noqa: S105  # the server trusts loopback: it must only never show


class Wire(Feed):
    """A feed whose items are its own (the guids and links of two wires never meet)."""

    def add(self, title: str) -> None:
        with self._lock:
            guid = f"{self.path.strip('/')}-{len(self.items)}"
            self.items.append(Item(guid, title, published=datetime.now(UTC)))


class Publisher(threading.Thread):
    """Adds a matching item to one of the wires every `every` s until stopped: the load the
    daemon is under while the database goes away and comes back."""

    def __init__(self, wires: list[Wire], every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.wires, self.every = wires, every
        self.published: list[str] = []
        self.halt = threading.Event()
        self._random = random.Random(15)

    def title(self) -> str:
        """ "Ceasefire" and three made-up words: no two items read alike (no copies, no story)."""
        words = ("".join(self._random.choices(string.ascii_lowercase, k=7)) for _ in range(3))
        return f"Ceasefire {len(self.published)} {' '.join(words)}"

    def run(self) -> None:
        while not self.halt.wait(self.every):
            title = self.title()
            self.wires[len(self.published) % len(self.wires)].add(title)
            self.published.append(title)


def health(port: int) -> tuple[int, dict]:
    try:
        status, body = get(f"http://127.0.0.1:{port}/healthz")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    return status, json.loads(body)


def metrics(port: int) -> str:
    return get(f"http://127.0.0.1:{port}/metrics")[1]


def outbox_statuses(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())


def test_database_restart_under_load_loses_and_doubles_nothing(
    tmp_path: Path,
    server: LoopbackServer,
    hook: WebhookReceiver,
    pg_server: PgServer,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wires = [Wire(server, f"/wire{n}") for n in range(3)]
    port = free_port()
    # the password comes from the environment, as the README says to write it
    url = pg_url.replace("postgresql://monitor@", "postgresql://monitor:${PGPASSWORD}@")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("NEWS_MONITOR_WORKER", "worker-a")
    text = config(
        hook.url(),
        {f"wire{n}": w.url for n, w in enumerate(wires)},
        {"talks": "ceasefire"},
        extra=f'health_port = {port}\nrate_limit = "none"',
    )
    daemon = Daemon(tmp_path)
    daemon.write(text.replace('database = "data/monitor.db"', f'database = "{url}"'))
    publisher = Publisher(wires)
    stopped = False
    try:
        started = daemon.start().wait_log(lambda e: e["event"] == "daemon started", 5)
        assert started["worker"] == "worker-a"
        assert started["database"] == pg_url  # the URL as shown: no password
        publisher.start()
        hook.wait_for(4, 30)
        assert health(port)[0] == 200
        assert 'news_monitor_polls_total{outcome="new",worker="worker-a"}' in metrics(port)

        pg_server.stop()
        stopped = True
        status, body = wait_until(lambda: (h := health(port))[0] == 503 and h, 15, "red health")
        reason = body["failing"]["database"]
        assert reason.startswith(f"database {pg_url}: connection failed"), body
        assert body["checks"]["scheduler"] is True
        away = daemon.wait_log(lambda e: e["event"].startswith("database unavailable"), 15)
        assert pg_url in away["error"]
        time.sleep(3)  # the outage lasts: items keep coming, polls keep failing
        assert daemon.alive() and health(port)[0] == 503
        during = len(publisher.published)

        pg_server.start()
        pg_server.wait_ready()
        stopped = False
        wait_until(lambda: health(port)[0] == 200, 15, "green health")
        daemon.wait_log(lambda e: e["event"] == "database available again", 10)
        # polling carries on: items published after the outage arrive too
        wait_until(lambda: len(publisher.published) > during + 8, 10, "more items")
        publisher.halt.set()
        publisher.join(5)
        published = publisher.published
        hook.wait_for(len(published), 60)
        # a few more cycles: a doubled alert would arrive now
        seen = daemon.count(lambda e: e["event"] == "polled")
        daemon.wait_log(lambda e: e["event"] == "polled", 10, skip=seen + 6)
        titles = Counter(p.payload["title"].removeprefix("[talks] ") for p in hook.posts)
        assert set(titles) == set(published)
        assert [t for t, n in titles.items() if n > 1] == []
        # and none will go again when a lease runs out: every alert is recorded as sent
        assert outbox_statuses(pg_url) == {"sent": len(published)}
        assert daemon.stop() == 0
    finally:
        publisher.halt.set()
        daemon.kill()
        if stopped:  # the server is the session's: leave it running
            pg_server.start()
            pg_server.wait_ready()
    log = daemon.log_path.read_text(encoding="utf-8")
    assert PASSWORD not in log


def test_store_fails_at_once_while_the_server_is_down_and_carries_on_after(
    pg_server: PgServer, pg_url: str
) -> None:
    """Each call while the server is away fails at once with the reason (the pool alone would
    hold every call for its 10 s timeout: /healthz and the daemon's loop with it), and the
    same store works again once the server is back, on new connections."""
    store = open_store(pg_url.replace("monitor@", f"monitor:{PASSWORD}@"))
    now = datetime.now(UTC)
    store.sync_sources([Source("wire", "http://wire.example/")], now)
    assert store.write_problem() is None
    pg_server.stop()
    try:
        started = time.monotonic()
        problems = [store.write_problem() for _ in range(20)]
        with pytest.raises(StorageError, match="connection failed"):
            store.source_state("wire")
        assert time.monotonic() - started < 5  # 21 calls, not 21 x 10 s
        assert all(p is not None and p.startswith(f"database {pg_url}: ") for p in problems)
        assert not any(PASSWORD in p for p in problems if p)
    finally:
        pg_server.start()
        pg_server.wait_ready()
    wait_until(lambda: store.write_problem() is None, 10, "the store to answer again")
    assert store.source_state("wire").consecutive_errors == 0
    store.close()
