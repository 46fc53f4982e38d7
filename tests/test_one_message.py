"""One message per article and channel (issue 14, item 3), end to end: a feed on 127.0.0.1
polled by `Monitor`, a real database (conftest's `database`: a SQLite file, then PostgreSQL),
alerts drained to real JSON webhooks; assertions on what ARRIVED, and on what
`news-monitor alerts` lists.

Two rules matching one article send one message per channel, naming both rules and their
terms. When the rules disagree on timing, the message goes at the earliest time either allows
(an immediate rule beats a digest, an urgent rule beats quiet hours), and a digest counts the
article once. A rule matching an article later, after it went out, sends nothing more there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from monitor.cli.commands import cli
from tests.conftest import Clock
from tests.feeds import Item
from tests.receivers import WebhookReceiver
from tests.test_delivery import configure, drain, poll, running, sent, serve
from tests.test_stories import REWRITE, seed_item

TALKS = "kyiv AND (talks OR ceasefire)"
ABU_DHABI = '"abu dhabi"'
BOTH = Item("b1", "Kyiv and Moscow resume talks in Abu Dhabi")
TALKS_ONLY = Item("t1", "Kyiv ceasefire talks stall again")
ABU_ONLY = Item("d1", "Abu Dhabi hosts a trade fair")
UNRELATED = Item("u1", "Milano, chiude la metro M2 per lavori")


@pytest.fixture
def desk() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def rule(name: str, query: str, *channels: str, **extra: object) -> dict:
    return {"name": name, "query": query, "alert": "article", "channels": list(channels)} | extra


def titles(receiver: WebhookReceiver) -> list[str]:
    return sorted(p.payload["title"] for p in receiver.posts)


def cli_alerts(tmp_path, clock: Clock, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "monitor.toml"), "alerts", *args], obj=clock
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_two_rules_one_article_one_channel_send_one_message_naming_both(
    tmp_path, server, clock, hook, database
):
    rules = [rule("talks", TALKS, "hook"), rule("abu-dhabi", ABU_DHABI, "hook")]
    feed = serve(server, [BOTH, TALKS_ONLY, ABU_ONLY, UNRELATED])
    config = configure(tmp_path, feed, {"hook": hook.url()}, rules, database=str(database))
    async with running(config, clock) as monitor:
        assert len((await poll(monitor)).found) == 4  # four matches ...
        assert await sent(monitor) == 3  # ... three articles, three messages
        clock.advance(hours=1)
        assert await sent(monitor) == 0
    assert titles(hook) == [
        "[abu-dhabi] Abu Dhabi hosts a trade fair",
        "[talks, abu-dhabi] Kyiv and Moscow resume talks in Abu Dhabi",
        "[talks] Kyiv ceasefire talks stall again",
    ]
    [both] = [p.payload["message"] for p in hook.posts if "resume talks" in p.payload["title"]]
    why = [line for line in both.splitlines() if line.startswith("Rule: ")]
    assert why == ["Rule: talks · Matched: kyiv, talks", 'Rule: abu-dhabi · Matched: "abu dhabi"']
    assert both.count("Kyiv and Moscow resume talks in Abu Dhabi") == 1

    listing = cli_alerts(tmp_path, clock, "--status", "sent")
    [row] = [line for line in listing.splitlines() if "resume talks" in line]
    assert "talks, abu-dhabi" in row and "[talks" not in row  # rules in their column, once


async def test_two_channels_get_one_message_each_naming_the_rules_sent_there(
    tmp_path, server, clock, hook, desk, database
):
    rules = [rule("talks", TALKS, "hook", "desk"), rule("abu-dhabi", ABU_DHABI, "hook")]
    config = configure(
        tmp_path,
        serve(server, [BOTH]),
        {"hook": hook.url(), "desk": desk.url()},
        rules,
        database=str(database),
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 2
    assert titles(hook) == ["[talks, abu-dhabi] Kyiv and Moscow resume talks in Abu Dhabi"]
    assert titles(desk) == ["[talks] Kyiv and Moscow resume talks in Abu Dhabi"]
    assert "abu-dhabi" not in desk.posts[0].payload["message"]


async def test_a_rule_matching_later_does_not_send_the_article_again(
    tmp_path, server, clock, hook, database
):
    """An edit makes a second rule match an article already sent on the channel: nothing
    more goes there (the match is recorded all the same)."""
    rules = [rule("talks", TALKS, "hook"), rule("abu-dhabi", ABU_DHABI, "hook")]
    before = Item("e1", "Kyiv ceasefire talks resume")
    config = configure(
        tmp_path, serve(server, [before]), {"hook": hook.url()}, rules, database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        clock.advance(minutes=10)
        serve(server, [Item("e1", "Kyiv ceasefire talks resume in Abu Dhabi")])
        edited = await poll(monitor)
        assert [f.match.rule for f in edited.found] == ["abu-dhabi"]
        clock.advance(minutes=10)
        assert await sent(monitor) == 0
    assert titles(hook) == ["[talks] Kyiv ceasefire talks resume"]


async def test_an_immediate_rule_sends_at_once_and_the_digest_counts_the_article_once(
    tmp_path, server, clock, hook, database
):
    """`morning` (a digest at 08:00) and `talks` (immediate) both match BOTH; `morning` also
    matches ABU_ONLY. BOTH goes at once naming both rules; the digest lists ABU_ONLY alone."""
    rules = [
        rule("morning", ABU_DHABI, "hook", digest="0 8 * * *"),
        rule("talks", TALKS, "hook"),
    ]
    config = configure(
        tmp_path,
        serve(server, [BOTH, ABU_ONLY]),
        {"hook": hook.url()},
        rules,
        database=str(database),
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        assert titles(hook) == ["[talks, morning] Kyiv and Moscow resume talks in Abu Dhabi"]
        clock.set(datetime(2026, 2, 4, 7, 0, tzinfo=UTC))  # 08:00 in Rome
        assert await sent(monitor) == 1
    digest = next(p.payload for p in hook.posts if "Digest" in p.payload["title"])
    assert digest["title"] == "[morning] Digest: 1 new article"
    assert "Abu Dhabi hosts a trade fair" in digest["message"]
    assert "resume talks" not in digest["message"]


async def test_two_digests_on_one_channel_list_a_shared_article_once(
    tmp_path, server, clock, hook, database
):
    """Both digest rules match BOTH: it is listed once, in the earlier digest, under both
    rules' terms; the later digest has only what it alone matched."""
    rules = [
        rule("morning", ABU_DHABI, "hook", digest="0 8 * * *"),
        rule("evening", TALKS, "hook", digest="0 18 * * *"),
    ]
    items = [BOTH, ABU_ONLY, TALKS_ONLY]
    config = configure(
        tmp_path, serve(server, items), {"hook": hook.url()}, rules, database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)  # at 11:00 in Rome: the evening digest comes first
        assert await sent(monitor) == 0
        clock.set(datetime(2026, 2, 3, 17, 0, tzinfo=UTC))  # 18:00 in Rome
        assert await sent(monitor) == 2  # two articles, one message
        clock.set(datetime(2026, 2, 4, 7, 0, tzinfo=UTC))  # 08:00 in Rome, the next day
        assert await sent(monitor) == 1
    assert [p.payload["title"] for p in hook.posts] == [
        "[evening] Digest: 2 new articles",
        "[morning] Digest: 1 new article",
    ]
    evening, morning = (p.payload["message"] for p in hook.posts)
    assert "Kyiv and Moscow resume talks in Abu Dhabi" in evening
    assert 'evening: kyiv, talks; morning: "abu dhabi"' in evening
    assert "Kyiv and Moscow resume talks" not in morning
    assert "Abu Dhabi hosts a trade fair" in morning


async def test_an_urgent_rule_takes_the_article_through_the_other_rules_quiet_hours(
    tmp_path, server, clock, hook, database
):
    rules = [
        rule("calm", ABU_DHABI, "hook", quiet_hours="22:00-07:00"),
        rule("alarm", TALKS, "hook", quiet_hours="22:00-07:00", urgent=True),
        rule("late", '"trade fair"', "hook", quiet_hours="22:00-07:00"),
        rule("early", "fair", "hook", quiet_hours="22:00-06:00"),
    ]
    config = configure(
        tmp_path,
        serve(server, [BOTH, ABU_ONLY]),
        {"hook": hook.url()},
        rules,
        database=str(database),
    )
    clock.set(datetime(2026, 2, 3, 22, 30, tzinfo=UTC))  # 23:30 in Rome
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        assert titles(hook) == ["[alarm, calm] Kyiv and Moscow resume talks in Abu Dhabi"]
        clock.set(datetime(2026, 2, 4, 4, 59, tzinfo=UTC))  # 05:59 in Rome
        assert await sent(monitor) == 0
        clock.set(datetime(2026, 2, 4, 5, 0, tzinfo=UTC))  # 06:00: the earliest end
        assert await sent(monitor) == 1
    assert hook.posts[-1].payload["title"] == "[early, calm, late] Abu Dhabi hosts a trade fair"


async def test_two_story_rules_send_one_opening_and_one_follow_up(
    corpus, tmp_path, server, clock, hook, database
):
    """Story alerts too: one message per new development per channel."""
    seed = seed_item(corpus)
    development = Item(
        "dev1",
        "Security guarantees for Kyiv: France and Britain join the 72-hour US response plan",
        "Emmanuel Macron and Keir Starmer said 20,000 French and British troops would back the "
        "three-step plan if Russia attacks Ukraine again, with US forces responding within 72 "
        "hours, as the Abu Dhabi talks resumed.",
        link="https://wire.example.com/guarantees-france-britain",
    )
    rules = [
        {"name": "ukraine", "query": "ucraina OR ukraine OR kiev OR kyiv", "channels": ["hook"]},
        {"name": "guarantees", "query": "garanzie OR guarantees", "channels": ["hook"]},
    ]
    config = configure(
        tmp_path, serve(server, [seed]), {"hook": hook.url()}, rules, database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        clock.advance(minutes=10)
        serve(server, [seed, REWRITE])
        await poll(monitor)  # the same story, nothing new: silent for both rules
        assert await sent(monitor) == 0
        clock.advance(hours=2)
        serve(server, [seed, REWRITE, development])
        found = await poll(monitor)
        assert {f.match.rule for f in found.found} == {"ukraine", "guarantees"}
        assert await sent(monitor) == 1
    opening, follow_up = (p.payload for p in hook.posts)
    assert opening["title"].startswith("[ukraine, guarantees] ")
    assert follow_up["title"].startswith("[ukraine, guarantees] Security guarantees for Kyiv")
    assert follow_up["message"].startswith("New development in a story you follow")
    listing = CliRunner().invoke(cli, ["--config", str(config.path), "stories"], obj=clock)
    assert " 2 alerts " in listing.output  # what arrived: two messages, not one per rule


async def test_no_channel_prints_one_alert_per_article(tmp_path, server, clock, capsys, database):
    rules = [rule("talks", TALKS), rule("abu-dhabi", ABU_DHABI)]
    config = configure(tmp_path, serve(server, [BOTH]), {}, rules, database=str(database))
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert (await drain(monitor)).sent == 1
    printed = capsys.readouterr().out
    assert printed.count("=== [talks, abu-dhabi] Kyiv and Moscow resume talks") == 1
