"""Feed discovery: the feeds a web page advertises, and the usual places a site keeps one.

Pure: a fetched page's bytes in, candidate URLs out, and a parsed feed summed up; the fetching
and probing are the caller's (`news-monitor discover`, through the `Fetcher`, which keeps its
limits and its private-address guard).

Advertised feeds are the `<link rel="alternate">` (or `rel="feed"`) elements of the page whose
type is a feed type; plain `application/json` counts only when its link or title says "feed",
since WordPress advertises its REST API (`/wp-json/...`) with that type on every page. Common
paths are the ones blog and CMS software serve a feed at, on the page's site and, for a page in
a folder, in that folder too. A candidate is only a guess until it parses as a feed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from lxml import etree

from monitor.ingest.extract import MAX_HTML_BYTES, decode_html
from monitor.ingest.normalize import normalize_language
from monitor.ingest.parse import ParsedFeed

__all__ = ["COMMON_PATHS", "Candidate", "FeedFacts", "advertised", "candidates", "facts"]

COMMON_PATHS = (
    "/feed",
    "/rss",
    "/rss.xml",
    "/atom.xml",
    "/feed.xml",
    "/index.xml",
    "/feed.json",
    "/feeds/posts/default",
)
FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/x-rss+xml",
        "application/x-atom+xml",
        "application/x.atom+xml",
    }
)
MAX_ADVERTISED = 30  # links read from one page: real pages advertise a handful

Via = Literal["advertised", "common path", "the URL itself"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A URL that may serve a feed; `title` as the page advertised it ("" for a guess)."""

    url: str
    via: Via
    title: str = ""


@dataclass(frozen=True, slots=True)
class FeedFacts:
    """What a user weighs before adding a feed: its title, size and how fresh it is."""

    url: str
    via: Via
    title: str
    items: int
    newest: datetime | None
    language: str | None


def _document(body: bytes, charset: str | None) -> etree._Element | None:
    text = decode_html(body[:MAX_HTML_BYTES], charset)
    parser = etree.HTMLParser(no_network=True, recover=True, remove_comments=True)
    try:
        return etree.fromstring(text, parser)
    except ValueError:  # an XML declaration with an encoding in a str: parse the bytes
        return etree.fromstring(text.encode("utf-8"), parser)
    except etree.LxmlError:
        return None


def _is_feed_link(el: etree._Element) -> bool:
    rel = (el.get("rel") or "").lower().split()
    kind = (el.get("type") or "").split(";", 1)[0].strip().lower()
    if "alternate" not in rel and "feed" not in rel:
        return False
    if kind in FEED_TYPES:
        return True
    hint = f"{el.get('href') or ''} {el.get('title') or ''}".lower()
    return kind == "application/json" and "feed" in hint


def advertised(body: bytes, *, url: str, charset: str | None = None) -> list[Candidate]:
    """The feeds the page's `<link>` elements advertise, absolute, in page order, once each."""
    root = _document(body, charset)
    if root is None:
        return []
    base_el = root.find(".//base[@href]")
    base = _join(url, base_el.get("href") or "") if base_el is not None else url
    found: dict[str, Candidate] = {}
    for el in root.iter("link"):
        href = (el.get("href") or "").strip()
        if not href or not _is_feed_link(el):
            continue
        target = _join(base or url, href)
        if target and target not in found and urlsplit(target).scheme in ("http", "https"):
            title = " ".join((el.get("title") or "").split())
            found[target] = Candidate(target, "advertised", title)
        if len(found) == MAX_ADVERTISED:
            break
    return list(found.values())


def _join(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href)
    except ValueError:  # an invalid IPv6 literal and the like
        return None


def common_paths(url: str) -> Iterator[Candidate]:
    """The common feed paths on the page's site, then in the page's folder (if not the root)."""
    parts = urlsplit(url)
    folders = ["/"]
    folder = parts.path[: parts.path.rfind("/") + 1] if "/" in parts.path else "/"
    if folder not in ("", "/"):
        folders.append(folder)
    for prefix in folders:
        for path in COMMON_PATHS:
            joined = prefix.rstrip("/") + path
            yield Candidate(urlunsplit((parts.scheme, parts.netloc, joined, "", "")), "common path")


def candidates(body: bytes, *, url: str, charset: str | None = None) -> list[Candidate]:
    """What to probe for a page: its advertised feeds first, then the common paths not among
    them."""
    found = advertised(body, url=url, charset=charset)
    seen = {c.url for c in found}
    return found + [c for c in common_paths(url) if c.url not in seen]


def facts(parsed: ParsedFeed, *, url: str, via: Via, title: str = "") -> FeedFacts:
    """A parsed feed summed up; `title` (as advertised) stands in when the feed has none."""
    dates = [d for e in parsed.entries if (d := e.published or e.updated) is not None]
    return FeedFacts(
        url=url,
        via=via,
        title=parsed.title or title,
        items=len(parsed.entries),
        newest=max(dates, default=None),
        language=normalize_language(parsed.language),
    )
