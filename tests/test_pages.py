"""Listing-page sources: the real Corriere homepage through the real pipeline on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from monitor.errors import ParseError
from monitor.ingest.fetch import Fetcher
from monitor.ingest.pages import parse_listing
from monitor.models import Source
from monitor.rules.query import RuleSet
from monitor.service.pipeline import analyse, poll_source
from monitor.store import SqliteStore
from tests.loopback import LoopbackServer, Reply

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
LINKS = "h4.title-art-hp a"
HOMEPAGE = Path("articles") / "italian-news-html" / "corriere" / "homepage_2020-02-17.html"
HTML = {"Content-Type": "text/html; charset=iso-8859-1"}  # as Corriere declared it


@pytest.fixture
def store(tmp_path: Path):
    with SqliteStore(tmp_path / "monitor.db") as s:
        yield s


@pytest.fixture
def homepage(corpus: Path) -> bytes:
    return (corpus / HOMEPAGE).read_bytes()


def later_version(page: bytes, *, drop: int, add: list[tuple[str, str]]) -> bytes:
    """The page a few minutes later: the first `drop` headlines gone, new ones on top."""
    doc = BeautifulSoup(page, "lxml")
    for h4 in doc.select("h4.title-art-hp")[:drop]:
        h4.decompose()
    first = doc.select_one("h4.title-art-hp")
    assert first is not None
    for href, title in reversed(add):
        fresh = doc.new_tag("h4", attrs={"class": "title-art-hp is-medium"})
        link = doc.new_tag("a", href=href)
        link.string = title
        fresh.append(link)
        first.insert_before(fresh)
    return doc.encode("utf-8")


async def poll(store: SqliteStore, source: Source, now: datetime, rules: RuleSet | None = None):
    async with Fetcher(timeout=10) as fetcher:
        return await poll_source(
            source, fetcher=fetcher, store=store, rules=rules or RuleSet([]), now=now
        )


def test_corriere_homepage_links_titles_and_accents(homepage: bytes):
    source = Source("corriere-hp", "https://www.corriere.it/", kind="html", links=LINKS)
    parsed = parse_listing(
        homepage, url="https://www.corriere.it/", charset="iso-8859-1", source=source
    )
    links = [e.link for e in parsed.entries]
    assert len(links) > 100 and len(links) == len(set(links))
    assert all(link.startswith(("https://", "http://")) for link in links)
    titles = [e.title for e in parsed.entries]
    assert sum(1 for t in titles if t) >= 0.95 * len(titles)
    assert any("più" in t or "è" in t for t in titles)
    assert not any("Ã" in t for t in titles)
    assert parsed.language == "it-IT"


async def test_homepage_polled_then_later_version_yields_only_new_links(
    server: LoopbackServer, store: SqliteStore, homepage: bytes
):
    server.route("/", Reply(200, homepage, HTML))
    source = Source("corriere-hp", server.url("/"), kind="html", links=LINKS, language="it")
    store.sync_sources([source], NOW)
    # the pipeline's own count: parse_listing, then canonical-URL dedupe (tracking parameters)
    expected = len(analyse(homepage, source, url=source.url, charset=None, now=NOW))
    assert expected > 100

    first = await poll(store, source, NOW)
    assert first.outcome == "new"
    # a few headlines appear twice under two URLs (video + article): the store keeps them as copies
    assert expected * 0.95 <= first.new <= expected
    assert store.count_articles() == first.new

    new_links = [
        (
            "/esteri/26_febbraio_03/kiev-garanzie-sicurezza-abu-dhabi.shtml",
            "Kiev, garanzie di sicurezza: nuovi colloqui ad Abu Dhabi",
        ),
        (
            "https://www.corriere.it/politica/26_febbraio_03/governo-decreto.shtml",
            "Il governo approva il decreto: ecco cosa cambierà",
        ),
    ]
    changed = later_version(homepage, drop=5, add=new_links)
    server.route("/", Reply(200, changed, {"Content-Type": "text/html; charset=utf-8"}))
    rules = RuleSet([("kiev", "kiev AND colloqui")])
    second = await poll(store, source, NOW + timedelta(minutes=10), rules)
    assert (second.outcome, second.new) == ("new", 2)
    assert [f.article.url for f in second.found] == [server.url(new_links[0][0])]
    titles = {a.title for _, a in store.articles()}
    assert "Il governo approva il decreto: ecco cosa cambierà" in titles


async def test_selector_that_stops_matching_is_reported_and_recovers(
    server: LoopbackServer, store: SqliteStore, homepage: bytes
):
    server.route("/", Reply(200, homepage, HTML))
    source = Source("corriere-hp", server.url("/"), kind="html", links=LINKS)
    store.sync_sources([source], NOW)
    assert (await poll(store, source, NOW)).outcome == "new"

    redesigned = homepage.replace(b"title-art-hp", b"headline-card")
    server.route("/", Reply(200, redesigned, HTML))
    broken = await poll(store, source, NOW + timedelta(minutes=5))
    assert broken.outcome == "error"
    state = store.source_state("corriere-hp")
    assert state.consecutive_errors == 1
    assert state.last_error == (
        "parse: selector 'h4.title-art-hp a' matched no links: the page layout may have changed"
    )
    health = {h["name"]: h for h in store.sources_health()}["corriere-hp"]
    assert "matched no links" in health["last_error"]

    server.route("/", Reply(200, homepage, HTML))
    back = await poll(store, source, NOW + timedelta(minutes=10))
    assert back.outcome in ("unchanged", "new")
    state = store.source_state("corriere-hp")
    assert state.consecutive_errors == 0
    assert state.last_success == NOW + timedelta(minutes=10)


def test_item_container_gives_title_summary_and_date():
    page = """<html lang="it"><body><ul>
      <li class="item"><a href="/img1.html"><img src="x.jpg" alt="foto"></a>
        <h3><a href="/a1.html#top">  Primo   titolo </a></h3><p class="sub">Sommario uno</p>
        <time datetime="2026-02-03T08:00:00+01:00">3 febbraio</time></li>
      <li class="item"><h3><a href="https://other.example.net/a2">Secondo</a></h3>
        <span class="when">3 febbraio 2026</span><p class="sub">Sommario due</p></li>
      <li class="item"><h3><a href="javascript:void(0)">Non un articolo</a></h3></li>
      <li class="item"><h3><a href="/a1.html">Primo di nuovo</a></h3></li>
    </ul></body></html>"""
    source = Source(
        "min",
        "https://www.example.gov.it/press/",
        kind="html",
        links="li h3 a",
        summary=".sub",
        date="time, .when",
    )
    parsed = parse_listing(page.encode(), url=source.url, charset=None, source=source)
    got = [(e.link, e.title, e.summary_html, e.published) for e in parsed.entries]
    assert got == [
        (
            "https://www.example.gov.it/a1.html",
            "Primo titolo",
            "Sommario uno",
            datetime(2026, 2, 3, 7, 0, tzinfo=UTC),
        ),
        (
            "https://other.example.net/a2",
            "Secondo",
            "Sommario due",
            datetime(2026, 2, 3, tzinfo=UTC),
        ),
    ]


def test_headline_selector_without_anchor_and_bad_selectors():
    page = (
        b'<html><body><h2 class="t"><a href="/x">Uno</a></h2><h2 class="t">Due</h2></body></html>'
    )
    source = Source("s", "https://e.example/", kind="html", links="h2.t")
    assert [
        e.link for e in parse_listing(page, url=source.url, charset=None, source=source).entries
    ] == ["https://e.example/x"]
    with pytest.raises(ParseError, match="invalid CSS selector"):
        parse_listing(
            page,
            url=source.url,
            charset=None,
            source=Source("s", source.url, kind="html", links="h2[["),
        )
    with pytest.raises(ParseError, match="no http"):
        parse_listing(
            b"<a href='mailto:x@y'>m</a>",
            url=source.url,
            charset=None,
            source=Source("s", source.url, kind="html", links="a"),
        )
