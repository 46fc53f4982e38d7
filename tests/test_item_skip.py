"""Unchanged items of a changed feed are skipped; anything edited in an item is still processed.

Real loopback HTTP server and a real database (conftest's `store`: a SQLite file, then
PostgreSQL); the skip itself is invisible to a user, so these
tests hold what a user sees (new, edited, matched) across bodies that change in different ways.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.ingest.fetch import Fetcher
from monitor.models import Source
from monitor.rules.query import RuleSet
from monitor.service.pipeline import poll_source
from monitor.store import Store
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply, Seen

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
RULES = [("talks", "(kiev OR kyiv) AND (colloqui OR tregua OR talks)")]
ITEMS = [
    Item("a1", "Milano, chiude la metro M2", "Lavori sulla linea fino a marzo"),
    Item("a2", "Kiev, vertice a Roma", "Incontro tra i ministri degli esteri"),
    Item("a3", "Meteo, arriva la neve", "Fiocchi attesi in pianura"),
]


class Feed:
    """A feed endpoint without ETag: every poll downloads the body (the body-hash path)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __call__(self, seen: Seen) -> Reply:
        return Reply(200, self.body, {"Content-Type": "application/rss+xml"})


def rows(store: Store, sql: str) -> list[tuple]:
    """What `sql` reads in the store's database (committed rows)."""
    return store.db.execute(sql).fetchall()  # type: ignore[attr-defined]


async def poll(store: Store, source: Source, minutes: int):
    async with Fetcher(timeout=5) as fetcher:
        return await poll_source(
            source,
            fetcher=fetcher,
            store=store,
            rules=RuleSet(RULES),
            now=NOW + timedelta(minutes=minutes),
        )


def setup(server: LoopbackServer, store: Store, body: bytes) -> tuple[Feed, Source]:
    feed = Feed(body)
    server.route("/feed.xml", feed)
    source = Source("wire", server.url("/feed.xml"), language="it")
    store.sync_sources([source], NOW)
    return feed, source


async def test_summary_edit_of_known_guid_is_processed_and_matched(server: LoopbackServer, store):
    feed, source = setup(server, store, rss(ITEMS))
    first = await poll(store, source, 0)
    assert (first.outcome, first.new, first.found) == ("new", 3, ())

    # only a2's summary changes, and now it matches the rule
    edited = Item("a2", ITEMS[1].title, "Nuovi colloqui sulla tregua")
    feed.body = rss([ITEMS[0], edited, ITEMS[2]])
    second = await poll(store, source, 5)
    assert (second.outcome, second.new, second.edited) == ("new", 0, 1)
    assert [(f.article.guid, f.match.rule) for f in second.found] == [("a2", "talks")]
    assert rows(store, "SELECT summary, edits FROM articles WHERE guid = 'a2'") == [
        ("Nuovi colloqui sulla tregua", 1)
    ]
    assert rows(store, "SELECT SUM(edits) FROM articles") == [(1,)]


async def test_changed_body_with_no_changed_item_is_unchanged(server: LoopbackServer, store):
    feed, source = setup(server, store, rss(ITEMS))
    assert (await poll(store, source, 0)).new == 3
    feed.body = rss(ITEMS, title="Renamed channel")  # body differs, no item does
    again = await poll(store, source, 5)
    assert (again.outcome, again.new, again.edited) == ("unchanged", 0, 0)

    feed.body = rss([Item("a4", "Kyiv talks resume", "Colloqui a Ginevra"), *ITEMS])
    third = await poll(store, source, 10)
    assert (third.outcome, third.new, third.edited) == ("new", 1, 0)
    assert [f.article.guid for f in third.found] == ["a4"]


async def test_body_lxml_cannot_prescan_still_finds_new_and_edited(server: LoopbackServer, store):
    broken = rss(ITEMS).replace(b"<description>test", b"<description>&nbsp;test")
    feed, source = setup(server, store, broken)
    assert (await poll(store, source, 0)).new == 3
    edited = Item("a3", "Meteo, la neve arriva domani", ITEMS[2].description)
    feed.body = rss([Item("a4", "Kiev, tregua", "x"), ITEMS[0], ITEMS[1], edited]).replace(
        b"<description>test", b"<description>&nbsp;test"
    )
    again = await poll(store, source, 5)
    assert (again.outcome, again.new, again.edited) == ("new", 1, 1)
    assert rows(store, "SELECT title FROM articles WHERE guid = 'a3'") == [
        ("Meteo, la neve arriva domani",)
    ]


async def test_repeated_guid_with_one_copy_edited_is_processed(server: LoopbackServer, store):
    feed, source = setup(server, store, rss(ITEMS))
    assert (await poll(store, source, 0)).new == 3
    twin = Item("a1", "Milano, riapre la metro M2", ITEMS[0].description)
    feed.body = rss([twin, *ITEMS])  # the first of two items with one URL is the one kept
    again = await poll(store, source, 5)
    assert again.outcome == "new" and again.edited == 1


async def test_prune_keeps_item_hashes_while_the_feed_lists_them(server: LoopbackServer, store):
    feed, source = setup(server, store, rss(ITEMS))
    assert (await poll(store, source, 0)).new == 3
    assert rows(store, "SELECT COUNT(*) FROM item_hashes WHERE source = 'wire'") == [(3,)]
    store.prune(NOW + timedelta(days=30))
    assert rows(store, "SELECT COUNT(*) FROM articles") == [(0,)]
    assert rows(store, "SELECT COUNT(*) FROM item_hashes") == [(3,)]  # still listed: kept
    feed.body = rss(ITEMS, title="Renamed channel")
    back = await poll(store, source, 60 * 24 * 31)  # still in the feed: not new again
    assert (back.outcome, back.new) == ("unchanged", 0)
    feed.body = rss(ITEMS[:1], title="Renamed channel")  # two items leave the feed
    await poll(store, source, 60 * 24 * 32)
    store.prune(NOW + timedelta(days=60))
    assert rows(store, "SELECT item_key FROM item_hashes") == [(ITEMS[0].guid,)]
