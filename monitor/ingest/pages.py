"""Listing pages without a feed: CSS selectors turn a section front into feed-like entries.

`source.links` selects the article links (an `<a href>`, or an element holding one, such as the
headline `h3`). Each link's item container is the highest ancestor that still holds only that
one article (counted by distinct URL, so a photo link and a headline link to the same story share
a container); `source.title` / `summary` / `date` are looked up inside it. Titles default to the
link text, then its `title` attribute, then an image's `alt`.

Links are resolved against `<base href>` or the page URL, fragments dropped, deduplicated in page
order, and kept only when http(s). They are NOT restricted to the page's site: section fronts
often link to sister hosts (roma.corriere.it, video.corriere.it) and the selector is the user's
choice. Fetching those pages is guarded in `fulltext` (private addresses refused unless
the source allows them).

A `links` selector that matches nothing raises ParseError naming it: the pipeline records that as
the source's error (visible in `news-monitor sources`) and the next good poll clears it.
Relative dates ("2 ore fa") are not read here, since a listing has no clock; absolute ones are.
"""

from __future__ import annotations

import html
from urllib.parse import urldefrag, urljoin

import soupsieve
from bs4 import BeautifulSoup, Tag

from monitor.errors import ParseError
from monitor.ingest.charsets import blank
from monitor.ingest.extract import parse_date, soup
from monitor.ingest.parse import ParsedFeed
from monitor.models import RawEntry, Source

__all__ = ["parse_listing"]


def _select(root: Tag, selector: str, what: str) -> list[Tag]:
    try:
        return list(root.select(selector))
    except (soupsieve.SelectorSyntaxError, ValueError, NotImplementedError) as exc:
        raise ParseError(f"invalid CSS selector for {what} {selector!r}: {exc}") from exc


def _anchor(el: Tag) -> Tag | None:
    """The element if it is a link, else its first descendant link, else a link around it."""
    if el.name == "a" and el.get("href"):
        return el
    inner = el.find("a", href=True)
    if isinstance(inner, Tag):
        return inner
    outer = el.find_parent("a", href=True)
    return outer if isinstance(outer, Tag) else None


def _resolve(base: str, href: str) -> str | None:
    href = href.strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return None
    try:
        url = urldefrag(urljoin(base, href))[0]
    except ValueError:
        return None
    return url if url.startswith(("http://", "https://")) else None


def _text(el: Tag | None) -> str:
    return " ".join(el.get_text(" ").split()) if isinstance(el, Tag) else ""


def _link_title(anchor: Tag) -> str:
    text = _text(anchor) or " ".join(str(anchor.get("title") or "").split())
    if not text:
        img = anchor.find("img", alt=True)
        text = " ".join(str(img.get("alt") or "").split()) if isinstance(img, Tag) else ""
    return text


def _date_of(el: Tag | None) -> str:
    if not isinstance(el, Tag):
        return ""
    for attr in ("datetime", "content", "data-date", "title"):
        if el.get(attr):
            return str(el.get(attr))
    return _text(el)


def _containers(links: list[tuple[Tag, str]], stop: Tag) -> dict[int, Tag]:
    """Each link's item container: climb while the parent holds no other article URL."""
    urls_under: dict[int, set[str]] = {}
    for anchor, url in links:
        for parent in anchor.parents:
            urls_under.setdefault(id(parent), set()).add(url)
            if parent is stop:
                break
    found: dict[int, Tag] = {}
    for anchor, _ in links:
        box = anchor
        parent = anchor.parent
        while isinstance(parent, Tag) and parent is not stop and len(urls_under[id(parent)]) == 1:
            box, parent = parent, parent.parent
        found[id(anchor)] = box
    return found


def parse_listing(body: bytes, *, url: str, charset: str | None, source: Source) -> ParsedFeed:
    """A listing page -> one RawEntry per distinct article link, in page order."""
    if not source.links:
        raise ParseError("an html source needs `links`, a CSS selector for the article links")
    if blank(body):
        raise ParseError("empty response")
    doc: BeautifulSoup = soup(body, charset)
    try:
        return _listing(doc, url=url, source=source)
    finally:
        # bs4 trees are reference cycles (parent <-> child): without this one waits in memory,
        # a few times the page's size, for the garbage collector's next full pass
        doc.decompose()


def _listing(doc: BeautifulSoup, *, url: str, source: Source) -> ParsedFeed:
    assert source.links is not None  # checked by parse_listing
    root = doc.body or doc
    base_tag = doc.find("base", href=True)
    base = urljoin(url, str(base_tag["href"])) if isinstance(base_tag, Tag) else url
    matched = _select(root, source.links, "links")
    if not matched:
        raise ParseError(
            f"selector {source.links!r} matched no links: the page layout may have changed"
        )
    links: list[tuple[Tag, str]] = []
    seen: set[str] = set()
    for el in matched:
        anchor = _anchor(el)
        target = _resolve(base, str(anchor.get("href"))) if anchor is not None else None
        if anchor is not None and target is not None and target not in seen:
            seen.add(target)
            links.append((anchor, target))
    if not links:
        raise ParseError(
            f"selector {source.links!r} matched {len(matched)} element(s) but no http(s) "
            "article link: the page layout may have changed"
        )
    boxes = _containers(links, root)
    html_tag = doc.find("html")
    language = str(html_tag.get("lang") or "") or None if isinstance(html_tag, Tag) else None
    entries = []
    for anchor, target in links:
        box = boxes[id(anchor)]
        title = _text(_first(box, source.title)) if source.title else ""
        summary = _text(_first(box, source.summary)) if source.summary else ""
        when = parse_date(_date_of(_first(box, source.date))) if source.date else None
        entries.append(
            RawEntry(
                guid=None,
                link=target,
                title=html.escape(title or _link_title(anchor), quote=False),
                summary_html=html.escape(summary, quote=False),
                published=when,
                language=language,
            )
        )
    return ParsedFeed(title=_text(doc.title), language=language, entries=tuple(entries))


def _first(box: Tag, selector: str | None) -> Tag | None:
    """The first match inside the item; an invalid optional selector is an error, not silence."""
    if not selector:
        return None
    found = _select(box, selector, "an item field")
    return found[0] if found else None
