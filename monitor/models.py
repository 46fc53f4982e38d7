"""Frozen dataclasses, one per pipeline stage: plain data that moves one way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SourceKind = Literal["feed", "html"]
AlertMode = Literal["story", "article"]


@dataclass(frozen=True, slots=True)
class Source:
    """A configured source. `interval` is in seconds."""

    name: str
    url: str
    kind: SourceKind = "feed"
    language: str | None = None
    interval: float = 300.0
    links: str | None = None  # html: CSS selector for article links
    title: str | None = None  # html: CSS selector for the title within an item
    summary: str | None = None  # html: CSS selector for the summary within an item
    date: str | None = None  # html: CSS selector for the date within an item
    fetch_article: bool = False  # fetch each new item's page for its full text
    allow_private: bool = False  # let redirects/links reach private or loopback addresses
    robots: bool = True  # respect robots.txt for article pages
    enabled: bool = True
    url_template: str | None = None  # `url` as written, when it holds ${VAR} secrets

    @property
    def shown_url(self) -> str:
        """The URL to store and show: the template when the real one holds a secret."""
        return self.url_template or self.url


@dataclass(frozen=True, slots=True)
class Rule:
    """A watch rule: a query in the rule language routed to named channels."""

    name: str
    query: str
    channels: tuple[str, ...] = ()
    alert: AlertMode = "story"
    cooldown: float = 3600.0  # seconds between follow-up alerts of one story
    digest: str | None = None  # cron expression; None = send each alert at once
    quiet_hours: str | None = None  # "22:00-07:00" in the monitor's timezone
    urgent: bool = False  # urgent alerts ignore quiet hours
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about a source between polls (conditional GET, health)."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_errors: int = 0
    next_poll: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    """The outcome of one HTTP fetch that did not fail."""

    url: str  # final URL after redirects
    status: int  # 200, or 304 when not modified
    body: bytes = b""
    content_type: str | None = None
    charset: str | None = None  # from the Content-Type header, if any
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # sha256 hex of body; None on 304
    elapsed: float = 0.0  # seconds

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One item as the parser saw it, before normalization. Times are aware UTC or None."""

    guid: str | None
    link: str | None
    title: str
    summary_html: str = ""
    content_html: str = ""
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """A normalized item: plain text, canonical URL, UTC times, a text fingerprint."""

    source: str
    guid: str  # the feed's GUID, else the canonical URL
    url: str  # canonical URL
    title: str
    summary: str = ""
    text: str = ""
    language: str | None = None
    published: datetime | None = None
    first_seen: datetime | None = None
    author: str | None = None
    fingerprint: str = ""  # hash of the normalized title + text; equal for exact copies


@dataclass(frozen=True, slots=True)
class Match:
    """A rule matched an article; `terms` are the query terms that were found."""

    rule: str
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered alert in every format a channel may want; notify picks one per channel."""

    title: str
    text: str  # clean plain text: e-mail, SMS, webhooks
    markdown: str  # chat services that render Markdown
    html: str  # channels that render HTML


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to one channel, identified by an idempotency key; sent from `due_at` on."""

    key: str
    rule: str
    channel: str
    message: Message
    due_at: datetime
    article_id: int | None = None
    story_id: int | None = None
    digest: bool = False  # collected with others of its rule and channel into one summary


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of one attempt to send one alert."""

    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """An article already in the store, as much as the pipeline needs to classify a new copy."""

    id: int
    source: str
    title: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """An article the pipeline wants stored, with the rules it matched, its title + lead sketch
    (for copies) and its weighted terms (for story grouping and the window's word counts)."""

    article: Article
    matches: tuple[Match, ...] = ()
    sketch: tuple[int, ...] = ()
    terms: Mapping[str, float] = field(default_factory=dict)
    language: str | None = None  # the language the terms were read in (detected from the words)
    facts: frozenset[str] = frozenset()  # names and numbers of the title and body


@dataclass(frozen=True, slots=True)
class Saved:
    """What one committed poll changed: new and edited article ids, new match rows, and the
    items recognised as copies of stored articles (copy's URL, original's id)."""

    new_ids: tuple[int, ...]
    edited_ids: tuple[int, ...]
    new_matches: tuple[tuple[int, Match], ...]
    copies: tuple[tuple[str, int], ...] = ()
