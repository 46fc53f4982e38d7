"""Frozen dataclasses, one per pipeline stage: plain data that moves one way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
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
    max_age: float = 2 * 86400.0  # seconds: older items are stored, not alerted (alerts/held.py)

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
    quiet_hours: QuietHours | None = None  # in the monitor's timezone
    urgent: bool = False  # urgent alerts ignore quiet hours
    enabled: bool = True
    max_age: float | None = None  # seconds; None: the source's (alerts/held.py)
    backfill: bool = False  # alert items of any age, a new source's backlog too


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in the monitor's time zone, when a rule's non-urgent alerts wait; it may
    span midnight (22:00-07:00). Parsed once, by the config (`config.values.valid_quiet_hours`);
    `str()` gives it back as the config normalizes it ("07:00-09:30").
    """

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


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


MuteKind = Literal["rule", "source"]


@dataclass(frozen=True, slots=True)
class Mute:
    """A rule or source muted until `until` (`news-monitor mute`): its new matches are
    recorded, not alerted. `held`: how many it has held so far, when the reader asked."""

    kind: MuteKind
    name: str
    since: datetime
    until: datetime
    held: int = 0


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
    undated: bool = False  # the feed gave no usable date: `published` is when first seen


@dataclass(frozen=True, slots=True)
class Match:
    """A rule matched an article; `terms` are the query terms that were found."""

    rule: str
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A stored article a `search` query matched: its id, the terms found (as the rule matcher
    reports them) and a snippet with the matched words in [brackets]."""

    id: int
    article: Article
    terms: tuple[str, ...]
    snippet: str


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
    # rule -> why its match is recorded but not alerted ("muted", "old", "backlog": alerts/held)
    held: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GoodPoll:
    """What a poll that fetched its source writes back to the source's row, whatever the body
    held: when to poll next, the validators (ETag, Last-Modified, body hash) that let the next
    poll skip an unchanged body, and what was wrong with the body ("malformed: ...", "" for
    nothing; None when the body was not read again, so the last warning stands)."""

    source: str
    now: datetime
    next_poll: datetime
    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """What one committed poll changed: new and edited article ids, new matches that plan
    alerts (the held ones are recorded too, counted by reason in `held`), and the items
    recognised as copies of stored articles (copy's URL, original's id)."""

    new_ids: tuple[int, ...]
    edited_ids: tuple[int, ...]
    new_matches: tuple[tuple[int, Match], ...]
    copies: tuple[tuple[str, int], ...] = ()
    held: tuple[str, ...] = ()  # why each new match that plans no alert was held (alerts/held)


@dataclass(frozen=True, slots=True)
class CopyOf:
    """A candidate that is a copy of the stored article `original`. `new`: recorded by this
    poll (reported in `Saved.copies`); False: an earlier poll recorded it, nothing to report."""

    original: int
    new: bool


# A fact's kind, in the order the stored terms sort (`"`, `#`, `@`); "legacy" is a fact stored
# before the text-similarity stories (schema v6), shown as it was stored.
FactKind = Literal["quote", "number", "name", "legacy"]
_FACT_ORDER = {"quote": 0, "number": 1, "name": 2, "legacy": 3}


@dataclass(frozen=True, slots=True)
class Fact:
    """A name, number or quotation an article told: what a later report must add to be news.

    The store keeps facts in their term form (`stories.terms`); what it hands out is this.
    They sort as their stored terms do, which is the order follow-ups and timelines list them.
    """

    kind: FactKind
    text: str  # the folded name, the number without separators, a quotation's first words

    def __lt__(self, other: Fact) -> bool:
        return (_FACT_ORDER[self.kind], self.text) < (_FACT_ORDER[other.kind], other.text)


@dataclass(frozen=True, slots=True)
class SentAlert:
    """An alert the story already sent for a rule: n = 0 opened it, n > 0 is a follow-up."""

    n: int
    article_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class StoryContext:
    """An article's story as alert planning needs it (built by the store inside the poll).

    `fresh` maps each fact added since the rule's last alert to its weight; `novelty` is
    1 - the article's best cosine with the articles that alerted; `score` its join score
    (0 for the article that opened the story); `outlets` the story's other sources and copies.
    """

    story_id: int
    sent: tuple[SentAlert, ...] = ()
    fresh: Mapping[Fact, float] = field(default_factory=dict)
    novelty: float = 0.0
    score: float = 0.0
    outlets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed outbox row, ready to be sent. `rules`: every rule it speaks for (one message
    per article and channel), `rule` first: the one whose timing it follows."""

    id: int
    key: str
    rule: str
    channel: str
    message: Message
    due_at: datetime
    attempts: int
    article_id: int | None
    story_id: int | None
    digest: bool
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnsentAlert:
    """An alert due and never tried yet, whose text may still change before it goes out (a
    story alert, or one several rules matched): its outbox row, article, rules (the first is
    the row's rule), story, why a story alerted (`reason`) and its current text."""

    outbox_id: int
    article_id: int
    rules: tuple[str, ...]
    story_id: int | None
    reason: str | None
    text: str


@dataclass(frozen=True, slots=True)
class StoryRow:
    """One story as `news-monitor stories` lists it."""

    id: int
    first_seen: datetime | None
    last_seen: datetime | None
    headline: str
    size: int
    outlets: tuple[str, ...]
    languages: tuple[str, ...] = ()
    alerts: int = 0


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One article of a story, or a copy of one (`copy_of` = the original's id). `fresh` are
    the facts it added; `alerted` names the rules it alerted for, with why
    (`rule: new: Hamilton, 100`)."""

    article_id: int
    at: datetime | None
    source: str
    title: str
    url: str
    fresh: tuple[Fact, ...] = ()
    copy_of: int | None = None
    alerted: tuple[str, ...] = ()
    language: str | None = None


# -- one poll's results (service/pipeline.py) ----------------------------------------------

Outcome = Literal["new", "unchanged", "not_modified", "error"]


@dataclass(frozen=True, slots=True)
class Analysed:
    """A changed body's new or changed articles, the (key, hash) of the items to record as
    processed, how many items were skipped as unchanged since their last processing, and the
    items of those analysed that were not kept, by reason (normalize.to_articles); `warning`:
    what was wrong with the body, though its items could be read (parse.ParsedFeed)."""

    articles: list[Article]
    items: tuple[tuple[str, str], ...] = ()
    skipped: int = 0
    skipped_items: tuple[tuple[str, int], ...] = ()
    warning: str = ""
    listed: tuple[str, ...] = ()  # every item key the body lists (kept as "seen" while listed)
    reseen: frozenset[str] = frozenset()  # URLs of articles from items processed before


@dataclass(frozen=True, slots=True)
class Found:
    """A new match: the stored article id, the article and the rule that matched it."""

    article_id: int
    article: Article
    match: Match


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one source did, for the log, the metrics and `once`'s summary."""

    source: str
    outcome: Outcome
    new: int = 0
    edited: int = 0
    found: tuple[Found, ...] = ()
    error: str | None = None
    skipped_items: tuple[tuple[str, int], ...] = ()  # (reason, count): items not stored, and why
    warning: str = ""  # what was wrong with a body read all the same ("malformed: ...")
    held: tuple[tuple[str, int], ...] = ()  # (reason, count): new matches recorded, not alerted


# -- crossing packages: ingest -> service, stories -> store, delivery -> service/cli ---------


@dataclass
class DrainResult:
    """What one drain of the outbox did: counts, and one line per attempt for the log."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    postponed: int = 0
    outcomes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dropped:
    """What `alerts drop` did (rows as `alerts` lists them): the alerts it dropped, and the
    ones it chose but left pending: being sent right now, or also matched by another rule."""

    dropped: tuple[dict, ...]
    sending: tuple[dict, ...] = ()
    shared: tuple[dict, ...] = ()


@dataclass(frozen=True)
class DeliveryPolicy:
    """What the config says about delivery. A rate limit is (messages, per seconds), None for
    none: `rate_limits` per channel, `rate_limit` for a channel it does not name."""

    channels: Mapping[str, str]
    rules: Mapping[str, Rule]
    timezone: str
    max_attempts: int = 8
    rate_limit: tuple[int, float] | None = (20, 600.0)
    rate_limits: Mapping[str, tuple[int, float] | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Normalized:
    """One feed's articles, each item once, and how many items were skipped, by reason."""

    articles: list[Article]
    skipped: tuple[tuple[str, int], ...] = ()  # (reason, count), reasons in SKIP_REASONS order
    reseen: frozenset[str] = frozenset()  # URLs of articles whose item was processed before


@dataclass(frozen=True, slots=True)
class StoryView:
    """A candidate story: its id, centroid and the languages of its articles."""

    id: int
    centroid: Mapping[str, float]
    languages: frozenset[str] = frozenset()
