"""The real daemon (`python -m monitor run`) as a subprocess, against real loopback servers.

Feeds come from `LoopbackServer`, alerts go to a real Apprise `json://` webhook receiver, the
database is a real SQLite file in tmp_path, and the daemon is driven with real signals. Waits
are bounded and poll the daemon's JSON log or the receivers; nothing asserts on speed except
the issue's own 10 s limit for SIGTERM, which is a requirement.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.service.lock import alone, lock_database
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply, Seen
from tests.receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` every 50 ms; return its first truthy value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def json_lines(text: str) -> list[dict]:
    """The JSON log events in `text`, skipping what is not one (a line still being written, a
    traceback)."""
    out = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            out.append(event)
    return out


class Feed:
    """An RSS feed on the loopback server whose items the test adds while the daemon runs."""

    def __init__(self, server: LoopbackServer, path: str = "/feed") -> None:
        self.path = path
        self.items: list[Item] = []
        self._lock = threading.Lock()
        server.route(path, self.reply)
        self.url = server.url(path)

    def add(self, title: str) -> None:
        with self._lock:
            # dated as it appears: the daemon runs on the real clock, and `max_age` holds old items
            self.items.append(Item(f"item-{len(self.items)}", title, published=datetime.now(UTC)))

    def reply(self, _seen: Seen) -> Reply:
        with self._lock:
            body = rss(list(self.items))
        return Reply(body=body, headers={"Content-Type": "application/rss+xml"})


class SlowWebhook(WebhookReceiver):
    """A webhook that takes `delay` s to handle each post, like a busy real service.

    It reads the request, works for `delay` s, then records and answers, even if the sender
    died meanwhile: a real service has received the alert by then. `busy` counts posts being
    handled, so a test can kill the daemon mid-delivery.
    """

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.busy = 0
        self.entered = 0
        self.last_done = 0.0  # monotonic time the last post was answered
        self._count_lock = threading.Lock()

    def _handler(self):  # type: ignore[no-untyped-def]
        base = super()._handler()
        receiver = self

        class Slow(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:  # noqa: N802
                with receiver._count_lock:
                    receiver.busy += 1
                    receiver.entered += 1
                try:
                    time.sleep(receiver.delay)
                    super().do_POST()
                except OSError:  # the sender was killed: it cannot read the answer
                    pass
                finally:
                    with receiver._count_lock:
                        receiver.busy -= 1
                        receiver.last_done = time.monotonic()

        return Slow


class Daemon:
    """`news-monitor --config CFG run` in tmp_path, with its JSON log on stderr in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.config = tmp_path / "monitor.toml"
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def write(self, text: str) -> None:
        self.config.write_text(text, encoding="utf-8")

    @property
    def log_path(self) -> Path:
        return self.cwd / f"daemon-{self.runs}.log"

    def start(self) -> Daemon:
        self.runs += 1
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(self.config), "run"],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.wait_log(lambda e: e["event"] == "daemon started", 20)
        return self

    def events(self) -> list[dict]:
        return json_lines(self.log_path.read_text(encoding="utf-8", errors="replace"))

    def count(self, match: Callable[[dict], bool]) -> int:
        return sum(1 for e in self.events() if match(e))

    def wait_log(self, match: Callable[[dict], bool], timeout: float, *, skip: int = 0) -> dict:
        """The (skip+1)-th log event that `match`es, waiting for it up to `timeout` s."""

        def found() -> dict | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            hits = [e for e in self.events() if match(e)]
            return hits[skip] if len(hits) > skip else None

        return wait_until(found, timeout, "a log line; log ends with:\n" + self.tail())  # type: ignore[return-value]

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit status (SIGKILL and fail if it does not stop in time)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon ignored SIGTERM for {timeout}s:\n{self.tail()}") from None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    d.kill()


def config(
    hook_url: str,
    sources: dict[str, str],
    rules: dict[str, str],
    *,
    interval: str = "1s",
    timeout: str = "5s",
    extra: str = "",
) -> str:
    """A config: one [[sources]] per name -> URL, one article rule per name -> query."""
    text = f"""[monitor]
database = "data/monitor.db"
interval = "{interval}"
timeout = "{timeout}"
min_interval = "1s"
log_format = "json"
log_level = "debug"
{extra}
[channels]
hook = "{hook_url}"
"""
    for name, url in sources.items():
        text += f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\nallow_private = true\n'
    for name, query in rules.items():
        text += (
            f"\n[[rules]]\nname = \"{name}\"\nquery = '{query}'\n"
            'alert = "article"\nchannels = ["hook"]\n'
        )
    return text


def titles(hook: WebhookReceiver) -> list[str]:
    return [p.payload["title"] for p in hook.posts]


def polled(source: str, **fields: object) -> Callable[[dict], bool]:
    def match(e: dict) -> bool:
        return (
            e["event"] == "polled"
            and e.get("source") == source
            and all(e.get(k) == v for k, v in fields.items())
        )

    return match


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
        return response.status, response.read().decode()


# ---------------------------------------------------------------------------- tests


def test_new_matching_item_alerts_once_and_health_shows_polls(
    daemon: Daemon, server: LoopbackServer, hook: WebhookReceiver
) -> None:
    feed = Feed(server)
    feed.add("Weather: sunny spells over Rome")
    port = free_port()
    daemon.write(
        config(
            hook.url(), {"wire": feed.url}, {"talks": "ceasefire"}, extra=f"health_port = {port}"
        )
    )
    daemon.start()
    daemon.wait_log(polled("wire", outcome="new", new=1, matches=0), 15)

    feed.add("Ukraine ceasefire talks resume in Abu Dhabi")
    posts = hook.wait_for(1, 15)
    assert posts[0].payload["title"] == "[talks] Ukraine ceasefire talks resume in Abu Dhabi"
    assert "ceasefire" in posts[0].payload["message"]

    seen = daemon.count(polled("wire", new=1))
    feed.add("Football: Roma beat Lazio")
    assert daemon.wait_log(polled("wire", new=1), 15, skip=seen)["matches"] == 0
    daemon.wait_log(polled("wire"), 15, skip=daemon.count(polled("wire")))  # a tick later
    assert titles(hook) == ["[talks] Ukraine ceasefire talks resume in Abu Dhabi"]

    status, body = get(f"http://127.0.0.1:{port}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, metrics = get(f"http://127.0.0.1:{port}/metrics")
    lines = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line[:1] != "#")
    worker = daemon.wait_log(lambda e: e["event"] == "daemon started", 1)["worker"]
    assert worker == f"{socket.gethostname()}:{daemon.proc.pid}"  # no NEWS_MONITOR_WORKER
    assert float(lines[f'news_monitor_polls_total{{outcome="new",worker="{worker}"}}']) >= 3
    assert float(lines[f'news_monitor_alerts_total{{outcome="sent",worker="{worker}"}}']) == 1
    assert daemon.stop() == 0


def test_reload_keeps_running_on_a_broken_config_and_applies_a_valid_one(
    daemon: Daemon, server: LoopbackServer, hook: WebhookReceiver
) -> None:
    feed = Feed(server)
    good = config(hook.url(), {"wire": feed.url}, {"talks": "ceasefire"})
    daemon.write(good)
    daemon.start()
    daemon.wait_log(polled("wire"), 15)

    # line 3 of the broken file has the typo; SIGHUP (and the watcher) must report it, with line
    daemon.write(good.replace('interval = "1s"', 'intervall = "1s"'))
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_log(
        lambda e: e["event"].startswith("config reload failed") and e.get("cause") == "SIGHUP", 10
    )
    assert any(f"{daemon.config}:3: " in p and "intervall" in p for p in failed["problems"])
    assert daemon.alive()

    # still polling and alerting with the old rules
    feed.add("Ceasefire holds for a second day")
    hook.wait_for(1, 15)

    # a valid edit with a new rule, on SIGHUP
    with_truce = config(hook.url(), {"wire": feed.url}, {"talks": "ceasefire", "truce": "tregua"})
    daemon.write(with_truce)
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(lambda e: e["event"] == "config reloaded" and e.get("cause") == "SIGHUP", 10)
    feed.add("Tregua a Gaza: firmato l'accordo")
    hook.wait_for(2, 15)

    # and a valid edit with no signal at all: the file watcher picks it up
    by_watcher = lambda e: e["event"] == "config reloaded" and e.get("cause") == "file change"  # noqa: E731
    seen = daemon.count(by_watcher)
    rules = {"talks": "ceasefire", "truce": "tregua", "abu": '"abu dhabi"'}
    daemon.write(config(hook.url(), {"wire": feed.url}, rules))
    daemon.wait_log(by_watcher, 10, skip=seen)
    feed.add("Delegations meet in Abu Dhabi")
    hook.wait_for(3, 15)
    assert titles(hook) == [
        "[talks] Ceasefire holds for a second day",
        "[truce] Tregua a Gaza: firmato l'accordo",
        "[abu] Delegations meet in Abu Dhabi",
    ]
    assert daemon.stop() == 0


def test_hung_source_and_hung_channel_neither_delay_alerts_nor_sigterm(
    daemon: Daemon, server: LoopbackServer, hook: WebhookReceiver
) -> None:
    release = threading.Event()
    hanging = []

    def never_answers(_seen: Seen) -> Reply:
        hanging.append(1)
        release.wait(60)  # bounded; released at the end of the test
        return Reply(body=b"")

    server.route("/hang", never_answers)
    feed = Feed(server)
    # a 30 s fetch timeout, and a 30 s read timeout for the webhook (Apprise's default is 4 s;
    # notify caps it at 20 s): the hung poll and the hung send are in flight at SIGTERM
    daemon.write(
        config(
            hook.url() + "?rto=30",
            {"stuck": server.url("/hang"), "wire": feed.url},
            {"talks": "ceasefire"},
            timeout="30s",
        )
    )
    try:
        daemon.start()
        wait_until(lambda: hanging, 10, "the hung source to be polled")
        daemon.wait_log(polled("wire"), 10)
        feed.add("Ceasefire talks: delegations arrive")
        hook.wait_for(1, 10)
        assert not release.is_set() and len(server.hits("/hang")) == 1  # still hung meanwhile

        # and now the webhook hangs too, mid-send (Apprise would wait up to 20 s for it)
        hook.mode = "hang"
        feed.add("Ceasefire talks: second day")
        wait_until(lambda: len(hook.attempts) == 2, 10, "the second post to reach the webhook")
        started = time.monotonic()
        assert daemon.stop() == 0
        took = time.monotonic() - started
        assert took < 10, f"SIGTERM took {took:.1f}s"
        print(f"\nSIGTERM with a hung poll and a hung send: exited 0 after {took:.2f}s")
        events = [e["event"] for e in daemon.events()]
        assert "cancelled at the stop deadline" in events and "stopped" in events
    finally:
        release.set()


def test_restart_resumes_the_schedule(
    daemon: Daemon, server: LoopbackServer, hook: WebhookReceiver
) -> None:
    hourly = Feed(server, "/hourly")
    hourly.add("Morning briefing")
    newcomer = Feed(server, "/new")
    newcomer.add("Evening briefing")
    daemon.write(config(hook.url(), {"hourly": hourly.url}, {"talks": "ceasefire"}, interval="1h"))
    daemon.start()
    daemon.wait_log(polled("hourly"), 15)
    assert daemon.stop() == 0
    assert len(server.hits("/hourly")) == 1

    # restart with one more source: it is due at once, the hourly one is not
    sources = {"hourly": hourly.url, "newcomer": newcomer.url}
    daemon.write(config(hook.url(), sources, {"talks": "ceasefire"}, interval="1h"))
    daemon.start()
    daemon.wait_log(polled("newcomer"), 15)
    assert daemon.stop() == 0  # a poll started with the newcomer's has finished by now
    assert len(server.hits("/new")) == 1
    assert len(server.hits("/hourly")) == 1, "a restart polled a source that was not due"


def test_sigkill_mid_delivery_loses_nothing(
    daemon: Daemon, server: LoopbackServer, tmp_path: Path
) -> None:
    """Kill -9 five times while the feed grows and a slow webhook receives; then let it drain.

    Delivery is at least once: a post in flight when the process dies has reached the webhook
    but was never recorded, so it is sent again after restart. The test counts those kills and
    allows at most one extra arrival for each; everything else must arrive exactly once.
    """
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    feed = Feed(server)
    hook = SlowWebhook(delay=0.4).up()
    growing = threading.Event()

    def grow() -> None:  # one new matching item every 0.6 s, 16 in all (under the rate limit)
        while len(feed.items) < 16 and not growing.wait(0.6):
            feed.add(f"Ceasefire update {len(feed.items) + 1}")

    grower = threading.Thread(target=grow, daemon=True)
    kills_mid_delivery = 0
    try:
        feed.add("Ceasefire update 1")
        daemon.write(config(hook.url(), {"wire": feed.url}, {"talks": "ceasefire"}))
        grower.start()
        for life in range(5):
            daemon.start()
            if life % 2 == 0:  # just after the 1st to 3rd post of this life reaches the webhook
                target = hook.entered + rng.randint(1, 3)
                wait_until(lambda t=target: hook.entered >= t, 20, "deliveries to start")
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # any moment: starting, polling, storing, between or during deliveries
                time.sleep(rng.uniform(0.2, 2.0))
            # in flight, or answered so recently that the daemon may not have recorded it yet
            kills_mid_delivery += hook.busy > 0 or time.monotonic() - hook.last_done < 0.2
            daemon.kill()
        growing.set()
        grower.join(5)

        daemon.start()
        expected = {f"[talks] Ceasefire update {n}" for n in range(1, len(feed.items) + 1)}
        wait_until(lambda: set(titles(hook)) >= expected, 40, "every alert to arrive")
        assert daemon.stop() == 0
        wait_until(lambda: hook.busy == 0, 5, "the webhook to finish")
    finally:
        growing.set()
        hook.down()

    counts = Counter(titles(hook))
    doubled = {t: n for t, n in counts.items() if n > 1}
    print(
        f"\n{len(expected)} alerts, 5 SIGKILLs ({kills_mid_delivery} mid-delivery): "
        f"{len(hook.posts)} posts, doubled: {doubled or 'none'}"
    )
    assert set(counts) == expected  # none lost, nothing unexpected
    assert sum(n - 1 for n in doubled.values()) <= kills_mid_delivery
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as db:
        states = Counter(r[0] for r in db.execute("SELECT status FROM outbox"))
    assert states == {"sent": len(expected)}  # and the outbox knows each was sent, once


def test_only_a_process_alone_on_the_database_may_release_leases(tmp_path: Path) -> None:
    """The rule behind releasing leases at start: nobody else holds the database's lock."""
    database = tmp_path / "data" / "monitor.db"
    first = lock_database(database)
    try:
        assert alone(first)  # nobody else: every lease in the file belongs to a dead process
        second = lock_database(database)  # another user of the file (flock: another open file)
        assert not alone(second) and not alone(first)
        os.close(second)  # ... which exits: the kernel drops its lock
        assert alone(first)
    finally:
        os.close(first)
