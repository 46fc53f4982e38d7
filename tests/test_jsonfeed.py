"""JSON Feed (jsonfeed.org 1.0 and 1.1) as a feed kind, detected by its content.

Real JSON Feeds from other parsers' test corpora (read in place), a JSON Feed served by the
loopback server and polled by the real `news-monitor once` into a real SQLite file, and hostile
bodies through the real poll pipeline (`tests/test_hostile.py`'s harness: a time bound, a memory
bound, an error recorded or a clean article, never a crash).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.ingest.parse import parse_feed
from monitor.store import SqliteStore, open_store
from tests.loopback import LoopbackServer, Reply
from tests.test_hostile import assert_article, assert_error, poll

VERSION = "https://jsonfeed.org/version/1.1"


def feed(*items: dict, **top: object) -> bytes:
    return json.dumps({"version": VERSION, "title": "Wire", **top, "items": list(items)}).encode()


@pytest.fixture
def store(tmp_path: Path):
    with SqliteStore(tmp_path / "monitor.db") as s:
        yield s


# ---------------------------------------------------------------- real JSON Feeds


def test_a_full_json_feed_maps_every_field(corpus: Path) -> None:
    """reader's full.json (1.1): title, url, id, both contents, summary, both dates, authors
    (1.1's list and 1.0's object) and the item's language over the feed's."""
    parsed = parse_feed((corpus / "parser-corpora/reader/data/full.json").read_bytes(), url="x")
    assert (parsed.title, parsed.language, len(parsed.entries)) == ("My Example Feed", "en", 2)
    second, first = parsed.entries
    assert second.guid == "2" and second.link == "https://example.org/second-item"
    assert second.title == "Title" and second.summary_html == "A summary"
    assert second.content_html == 'Content with <a href="http://example.com/">link</a>'
    assert second.published == datetime(2020, 1, 2, 21, 0, tzinfo=UTC)  # -07:00
    assert second.updated == datetime(2020, 1, 4, 0, 0, tzinfo=UTC)  # +0100
    assert second.language == "de" and second.author is None  # an author with no name
    assert first.author == "Jane" and first.language == "en"  # 1.0's `author`; the feed's
    assert first.published == datetime(2020, 1, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "title", "items"),
    [
        ("feedparser-tests/json/example.json", "My Example Feed", 2),
        ("parser-corpora/atoma/tests/json_feed/jsonfeed.org.json", "JSON Feed", 1),
        ("parser-corpora/feed-rs/fixture/jsonfeed/jsonfeed_elastic_1.1.json", None, 3),
        ("parser-corpora/rsparser/Resources/DaringFireball.json", "Daring Fireball", 48),
        ("parser-corpora/rsparser/Resources/3960.json", None, 20),
        ("parser-corpora/feedjira/sample_feeds/json_feed.json", "inessential.com", 20),
    ],
)
def test_real_json_feeds_parse(corpus: Path, path: str, title: str | None, items: int) -> None:
    parsed = parse_feed((corpus / path).read_bytes(), url="https://example.org/feed.json")
    assert len(parsed.entries) == items and not parsed.warning
    assert title is None or parsed.title == title
    assert all(e.guid or e.link for e in parsed.entries)


def test_wrong_types_are_ignored_and_named_in_the_warning(corpus: Path) -> None:
    """reader's invalid.json: a list for a title, an object for a date, a float for a URL."""
    parsed = parse_feed((corpus / "parser-corpora/reader/data/invalid.json").read_bytes(), url="x")
    assert parsed.entries and parsed.title == ""
    assert parsed.warning.startswith("malformed: JSON Feed ") and "not text" in parsed.warning
    first = parsed.entries[0]
    assert (first.guid, first.link, first.title, first.published) == ("2", None, "", None)


def test_detected_by_content_not_by_url_or_content_type() -> None:
    body = b"\xef\xbb\xbf \n" + feed({"id": "a", "title": "Ceasefire", "url": "/a"})
    for url in ("https://x.example/feed.xml", "https://x.example/rss"):
        parsed = parse_feed(body, url=url, content_type="application/rss+xml")
        assert [e.link for e in parsed.entries] == [url.rsplit("/", 1)[0] + "/a"]


def test_content_text_stays_text_and_titles_decode_entities() -> None:
    item = {"id": "1", "title": "Talks &#8211; day 2", "content_text": "a <b> c\n\nnext"}
    [entry] = parse_feed(feed(item), url="x").entries
    assert entry.title == "Talks &#8211; day 2"  # normalize decodes it, as an RSS title
    assert entry.content_html == "a &lt;b&gt; c\n\nnext"


def test_raw_line_breaks_inside_strings_are_read() -> None:
    """Invalid JSON by the letter, common in hand-made feeds: read, as feedparser reads a
    sloppy RSS feed."""
    body = (
        b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": "1", "title": "a\tb\nc"}]}'
    )
    [entry] = parse_feed(body, url="x").entries
    assert entry.title == "a\tb\nc"


# ---------------------------------------------------------------- hostile bodies


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "looks like JSON but does not parse: line 1"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "does not parse"),
        (b"{}", "not a feed: JSON, but not a JSON Feed"),
        (b'{"version": 1.1, "items": []}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": {}}', "without an `items`"),
        (b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", "does not parse"),
        (b'{"title": "\xff\xfe"}', "not UTF-8"),
    ],
    ids=["cut", "cut-in-items", "empty", "no-version", "items-object", "deep", "big-int", "bytes"],
)
def test_bad_json_is_a_clear_parse_error(body: bytes, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, url="https://x.example/feed.json")
    assert fragment in str(caught.value)


async def test_hostile_json_through_the_real_pipeline(server, store) -> None:
    deep = b'{"version": "https://jsonfeed.org/version/1", "items": ' + b"[" * 100_000
    out = await poll(server, store, Reply(body=deep, headers={"Content-Type": "application/json"}))
    assert_error(out, "parse: not a feed: JSON nested too deeply")
    out = await poll(server, store, Reply(body=b"{}"), path="/empty", name="empty")
    assert_error(out, "parse: not a feed: JSON, but not a JSON Feed")


async def test_huge_strings_are_cut_and_wrong_types_skipped(server, store) -> None:
    items = [
        7,
        {"id": ["x"], "title": {"a": 1}, "url": 12, "date_published": []},
        {"id": "a", "title": "Breaking news", "url": "https://news.example/a",
         "content_text": "Ukraine " * 100_000,
         "authors": [{"name": 5}, "x", {"name": "A\u0000nn\n"}]},
    ]  # fmt: skip
    out = await poll(server, store, Reply(body=feed(*items)), max_bytes=2_000_000)
    article = assert_article(out)
    assert len(article.text) < 250_000 and article.author == "Ann"
    assert "JSON Feed item 1: is a number, not an object" in out.result.warning


def test_100k_items_parse_within_bounds() -> None:
    """As many items as fit under the size cap are read, like an RSS feed's (no crash, no
    quadratic blow-up); the fetcher's `max_bytes` is what bounds them."""
    items = [
        {"id": str(i), "url": f"https://e.example/{i}", "title": f"t{i}"} for i in range(100_000)
    ]
    parsed = parse_feed(feed(*items), url="x")
    assert len(parsed.entries) == 100_000 and parsed.entries[-1].guid == "99999"


# ---------------------------------------------------------------- `news-monitor once`


def _once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "once"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_json_feed_source_alerts_through_once(tmp_path: Path) -> None:
    """A `kind = "feed"` source whose server says application/json: the first poll is the
    baseline, the item published after it alerts, printed by `once` and stored."""
    now = datetime.now(UTC).replace(microsecond=0)
    old = {"id": "old", "title": "Weather report", "url": "https://news.example/old",
           "date_published": (now - timedelta(hours=1)).isoformat()}  # fmt: skip
    new = {
        "id": "tag:news.example,2026:ceasefire",
        "title": "Ceasefire talks resume in Geneva",
        "url": "https://news.example/ceasefire?utm_source=json",
        "content_html": "<p>Delegations met <b>today</b>.</p>",
        "date_published": (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "authors": [{"name": "Jane Roe"}],
        "language": "en",
    }
    config = tmp_path / "monitor.toml"
    with LoopbackServer() as server:
        config.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "monitor.db"}"\n\n'
            f'[[sources]]\nname = "jsonwire"\nurl = "{server.url("/feed.json")}"\n\n'
            '[[rules]]\nname = "talks"\nquery = "ceasefire AND geneva"\nalert = "article"\n',
            encoding="utf-8",
        )
        headers = {"Content-Type": "application/json; charset=utf-8"}
        server.route("/feed.json", Reply(body=feed(old), headers=headers))
        first = _once(config)
        server.route("/feed.json", Reply(body=feed(new, old), headers=headers))
        second = _once(config)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "Traceback" not in first.stderr + second.stderr
    assert "[talks] Ceasefire talks resume in Geneva" in second.stdout
    assert "1 new" in second.stderr and "1 matches" in second.stderr
    with open_store(tmp_path / "monitor.db", read_only=True) as db:
        stored = {a.guid: a for _, a in db.articles()}
    article = stored["tag:news.example,2026:ceasefire"]
    assert article.url == "https://news.example/ceasefire"  # canonical: tracking dropped
    assert (article.source, article.author, article.language) == ("jsonwire", "Jane Roe", "en")
    assert article.text == "Delegations met today."
