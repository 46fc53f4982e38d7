"""The outbox on either backend (a real SQLite file, a real PostgreSQL database): unique keys,
leases, attempts, and claims from two processes.

The lease is what makes a crash harmless: a worker killed mid-send leaves its rows leased, and
they go out again once the lease expires. Claims run in `BEGIN IMMEDIATE` with a busy timeout
(SQLite) or under the write lock (PostgreSQL), so two processes claiming at once wait for each
other instead of failing or sharing a row.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.plan import plan_alerts
from monitor.delivery.drain import LEASE
from monitor.models import Alert, Article, Delivery, Match, Message, Rule
from monitor.store import Store, open_store
from monitor.store.times import from_ts

T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
RULES = [
    Rule("ukraine-talks", "ukraine AND talks", channels=("chat", "desk")),
    Rule("abu-dhabi", '"abu dhabi"', channels=("chat", "desk")),
]


def article(n: int) -> Article:
    return Article(
        source="bbc-world",
        guid=f"g{n}",
        url=f"https://news.example.org/{n}.html",
        title=f"Ukraine talks in Abu Dhabi, day {n}",
        published=T0,
    )


def planned(article_id: int, rule: Rule, now: datetime = T0) -> list[Alert]:
    match = Match(rule.name, ("ukraine", "talks"))
    return plan_alerts(
        article_id, article(article_id), match, rule=rule, source_title="BBC",
        timezone="Europe/Rome", now=now,
    )  # fmt: skip


def alert(n: int, *, channel: str = "chat", digest: bool = False, rule: str = "r") -> Alert:
    message = Message(f"title {n}", "text", "markdown", "<p>html</p>")
    return Alert(f"k{n}", rule, channel, message, T0, article_id=n, digest=digest)


@pytest.fixture
def outbox(store: Store) -> Store:
    """The store of `database` (conftest: once per backend), as the outbox tests call it."""
    return store


def next_due(store: Store) -> datetime | None:
    """When the next pending alert is due (read here: the monitor itself never asks)."""
    row = store.db.execute("SELECT MIN(due_at) FROM outbox WHERE status = 'pending'").fetchone()
    return from_ts(row[0])


def test_key_is_unique_per_article_and_channel_and_replays_are_ignored(outbox):
    """One row per (article, channel), naming both rules that matched it (issue 14: one
    message per article and channel; there was a row per rule before)."""
    alerts = [a for n in (1, 2) for rule in RULES for a in planned(n, rule)]
    assert len(alerts) == 8 and len({a.key for a in alerts}) == 4
    assert len({(a.article_id, a.channel) for a in alerts}) == 4

    assert outbox.add_alerts(alerts, T0) == 4
    # the same matches planned again later (a re-poll, a restart) queue nothing new
    replay = [a for n in (1, 2) for rule in RULES for a in planned(n, rule, T0 + timedelta(days=1))]
    assert [a.key for a in replay] == [a.key for a in alerts]
    assert outbox.add_alerts(replay, T0 + timedelta(days=1)) == 0
    assert outbox.outbox_depth() == 4
    assert {tuple(r["rules"]) for r in outbox.recent_alerts()} == {("ukraine-talks", "abu-dhabi")}


def test_claimed_row_is_not_claimed_again_until_its_lease_expires(outbox):
    outbox.add_alerts([alert(1), alert(2)], T0)
    first = outbox.claim_alerts(T0, T0 + LEASE)
    assert [p.key for p in first] == ["k1", "k2"]
    assert outbox.claim_alerts(T0 + timedelta(minutes=1), T0 + timedelta(minutes=1) + LEASE) == []
    assert outbox.claim_alerts(T0 + LEASE - timedelta(microseconds=1), T0 + 2 * LEASE) == []

    # the worker died without recording anything: after the lease, the rows are due again
    again = outbox.claim_alerts(T0 + LEASE, T0 + 2 * LEASE)
    assert [p.key for p in again] == ["k1", "k2"] and all(p.attempts == 0 for p in again)


def test_release_and_postpone_hand_rows_back_without_counting_an_attempt(outbox):
    outbox.add_alerts([alert(1), alert(2)], T0)
    one, two = outbox.claim_alerts(T0, T0 + LEASE)
    outbox.release_alerts([one.id])
    later = T0 + timedelta(minutes=10)
    outbox.postpone_alerts([two.id], later)

    assert [p.key for p in outbox.claim_alerts(T0, later)] == ["k1"]  # released: due at once
    assert outbox.claim_alerts(later - timedelta(seconds=1), later) == []  # k2 postponed, k1 leased
    assert [p.key for p in outbox.claim_alerts(later, later + LEASE)] == ["k1", "k2"]
    assert {r["attempts"] for r in outbox.recent_alerts()} == {0}


def test_attempts_are_recorded_then_sent_or_dead_and_shown_newest_first(outbox):
    outbox.add_alerts([alert(1), alert(2), alert(3)], T0)
    rows = {p.key: p for p in outbox.claim_alerts(T0, T0 + LEASE)}
    retry = T0 + timedelta(seconds=30)
    outbox.record_attempt(
        [rows["k1"].id], Delivery(False, "connection refused"), T0, retry_at=retry
    )
    outbox.record_attempt([rows["k2"].id], Delivery(False, "HTTP 500"), T0, retry_at=None)
    outbox.record_attempt([rows["k3"].id], Delivery(True), T0)

    recent = outbox.recent_alerts()
    assert [r["title"] for r in recent] == ["title 3", "title 2", "title 1"]
    state = {r["title"]: (r["status"], r["attempts"], r["last_error"]) for r in recent}
    assert state == {
        "title 1": ("pending", 1, "connection refused"),
        "title 2": ("dead", 1, "HTTP 500"),
        "title 3": ("sent", 1, None),
    }
    assert [r["title"] for r in outbox.recent_alerts(status="dead")] == ["title 2"]
    assert next_due(outbox) == retry and outbox.outbox_depth() == 1
    assert outbox.claim_alerts(T0 + timedelta(seconds=29), T0 + LEASE) == []
    [due] = outbox.claim_alerts(retry, retry + LEASE)
    assert (due.key, due.attempts) == ("k1", 1)
    tries = outbox.db.execute("SELECT outbox_id, ok, error FROM attempts ORDER BY id")
    assert [(ok, error) for _, ok, error in tries] == [
        (0, "connection refused"),
        (0, "HTTP 500"),
        (1, None),
    ]


def test_a_digest_is_claimed_whole_even_past_the_limit(outbox):
    outbox.add_alerts([alert(1), *(alert(n, digest=True, rule="morning") for n in range(2, 7))], T0)
    outbox.add_alerts([alert(7), alert(8, digest=True, rule="morning", channel="desk")], T0)
    first = outbox.claim_alerts(T0, T0 + LEASE, limit=3)
    assert [p.key for p in first] == ["k1", "k2", "k3", "k4", "k5", "k6"]
    second = outbox.claim_alerts(T0, T0 + LEASE, limit=3)
    assert [p.key for p in second] == ["k7", "k8"]


def test_rate_limit_history_counts_a_digest_as_one_message(outbox):
    digest = [alert(n, digest=True, rule="morning") for n in range(5)]
    outbox.add_alerts([*digest, alert(9)], T0)
    claimed = outbox.claim_alerts(T0, T0 + LEASE)
    outbox.record_attempt([p.id for p in claimed if p.digest], Delivery(True), T0)
    outbox.record_attempt(
        [p.id for p in claimed if not p.digest], Delivery(True), T0 + timedelta(1)
    )
    assert outbox.sent_since("chat", T0) == [T0, T0 + timedelta(1)]


# ----------------------------------------------------------------------------- two processes

ROWS = 600


def _claimer(db: str | Path, start: multiprocessing.synchronize.Barrier, out: str) -> None:
    """A worker process: claim small batches as fast as it can, mark them sent, report ids."""
    claimed: list[int] = []
    errors: list[str] = []
    with open_store(db) as outbox:
        start.wait(30)
        while True:
            try:
                rows = outbox.claim_alerts(T0, T0 + LEASE, limit=3)
                if not rows:
                    break
                claimed += [r.id for r in rows]
                outbox.record_attempt([r.id for r in rows], Delivery(True), T0)
                time.sleep(
                    0.002
                )  # a send takes time: lets the other worker interleave on a busy box
            except Exception as exc:  # reported to the test, which expects none
                errors.append(repr(exc))
                break
    Path(out).write_text(json.dumps({"claimed": claimed, "errors": errors}))


def test_two_processes_claiming_at_once_never_share_a_row_and_never_fail(store, database, tmp_path):
    store.add_alerts([alert(n) for n in range(ROWS)], T0)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    workers = [ctx.Process(target=_claimer, args=(database, start, str(o))) for o in outs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]

    reports = [json.loads(o.read_text()) for o in outs]
    assert [r["errors"] for r in reports] == [[], []]
    a, b = (r["claimed"] for r in reports)
    assert a and b, "both workers should have claimed rows"
    assert not set(a) & set(b)
    assert len(a) + len(b) == ROWS and len(set(a) | set(b)) == ROWS
    rows = store.db.execute("SELECT status, attempts, COUNT(*) FROM outbox GROUP BY 1, 2")
    assert rows.fetchall() == [("sent", 1, ROWS)]
