"""Health means "polls are succeeding": `once`'s exit code, `sources --check` (the Docker
HEALTHCHECK), and a feed served cut off mid-item, which is read as far as it goes but reported
as malformed, counted in the metrics, and down once it stays malformed past `failing_after`.

Real parts: feeds from the loopback server, a real SQLite file, the real CLI as a subprocess
(`once`, `sources`, `sources --check`), and the real Monitor for the metrics and the health
alerts, delivered to a real Apprise `json://` webhook receiver.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config import loader as config_mod
from monitor.service.monitor import Monitor
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
RSS = {"Content-Type": "application/rss+xml"}
FEED = rss([Item("a", "Alpha talks"), Item("b", "Beta talks"), Item("c", "Gamma talks")])
CUT_FEED = FEED[: FEED.index(b"Gamma") + 3]  # the connection dropped inside the third item


def write_config(tmp_path: Path, server: LoopbackServer, names: list[str], extra: str = "") -> Path:
    path = tmp_path / "monitor.toml"
    text = f'[monitor]\ndatabase = "{tmp_path / "monitor.db"}"\n{extra}\n'
    for name in names:
        text += f'[[sources]]\nname = "{name}"\nurl = "{server.url("/" + name)}"\n'
        text += "allow_private = true\n\n"
    path.write_text(text, encoding="utf-8")
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "monitor", "--config", str(config), *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)


def titles(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        return sorted(row[0] for row in db.execute("SELECT title FROM articles"))


def status(sources_output: str, name: str) -> str:
    """The status column of one source in the `sources` table."""
    row = next(line for line in sources_output.splitlines() if line.startswith(name + " "))
    return row.split()[1]


def test_once_fails_only_when_no_source_could_be_polled(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.route("/wire", Reply(status=500, body=b"boom"))
    server.route("/agency", Reply(status=503, body=b"busy"))
    config = write_config(tmp_path, server, ["wire", "agency"])

    every = cli(config, "once")
    assert every.returncode == 1, every.stderr
    assert "2 sources: 2 error" in every.stderr and "HTTP 500" in every.stderr
    assert "no source could be polled" in every.stderr
    assert "Traceback" not in every.stderr

    server.route("/wire", Reply(body=FEED, headers=RSS))
    some = cli(config, "once")
    assert some.returncode == 0, some.stderr  # one failure among good polls is routine
    assert "2 sources: 1 new, 1 error; 3 new articles" in some.stderr
    assert "agency:" in some.stderr and "503" in some.stderr


def test_sources_check_is_red_while_every_source_fails_and_green_once_one_polls_ok(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.route("/wire", Reply(status=500, body=b"boom"))
    server.route("/agency", Reply(status=404, body=b"gone"))
    config = write_config(tmp_path, server, ["wire", "agency"])
    assert cli(config, "once").returncode == 1

    red = cli(config, "sources", "--check")  # the Docker HEALTHCHECK
    assert red.returncode == 1, red.stdout + red.stderr
    assert "wire: never polled OK" in red.stderr and "agency: never polled OK" in red.stderr

    server.route("/agency", Reply(body=FEED, headers=RSS))
    assert cli(config, "once").returncode == 0
    green = cli(config, "sources", "--check")
    assert green.returncode == 0, green.stderr
    assert green.stdout.startswith("ok: 1 of 2 sources polled OK")


@pytest.mark.slow
def test_a_cut_off_feed_keeps_its_items_but_is_malformed_and_goes_down(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.route("/wire", Reply(body=CUT_FEED, headers=RSS))
    config = write_config(tmp_path, server, ["wire"], 'failing_after = "8s"')
    started = time.monotonic()  # before the source is added, by the first `once`
    first = cli(config, "once")
    assert first.returncode == 0, first.stderr
    assert "wire: malformed: line 7: no element found" in first.stderr
    assert cli(config, "sources", "--check").returncode == 0  # not yet past failing_after
    table = cli(config, "sources")
    assert table.returncode == 0, table.stderr
    assert status(table.stdout, "wire") == "malformed"
    assert "wire: malformed: line 7: no element found (last well-formed: never)" in table.stdout
    assert cli(config, "once").returncode == 0  # the same body again: still malformed
    assert titles(tmp_path) == ["Alpha talks", "Beta talks"]  # what could be read is kept

    time.sleep(max(0.0, 8.3 - (time.monotonic() - started)))
    assert cli(config, "once").returncode == 0
    table = cli(config, "sources")
    assert status(table.stdout, "wire") == "down"
    below = table.stdout.split("down (failing, no success for over 8s):", 1)[1]
    assert "wire: never a well-formed feed; added " in below
    assert "malformed: line 7: no element found" in below
    check = cli(config, "sources", "--check")
    assert check.returncode == 1 and "wire: down (malformed: line 7" in check.stderr

    server.route("/wire", Reply(body=FEED, headers=RSS))  # the feed is whole again
    assert cli(config, "once").returncode == 0
    table = cli(config, "sources")
    assert status(table.stdout, "wire") == "ok" and "malformed" not in table.stdout
    assert cli(config, "sources", "--check").returncode == 0
    assert titles(tmp_path) == ["Alpha talks", "Beta talks", "Gamma talks"]


def test_metrics_count_sources_serving_a_malformed_feed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    replies = {"wire": Reply(body=CUT_FEED, headers=RSS)}
    server.route("/wire", lambda _seen: replies["wire"])
    server.route("/agency", Reply(body=FEED, headers=RSS))
    cfg = config_mod.load(write_config(tmp_path, server, ["wire", "agency"]))

    async def scrape() -> list[str]:
        monitor = Monitor(cfg)
        seen = []
        try:
            for _ in range(2):
                await monitor.poll_everything()
                monitor.check_sources()
                seen.append(monitor.metrics.render().decode())
                replies["wire"] = Reply(body=FEED, headers=RSS)
        finally:
            await monitor.close()
        return seen

    broken, fixed = asyncio.run(scrape())
    gauge = f'news_monitor_sources_malformed{{worker="{cfg.settings.worker}"}}'
    assert f"{gauge} 1.0" in broken.splitlines()
    assert f"{gauge} 0.0" in fixed.splitlines()


def test_a_feed_malformed_past_failing_after_is_announced_down_then_recovered(
    tmp_path: Path, server: LoopbackServer
) -> None:
    replies = {"wire": Reply(body=CUT_FEED, headers=RSS)}
    server.route("/wire", lambda _seen: replies["wire"])
    with WebhookReceiver() as hook:
        extra = f'failing_after = "1s"\nhealth_channel = "ops"\n[channels]\nops = "{hook.url()}"'
        cfg = config_mod.load(write_config(tmp_path, server, ["wire"], extra))

        async def scenario() -> None:
            monitor = Monitor(cfg)
            try:
                await monitor.poll_everything()
                assert not any(h.down for h in monitor.check_sources())  # not for long yet
                await asyncio.sleep(1.1)
                await monitor.poll_everything()  # the same cut-off body
                assert [h.name for h in monitor.check_sources() if h.down] == ["wire"]
                await monitor.drain()
                replies["wire"] = Reply(body=FEED, headers=RSS)
                await monitor.poll_everything()
                assert not any(h.down for h in monitor.check_sources())
                await monitor.drain()
            finally:
                await monitor.close()

        asyncio.run(scenario())
        posts = [p.payload for p in hook.wait_for(2, timeout=10)]
    assert [p["title"] for p in posts] == [
        "news-monitor: source wire is down",
        "news-monitor: source wire recovered",
    ]
    assert "wire is down: never well-formed, added " in posts[0]["message"]
    assert "(its feed is malformed)" in posts[0]["message"]
    assert "Last error: malformed: line 7: no element found" in posts[0]["message"]
