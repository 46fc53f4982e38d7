"""JSON Feed (jsonfeed.org, versions 1.0 and 1.1) -> the same raw entries as RSS and Atom.

Detected by content, never by URL or Content-Type alone: servers label JSON Feeds
`application/feed+json`, `application/json` or `text/plain`, and a feed URL ending in `.json`
says nothing either. A body whose first non-blank byte is `{` is read as JSON; it is a JSON Feed
when its `version` names jsonfeed.org, and anything else that is JSON is "not a feed".

The same hostile-input limits as the XML parsers: the body is already capped by the fetcher
(`max_bytes`); nesting deeper than the JSON decoder allows is a ParseError, not a crash; a field
of the wrong type (a number for a title, a list for a date) is ignored as if absent and named in
the warning; text fields are cut at `normalize.MAX_HTML` characters, as normalize cuts markup.
`content_text` is escaped into markup, so normalize reads a literal `<` in it as text; `title`
and `summary` are plain text by the spec but carry HTML entities in real feeds (`&#8211;`,
`&amp;` from WordPress), so they go to normalize as an RSS title does, entities decoded once.
"""

from __future__ import annotations

import codecs
import email.utils
import html
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from monitor.errors import ParseError
from monitor.ingest.normalize import MAX_HTML
from monitor.models import RawEntry

__all__ = ["is_json", "parse_json_feed"]

_VERSION = "jsonfeed.org/version/"
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\{")


def is_json(body: bytes) -> bool:
    """Whether the body is JSON to the eye: an object after any BOM and white space (XML and
    HTML start with `<`, so nothing the other parsers read starts this way). Matched in place:
    every feed body of every poll passes here, and strip/removeprefix would copy it."""
    return _JSON_START.match(body) is not None


def parse_json_feed(body: bytes, *, url: str) -> tuple[str, str | None, tuple[RawEntry, ...], str]:
    """(title, language, entries, warning) of a JSON Feed, as `parse.ParsedFeed` takes them;
    ParseError when the body is not JSON or not a JSON Feed."""
    feed = _load(body)
    version = feed.get("version")
    if not isinstance(version, str) or _VERSION not in version:
        raise ParseError(
            "not a feed: JSON, but not a JSON Feed (no version https://jsonfeed.org/version/1.1)"
        )
    items = feed.get("items")
    if not isinstance(items, list):
        raise ParseError("not a feed: a JSON Feed without an `items` list")
    problems = _Problems()
    language = _text(feed, "language", problems, "feed").strip()
    # relative item links resolve against where the feed was fetched from, as in RSS: the
    # feed's own `feed_url` may be stale or point anywhere
    entries = tuple(_entries(items, base=url, language=language, problems=problems))
    title = html.unescape(_text(feed, "title", problems, "feed")).strip()
    return title, language or None, entries, problems.warning()


def _load(body: bytes) -> Mapping[str, Any]:
    """The decoded JSON object; a clear ParseError for anything else."""
    try:
        # strict=False: raw tabs and line breaks inside strings occur in real feeds; normalize
        # drops the control characters later, as it does for XML
        value = json.loads(body.removeprefix(codecs.BOM_UTF8), strict=False)
    except RecursionError:
        raise ParseError("not a feed: JSON nested too deeply to read") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"not a feed: JSON that is not UTF-8 text ({exc.reason})") from None
    except ValueError as exc:  # json.JSONDecodeError, or a number of more than 4300 digits
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else exc
        raise ParseError(f"not a feed: looks like JSON but does not parse: {where}") from None
    if not isinstance(value, dict):
        raise ParseError("not a feed: JSON, but not an object")
    return value


class _Problems:
    """Fields of the wrong type, counted; the first one named in the warning."""

    def __init__(self) -> None:
        self.count = 0
        self.first = ""

    def add(self, where: str, what: str) -> None:
        self.count += 1
        if not self.first:
            self.first = f"{where}: {what}"

    def warning(self) -> str:
        if not self.count:
            return ""
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return f"malformed: JSON Feed {self.first}{more}"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


def _text(obj: Mapping[str, Any], key: str, problems: _Problems, where: str) -> str:
    """A string field, cut at MAX_HTML characters; "" when absent or of another type."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return (value or "")[:MAX_HTML]
    problems.add(where, f"`{key}` is {_kind(value)}, not text")
    return ""


def _entries(
    items: list[Any], *, base: str, language: str, problems: _Problems
) -> Iterator[RawEntry]:
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            problems.add(f"item {n}", f"is {_kind(item)}, not an object")
            continue
        yield _entry(item, base=base, language=language, problems=problems, where=f"item {n}")


def _entry(
    item: Mapping[str, Any], *, base: str, language: str, problems: _Problems, where: str
) -> RawEntry:
    ident = item.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int | None):
        problems.add(where, f"`id` is {_kind(ident)}, not text")
        ident = None
    guid = str(ident).strip()[:MAX_HTML] if ident is not None else ""  # 1.0 feeds: numbers

    def text(key: str) -> str:
        return _text(item, key, problems, where)

    link = text("url").strip() or text("external_url").strip()
    content = text("content_html") or html.escape(text("content_text"))
    return RawEntry(
        guid=guid or None,
        link=_absolute(base, link) if link else None,
        title=text("title"),
        summary_html=text("summary"),
        content_html=content,
        published=_date(text("date_published")),
        updated=_date(text("date_modified")),
        author=_authors(item, problems, where),
        language=text("language").strip() or language or None,
    )


def _absolute(base: str, link: str) -> str:
    try:
        return urljoin(base, link)
    except ValueError:  # e.g. an invalid IPv6 literal
        return link


def _authors(item: Mapping[str, Any], problems: _Problems, where: str) -> str | None:
    """1.1's `authors` list, else 1.0's `author` object: their names, comma-separated."""
    found = item.get("authors")
    if found is None and isinstance(item.get("author"), dict):
        found = [item["author"]]
    if found is None:
        return None
    if not isinstance(found, list):
        problems.add(where, f"`authors` is {_kind(found)}, not a list")
        return None
    names = [a.get("name") for a in found if isinstance(a, dict)]
    names = [" ".join(_CONTROL.sub("", n).split()) for n in names if isinstance(n, str)]
    return ", ".join(n for n in names if n)[:1000] or None  # stored as is: no markup to strip


def _date(value: str) -> datetime | None:
    """RFC 3339 as the spec says (`2020-01-02T12:00:00Z`, `+0100`, lower-case `t`/`z`), or an
    RFC 822 date as some feeds write; None when absent, unreadable or outside 1970-2100 (the
    XML parsers' window)."""
    value = value.strip()
    if not value or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.upper())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if not 1970 <= when.year <= 2100:  # checked first: astimezone overflows near year 1
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
