"""`news-monitor mute` / `unmute` (issue 14, item 2), through the real CLI, a feed on 127.0.0.1
and a real JSON webhook.

What a user notices: while a rule or a source is muted nothing of it arrives, yet its matches
are recorded (the articles are found by `search`, `mute` counts what each mute held and
`unmute` lists it); after `unmute` a new item arrives again; a mute ends by itself; a running
monitor heeds a mute set from the CLI at its next poll, with no restart; a name that is not a
rule or source, or that is both, is refused with what to write instead.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from monitor.config.loader import load
from monitor.service.monitor import Monitor
from tests.conftest import T0, Clock
from tests.test_max_age import City, rule

ROME = 'timezone = "Europe/Rome"'
ITEMS = [
    ("n1", "Kyiv council approves new bridge budget"),
    ("n2", "Kyiv airport plans summer flights"),
    ("n3", "Kyiv library digitises rare maps"),
    ("n4", "Kyiv zoo welcomes two snow leopards"),
    ("n5", "Kyiv metro extends its night service"),
]


def items(n: int, clock: Clock) -> list:
    """The first `n` items, each dated a minute before `clock`'s now: all fresh."""
    return [(guid, title, clock.now() - timedelta(minutes=1)) for guid, title in ITEMS[:n]]


def fails(city: City, clock: Clock, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(city.config), *args], obj=clock)
    assert result.exit_code == 2, result.output
    return result


def poll(city: City, clock: Clock, n: int) -> str:
    """Serve the first `n` items, ten minutes on, and run `once`; its summary."""
    clock.advance(minutes=10)
    city.serve(items(n, clock))
    return city.run(clock, "once").output


@pytest.fixture
def city(tmp_path, server, hook, database) -> City:
    """One feed and config on `database` (conftest: once per backend)."""
    city = City(tmp_path, server, hook, database)
    city.write(monitor=ROME)
    return city


def test_a_muted_rule_records_its_matches_and_sends_nothing_until_unmuted(city):
    clock = Clock()
    poll(city, clock, 1)
    assert city.sent() == [f"[city] {ITEMS[0][1]}"]

    done = city.run(clock, "mute", "city", "2h").output
    assert done.startswith('muted rule "city" until 2026-02-03 13:10 (Europe/Rome)')
    summary = poll(city, clock, 2)
    assert "matches held, not alerted: 1 muted" in summary
    assert len(city.sent()) == 1  # nothing of the muted rule arrived
    assert ITEMS[1][1] in city.run(clock, "search", "kyiv").output  # stored all the same
    listing = city.run(clock, "mute").output.splitlines()
    assert listing[0].split() == ["kind", "name", "until", "(Europe/Rome)", "left", "held"]
    assert listing[1].split() == ["rule", "city", "2026-02-03", "13:10", "1h50m", "1"]

    unmuted = city.run(clock, "unmute", "city").output
    assert unmuted.startswith(
        'unmuted rule "city" (muted 2026-02-03 11:10 to 2026-02-03 11:20, Europe/Rome)'
    )
    assert "1 match held while muted (stored, not sent):" in unmuted
    assert f"[city] {ITEMS[1][1]}" in unmuted
    assert city.run(clock, "mute").output == "no active mutes\n"

    poll(city, clock, 3)  # after unmute: the new item arrives, the held one never does
    assert city.sent() == [f"[city] {ITEMS[0][1]}", f"[city] {ITEMS[2][1]}"]


def test_a_mute_ends_by_itself(city):
    clock = Clock()
    poll(city, clock, 1)
    city.run(clock, "mute", "city", "30m")
    poll(city, clock, 2)
    assert len(city.sent()) == 1
    clock.advance(minutes=30)  # past the mute's end
    assert city.run(clock, "mute").output == "no active mutes\n"
    poll(city, clock, 3)
    assert city.sent() == [f"[city] {ITEMS[0][1]}", f"[city] {ITEMS[2][1]}"]
    unmuted = CliRunner().invoke(cli, ["--config", str(city.config), "unmute", "city"], obj=clock)
    assert unmuted.exit_code == 0 and 'rule "city" is not muted' in unmuted.output


def test_muting_a_source_holds_every_rule_of_it(city, hook):
    clock = Clock()
    rules = rule("city", "kyiv") + rule("transport", "airport OR metro", channel="other")
    city.write(monitor=ROME, rules=rules)
    poll(city, clock, 1)
    city.run(clock, "mute", "kyiv", "1d")  # the source's name
    assert "held, not alerted: 2 muted" in poll(city, clock, 2)  # airport: both rules
    assert len(city.sent("/hook")) == 1 and city.sent("/other") == []
    assert city.run(clock, "mute").output.splitlines()[1].split()[:2] == ["source", "kyiv"]
    unmuted = city.run(clock, "unmute", "source:kyiv").output
    assert "2 matches held while muted" in unmuted
    poll(city, clock, 5)  # zoo (city) and metro (city, transport)
    assert city.sent("/other") == [f"[transport] {ITEMS[4][1]}"]


async def test_a_running_monitor_heeds_a_mute_at_its_next_poll(city):
    """The daemon's Monitor stays open across the CLI's mute: no restart, no reload."""
    clock = Clock()
    city.serve(items(1, clock))
    monitor = Monitor(load(city.config, env={}), clock=clock)
    try:
        assert len((await monitor.poll("kyiv")).found) == 1
        city.run(clock, "mute", "city", "1h")
        clock.advance(minutes=10)
        city.serve(items(2, clock))
        result = await monitor.poll("kyiv")
        assert result.found == () and result.held == (("muted", 1),)
        clock.advance(hours=1)  # the mute has ended: the next new item alerts
        city.serve(items(3, clock))
        assert [f.article.title for f in (await monitor.poll("kyiv")).found] == [ITEMS[2][1]]
    finally:
        await monitor.close()


def test_names_must_be_a_rule_or_a_source_and_say_which_when_both(city):
    clock = Clock(T0)
    city.serve(items(1, clock))
    city.write(monitor=ROME, rules=rule("city", "kyiv") + rule("kyiv", "kyiv"))
    city.run(clock, "once")
    both = fails(city, clock, "mute", "kyiv", "1h").output
    assert '"kyiv" is both a rule and a source: write rule:kyiv or source:kyiv' in both
    unknown = fails(city, clock, "mute", "citty", "1h").output
    assert 'no rule or source named "citty" (did you mean "city"?)' in unknown
    assert "rules: city, kyiv" in unknown and "sources: kyiv" in unknown
    assert 'no source named "city"' in fails(city, clock, "mute", "source:city", "1h").output
    bad = fails(city, clock, "mute", "city", "2x").output
    assert '"2x" is not a duration' in bad
    assert "say for how long" in fails(city, clock, "mute", "city").output
    done = city.run(clock, "mute", "rule:kyiv", "1h").output
    assert done.startswith('muted rule "kyiv" until')
