"""No flood on a source's first poll (issue 14, item 1), through the real `once` command.

A feed on 127.0.0.1 holds a 2017 item, two from 2022, one with no date and a fresh one; every
item matches the rule, and alerts go to a real JSON webhook. What a user notices: the first
poll sends only the fresh item, yet every item is stored and found by `search`; a new item on
a later poll is sent once; an undated item that appears later is sent; `backfill = true`
sends the backlog; `max_age` is the rule's, else the source's, else [monitor]'s; an old item
held on the first poll does not open its story's alert, the first fresh report of it does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from tests.conftest import T0, Clock, toml_database
from tests.loopback import LoopbackServer, Reply
from tests.receivers import WebhookReceiver

FRESH = ("fresh", "Kyiv council approves new bridge budget", T0 - timedelta(minutes=10))
BACKLOG = [
    ("old2017", "Kyiv marathon draws a record crowd", datetime(2017, 5, 14, 9, tzinfo=UTC)),
    ("old2022a", "Kyiv metro reopens after the winter storm", datetime(2022, 6, 1, tzinfo=UTC)),
    ("old2022b", "Kyiv opera season opens with a new director", datetime(2022, 9, 3, tzinfo=UTC)),
    ("undated", "Kyiv zoo welcomes two snow leopards", None),
]
FIRST = [*BACKLOG, FRESH]


def feed(items: list[tuple[str, str, datetime | None]]) -> bytes:
    """RSS 2.0 whose items carry a pubDate only when they have a date."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>',
             "<title>Kyiv city news</title><link>https://kyiv.example.org/</link>",
             "<language>en</language><description>test</description>"]  # fmt: skip
    for guid, title, when in items:
        date = f"<pubDate>{format_datetime(when)}</pubDate>" if when else ""
        parts.append(
            f"<item><title>{escape(title)}</title><link>https://kyiv.example.org/{guid}</link>"
            f'<guid isPermaLink="false">{guid}</guid><description>{escape(title)}.</description>'
            f"{date}</item>"
        )
    return "".join([*parts, "</channel></rss>"]).encode()


class City:
    """One feed, one config, one database (conftest's `database`: either backend; a SQLite
    file in `tmp_path` if none); `once` and the other commands run through the CLI."""

    def __init__(
        self,
        tmp_path: Path,
        server: LoopbackServer,
        hook: WebhookReceiver,
        database: str | Path | None = None,
    ) -> None:
        self.tmp_path, self.server, self.hook = tmp_path, server, hook
        self.database = database or tmp_path / "monitor.db"
        self.config = tmp_path / "monitor.toml"

    def serve(self, items: list[tuple[str, str, datetime | None]]) -> None:
        self.server.route("/kyiv.xml", Reply(200, feed(items), {"Content-Type": "text/xml"}))

    def write(self, *, monitor: str = "", source: str = "", rules: str | None = None) -> None:
        if rules is None:
            rules = rule("city", "kyiv")
        self.config.write_text(
            f"[monitor]\ndatabase = {toml_database(self.database)}\n{monitor}\n"
            f'[channels]\nhook = "{self.hook.url()}"\nother = "{self.hook.url("/other")}"\n'
            f'[[sources]]\nname = "kyiv"\nurl = "{self.server.url("/kyiv.xml")}"\n{source}\n'
            f"{rules}",
            encoding="utf-8",
        )

    def run(self, clock: Clock, *args: str) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], obj=clock)
        assert result.exit_code == 0, result.output
        return result

    def sent(self, path: str = "/hook") -> list[str]:
        """What arrived at the webhook `path`, in order: each alert's headline."""
        return [p.payload["title"] for p in self.hook.posts if p.path == path]


def rule(name: str, query: str, extra: str = "", channel: str = "hook") -> str:
    return (f'[[rules]]\nname = "{name}"\nquery = "{query}"\nalert = "article"\n'
            f'channels = ["{channel}"]\n{extra}\n')  # fmt: skip


def headlines(sent: list[str]) -> set[str]:
    """The article titles among alert headlines ("[rule] title")."""
    titles = {title for _, title, _ in [*FIRST, *LATER]}
    return {t for t in titles for s in sent if s.endswith(t)}


LATER = [
    ("later", "Kyiv airport plans summer flights", T0 + timedelta(minutes=25)),
    ("later-undated", "Kyiv library digitises rare maps", None),
]


def test_first_poll_sends_only_the_fresh_item_and_stores_all(tmp_path, server, hook, database):
    city, clock = City(tmp_path, server, hook, database), Clock()
    city.serve(FIRST)
    city.write()
    first = city.run(clock, "once")
    assert city.sent() == [f"[city] {FRESH[1]}"]
    assert "5 new articles, 1 matches" in first.output
    assert "matches held, not alerted: 3 older than max_age, 1 undated" in first.output

    found = city.run(clock, "search", "kyiv", "--limit", "50").output
    for _, title, _ in FIRST:  # stored and searchable, though never sent
        assert title in found

    clock.advance(minutes=30)  # a new item: sent once, however often the feed is polled
    city.serve([*FIRST, LATER[0]])
    city.run(clock, "once")
    clock.advance(minutes=5)
    city.run(clock, "once")
    assert city.sent() == [f"[city] {FRESH[1]}", f"[city] {LATER[0][1]}"]

    clock.advance(minutes=30)  # an undated item after the first poll: published when seen
    city.serve([*FIRST, *LATER])
    city.run(clock, "once")
    assert city.sent()[-1] == f"[city] {LATER[1][1]}" and len(city.sent()) == 3


@pytest.mark.parametrize(
    ("monitor", "source", "extra", "alerted"),
    [
        ("", "", "", {FRESH[1]}),  # [monitor]'s default: 2 days
        ('max_age = "1500d"', "", "", {FRESH[1], BACKLOG[1][1], BACKLOG[2][1]}),
        ('max_age = "1500d"', 'max_age = "1h"', "", {FRESH[1]}),  # the source's wins
        ("", 'max_age = "1500d"', "", {FRESH[1], BACKLOG[1][1], BACKLOG[2][1]}),
        ("", 'max_age = "1500d"', 'max_age = "1h"', {FRESH[1]}),  # the rule's wins
        ('max_age = "1h"', "", 'max_age = "3300d"', {t for _, t, d in FIRST if d}),
        ("", "", "backfill = true", {t for _, t, _ in FIRST}),  # undated backlog too
    ],
    ids=str.split(
        "default monitor source-over-monitor source rule-over-source rule-over-monitor backfill"
    ),  # fmt: skip
)
def test_max_age_is_the_rules_else_the_sources_else_monitors(
    tmp_path, server, hook, database, monitor, source, extra, alerted
):
    city, clock = City(tmp_path, server, hook, database), Clock()
    city.serve(FIRST)
    city.write(monitor=monitor, source=source, rules=rule("city", "kyiv", extra))
    city.run(clock, "once")
    assert headlines(city.sent()) == alerted
    assert len(city.sent()) == len(alerted)


def test_each_rule_judges_age_by_its_own_max_age(tmp_path, server, hook, database):
    """Two rules on one poll: the same 2022 item is too old for one and news for the other."""
    city, clock = City(tmp_path, server, hook, database), Clock()
    city.serve(FIRST)
    rules = rule("recent", "kyiv") + rule("archive", "kyiv", 'max_age = "1500d"', "other")
    city.write(rules=rules)
    city.run(clock, "once")
    assert headlines(city.sent("/hook")) == {FRESH[1]}
    assert headlines(city.sent("/other")) == {FRESH[1], BACKLOG[1][1], BACKLOG[2][1]}


def test_an_old_report_held_back_does_not_open_its_storys_alert(tmp_path, server, hook, database):
    """An old report of a story is held; the story's first fresh report still alerts, as the
    story's opening: had the held one been recorded as the story's alert, the fresh one would
    be a follow-up inside the cooldown, and say nothing."""
    city, clock = City(tmp_path, server, hook, database), Clock()
    old = ("bridge-old", "Kyiv floods damage the Paton bridge; engineers inspect it",
           T0 - timedelta(days=3))  # fmt: skip
    city.serve([old])
    story_rule = rule("city", "kyiv").replace('alert = "article"', 'alert = "story"')
    city.write(rules=story_rule)
    city.run(clock, "once")
    assert city.sent() == []

    clock.advance(minutes=10)
    fresh = ("bridge-new", "Engineers close the Paton bridge in Kyiv after flood damage",
             T0 + timedelta(minutes=5))  # fmt: skip
    city.serve([old, fresh])
    city.run(clock, "once")
    stories = city.run(clock, "stories").output.splitlines()
    assert len(stories) == 1, stories  # one story: the held report and the fresh one
    assert city.sent() == [f"[city] {fresh[1]}"]


def test_contradictions_are_config_errors_with_their_line(tmp_path, server, hook):
    city = City(tmp_path, server, hook)
    city.write(
        source='interval = "1d"\nmax_age = "1d"',
        rules=rule("city", "kyiv", 'backfill = true\nmax_age = "3d"'),
    )
    result = CliRunner().invoke(cli, ["--config", str(city.config), "check"])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    text = city.config.read_text().splitlines()
    source_line = text.index('max_age = "1d"') + 1
    rule_line = text.index('max_age = "3d"') + 1
    assert (
        f"{city.config}:{source_line}: sources[0].max_age: 1d is less than twice the interval "
        'of source "kyiv" (1d): its items would be too old to alert by the time they are seen'
    ) in lines
    assert any(line.startswith(f"{city.config}:{rule_line}: ") and "backfill" in line
               for line in lines)  # fmt: skip


def test_a_slow_source_gets_a_max_age_of_twice_its_interval_unless_told(tmp_path, server, hook):
    """Nobody wrote max_age: a source polled every 3 days keeps what it first sees 6 days."""
    from monitor.config.loader import load

    city = City(tmp_path, server, hook)
    city.write(source='interval = "3d"')
    assert load(city.config, env={}).sources[0].max_age == 6 * 86400
    city.write(monitor='max_age = "7d"', source='interval = "3d"')
    assert load(city.config, env={}).sources[0].max_age == 7 * 86400
    city.write()
    assert load(city.config, env={}).sources[0].max_age == 2 * 86400


def test_the_documented_default_is_the_loaders():
    from monitor.config.tables import MonitorTable

    assert MonitorTable().max_age == 2 * 86400
    assert json.dumps(MonitorTable.model_fields["max_age"].default) == "172800.0"


async def test_held_matches_are_counted_in_the_metrics_by_reason(tmp_path, server, hook, database):
    """/metrics shows what was held and why, so a quiet channel is explained, not a mystery."""
    from monitor.config.loader import load
    from monitor.service.monitor import Monitor

    city, clock = City(tmp_path, server, hook, database), Clock()
    city.serve(FIRST)
    city.write()
    monitor = Monitor(load(city.config), clock=clock)
    try:
        await monitor.poll_everything()
    finally:
        await monitor.close()
    page, worker = monitor.metrics.render().decode(), monitor.metrics.worker
    assert f'news_monitor_matches_held_total{{reason="old",worker="{worker}"}} 3.0' in page
    assert f'news_monitor_matches_held_total{{reason="backlog",worker="{worker}"}} 1.0' in page
    assert f'news_monitor_matches_held_total{{reason="muted",worker="{worker}"}} 0.0' in page
