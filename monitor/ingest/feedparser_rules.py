"""How feedparser 6 reads one element, for the lxml fast path (parse_fast) to read it the same.

feedparser's strict parser reads each element through its mixin's push/pop: the text stripped,
UTF-8 read as Latin-1 undone, C1 controls mapped to windows-1252, links joined with its own
_urljoin, dates through its own parsers, and child elements of a content element written back
out as markup by rules of its own. Each helper here reproduces one such rule exactly, or raises
`Decline` where it is not sure; tests/test_fastpath.py compares the results with feedparser's.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import feedparser.datetimes
from feedparser.api import StrictFeedParser
from lxml import etree

__all__ = [
    "ATOM", "CONTENT", "DC", "FP_PREFIX", "MEDIA", "RDF", "RSS090", "RSS1", "XML", "Decline",
    "attributes", "check_type", "date_of", "has_content_at_items", "inert", "lang_at", "plain_ns",
    "rel", "resolve", "split_tag", "text_of",
]  # fmt: skip

XML = "{http://www.w3.org/XML/1998/namespace}"
ATOM = "http://www.w3.org/2005/Atom"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS1 = "http://purl.org/rss/1.0/"
RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
MEDIA = "http://search.yahoo.com/mrss/"

FP_PREFIX = {uri.lower(): prefix for uri, prefix in StrictFeedParser.namespaces.items()}
_FP_PREFIXES = set(FP_PREFIX.values())
_RSS_PLAIN = {"", RSS1, RSS090, "http://blogs.law.harvard.edu/tech/rss"}


class Decline(Exception):
    """Something feedparser might read differently: let it."""


_C1 = re.compile("[\x80-\x9f]")
# C1 controls -> what windows-1252 means by those bytes (the five it leaves undefined stay as
# they are): the table feedparser applies to text (its feedparser.html._cp1252)
_CP1252 = {
    code: bytes([code]).decode("cp1252")
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


def text_of(el: etree._Element, *, expecting_text: bool = True, markup: bool = False) -> str:
    """Text content of an element, stripped as feedparser strips it.

    `expecting_text`: feedparser's pop() then undoes UTF-8 read as Latin-1 and maps C1 controls
    to windows-1252 (U+0092 is a right quote); elements it pushes with expecting_text=0 (an Atom
    author's <name>) skip both. `markup`: a content element (description, content:encoded...)
    may hold elements, which feedparser writes back out (_markup); anywhere else: decline.
    """
    if len(el):
        if not markup:
            raise Decline
        value = _markup(el).strip()
    else:
        value = (el.text or "").strip()
    if not expecting_text or value.isascii():
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    if _C1.search(value):
        value = value.translate(_CP1252)
    if value != value.strip():
        raise Decline  # feedparser's callers strip some fields again, others not: its call
    return value


def _markup(el: etree._Element) -> str:
    """A content element with child elements, as feedparser's unknown_starttag/endtag write it:
    text up to the first tag other than <div> as it is, then every tag as `<name attrs>` and
    `</name>` (names lower-cased, rel/type values too, `<br/>` as `<br></br>`) and text escaped;
    <div> tags before that are dropped (its typepad rule), comments too. Declined: namespaced
    tags or attributes, namespace declarations (an xlink one becomes an attribute), a content
    type attribute, svg/math, tags feedparser has an _end_ handler for (it would run it:
    `<source>`), and a dropped `</div>`, which skips feedparser's `depth -= 1` and so shifts
    which title, summary or author wins for the rest of the item."""
    if el.keys():
        raise Decline
    out = [el.text or ""]
    _markup_children(el, out, len(el.nsmap), xhtml=False)
    return "".join(out)


def _markup_children(node: etree._Element, out: list[str], spaces: int, *, xhtml: bool) -> bool:
    for child in node:
        tag = child.tag
        if isinstance(tag, str):
            name = tag.lower()
            if (
                tag[0] == "{"
                or name in ("svg", "math")
                or hasattr(StrictFeedParser, f"_end_{name}")
                or len(child.nsmap) != spaces
            ):
                raise Decline
            if xhtml or name != "div":
                xhtml = True
                out.append(f"<{name}{_strattrs(child)}>")
            out.append(escape(child.text) if xhtml and child.text else child.text or "")
            if not _markup_children(child, out, spaces, xhtml=xhtml):
                raise Decline  # a </div> feedparser drops (see _markup)
            xhtml = True
            out.append(f"</{name}>")
        out.append(escape(child.tail) if xhtml and child.tail else child.tail or "")
    return xhtml


def _strattrs(el: etree._Element) -> str:
    attrs: dict[str, str] = {}
    for key, value in el.items():
        if key[0] == "{":
            raise Decline
        key = key.lower()
        attrs[key] = value.lower() if key in ("rel", "type") else value
    return "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in attrs.items())


def check_type(el: etree._Element) -> None:
    """Decline a content element whose type or mode feedparser would decode (base64) or escape
    (xhtml) rather than take as text."""
    if not el.keys():
        return
    attrs = attributes(el)
    if attrs.get("mode") == "base64":
        raise Decline
    kind = attrs.get("type")
    if kind is not None:
        kind = kind.lower()
        kind = {"text": "text/plain", "plain": "text/plain", "html": "text/html"}.get(kind, kind)
        if not kind.startswith("text/"):
            raise Decline


def to_datetime(value: Any) -> datetime | None:
    """feedparser's UTC struct_time -> aware datetime; None when absent or absurd."""
    if not isinstance(value, time.struct_time | tuple) or len(value) < 6:
        return None
    try:
        dt = datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return dt if 1970 <= dt.year <= 2100 else None


def date_of(value: str | None) -> datetime | None:
    """feedparser's own date parser (4-5 us a date, no dearer than email.utils), read into a
    datetime as feedparser's own path reads its result (`to_datetime`): the same date, or None,
    on both paths. A deliberate use of a feedparser internal (it has no public one): its
    handlers read "Sat, Dec 16 2023 02:02:33 PM" as 02:02 and "mer, 16 nov 2022" as nothing,
    which no re-implementation would match for long; the tests compare both paths on every
    date."""
    return to_datetime(feedparser.datetimes._parse_date(value)) if value else None


_URIFIXER = re.compile("^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")  # feedparser.urls._urifixer


def _urljoin(base: str, uri: str) -> str:
    """feedparser.urls._urljoin, line for line: extra slashes after "scheme://" dropped, then
    urllib's join; "" where urllib raises (an invalid IPv6 host)."""
    uri = _URIFIXER.sub(r"\1\3", uri)
    try:
        return urllib.parse.urljoin(base, uri)
    except ValueError:
        return ""


def resolve(base: str, value: str, *, attribute: bool = False) -> str:
    """feedparser's resolve_uri for a link, a permalink GUID or an Atom id: its _urljoin against
    the xml:base in force. Element text is joined only when not empty, an attribute (an Atom
    href) always. With no base (""), _urljoin only folds "http:///x" to "http://x": skipped
    when there is no ":///" (a third of the fast path's link handling)."""
    if not base and ":///" not in value:
        return value
    return _urljoin(base, value) if value or attribute else value


def lang_at(el: etree._Element, fallback: str | None) -> str | None:
    """The xml:lang in force at `el` as feedparser's push_content records it ("_" read as "-");
    `fallback` when none is (xml:lang="" means none)."""
    for node in (el, *el.iterancestors()):
        lang = node.get(f"{XML}lang")
        if lang is not None:
            return lang.replace("_", "-") if lang else fallback
    return fallback


def attributes(el: etree._Element) -> dict[str, str]:
    """An element's attributes by feedparser's names for them: local names, lower-cased."""
    return {key.rpartition("}")[2].lower(): value for key, value in el.items()}


def rel(attrs: dict[str, str]) -> str:
    """A link's rel as feedparser reads it: lower-cased, "alternate" when absent."""
    return attrs.get("rel", "alternate").lower()


def split_tag(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an lxml tag."""
    ns, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
    return ns, name


def plain_ns(child: etree._Element, ns: str) -> bool:
    """True when feedparser reads this element under its bare name, as plain RSS: no namespace,
    one it maps to "" (RSS 1.0/0.90, userland, harvard), or an unknown default namespace (the
    strict parser then has no prefix to give it: `<rss xmlns="https://cyber.harvard.edu/...">`)."""
    if ns in _RSS_PLAIN or "backend.userland.com/rss" in ns.lower():
        return True
    if ns.lower() in FP_PREFIX or child.prefix is not None:
        return False
    return ns not in {uri for prefix, uri in child.nsmap.items() if prefix}  # no prefixed alias


def inert(child: etree._Element, ns: str, name: str) -> bool:
    """True when feedparser has no handler for this element (it only files it under its own
    name, which we never read). Its name is feedparser's: a known namespace's own prefix, else
    the document's prefix (never one feedparser uses for a namespace it knows)."""
    if ns:
        prefix = FP_PREFIX.get(ns.lower())
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


# feedparser keys (as inert() names them) of elements that set hasContent or feeddata["summary"]
_CONTENTS = {"content_encoded", "fullitem", "content"}
_SUMMARIES = {"summary", "itunes_summary"}
_DESCRIPTIONS = {"description", "media_description", "dc_description"}
_APART = {"image", "textinput", "source", "item"}  # feedparser files their insides elsewhere


def has_content_at_items(elements: list[etree._Element], item_tag: str) -> list[bool]:
    """feedparser's hasContent as each item starts. It is reset only when an item ends, so the
    channel's own content:encoded, or a description after its itunes:summary, makes the first
    item's second description its summary, not its content (mixin's _start_description)."""
    summary = has = False
    flags = []
    for top in elements:
        if not isinstance(top.tag, str):
            continue
        if top.tag == item_tag:
            flags.append(has)
            has = False
            continue
        for el in top.iter(etree.Element):
            ns, name = split_tag(el.tag)
            name = name.lower()
            if plain_ns(el, ns) and name in _APART:
                if el is top and name != "item":
                    break  # a channel <image>'s description is the image's (inimage)
                raise Decline  # nested feed elements in the channel: not worth following
            if not plain_ns(el, ns) and ns.lower() not in FP_PREFIX:
                continue  # a namespace feedparser does not know: no handler
            key = f"{FP_PREFIX.get(ns.lower())}_{name}" if FP_PREFIX.get(ns.lower()) else name
            if key in _CONTENTS or (key in _SUMMARIES | _DESCRIPTIONS and summary and not has):
                summary = has = True
            elif key in _SUMMARIES or key in ("body", "xhtml_body"):
                summary = True
    return flags
