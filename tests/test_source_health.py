"""Source health: a source failing past `failing_after` is down (in `sources`, metrics and one
alert per episode through the outbox), and recovers by itself on the next good poll.

Real parts: feeds from the loopback server, a real database (conftest's `database`: a SQLite
file, then PostgreSQL), the real Monitor polling them,
alerts delivered to a real Apprise `json://` webhook receiver. Time past the threshold is passed
to the health check as `now`; polls use the real clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.commands import cli
from monitor.config import loader as config_mod
from monitor.errors import ConfigError
from monitor.service import schedule as schedule
from monitor.service import source_health as source_health
from monitor.service.monitor import Monitor
from tests.conftest import toml_database
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver

T0 = datetime(2026, 2, 3, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(body, encoding="utf-8")
    return path


def monitor_config(
    tmp_path: Path, server: LoopbackServer, hook: str, extra: str, database: str | Path
) -> Path:
    return write_config(
        tmp_path,
        f"""[monitor]
database = {toml_database(database)}
interval = "1m"
{extra}
[channels]
hook = "{hook}"

[[sources]]
name = "wire"
url = "{server.url("/feed")}"
allow_private = true

[[sources]]
name = "listing"
kind = "html"
url = "{server.url("/page")}"
links = "article h2 a"
allow_private = true

[[sources]]
name = "steady"
url = "{server.url("/steady")}"
allow_private = true
""",
    )


GOOD_FEED = rss([Item("a1", "Something happened"), Item("a2", "Something else")])
GOOD_PAGE = b"""<html><body><article><h2><a href="/n/1">One</a></h2></article>
<article><h2><a href="/n/2">Two</a></h2></article></body></html>"""
REDESIGNED_PAGE = b"<html><body><div class='card'><a href='/n/1'>One</a></div></body></html>"


# ---------------------------------------------------------------- the pure rules


def test_down_only_after_failing_past_the_threshold_since_the_last_success() -> None:
    def down(last_success, added, errors, hours):  # type: ignore[no-untyped-def]
        return source_health.down_since(
            last_success=last_success,
            added_at=added,
            consecutive_errors=errors,
            now=T0 + hours * HOUR,
            failing_after=6 * 3600,
        )

    assert down(T0, T0 - 9 * HOUR, 3, 5) is None  # failing, but not for long enough
    assert down(T0, T0 - 9 * HOUR, 3, 6) == T0  # the episode is named by the last success
    assert down(T0, T0 - 9 * HOUR, 0, 30) is None  # last poll fine: an hourly-only feed is ok
    assert down(None, T0, 1, 7) == T0  # never succeeded since it was added 7 h ago
    assert down(None, T0, 1, 2) is None


def test_one_down_and_one_recovery_per_episode() -> None:
    def health(since, recorded, last_success):  # type: ignore[no-untyped-def]
        return source_health.Health(
            "wire", "http://x/", True, since is not None, since, last_success, "boom", None, 4,
            recorded=recorded,
        )  # fmt: skip

    first = source_health.changes([health(T0, None, T0)])
    assert [(c.kind, c.alert, c.record) for c in first] == [("down", True, T0)]
    assert source_health.changes([health(T0, T0, T0)]) == []  # already announced
    back = source_health.changes([health(None, T0, T0 + 8 * HOUR)])
    assert [(c.kind, c.alert, c.record) for c in back] == [("up", True, None)]
    # a threshold raised by a reload ends the episode without a "recovered" lie
    quiet = source_health.changes([health(None, T0, T0)])
    assert [(c.kind, c.alert) for c in quiet] == [("up", False)]


def test_a_possible_gap_halves_the_interval_with_a_floor() -> None:
    assert schedule.after_success(600, T0) == T0 + timedelta(seconds=600)
    assert schedule.after_success(600, T0, gap=True) == T0 + timedelta(seconds=300)
    assert schedule.after_success(40, T0, gap=True) == T0 + timedelta(seconds=30)
    assert schedule.after_success(10, T0, gap=True) == T0 + timedelta(seconds=10)  # never later


def test_health_channel_must_be_a_defined_channel(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[monitor]\nfailing_after = "2h"\nhealth_channel = "ops"\n'
        'retention = "30d"\nhistory_retention = "7d"\n\n[channels]\nopz = "json://127.0.0.1:9/"\n',
    )
    with pytest.raises(ConfigError) as info:
        config_mod.load(path)
    problems = "\n".join(info.value.problems)
    assert f'{path}:3: monitor.health_channel: channel "ops" is not defined' in problems
    assert 'did you mean "opz"' in problems
    assert f"{path}:5: monitor.history_retention: must be at least `retention`" in problems
    ok = write_config(tmp_path, '[monitor]\nhealth_channel = "ops"\n[channels]\nops = "json://h/"')
    settings = config_mod.load(ok).settings
    assert (settings.health_channel, settings.failing_after) == ("ops", 6 * 3600.0)
    assert settings.history_retention == 365 * 86400.0


# ---------------------------------------------------------------- end to end


def test_failing_sources_go_down_alert_once_and_recover_by_themselves(
    tmp_path: Path, server: LoopbackServer, database: str | Path
) -> None:
    feed_reply = {"now": Reply(status=500, body=b"internal error")}
    page_reply = {"now": Reply(body=REDESIGNED_PAGE, headers={"Content-Type": "text/html"})}
    server.route("/feed", lambda _seen: feed_reply["now"])
    server.route("/page", lambda _seen: page_reply["now"])
    server.route("/steady", Reply(body=GOOD_FEED, headers={"Content-Type": "application/rss+xml"}))
    with WebhookReceiver() as hook:
        extra = 'health_channel = "hook"\nfailing_after = "2s"\n'
        cfg = config_mod.load(monitor_config(tmp_path, server, hook.url(), extra, database))

        async def scenario() -> dict:
            started = datetime.now(UTC)
            monitor = Monitor(cfg)
            seen: dict = {}
            try:
                for _ in range(3):
                    await monitor.poll_everything()
                early = monitor.check_sources(started + timedelta(seconds=1))
                seen["early"] = [h.name for h in early if h.down]
                seen["early_outbox"] = monitor.store.outbox_depth()
                await asyncio.sleep(2.1)  # past failing_after since the sources were added
                await monitor.poll_everything()  # still failing
                down = monitor.check_sources()
                monitor.check_sources()  # the next minute's check says nothing new
                seen["down"] = {h.name: h for h in down if h.down}
                seen["gauge"] = monitor.metrics.render().decode()
                seen["drain1"] = await monitor.drain()
                # the outage ends: one good poll is enough
                feed_reply["now"] = Reply(
                    body=GOOD_FEED, headers={"Content-Type": "application/rss+xml"}
                )
                page_reply["now"] = Reply(body=GOOD_PAGE, headers={"Content-Type": "text/html"})
                await monitor.poll_everything()
                after = monitor.check_sources()
                monitor.check_sources()
                seen["after"] = [h.name for h in after if h.down]
                seen["gauge_after"] = monitor.metrics.render().decode()
                seen["drain2"] = await monitor.drain()
            finally:
                await monitor.close()
            return seen

        seen = asyncio.run(scenario())
        posts = hook.wait_for(4)
    assert seen["early"] == [] and seen["early_outbox"] == 0
    assert sorted(seen["down"]) == ["listing", "wire"]
    assert "500" in (seen["down"]["wire"].last_error or "")
    # a redesigned page (its `links` selector finds nothing) is the same kind of failure
    assert "article h2 a" in (seen["down"]["listing"].last_error or "")
    gauge = f'news_monitor_sources_failing{{worker="{cfg.settings.worker}"}}'
    assert f"{gauge} 2.0" in seen["gauge"]
    assert f"{gauge} 0.0" in seen["gauge_after"]
    assert seen["after"] == []
    assert (seen["drain1"].sent, seen["drain2"].sent) == (2, 2)  # a rule not in [[rules]]
    titles = sorted(p.payload["title"] for p in posts)
    assert titles == [
        "news-monitor: source listing is down",
        "news-monitor: source listing recovered",
        "news-monitor: source wire is down",
        "news-monitor: source wire recovered",
    ]
    wire_down = next(
        p.payload["message"] for p in posts if p.payload["title"].endswith("e is down")
    )
    assert "500" in wire_down and "4 failures in a row" in wire_down


def test_sources_command_shows_down_sources_with_since_and_last_error(
    tmp_path: Path, server: LoopbackServer, database: str | Path
) -> None:
    server.route("/feed", Reply(status=500, body=b"oops"))
    server.route("/page", Reply(body=REDESIGNED_PAGE, headers={"Content-Type": "text/html"}))
    server.route("/steady", Reply(body=GOOD_FEED, headers={"Content-Type": "application/rss+xml"}))
    path = monitor_config(
        tmp_path, server, "json://127.0.0.1:9/", 'failing_after = "1s"\n', database
    )
    cfg = config_mod.load(path)

    async def poll() -> None:
        monitor = Monitor(cfg)
        try:
            await monitor.poll_everything()
        finally:
            await monitor.close()

    asyncio.run(poll())
    asyncio.run(asyncio.sleep(1.1))  # past failing_after of 1 s since the sources were added
    result = CliRunner().invoke(cli, ["--config", str(path), "sources"])
    assert result.exit_code == 0, result.output
    below = result.output.split("down (failing, no success for over 1s):", 1)[1]
    lines = [line for line in below.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("  listing: never polled OK; added ")
    assert "article h2 a" in lines[0]
    assert lines[1].startswith("  wire: never polled OK; added ") and "500" in lines[1]
    assert "steady" not in below
