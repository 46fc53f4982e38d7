"""Hostile servers on 127.0.0.1, each polled through the real pipeline into a real SQLite file.

Every case must end as a recorded error with a clear message or as a cleaned article, within a
loose time bound (a hang guard, not a speed test) and a memory bound (tracemalloc peak, which
sees every Python allocation in every thread, plus the growth of the process's peak RSS, which
also sees libxml2 and zlib). Rendered alerts of whatever got stored must be inert in every format.
"""

from __future__ import annotations

import codecs
import itertools
import resource
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import markdown
import pytest
from lxml import html as lxml_html

from monitor.alerts.escape import safe_url
from monitor.alerts.render import render_alert
from monitor.ingest.fetch import Fetcher
from monitor.ingest.identity import has_link
from monitor.models import Article, Match, Message, PollResult, Rule, Source, SourceState
from monitor.rules.query import RuleSet
from monitor.service.pipeline import poll_source
from monitor.store import SqliteStore
from tests.loopback import LoopbackServer, Reply

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
TIMEOUT = 1.0  # the fetcher's deadline in these tests
MAX_BYTES = 1_000_000  # the fetcher's size cap in these tests
# Seconds; a loose bound that only a hang or a blow-up would cross. Measured under tracemalloc,
# which slows allocation-heavy Python (feedparser) about 8x: 100k nested elements take ~6 s.
HANG_GUARD = 15.0
PEAK_MB = 64.0  # tracemalloc peak during one poll
RSS_GROWTH_MB = 256.0  # growth of the process's peak resident size during one poll
RULES = RuleSet([("breaking", "breaking OR ukraine")])
RULE = Rule("breaking", "breaking OR ukraine")
MB = 1_000_000


def rss(title: str = "Breaking news", *, desc: str = "Ukraine talks", link: str | None = None,
        date: str = "Tue, 03 Feb 2026 08:00:00 GMT", guid: str = "https://news.example/a",
        prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:  # fmt: skip
    """One-item RSS 2.0 text; arguments are inserted verbatim (callers escape what they mean)."""
    link_el = f"<link>{link}</link>" if link is not None else "<link>https://news.example/a</link>"
    return (
        f'{prolog}<rss version="2.0"><channel><title>Hostile</title>'
        f"<link>https://news.example/</link><item><title>{title}</title>{link_el}"
        f'<guid isPermaLink="false">{guid}</guid><description>{desc}</description>'
        f"<pubDate>{date}</pubDate></item></channel></rss>"
    )


FEED = rss().encode()


@dataclass
class Outcome:
    result: PollResult
    state: SourceState
    articles: list[Article]
    seconds: float
    peak_mb: float
    rss_growth_mb: float

    @property
    def error(self) -> str:
        return self.state.last_error or ""

    def everything(self) -> str:
        """All text the poll left behind: the error and every stored field."""
        parts = [self.error] + [f"{a.title}\n{a.summary}\n{a.text}\n{a.url}" for a in self.articles]
        return "\n".join(parts)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def poll(
    server: LoopbackServer,
    store: SqliteStore,
    reply: Reply | None = None,
    *,
    path: str = "/feed",
    allow_private: bool = True,
    name: str = "hostile",
    max_bytes: int = MAX_BYTES,
) -> Outcome:
    """Serve `reply` at `path` (when given), poll it once, and measure time and memory."""
    if reply is not None:
        server.route(path, reply)
    source = Source(name, server.url(path), allow_private=allow_private)
    store.sync_sources([source], NOW)
    rss_before = _maxrss_mb()
    tracemalloc.start()
    started = time.monotonic()
    try:
        async with Fetcher(timeout=TIMEOUT, max_bytes=max_bytes) as fetcher:
            result = await poll_source(source, fetcher=fetcher, store=store, rules=RULES, now=NOW)
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
    state = store.source_state(name)
    articles = [a for _, a in store.articles() if a.source == name]
    outcome = Outcome(result, state, articles, seconds, peak, _maxrss_mb() - rss_before)
    assert outcome.seconds < HANG_GUARD, f"took {outcome.seconds:.1f} s: {outcome.error}"
    assert outcome.peak_mb < PEAK_MB, f"peak {outcome.peak_mb:.0f} MB"
    assert outcome.rss_growth_mb < RSS_GROWTH_MB, f"RSS grew {outcome.rss_growth_mb:.0f} MB"
    assert not outcome.error.startswith("internal error"), outcome.error
    return outcome


def assert_error(outcome: Outcome, *fragments: str) -> None:
    assert outcome.result.outcome == "error", outcome.result
    assert outcome.articles == []
    assert outcome.state.consecutive_errors == 1
    for fragment in fragments:
        assert fragment in outcome.error, outcome.error


def assert_article(outcome: Outcome, title: str = "Breaking news") -> Article:
    assert outcome.result.outcome == "new", outcome.error
    assert outcome.state.last_error is None
    assert [a.title for a in outcome.articles] == [title]
    article = outcome.articles[0]
    assert_inert(render(article), article)
    return article


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "monitor.db") as s:
        yield s


# --- inert alerts -------------------------------------------------------------------------

ALLOWED_TAGS = {"p", "b", "i", "br", "a", "ul", "li", "strong", "em"}


def render(article: Article, terms: tuple[str, ...] = ("breaking",)) -> Message:
    return render_alert(
        article, Match("breaking", terms), source_title=article.source, rule=RULE, timezone="UTC"
    )


def _assert_inert_html(markup: str, url: str | None, what: str) -> None:
    """Only harmless tags, no attribute but an href, and that href only the article's URL."""
    root = lxml_html.fragment_fromstring(markup, create_parent="div")
    for el in root.iterdescendants():
        assert isinstance(el.tag, str) and el.tag in ALLOWED_TAGS, f"{what}: <{el.tag}>"
        attrs = dict(el.attrib)
        if el.tag == "a":
            assert attrs == {"href": url}, f"{what}: link {attrs} (article URL {url})"
        else:
            assert not attrs, f"{what}: <{el.tag} {attrs}>"


def assert_inert(message: Message, article: Article, *, strict: bool = True) -> None:
    """No script, no foreign link, no mass mention in any format of the rendered alert.

    `strict` also refuses the words `javascript:` and `<script` as plain text, which the
    hostile cases never put in visible text (the fuzz does, legitimately).
    """
    url = safe_url(article.url)
    _assert_inert_html(message.html, url, "html")
    _assert_inert_html(markdown.markdown(message.markdown), url, "markdown")
    for text in (message.text, message.markdown, message.html, message.title):
        low = text.lower()
        if strict:
            assert "javascript:" not in low and "<script" not in low
        for mention in ("@everyone", "@here", "@channel", "<!channel>", "<!everyone>"):
            assert mention not in low
        assert not any(ord(c) < 32 and c not in "\n" for c in text), repr(text)


# --- XML entities ---------------------------------------------------------------------------

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><rss version="2.0"><channel><title>&j;</title><item><title>&j;</title>'
    "<link>https://news.example/a</link></item></channel></rss>"
)
BIG_ENTITY = (
    '<?xml version="1.0" encoding="{enc}"?><!DOCTYPE rss [<!ENTITY big "'
    + "x" * 10_000
    + '">]><rss version="2.0"><channel><title>t</title><item><title>Breaking</title>'
    "<link>https://news.example/a</link><description>"
    + "&big;" * 20_000
    + "</description></item></channel></rss>"
)
PASSWD = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><title>t</title><item><title>Breaking &xxe;</title>'
    "<link>https://news.example/a</link><description>&xxe;</description></item></channel></rss>"
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(LAUGHS.encode(), id="billion-laughs"),
        pytest.param(BIG_ENTITY.format(enc="utf-8").encode(), id="big-entity-utf8"),
        pytest.param(
            codecs.BOM_UTF16_LE + BIG_ENTITY.format(enc="utf-16").encode("utf-16-le"),
            id="big-entity-utf16-bom",
        ),  # fmt: skip
        pytest.param(BIG_ENTITY.format(enc="utf-16").encode("utf-16-be"), id="big-entity-utf16"),
        pytest.param(PASSWD.encode(), id="external-entity"),
    ],
)
async def test_entity_declarations_are_refused(server, store, body: bytes) -> None:
    out = await poll(server, store, Reply(body=body, headers={"Content-Type": "application/xml"}))
    assert_error(out, "parse: refused")
    assert "root:" not in out.everything()


async def test_external_dtd_and_xinclude_are_never_loaded(server, store) -> None:
    prolog = f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{server.url("/evil.dtd")}">'
    desc = (
        '&lt;xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/&gt;'
    )
    body = rss(prolog=prolog, desc=desc + "Ukraine").encode()
    out = await poll(server, store, Reply(body=body))
    article = assert_article(out)
    assert server.hits("/evil.dtd") == []
    assert "root:" not in out.everything() and article.summary == "Ukraine"


# --- size, time and decompression -----------------------------------------------------------


def _zeros(n: int, encoder: zlib._Compress) -> bytes:
    chunk = b"\0" * MB
    return b"".join(encoder.compress(chunk) for _ in range(n // MB)) + encoder.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_decompression_bomb_stops_at_the_cap(server, store, encoding: str) -> None:
    wbits = 31 if encoding == "gzip" else 15
    bomb = _zeros(64 * MB, zlib.compressobj(9, zlib.DEFLATED, wbits))
    assert len(bomb) < MAX_BYTES / 10
    out = await poll(server, store, Reply(body=bomb, headers={"Content-Encoding": encoding}))
    assert_error(out, "response too large", "after decompression")


def _endless_feed() -> Iterator[bytes]:
    yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    for n in itertools.count():
        item = f"<item><title>Breaking {n}</title><link>https://n.example/{n}</link></item>"
        yield (item * 500).encode()


async def test_endless_response_stops_at_the_cap(server, store) -> None:
    out = await poll(server, store, Reply(chunks=_endless_feed()))
    assert_error(out, "response too large", "1,000,000 bytes")


async def test_endless_slow_response_stops_at_the_deadline(server, store) -> None:
    out = await poll(server, store, Reply(chunks=_endless_feed(), delay=0.05))
    assert_error(out, "timed out", "1 s")


async def test_slow_drip_of_a_valid_feed_stops_at_the_deadline(server, store) -> None:
    drip = (FEED[i : i + 20] for i in range(0, len(FEED), 20))
    out = await poll(server, store, Reply(chunks=drip, delay=0.1))
    assert_error(out, "timed out")


async def test_server_that_never_answers_stops_at_the_deadline(server, store) -> None:
    def silent(_seen):
        time.sleep(2.5)
        return Reply(body=FEED)

    out = await poll(server, store, silent)
    assert_error(out, "timed out")


def _big_feed(size: int) -> Iterator[bytes]:
    item = b"<item><title>Breaking</title><link>https://n.example/x</link></item>" * 1000
    yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    for _ in range(size // len(item)):
        yield item
    yield b"</channel></rss>"


async def test_50_mb_feed_with_content_length_is_refused_before_reading(server, store) -> None:
    reply = Reply(chunks=_big_feed(50 * MB), headers={"Content-Length": str(50 * MB)})
    out = await poll(server, store, reply)
    assert_error(out, "Content-Length 50,000,000 bytes exceeds the 1,000,000 bytes limit")


async def test_50_mb_feed_without_length_is_cut_at_the_cap(server, store) -> None:
    out = await poll(server, store, Reply(chunks=_big_feed(50 * MB)))
    assert_error(out, "response too large")


# --- redirects ------------------------------------------------------------------------------


async def test_redirect_loop(server, store) -> None:
    server.route("/a", Reply(302, headers={"Location": "/b"}))
    server.route("/b", Reply(301, headers={"Location": "/a"}))
    out = await poll(server, store, path="/a")
    assert_error(out, "redirect loop")


async def test_endless_redirect_chain(server, store) -> None:
    for n in range(20):
        server.route(f"/r{n}", Reply(307, headers={"Location": f"/r{n + 1}"}))
    out = await poll(server, store, path="/r0")
    assert_error(out, "too many redirects")
    assert len(server.hits("/r6")) == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/feed",
        "http://localhost:{port}/feed",
        "http://[::1]:{port}/feed",
        "http://[::ffff:127.0.0.1]:{port}/feed",
        "http://0.0.0.0:{port}/feed",
        "http://10.0.0.1/feed",
        "http://192.168.1.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433:{port}/feed",  # 127.0.0.1 as one decimal number
    ],
)
async def test_redirect_to_a_private_address_is_refused(server, store, target: str) -> None:
    server.route("/feed", Reply(body=FEED))
    server.route("/go", Reply(302, headers={"Location": target.format(port=server.port)}))
    out = await poll(server, store, path="/go", allow_private=False)
    assert_error(out)
    assert "refused redirect" in out.error or "cannot resolve" in out.error, out.error
    assert server.hits("/feed") == []


async def test_redirect_to_loopback_is_followed_when_the_source_opts_in(server, store) -> None:
    server.route("/feed", Reply(body=FEED))
    server.route("/go", Reply(302, headers={"Location": server.url("/feed")}))
    assert_article(await poll(server, store, path="/go", allow_private=True))


# --- wrong headers, wrong bytes ---------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/html", "image/png", "application/octet-stream", None])
async def test_feed_with_a_wrong_content_type_is_read(server, store, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    assert_article(await poll(server, store, Reply(body=FEED, headers=headers)))


PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 20
PAGE = b"<!doctype html><html><body><h1>Breaking</h1><script>alert(1)</script></body></html>"


@pytest.mark.parametrize("body", [PNG, PAGE, b"{}", b"\xff\xfe\xfd" * 1000], ids=str)
async def test_non_feed_bytes_labelled_as_a_feed_are_a_clear_error(server, store, body) -> None:
    reply = Reply(body=body, headers={"Content-Type": "application/rss+xml"})
    assert_error(await poll(server, store, reply), "parse: not a feed")


ITALIAN = "Perché la città è così"


@pytest.mark.parametrize(
    ("encoding", "declared", "label"),
    [
        ("utf-8", True, "iso-8859-1"),  # UTF-8 mislabelled Latin-1 by the server
        ("iso-8859-1", True, "utf-8"),  # Latin-1 mislabelled UTF-8
        ("iso-8859-1", False, "utf-8"),
        ("iso-8859-1", True, None),
        ("iso-8859-1", False, None),
        ("utf-8", False, "x-no-such-charset"),
        ("windows-1252", True, "x-no-such-charset"),
    ],
)
async def test_wrong_or_missing_charset(server, store, encoding, declared, label) -> None:
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>' if declared else ""
    body = rss(ITALIAN, prolog=prolog).encode(encoding)
    ctype = "application/rss+xml" + (f"; charset={label}" if label else "")
    out = await poll(server, store, Reply(body=body, headers={"Content-Type": ctype}))
    assert_article(out, ITALIAN)


async def test_nul_bytes_are_dropped(server, store) -> None:
    body = rss("Break\0ing\0 news", desc="Ukr\0aine").encode().replace(b"<item>", b"<item>\0\0")
    article = assert_article(await poll(server, store, Reply(body=body)))
    assert "\0" not in article.summary + article.text


@pytest.mark.parametrize(
    "date",
    ["0000-00-00", "0000-00-00T00:00:00Z", "Mon, 30 Feb 2026 10:00:00 GMT", "2026-02-30T10:00:00Z",
     "Tue, 03 Feb 99999 10:00:00 GMT", "99999-01-01T00:00:00Z", "-1", "9" * 400, ""],
)  # fmt: skip
async def test_invalid_dates_fall_back_to_first_seen(server, store, date: str) -> None:
    article = assert_article(await poll(server, store, Reply(body=rss(date=date).encode())))
    assert article.published == NOW


# --- markup in titles, links and text --------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "&lt;script&gt;alert(1)&lt;/script&gt;Breaking news",
        "<![CDATA[<script>alert(1)</script>Breaking news<img src=x onerror=alert(1)>]]>",
        "Breaking news&lt;iframe src=javascript:alert(1)&gt;&lt;/iframe&gt;",
        "&lt;svg onload=alert(1)&gt;&lt;/svg&gt;Breaking news&lt;style&gt;*{}&lt;/style&gt;",
    ],
)
async def test_script_in_titles_is_removed_and_alerts_are_inert(server, store, title) -> None:
    out = await poll(server, store, Reply(body=rss(title).encode()))
    article = assert_article(out)
    assert "alert" not in article.title and "script" not in article.title


async def test_escaped_markup_in_titles_stays_text_and_renders_inert(server, store) -> None:
    """`&amp;lt;script&amp;gt;` is a headline that talks about a tag: kept as text, escaped."""
    title = "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; Breaking news"
    out = await poll(server, store, Reply(body=rss(title).encode()))
    assert out.result.outcome == "new"
    assert_inert(render(out.articles[0]), out.articles[0])


@pytest.mark.parametrize(
    "desc",
    [
        "&lt;div&gt;" * 100_000 + "Ukraine" + "&lt;/div&gt;" * 100_000,
        "&lt;b&gt;&lt;i&gt;" * 60_000 + "Ukraine",
        "&lt;![CDATA[" * 200_000 + "Ukraine",  # quadratic in html.parser (CVE-2025-6069)
        "&lt;a " * 100_000 + "Ukraine",
    ],
    ids=["div-100k", "b-i-60k", "cdata-200k", "unclosed-attrs-100k"],
)
async def test_deeply_nested_markup_in_text(server, store, desc: str) -> None:
    out = await poll(server, store, Reply(body=rss(desc=desc).encode()), max_bytes=4 * MB)
    article = assert_article(out)
    assert "<" not in article.summary


@pytest.mark.slow
async def test_deeply_nested_xml_structure(server, store) -> None:
    body = rss(desc="<x>" * 100_000 + "Ukraine" + "</x>" * 100_000).encode()
    out = await poll(server, store, Reply(body=body))
    assert out.result.outcome in ("new", "error", "unchanged"), out.result
    if out.result.outcome == "error":
        assert out.error.startswith("parse: ")
    for article in out.articles:
        assert_inert(render(article), article)


@pytest.mark.parametrize(
    "body", [b"", b"   \r\n\t  ", b"\0\0\0", codecs.BOM_UTF8, codecs.BOM_UTF16_LE + b" \0"]
)
async def test_empty_200_body_is_a_clear_error(server, store, body: bytes) -> None:
    assert_error(await poll(server, store, Reply(body=body)), "parse: empty response")


@pytest.mark.parametrize(
    ("link", "guid"),
    [
        ("&#106;avascript:alert(1)", "https://news.example/a"),
        ("&amp;#106;avascript:alert(1)", "https://news.example/a"),
        ("javascript:alert(1)", "https://news.example/a"),
        ("&#106;avascript:alert(1)", "tag:news.example,2026:1"),
        ("https://news.example/a", "&#106;avascript:alert(1)"),
        ("data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;", "tag:x"),
        (" JaVaScRiPt:alert(1)", "vbscript:x"),
    ],
)
async def test_javascript_links_never_become_links(server, store, link: str, guid: str) -> None:
    desc = '&lt;a href="&amp;#106;avascript:alert(1)"&gt;Ukraine&lt;/a&gt;'
    out = await poll(server, store, Reply(body=rss(link=link, guid=guid, desc=desc).encode()))
    assert out.result.outcome in ("new", "unchanged"), out.error
    for article in out.articles:  # an item without a web URL keeps a key that is no link
        assert has_link(article) or article.url.startswith(("guid:", "title:")), article.url
        assert has_link(article) == article.url.startswith(("http://", "https://"))
        assert "avascript" not in article.url.lower()
        assert_inert(render(article), article)


async def test_mass_mentions_and_markdown_injection_are_neutralised(server, store) -> None:
    title = (
        "@everyone @here [click me](https://evil.example/x) **bold** `code` # head "
        "&lt;!channel&gt; ![img](https://evil.example/i.png) https://evil.example/y _x_ "
        "&lt;https://evil.example/z&gt; | a | b | Breaking news"
    )
    out = await poll(server, store, Reply(body=rss(title).encode()))
    article = out.articles[0]
    message = render(article)
    assert_inert(message, article)
    for rendered in (message.html, markdown.markdown(message.markdown)):
        assert 'href="https://evil' not in rendered and 'src="' not in rendered
    assert "**bold**" not in message.markdown and "[click me]" not in message.markdown


async def test_mention_glued_to_a_markdown_link_is_still_broken(server, store) -> None:
    """Reducing `[click](url)` to its text must not leave `@everyoneclick` to ping a channel."""
    title = "@everyone[click](https://evil.example/) @here[x](y) Breaking news"
    out = await poll(server, store, Reply(body=rss(title).encode()))
    assert_inert(render(out.articles[0]), out.articles[0])


def test_entity_lookalike_in_the_article_url_survives_markdown() -> None:
    """Markdown decodes `&lt;` in a link target: the link must still be the article's URL."""
    url = "https://news.example/&lt;b&gt;/&copy;?a=1&b=2"
    article = Article("hostile", url, url, "Breaking news", published=NOW)
    assert_inert(render(article), article)  # every href equals the article URL


async def test_mass_mention_inside_the_article_url_is_broken(server, store) -> None:
    """The plain-text alert prints the URL: `https://x/@everyone` must not ping a channel."""
    link = "https://news.example/@everyone/@here?u=@channel#@all"
    out = await poll(server, store, Reply(body=rss(link=link).encode()))
    article = assert_article(out)
    assert "@everyone" in article.url  # stored as published; only rendering changes it


@pytest.mark.parametrize("ref", ["&amp;#1", "&amp;#x1b;", "&amp;#0;", "&amp;#xD800;"])
async def test_control_character_references_in_markup_are_dropped(server, store, ref) -> None:
    """`<p>&#1` decodes to a control character inside lxml's tree; it must not crash the poll."""
    desc = f"&lt;p&gt;Ukraine{ref}&lt;/p&gt;{ref}&lt;br&gt;talks"
    article = assert_article(await poll(server, store, Reply(body=rss(desc=desc).encode())))
    assert not any(ord(c) < 32 and c != "\n" for c in article.summary), repr(article.summary)
