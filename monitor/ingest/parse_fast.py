"""The lxml fast path of parse.py: well-formed RSS 0.9x/1.0/2.0 and Atom straight to RawEntry.

feedparser costs 25-100x a bare lxml parse, and most real feeds are plain, well-formed documents
where its leniency buys nothing. This path reads only what `parse._to_raw` reads, the way
feedparser 6 reads it, and declines (returns None, so the caller runs feedparser) at the first
thing it is not sure about: any lxml error, xml:base, markup inside a text element, Atom xhtml
content, an author with an e-mail, a date it cannot parse, an encoding the HTTP header and the
document disagree on. tests/test_fastpath.py holds it to feedparser's output on the corpus.
The hostile-input guards (parse.prepare) run before this path, as before feedparser.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

from feedparser.api import StrictFeedParser
from lxml import etree

from monitor.ingest.charsets import encoding_agrees
from monitor.ingest.identity import is_permalink, item_link
from monitor.models import RawEntry

__all__ = ["fast_parse"]

_XML = "{http://www.w3.org/XML/1998/namespace}"
_ATOM = "http://www.w3.org/2005/Atom"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RSS1 = "http://purl.org/rss/1.0/"
_DC = "http://purl.org/dc/elements/1.1/"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)\Z")

# RSS item children we understand (None namespace = plain RSS 2.0/0.9x, or RSS 1.0's namespace);
# any other child in those namespaces might mean something to feedparser: decline.
_RSS_KNOWN = {"title", "link", "description", "guid", "pubDate", "author", "category", "comments",
              "enclosure", "source", "image", "modified", "subtitle"}  # fmt: skip
_ATOM_KNOWN = {"title", "link", "id", "summary", "content", "published", "updated", "author",
               "category", "contributor", "rights", "source"}  # fmt: skip


class _Decline(Exception):
    """Something feedparser might read differently: let it."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, recover=False
    )


_C1 = re.compile("[\x80-\x9f]")


def _c1_as_cp1252() -> dict[int, str]:
    """C1 controls -> what windows-1252 means by those bytes (five bytes it leaves undefined stay
    as they are): the table feedparser applies to text (its feedparser.html._cp1252)."""
    table = {}
    for code in range(0x80, 0xA0):
        with contextlib.suppress(UnicodeDecodeError):
            table[code] = bytes([code]).decode("cp1252")
    return table


_CP1252 = _c1_as_cp1252()


def _text(el: etree._Element, *, expecting_text: bool = True) -> str:
    """Text content of a leaf element, stripped as feedparser strips it; markup inside: decline.

    `expecting_text`: feedparser's pop() then undoes UTF-8 read as Latin-1 and maps C1 controls
    to windows-1252 (U+0092 is a right quote); elements it pushes with expecting_text=0 (an Atom
    author's <name>) skip both.
    """
    if len(el):
        raise _Decline
    value = (el.text or "").strip()
    if not expecting_text or value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    if _C1.search(value):
        value = value.translate(_CP1252)
    if value != value.strip():
        raise _Decline  # feedparser's callers strip some fields again, others not: its call
    return value


# zones both feedparser's rfc822 table and email.utils read with the same offset (EST = -5...)
_ZONE = re.compile(r"\s(GMT|UT|Z|[+-]\d{4}|[ECMP][SD]T)\s*\Z", re.IGNORECASE)
_DAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}


def _date(value: str) -> datetime:
    value = value.strip()
    if _ISO.match(value):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        day, comma, _ = value.partition(",")
        if comma and day.strip().lower()[:3] not in _DAYS:
            raise _Decline  # "mer, 16 nov 2022": feedparser reads only English day names
        try:
            dt = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError) as exc:
            raise _Decline from exc
        zone = _ZONE.search(value)
        if zone is None:
            raise _Decline  # a zone name feedparser maps its own way (or not at all)
        if dt.tzinfo is None and zone.group(1) == "-0000":
            dt = dt.replace(tzinfo=UTC)  # feedparser's rfc822: "-0000" is +0 hours, +0 minutes
    if dt.tzinfo is None:
        raise _Decline
    dt = dt.astimezone(UTC).replace(microsecond=0)
    if not 1970 <= dt.year <= 2100:
        raise _Decline
    return dt


def _lang(el: etree._Element, channel_lang: str | None) -> str | None:
    for node in (el, *el.iterancestors()):
        lang = node.get(f"{_XML}lang")
        if lang is not None:
            return lang.strip() or None
    return channel_lang


_MEDIA = "http://search.yahoo.com/mrss/"
# media elements feedparser files under media_* keys or tags (mediarss.py), none of which we read;
# media:title (a title) and media:description (a summary) are not among them
_MEDIA_IGNORED = {"content", "credit", "thumbnail", "group", "keywords", "player", "rating",
                  "restriction", "license", "category"}  # fmt: skip
# dc elements that land in keys we never read: publisher (_end_webmaster), subject (a tag)
_DC_IGNORED = {"publisher", "subject"}
# namespaces feedparser has no handler for (their elements change nothing we read)
_HARMLESS = {"http://purl.org/rss/1.0/modules/slash/", "http://wellformedweb.org/CommentAPI/"}


_FP_PREFIX = {uri.lower(): prefix for uri, prefix in StrictFeedParser.namespaces.items()}
_FP_PREFIXES = set(_FP_PREFIX.values())
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_RSS_PLAIN = {"", _RSS1, _RSS090, "http://blogs.law.harvard.edu/tech/rss"}


def _plain_ns(child: etree._Element, ns: str) -> bool:
    """True when feedparser reads this element under its bare name, as plain RSS: no namespace,
    one it maps to "" (RSS 1.0/0.90, userland, harvard), or an unknown default namespace (the
    strict parser then has no prefix to give it: `<rss xmlns="https://cyber.harvard.edu/...">`)."""
    if ns in _RSS_PLAIN or "backend.userland.com/rss" in ns.lower():
        return True
    if ns.lower() in _FP_PREFIX or child.prefix is not None:
        return False
    return ns not in {uri for prefix, uri in child.nsmap.items() if prefix}  # no prefixed alias


def _inert(child: etree._Element, ns: str, name: str) -> bool:
    """True when feedparser has no handler for this element (it only files it under its own
    name, which we never read). Its name is feedparser's: a known namespace's own prefix, else
    the document's prefix (never one feedparser uses for a namespace it knows)."""
    if ns:
        prefix = _FP_PREFIX.get(ns.lower())
        if prefix is None:
            prefix = (child.prefix or "").lower()
            if not prefix or prefix in _FP_PREFIXES:
                return False
    else:
        prefix = ""
    key = f"{prefix}_{name.lower()}" if prefix else name.lower()
    return not (
        hasattr(StrictFeedParser, f"_start_{key}") or hasattr(StrictFeedParser, f"_end_{key}")
    )


@dataclass(slots=True)
class _ItemFields:
    """What an RSS item's descendants said, filed under feedparser's keys."""

    fields: dict[str, str] = field(default_factory=dict)  # "title", "guid", "dc:creator" ...
    descs: list[str] = field(default_factory=list)  # descriptions (and the like), in order
    contents: list[str] = field(default_factory=list)  # content:encoded, in order
    guid_is_permalink: bool = True

    def set(self, key: str, value: str) -> None:
        if key in self.fields:
            raise _Decline  # a repeated element: which one wins is feedparser's business
        self.fields[key] = value


def _rss_item(el: etree._Element, base: str, channel_lang: str | None) -> RawEntry:
    """feedparser is flat: every element inside an item counts wherever it is nested (a
    media:description is a description), so this walks all descendants in document order."""
    got = _ItemFields()
    for child in el.iterdescendants():
        if isinstance(child.tag, str):
            _file(child, child.tag, got)
    return _rss_entry(got, el, base, channel_lang)


def _file(child: etree._Element, tag: str, got: _ItemFields) -> None:
    """File one descendant of an RSS item where feedparser would, or decline."""
    ns, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    if _plain_ns(child, ns):
        _file_plain(child, name, got)
    elif ns == _MEDIA or (name == "summary" and _FP_PREFIX.get(ns.lower()) == "itunes"):
        # itunes:summary is feedparser's _start_summary: like a description, the first of
        # them is the summary and a second one the content (text/plain is not sanitized)
        if name == "description" or ns != _MEDIA:
            got.descs.append(_text(child))
        elif name not in _MEDIA_IGNORED and not _inert(child, ns, name):
            raise _Decline
    elif ns == _DC and name in _DC_IGNORED:
        return
    elif ns == _DC and name in ("creator", "date"):
        got.set(f"dc:{name}", _text(child))
    elif ns == _CONTENT and name == "encoded":
        got.contents.append(_text(child))
    elif ns == _ATOM and name == "link":
        if child.get("rel", "alternate") == "alternate":
            raise _Decline
    elif ns not in _HARMLESS and not _inert(child, ns, name):
        raise _Decline


def _file_plain(child: etree._Element, name: str, got: _ItemFields) -> None:
    """File an element feedparser reads under its bare RSS name."""
    if name not in _RSS_KNOWN:
        if _inert(child, "", name):
            return
        raise _Decline
    if name in ("category", "comments", "enclosure", "source"):
        return
    if name == "modified":
        name = "dc:date"  # feedparser: _start_modified is _start_updated, as dc:date is
    if name in ("image", "subtitle"):
        if len(child):
            raise _Decline  # its title and link would land in the entry (mixin.pop)
        return  # a leaf: feedparser stores entry["image"] / ["subtitle"], never read
    if name == "description":
        got.descs.append(_text(child))
        return
    got.set(name, _text(child))
    if name == "guid":
        got.guid_is_permalink = is_permalink(child.get("isPermaLink"))


def _rss_entry(
    got: _ItemFields, el: etree._Element, base: str, channel_lang: str | None
) -> RawEntry:
    """The entry feedparser builds from what the item's descendants said."""
    fields, descs, contents = got.fields, got.descs, got.contents
    if "author" in fields and "dc:creator" in fields:
        raise _Decline
    if len(descs) > 1 and contents:
        raise _Decline
    summary = descs[0] if descs else (contents[0] if contents else "")
    content = contents[0] if contents else (descs[1] if len(descs) > 1 else "")
    guid = fields.get("guid") or (el.get(f"{{{_RDF}}}about") or "").strip() or None
    link = item_link(
        fields.get("link"), fields.get("guid"), guid_is_permalink=got.guid_is_permalink
    )
    if link is not None:
        link = urljoin(base, link)
    author = fields.get("author") or fields.get("dc:creator") or None
    if author is not None and "@" in author:
        raise _Decline  # "(" alone is fine: with no e-mail, _sync_author_detail leaves the text
    return RawEntry(
        guid=guid,
        link=link,
        title=fields.get("title", ""),
        summary_html=summary,
        content_html=content,
        published=_date(fields["pubDate"]) if fields.get("pubDate") else None,
        updated=_date(fields["dc:date"]) if fields.get("dc:date") else None,
        author=author,
        language=_lang(el, channel_lang),
    )


def _atom_entry(el: etree._Element, base: str, feed_lang: str | None) -> RawEntry:
    fields: dict[str, str] = {}
    link = None
    if el.get(f"{{{_RDF}}}about") is not None:
        raise _Decline
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        ns, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        if ns != _ATOM:
            if ns in ("", _DC, _CONTENT) or ns.startswith("http://purl.org/rss/"):
                raise _Decline
            continue
        if name not in _ATOM_KNOWN:
            raise _Decline
        if name == "link":
            if child.get("href") is None:
                raise _Decline
            if child.get("rel", "alternate") == "alternate" and link is None:
                link = child.get("href", "").strip() or None
            continue
        if name in ("category", "contributor", "rights", "source"):
            continue
        if name in fields:
            raise _Decline
        if name == "author":
            names = [c for c in child if isinstance(c.tag, str)]
            if [c.tag for c in names] != [f"{{{_ATOM}}}name"]:
                raise _Decline
            fields[name] = _text(names[0], expecting_text=False)
            continue
        if name in ("title", "summary", "content") and child.get("type", "text") not in (
            "text",
            "html",
        ):
            raise _Decline
        if child.get("src") is not None:
            raise _Decline
        fields[name] = _text(child)
    link = item_link(link, fields.get("id"), guid_is_permalink=True)  # an Atom id always is
    if link is not None:
        link = urljoin(base, link)
    return RawEntry(
        guid=fields.get("id") or None,
        link=link,
        title=fields.get("title", ""),
        summary_html=fields.get("summary", fields.get("content", "")),
        content_html=fields.get("content", ""),
        published=_date(fields["published"]) if fields.get("published") else None,
        updated=_date(fields["updated"]) if fields.get("updated") else None,
        author=fields.get("author") or None,
        language=_lang(el, feed_lang),
    )


_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)  # in place: `body.upper()` was a full copy


def fast_parse(
    body: bytes, *, url: str, charset: str | None
) -> tuple[str, str | None, tuple[RawEntry, ...]] | None:
    """(feed title, feed language, entries), or None when feedparser should decide."""
    if b"xml:base" in body or _ENTITY.search(body) or not encoding_agrees(body, charset):
        return None
    try:
        root = etree.fromstring(body, _parser())
    except (etree.LxmlError, ValueError):
        return None
    try:
        return _read(root, url)
    except (_Decline, ValueError, OverflowError):
        return None


def _read(root: etree._Element, url: str) -> tuple[str, str | None, tuple[RawEntry, ...]] | None:
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == f"{{{_ATOM}}}feed":
        lang = _lang(root, None)
        title_el = root.find(f"{{{_ATOM}}}title")
        title = _text(title_el) if title_el is not None else ""
        items = root.findall(f"{{{_ATOM}}}entry")
        return title, lang, _entries(items, _atom_entry, url, lang)
    uri, _, local = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
    if local == "rss" and _plain_ns(root, uri):
        ns = f"{{{uri}}}" if uri else ""
        channel = root.find(f"{ns}channel")
        if channel is None or len(root) != 1:
            return None
        items = channel.findall(f"{ns}item")
        tag = "rss"
    elif tag == f"{{{_RDF}}}RDF":
        for uri in (_RSS1, _RSS090, ""):
            ns = f"{{{uri}}}" if uri else ""
            channel = root.find(f"{ns}channel")
            if channel is not None:
                break
        else:
            return None
        if not uri:
            return None  # an RDF root with un-namespaced RSS: feedparser's business
        items = root.findall(f"{ns}item")
    else:
        return None
    if channel.findall(f"{ns}item") and tag != "rss":
        return None
    lang_el = channel.find(f"{ns}language")
    if lang_el is None:
        lang_el = channel.find(f"{{{_DC}}}language")
    title_el = channel.find(f"{ns}title")
    lang = _text(lang_el) or None if lang_el is not None else None
    if lang is not None and lang_el is not None and items and _before(items[0], lang_el):
        return None  # feedparser's language takes effect only from where it appears
    lang = lang or _lang(channel, None)
    title = _text(title_el) if title_el is not None else ""
    return title, lang, _entries(items, _rss_item, url, lang)


def _entries(
    items: list[etree._Element],
    read: Callable[[etree._Element, str, str | None], RawEntry],
    url: str,
    lang: str | None,
) -> tuple[RawEntry, ...]:
    """Each item read, then emptied: the tree shrinks as the entries grow, so a big body's
    peak is the larger of the two, not their sum (a 60 MB feed: 73 MB of tree, 60 MB of entries).
    """
    entries = []
    for el in items:
        entries.append(read(el, url, lang))
        el.clear(keep_tail=True)
    return tuple(entries)


def _before(a: etree._Element, b: etree._Element) -> bool:
    """True when `a` comes before `b` in document order (both under one root)."""
    return bool(a.sourceline and b.sourceline and a.sourceline < b.sourceline)
