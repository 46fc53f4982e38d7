"""fetch_article end to end: a one-line feed and real article pages on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.ingest.fetch import Fetcher
from monitor.ingest.fulltext import FullText
from monitor.models import Source
from monitor.rules.query import RuleSet
from monitor.service.pipeline import poll_source
from monitor.store import SqliteStore
from tests.feeds import Item, rss
from tests.loopback import LoopbackServer, Reply

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
CORRIERE = Path("articles") / "italian-news-html" / "corriere"
PAGES = ["articles_4.html", "articles_6.html", "articles_9.html", "articles_18.html"]
LATIN1 = {"Content-Type": "text/html; charset=iso-8859-1"}  # as Corriere declares its pages
BODY_RULE = RuleSet([("hospital", "Cisanello")])  # a word only in the body of articles_4


@pytest.fixture
def pages() -> FullText:
    """The test's full-text fetcher (its robots.txt cache lives as long), with no pause."""
    return FullText(delay=0.0)


@pytest.fixture
def store(tmp_path: Path):
    with SqliteStore(tmp_path / "monitor.db") as s:
        yield s


def serve(server: LoopbackServer, corpus: Path, paths: list[str], robots: str = "") -> None:
    """A feed with one-line descriptions whose items link to real Corriere pages."""
    items = []
    for n, path in enumerate(paths):
        server.route(
            path, Reply(200, (corpus / CORRIERE / PAGES[n % len(PAGES)]).read_bytes(), LATIN1)
        )
        items.append(Item(f"g{n}", f"Notizia numero {n}", "Una riga.", link=server.url(path)))
    server.route("/feed.xml", Reply(200, rss(items), {"Content-Type": "application/rss+xml"}))
    server.route("/robots.txt", Reply(200, robots.encode(), {"Content-Type": "text/plain"}))


async def poll(
    store: SqliteStore,
    source: Source,
    pages: FullText,
    rules: RuleSet = BODY_RULE,
    now: datetime = NOW,
):
    store.sync_sources([source], now)
    async with Fetcher(timeout=10) as fetcher:
        return await poll_source(
            source, fetcher=fetcher, store=store, rules=rules, now=now, fulltext=pages
        )


def stored(store: SqliteStore) -> dict[str, str]:
    return {a.url: a.text for _, a in store.articles()}


async def test_body_word_matches_after_enrichment(
    server: LoopbackServer, store: SqliteStore, corpus: Path, pages: FullText
):
    serve(server, corpus, ["/art/a4.html", "/art/a6.html"])
    plain = Source("plain", server.url("/feed.xml"), allow_private=True)
    assert (await poll(store, plain, pages)).found == ()  # the feed alone never mentions it

    source = Source(
        "full", server.url("/feed.xml") + "?full", fetch_article=True, allow_private=True
    )
    with SqliteStore(store.path.parent / "full.db") as full:
        result = await poll(full, source, pages)
        assert [f.article.url for f in result.found] == [server.url("/art/a4.html")]
        text = stored(full)[server.url("/art/a4.html")]
        assert "L’airbag è esploso" in text and "Cisanello" in text  # accents right
        article = full.article(result.found[0].article_id)
        assert article is not None
        assert article.title == "Notizia numero 0"  # the feed's title wins
        assert article.author == "Marco Gasperetti"  # filled from the page
    assert len(server.hits("/robots.txt")) == 1


async def test_robots_disallow_is_respected(
    server: LoopbackServer, store: SqliteStore, corpus: Path, pages: FullText
):
    serve(
        server,
        corpus,
        ["/ok/a4.html", "/private/a6.html"],
        robots="User-agent: *\nDisallow: /private/\n",
    )
    source = Source("full", server.url("/feed.xml"), fetch_article=True, allow_private=True)
    result = await poll(store, source, pages)
    assert result.new == 2
    assert server.hits("/private/a6.html") == []
    texts = stored(store)
    assert texts[server.url("/private/a6.html")] == "Una riga."  # kept with the feed text
    assert "Cisanello" in texts[server.url("/ok/a4.html")]

    # robots.txt is cached: a second poll with a new item does not fetch it again
    serve(
        server,
        corpus,
        ["/ok/a4.html", "/private/a6.html", "/ok/a9.html"],
        robots="User-agent: *\nDisallow: /private/\n",
    )
    await poll(store, source, pages, now=NOW + timedelta(minutes=5))
    assert len(server.hits("/ok/a9.html")) == 1
    assert len(server.hits("/robots.txt")) == 1


async def test_robots_switch_off_fetches_everything(
    server: LoopbackServer, store: SqliteStore, corpus: Path, pages: FullText
):
    serve(server, corpus, ["/private/a4.html"], robots="User-agent: *\nDisallow: /\n")
    source = Source(
        "full", server.url("/feed.xml"), fetch_article=True, allow_private=True, robots=False
    )
    result = await poll(store, source, pages)
    assert len(result.found) == 1
    assert server.hits("/robots.txt") == []


async def test_cap_per_poll_keeps_the_rest_with_feed_text(
    server: LoopbackServer, store: SqliteStore, corpus: Path
):
    pages = FullText(delay=0.0, max_per_poll=3)
    paths = [f"/art/{n}.html" for n in range(7)]
    serve(server, corpus, paths)
    source = Source("full", server.url("/feed.xml"), fetch_article=True, allow_private=True)
    result = await poll(store, source, pages)
    assert result.new == 7  # nothing lost
    fetched = [p for p in paths if server.hits(p)]
    assert len(fetched) == 3
    texts = stored(store)
    assert sum(1 for t in texts.values() if t == "Una riga.") == 4


async def test_private_address_is_not_fetched_unless_allowed(
    server: LoopbackServer, store: SqliteStore, corpus: Path, pages: FullText
):
    serve(server, corpus, ["/art/a4.html"])
    # the feed URL itself is trusted (the user wrote it); its links to 127.0.0.1 are not
    source = Source("full", server.url("/feed.xml"), fetch_article=True, allow_private=False)
    result = await poll(store, source, pages)
    assert result.new == 1 and result.found == ()
    assert server.hits("/art/a4.html") == [] and server.hits("/robots.txt") == []
    assert stored(store) == {server.url("/art/a4.html"): "Una riga."}


async def test_failing_page_keeps_the_feed_article(
    server: LoopbackServer, store: SqliteStore, corpus: Path, pages: FullText
):
    serve(server, corpus, ["/art/a4.html", "/art/gone.html"])
    server.route("/art/gone.html", Reply(500, b"boom"))
    server.route("/robots.txt", Reply(404, b"no robots"))  # 4xx robots.txt: all allowed
    source = Source("full", server.url("/feed.xml"), fetch_article=True, allow_private=True)
    result = await poll(store, source, pages)
    assert result.new == 2 and len(result.found) == 1
    assert stored(store)[server.url("/art/gone.html")] == "Una riga."
