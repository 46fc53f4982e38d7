"""Property-based fuzzing of parse -> normalize -> match -> render.

Generated feeds: a valid RSS/Atom skeleton with random titles, descriptions, links, dates and
extra elements (markup, entities, odd Unicode, hostile snippets), random ways of escaping them,
random encodings and declared charsets; plus raw random bytes and random byte damage to a valid
feed. The only exception allowed out of the path is ParseError, and every rendered alert must be
inert in HTML and Markdown. `bench/fuzz_long.py` runs the same properties for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerts.render import render_alert
from monitor.errors import ParseError
from monitor.ingest.identity import has_link
from monitor.ingest.normalize import to_article
from monitor.ingest.parse import parse_feed
from monitor.models import Match, Rule, Source
from monitor.rules.query import Document, RuleSet
from tests.test_hostile import assert_inert

NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
RULES = RuleSet(
    [
        ("words", "ukraine OR kyiv OR perché OR news OR the OR a"),
        ("prefix", 'negoziat* OR "cessate il fuoco" OR title:(breaking OR script)'),
        ("near", "ukraine NEAR/5 talks"),
        ("not", "a AND NOT b"),
    ]
)
SUITE = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SNIPPETS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "&#106;avascript:alert(1)",
    '<a href="javascript:alert(1)">x</a>', "@everyone", "@here", "<!channel>", "<@U123>",
    "[click](https://evil.example/)", "![i](https://evil.example/i.png)", "**bold**", "`code`",
    "# head", "> quote", "| a | b |", "_x_", "~~s~~", "https://evil.example/y", "&amp;", "&lt;",
    "&nbsp;", "&#0;", "&#x110000;", "&bogus;", "<![CDATA[", "]]>", "<!--", "-->", "<?pi?>",
    "\u202e", "\u200b", "\ufeff", "\x00", "\x1b[31m", "\ud7ff", "\U0001f600", "e\u0301",
    "perché", "Україна", "Ukraine", "Kyiv", "talks", "news", "<div>", "</div>", "<p>", "<br>",
    "<b><i>", "<style>*{}</style>", "<iframe src=x>", "<svg onload=alert(1)>", "\r\n", "\t",
    "&amp;lt;script&amp;gt;", "=?utf-8?q?x?=", "\\", "%00", "\u0000\u0001",
]  # fmt: skip
DATES = [
    "Tue, 03 Feb 2026 08:00:00 GMT", "0000-00-00", "2026-02-30T10:00:00Z", "99999-01-01",
    "Mon, 30 Feb 2026 10:00:00 +9999", "1969-12-31T23:59:59Z", "2026-02-03", "", "-1",
    "Tue, 03 Feb 2026 08:00:00 XYZ", "2038-01-19T03:14:08Z", "9" * 50,
]  # fmt: skip
CHARSETS = [None, "utf-8", "iso-8859-1", "windows-1252", "utf-16", "x-bogus", "ascii", "utf-7"]
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "iso-8859-1", "windows-1251"]

texts = st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=30)), max_size=12).map(
    "".join
)
dates = st.one_of(st.sampled_from(DATES), st.text(max_size=40))


@st.composite
def field(draw: st.DrawFn, tag: str) -> str:
    """One element whose content is escaped, wrapped in CDATA, or inserted raw (maybe broken)."""
    value = draw(texts)
    how = draw(st.sampled_from(["escape", "cdata", "raw", "double"]))
    if how == "escape":
        value = escape(value)
    elif how == "cdata":
        value = f"<![CDATA[{value.replace(']]>', '')}]]>"
    elif how == "double":
        value = escape(escape(value))
    return f"<{tag}>{value}</{tag}>"


@st.composite
def rss_feeds(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A random RSS 2.0 or Atom document around a valid skeleton, encoded and labelled."""
    atom = draw(st.booleans())
    items = []
    for n in range(draw(st.integers(0, 4))):
        link = draw(st.one_of(st.just(f"https://news.example/{n}"), texts))
        parts = [
            draw(field("title")),
            draw(field("summary" if atom else "description")),
            f'<link href="{escape(link, {chr(34): "&quot;"})}"/>'
            if atom
            else f"<link>{escape(link)}</link>",
            f"<{'id' if atom else 'guid'}>{escape(draw(texts))}</{'id' if atom else 'guid'}>",
            f"<{'updated' if atom else 'pubDate'}>{escape(draw(dates))}"
            f"</{'updated' if atom else 'pubDate'}>",
        ]
        if draw(st.booleans()):
            parts.append(draw(field("content" if atom else "content:encoded")))
        parts = draw(st.permutations(parts))
        wrap = "entry" if atom else "item"
        items.append(f"<{wrap}>{''.join(parts)}</{wrap}>")
    encoding = draw(st.sampled_from(ENCODINGS))
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>' if draw(st.booleans()) else ""
    if atom:
        doc = f'{prolog}<feed xmlns="http://www.w3.org/2005/Atom">{draw(field("title"))}'
        doc += "".join(items) + "</feed>"
    else:
        ns = 'xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        doc = f'{prolog}<rss version="2.0" {ns}><channel>{draw(field("title"))}'
        doc += "".join(items) + "</channel></rss>"
    body = doc.encode(encoding, errors="replace")
    return body, draw(st.sampled_from(CHARSETS))


@st.composite
def damaged_feeds(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A valid generated feed with random bytes inserted, deleted or overwritten."""
    body, charset = draw(rss_feeds())
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        chunk = draw(st.binary(max_size=16))
        if draw(st.booleans()):
            data[pos:pos] = chunk
        else:
            del data[pos : pos + len(chunk)]
    return bytes(data), charset


raw_bytes = st.tuples(st.binary(max_size=2000), st.sampled_from(CHARSETS))


@dataclass
class Tally:
    """What a run went through, for bench/fuzz_long.py's report."""

    examples: int = 0
    parse_errors: int = 0
    entries: int = 0
    articles: int = 0
    alerts: int = 0


TALLY = Tally()


def check(body: bytes, charset: str | None) -> None:
    """Run the whole path on one body; only ParseError may escape, and alerts must be inert."""
    TALLY.examples += 1
    try:
        parsed = parse_feed(body, url="https://news.example/feed", charset=charset)
    except ParseError:
        TALLY.parse_errors += 1
        return
    source = Source("fuzz", "https://news.example/feed")
    rule = Rule("fuzz", "news")
    for entry in parsed.entries:
        TALLY.entries += 1
        article = to_article(entry, source=source, feed_language=parsed.language, now=NOW)
        if article is None:
            continue
        TALLY.articles += 1
        # a web link, or a key that never renders as one (an item with only a GUID or title)
        assert has_link(article) or article.url.startswith(("guid:", "title:")), article.url
        matches = RULES.match(Document.from_article(article))
        forced = Match("fuzz", tuple(article.title.split()[:3]) or ("news",))
        for match in [*matches, forced]:
            message = render_alert(
                article, match, source_title=parsed.title, rule=rule, timezone="Europe/Rome"
            )
            TALLY.alerts += 1
            assert_inert(message, article, strict=False)


@SUITE
@given(rss_feeds())
def test_generated_feeds(case: tuple[bytes, str | None]) -> None:
    check(*case)


@SUITE
@given(damaged_feeds())
def test_damaged_feeds(case: tuple[bytes, str | None]) -> None:
    check(*case)


@SUITE
@given(raw_bytes)
def test_random_bytes(case: tuple[bytes, str | None]) -> None:
    check(*case)
