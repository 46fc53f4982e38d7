"""OPML subscription lists in and out: the feeds another reader exports, and ours for it.

Pure functions on bytes and text. Reading goes through the feed parsers' guard first
(`parse.prepare`: entity declarations and internal DTD subsets refused, UTF-16 transcoded), then
lxml's strict parser with entities, DTDs and the network off, so an OPML file is no more
dangerous than a feed. Limits, so an import cannot be a denial of service: `MAX_BYTES` per file,
`MAX_FEEDS` feeds, outline titles cut at `MAX_TITLE` characters, URLs over `MAX_URL` skipped.

Nested outlines (folders, categories) are flattened: each feed keeps the titles of its folders
as `category`. An outline without `xmlUrl` is a folder or a plain link, not a feed; one whose
`xmlUrl` is not http(s), or that repeats a feed already read, is listed in `skipped` with why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree

from lxml import etree

from monitor.errors import ParseError
from monitor.ingest.parse import prepare

__all__ = ["MAX_BYTES", "MAX_FEEDS", "Opml", "Outline", "parse_opml", "same_feed", "write_opml"]

MAX_BYTES = 10_000_000
MAX_FEEDS = 5_000
MAX_TITLE = 200
MAX_URL = 2_000


@dataclass(frozen=True, slots=True)
class Outline:
    """One feed of a subscription list. `title` may be "" (the list gave none)."""

    title: str
    xml_url: str
    html_url: str | None = None
    category: str = ""  # the titles of its folders, "News / Italy"; "" at the top level
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Opml:
    """A parsed list: its title, its feeds in document order, and (url, why) of each outline
    with an `xmlUrl` that was left out."""

    title: str
    feeds: tuple[Outline, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )


def _root(data: bytes) -> etree._Element:
    """The `<opml>` element, read strictly; ParseError with the line of what is wrong."""
    if len(data) > MAX_BYTES:
        raise ParseError(f"too large: {len(data):,} bytes (the limit is {MAX_BYTES:,})")
    if not data.strip():
        raise ParseError("empty file")
    body, _ = prepare(data, None)  # ParseError "refused: ..." for entity declarations
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        what = re.sub(r", line \d+, column \d+$", "", exc.msg or "")
        raise ParseError(f"line {line}, column {column}: not well-formed XML: {what}") from None
    except (etree.LxmlError, ValueError) as exc:
        raise ParseError(f"not readable as XML: {exc}") from None
    if _local(root.tag) != "opml":
        raise ParseError(f"not an OPML file: the document is <{_local(root.tag)}>, not <opml>")
    return root


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _attr(el: etree._Element, name: str) -> str:
    """An attribute by name, in any case (`xmlUrl`, `xmlurl`, `XMLURL` all occur), stripped."""
    wanted = name.lower()
    for key, value in el.attrib.items():
        if _local(key).lower() == wanted:
            return " ".join(value.split())
    return ""


def parse_opml(data: bytes) -> Opml:
    """The feeds of an OPML 1.0/2.0 subscription list, nested folders flattened."""
    root = _root(data)
    body = next((el for el in root if _local(el.tag) == "body"), None)
    if body is None:
        raise ParseError("not an OPML subscription list: <opml> has no <body>")
    head = next((el for el in root if _local(el.tag) == "head"), None)
    title_el = None if head is None else next((e for e in head if _local(e.tag) == "title"), None)
    title = " ".join((title_el.text or "").split()) if title_el is not None else ""
    feeds: list[Outline] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}  # same_feed key -> the URL as first written
    for outline in _outlines(body, ()):
        key = same_feed(outline.xml_url)
        why = _unusable(outline.xml_url) or (f"repeats {seen[key]}" if key in seen else "")
        if why:
            skipped.append((outline.xml_url[:MAX_URL], why))
            continue
        if len(feeds) == MAX_FEEDS:
            raise ParseError(f"more than {MAX_FEEDS:,} feeds: split the file")
        seen[key] = outline.xml_url
        feeds.append(outline)
    return Opml(title[:MAX_TITLE], tuple(feeds), tuple(skipped))


def _outlines(parent: etree._Element, folders: tuple[str, ...]) -> Iterator[Outline]:
    """The outlines with an `xmlUrl` under `parent`, depth first; the others are folders.
    Recursion is bounded by libxml2's own depth limit (256 without huge_tree)."""
    for el in parent:
        if _local(el.tag) != "outline":
            continue
        title = (_attr(el, "title") or _attr(el, "text"))[:MAX_TITLE]
        xml_url = _attr(el, "xmlUrl")
        if xml_url:
            yield Outline(
                title=title,
                xml_url=xml_url,
                html_url=_attr(el, "htmlUrl")[:MAX_URL] or None,
                category=" / ".join(folders),
                language=_attr(el, "language")[:40] or None,
            )
        yield from _outlines(el, (*folders, title) if title else folders)


def _unusable(url: str) -> str:
    """Why a feed URL cannot be a source ("" when it can)."""
    if len(url) > MAX_URL:
        return f"a URL of more than {MAX_URL:,} characters"
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    return "" if ok else "not an http:// or https:// URL"


def same_feed(url: str) -> str:
    """A key equal for two spellings of one feed address: scheme (http = https), host case,
    default port, a trailing slash; the path's case and the query count."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return url.strip()
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = parts.path.rstrip("/") or "/"
    return f"{netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def write_opml(feeds: Iterable[Outline], *, title: str, now: datetime) -> str:
    """An OPML 2.0 subscription list (UTF-8 text, with its XML declaration)."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ElementTree.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.title, "title": feed.title, "xmlUrl": feed.xml_url}
        if feed.html_url:
            attrs["htmlUrl"] = feed.html_url
        if feed.language:
            attrs["language"] = feed.language
        ElementTree.SubElement(body, "outline", attrs)
    ElementTree.indent(root)
    text = ElementTree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'
