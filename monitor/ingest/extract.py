"""Article pages -> title, author, date and main text, with beautifulsoup4 over lxml.

Metadata first, because publishers keep it clean for search engines: JSON-LD `NewsArticle` /
`Article` (headline, author, datePublished, articleBody), then `og:` / `article:` meta tags,
then the DOM (`h1`, `<title>`). The body comes from trafilatura when it is installed (bodies.py
says why and what it costs), else from a main-text heuristic (readability-like): boilerplate is
dropped (nav, header, footer, aside, forms, scripts, "leggi anche" / "read also"
boxes, share bars, ads, by tag and by class/id pattern), each paragraph scores its text length
(less its link text) into its parent and half into its grandparent, and the best-scoring
container's blocks are kept with paragraph breaks. When that yields clearly less than JSON-LD's
`articleBody`, the latter wins.

Parsing is lxml's HTML parser through bs4: Python 3.11's html.parser is quadratic on some malformed
input (CVE-2025-6069). Bodies over `MAX_HTML_BYTES` are refused before parsing.

`decode_html` (through `soup`) is shared with `pages`: a page whose bytes are valid UTF-8 with
non-ASCII bytes is UTF-8 whatever it declares (Corriere's pages, labelled ISO-8859-1; pages saved
as UTF-8 with their GB2312 or ISO-8859-15 label left on): text in any other encoding is almost
never valid UTF-8 by accident.
"""

from __future__ import annotations

import codecs
import email.utils
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag

from monitor.errors import ParseError
from monitor.ingest.bodies import trafilatura_body
from monitor.ingest.charsets import SINGLE_BYTE, codec_name

__all__ = ["Extracted", "MAX_HTML_BYTES", "decode_html", "extract_article", "parse_date", "soup"]

MAX_HTML_BYTES = 5_000_000  # bs4 costs ~100x the bytes in memory and seconds on big pages
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I
)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What an article page says about itself; empty strings / None when it does not say."""

    title: str
    author: str | None
    published: datetime | None
    text: str
    language: str | None


# --- encodings ------------------------------------------------------------------------------


def _codec(name: str | None) -> str | None:
    """`codec_name` of the lower-cased label (as HTML readers compare labels)."""
    return codec_name(name.lower()) if name else None


def decode_html(body: bytes, charset: str | None) -> str:
    """Decode an HTML body: BOM, then HTTP charset, then `<meta charset>`, then UTF-8.

    Any label loses to a body that is valid UTF-8 with non-ASCII bytes (see the module doc). A
    declared UTF-8 that does not decode falls back to windows-1252 (HTML's reading of Latin-1).
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace")
    label = charset
    if not _codec(label):
        found = _META_CHARSET.search(body[:8192])
        label = found.group(1).decode("ascii") if found else None
    codec = _codec(label)
    if codec in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):  # a meta tag in ASCII lies
        codec = None
    if codec is None or (label or "").strip().lower() in SINGLE_BYTE or codec == "latin-1":
        if body.isascii():
            return body.decode("ascii")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode(
                "cp1252" if codec in (None, "latin-1", "ascii") else codec, "replace"
            )
    if codec == "utf-8" or not body.isascii():  # ASCII bytes may be a 7-bit ISO-2022 text
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return body.decode("cp1252" if codec == "utf-8" else codec, errors="replace")


def page_text(body: bytes, charset: str | None) -> str:
    """The page decoded (`decode_html`), NULs removed; bodies too big to parse cheaply refused."""
    if len(body) > MAX_HTML_BYTES:
        raise ParseError(f"page too large to parse: {len(body):,} bytes (limit {MAX_HTML_BYTES:,})")
    return decode_html(body, charset).replace("\x00", "")


def soup(body: bytes, charset: str | None) -> BeautifulSoup:
    """Parse with lxml after our own decoding (`page_text`)."""
    return BeautifulSoup(page_text(body, charset), "lxml")


# --- dates ----------------------------------------------------------------------------------

_MONTH_NAMES = (
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "january february march april may june july august september october november december",
    "gen feb mar apr mag giu lug ago set ott nov dic",
    "jan feb mar apr may jun jul aug sep oct nov dec",
)
_MONTHS = {m: i + 1 for names in _MONTH_NAMES for i, m in enumerate(names.split())} | {"sept": 9}
_DAY_MONTH_YEAR = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th|°)?\s+([a-z]{3,9})\.?,?\s+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"\b([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_CLOCK = re.compile(r"\b(\d{1,2})[:.](\d{2})\b")
_RELATIVE = re.compile(
    r"\b(\d+|un|una|an?|one)\s+(minut[oi]|min|or[ae]|giorn[oi]|minutes?|hours?|days?)\s+(fa|ago)\b"
)
_UNITS = {"min": 60, "or": 3600, "gi": 86400, "ho": 3600, "da": 86400}


def _aware(dt: datetime) -> datetime:
    """Naive times are taken as UTC (the page did not say); aware ones are converted."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_date(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """Lenient date parsing to aware UTC: ISO 8601, RFC 2822, "3 febbraio 2026", "Feb 3, 2026",
    "03/02/2026" (day first); with `now`, relative forms ("2 ore fa", "5 minutes ago", "ieri")."""
    if not value:
        return None
    text = " ".join(value.split())[:200]
    low = text.lower()
    iso = _ISO.search(text)
    if iso:
        try:
            return _aware(datetime.fromisoformat(iso.group(0).replace("Z", "+00:00")))
        except ValueError:
            pass
    try:
        parsed = email.utils.parsedate_to_datetime(text)
        if parsed is not None:
            return _aware(parsed)
    except (TypeError, ValueError, IndexError):
        pass
    day = month = year = None
    if m := _DAY_MONTH_YEAR.search(low):
        day, month, year = int(m.group(1)), _MONTHS.get(m.group(2)), int(m.group(3))
    elif m := _MONTH_DAY_YEAR.search(low):
        day, month, year = int(m.group(2)), _MONTHS.get(m.group(1)), int(m.group(3))
    elif m := _NUMERIC.search(low):
        day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if day and month and year:
        hour = minute = 0
        if clock := _CLOCK.search(low[m.end() :] if m else ""):
            hour, minute = int(clock.group(1)), int(clock.group(2))
        try:
            return datetime(year, month, day, hour, minute, tzinfo=UTC)
        except ValueError:
            return None
    if now is not None:
        if rel := _RELATIVE.search(low):
            n = int(rel.group(1)) if rel.group(1).isdigit() else 1
            return _aware(now) - timedelta(seconds=n * _UNITS.get(rel.group(2)[:2], 60))
        if re.search(r"\b(ieri|yesterday)\b", low):
            return _aware(now) - timedelta(days=1)
    return None


# --- metadata -------------------------------------------------------------------------------

# what windows-1252 shows for UTF-8 continuation bytes 0x80-0xBF
_CONT = "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
_CONT += "\u2013-\u203a\u20ac\u2122"
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][{_CONT}]{{1,3}}")
_ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "blogposting",
    "liveblogposting",
    "opinionnewsarticle",
    "report",
}


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as windows-1252 ("NiccolÃ²" -> "Niccolò"), seen in Libero's JSON-LD."""
    return _MOJIBAKE.sub(_unmangle, text) if _MOJIBAKE.search(text) else text


def _unmangle(match: re.Match[str]) -> str:
    """One UTF-8 sequence read as windows-1252; left alone unless it decodes cleanly."""
    try:
        return match.group(0).encode("cp1252").decode("utf-8")
    except UnicodeError:
        return match.group(0)


def _clean(value: Any) -> str:
    """JSON-LD strings often carry HTML entities ("Pisa&#44;"), stray tags and mojibake."""
    if not isinstance(value, str):
        return ""
    text = html.unescape(html.unescape(value))
    if "<" in text:
        fragment = BeautifulSoup(text, "lxml")
        text = fragment.get_text(" ")
        fragment.decompose()
    return fix_mojibake(" ".join(text.split()))


def _walk_ld(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk_ld(item)
    elif isinstance(node, dict):
        yield node
        for key in ("@graph", "mainEntity", "itemListElement"):
            if key in node:
                yield from _walk_ld(node[key])


def _json_ld(doc: BeautifulSoup) -> dict[str, Any]:
    """The first JSON-LD object whose @type is an article kind; {} when there is none."""
    for script in doc.find_all("script", type=re.compile("ld\\+json", re.I)):
        try:
            data = json.loads(script.string or "", strict=False)
        except (ValueError, RecursionError):
            continue
        for obj in _walk_ld(data):
            kinds = obj.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if any(isinstance(k, str) and k.lower() in _ARTICLE_TYPES for k in kinds):
                return obj
    return {}


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    if isinstance(value, dict):
        return _names(value.get("name"))
    name = _clean(value)
    return [name] if name and not name.startswith("http") else []


def _meta(doc: BeautifulSoup, *keys: str) -> str:
    for key in keys:
        tag = doc.find("meta", attrs={"property": key}) or doc.find("meta", attrs={"name": key})
        if isinstance(tag, Tag) and (content := _clean(tag.get("content"))):
            return content
    return ""


# --- main text ------------------------------------------------------------------------------

_DROP_TAGS = [
    "script",
    "style",
    "noscript",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "button",
    "select",
    "figure",
    "figcaption",
    "template",
    "input",
    "object",
]
_BOILER = re.compile(
    r"share|social|sharing|condivid|related|correlat|leggi-?anche|read-?also|see-?also|"
    r"(^|[-_ ])(ad|ads|adv|advert\w*|banner|promo|sponsor\w*|newsletter|comments?|cookie\w*|"
    r"sidebar|breadcrumbs?|tags?|widget|menu|nav|footer|subscribe|abbonati)([-_ ]|$)|"
    r"outbrain|taboola|piano-|teaser|most-?read|piu-?letti",
    re.I,
)
_READ_ALSO = re.compile(
    r"^\s*(leggi anche|leggi pure|potrebbe interessarti|read also|read more|"
    r"see also|related:|ti potrebbe interessare|guarda anche)",
    re.I,
)
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "table",
    "tr",
    "td",
    "th",
    "dd",
    "dt",
    "br",
    "hr",
}
_KEEP = {"html", "body", "article", "main"}


def _prose(tag: Tag) -> int:
    """Characters of paragraph text outside links: a wrapper named "has-ads" full of it stays."""
    total = 0
    for p in tag.find_all("p"):
        total += len(p.get_text(strip=True)) - sum(len(a.get_text(strip=True)) for a in p("a"))
    return total


def _drop_boilerplate(root: Tag) -> None:
    for tag in root.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in root.find_all(True):
        if tag.decomposed or tag.name in _KEEP or tag.attrs is None:
            continue
        marks = " ".join([*tag.get("class", []), str(tag.get("id", "")), str(tag.get("role", ""))])
        boiler = bool(marks.strip()) and bool(_BOILER.search(marks)) and _prose(tag) < 500
        if boiler or (
            _READ_ALSO.match(tag.get_text(" ", strip=True)[:40]) and len(tag.get_text()) < 400
        ):
            tag.decompose()


def _paragraph_nodes(root: Tag) -> Iterator[tuple[Tag, int]]:
    """Paragraph-like nodes and their weight: text length less link text."""
    for tag in root.find_all(["p", "div", "td", "pre", "blockquote"]):
        if tag.name == "p":
            text = tag.get_text(" ", strip=True)
        else:  # divs with their own text (sites that write <div>text<br>text</div>)
            text = " ".join(s.strip() for s in tag.find_all(string=True, recursive=False))
            if len(text) < 80:
                continue
        links = sum(len(a.get_text(strip=True)) for a in tag.find_all("a"))
        weight = len(text) - 2 * links
        if weight > 20:
            yield tag, weight + 25 * text.count(",")


def _best_container(root: Tag) -> Tag | None:
    scores: dict[int, float] = {}
    nodes: dict[int, Tag] = {}
    for tag, weight in _paragraph_nodes(root):
        parent = tag.parent
        for share in (1.0, 0.5):
            if not isinstance(parent, Tag):
                break
            scores[id(parent)] = scores.get(id(parent), 0.0) + weight * share
            nodes[id(parent)] = parent
            parent = parent.parent
    if not scores:
        return None
    return nodes[max(scores, key=lambda k: scores[k])]


def _block_lines(node: Tag) -> list[str]:
    """The node's text with a break at every block boundary; whitespace collapsed per line."""
    parts: list[str] = []

    def walk(el: Tag) -> None:
        for child in el.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:  # skip comments, CDATA, doctypes
                    parts.append(str(child))
            elif isinstance(child, Tag):
                block = child.name in _BLOCKS
                if block:
                    parts.append("\n")
                walk(child)
                if block:
                    parts.append("\n")

    walk(node)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return [line for line in lines if line]


def main_text(doc: BeautifulSoup) -> str:
    """The main text of a parsed page (mutates `doc`: boilerplate is removed)."""
    root = doc.body or doc
    _drop_boilerplate(root)
    best = _best_container(root)
    if best is None:
        return ""
    lines = [
        fix_mojibake(ln) for ln in _block_lines(best) if not _READ_ALSO.match(ln) or len(ln) > 200
    ]
    return "\n\n".join(lines)


def extract_article(
    body: bytes, *, url: str, charset: str | None, builtin: bool = False
) -> Extracted:
    """Title, author, date, main text and language of an article page (ParseError if too big).
    The body is trafilatura's when it is installed and finds one, unless `builtin` (for
    bench/eval_extract.py): then, as without trafilatura, the heuristic of `main_text`."""
    text = page_text(body, charset)
    # first, so that trafilatura's tree is gone before bs4 builds its own
    found = None if builtin else trafilatura_body(text, url)
    doc = BeautifulSoup(text, "lxml")
    del text
    try:
        return _extract(doc, found)
    finally:
        doc.decompose()  # a reference cycle: freed now, not at the collector's next full pass


def _extract(doc: BeautifulSoup, body: str | None = None) -> Extracted:
    """The page's metadata; `body`: trafilatura's text (None or "": the heuristic's)."""
    ld = _json_ld(doc)
    h1 = doc.find("h1")
    page_title = doc.title.get_text(" ", strip=True) if doc.title else ""
    title = (
        _clean(ld.get("headline"))
        or _meta(doc, "og:title", "twitter:title")
        or (" ".join(h1.get_text(" ").split()) if isinstance(h1, Tag) else "")
        or page_title
    )
    authors = _names(ld.get("author")) or _names(_meta(doc, "author", "article:author"))
    published = parse_date(_clean(ld.get("datePublished"))) or parse_date(
        _meta(doc, "article:published_time", "og:published_time", "date", "pubdate")
    )
    html_tag = doc.find("html")
    language = (
        _clean(ld.get("inLanguage"))
        or (str(html_tag.get("lang") or "") if isinstance(html_tag, Tag) else "")
        or _meta(doc, "og:locale", "language")
        or None
    )
    ld_body = _clean(ld.get("articleBody"))
    text = fix_mojibake(body) if body else main_text(doc)
    if len(ld_body) > 1.5 * len(text):
        text = ld_body
    return Extracted(
        title=title[:500],
        author=", ".join(dict.fromkeys(authors)) or None,
        published=published,
        text=text,
        language=language.replace("_", "-")[:20] if language else None,
    )
