"""Alert semantics end to end: a feed on 127.0.0.1 polled by `Monitor`, a real database
(conftest's `database`: a SQLite file, then PostgreSQL), alerts drained to a real JSON webhook
and a real SMTP server; assertions on what ARRIVED.

Time is a controllable clock (`Clock`, tests/conftest.py) handed to the `Monitor`, so backoff,
digests and quiet hours are driven by explicit instants, never by sleeps.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config.loader import Config, load
from monitor.delivery import channels as notify
from monitor.delivery.drain import LEASE, drain_outbox
from monitor.models import DrainResult, PollResult
from monitor.service.monitor import Monitor
from monitor.store.times import ts
from tests.conftest import T0, Clock
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply
from tests.receivers import SmtpReceiver, WebhookReceiver

TALKS = (
    "(ucraina OR ukraine OR kiev OR kyiv) AND "
    '(negoziat* OR colloqui OR tregua OR ceasefire OR "peace talks")'
)
SMTP_PASSWORD = "s3cret-pass-9f2"
ITEMS = [
    Item("a1", "Garanzie di sicurezza per Kiev, nuovi colloqui ad Abu Dhabi"),
    Item("a2", "Milano, chiude la metro M2 per lavori"),
    Item("a3", "Ukraine and Russia resume peace talks in Abu Dhabi"),
]
MATCHING = [ITEMS[0].title, ITEMS[2].title]
NAMES = [c + v for c in "BDFGLMNPRT" for v in ("ano", "ero", "ita")]  # 30 made-up names


def distinct_items(n: int, prefix: str = "b") -> list[Item]:
    """n matching items different enough that none is taken for a copy of another."""
    return [
        Item(f"{prefix}{i:02}", f"{NAMES[i]} and {NAMES[(i + 11) % 30]} on Kyiv ceasefire")
        for i in range(n)
    ]


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(user="alice", password=SMTP_PASSWORD) as receiver:
        yield receiver


def serve(server: LoopbackServer, items: list[Item]) -> str:
    server.route("/esteri.xml", Reply(200, rss(items), {"Content-Type": "application/rss+xml"}))
    return server.url("/esteri.xml")


def configure(tmp_path: Path, feed: str, channels: dict, rules: list, **monitor: object) -> Config:
    """Write a real TOML config and load it; the SMTP password goes through ${SMTP_PASSWORD}."""
    settings = {"database": str(tmp_path / "monitor.db"), "timezone": "Europe/Rome"} | monitor
    channels = {k: v.replace(SMTP_PASSWORD, "${SMTP_PASSWORD}") for k, v in channels.items()}
    tables = [("monitor", settings), ("channels", channels)]
    tables += [("[sources]", {"name": "corriere-esteri", "url": feed})]
    tables += [("[rules]", rule) for rule in rules]
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in tables
    )
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, env={"SMTP_PASSWORD": SMTP_PASSWORD})


def talks_rule(*channels: str, **extra: object) -> dict:
    return (
        {"name": "ukraine-talks", "query": TALKS, "alert": "article"}
        | extra
        | {"channels": list(channels)}
    )


@contextlib.asynccontextmanager
async def running(config: Config, clock: Clock) -> AsyncIterator[Monitor]:
    monitor = Monitor(config, clock=clock)
    try:
        yield monitor
    finally:
        await monitor.close()


async def drain(monitor: Monitor) -> DrainResult:
    result = await monitor.drain()
    assert result is not None, "a drain was already running"
    return result


async def poll(monitor: Monitor) -> PollResult:
    result = await monitor.poll("corriere-esteri")
    assert result is not None
    return result


async def sent(monitor: Monitor) -> int:
    return (await drain(monitor)).sent


def outbox_rows(monitor: Monitor) -> list[dict]:
    """The outbox, oldest first, its times as stored (text), which the assertions compare."""
    rows = monitor.store.recent_alerts(limit=1000)
    times = ("created_at", "due_at", "sent_at")
    return sorted(({**r, **{k: ts(r[k]) for k in times}} for r in rows), key=lambda r: r["id"])


def titles(hook: WebhookReceiver) -> list[str]:
    return sorted(p.payload["title"] for p in hook.posts)


# ----------------------------------------------------------------------------- arrival


async def test_each_match_arrives_once_as_webhook_json_and_as_email(
    tmp_path, server, clock, hook, smtp, database
):
    config = configure(
        tmp_path,
        serve(server, ITEMS),
        {"hook": hook.url("/alerts"), "desk": smtp.url(to="desk@example.org")},
        [talks_rule("hook", "desk")],
        database=str(database),
    )
    async with running(config, clock) as monitor:
        polled = await poll(monitor)
        assert polled is not None and len(polled.found) == 2
        result = await drain(monitor)
    assert (result.sent, result.failed) == (4, 0)

    posts = hook.wait_for(2, timeout=5)
    assert len(posts) == 2 and {p.path for p in posts} == {"/alerts"}
    by_title = {p.payload["title"]: p.payload["message"] for p in posts}
    assert set(by_title) == {f"[ukraine-talks] {t}" for t in MATCHING}
    first = by_title[f"[ukraine-talks] {ITEMS[0].title}"]
    assert ITEMS[0].title in first
    assert "corriere-esteri" in first  # the outlet
    assert "https://news.example.org/a1.html" in first  # the link
    assert "3 Feb 2026 09:00 CET" in first  # published, in the configured timezone
    matched = next(line for line in first.splitlines() if "Matched:" in line)
    assert "Rule: ukraine-talks" in matched and "kiev" in matched and "colloqui" in matched

    mails = smtp.wait_for(2, timeout=5)
    assert len(mails) == 2
    assert {m.subject for m in mails} == set(by_title)
    for mail in mails:
        assert mail.rcpt_tos == ["desk@example.org"] and mail.authenticated_as == "alice"
        assert mail.content_types == ["text/plain"]
        headline = mail.subject.removeprefix("[ukraine-talks] ")
        assert mail.text.splitlines()[0] == headline
        assert "https://news.example.org/" in mail.text
        assert "**" not in mail.text and "<" not in mail.text and "\\" not in mail.text


async def test_repoll_edit_restart_and_redrain_never_resend(
    tmp_path, server, clock, hook, database
):
    url = serve(server, ITEMS)
    config = configure(
        tmp_path, url, {"hook": hook.url()}, [talks_rule("hook")], database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        await drain(monitor)
        hook.wait_for(2, timeout=5)
        clock.advance(minutes=5)
        assert (await poll(monitor)).found == ()
        # the feed changes: one new unrelated item, and a matching headline is edited
        edited = Item("a3", "Ukraine and Russia resume peace talks in Abu Dhabi, day two")
        serve(server, [ITEMS[0], ITEMS[1], edited, Item("a4", "Meteo: neve a Milano")])
        clock.advance(minutes=5)
        again = await poll(monitor)
        assert (again.new, again.edited, again.found) == (1, 1, ())
        clock.advance(minutes=5)
        assert await sent(monitor) == 0

    async with running(config, clock) as restarted:  # a new process on the same database
        clock.advance(hours=1)
        await poll(restarted)
        assert await sent(restarted) == 0
        rows = restarted.store.db.execute(
            "SELECT key, rule, article_id, channel, status FROM outbox"
        ).fetchall()
        # replaying the plan of a stored match yields the same keys: nothing new is queued
        article_id = rows[0][2]
        article = restarted.store.article(article_id)
        match = restarted.store.match_for(article_id, "ukraine-talks")
        assert article is not None and match is not None
        replanned = restarted.planner.plan(article_id, article, match)
        assert restarted.store.add_alerts(replanned, clock()) == 0

    assert len(rows) == 2 and {r[4] for r in rows} == {"sent"}
    assert len({r[0] for r in rows}) == len({r[1:4] for r in rows}) == 2
    assert len(hook.posts) == 2 and len(hook.attempts) == 2


# ----------------------------------------------------------------------------- failures


async def test_receiver_down_keeps_alerts_queued_then_each_arrives_once(
    tmp_path, server, clock, hook, database
):
    config = configure(
        tmp_path,
        serve(server, ITEMS),
        {"hook": hook.url()},
        [talks_rule("hook")],
        database=str(database),
    )
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        result = await drain(monitor)
        assert (result.sent, result.failed) == (0, 2)
        await drain(monitor)  # nothing is due again before its backoff
        queued = outbox_rows(monitor)
    assert [(r["status"], r["attempts"]) for r in queued] == [("pending", 1)] * 2
    assert all(r["last_error"] and "127.0.0.1" in r["last_error"] for r in queued)
    assert all(r["due_at"] > ts(T0) for r in queued)

    hook.up()
    clock.advance(seconds=31)  # past the first retry's longest backoff (30 s)
    async with running(config, clock) as restarted:
        assert await sent(restarted) == 2
        clock.advance(hours=2)
        assert await sent(restarted) == 0
        done = outbox_rows(restarted)
    assert titles(hook) == sorted(f"[ukraine-talks] {t}" for t in MATCHING)
    assert [(r["status"], r["attempts"], r["last_error"]) for r in done] == [("sent", 2, None)] * 2


async def test_failing_channel_retries_without_resending_to_the_working_one(
    tmp_path, server, clock, hook, smtp, database
):
    channels = {"hook": hook.url(), "desk": smtp.url()}
    config = configure(
        tmp_path,
        serve(server, ITEMS),
        channels,
        [talks_rule("hook", "desk")],
        database=str(database),
    )
    hook.mode = "error"  # answers 500
    async with running(config, clock) as monitor:
        await poll(monitor)
        first = await drain(monitor)
        assert (first.sent, first.failed) == (2, 2)
        clock.advance(seconds=31)
        second = await drain(monitor)
        assert (second.sent, second.failed) == (0, 2)
        hook.mode = "ok"
        clock.advance(seconds=61)  # second retry waits at most 60 s
        third = await drain(monitor)
        assert (third.sent, third.failed) == (2, 0)
        clock.advance(hours=1)
        assert await sent(monitor) == 0
    assert len(hook.attempts) == 6 and len(hook.posts) == 2
    assert len(smtp.messages) == 2
    assert sorted(m.subject for m in smtp.messages) == titles(hook)


async def test_alert_is_dead_after_max_attempts_and_visible(
    tmp_path, server, clock, hook, database
):
    config = configure(
        tmp_path, serve(server, ITEMS), {"hook": hook.url()}, [talks_rule("hook")],
        max_attempts=3, database=str(database),
    )  # fmt: skip
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        outcomes = []
        for _ in range(4):
            result = await drain(monitor)
            outcomes.append((result.failed, result.dead))
            clock.advance(hours=1)
        hook.up()
        clock.advance(days=1)
        assert await sent(monitor) == 0
        dead = monitor.store.recent_alerts(status="dead")
        tries = monitor.store.db.execute("SELECT outbox_id, ok, error FROM attempts").fetchall()
    assert outcomes == [(2, 0), (2, 0), (0, 2), (0, 0)]
    assert len(dead) == 2 and all(r["attempts"] == 3 and r["last_error"] for r in dead)
    assert len(tries) == 6 and all(ok == 0 and error for _, ok, error in tries)
    assert hook.posts == []


async def test_expired_lease_of_a_killed_worker_is_sent_once(
    tmp_path, server, clock, hook, database
):
    config = configure(
        tmp_path,
        serve(server, ITEMS),
        {"hook": hook.url()},
        [talks_rule("hook")],
        database=str(database),
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        # a worker claims every due row and dies before sending or recording anything
        assert len(monitor.store.claim_alerts(clock(), clock() + LEASE)) == 2
        clock.advance(minutes=1)
        assert await sent(monitor) == 0
        assert hook.attempts == []
        clock.set(T0 + LEASE)
        assert await sent(monitor) == 2
        clock.advance(hours=1)
        assert await sent(monitor) == 0
    assert titles(hook) == sorted(f"[ukraine-talks] {t}" for t in MATCHING)


async def test_hung_channel_does_not_hold_the_others_past_the_drain_budget(
    tmp_path, server, clock, hook, smtp, database
):
    items = distinct_items(5)
    config = configure(
        tmp_path, serve(server, items), {"hook": hook.url(), "desk": smtp.url()},
        [talks_rule("hook", "desk")], database=str(database),
    )  # fmt: skip
    hook.mode = "hang"
    async with running(config, clock) as monitor:
        await poll(monitor)
        result = await drain_outbox(
            monitor.store,
            monitor.policy,
            now=clock,
            digest_message=monitor.digest_message,
            send=functools.partial(notify.send, timeout=1.5),
            budget=2.5,
        )
        rows = outbox_rows(monitor)
        reclaimed = monitor.store.claim_alerts(clock(), clock() + LEASE)
    assert result.sent == 5 and len(smtp.messages) == 5
    hook_rows = [r for r in rows if r["channel"] == "hook"]
    tried = [r for r in hook_rows if r["attempts"]]
    assert 1 <= len(tried) < 5 and len(hook.attempts) == len(tried)
    # the rest went back to the queue untouched, free for the next drain to claim
    untouched = [r for r in hook_rows if not r["attempts"]]
    assert all(r["status"] == "pending" and r["due_at"] == ts(T0) for r in untouched)
    assert {p.id for p in reclaimed} == {r["id"] for r in untouched}


# ----------------------------------------------------------------------------- timing


async def test_digest_collects_matches_into_one_message_at_the_scheduled_time(
    tmp_path, server, clock, hook, database
):
    url = serve(server, ITEMS)
    rule = talks_rule("hook", name="morning", digest="0 8 * * *")
    config = configure(tmp_path, url, {"hook": hook.url()}, [rule], database=str(database))
    async with running(config, clock) as monitor:
        await poll(monitor)
        clock.advance(hours=5)  # a later poll brings one more match
        serve(server, [*ITEMS, Item("a9", "Tregua in Ucraina, la Russia apre ai colloqui")])
        await poll(monitor)
        queued = outbox_rows(monitor)
        assert await sent(monitor) == 0
        clock.set(datetime(2026, 2, 4, 6, 59, 59, tzinfo=UTC))  # 07:59:59 in Rome
        assert await sent(monitor) == 0
        assert hook.attempts == []
        clock.set(datetime(2026, 2, 4, 7, 0, tzinfo=UTC))  # 08:00 in Rome
        assert await sent(monitor) == 3
        clock.advance(days=1)
        assert await sent(monitor) == 0
        done = outbox_rows(monitor)
    assert len(queued) == 3 and all(r["digest"] for r in queued)
    assert {r["due_at"] for r in queued} == {"2026-02-04T07:00:00.000000Z"}
    [post] = hook.posts
    assert post.payload["title"] == "[morning] Digest: 3 new articles"
    body = post.payload["message"]
    for headline in [*MATCHING, "Tregua in Ucraina, la Russia apre ai colloqui"]:
        assert body.count(headline) == 1
    assert {r["status"] for r in done} == {"sent"}


async def test_quiet_hours_hold_normal_alerts_and_let_urgent_ones_through(
    tmp_path, server, clock, hook, database
):
    quiet = "22:00-07:00"
    rules = [
        {"name": "calm", "query": "tregua", "channels": ["hook"], "quiet_hours": quiet},
        {"name": "alarm", "query": "ceasefire", "channels": ["hook"], "quiet_hours": quiet,
         "urgent": True},
    ]  # fmt: skip
    items = [Item("q1", "Tregua più vicina"), Item("q2", "Ceasefire broken overnight")]
    config = configure(
        tmp_path, serve(server, items), {"hook": hook.url()}, rules, database=str(database)
    )
    clock.set(datetime(2026, 2, 3, 22, 30, tzinfo=UTC))  # 23:30 in Rome
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert await sent(monitor) == 1
        assert titles(hook) == ["[alarm] Ceasefire broken overnight"]
        clock.set(datetime(2026, 2, 4, 5, 59, tzinfo=UTC))  # 06:59 in Rome
        assert await sent(monitor) == 0
        clock.set(datetime(2026, 2, 4, 6, 0, tzinfo=UTC))  # 07:00 in Rome
        assert await sent(monitor) == 1
    assert titles(hook) == ["[alarm] Ceasefire broken overnight", "[calm] Tregua più vicina"]


async def test_a_retry_falling_into_quiet_hours_waits_for_their_end(
    tmp_path, server, clock, hook, database
):
    rules = [
        {"name": "calm", "query": "tregua", "channels": ["hook"], "quiet_hours": "22:00-07:00"}
    ]
    config = configure(tmp_path, serve(server, [Item("q1", "Tregua più vicina")]),
                       {"hook": hook.url()}, rules, database=str(database))  # fmt: skip
    clock.set(datetime(2026, 2, 3, 20, 59, 50, tzinfo=UTC))  # 21:59:50 in Rome
    hook.down()
    async with running(config, clock) as monitor:
        await poll(monitor)
        assert (await drain(monitor)).failed == 1
        hook.up()
        clock.set(datetime(2026, 2, 3, 21, 5, tzinfo=UTC))  # 22:05: the retry is due, but quiet
        assert await sent(monitor) == 0
        assert hook.attempts == []
        clock.set(datetime(2026, 2, 4, 6, 0, tzinfo=UTC))  # 07:00 in Rome
        assert await sent(monitor) == 1
    assert titles(hook) == ["[calm] Tregua più vicina"]


async def test_burst_is_rate_limited_per_channel_and_the_rest_goes_later(
    tmp_path, server, clock, hook, database
):
    items = distinct_items(30)
    config = configure(
        tmp_path,
        serve(server, items),
        {"hook": hook.url()},
        [talks_rule("hook")],
        database=str(database),
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        first = await drain(monitor)
        assert (first.sent, first.postponed) == (20, 10)
        assert len(hook.posts) == 20
        clock.advance(seconds=599)
        assert await sent(monitor) == 0
        clock.advance(seconds=1)
        assert await sent(monitor) == 10
        rows = outbox_rows(monitor)
    assert titles(hook) == sorted(f"[ukraine-talks] {i.title}" for i in items)
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows)


async def test_a_digest_counts_as_one_message_against_the_rate_limit(
    tmp_path, server, clock, hook, database
):
    items = distinct_items(25)
    rules = [
        talks_rule("hook", name="morning", digest="0 8 * * *"),
        {"name": "abu-dhabi", "query": '"abu dhabi"', "channels": ["hook"]},
    ]
    config = configure(
        tmp_path, serve(server, items), {"hook": hook.url()}, rules, database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)
        clock.set(datetime(2026, 2, 4, 7, 0, tzinfo=UTC))
        assert await sent(monitor) == 25
        serve(server, [*items, Item("x1", "Delegations land in Abu Dhabi")])
        clock.advance(minutes=1)
        await poll(monitor)
        assert await sent(monitor) == 1
    assert titles(hook) == [
        "[abu-dhabi] Delegations land in Abu Dhabi",
        "[morning] Digest: 25 new articles",
    ]


# ----------------------------------------------------------------------------- content


async def test_hostile_headline_arrives_neutralised_as_plain_text(
    tmp_path, server, clock, hook, database
):
    hostile = "@everyone <script>alert(1)</script> Kyiv ceasefire [click](javascript:alert(2))"
    config = configure(tmp_path, serve(server, [Item("h1", hostile)]), {"hook": hook.url()},
                       [talks_rule("hook")], database=str(database))  # fmt: skip
    async with running(config, clock) as monitor:
        await poll(monitor)
        await drain(monitor)
    [post] = hook.wait_for(1, timeout=5)
    title, message = post.payload["title"], post.payload["message"]
    for text in (title, message):
        assert "@everyone" not in text and "<script" not in text and "javascript:" not in text
        assert "**" not in text and "\\" not in text and "](" not in text
    assert "Kyiv ceasefire" in title and "everyone" in title
    assert "Matched: " in message


async def test_digest_of_a_rule_removed_by_reload_fails_visibly_and_the_drain_goes_on(
    tmp_path, server, clock, hook, database
):
    delegations = Item("x1", "Delegations land in Abu Dhabi")
    rules = [
        talks_rule("hook", name="morning", digest="0 8 * * *"),
        {"name": "delegations", "query": "delegations", "channels": ["hook"]},
    ]
    config = configure(
        tmp_path, serve(server, ITEMS), {"hook": hook.url()}, rules, database=str(database)
    )
    async with running(config, clock) as monitor:
        await poll(monitor)  # two digest rows wait for 08:00
        clock.set(datetime(2026, 2, 4, 7, 0, tzinfo=UTC))
        url = serve(server, [*ITEMS, delegations])
        monitor.apply(
            configure(tmp_path, url, {"hook": hook.url()}, rules[1:], database=str(database))
        )
        await poll(monitor)  # an instant alert, due now, queued after them
        result = await drain(monitor)
        rows = outbox_rows(monitor)
    assert (result.sent, result.failed) == (1, 2)
    assert titles(hook) == ["[delegations] Delegations land in Abu Dhabi"]
    digest_rows = [r for r in rows if r["rule"] == "morning"]
    assert [(r["status"], r["attempts"]) for r in digest_rows] == [("pending", 1)] * 2
    assert all("internal error" in r["last_error"] for r in digest_rows)


async def test_channel_missing_after_reload_is_retried_then_delivered(
    tmp_path, server, clock, hook, database
):
    url = serve(server, ITEMS)
    good = configure(
        tmp_path, url, {"hook": hook.url()}, [talks_rule("hook")], database=str(database)
    )
    async with running(good, clock) as monitor:
        await poll(monitor)
        # a reload with the channel renamed by mistake, before the alerts went out
        typo = configure(
            tmp_path, url, {"hokk": hook.url()}, [talks_rule("hokk")], database=str(database)
        )
        monitor.apply(typo)
        result = await drain(monitor)
        assert (result.sent, result.failed, result.dead) == (0, 2, 0)
        rows = outbox_rows(monitor)
        assert all(r["status"] == "pending" and "not configured" in r["last_error"] for r in rows)

        monitor.apply(
            configure(
                tmp_path, url, {"hook": hook.url()}, [talks_rule("hook")], database=str(database)
            )
        )
        clock.advance(hours=1)  # past the first backoff
        result = await drain(monitor)
        assert result.sent == 2
    hook.wait_for(2, timeout=5)
    assert titles(hook) == sorted(f"[ukraine-talks] {t}" for t in MATCHING)
