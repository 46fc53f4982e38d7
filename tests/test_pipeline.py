"""poll_source end to end: a real feed on 127.0.0.1, a real database (conftest's `store`: a
SQLite file, then PostgreSQL), real rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.ingest.fetch import Fetcher
from monitor.models import Source
from monitor.rules.query import RuleSet
from monitor.service.pipeline import poll_source
from monitor.store import Store, open_store
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply, Seen

TALKS = (
    '(ucraina OR ukraine OR kiev OR kyiv) AND (negoziat* OR colloqui OR "garanzie di sicurezza"'
    ' OR tregua OR ceasefire OR "peace talks")'
)
NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)

ITEMS = [
    Item("a1", "Garanzie di sicurezza per Kiev, nuovi colloqui ad Abu Dhabi"),
    Item("a2", "Milano, chiude la metro M2 per lavori"),
    Item("a3", "Ukraine and Russia resume peace talks in Abu Dhabi"),
]


class FeedWithEtag:
    """A feed endpoint that honours If-None-Match like a real server."""

    def __init__(self, items: list[Item]) -> None:
        self.set(items)

    def set(self, items: list[Item]) -> None:
        self.body = rss(items)
        self.etag = f'"{hash(self.body) & 0xFFFFFFFF:x}"'

    def __call__(self, seen: Seen) -> Reply:
        if seen.headers.get("If-None-Match") == self.etag:
            return Reply(304, headers={"ETag": self.etag})
        return Reply(200, self.body, {"Content-Type": "application/rss+xml", "ETag": self.etag})


def rows(store: Store, sql: str) -> list[tuple]:
    """What `sql` reads in the store's database, as another reader sees it (committed rows)."""
    return store.db.execute(sql).fetchall()  # type: ignore[attr-defined]


async def poll(store: Store, source: Source, rules: RuleSet, now: datetime = NOW):
    async with Fetcher(timeout=5) as fetcher:
        return await poll_source(source, fetcher=fetcher, store=store, rules=rules, now=now)


async def test_repoll_new_item_and_edited_title_give_exact_rows(server: LoopbackServer, store):
    feed = FeedWithEtag(ITEMS)
    server.route("/esteri.xml", feed)
    source = Source("corriere-esteri", server.url("/esteri.xml"), language="it")
    store.sync_sources([source], NOW)
    rules = RuleSet([("talks", TALKS)])

    first = await poll(store, source, rules)
    assert (first.outcome, first.new) == ("new", 3)
    assert sorted(f.article.title for f in first.found) == [ITEMS[0].title, ITEMS[2].title]
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(3,)]

    second = await poll(store, source, rules, NOW + timedelta(minutes=5))
    assert second.outcome == "not_modified"
    assert server.hits("/esteri.xml")[-1].headers.get("If-None-Match") == feed.etag
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(3,)]

    feed.set([*ITEMS, Item("a4", "Tregua energetica violata, Kiev accusa Mosca")])
    third = await poll(store, source, rules, NOW + timedelta(minutes=10))
    assert (third.outcome, third.new) == ("new", 1)
    assert [f.article.title for f in third.found] == [
        "Tregua energetica violata, Kiev accusa Mosca"
    ]
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(4,)]

    edited = [Item("a1", "Garanzie di sicurezza per Kiev: risposta in tre fasi"), *ITEMS[1:]]
    feed.set([*edited, Item("a4", "Tregua energetica violata, Kiev accusa Mosca")])
    fourth = await poll(store, source, rules, NOW + timedelta(minutes=15))
    assert (fourth.outcome, fourth.new, fourth.edited) == ("new", 0, 1)
    assert fourth.found == ()  # same article, same rule: not a new match
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(4,)]
    assert rows(store, "SELECT title, edits FROM articles WHERE guid = 'a1'") == [
        ("Garanzie di sicurezza per Kiev: risposta in tre fasi", 1)
    ]
    assert rows(store, "SELECT COUNT(*) FROM matches") == [(3,)]


async def test_same_item_in_two_feeds_of_one_outlet_is_one_row(server: LoopbackServer, store):
    shared = Item(
        "x1", "Zelensky: colloqui con Mosca", link="https://www.corriere.it/esteri/x1.shtml"
    )
    server.route("/esteri.xml", Reply(body=rss([shared, ITEMS[1]])))
    # the homepage feed carries the same article with tracking parameters in its link
    copy = Item(
        "https://www.corriere.it/esteri/x1.shtml",
        shared.title,
        link="https://www.corriere.it/esteri/x1.shtml?utm_source=homepage&utm_medium=rss",
    )
    server.route("/homepage.xml", Reply(body=rss([copy])))
    esteri = Source("corriere-esteri", server.url("/esteri.xml"))
    home = Source("corriere-homepage", server.url("/homepage.xml"))
    store.sync_sources([esteri, home], NOW)
    rules = RuleSet([("talks", TALKS)])

    await poll(store, esteri, rules)
    again = await poll(store, home, rules)
    assert again.new == 0 and again.found == ()
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(2,)]


async def test_restart_keeps_articles_and_state(server: LoopbackServer, database: str | Path):
    server.route("/feed", FeedWithEtag(ITEMS))
    source = Source("feed", server.url("/feed"))
    rules = RuleSet([("talks", TALKS)])
    with open_store(database) as store:
        store.sync_sources([source], NOW)
        assert (await poll(store, source, rules)).new == 3
    with open_store(database) as store:  # a new process opening the same database
        result = await poll(store, source, rules, NOW + timedelta(minutes=5))
        assert result.outcome == "not_modified" and result.found == ()
        assert store.count_articles() == 3


async def test_failing_source_backs_off_and_recovers(server: LoopbackServer, store):
    server.route("/feed", Reply(500, b"oops"))
    source = Source("flaky", server.url("/feed"), interval=60)
    store.sync_sources([source], NOW)
    rules = RuleSet([("talks", TALKS)])

    first = await poll(store, source, rules)
    assert first.outcome == "error" and "500" in (first.error or "")
    second = await poll(store, source, rules, NOW + timedelta(minutes=1))
    state = store.source_state("flaky")
    assert state.consecutive_errors == 2
    assert state.next_poll == NOW + timedelta(minutes=1) + timedelta(seconds=120)
    assert "500" in (second.error or "")

    server.route("/feed", Reply(body=rss(ITEMS)))
    third = await poll(store, source, rules, NOW + timedelta(minutes=5))
    assert third.new == 3
    state = store.source_state("flaky")
    assert state.consecutive_errors == 0 and state.last_success == NOW + timedelta(minutes=5)


async def test_retry_after_sets_next_poll(server: LoopbackServer, store):
    server.route("/feed", Reply(429, b"slow down", {"Retry-After": "900"}))
    source = Source("busy", server.url("/feed"), interval=60)
    store.sync_sources([source], NOW)
    result = await poll(store, source, RuleSet([]))
    assert result.outcome == "error"
    assert store.source_state("busy").next_poll >= NOW + timedelta(seconds=900)


async def test_broken_feed_is_a_recorded_error(server: LoopbackServer, store):
    server.route("/feed", Reply(body=b"<html><body>Not a feed</body></html>"))
    source = Source("html-instead", server.url("/feed"))
    store.sync_sources([source], NOW)
    result = await poll(store, source, RuleSet([]))
    assert result.outcome == "error"
    assert store.source_state("html-instead").last_error


async def test_feed_with_only_new_items_is_polled_sooner(server: LoopbackServer, store):
    """Every item new on a known feed: some may have scrolled off unseen, so look again sooner."""
    server.route("/feed", Reply(body=rss(ITEMS)))
    source = Source("busy-feed", server.url("/feed"), interval=600)
    store.sync_sources([source], NOW)
    rules = RuleSet([])
    async with Fetcher(timeout=5) as fetcher:
        first = await poll_source(
            source, fetcher=fetcher, store=store, rules=rules, now=NOW, jitter=lambda: 0.0
        )
        assert first.new == 3  # a first poll is all new too, but there was nothing to miss
        assert store.source_state("busy-feed").next_poll == NOW + timedelta(seconds=600)

        later = NOW + timedelta(minutes=10)
        server.route(
            "/feed", Reply(body=rss([Item(f"n{i}", f"Nuova notizia {i}") for i in range(3)]))
        )
        second = await poll_source(
            source, fetcher=fetcher, store=store, rules=rules, now=later, jitter=lambda: 0.0
        )
        assert second.new == 3
        assert store.source_state("busy-feed").next_poll == later + timedelta(seconds=300)

        server.route("/feed", Reply(body=rss([Item("n0", "Nuova notizia 0"), Item("z", "Altro")])))
        third = await poll_source(
            source, fetcher=fetcher, store=store, rules=rules, now=later, jitter=lambda: 0.0
        )
        assert third.new == 1  # one known item still there: no gap
        assert store.source_state("busy-feed").next_poll == later + timedelta(seconds=600)
