"""`news-monitor alerts`, `alerts retry` and `alerts drop` (issue 14, items 2 and 9), through
the real CLI (click's CliRunner, the test clock as `obj`) on the database a `Monitor` wrote
while polling a feed on 127.0.0.1 and sending to a real JSON webhook; on either backend
(conftest's `database`).

What a user notices: the listing has a header and names each rule once; an empty listing
says so ("no dead alerts"); a dropped backlog never arrives, stays listed as dropped, and is
reported (how many, which); a retried dead alert arrives once the channel is back.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from monitor.cli.commands import cli
from monitor.config.loader import Config
from monitor.store import open_store
from tests.conftest import Clock
from tests.feeds import Item
from tests.test_delivery import configure, distinct_items, drain, poll, running, sent, serve

TALKS = "kyiv AND (talks OR ceasefire)"
HEADER = ["id", "status", "when", "channel", "rules", "tries", "title"]


def rule(name: str, query: str, *channels: str, **extra: object) -> dict:
    return {"name": name, "query": query, "alert": "article", "channels": list(channels)} | extra


def run(config: Config, clock: Clock, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config.path), *args], obj=clock)


def ok(config: Config, clock: Clock, *args: str) -> str:
    result = run(config, clock, *args)
    assert result.exit_code == 0, result.output
    return result.output


def listed(config: Config, clock: Clock, *args: str) -> list[dict]:
    return json.loads(ok(config, clock, "alerts", "--json", *args))


async def test_listing_has_a_header_names_each_rule_once_and_says_when_empty(
    tmp_path, server, clock, hook, database
):
    items = [Item("a1", "Kyiv ceasefire talks resume"), Item("a2", "Kyiv talks stall")]
    config = configure(tmp_path, serve(server, items), {"hook": hook.url()},
                       [rule("talks", TALKS, "hook")], database=str(database))  # fmt: skip
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert ok(config, clock, "alerts", "--status", "dead") == "no dead alerts\n"
        assert ok(config, clock, "alerts", "--status", "sent") == "no sent alerts\n"
        await drain(monitor)
    lines = ok(config, clock, "alerts").splitlines()
    assert lines[0].split() == HEADER
    assert len(lines) == 3 and all(" sent " in line for line in lines[1:])
    assert "talks  1      Kyiv ceasefire talks resume" in lines[2]  # rule once, no [talks]
    assert not any("[talks]" in line for line in lines)
    assert ok(config, clock, "alerts", "--status", "pending") == "no pending alerts\n"

    rows = listed(config, clock)
    assert [r["title"] for r in rows] == [
        "[talks] Kyiv talks stall",
        "[talks] Kyiv ceasefire talks resume",
    ]
    assert rows[0]["rules"] == ["talks"] and rows[0]["status"] == "sent"
    assert rows[0]["sent_at"].endswith("+00:00") and rows[0]["attempts"] == 1
    assert listed(config, clock, "--status", "dead") == []


def test_no_alerts_at_all(tmp_path, clock):
    config = configure(tmp_path, "http://127.0.0.1:9/feed.xml", {}, [rule("talks", TALKS)])
    for args in (["alerts"], ["alerts", "drop", "--rule", "talks"], ["alerts", "retry", "1"]):
        missing = run(config, clock, *args)  # main() prints it as "error: ..." and exits 1
        assert missing.exit_code == 1 and "no database at" in str(missing.exception)
    assert not config.settings.database.exists()  # and none was made
    open_store(config.settings.database).close()
    assert ok(config, clock, "alerts") == "no alerts\n"
    assert ok(config, clock, "alerts", "--json") == "[]\n"


async def test_dropping_a_rules_backlog_reports_it_and_nothing_of_it_arrives(
    tmp_path, server, clock, hook, database
):
    """A noisy rule's burst is held by the rate limit; `alerts drop --rule` drops what waits.
    The other rule's alerts still go; the dropped ones stay listed; `retry ID` takes one back."""
    noisy = distinct_items(25)
    quiet = Item("q1", "Delegations land in Abu Dhabi")
    rules = [rule("noisy", "ceasefire", "hook"), rule("abu-dhabi", '"abu dhabi"', "hook")]
    config = configure(
        tmp_path, serve(server, [*noisy, quiet]), {"hook": hook.url()}, rules,
        database=str(database),
    )  # fmt: skip
    async with running(config, clock) as monitor:
        await poll(monitor)
        first = await drain(monitor)
        assert (first.sent, first.postponed) == (20, 6)

        out = ok(config, clock, "alerts", "drop", "--rule", "noisy")
        lines = out.splitlines()
        assert lines[0] == "dropped 5 alerts (rule noisy):"
        assert len(lines) == 6 and all(" hook  noisy  " in line for line in lines[1:])
        assert ok(config, clock, "alerts", "drop", "--rule", "noisy").startswith(
            "no pending alerts (rule noisy)"
        )
        dropped = listed(config, clock, "--status", "dropped")
        assert len(dropped) == 5 and {r["rules"][0] for r in dropped} == {"noisy"}

        clock.advance(minutes=10)
        assert await sent(monitor) == 1  # only the other rule's alert was left
        assert hook.posts[-1].payload["title"] == "[abu-dhabi] Delegations land in Abu Dhabi"

        back = dropped[0]["id"]
        assert ok(config, clock, "alerts", "retry", str(back)).startswith(
            "1 alert pending again, due now:"
        )
        clock.advance(minutes=10)
        assert await sent(monitor) == 1
        assert await sent(monitor) == 0
    assert len(hook.posts) == 22
    assert len(listed(config, clock, "--status", "dropped")) == 4


async def test_drop_by_channel_and_by_id_and_what_cannot_be_dropped(
    tmp_path, server, clock, hook, database
):
    items = [Item("a1", "Kyiv ceasefire talks resume"), Item("a2", "Kyiv talks stall")]
    config = configure(tmp_path, serve(server, items), {"hook": hook.url()},
                       [rule("talks", TALKS, "hook")], database=str(database))  # fmt: skip
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        await drain(monitor)  # both fail once, pending for a retry
        ids = [r["id"] for r in listed(config, clock, "--status", "pending")]
        out = ok(config, clock, "alerts", "drop", str(ids[0]))
        assert out.startswith(f"dropped 1 alert (#{ids[0]}):")
        again = run(config, clock, "alerts", "drop", str(ids[0]))
        assert again.exit_code == 1 and f"alert #{ids[0]} is dropped already" in again.output
        missing = run(config, clock, "alerts", "drop", "999")
        assert missing.exit_code == 1 and "no alert #999" in missing.output
        typo = ok(config, clock, "alerts", "drop", "--channel", "hok")
        assert typo.startswith("no pending alerts (channel hok); ")
        assert typo.endswith('no channel "hok" in the config (did you mean "hook"?)\n')
        out = ok(config, clock, "alerts", "drop", "--channel", "hook")
        assert out.startswith(f"dropped 1 alert (channel hook):\n  #{ids[1]}  hook  talks  ")
        hook.up()
        clock.advance(hours=1)
        assert await sent(monitor) == 0
    assert hook.posts == []
    usage = run(config, clock, "alerts", "drop")
    assert usage.exit_code == 2 and "give an alert ID, or --rule and/or --channel" in usage.output


async def test_an_alert_other_rules_matched_too_is_kept_by_drop_rule(
    tmp_path, server, clock, hook, database
):
    both = Item("b1", "Kyiv and Moscow resume talks in Abu Dhabi")
    rules = [rule("talks", TALKS, "hook"), rule("abu-dhabi", '"abu dhabi"', "hook")]
    config = configure(
        tmp_path, serve(server, [both]), {"hook": hook.url()}, rules, database=str(database)
    )
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        out = ok(config, clock, "alerts", "drop", "--rule", "talks")
        assert out.splitlines()[0] == (
            "kept 1 alert that other rules matched too (drop one by its id: "
            "`news-monitor alerts drop ID`):"
        )
        assert "talks, abu-dhabi  Kyiv and Moscow resume talks in Abu Dhabi" in out
        hook.up()
        assert await sent(monitor) == 1


async def test_retry_all_dead_sends_them_again_with_fresh_attempts(
    tmp_path, server, clock, hook, database
):
    items = [Item("a1", "Kyiv ceasefire talks resume"), Item("a2", "Kyiv talks stall")]
    config = configure(
        tmp_path, serve(server, items), {"hook": hook.url()}, [rule("talks", TALKS, "hook")],
        database=str(database), max_attempts=2,
    )  # fmt: skip
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        await drain(monitor)
        clock.advance(minutes=5)
        assert (await drain(monitor)).dead == 2
        dead = listed(config, clock, "--status", "dead")
        assert [r["attempts"] for r in dead] == [2, 2] and all(r["last_error"] for r in dead)
        table = ok(config, clock, "alerts", "--status", "dead").splitlines()
        assert table[0].split() == HEADER and "last error: " in table[2]

        wrong = run(config, clock, "alerts", "retry", str(dead[0]["id"] + 100))
        assert wrong.exit_code == 1 and "no alert #" in wrong.output
        assert run(config, clock, "alerts", "retry").exit_code == 2

        hook.up()
        out = ok(config, clock, "alerts", "retry", "--all-dead")
        assert out.startswith("2 alerts pending again, due now:\n")
        pending = listed(config, clock, "--status", "pending")
        assert [r["attempts"] for r in pending] == [0, 0]
        assert ok(config, clock, "alerts", "retry", "--all-dead") == "no dead alerts\n"
        assert await sent(monitor) == 2
        done = run(config, clock, "alerts", "retry", str(dead[0]["id"]))
        assert done.exit_code == 1 and "was sent at" in done.output
    assert sorted(p.payload["title"] for p in hook.posts) == [
        "[talks] Kyiv ceasefire talks resume",
        "[talks] Kyiv talks stall",
    ]
    assert {(r["status"], r["attempts"]) for r in listed(config, clock)} == {("sent", 1)}


def test_alerts_help_lists_retry_and_drop(tmp_path: Path):
    result = CliRunner().invoke(cli, ["alerts", "--help"])
    assert result.exit_code == 0 and "retry" in result.output and "drop" in result.output
