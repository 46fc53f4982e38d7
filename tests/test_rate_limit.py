"""The rate limit per channel (issue 14, item 2): `[channels.NAME] rate_limit = "2/10m"`, a
`[monitor] rate_limit` default, "none" for no limit, and the short `NAME = "url"` form kept.

End to end: a feed on 127.0.0.1, `Monitor`, a real database (conftest's `database`: a SQLite
file, then PostgreSQL) and real JSON webhooks, time from the test clock. What is over a
channel's limit is held, not lost, and goes out once the window lets it through; another
channel is not held back by it. The config's mistakes are reported with file, line and how to
write the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.commands import cli
from monitor.config.loader import load
from monitor.config.tables import ChannelTable
from monitor.config.values import show_rate_limit, valid_rate_limit
from monitor.errors import ConfigError
from tests.conftest import toml_database
from tests.receivers import WebhookReceiver
from tests.test_delivery import TALKS, distinct_items, drain, poll, running, sent, serve
from tests.test_docs import README, first_column, section


@pytest.fixture
def chat() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def free() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_text(
    tmp_path: Path, feed: str, channels: str, monitor: str = "", database: str | Path | None = None
) -> str:
    """A config with these `[channels...]` lines, and one rule sending to every channel; on
    `database` (else a SQLite file in `tmp_path`)."""
    names = re.findall(r"^\[channels\.([\w-]+)\]|^([\w-]+) = \"", channels, re.MULTILINE)
    listed = [t or s for t, s in names if (t or s) not in ChannelTable.model_fields]
    rule = {"name": "talks", "query": TALKS, "alert": "article", "channels": listed}
    return (
        f"[monitor]\ndatabase = {toml_database(database or tmp_path / 'monitor.db')}\n"
        f'timezone = "Europe/Rome"\n{monitor}\n\n'
        f'[[sources]]\nname = "corriere-esteri"\nurl = "{feed}"\n\n[[rules]]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rule.items())
        + f"\n{channels}"
    )


def titles(receiver: WebhookReceiver) -> list[str]:
    return sorted(p.payload["title"] for p in receiver.posts)


async def test_over_the_limit_waits_for_the_window_and_nothing_is_lost(
    tmp_path, server, clock, chat, free, database
):
    items = distinct_items(5)
    channels = (
        f'[channels.chat]\nurl = "{chat.url()}"\nrate_limit = "2/10m"\n\n'
        f'[channels.free]\nurl = "{free.url()}"\nrate_limit = "none"\n'
    )
    path = write(tmp_path, config_text(tmp_path, serve(server, items), channels, "", database))
    config = load(path, env={})
    assert dict(config.rate_limits) == {"chat": (2, 600.0), "free": None}
    expected = sorted(f"[talks] {i.title}" for i in items)
    async with running(config, clock) as monitor:
        await poll(monitor)
        first = await drain(monitor)
        assert (first.sent, first.postponed) == (2 + 5, 3)
        assert len(chat.posts) == 2 and titles(free) == expected
        held = CliRunner().invoke(
            cli, ["--config", str(path), "alerts", "--status", "pending"], obj=clock
        )
        assert held.exit_code == 0 and held.output.count(" pending ") == 3
        clock.advance(seconds=599)
        assert await sent(monitor) == 0
        clock.advance(seconds=1)  # ten minutes after the first two
        assert await sent(monitor) == 2
        clock.advance(minutes=10)
        assert await sent(monitor) == 1
        clock.advance(hours=1)
        assert await sent(monitor) == 0
        rows = monitor.store.recent_alerts(limit=100)
    assert titles(chat) == expected  # every alert, once
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows)


async def test_the_monitor_default_applies_to_the_short_form(
    tmp_path, server, clock, chat, database
):
    channels = f'[channels]\nchat = "{chat.url()}"\n'
    feed = serve(server, distinct_items(3))
    text = config_text(tmp_path, feed, channels, 'rate_limit = "1/1h"', database)
    path = write(tmp_path, text)
    config = load(path, env={})
    assert dict(config.rate_limits) == {"chat": (1, 3600.0)}
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        clock.advance(minutes=59)
        assert await sent(monitor) == 0
        clock.advance(minutes=1)
        assert await sent(monitor) == 1
    check = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert check.exit_code == 0 and "channel chat: " in check.output
    assert "(rate limit 1/1h)" in check.output


def test_without_any_rate_limit_setting_the_old_default_holds(tmp_path):
    text = '[channels]\nchat = "json://127.0.0.1:9/x"\n\n[channels.desk]\nurl = "json://127.0.0.1:9/y"\n'
    config = load(write(tmp_path, text), env={})
    assert dict(config.channels) == {"chat": "json://127.0.0.1:9/x", "desk": "json://127.0.0.1:9/y"}
    assert dict(config.rate_limits) == {"chat": (20, 600.0), "desk": (20, 600.0)}


@pytest.mark.parametrize(
    ("value", "limit"),
    [('"20/10m"', (20, 600.0)), ('"1 / 30s"', (1, 30.0)), ('"100/1h30m"', (100, 5400.0)),
     ('"none"', None), ('"0"', None), ("0", None), ('"None"', None)],
)  # fmt: skip
def test_rate_limit_values(tmp_path, value, limit):
    text = f'[channels.chat]\nurl = "json://127.0.0.1:9/x"\nrate_limit = {value}\n'
    assert load(write(tmp_path, text), env={}).rate_limits["chat"] == limit


def test_every_mistake_is_reported_with_its_line(tmp_path):
    text = (
        "[monitor]\n"  # 1
        'rate_limit = "fast"\n'  # 2
        "\n"  # 3
        "[channels]\n"  # 4
        'chat = "json://127.0.0.1:9/x"\n'  # 5
        "\n"  # 6
        "[channels.desk]\n"  # 7
        'url = "json://127.0.0.1:9/y"\n'  # 8
        'rate_limit = "20 per 10m"\n'  # 9
        "ratelimit = 3\n"  # 10
        "\n"  # 11
        "[channels.room]\n"  # 12
        'rate_limit = "0/5m"\n'  # 13
        "\n"  # 14
        "[channels.wall]\n"  # 15
        'url = "json://127.0.0.1:9/z"\n'  # 16
        'rate_limit = "5/10x"\n'  # 17
        "\n"  # 18
        "[channels.odd]\n"  # 19
        'url = "ftp2://127.0.0.1/z"\n'  # 20
        "rate_limit = 20\n"  # 21
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    how = 'write messages/duration, e.g. "20/10m", or "none" for no limit'
    assert caught.value.problems == [
        f'{path}:2: monitor.rate_limit: "fast" is not a rate limit: {how}',
        f'{path}:9: channels.desk.rate_limit: "20 per 10m" is not a rate limit: {how}',
        f'{path}:10: channels.desk.ratelimit: unknown key "ratelimit" (did you mean "rate_limit"?)',
        f"{path}:12: channels.room.url: is required but missing",
        f'{path}:13: channels.room.rate_limit: "0/5m" would never send anything: {how}',
        f'{path}:17: channels.wall.rate_limit: "5/10x" is not a rate limit: "10x" is not a '
        'duration: write "30s", "5m", "2h", "1d" or "1h30m"',
        f'{path}:20: channels.odd.url: unknown Apprise scheme "ftp2://"',
        f"{path}:21: channels.odd.rate_limit: must be a rate limit in quotes ({how}), "
        "not number 20",
    ]


def test_an_inline_table_is_the_same_and_reports_its_line(tmp_path):
    text = '[channels]\nchat = { url = "json://127.0.0.1:9/x", rate_limit = "3/1m" }\n'
    assert load(write(tmp_path, text), env={}).rate_limits["chat"] == (3, 60.0)
    path = write(tmp_path, '[channels]\n\nchat = { url = "json://127.0.0.1:9/x", rate = 3 }\n')
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert caught.value.problems[0].startswith(f'{path}:3: channels.chat.rate: unknown key "rate"')


@pytest.mark.parametrize("limit", [(20, 600.0), (1, 30.0), (5, 5400.0), (3, 86400.0), None])
def test_check_shows_a_limit_as_it_is_written(limit):
    assert valid_rate_limit(show_rate_limit(limit)) == limit


def test_readme_documents_the_channel_table_keys():
    keys = first_column(section(README, "### `[channels]`"))
    assert set(keys) == set(ChannelTable.model_fields)
    assert "rate_limit" in first_column(section(README, "### `[monitor]`"))
