"""Fetched bytes -> `RawEntry` tuples.

feedparser does the real work, but only on bytes we already fetched (it has no timeout when it
fetches) and with sanitizing and relative-URI resolution off: we only ever produce plain text, and
`normalize.html_to_text` strips the markup later. Before feedparser sees anything we reject
hostile XML: feedparser 6.0.14 falls back to a lenient parser that expands internal entities
without any limit (a 103 KB feed became 476 MiB), so any internal DTD subset or `<!ENTITY`
declaration is refused outright. Feeds never need one; a plain `<!DOCTYPE rss ...>` is fine.

`scan_items` is a cheap lxml pre-scan: each item's key and a hash of its XML, so the caller can
skip the items unchanged since the last poll, and `without_items` hands the parsers only the
others (feedparser costs 25-100x a bare lxml parse).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import re
import xml.sax
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import feedparser
from lxml import etree

from monitor.errors import ParseError
from monitor.ingest.charsets import SINGLE_BYTE, blank, codec_name, encoding_agrees, is_utf8
from monitor.ingest.feedparser_rules import to_datetime
from monitor.ingest.identity import item_key
from monitor.ingest.jsonfeed import is_json, parse_json_feed
from monitor.ingest.parse_fast import fast_parse
from monitor.models import RawEntry

__all__ = ["ParsedFeed", "parse_feed", "prepare", "scan_items", "without_items"]

# Markers of XML encodings that are not ASCII-compatible (XML 1.0 appendix F).
_WIDE_MARKERS: tuple[tuple[bytes, str, int], ...] = (
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<\x00?", "utf-16-be", 0),
    (b"<\x00?\x00", "utf-16-le", 0),
    (b"\x4c\x6f\xa7\x94", "cp037", 0),
)


_XML_PI_ENCODING = re.compile(rb"^<\?.*encoding=['\"](.*?)['\"].*\?>")  # as feedparser's
_ASCII = bytes(range(128))
_XML_DECL = re.compile(r"^\s*<\?xml[^>]{0,200}\?>")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed: channel title, declared language, and its items in document order;
    `warning` says what was wrong with a body whose items could still be read ("" if nothing)."""

    title: str
    language: str | None
    entries: tuple[RawEntry, ...]
    warning: str = ""


def _wide_encoding(body: bytes) -> tuple[str, int] | None:
    """The codec and BOM length of a UTF-16/32 (or EBCDIC) body; None when ASCII-compatible."""
    head = body[:4]
    for marker, codec, skip in _WIDE_MARKERS:
        if head.startswith(marker):
            # "FF FE 00 00" is a UTF-32-LE BOM, which starts like a UTF-16-LE one: order matters.
            return codec, skip
    return None


def prepare(body: bytes, charset: str | None) -> tuple[bytes, str | None]:
    """The body and charset that both parsers (and the pre-scan) read: hostile input refused
    with ParseError, and a single-byte HTTP charset dropped for a UTF-8 body (`_trusted_charset`).
    """
    body, charset = _make_safe(body, charset)
    return body, _trusted_charset(body, charset)


def _make_safe(body: bytes, charset: str | None) -> tuple[bytes, str | None]:
    """Make the body ASCII-compatible, strip NULs and reject hostile DTDs.

    UTF-16/32 bodies are transcoded to UTF-8 (and the charset forced to utf-8) so that NUL
    stripping and the DTD check work on one representation.
    """
    wide = _wide_encoding(body)
    if wide is not None:
        codec, skip = wide
        text = body[skip:].decode(codec, errors="replace").replace("\x00", "")
        text = _XML_DECL.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
        body, charset = text.encode("utf-8"), "utf-8"
    elif b"\x00" in body:
        body = body.replace(b"\x00", b"")
    _reject_hostile(body, charset)
    return body, charset


def _reject_hostile(body: bytes, charset: str | None) -> None:
    """Refuse internal DTD subsets and entity declarations (entity-expansion bombs).

    Checked on the bytes, and again on the text as decoded with any declared encoding that is
    not ASCII-transparent (UTF-7, UTF-16 without BOM, EBCDIC ...), since feedparser would decode
    with it and `+ADw-!ENTITY` is `<!ENTITY` in UTF-7.
    """
    _check_dtd(body)
    declared = _XML_PI_ENCODING.match(body[:1024].removeprefix(codecs.BOM_UTF8))
    for name in {charset, declared.group(1).decode("ascii", "replace") if declared else None}:
        codec = codec_name(name)
        if codec is not None and not _ascii_transparent(codec):
            _check_dtd(body.decode(codec, errors="replace"))


# ASCII-case-insensitive, searched in place: `body.lower()` copied every body (three times a
# poll: pre-scan, reduced body, parse). Only ASCII letters spell these markers, so this finds
# what lower-casing did, in decoded text too.
_ENTITY = {bytes: re.compile(rb"<!entity", re.I), str: re.compile("<!entity", re.I | re.A)}
_DOCTYPE = {bytes: re.compile(rb"<!doctype", re.I), str: re.compile("<!doctype", re.I | re.A)}


def _check_dtd(text: bytes | str) -> None:
    """Linear in the size: each DOCTYPE is checked only up to its first `>`."""
    kind = type(text)
    if _ENTITY[kind].search(text):  # type: ignore[arg-type]
        raise ParseError("refused: the document declares XML entities (possible entity bomb)")
    gt, bracket = (b">", b"[") if isinstance(text, bytes) else (">", "[")
    found = _DOCTYPE[kind].search(text)  # type: ignore[arg-type]
    while found is not None:
        end = text.find(gt, found.start())  # type: ignore[arg-type]
        if end == -1:
            break
        if text.find(bracket, found.start(), end) != -1:  # type: ignore[arg-type]
            raise ParseError("refused: the document has an internal DTD subset")
        found = _DOCTYPE[kind].search(text, end)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=64)
def _ascii_transparent(codec: str) -> bool:
    """True when the codec decodes every ASCII byte to itself (so a byte check suffices)."""
    try:
        return _ASCII.decode(codec) == _ASCII.decode("ascii")
    except (UnicodeDecodeError, LookupError, ValueError):
        return False


def _headers(charset: str | None, content_type: str | None) -> dict[str, str]:
    """The response headers feedparser should believe.

    Without a Content-Type, feedparser would assume ISO-8859-1 (HTTP's default); we say
    application/xml instead, which lets the XML declaration decide and defaults to UTF-8.
    """
    mime = (content_type or "application/xml").split(";", 1)[0].strip() or "application/xml"
    ctype = f"{mime}; charset={charset}" if charset else mime
    return {"content-type": ctype}


def _trusted_charset(body: bytes, charset: str | None) -> str | None:
    """Drop a single-byte HTTP charset when the body is valid, non-ASCII UTF-8.

    Servers often send `charset=ISO-8859-1` for UTF-8 feeds; decoding those as Latin-1 always
    "succeeds" and turns every accent into mojibake. Valid multi-byte UTF-8 is almost never
    Latin-1 text by accident, so the body wins.
    """
    if not charset or charset.strip().lower() not in SINGLE_BYTE or body.isascii():
        return charset
    return None if is_utf8(body) else charset


def _entry_link(entry: Mapping[str, Any], base: str) -> str | None:
    """The entry's rel=alternate link (feedparser's default rel), else its `link`, absolute."""
    href = None
    for link in entry.get("links") or ():
        if link.get("rel", "alternate") == "alternate" and (link.get("href") or "").strip():
            href = link["href"].strip()
            break
    if href is None:
        href = (entry.get("link") or "").strip() or None
    if href is None:
        return None
    try:
        return urljoin(base, href)
    except ValueError:  # e.g. an invalid IPv6 literal
        return href


def _entry_language(entry: Mapping[str, Any], feed_language: str | None) -> str | None:
    for key in ("title_detail", "summary_detail"):
        lang = (entry.get(key) or {}).get("language")
        if lang:
            return str(lang)
    return feed_language


def _to_raw(entry: Mapping[str, Any], base: str, feed_language: str | None) -> RawEntry:
    content = entry.get("content") or []
    guid = (entry.get("id") or "").strip() or None
    return RawEntry(
        guid=guid,
        link=_entry_link(entry, base),
        title=entry.get("title") or "",
        summary_html=entry.get("summary") or "",
        content_html=(content[0].get("value") or "") if content else "",
        # dict.get: FeedParserDict.get("updated_parsed") falls back to published (deprecated)
        published=to_datetime(dict.get(entry, "published_parsed")),
        updated=to_datetime(dict.get(entry, "updated_parsed")),
        author=(entry.get("author") or "").strip() or None,
        language=_entry_language(entry, feed_language),
    )


def parse_feed(
    body: bytes,
    *,
    url: str,
    charset: str | None = None,
    content_type: str | None = None,
    fast: bool = True,
) -> ParsedFeed:
    """Parse feed bytes (RSS, Atom, RDF or JSON Feed); raise ParseError for empty, non-feed or
    hostile input.

    A malformed feed that still yields entries is returned with a `warning` (most real breakage
    is one bad character late in the file, or a body cut off mid-item); a feed with no items,
    even a malformed one whose feed type was recognised (an undefined `&nbsp;` in the channel),
    returns no entries. `fast`: try the lxml path (parse_fast) first; it gives the same entries
    as feedparser or declines.
    """
    if blank(body):
        raise ParseError("empty response")
    if is_json(body):  # JSON Feed, known by its content whatever the URL or Content-Type says
        return ParsedFeed(*parse_json_feed(body, url=url))
    body, trusted = prepare(body, charset)
    if blank(body, bom=True):  # nothing but NULs, spaces or a BOM
        raise ParseError("empty response")
    if fast and content_type is None:
        got = fast_parse(body, url=url, charset=trusted)
        if got is not None and got[2]:  # no items: feedparser decides what that means
            return ParsedFeed(*got)
    headers = _headers(trusted, content_type)
    try:
        result = feedparser.parse(
            io.BytesIO(body),  # a stream: feedparser must never fetch or open a path itself
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # third-party boundary: one error type for callers
        raise ParseError(f"feed parser failed: {type(exc).__name__}: {exc}") from exc
    entries = result.get("entries") or []
    exc = _without_traceback(result.get("bozo_exception"))
    if not entries and not result.get("version"):
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        raise ParseError(f"not a feed: no RSS, Atom or RDF document found{detail}")
    feed = result.get("feed") or {}
    language = feed.get("language") or (feed.get("title_detail") or {}).get("language") or None
    return ParsedFeed(
        title=(feed.get("title") or "").strip(),
        language=language,
        entries=tuple(_to_raw(e, url, language) for e in entries),
        warning=_malformed(exc),
    )


def _without_traceback(exc: BaseException | None) -> BaseException | None:
    """feedparser's bozo exception, cut from its traceback: the traceback's frames hold the
    result that holds the exception, a cycle only the garbage collector frees, so every broken
    feed's whole parse stayed alive until the next full collection (9 MB for a 2.7 MB feed;
    42 MB over the hostile and parser corpora)."""
    seen = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__context__
    return exc


def _malformed(exc: object) -> str:
    """'malformed: line 7: no element found' when the XML was broken, so feedparser read it
    leniently and what follows the break may be lost; "" for feedparser's other bozo notes (a
    charset or content type it overrode), which lose nothing."""
    if not isinstance(exc, xml.sax.SAXParseException):
        return ""
    return f"malformed: line {exc.getLineNumber()}: {exc.getMessage()}"


# --- the lxml pre-scan ---------------------------------------------------------------------

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def _scan_parser() -> etree.XMLParser:
    return etree.XMLParser(
        recover=True, resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False
    )


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(el: etree._Element, name: str) -> str | None:
    for child in el:
        if _local(child.tag) == name and child.text and child.text.strip():
            return child.text.strip()
    return None


def _item_id(el: etree._Element, base: str) -> str | None:
    """The item's key (identity.item_key) read from its XML, as the parsers would read it."""
    if _local(el.tag) == "entry":
        guid = _child_text(el, "id")
        link = None if guid else _atom_link(el)
    else:
        guid = _child_text(el, "guid") or (el.get(f"{{{_RDF}}}about") or "").strip() or None
        link = None if guid else _child_text(el, "link")
    return item_key(guid, urljoin(base, link) if link else None)


def _atom_link(el: etree._Element) -> str | None:
    """The href of an Atom entry's first rel=alternate link that has one."""
    for child in el:
        if _local(child.tag) == "link" and child.get("rel", "alternate") == "alternate":
            href = (child.get("href") or "").strip()
            if href:
                return href
    return None


def _scan_root(body: bytes) -> etree._Element | None:
    """The document read strictly by lxml, or None on any error: lxml may then have dropped
    items that feedparser's lenient parser would find, and an incomplete list could make a new
    item look "already known"."""
    if blank(body):
        return None
    parser = _scan_parser()
    try:
        body, _ = prepare(body, None)
        root = etree.fromstring(body, parser)
    except (ParseError, etree.LxmlError, ValueError):
        return None
    if root is None or len(parser.error_log):
        return None
    return root


def scan_items(body: bytes, *, url: str = "", context: str = "") -> list[tuple[str, str]] | None:
    """(key, hash) of each item in document order, or None when unsure.

    None means "run the full parser": lxml could not read the body cleanly, it is hostile, it
    has no items, or an item has neither id nor link. `url` resolves relative links the way
    parse_feed does. Namespace-agnostic: RSS 0.9x/1.0/2.0 items and Atom entries.
    The key is the item's GUID (else link); the hash covers the item's own XML, its feed's
    declared language (which parse_feed applies to items) and `context` (URL, source settings),
    so an item whose hash is unchanged would normalize to the same article as last time.
    """
    root = _scan_root(body)
    if root is None:
        return None
    langs = [root.get("{http://www.w3.org/XML/1998/namespace}lang") or ""]
    for el in (root, *root.iterfind("{*}channel")):
        for child in el:
            if _local(child.tag) == "language":
                langs.append(child.text or "")
            elif _local(child.tag) == "channel":
                langs.append(child.get("{http://www.w3.org/XML/1998/namespace}lang") or "")
    prefix = "\0".join([url, context, *langs]).encode("utf-8", "replace") + b"\0"
    items: list[tuple[str, str]] = []
    for el in root.iter("{*}item", "{*}entry"):
        ident = _item_id(el, url)
        if ident is None:
            return None
        digest = hashlib.blake2b(
            prefix + etree.tostring(el, with_tail=False), digest_size=16
        ).hexdigest()
        items.append((ident, digest))
    return items or None


def without_items(
    body: bytes, skip: frozenset[str], *, url: str = "", charset: str | None = None
) -> bytes | None:
    """The body re-serialized as UTF-8 minus the items whose key (as scan_items) is in `skip`,
    so feedparser, when the fast path declines, reads only the items that changed. None when
    lxml cannot read the body cleanly, or the HTTP `charset` and the document disagree (then
    parse the whole body, as parse_feed decodes it)."""
    if not encoding_agrees(body, charset):
        return None
    root = _scan_root(body)
    if root is None:
        return None
    for el in list(root.iter("{*}item", "{*}entry")):
        parent = el.getparent()
        if parent is not None and _item_id(el, url) in skip:
            parent.remove(el)
    return etree.tostring(root.getroottree(), encoding="utf-8", xml_declaration=True)
