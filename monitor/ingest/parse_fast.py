"""The lxml fast path of parse.py: well-formed RSS 0.9x/1.0/2.0 and Atom straight to RawEntry.

feedparser costs 25-100x a bare lxml parse, and most real feeds are plain, well-formed documents
where its leniency buys nothing. This path reads only what `parse._to_raw` reads, the way
feedparser 6 reads it (feedparser_rules: its text rules, date parser, URI join and markup
writer; here: which of two titles, summaries or authors wins, which link counts), and declines
(returns None, so the caller runs feedparser) at the first thing it is not sure about: any lxml
error, an xml:base other than the root's, a `lang` or `base` attribute where this path does not
look, Atom xhtml content, an encoding the HTTP header and the document disagree on.
tests/test_fastpath.py holds it to feedparser's output on the corpus and on generated feeds.
The hostile-input guards (parse.prepare) run before this path, as before feedparser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

from lxml import etree

from monitor.ingest.charsets import encoding_agrees
from monitor.ingest.feedparser_rules import (
    ATOM,
    CONTENT,
    DC,
    FP_PREFIX,
    MEDIA,
    RDF,
    RSS090,
    RSS1,
    XML,
    Decline,
    attributes,
    check_type,
    date_of,
    has_content_at_items,
    inert,
    lang_at,
    plain_ns,
    rel,
    resolve,
    split_tag,
    text_of,
)
from monitor.ingest.identity import is_permalink, item_link
from monitor.models import RawEntry

__all__ = ["fast_parse"]

# RSS item children we understand (None namespace = plain RSS 2.0/0.9x, or RSS 1.0's namespace);
# any other child in those namespaces might mean something to feedparser: decline.
_RSS_KNOWN = {"title", "link", "description", "guid", "pubDate", "author", "category", "comments",
              "enclosure", "source", "image", "modified", "subtitle"}  # fmt: skip
_ATOM_KNOWN = {"title", "link", "id", "summary", "content", "published", "updated", "author",
               "category", "contributor", "rights", "source"}  # fmt: skip
# media elements feedparser files under media_* keys or tags (mediarss.py), none of which we read;
# media:title (a title, see _media_title) and media:description (a summary) are not among them
_MEDIA_IGNORED = {"content", "credit", "thumbnail", "group", "keywords", "player", "rating",
                  "restriction", "license", "category"}  # fmt: skip
# dc elements that land in keys we never read: publisher (_end_webmaster), subject (a tag)
_DC_IGNORED = {"publisher", "subject"}
# itunes elements feedparser files where we never read (itunes:image is not <image>)
_ITUNES_IGNORED = {"image", "link", "explicit", "block", "keywords", "category", "subtitle"}
# namespaces feedparser has no handler for (their elements change nothing we read)
_HARMLESS = {"http://purl.org/rss/1.0/modules/slash/", "http://wellformedweb.org/CommentAPI/"}
# the leaves of an item's <image> (feedparser files its title and link apart: inimage)
_IMAGE_LEAVES = {"url", "title", "link", "width", "height"}
_AMP_NAME = re.compile("&([A-Za-z0-9_]+);")


@dataclass(slots=True)
class _Doc:
    """What every item of a document is read against."""

    base: str  # feedparser's base URI: the root's xml:base, else ""
    url: str  # where the feed came from: parse._entry_link joins links to it
    lang: str | None  # the feed's language, an item's when it has none of its own
    has_content: Iterator[bool] = iter(())  # per RSS item: has_content_at_items


@dataclass(slots=True)
class _ItemFields:
    """What an RSS item's descendants said, filed under feedparser's keys."""

    fields: dict[str, str] = field(default_factory=dict)  # "title", "guid", "dc:date" ...
    texts: list[tuple[bool, int, str]] = field(default_factory=list)  # see _summary_content
    authors: list[tuple[int, str]] = field(default_factory=list)  # (depth, text), in order
    guid_is_permalink: bool = True
    title_depth: int = -1  # feedparser's title_depth: a title at or below it is not the title
    title_at: int = 0  # the depth of the item's own <title>
    image_title: bool = False  # an item <image> has a <title> of its own

    def set(self, key: str, value: str) -> None:
        if key in self.fields:
            raise Decline  # a repeated element: which one wins is feedparser's business
        self.fields[key] = value


def _rss_item(el: etree._Element, doc: _Doc) -> RawEntry:
    """feedparser is flat: every element inside an item counts wherever it is nested (a
    media:description is a description), so this walks all descendants in document order,
    knowing each one's depth below the item (which feedparser compares)."""
    got = _ItemFields()
    _walk(el, 1, got)
    return _rss_entry(got, el, doc, next(doc.has_content))


def _walk(parent: etree._Element, depth: int, got: _ItemFields) -> None:
    for child in parent:
        tag = child.tag
        if isinstance(tag, str) and not _file(child, tag, depth, got) and len(child):
            _walk(child, depth + 1, got)


def _file(child: etree._Element, tag: str, depth: int, got: _ItemFields) -> bool:
    """File one descendant of an RSS item where feedparser would, or decline; True when its
    children were read too (an <image>, a description's markup)."""
    ns, name = split_tag(tag)
    if plain_ns(child, ns):
        return _file_plain(child, name, depth, got)
    prefix = FP_PREFIX.get(ns.lower())
    if ns == MEDIA and name == "title":
        _media_title(child, depth, got)
    elif ns == MEDIA or (name == "summary" and prefix == "itunes"):
        # itunes:summary is feedparser's _start_summary: like a description, the first of
        # them is the summary and a second one the content (text/plain is not sanitized)
        if name == "description" or ns != MEDIA:
            return _text(child, depth, got, encoded=False)
        if name not in _MEDIA_IGNORED and not inert(child, ns, name):
            raise Decline
    elif prefix == "itunes" and name in _ITUNES_IGNORED:
        if name == "subtitle" and len(child):
            raise Decline  # markup: feedparser would read it as xhtml, not as elements
    elif (prefix == "dc" and name in ("creator", "author")) or (
        prefix == "itunes" and name == "author"
    ):
        got.authors.append((depth, text_of(child)))  # each is feedparser's _start_author
    elif ns == DC and name in _DC_IGNORED:
        pass
    elif ns == DC and name == "date":
        got.set("dc:date", text_of(child))
    elif ns == CONTENT and name == "encoded":
        return _text(child, depth, got, encoded=True)
    elif ns == ATOM and name == "link":
        attrs = attributes(child)
        if "href" not in attrs or rel(attrs) == "alternate" or {"url", "uri"} & attrs.keys():
            raise Decline  # its text, or its href, would be the item's link
    elif ns not in _HARMLESS and not inert(child, ns, name):
        raise Decline
    return False


def _text(child: etree._Element, depth: int, got: _ItemFields, *, encoded: bool) -> bool:
    """Note a description (or the like) or a content:encoded, markup and all."""
    check_type(child)
    got.texts.append((encoded, depth, text_of(child, markup=True)))
    return True


def _media_title(child: etree._Element, depth: int, got: _ItemFields) -> None:
    """media:title is feedparser's _start_title, kept from the entry only when a non-empty title
    ended above or at its depth since the item (or its last <image> or <source>) began."""
    if not -1 < got.title_depth <= depth:
        raise Decline  # it would be (or could replace) the item's title
    text_of(child)  # a leaf, or decline


def _file_plain(child: etree._Element, name: str, depth: int, got: _ItemFields) -> bool:
    """File an element feedparser reads under its bare RSS name."""
    if name not in _RSS_KNOWN:
        if inert(child, "", name):
            return False
        raise Decline
    if name in ("category", "comments", "enclosure"):
        return False
    if name in ("image", "source"):
        got.title_depth = -1  # feedparser's _start_image and _start_source reset it
        if name == "image" and len(child):
            _image(child, depth, got)
            return True
        if len(child):
            raise Decline  # a <source> with children: feedparser files them apart (insource)
        return False
    if name == "subtitle":
        if len(child):
            raise Decline  # its title and link would land in the entry (mixin.pop)
        return False  # a leaf: feedparser stores entry["subtitle"], never read
    if name == "description":
        return _text(child, depth, got, encoded=False)
    if name == "author":
        got.authors.append((depth, text_of(child)))
        return False
    if name == "title":
        check_type(child)
    got.set("dc:date" if name == "modified" else name, text_of(child))  # _start_modified
    if name == "guid":
        got.guid_is_permalink = is_permalink(
            attributes(child).get("ispermalink") if child.keys() else None
        )
    elif name == "link" and child.keys():
        raise Decline  # an href (or url, uri) attribute would be the link, not the text
    elif name == "title":
        got.title_at = depth
        if got.fields["title"]:
            got.title_depth = depth  # feedparser's _end_title
    return False


def _image(image: etree._Element, depth: int, got: _ItemFields) -> None:
    """An item's <image> of leaves (url, title, link, width, height): feedparser ignores its
    link (inimage) and its title loses to the item's own (a shallower one) in either order."""
    for leaf in image:
        if not isinstance(leaf.tag, str):
            continue
        ns, name = split_tag(leaf.tag)
        if name not in _IMAGE_LEAVES or not plain_ns(leaf, ns) or len(leaf) or leaf.keys():
            raise Decline
        if name == "title":
            got.image_title = True
            if text_of(leaf):
                got.title_depth = depth + 1


def _summary_content(texts: list[tuple[bool, int, str]], has_content: bool) -> tuple[str, str]:
    """feedparser's summary and first content from an item's (is content:encoded, depth, text)
    in order. A description (media:description, itunes:summary) is the content when a summary
    came first and no content had (nor the channel before it: has_content_at_items); else the
    summary, if no shallower one was stored (its property_depth_map). content:encoded is a
    content and fills an empty summary (_save)."""
    summary, at, contents = None, 0, []
    for encoded, depth, text in texts:
        if encoded or (summary is not None and not has_content):
            has_content = True
            contents.append(text)
            if summary is None:
                summary = text  # at stays 0: the next description replaces it
        elif not at or depth <= at:
            summary, at = text, depth
    return summary or "", contents[0] if contents else ""


def _author(got: _ItemFields) -> str | None:
    """author, dc:creator, dc:author and itunes:author all fill feedparser's "author": the last
    of the shallowest wins (its property_depth_map), e-mail and all (_sync_author_detail only
    fills author_detail when it has no children)."""
    if not got.authors:
        return None
    top = min(depth for depth, _ in got.authors)
    return [text for depth, text in got.authors if depth == top][-1] or None


def _rss_entry(got: _ItemFields, el: etree._Element, doc: _Doc, has_content: bool) -> RawEntry:
    """The entry feedparser builds from what the item's descendants said."""
    fields = got.fields
    if got.image_title and got.title_at != 1:
        raise Decline  # the image's title would be the entry's
    if el.get("href") is not None or el.get("lastmod") is not None:
        raise Decline  # feedparser's _cdf_common: a link or date in the item's attributes
    guid = fields.get("guid")
    if guid is not None and got.guid_is_permalink:
        guid = resolve(doc.base, guid)
    if "link" in fields:  # even an empty <link> is the link (feedparser then has none)
        link = resolve(doc.base, fields["link"])
        if "&" in link:  # mixin.pop's fix of "?a=1&b;=2"
            link = _AMP_NAME.sub(r"&\g<1>", link.replace("&amp;", "&"))
    else:
        link = item_link(None, guid, guid_is_permalink=got.guid_is_permalink)
    link = (link or "").strip() or None
    if guid is None:
        guid = el.get(f"{{{RDF}}}about")
    summary, content = _summary_content(got.texts, has_content)
    # a title_detail or summary_detail carries a language (content:encoded's content has none)
    detailed = "title" in fields or not all(encoded for encoded, _, _ in got.texts)
    return RawEntry(
        guid=(guid or "").strip() or None,
        link=urljoin(doc.url, link) if link is not None else None,
        title=fields.get("title", ""),
        summary_html=summary,
        content_html=content,
        published=date_of(fields.get("pubDate")),
        updated=date_of(fields.get("dc:date")),
        author=_author(got),
        language=lang_at(el, doc.lang) if detailed else doc.lang,
    )


def _atom_entry(el: etree._Element, doc: _Doc) -> RawEntry:
    fields: dict[str, str] = {}
    links: list[tuple[str, bool]] = []  # (resolved href, html type) of rel=alternate links
    if el.get(f"{{{RDF}}}about") is not None:
        raise Decline
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        ns, name = split_tag(tag)
        if ns != ATOM:
            if ns in ("", DC, CONTENT) or ns.startswith("http://purl.org/rss/"):
                raise Decline
            _extension(child)
            continue
        if name not in _ATOM_KNOWN or name in fields:
            raise Decline
        if name == "link":
            _atom_link(child, doc.base, links)
        elif name == "author":
            fields[name] = _atom_author(child)
        elif name not in ("category", "contributor", "rights", "source"):
            kind = child.get("type", "text") if name in ("title", "summary", "content") else "text"
            if kind not in ("text", "html") or child.get("src") is not None:
                raise Decline
            fields[name] = text_of(child)
    guid = resolve(doc.base, fields["id"]) if "id" in fields else None
    link = _atom_entry_link(links, guid)
    return RawEntry(
        guid=(guid or "").strip() or None,
        link=urljoin(doc.url, link) if link else None,
        title=fields.get("title", ""),
        summary_html=fields.get("summary", fields.get("content", "")),
        content_html=fields.get("content", ""),
        published=date_of(fields.get("published")),
        updated=date_of(fields.get("updated")),
        author=fields.get("author") or None,
        language=lang_at(el, doc.lang) if {"title", "summary"} & fields.keys() else doc.lang,
    )


def _extension(child: etree._Element) -> None:
    """Decline an extension element of an Atom entry unless feedparser files all its elements
    where we never read (it is flat: a media:description in media:content is the summary)."""
    for el in child.iter(etree.Element):
        ns, name = split_tag(el.tag)
        itunes = FP_PREFIX.get(ns.lower()) == "itunes" and name in _ITUNES_IGNORED and not len(el)
        if not (inert(el, ns, name) or itunes or ns in _HARMLESS) and not (
            ns == MEDIA and name in _MEDIA_IGNORED
        ):
            raise Decline


# feedparser's map_content_type(type) in html_types: the link types it takes for "the" link
_HTML_TYPES = {"text/html", "html", "application/xhtml+xml", "xhtml"}


def _atom_link(link: etree._Element, base: str, links: list[tuple[str, bool]]) -> None:
    """Note an Atom <link>'s href (resolved as _start_link does) when it is rel=alternate."""
    attrs = attributes(link)
    if "href" not in attrs or "url" in attrs or "uri" in attrs or len(attrs) < len(link.keys()):
        raise Decline  # no href, another attribute feedparser takes for it, or two spellings
    if rel(attrs) == "alternate":
        html = attrs.get("type", "text/html").lower() in _HTML_TYPES
        links.append((resolve(base, attrs["href"], attribute=True), html))


def _atom_entry_link(links: list[tuple[str, bool]], guid: str | None) -> str | None:
    """The first rel=alternate href that is not blank (parse._entry_link); else the id (an Atom
    id is a permalink to feedparser), unless an html-typed alternate link set "link" to ""."""
    for href, _ in links:
        if href.strip():
            return href.strip()
    if any(html for _, html in links):
        return None
    return item_link(None, guid, guid_is_permalink=True)


def _atom_author(author: etree._Element) -> str:
    """An Atom author of one <name> and at most one <email>: feedparser's "name (email)"."""
    parts = {split_tag(c.tag)[1]: c for c in author if isinstance(c.tag, str)}
    tags = sorted(c.tag for c in author if isinstance(c.tag, str))
    if tags not in ([f"{{{ATOM}}}name"], [f"{{{ATOM}}}email", f"{{{ATOM}}}name"]):
        raise Decline
    name = text_of(parts["name"], expecting_text=False)
    email = text_of(parts["email"], expecting_text=False) if "email" in parts else ""
    return f"{name} ({email})" if name and email else name or email


_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)  # in place: `body.upper()` was a full copy


def fast_parse(
    body: bytes, *, url: str, charset: str | None
) -> tuple[str, str | None, tuple[RawEntry, ...]] | None:
    """(feed title, feed language, entries), or None when feedparser should decide."""
    if _ENTITY.search(body) or not encoding_agrees(body, charset):
        return None
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, recover=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.LxmlError, ValueError):
        return None
    try:
        return _read(root, url, _base(root))
    except (Decline, ValueError, OverflowError, RecursionError):
        return None


_FEED_TAGS = {"rss", "RDF", "feed", "channel", "item", "entry"}  # where lang_at reads xml:lang
_LANG, _BASE = f"{XML}lang", f"{XML}base"


def _base(root: etree._Element) -> str:
    """The base URI feedparser resolves links against ("" without xml:base), or decline.

    feedparser honours `lang` and `base` attributes in any namespace and case (`<item lang=..>`,
    `<link base=..>`), and a base set anywhere outlives its element when no base was in force
    before it. So: an xml:base only on the root (nasa.gov), xml:lang only where lang_at reads
    it, nothing else by those names. Looking costs ~0.13 us an element (6% of lxml's parse).
    """
    for el in root.iter(etree.Element):
        for key in el.attrib:
            if key.rpartition("}")[2].lower() in ("lang", "base") and not (
                (key == _LANG and split_tag(el.tag)[1] in _FEED_TAGS)
                or (key == _BASE and el is root)
            ):
                raise Decline
    value = root.get(_BASE)
    if value is None:
        return ""
    base = resolve("", value, attribute=True)
    if resolve(base, base, attribute=True) != base:
        raise Decline  # each element would move it again (make_safe_absolute_uri)
    return base


def _read(
    root: etree._Element, url: str, base: str
) -> tuple[str, str | None, tuple[RawEntry, ...]] | None:
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == f"{{{ATOM}}}feed":
        lang = lang_at(root, None)
        title_el = root.find(f"{{{ATOM}}}title")
        title = text_of(title_el) if title_el is not None else ""
        items = root.findall(f"{{{ATOM}}}entry")
        return title, lang, _entries(items, _atom_entry, _Doc(base, url, lang))
    uri, local = split_tag(tag) if tag else ("", "")
    if local == "rss" and plain_ns(root, uri):
        ns = f"{{{uri}}}" if uri else ""
        channel = root.find(f"{ns}channel")
        if channel is None or len(root) != 1:
            return None
        items = channel.findall(f"{ns}item")
        tag_rss = True
    elif tag == f"{{{RDF}}}RDF":
        for uri in (RSS1, RSS090, ""):
            ns = f"{{{uri}}}" if uri else ""
            channel = root.find(f"{ns}channel")
            if channel is not None:
                break
        else:
            return None
        if not uri or channel.findall(f"{ns}item"):
            return None  # un-namespaced RSS in RDF, or items inside the channel: feedparser's
        items = root.findall(f"{ns}item")
        tag_rss = False
    else:
        return None
    lang_el = channel.find(f"{ns}language")
    if lang_el is None:
        lang_el = channel.find(f"{{{DC}}}language")
    title_el = channel.find(f"{ns}title")
    lang = text_of(lang_el) or None if lang_el is not None else None
    if lang is not None and lang_el is not None and items and _before(items[0], lang_el):
        return None  # feedparser's language takes effect only from where it appears
    lang = lang or lang_at(channel, None)
    title = text_of(title_el) if title_el is not None else ""
    tops = [*channel] if tag_rss else _rdf_order(root, channel)
    flags = iter(has_content_at_items(tops, f"{ns}item"))
    return title, lang, _entries(items, _rss_item, _Doc(base, url, lang, flags))


def _rdf_order(root: etree._Element, channel: etree._Element) -> list[etree._Element]:
    """The RDF root's children in document order, the channel's own in place of the channel."""
    return [el for top in root for el in (channel if top is channel else (top,))]


def _entries(
    items: list[etree._Element], read: Callable[[etree._Element, _Doc], RawEntry], doc: _Doc
) -> tuple[RawEntry, ...]:
    """Each item read, then emptied: the tree shrinks as the entries grow, so a big body's
    peak is the larger of the two, not their sum (a 60 MB feed: 73 MB of tree, 60 MB of entries).
    """
    entries = []
    for el in items:
        entries.append(read(el, doc))
        el.clear(keep_tail=True)
    return tuple(entries)


def _before(a: etree._Element, b: etree._Element) -> bool:
    """True when `a` comes before `b` in document order (both under one root)."""
    return bool(a.sourceline and b.sourceline and a.sourceline < b.sourceline)
